"""A real second process that holds a node store open for writing: for tests of busy stores."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOLDER = textwrap.dedent("""
    import select, sys
    from medspace.connect import complete
    from medspace.store import Store
    path, command, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with Store(path, command=command, create=False) as st, st.batch("held") as b:
        b.add("patient", complete("patient", {"id": "held-1", "family_name": "Held"}, "test"))
        print("ready", flush=True)
        select.select([sys.stdin], [], [], hold)
""")


@contextmanager
def held(path: Path, command: str = "medspace ingest", hold: float = 60.0) -> Iterator[subprocess.Popen[str]]:
    """A real second process holding the store at `path` open for writing until the block ends (or `hold` s)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), command, str(hold)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
        yield proc
    finally:
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.write("\n")
            proc.stdin.close()
        proc.wait(timeout=60)
