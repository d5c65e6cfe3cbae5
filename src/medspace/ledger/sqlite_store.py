"""SQLite backend of the audit log: the embedded default.

WAL journal with ``synchronous=FULL``: a commit returns only after its WAL frames are fsynced, so an acknowledged
append survives a process kill and a power loss (NORMAL would survive the kill but not the power loss). The
sequencer is SQLite's own write lock, taken with ``BEGIN IMMEDIATE``: one writer at a time across threads and
processes; the head row is read after the lock is held. An interrupted transaction leaves no trace (its WAL frames
have no commit record), so after ``kill -9`` the log reopens at the last committed batch.

Format 3 keeps the open leaf tile in the head row (:mod:`medspace.ledger.store` explains it): an append of one entry
writes the entry's page and the head's page, and each page costs time in the commit's fsync. Logs of format 2 (every
node in the tiles table) are still read and appended to as they are; new logs are created in format 3.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from medspace.ledger.errors import StorageError
from medspace.ledger.merkle import HASH_SIZE as _H
from medspace.ledger.merkle import NodeId
from medspace.ledger.store import (
    DEFAULT_PREFIX,
    TILE_LEVELS,
    TILE_WIDTH,
    LogStore,
    StoreStats,
    open_tile_nodes,
)

FORMAT = "medspace-ledger/3 rfc9162-sha256 tiles64 open-tile-in-head"
# Format 2: the open tile and every node in the tiles table, the head holding the size alone.
FORMAT_2 = "medspace-ledger/2 rfc9162-sha256 tiles64"
_FORMATS = {FORMAT: True, FORMAT_2: False}  # format -> whether the head holds the open tile
_PREFIX_RE = re.compile(r"[a-z_][a-z0-9_]{0,30}")
_SYNC_MODES = ("FULL", "EXTRA", "NORMAL")
_LEVEL_SHIFT = 40
_TILE_MASK = (1 << _LEVEL_SHIFT) - 1


def tile_id(level: int, tile: int) -> int:
    """Row id of tile ``tile`` of ``level`` in the SQLite tiles table: level << 40 | tile."""
    return level << _LEVEL_SHIFT | tile


@contextmanager
def _errors(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        # SQLite's messages name tables and constraints, never row values.
        raise StorageError(f"{what}: {exc}") from exc


class _Sequenced:
    """The append transaction: ``BEGIN IMMEDIATE`` takes SQLite's write lock, then the size is read; a clean exit
    commits (durably: synchronous=FULL), any other rolls back. One reusable object, not a generator context manager,
    to keep per-commit overhead down."""

    __slots__ = ("_store",)

    def __init__(self, store: SqliteLogStore) -> None:
        self._store = store

    def __enter__(self) -> int:
        c = self._store._conn
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot take the sequencer lock: {exc}") from exc
        try:
            return self._store._read_size()
        except BaseException:
            self._rollback()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._rollback()
            return
        try:
            self._store._conn.execute("COMMIT")
        except sqlite3.Error as err:
            self._rollback()
            raise StorageError(f"cannot commit: {err}") from err

    def _rollback(self) -> None:
        c = self._store._conn
        if c.in_transaction:
            c.execute("ROLLBACK")


class SqliteLogStore(LogStore):
    """The log in one SQLite file (tables ``<prefix>entries``, ``<prefix>tiles``, ``<prefix>head``).

    The tiles table is keyed by ``id = level << 40 | tile`` (see :func:`tile_id`) rather than (level, tile).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        prefix: str = DEFAULT_PREFIX,
        synchronous: str = "FULL",
        timeout: float = 30.0,
        readonly: bool = False,
    ) -> None:
        super().__init__()
        if not _PREFIX_RE.fullmatch(prefix):
            raise StorageError("table prefix must be lower-case letters, digits and underscores")
        if synchronous.upper() not in _SYNC_MODES:
            raise StorageError(f"synchronous must be one of {_SYNC_MODES}")
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.prefix = prefix
        self.synchronous = synchronous.upper()
        self.readonly = readonly
        self._e, self._n, self._h, self._m = (f"{prefix}{t}" for t in ("entries", "tiles", "head", "meta"))
        self._sql_entry = f"INSERT INTO {self._e} (idx, data) VALUES (?, ?)"
        self._sql_tile = (
            f"INSERT INTO {self._n} (id, hashes) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET hashes = excluded.hashes"
        )
        self._sql_size = f"SELECT size FROM {self._h} WHERE id = 0"
        self._sql_head = f"UPDATE {self._h} SET size = ?, leaves = ? WHERE id = 0"
        self._txn = _Sequenced(self)
        with _errors("cannot open the log"):
            target, uri = str(self.path), False
            if readonly:
                target, uri = f"file:{quote(str(self.path.absolute()))}?mode=ro", True
            self._conn = sqlite3.connect(
                target, isolation_level=None, check_same_thread=False, timeout=timeout, uri=uri
            )
            try:
                if readonly:
                    # Lets SQLite open a file shorter than its header says (a truncated log) and read as far as it
                    # goes, so that a check can name the first entry lost; a read-only connection writes nothing.
                    self._conn.execute("PRAGMA writable_schema=ON")
                    self._check_format()
                else:
                    self._setup(self.synchronous)
            except BaseException:
                self._conn.close()
                raise

    def _setup(self, synchronous: str) -> None:
        c = self._conn
        mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal" and str(self.path) != ":memory:":
            raise StorageError("the log needs WAL journal mode")
        c.execute(f"PRAGMA synchronous={synchronous}")
        c.execute("PRAGMA cache_size=-32768")
        if self._has_format():
            return  # an existing log: opening it writes nothing
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(f"CREATE TABLE IF NOT EXISTS {self._m} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            # leaves: the open tile, the leaf hashes of entries [size - size % 64, size); one row, one page, that
            # every append rewrites anyway.
            c.execute(
                f"CREATE TABLE IF NOT EXISTS {self._h} (id INTEGER PRIMARY KEY CHECK (id = 0), size INTEGER NOT NULL, "
                "leaves BLOB NOT NULL)"
            )
            c.execute(f"CREATE TABLE IF NOT EXISTS {self._e} (idx INTEGER PRIMARY KEY, data BLOB NOT NULL)")
            # Keyed by the rowid id = level << 40 | tile: one b-tree descent per tile, and 2 KB rows stay inline in
            # its pages (a composite key would add an index descent; WITHOUT ROWID would spill the rows).
            c.execute(f"CREATE TABLE IF NOT EXISTS {self._n} (id INTEGER PRIMARY KEY, hashes BLOB NOT NULL)")
            c.execute(f"INSERT OR IGNORE INTO {self._m} VALUES ('format', ?)", (FORMAT,))
            c.execute(f"INSERT OR IGNORE INTO {self._h} VALUES (0, 0, x'')")
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        self._check_format()

    def _has_format(self) -> bool:
        try:
            row = self._conn.execute(f"SELECT value FROM {self._m} WHERE key = 'format'").fetchone()
        except sqlite3.OperationalError:
            return False
        if row is None:
            return False
        if row[0] not in _FORMATS:
            raise StorageError("the file holds a log of another format")
        self._open_in_head = _FORMATS[row[0]]
        return True

    def _check_format(self) -> None:
        if not self._has_format():
            raise StorageError("the file does not hold a log")

    def spec(self, *, readonly: bool = False) -> tuple[str, dict[str, Any]]:
        """(path, options) to open this log again, e.g. in another process."""
        opts: dict[str, Any] = {"prefix": self.prefix, "synchronous": self.synchronous, "readonly": readonly}
        return str(self.path), opts

    # --- primitives -------------------------------------------------------------------------------------------

    def _read_size(self) -> int:
        try:
            row = self._conn.execute(self._sql_size).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the head: {exc}") from exc
        if row is None:
            raise StorageError("the head row is missing")
        return int(row[0])

    def _sequenced(self) -> AbstractContextManager[int]:
        return self._txn

    def _insert(self, start: int, datas: Sequence[bytes], tiles: Sequence[tuple[int, int, bytes]]) -> None:
        c = self._conn
        with _errors("cannot append"):
            self._insert_rows(start, datas, tiles)
            c.execute(f"UPDATE {self._h} SET size = ? WHERE id = 0", (start + len(datas),))

    def _insert_open(
        self, start: int, datas: Sequence[bytes], tiles: Sequence[tuple[int, int, bytes]], open_tile: bytes
    ) -> None:
        # Spelled out rather than with _errors: a generator context manager costs microseconds, which show with one
        # entry per commit.
        try:
            self._insert_rows(start, datas, tiles)
            self._conn.execute(self._sql_head, (start + len(datas), open_tile))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot append: {exc}") from exc

    def _insert_rows(self, start: int, datas: Sequence[bytes], tiles: Sequence[tuple[int, int, bytes]]) -> None:
        c = self._conn
        # executemany costs a few microseconds more than execute, which shows with one entry per commit.
        if len(datas) == 1:
            c.execute(self._sql_entry, (start, datas[0]))
        else:
            c.executemany(self._sql_entry, zip(range(start, start + len(datas)), datas, strict=True))
        if tiles:
            c.executemany(self._sql_tile, [(tile_id(level, tile), blob) for level, tile, blob in tiles])

    def _read_open_tile(self) -> bytes:
        with _errors("cannot read the head"):
            row = self._conn.execute(f"SELECT CAST(leaves AS BLOB) FROM {self._h} WHERE id = 0").fetchone()
        if row is None or not isinstance(row[0], bytes):
            raise StorageError("the head row is missing or damaged")
        return row[0]

    def _read_tile(self, level: int, tile: int) -> bytes | None:
        with _errors("cannot read a tile"):
            row = self._conn.execute(f"SELECT hashes FROM {self._n} WHERE id = ?", (tile_id(level, tile),)).fetchone()
        return None if row is None else bytes(row[0])

    def _with_head(self, query: str) -> str:
        """``query`` (rows id, hashes) with the head row appended as (NULL, leaves, size), all in one snapshot."""
        # One statement reads one snapshot: between two, another writer could move a completed leaf tile from the
        # head to the tiles table, and the nodes in it would seem to be missing.
        # As a blob whatever a damaged file holds (text may not even decode): the lengths then tell what is wrong.
        return (
            f"SELECT id, hashes, NULL FROM ({query}) "
            f"UNION ALL SELECT NULL, CAST(leaves AS BLOB), size FROM {self._h} WHERE id = 0"
        )

    def _read_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        if not ids:
            return {}
        wanted = list({tile_id(level, idx // TILE_WIDTH) for level, idx in ids})
        # One statement for all the tiles a proof touches (rowid IN is a sorted series of lookups).
        query = f"SELECT id, hashes FROM {self._n} WHERE id IN ({','.join('?' * len(wanted))})"
        head: tuple[object, object] | None = None
        with _errors("cannot read nodes"):
            if self._open_in_head:
                tiles: dict[int, object] = {}
                for tid, blob, size in self._conn.execute(self._with_head(query), wanted).fetchall():
                    if tid is None:
                        head = (size, blob)
                    else:
                        tiles[tid] = blob
            else:
                tiles = dict(self._conn.execute(query, wanted).fetchall())
        out: dict[NodeId, bytes] = {}
        for level, idx in ids:
            blob = tiles.get(tile_id(level, idx // TILE_WIDTH))
            off = idx % TILE_WIDTH * _H
            if isinstance(blob, bytes) and len(blob) >= off + _H:
                out[(level, idx)] = blob[off : off + _H]
            elif head is not None and level < TILE_LEVELS:
                h = _open_node(*head, level, idx)
                if h is not None:
                    out[(level, idx)] = h
        return out

    def scan_entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Stored (idx, data) rows with start <= idx < end in index order, as found (gaps included)."""
        with self._lock, _errors("cannot read entries"):
            return self._conn.execute(
                f"SELECT idx, data FROM {self._e} WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
            ).fetchall()

    def _scan_tiles(self, level: int, first: int, last: int) -> list[tuple[int, bytes]]:
        query = f"SELECT id, hashes FROM {self._n} WHERE id >= ? AND id <= ?"
        args = (tile_id(level, first), tile_id(level, last))
        with _errors("cannot read tiles"):
            if not self._open_in_head or level >= TILE_LEVELS:
                rows = self._conn.execute(f"{query} ORDER BY id", args).fetchall()
                return [(i & _TILE_MASK, h) for i, h in rows]
            rows = self._conn.execute(f"{self._with_head(query)} ORDER BY 1", args).fetchall()
        found = [(i & _TILE_MASK, h) for i, h, _ in rows if i is not None]
        # NULL sorts first: the head row, if it is there.
        if not rows or rows[0][0] is not None:
            return found
        _, leaves, size = rows[0]
        if not isinstance(size, int) or not isinstance(leaves, bytes):
            return found
        tile, off = divmod((size - size % TILE_WIDTH) >> level, TILE_WIDTH)
        derived = open_tile_nodes(leaves, level) if first <= tile <= last else b""
        if not derived:
            return found
        # The open tile's nodes continue the stored partial tile of their level. Where that does not end where they
        # begin, the rows are left as found, for the check to name the first node that is missing.
        merged = dict(found)
        prefix = merged.get(tile, b"")
        if not isinstance(prefix, bytes) or len(prefix) != off * _H:
            return found
        merged[tile] = prefix + derived
        return sorted(merged.items())

    def stats(self) -> StoreStats:
        """Row counts and largest indices, to spot rows beyond the recorded size (nodes derived in the open tile
        count as stored)."""
        c = self._conn
        with self._lock, _errors("cannot count rows"):
            # One snapshot: rows counted against the head they were committed with.
            c.execute("BEGIN")
            try:
                size = self._read_size()
                # min and max of the rowid are O(log n); a scan has already shown [0, size) complete.
                low, top = c.execute(f"SELECT min(idx), max(idx) FROM {self._e}").fetchone()
                levels = c.execute(
                    f"SELECT id >> {_LEVEL_SHIFT} AS level, sum(length(hashes)) / 32, "
                    f"max((id & {_TILE_MASK}) * {TILE_WIDTH} + length(hashes) / 32) - 1, "
                    f"sum(length(hashes) % 32 != 0) FROM {self._n} GROUP BY level"
                ).fetchall()
                leaves = self._read_open_tile() if self._open_in_head else b""
            finally:
                c.execute("COMMIT")
        nodes = {int(lv): (int(n), int(m)) for lv, n, m, _ in levels}
        ragged = sum(int(r) for *_, r in levels) + (len(leaves) % _H != 0)
        base, count = size - size % TILE_WIDTH, len(leaves) // _H
        for level in range(TILE_LEVELS):
            if count >> level:
                n, m = nodes.get(level, (0, -1))
                nodes[level] = (n + (count >> level), max(m, (base >> level) + (count >> level) - 1))
        return StoreStats(size, low, top, nodes, ragged)

    def _close(self) -> None:
        with _errors("cannot close the log"):
            self._conn.close()


def _open_node(size: object, leaves: object, level: int, idx: int) -> bytes | None:
    """Node (level, idx) hashed from the open tile's leaves as the head holds them, if it lies inside them."""
    if not isinstance(size, int) or not isinstance(leaves, bytes):
        return None
    lo = (idx << level) - (size - size % TILE_WIDTH)
    part = leaves[lo * _H : (lo + (1 << level)) * _H]
    if lo < 0 or len(part) != _H << level:
        return None
    return open_tile_nodes(part, level)
