"""The audit log's storage interface: one sequencer, batched durable appends, O(log n) roots and proofs.

Layout shared by the backends (table names carry a prefix, ``ledger_`` by default):

- ``entries(idx, data)``: the entries, ``idx`` from 0 without gaps; ``data`` is what the leaf hashes.
- ``tiles(level, tile, hashes)``: the *perfect* subtree hashes, level 0 being the leaf hashes, packed
  :data:`TILE_WIDTH` to a row: row (level, t) is the concatenation of the 32-byte hashes of nodes
  ``(level, t * 64) .. (level, t * 64 + k - 1)``, k <= 64 (only the last tile of a level is partial and it is rewritten
  as the level grows). Node (level, idx) covers entries ``[idx << level, (idx + 1) << level)``; a log of n entries
  has ``n >> level`` nodes at each level, about 2n hashes (64 bytes an entry) in ~n/32 rows. Packing keeps appends to a
  few row writes per batch and lets a full check read all hashes in a few thousand rows; leaf hashes live apart from
  the data so that moving entry rows shows as a leaf mismatch at the first moved index. (SQLite keys the row by
  ``id = level << 40 | tile`` instead, one b-tree lookup per tile.)
- ``head(id = 0, size)``: the committed size; the row the sequencer locks.

Where the *open tile* lives depends on the store's format (:attr:`LogStore._open_in_head`). The open tile is the last
leaf tile while it is partial: the leaf hashes of entries ``[size - size % 64, size)``.

- In the tiles table (PostgreSQL, and SQLite logs of format 2): every perfect node is a stored row, the open tile and
  each level's partial tile are rewritten as they grow.
- In the head row (SQLite format 3, ``head(id = 0, size, leaves)``): the tiles table holds the leaf tiles that are
  complete and, at the levels above, the perfect nodes of the tree of ``size - size % 64`` entries. The nodes of
  levels 1-5 inside the open tile are hashed from its leaves when read (at most 63 hashes), so the readers serve the
  same nodes as with every node stored. A one-entry append then writes two pages (the entry's and the head's) instead
  of four or five (entry, open tile, head, the partial tiles of the levels it completes): with a durable commit per
  entry the fsync, which grows with the pages written, is most of the cost. Levels 1 and up catch up when a leaf tile
  completes, every 64 entries.

An append computes the leaf hashes and the nodes it completes from the frontier (the perfect subtrees of the current
size, cached and re-read when another writer has moved the head) and writes entries, tiles and the new head in one
transaction, acknowledged only after the commit is durable. The root of any size and every proof then read O(log n)
stored nodes (:mod:`medspace.ledger.merkle` explains the node addressing).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from medspace.ledger import merkle
from medspace.ledger.errors import ProofError, StorageError
from medspace.ledger.merkle import NodeId

DEFAULT_PREFIX = "ledger_"
TILE_WIDTH = 64
_H = merkle.HASH_SIZE
# Perfect nodes never change once written, so their hashes can be cached for good: the levels from here up are
# few (n / 256 nodes) and on every proof's path.
_CACHE_LEVEL = 8
_CACHE_MAX = 1 << 16
# Levels whose nodes can lie inside one leaf tile (0-5): in an open tile held by the head, those above 0 are derived.
TILE_LEVELS = TILE_WIDTH.bit_length() - 1


@dataclass(frozen=True)
class StoreStats:
    """Row counts that a consistent log determines from its size: entries and nodes per level."""

    size: int
    entry_min: int | None
    entry_max: int | None
    nodes: dict[int, tuple[int, int]] = field(default_factory=dict)  # level -> (node count, largest node idx)
    ragged_tiles: int = 0  # tiles whose length is not a whole number of hashes


def open_tile_nodes(leaves: bytes, level: int) -> bytes:
    """Concatenated hashes of the perfect nodes of ``level`` made of the leaf hashes ``leaves`` (tile-aligned).

    For the open tile held in the head: its nodes of levels 1 to TILE_LEVELS - 1 are not stored (see the module
    docstring). A trailing partial hash is ignored; the row counts (:meth:`LogStore.stats`) report it.
    """
    nodes = [leaves[i : i + _H] for i in range(0, len(leaves) - len(leaves) % _H, _H)]
    for _ in range(level):
        nodes = [merkle.node_hash(a, b) for a, b in zip(nodes[0::2], nodes[1::2], strict=False)]
    return b"".join(nodes)


class LogStore(ABC):
    """An append-only RFC 9162 log of byte entries; one writer at a time assigns indices (the sequencer)."""

    url: str
    # Whether the open leaf tile lives in the head row (see the module docstring); set by the backend from the format.
    _open_in_head: bool = False

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._frontier: tuple[int, list[bytes]] | None = None
        # Each level's partial tile as last written, valid while the frontier is (saves re-reading them).
        self._tails: dict[tuple[int, int], bytes] = {}
        # The open tile's leaf hashes as last written to the head (stores with _open_in_head), valid likewise.
        self._open_tile: bytes | None = None
        self._node_cache: dict[NodeId, bytes] = {}

    # --- backend primitives -----------------------------------------------------------------------------------

    @abstractmethod
    def _read_size(self) -> int:
        """Committed size from the head row."""

    @abstractmethod
    def _sequenced(self) -> AbstractContextManager[int]:
        """Transaction holding the sequencer lock; yields the committed size, commits durably on a clean exit."""

    @abstractmethod
    def _insert(self, start: int, datas: Sequence[bytes], tiles: Sequence[tuple[int, int, bytes]]) -> None:
        """Write entries ``start..``, the given (level, tile, hashes) rows (replacing) and the new head."""

    def _insert_open(
        self, start: int, datas: Sequence[bytes], tiles: Sequence[tuple[int, int, bytes]], open_tile: bytes
    ) -> None:
        """As :meth:`_insert`, the head also taking the open tile's leaf hashes (stores with ``_open_in_head``)."""
        # Only reached for a store whose format keeps the open tile in its head (SQLite format 3 and later).
        raise StorageError(f"{type(self).__name__} does not keep the open tile in its head")

    def _read_open_tile(self) -> bytes:
        """The open tile's leaf hashes from the head, inside the append transaction (stores with ``_open_in_head``)."""
        raise StorageError(f"{type(self).__name__} does not keep the open tile in its head")

    @abstractmethod
    def _read_tile(self, level: int, tile: int) -> bytes | None:
        """One stored tile."""

    @abstractmethod
    def _read_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """Stored hashes of the given perfect nodes (absent ones are left out)."""

    @abstractmethod
    def scan_entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Stored (idx, data) rows with start <= idx < end in index order, as found (gaps included)."""

    @abstractmethod
    def _scan_tiles(self, level: int, first: int, last: int) -> list[tuple[int, bytes]]:
        """Stored (tile, hashes) rows of one level with first <= tile <= last, in order."""

    @abstractmethod
    def stats(self) -> StoreStats:
        """Row counts and largest indices, to spot rows beyond the recorded size."""

    @abstractmethod
    def spec(self, *, readonly: bool = False) -> tuple[str, dict[str, Any]]:
        """(url, options) that :func:`open_store` takes to open this log again, e.g. in another process."""

    @abstractmethod
    def _close(self) -> None:
        """Release the connection."""

    # --- public API -------------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of committed entries."""
        with self._lock:
            return self._read_size()

    def append(self, batch: Sequence[bytes]) -> list[int]:
        """Append a batch in one durable transaction; returns the assigned indices once the commit is durable."""
        datas = [bytes(b) for b in batch]
        if not datas:
            return []
        leaves = [merkle.leaf_hash(d) for d in datas]
        open_tile: bytes | None = None
        with self._lock:
            try:
                with self._sequenced() as start:
                    if self._frontier is None or self._frontier[0] != start:  # another writer moved the head
                        self._tails = {}
                        self._open_tile = None
                    frontier = self._frontier_at(start)
                    if self._open_in_head:
                        tiles, open_tile, new_frontier = self._grow_open_tile(start, frontier, leaves)
                        self._insert_open(start, datas, tiles, open_tile)
                    else:
                        completed, new_frontier = merkle.extend(frontier, start, leaves)
                        tiles = self._new_tiles(start, leaves, completed)
                        self._insert(start, datas, tiles)
            except BaseException:
                self._frontier = None
                self._tails = {}
                self._open_tile = None
                raise
            end = start + len(datas)
            self._frontier = (end, new_frontier)
            self._open_tile = open_tile
            if tiles:
                # Keep each level's partial tile (at most one a level); full tiles are never extended again.
                tails = {**self._tails, **{(level, tile): blob for level, tile, blob in tiles}}
                self._tails = {k: v for k, v in tails.items() if len(v) < TILE_WIDTH * _H}
            # Only the frontier nodes this batch made are new to the cache: those below the highest bit in which
            # start and end differ (the others end by ``start`` and were cached when made or read).
            low = (start ^ end).bit_length()
            levels = [lv for lv in range(low - 1, -1, -1) if end >> lv & 1]
            made = zip(levels, new_frontier[len(new_frontier) - len(levels) :], strict=True)
            self._remember([((lv, (end >> lv) - 1), h) for lv, h in made])
        return list(range(start, end))

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` entries (default: all), from O(log n) stored nodes."""
        with self._lock:
            current = self._read_size()
            size = current if size is None else size
            if not 0 <= size <= current:
                raise StorageError(f"size {size} is beyond the log size {current}")
            if size == 0:
                return merkle.EMPTY_ROOT
            if self._frontier is not None and self._frontier[0] == size:
                return merkle.fold(self._frontier[1])
            ids = merkle.perfect_cover(0, size)
            return merkle.fold(self._nodes(ids))

    def entry(self, index: int) -> bytes:
        """The entry at ``index``."""
        return self.entries(index, index + 1)[0]

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``start`` to ``end - 1``."""
        with self._lock:
            size = self._read_size()
            if not 0 <= start <= end <= size:
                raise StorageError(f"range [{start}, {end}) is outside the log of size {size}")
            rows = self.scan_entries(start, end)
        if [i for i, _ in rows] != list(range(start, end)) or not all(isinstance(d, bytes) for _, d in rows):
            raise StorageError(f"entries in [{start}, {end}) are missing or damaged")
        return [d for _, d in rows]

    def scan_nodes(self, level: int, start: int, end: int) -> bytes:
        """Concatenated stored hashes of nodes (level, start..end-1), cut short at the first missing one."""
        if end <= start:
            return b""
        with self._lock:
            rows = self._scan_tiles(level, start // TILE_WIDTH, (end - 1) // TILE_WIDTH)
        parts: list[bytes] = []
        expect = start // TILE_WIDTH
        for tile, hashes in rows:
            full = len(hashes) // _H
            if tile != expect:
                break
            lo = max(start - tile * TILE_WIDTH, 0)
            hi = min(end - tile * TILE_WIDTH, full)
            if hi > lo:
                parts.append(hashes[lo * _H : hi * _H])
            if full < TILE_WIDTH or len(hashes) % _H:
                break
            expect += 1
        return b"".join(parts)

    def leaf_hash(self, index: int) -> bytes:
        """Stored leaf hash of entry ``index``."""
        with self._lock:
            size = self._read_size()
            if not 0 <= index < size:
                raise StorageError(f"index {index} is outside the log of size {size}")
            return self._nodes([(0, index)])[0]

    def node(self, level: int, index: int, size: int) -> bytes:
        """MTH of entries ``[index << level, min((index + 1) << level, size))``: the log as a merkle.NodeSource."""
        with self._lock:
            return merkle.fold(self._nodes(merkle.perfect_cover(*merkle.node_range(level, index, size))))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Inclusion proof of entry ``index`` in the tree of ``size`` (default: the current size)."""
        with self._lock:
            size = self._proof_size(size)
            return merkle.inclusion_proof(index, size, self._prefetched(merkle.inclusion_path(index, size), size))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Consistency proof from ``size1`` to ``size2`` (default: the current size)."""
        with self._lock:
            size2 = self._proof_size(size2)
            if size1 == size2:
                return []
            path = merkle.consistency_path(size1, size2)
            return merkle.consistency_proof(size1, size2, self._prefetched(path, size2))

    def close(self) -> None:
        """Close the store."""
        with self._lock:
            self._close()

    def __enter__(self) -> LogStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- helpers ----------------------------------------------------------------------------------------------

    def _proof_size(self, size: int | None) -> int:
        current = self._read_size()
        if size is None:
            return current
        if not 0 <= size <= current:
            raise ProofError(f"size {size} is beyond the log size {current}")
        return size

    def _nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        cache = self._node_cache
        need = [i for i in ids if i not in cache]
        got = self._read_nodes(need) if need else {}
        missing = [i for i in need if i not in got]
        if missing:
            level, idx = missing[0]
            raise StorageError(f"node ({level}, {idx}) is missing")
        self._remember((nid, h) for nid, h in got.items() if nid[0] >= _CACHE_LEVEL)
        return [cache[i] if i in cache else got[i] for i in ids]

    def _remember(self, items: Iterable[tuple[NodeId, bytes]]) -> None:
        """Cache perfect node hashes (immutable once written: the frontier's, and read ones of high levels)."""
        if len(self._node_cache) > _CACHE_MAX:
            self._node_cache.clear()
        self._node_cache.update(items)

    def _new_tiles(
        self, start: int, leaves: Sequence[bytes], completed: Sequence[tuple[int, int, bytes]]
    ) -> list[tuple[int, int, bytes]]:
        """Tile rows to write for new leaves and completed nodes, each level's partial tile extended in place."""
        by_level: dict[int, list[bytes]] = {0: list(leaves)}
        for level, _, h in completed:
            by_level.setdefault(level, []).append(h)
        out: list[tuple[int, int, bytes]] = []
        for level, hashes in by_level.items():
            # New perfect nodes at a level are exactly [start >> level, end >> level), in order.
            idx, pos = start >> level, 0
            while pos < len(hashes):
                tile, off = divmod(idx, TILE_WIDTH)
                take = min(TILE_WIDTH - off, len(hashes) - pos)
                blob = b"".join(hashes[pos : pos + take])
                if off:
                    prefix = self._tails.get((level, tile))
                    if prefix is None:
                        prefix = self._read_tile(level, tile) or b""
                    if len(prefix) != off * _H:
                        raise StorageError(f"tile ({level}, {tile}) does not end where the log does")
                    blob = prefix + blob
                out.append((level, tile, blob))
                pos += take
                idx += take
        return out

    def _grow_open_tile(
        self, start: int, frontier: list[bytes], leaves: list[bytes]
    ) -> tuple[list[tuple[int, int, bytes]], bytes, list[bytes]]:
        """(tile rows, new open tile, new frontier) of an append to a store that keeps its open tile in the head."""
        end = start + len(leaves)
        base, top = start - start % TILE_WIDTH, end - end % TILE_WIDTH
        held = self._open_tile if self._open_tile is not None else self._read_open_tile()
        if len(held) != (start - base) * _H:
            raise StorageError("the open tile in the head does not end where the log does")
        if top == base:
            # No leaf tile completes: the nodes made inside the open tile are derived when read, not stored.
            _, new_frontier = merkle.extend(frontier, start, leaves)
            return [], held + b"".join(leaves), new_frontier
        # Leaf tiles complete: they and every node above them ending by ``top`` are stored now, including the nodes
        # made inside the old open tile by earlier appends (never stored), so its leaves are merged again from the
        # frontier of ``base`` (the head of the frontier of ``start``: its nodes of level >= TILE_LEVELS).
        run = [held[i : i + _H] for i in range(0, len(held), _H)]
        run += leaves
        completed, new_frontier = merkle.extend(frontier[: base.bit_count()], base, run)
        stored = [c for c in completed if (c[1] + 1) << c[0] <= top]
        return self._new_tiles(base, run[: top - base], stored), b"".join(run[top - base :]), new_frontier

    def _frontier_at(self, size: int) -> list[bytes]:
        if self._frontier is not None and self._frontier[0] == size:
            return self._frontier[1]
        ids = merkle.perfect_cover(0, size)
        hashes = self._nodes(ids)
        self._remember(zip(ids, hashes, strict=True))
        return hashes

    def _prefetched(self, path: Sequence[NodeId], size: int) -> merkle.NodeSource:
        """A NodeSource answering the nodes of ``path`` from one batched read of the perfect nodes they fold."""
        # Most path nodes are perfect (their own cover); only right-border ones fold several.
        covers = {
            nid: [nid] if merkle.is_perfect(*nid, size) else merkle.perfect_cover(*merkle.node_range(*nid, size))
            for nid in path
        }
        wanted = list(dict.fromkeys(pid for cover in covers.values() for pid in cover))
        hashes = dict(zip(wanted, self._nodes(wanted), strict=True))
        # The covers of right-border nodes are the frontier of ``size``: asked again by every proof at this size.
        self._remember((pid, hashes[pid]) for cover in covers.values() if len(cover) > 1 for pid in cover)

        def node(level: int, index: int, tree_size: int) -> bytes:
            if tree_size != size:
                raise ProofError("node source asked for another tree size")
            cover = covers[(level, index)]
            return hashes[cover[0]] if len(cover) == 1 else merkle.fold([hashes[p] for p in cover])

        return node


def open_store(url: str, **options: object) -> LogStore:
    """Open a log: a path or ``sqlite:///path`` (embedded default) or ``postgresql://...``; options per backend."""
    if url.startswith(("postgresql://", "postgres://")):
        from medspace.ledger.postgres_store import PostgresLogStore

        return PostgresLogStore(url, **options)  # type: ignore[arg-type]
    from medspace.ledger.sqlite_store import SqliteLogStore

    path = url
    if url.startswith("sqlite:"):
        # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute.db
        if not url.startswith("sqlite:///"):
            raise StorageError("a SQLite URL is sqlite:///path")
        path = url.removeprefix("sqlite:///")
    return SqliteLogStore(path, **options)  # type: ignore[arg-type]


# The name agreed in ledger_api.md; open_store is the same function without shadowing the builtin in callers.
open = open_store


def chunks(start: int, end: int, step: int) -> Iterator[tuple[int, int]]:
    """[start, end) cut into aligned pieces of at most ``step``."""
    pos = start
    while pos < end:
        nxt = min((pos // step + 1) * step, end)
        yield pos, nxt
        pos = nxt
