"""SQLite backend of the audit log: the embedded default.

WAL journal with ``synchronous=FULL``: a commit returns only after its WAL frames are fsynced, so an acknowledged
append survives a process kill and a power loss (NORMAL would survive the kill but not the power loss). The
sequencer is SQLite's own write lock, taken with ``BEGIN IMMEDIATE``: one writer at a time across threads and
processes; the head row is read after the lock is held. An interrupted transaction leaves no trace (its WAL frames
have no commit record), so after ``kill -9`` the log reopens at the last committed batch.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from medspace.ledger.errors import StorageError
from medspace.ledger.merkle import NodeId
from medspace.ledger.store import DEFAULT_PREFIX, TILE_WIDTH, LogStore, StoreStats

FORMAT = "medspace-ledger/2 rfc9162-sha256 tiles64"
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
            c.execute(
                f"CREATE TABLE IF NOT EXISTS {self._h} (id INTEGER PRIMARY KEY CHECK (id = 0), size INTEGER NOT NULL)"
            )
            c.execute(f"CREATE TABLE IF NOT EXISTS {self._e} (idx INTEGER PRIMARY KEY, data BLOB NOT NULL)")
            # Keyed by the rowid id = level << 40 | tile: one b-tree descent per tile, and 2 KB rows stay inline in
            # its pages (a composite key would add an index descent; WITHOUT ROWID would spill the rows).
            c.execute(f"CREATE TABLE IF NOT EXISTS {self._n} (id INTEGER PRIMARY KEY, hashes BLOB NOT NULL)")
            c.execute(f"INSERT OR IGNORE INTO {self._m} VALUES ('format', ?)", (FORMAT,))
            c.execute(f"INSERT OR IGNORE INTO {self._h} VALUES (0, 0)")
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
        if row is not None and row[0] != FORMAT:
            raise StorageError("the file holds a log of another format")
        return row is not None

    def _check_format(self) -> None:
        if not self._has_format():
            raise StorageError("the file does not hold a log")

    def spec(self, *, readonly: bool = False) -> tuple[str, dict[str, Any]]:
        """(path, options) to open this log again, e.g. in another process."""
        opts: dict[str, Any] = {"prefix": self.prefix, "synchronous": self.synchronous, "readonly": readonly}
        return str(self.path), opts

    # --- primitives -------------------------------------------------------------------------------------------

    def _read_size(self) -> int:
        with _errors("cannot read the head"):
            row = self._conn.execute(f"SELECT size FROM {self._h} WHERE id = 0").fetchone()
        if row is None:
            raise StorageError("the head row is missing")
        return int(row[0])

    @contextmanager
    def _sequenced(self) -> Iterator[int]:
        c = self._conn
        with _errors("cannot take the sequencer lock"):
            c.execute("BEGIN IMMEDIATE")
        try:
            size = self._read_size()
            yield size
            with _errors("cannot commit"):
                c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def _insert(self, start: int, datas: Sequence[bytes], tiles: Sequence[tuple[int, int, bytes]]) -> None:
        c = self._conn
        with _errors("cannot append"):
            c.executemany(
                f"INSERT INTO {self._e} (idx, data) VALUES (?, ?)",
                zip(range(start, start + len(datas)), datas, strict=True),
            )
            c.executemany(
                f"INSERT INTO {self._n} (id, hashes) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET hashes = excluded.hashes",
                [(tile_id(level, tile), blob) for level, tile, blob in tiles],
            )
            c.execute(f"UPDATE {self._h} SET size = ? WHERE id = 0", (start + len(datas),))

    def _read_tile(self, level: int, tile: int) -> bytes | None:
        with _errors("cannot read a tile"):
            row = self._conn.execute(f"SELECT hashes FROM {self._n} WHERE id = ?", (tile_id(level, tile),)).fetchone()
        return None if row is None else bytes(row[0])

    def _read_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        if not ids:
            return {}
        wanted = list({tile_id(level, idx // TILE_WIDTH) for level, idx in ids})
        # One statement for all the tiles a proof touches (rowid IN is a sorted series of lookups).
        with _errors("cannot read nodes"):
            rows = self._conn.execute(
                f"SELECT id, hashes FROM {self._n} WHERE id IN ({','.join('?' * len(wanted))})", wanted
            ).fetchall()
        tiles = dict(rows)
        out: dict[NodeId, bytes] = {}
        for level, idx in ids:
            blob = tiles.get(tile_id(level, idx // TILE_WIDTH))
            off = idx % TILE_WIDTH * 32
            if isinstance(blob, bytes) and len(blob) >= off + 32:
                out[(level, idx)] = blob[off : off + 32]
        return out

    def scan_entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Stored (idx, data) rows with start <= idx < end in index order, as found (gaps included)."""
        with self._lock, _errors("cannot read entries"):
            return self._conn.execute(
                f"SELECT idx, data FROM {self._e} WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
            ).fetchall()

    def _scan_tiles(self, level: int, first: int, last: int) -> list[tuple[int, bytes]]:
        with _errors("cannot read tiles"):
            rows = self._conn.execute(
                f"SELECT id, hashes FROM {self._n} WHERE id >= ? AND id <= ? ORDER BY id",
                (tile_id(level, first), tile_id(level, last)),
            ).fetchall()
        return [(i & _TILE_MASK, h) for i, h in rows]

    def stats(self) -> StoreStats:
        """Row counts and largest indices, to spot rows beyond the recorded size."""
        with self._lock, _errors("cannot count rows"):
            size = self._read_size()
            # min and max of the rowid are O(log n); a scan has already shown [0, size) complete.
            low, top = self._conn.execute(f"SELECT min(idx), max(idx) FROM {self._e}").fetchone()
            levels = self._conn.execute(
                f"SELECT id >> {_LEVEL_SHIFT} AS level, sum(length(hashes)) / 32, "
                f"max((id & {_TILE_MASK}) * {TILE_WIDTH} + length(hashes) / 32) - 1, "
                f"sum(length(hashes) % 32 != 0) FROM {self._n} GROUP BY level"
            ).fetchall()
        return StoreStats(
            size,
            low,
            top,
            {int(lv): (int(n), int(m)) for lv, n, m, _ in levels},
            sum(int(r) for *_, r in levels),
        )

    def _close(self) -> None:
        with _errors("cannot close the log"):
            self._conn.close()
