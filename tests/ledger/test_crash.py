"""Crash safety: a writer killed by SIGKILL mid-batch loses nothing it acknowledged; the log reopens consistent."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from medspace.ledger.check import check
from medspace.ledger.sqlite_store import SqliteLogStore

# The child appends batches of random size (1 to argv[3] entries) forever and prints "index hexdata" for each entry
# once append() has returned, i.e. once the batch's commit is durable.
CHILD = """
import random, sys
from medspace.ledger.sqlite_store import SqliteLogStore
run = sys.argv[2]
top = int(sys.argv[3])
rng = random.Random(run)
s = SqliteLogStore(sys.argv[1])
out = sys.stdout
b = 0
while True:
    batch = [f"run{run}-b{b}-e{j}".encode() * rng.randint(1, 8) for j in range(rng.randint(1, top))]
    idx = s.append(batch)
    out.write("".join(f"{i} {d.hex()}\\n" for i, d in zip(idx, batch)))
    out.flush()
    b += 1
"""


def _run_and_kill(path: Path, run: int, rng: random.Random, max_batch: int) -> dict[int, bytes]:
    """Start a writer, SIGKILL it at a random moment, return what it acknowledged."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(run), str(max_batch)], stdout=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout is not None
    acked: dict[int, bytes] = {}
    lines: list[str] = []
    first = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            first.set()

    t = threading.Thread(target=reader)
    t.start()
    assert first.wait(30), "the writer never acknowledged anything"
    time.sleep(rng.uniform(0.05, 0.6))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t.join()
    for line in lines:
        if line.endswith("\n"):  # a line cut by the kill was never fully acknowledged
            i, hexdata = line.split()
            acked[int(i)] = bytes.fromhex(hexdata)
    return acked


# Batches, and one entry per commit: each commit then rewrites the open tile in the head, a kill mid-commit included.
@pytest.mark.parametrize("max_batch", [40, 1])
def test_sigkill_loses_no_acknowledged_entry(tmp_path: Path, max_batch: int) -> None:
    path = tmp_path / "crash.db"
    rng = random.Random(2024)
    acked: dict[int, bytes] = {}
    for run in range(5):
        got = _run_and_kill(path, run, rng, max_batch)
        assert got, "no acknowledgement before the kill"
        assert not set(got) & set(acked), "an index was handed out twice"
        acked.update(got)
        with SqliteLogStore(path) as s:
            size = s.size
            top = max(acked)
            # Everything acknowledged is there; at most one batch committed after the last acknowledgement.
            assert top < size <= top + 1 + max_batch
            stored = s.entries(0, size)
            assert all(stored[i] == d for i, d in acked.items())
            # Entries, tiles and head agree: the log re-derives in full.
            rep = check(s, workers=1)
            assert rep.size == size
