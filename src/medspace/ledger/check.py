"""Full re-verification of a stored log: re-derive every leaf and node from the entries and compare.

What :func:`check` proves about a store of recorded size n:
- entries 0..n-1 are all present and readable, in order, and nothing lies beyond n (rows or nodes);
- every stored leaf hash is SHA-256(0x00 || entry) and every stored perfect node hashes its two children, so the
  root of every size (and every proof the store serves) is the one the entries determine;
- optionally, the roots of given checkpoints ``(size, root)`` (e.g. from signed checkpoints) match.

The first failure raises :class:`TamperError` whose message starts with ``entry <k>:``, k being the first index
whose entry or covering node does not re-derive (for a node it is the first entry it covers). An edit of entries and
hashes made consistently all the way up is found only against a checkpoint: that is what checkpoints are for.

The work is chunked: 2**16 entries at a time are read in one query, hashed in tight hashlib loops and compared with
the stored level-by-level hashes as single byte strings; nodes above the chunk level are carried in a compact range.
Chunks are independent, so large logs are checked by several processes, each with its own read-only connection.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from medspace.ledger import merkle
from medspace.ledger.errors import LedgerError, StorageError, TamperError
from medspace.ledger.store import LogStore

CHUNK_LEVEL = 16

T = TypeVar("T", bytes, list[tuple[int, bytes]])
_H = merkle.HASH_SIZE


@dataclass(frozen=True)
class CheckReport:
    """What a full check covered."""

    size: int
    root: bytes
    entries: int
    nodes: int
    checkpoints: int
    seconds: float


def _read(scan: Callable[[int, int], T], start: int, end: int, empty: T) -> T:
    """A range read; if the storage fails, what reads cleanly before the failure (the callers name the first bad)."""
    try:
        return scan(start, end)
    except StorageError:
        pass
    # The longest prefix [start, lo) that reads without an error; it may still hold junk (a torn page), which the
    # callers' comparison finds.
    lo, hi = start, end
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            scan(start, mid)
            lo = mid
        except StorageError:
            hi = mid
    try:
        return scan(start, lo)
    except StorageError:
        return empty


def _first_gap(rows: list[tuple[int, bytes]], start: int) -> int:
    for pos, (i, _) in enumerate(rows):
        if i != start + pos:
            return start + pos
    return start + len(rows)


def _first_diff(a: bytes, b: bytes) -> int:
    """Index of the first differing 32-byte hash of two equal-length concatenations."""
    for pos in range(0, len(a), _H):
        if a[pos : pos + _H] != b[pos : pos + _H]:
            return pos // _H
    raise AssertionError("no difference")


def _compare_level(store: LogStore, level: int, lo: int, want: list[bytes]) -> None:
    """Stored nodes (level, lo..) against the recomputed ``want``."""
    stored = _read(lambda a, b: store.scan_nodes(level, a, b), lo, lo + len(want), b"")
    joined = b"".join(want)
    if len(stored) != len(joined):
        gap = lo + len(stored) // _H
        if level == 0:
            raise TamperError(f"entry {gap}: its leaf hash is missing or unreadable")
        raise TamperError(f"entry {gap << level}: node ({level}, {gap}) is missing or unreadable")
    if stored != joined:
        j = lo + _first_diff(stored, joined)
        if level == 0:
            raise TamperError(f"entry {j}: the entry does not hash to its stored leaf hash")
        first, end = j << level, (j + 1) << level
        raise TamperError(f"entry {first}: node ({level}, {j}) does not re-derive from entries [{first}, {end})")


def verify_checkpoints(store: LogStore, checkpoints: Iterable[tuple[int, bytes]]) -> int:
    """Compare the store's root at each checkpoint size with the checkpoint's root; returns how many were checked.

    The hook for signed checkpoints: pass the (size, root_hash) of every verified checkpoint. Alone it trusts the
    stored nodes (O(log n) read from storage each, never from a cache); within :func:`check` they have been
    re-derived first.
    """
    size = store.size
    count = 0
    for cp_size, cp_root in sorted(checkpoints):
        if cp_size > size:
            raise TamperError(f"entry {size}: the log is shorter than a checkpoint of size {cp_size} (truncated)")
        if not hmac.compare_digest(_stored_root(store, cp_size), bytes(cp_root)):
            raise TamperError(f"entry {0}: the first {cp_size} entries do not match the checkpoint of that size")
        count += 1
    return count


def _stored_root(store: LogStore, size: int) -> bytes:
    """Root of ``size`` from the tiles as stored now (a store's own root() may answer from its cache)."""
    if size == 0:
        return merkle.EMPTY_ROOT
    hashes = []
    for level, idx in merkle.perfect_cover(0, size):
        h = _read(partial(store.scan_nodes, level), idx, idx + 1, b"")
        if len(h) != _H:
            raise TamperError(f"entry {idx << level}: node ({level}, {idx}) is missing or unreadable")
        hashes.append(h)
    return merkle.fold(hashes)


def _check_chunk(store: LogStore, cstart: int, cend: int, chunk_level: int) -> tuple[bytes, int]:
    """Re-derive entries [cstart, cend) and the nodes inside them; returns the chunk's top hash and nodes checked."""
    sha = hashlib.sha256
    rows = _read(store.scan_entries, cstart, cend, [])
    # Compared in full, not by count and ends: a torn page can make the engine return rows out of order.
    if [r[0] for r in rows] != list(range(cstart, cend)):
        raise TamperError(f"entry {_first_gap(rows, cstart)}: the entry is missing, moved or unreadable")
    try:
        cur = [sha(b"\x00" + d).digest() for _, d in rows]
    except TypeError:
        bad = next(i for i, d in rows if not isinstance(d, bytes))
        raise TamperError(f"entry {bad}: the entry is not a byte string") from None
    del rows
    level, nodes = 0, 0
    while True:
        _compare_level(store, level, cstart >> level, cur)
        nodes += len(cur)
        if level == chunk_level or len(cur) < 2:
            break
        even = len(cur) & ~1  # a trailing odd node is not perfect at the next level
        cur = [sha(b"\x01" + a + b).digest() for a, b in zip(cur[0:even:2], cur[1:even:2], strict=True)]
        level += 1
    return cur[0], nodes


def _chunk_results(store: LogStore, size: int, chunk_level: int, workers: int) -> list[tuple[int, int, bytes, int]]:
    """(start, end, top hash, nodes) of every chunk in order; split over worker processes when asked."""
    chunk = 1 << chunk_level
    ranges = [(a, min(a + chunk, size)) for a in range(0, size, chunk)]
    if workers <= 1 or len(ranges) < 2:
        return [(a, b, *_check_chunk(store, a, b, chunk_level)) for a, b in ranges]
    # Fresh interpreters running this module (not a fork, not a multiprocessing pool that re-imports the caller's
    # __main__), each opening the log read-only and checking a contiguous run of chunks.
    workers = min(workers, len(ranges))
    groups = [ranges[len(ranges) * k // workers : len(ranges) * (k + 1) // workers] for k in range(workers)]
    spec = store.spec(readonly=True)
    procs = []
    for group in groups:
        proc = subprocess.Popen(
            [sys.executable, "-m", "medspace.ledger.check"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps((spec, group, chunk_level)))
        proc.stdin.close()
        procs.append(proc)
    outcomes: list[tuple[str, Any]] = []
    for proc in procs:
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.wait()
        outcomes.append(pickle.loads(out) if out else ("error", f"worker exited with status {proc.returncode}"))
    results: list[tuple[int, int, bytes, int]] = []
    # The first failure in index order is the one to report.
    for group, (status, payload) in zip(groups, outcomes, strict=True):
        if status == "tamper":
            raise TamperError(payload)
        if status == "error":
            # A worker that could not run (or open the log) is no finding: redo its chunks here.
            payload = [(a, b, *_check_chunk(store, a, b, chunk_level)) for a, b in group]
        results.extend(payload)
    return results


def _worker_main() -> None:
    """Worker process: read (spec, chunk ranges, chunk level) on stdin, write the outcome on stdout."""
    from medspace.ledger.store import open_store

    spec, ranges, chunk_level = pickle.load(sys.stdin.buffer)
    outcome: tuple[str, Any]
    try:
        with open_store(spec[0], **spec[1]) as store:
            outcome = ("ok", [(a, b, *_check_chunk(store, a, b, chunk_level)) for a, b in ranges])
    except TamperError as exc:
        outcome = ("tamper", str(exc))
    except LedgerError as exc:
        outcome = ("error", str(exc))
    sys.stdout.buffer.write(pickle.dumps(outcome))
    sys.stdout.buffer.flush()


def check(
    store: LogStore,
    checkpoints: Iterable[tuple[int, bytes]] = (),
    *,
    workers: int | None = None,
    chunk_level: int = CHUNK_LEVEL,
) -> CheckReport:
    """Re-derive the whole log from its entries and compare with every stored hash (and given checkpoints).

    ``workers``: processes re-deriving chunks in parallel (default: the CPU count for logs of a few chunks or more,
    else 1, in-process).
    """
    t0 = time.perf_counter()
    try:
        size = store.size
    except StorageError:
        raise TamperError("entry 0: the head of the log is unreadable") from None
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if size >> chunk_level >= 4 else 1
    upper: list[bytes] = []
    nodes = 0
    for cstart, cend, top, count in _chunk_results(store, size, chunk_level, workers):
        nodes += count
        if cend - cstart == 1 << chunk_level:
            completed, upper = merkle.extend(upper, cstart >> chunk_level, [top])
            for rel, j, h in completed:
                _compare_level(store, chunk_level + rel, j, [h])
            nodes += len(completed)
    _check_counts(store, size)
    root = _stored_root(store, size)
    n_cp = verify_checkpoints(store, checkpoints)
    return CheckReport(size, root, size, nodes, n_cp, time.perf_counter() - t0)


def _check_counts(store: LogStore, size: int) -> None:
    """Nothing beyond the recorded size: extra rows mean the head was moved back or rows were added."""
    try:
        st = store.stats()
    except StorageError:
        raise TamperError(f"entry {size}: the tables cannot be counted (the file is corrupt)") from None
    if st.ragged_tiles:
        raise TamperError(f"entry {size}: a tile holds a partial hash")
    # The scan showed [0, size) complete; with unique indices, the extremes tell whether anything lies outside.
    if (st.entry_min, st.entry_max) != ((0, size - 1) if size else (None, None)):
        raise TamperError(f"entry {size}: entries are stored beyond the recorded size")
    for level, (count, top) in sorted(st.nodes.items()):
        if count != size >> level or top >= size >> level:
            raise TamperError(f"entry {size}: nodes of level {level} are stored beyond the recorded size")


if __name__ == "__main__":
    _worker_main()
