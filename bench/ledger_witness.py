"""Witness cosigning throughput: tlog-witness add-checkpoint with signature and proof checks and a durable state.

    python bench/ledger_witness.py [--checkpoints 3000] [--logs 16] [--batch 64]

Every checkpoint is a real extension of a real RFC 9162 tree (1-16 new leaves each), signed by its log beforehand
(not timed). Each accepted checkpoint is: parse, verify the log's Ed25519 signature, check the old size, verify
the consistency proof, compare-and-swap the stored (size, root) in SQLite (WAL, synchronous=FULL: fsynced before
the cosignature is released), Ed25519 cosignature/v1.

Rows:
- in-process, one commit each: ``Witness.add_checkpoint`` called one checkpoint at a time (one fsync each).
- in-process, group commit: ``Witness.add_checkpoints`` over batches of ``--batch`` consecutive checkpoints (one
  transaction and one fsync per batch; each still checked against the state the previous one left).
- HTTP loopback: a witness server process (uvicorn), ``--logs`` client threads (httpx, keep-alive) each
  submitting its own log's chain; the server group-commits whatever arrives together. Client and server share
  the machine's cores. The server runs with ``--no-access-log``: one line per request would fill the terminal,
  and the row measures the protocol (with the access log on, the rate is some 10-20 % lower).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from medspace.ledger import merkle
from medspace.ledger.checkpoint import Checkpoint, CosignatureSigner, NoteSigner, generate_key_files
from medspace.ledger.witness import AddCheckpointRequest, Witness, WitnessRefusal

console = Console(width=130)
TARGET = 1000.0


class _Tree:
    """Perfect-subtree hashes of a growing log, enough to answer merkle's NodeSource quickly."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.levels: list[list[bytes]] = [[]]

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            if len(self.levels) == level + 1:
                self.levels.append([])
            pair = self.levels[level][-2:]
            self.levels[level + 1].append(merkle.node_hash(pair[0], pair[1]))
            level += 1

    def node(self, level: int, index: int, size: int) -> bytes:
        begin, end = merkle.node_range(level, index, size)
        return merkle.fold([self.levels[lv][i] for lv, i in merkle.perfect_cover(begin, end)])

    def root(self, size: int) -> bytes:
        return merkle.EMPTY_ROOT if size == 0 else self.node(size.bit_length(), 0, size)


def make_chain(origin: str, count: int, seed: int) -> tuple[NoteSigner, list[AddCheckpointRequest]]:
    """``count`` consecutive signed checkpoints of one log with their consistency proofs."""
    signer = NoteSigner.generate(origin)
    tree = _Tree(origin)
    out = []
    size = 0
    for i in range(count):
        new = size + 1 + (seed * 7 + i * 13) % 16
        while len(tree.levels[0]) < new:
            tree.append(merkle.leaf_hash(f"{origin}/{len(tree.levels[0])}".encode()))
        proof = merkle.consistency_proof(size, new, tree.node) if size else []
        note = Checkpoint(origin, new, tree.root(new)).sign([signer])
        out.append(AddCheckpointRequest(size, tuple(proof), note))
        size = new
    return signer, out


def _witness(path: Path, signers: list[NoteSigner]) -> Witness:
    w = Witness(path, [CosignatureSigner.generate("bench.example/witness")])
    for s in signers:
        w.add_log(s.verifier())
    return w


def _check(results: list[list[str] | WitnessRefusal]) -> None:
    bad = [r for r in results if isinstance(r, WitnessRefusal)]
    if bad:
        raise SystemExit(f"witness refused {len(bad)} checkpoints, first: {bad[0]}")


def bench_sequential(tmp: Path, chain: list[AddCheckpointRequest], signer: NoteSigner) -> float:
    """Checkpoints/s with one add_checkpoint (one transaction, one fsync) per checkpoint."""
    w = _witness(tmp / "seq.db", [signer])
    t0 = time.perf_counter()
    for req in chain:
        w.add_checkpoint(req.old_size, req.proof, req.note)
    dt = time.perf_counter() - t0
    w.close()
    return len(chain) / dt


