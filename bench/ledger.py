"""Audit log figures: appends, proofs at 10 million entries, full re-verification. Prints one table.

    python bench/ledger.py [--entries 10000000] [--check-entries 1000000] [--workdir /tmp/medspace-bench]
                           [--pg-url postgresql://postgres@127.0.0.1:5432/test]
                           [--sections appends,proofs,check,http] [--http-entries 200000]

Figures (issue 5): SQLite appends >= 50,000 entries/s in batches of 1,000 and >= 3,000/s with one durable commit
per entry; PostgreSQL both modes measured; inclusion and consistency proofs in a 10M-entry log under 1 ms each to
produce and to verify; full re-verification of a 1M-entry log under 5 s. Issue 11: authenticated HTTP appends in
batches of 1,000 on loopback >= 20,000 entries/s.

- appends: real encoded AuditEvents (~400 bytes), SQLite WAL synchronous=FULL (every commit fsynced) and PostgreSQL
  synchronous_commit=on, each into a fresh log. One commit per entry is bound by the disk's fsync latency: the
  reference row times bare one-row SQLite transactions with the same settings, i.e. what the disk allows.
- proofs: a log of ``--entries`` compact synthetic entries (proof cost does not depend on entry size), built once
  in batches of 10,000 and reused from the workdir; random indices and sizes, median and p99 over many samples.
- check: a log of ``--check-entries`` real encoded AuditEvents, built once and reused; ``check`` in one process and
  with worker processes (wall time, and CPU time of all processes).
- http: ``medspace ledger serve`` as its own process (write token from MEDSPACE_LEDGER_TOKEN, writer ``hub`` that
  may claim the events' actors, access log on and discarded) over a fresh SQLite log; one httpx client with
  keep-alive POSTs batches of 1,000 real AuditEvents as JSON (``Authorization: Bearer``), one request at a time;
  every event is parsed, validated, claim-checked, appended durably and the write recorded before the answer.

One function per section, each returning rows ``{"figure", "n", "value", "unit", "target", "ok"}``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from rich.console import Console
from rich.table import Table

from medspace.ledger import merkle
from medspace.ledger.api import TOKEN_ENV, new_token
from medspace.ledger.check import check
from medspace.ledger.entry import Action, AuditEvent, Purpose, Role
from medspace.ledger.log import AuditLog, init_log
from medspace.ledger.postgres_store import PostgresLogStore
from medspace.ledger.sqlite_store import SqliteLogStore

console = Console(width=140)
Row = dict[str, object]


def audit_events(n: int, seed: int = 1) -> list[bytes]:
    """n realistic encoded audit events (a task's dispatch, computation and release across hospitals)."""
    rng = random.Random(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    actions = [Action.TASK_DISPATCH, Action.NODE_COMPUTE, Action.RESULT_RELEASE, Action.LOOKUP_EMERGENCY]
    out = []
    for i in range(n):
        action = actions[i % len(actions)]
        h = [hashlib.sha256(f"{seed}-{i}-{k}".encode()).hexdigest() for k in range(3)]
        out.append(
            AuditEvent(
                actor=f"node:hosp-{rng.randrange(20)}"
                if action is Action.NODE_COMPUTE
                else f"user:u{rng.randrange(500)}",
                role=Role.NODE if action is Action.NODE_COMPUTE else Role.RESEARCHER,
                action=action,
                purpose=Purpose.ETREAT if action is Action.LOOKUP_EMERGENCY else Purpose.HRESCH,
                resource=f"task:T-{i // 4}",
                time=t0 + timedelta(milliseconds=37 * i),
                contract_id=f"C-{rng.randrange(1000)}",
                input_hashes=(h[0],),
                output_hashes=(h[1],),
                subject_commitment=h[2] if action is Action.LOOKUP_EMERGENCY else None,
            ).encode()
        )
    return out


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def _fresh_sqlite(path: Path) -> SqliteLogStore:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return SqliteLogStore(path)


def _time_appends(append: Callable[[list[bytes]], list[int]], pool: list[bytes], n: int, batch: int) -> float:
    t0 = time.perf_counter()
    done = 0
    while done < n:
        start = done % len(pool)
        chunk = pool[start : start + batch]
        append(chunk)
        done += len(chunk)
    return _rate(done, time.perf_counter() - t0)


def bench_appends(
    workdir: Path, pg_url: str | None, batched: int = 200_000, single: int = 10_000, pg_single: int = 1_000
) -> list[Row]:
    """Append throughput: batches of 1,000 and one durable commit per entry, on SQLite and PostgreSQL."""
    # ``single`` is a few seconds of commits, for the SQLite row and the floor alike, so that fsync jitter and the
    # WAL checkpoints average out.
    pool = audit_events(10_000)
    rows: list[Row] = []
    s = _fresh_sqlite(workdir / "appends.db")
    r = _time_appends(s.append, pool, batched, 1000)
    rows.append(_row("append, SQLite, batches of 1,000", batched, r, "entries/s", ">= 50,000", r >= 50_000))
    r = _time_appends(s.append, pool, single, 1)
    rows.append(_row("append, SQLite, one durable commit per entry", single, r, "entries/s", ">= 3,000", r >= 3_000))
    s.close()
    r = _fsync_floor(workdir / "floor.db", pool, single)
    rows.append(_row("  reference: bare one-row SQLite transactions, same settings", single, r, "commits/s", "", None))
    if pg_url:
        schema = f"ledger_bench_{secrets.token_hex(4)}"
        p = PostgresLogStore(pg_url, schema=schema)
        try:
            r = _time_appends(p.append, pool, batched // 2, 1000)
            rows.append(_row("append, PostgreSQL, batches of 1,000", batched // 2, r, "entries/s", "measured", None))
            r = _time_appends(p.append, pool, pg_single, 1)
            rows.append(
                _row("append, PostgreSQL, one durable commit per entry", pg_single, r, "entries/s", "measured", None)
            )
        finally:
            p.close()
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return rows


def _fsync_floor(path: Path, pool: list[bytes], n: int) -> float:
    """What the disk allows: one INSERT per WAL transaction with synchronous=FULL, nothing else."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (i INTEGER PRIMARY KEY, d BLOB)")
    t0 = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?)", (i, pool[i % len(pool)]))
        conn.execute("COMMIT")
    rate = _rate(n, time.perf_counter() - t0)
    conn.close()
    return rate


def _build(
    path: Path, entries: int, make: Callable[[int, int], list[bytes]], batch: int
) -> tuple[SqliteLogStore, float]:
    """Open the log at ``path``, growing it to ``entries`` if it is shorter; (store, seconds spent building)."""
    s = SqliteLogStore(path)
    t0 = time.perf_counter()
    while s.size < entries:
        start = s.size
        s.append(make(start, min(batch, entries - start)))
        if start // 1_000_000 != s.size // 1_000_000:
            console.print(f"  building {path.name}: {s.size:,} / {entries:,}", highlight=False)
    return s, time.perf_counter() - t0


def _compact(start: int, n: int) -> list[bytes]:
    return [b"bench-entry-%012d-" % i + b"." * 32 for i in range(start, start + n)]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    qs = statistics.quantiles(samples, n=100)
    return statistics.median(samples), qs[98]


def bench_proofs(workdir: Path, entries: int, samples: int = 2000) -> list[Row]:
    """Inclusion and consistency proofs in a log of ``entries``: produce from the store, verify with merkle."""
    path = workdir / f"proofs-{entries}.db"
    s, built = _build(path, entries, _compact, 10_000)
    size = entries
    rng = random.Random(5)
    rows: list[Row] = []
    if built > 1:
        rows.append(
            _row(
                f"build the {entries:,}-entry log (batches of 10,000)",
                entries,
                _rate(entries, built),
                "entries/s",
                "",
                None,
            )
        )
    t0 = time.perf_counter()
    top = s.root(size)
    rows.append(_row("root of the whole log from stored tiles", 1, (time.perf_counter() - t0) * 1e6, "µs", "", None))
    produce, verify, cpu = [], [], []
    for _ in range(samples):
        i = rng.randrange(size)
        leaf = merkle.leaf_hash(s.entry(i))
        c0, t0 = time.process_time(), time.perf_counter()
        proof = s.inclusion_proof(i, size)
        c1, t1 = time.process_time(), time.perf_counter()
        merkle.verify_inclusion(leaf, i, size, proof, top)
        t2 = time.perf_counter()
        produce.append((t1 - t0) * 1e6)
        cpu.append((c1 - c0) * 1e6)
        verify.append((t2 - t1) * 1e6)
    rows += _latency_rows(f"inclusion proof at {size:,}", samples, produce, verify, cpu)
    produce, verify, cpu = [], [], []
    for _ in range(samples):
        m = rng.randrange(1, size)
        old = s.root(m)
        c0, t0 = time.process_time(), time.perf_counter()
        proof = s.consistency_proof(m, size)
        c1, t1 = time.process_time(), time.perf_counter()
        merkle.verify_consistency(m, size, old, top, proof)
        t2 = time.perf_counter()
        produce.append((t1 - t0) * 1e6)
        cpu.append((c1 - c0) * 1e6)
        verify.append((t2 - t1) * 1e6)
    rows += _latency_rows(f"consistency proof to {size:,}", samples, produce, verify, cpu)
    s.close()
    return rows


def _latency_rows(what: str, n: int, produce: list[float], verify: list[float], cpu: list[float]) -> list[Row]:
    """Median latency rows; production also shows its CPU time (reads from the page cache, no waiting)."""
    out = []
    for verb, xs in (("produce", produce), ("verify", verify)):
        med, p99 = _percentiles(xs)
        extra = f"; CPU median {statistics.median(cpu):,.0f} µs" if verb == "produce" else ""
        out.append(_row(f"{what}: {verb} (median; p99 {p99:,.0f} µs{extra})", n, med, "µs", "< 1,000", med < 1000))
    return out


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_check(workdir: Path, entries: int) -> list[Row]:
    """Full re-verification of a log of real audit events, in one process and with worker processes."""
    pool = audit_events(10_000, seed=2)

    def make(start: int, n: int) -> list[bytes]:
        return [pool[(start + k) % len(pool)] for k in range(n)]

    s, _ = _build(workdir / f"check-{entries}.db", entries, make, 1000)
    rows: list[Row] = []
    for workers in (1, os.cpu_count() or 1):
        c0, t0 = _cpu(), time.perf_counter()
        rep = check(s, workers=workers)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        assert rep.size == entries
        rows.append(
            _row(
                f"full re-verification, {workers} process(es) (CPU {cpu:.2f} s)",
                entries,
                wall,
                "s wall",
                "< 5",
                wall < 5,
            )
        )
    s.close()
    return rows


def bench_http(workdir: Path, entries: int, batch: int = 1000) -> list[Row]:
    """Authenticated appends over HTTP on loopback: a `medspace ledger serve` process, batches of ``batch``."""
    logdir = workdir / "http-log"
    shutil.rmtree(logdir, ignore_errors=True)
    init_log(logdir, "bench.medspace.test/audit")
    AuditLog(logdir, create=True).close()
    pool = audit_events(10_000, seed=3)
    # The canonical encoding of an event is its JSON form (``v`` included): batches are sent as they would be.
    bodies = [b"[" + b",".join(pool[k : k + batch]) + b"]" for k in range(0, len(pool), batch)]
    token = new_token()
    medspace = shutil.which("medspace", path=str(Path(sys.executable).parent)) or "medspace"
    proc = subprocess.Popen(
        [medspace, "ledger", "serve", "--dir", str(logdir), "--port", "0", "--writer", "hub",
         "--actor", "user:*", "--actor", "node:*"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, TOKEN_ENV: token},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the server did not start: {line!r}")
        url = line.split("listening on", 1)[1].strip()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            def post(k: int) -> None:
                r = http.post("/entries", content=bodies[k % len(bodies)])
                if r.status_code != 200:
                    raise RuntimeError(f"append refused: {r.status_code} {r.text[:200]}")

            for k in range(3):  # warm-up: connection, imports, first pages
                post(k)
            rounds = max(1, entries // batch)
            t0 = time.perf_counter()
            for k in range(rounds):
                post(k)
            rate = _rate(rounds * batch, time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with AuditLog(logdir, readonly=True) as log:
        assert log.store.size == (rounds + 3) * batch and log.writer_of(0) == "hub"
    return [_row(f"append over HTTP, authenticated, batches of {batch:,} (loopback, server process)",
                 rounds * batch, rate, "entries/s", ">= 20,000", rate >= 20_000)]


def _row(figure: str, n: int, value: float, unit: str, target: str, ok: bool | None) -> Row:
    return {"figure": figure, "n": n, "value": value, "unit": unit, "target": target, "ok": ok}


def print_table(rows: list[Row], title: str) -> None:
    """The one figures table."""
    table = Table(title=title)
    for col in ("figure", "n", "value", "target", "ok"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for r in rows:
        v = float(r["value"])  # type: ignore[arg-type]
        value = f"{v:,.0f}" if v >= 100 else f"{v:,.2f}"
        ok = {True: "yes", False: "NO", None: ""}[r["ok"]]  # type: ignore[index]
        table.add_row(str(r["figure"]), f"{r['n']:,}", f"{value} {r['unit']}", str(r["target"]), ok)
    console.print(table)


def main() -> None:
    """Run the sections and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10_000_000, help="size of the proof log")
    parser.add_argument("--check-entries", type=int, default=1_000_000, help="size of the re-verified log")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medspace-bench"))
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test", help="'' to skip")
    parser.add_argument("--sections", default="appends,proofs,check,http")
    parser.add_argument("--http-entries", type=int, default=200_000, help="entries appended over HTTP")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    sections = set(args.sections.split(","))
    rows: list[Row] = []
    if "appends" in sections:
        rows += bench_appends(args.workdir, args.pg_url or None)
    if "proofs" in sections:
        rows += bench_proofs(args.workdir, args.entries)
    if "check" in sections:
        rows += bench_check(args.workdir, args.check_entries)
    if "http" in sections:
        rows += bench_http(args.workdir, args.http_entries)
    print_table(rows, f"audit log (RFC 9162, SQLite WAL synchronous=FULL, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