def bench_group(tmp: Path, chain: list[AddCheckpointRequest], signer: NoteSigner, batch: int) -> float:
    """Checkpoints/s with add_checkpoints over consecutive batches (one fsync per batch)."""
    w = _witness(tmp / "group.db", [signer])
    t0 = time.perf_counter()
    for i in range(0, len(chain), batch):
        _check(w.add_checkpoints(chain[i: i + batch]))
    dt = time.perf_counter() - t0
    w.close()
    return len(chain) / dt


def bench_http(tmp: Path, chains: list[tuple[NoteSigner, list[AddCheckpointRequest]]]) -> float:
    """Checkpoints/s over HTTP on loopback: a witness server process, one client thread (keep-alive) per log."""
    generate_key_files("bench.example/witness", tmp / "w.key", tmp / "w.pub", cosigner=True)
    args = [sys.executable, "-m", "medspace.ledger.witness", "--state", str(tmp / "http.db"), "--key",
            str(tmp / "w.key"), "--port", "0", "--no-access-log"]
    for signer, _ in chains:
        args += ["--log-key", signer.vkey()]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    errors: list[str] = []
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1] + "/add-checkpoint"
        bodies = [[req.to_body() for req in chain] for _, chain in chains]
        clients = [httpx.Client(timeout=30) for _ in bodies]
        for http in clients:
            http.post(url, content=b"warm-up")  # opens the keep-alive connection (answered 400)

        def client(http: httpx.Client, chain: list[bytes]) -> None:
            for body in chain:
                resp = http.post(url, content=body)
                if resp.status_code != 200:
                    errors.append(f"{resp.status_code}: {resp.text}")
                    return

        threads = [threading.Thread(target=client, args=(h, b)) for h, b in zip(clients, bodies, strict=True)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dt = time.perf_counter() - t0
        for http in clients:
            http.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if errors:
        raise SystemExit(f"witness refused a checkpoint: {errors[0]}")
    return sum(len(b) for b in bodies) / dt


def bench_witness(checkpoints: int = 3000, logs: int = 16, batch: int = 64) -> list[dict[str, object]]:
    """Rows for the figures table: cosigned checkpoints per second, in process and over HTTP."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        signer, chain = make_chain("bench.example/log", checkpoints, 1)
        per_log = max(1, checkpoints // logs)
        chains = [make_chain(f"bench.example/log{i}", per_log, i) for i in range(logs)]
        seq = bench_sequential(tmp, chain[: min(len(chain), 500)], signer)
        group = bench_group(tmp, chain, signer, batch)
        http = bench_http(tmp, chains)
    return [
        {"figure": "witness add-checkpoint, in-process, one fsync per checkpoint", "n": min(checkpoints, 500),
         "value": seq, "unit": "checkpoints/s", "target": ""},
        {"figure": f"witness add-checkpoint, in-process, group commit (batch {batch})", "n": checkpoints,
         "value": group, "unit": "checkpoints/s", "target": f">= {TARGET:,.0f}"},
        {"figure": f"witness add-checkpoint, HTTP loopback, {logs} concurrent logs", "n": per_log * logs,
         "value": http, "unit": "checkpoints/s", "target": ""},
    ]


def main() -> None:
    """Print the witness figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=int, default=3000)
    parser.add_argument("--logs", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    rows = bench_witness(args.checkpoints, args.logs, args.batch)
    table = Table(title=f"witness cosigning (Ed25519, SQLite WAL synchronous=FULL, {os.cpu_count()} cores)")
    for col in ("figure", "checkpoints", "rate", "target"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for r in rows:
        table.add_row(str(r["figure"]), f"{r['n']:,}", f"{r['value']:,.0f} {r['unit']}", str(r["target"]))
    console.print(table)


if __name__ == "__main__":
    main()
