"""The node's local store: one DuckDB file per hospital, with the model's tables and a quarantine."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from medspace.connect.base import Finding, Quarantined
from medspace.model import TABLES
from medspace.private_files import os_reason
from medspace.store import lock as _lock
from medspace.store.errors import SchemaVersionError, StoreError, StoreOpenError
from medspace.store.schema import MIGRATIONS, SCHEMA_VERSION, quarantine_ddl, quarantine_id, table_ddl
from medspace.store.sidecar import remove_store_files
from medspace.store.snapshot import last_batch, snapshot_batch, write_snapshot

PIECE_ROWS = 4_096  # rows added one at a time become Arrow this many at a time: bounds Python's memory
CHUNK_ROWS = 8_192  # a table's buffered rows go to its staging table this many at a time
CHUNK_BYTES = 4 << 20  # ... or at this many bytes (free text), whichever comes first
BUFFER_BYTES = 16 << 20  # Arrow buffered over all tables before the biggest table is staged anyway
SOURCE_FLUSH_ROWS = 8_192  # at a source file's end, a table it gave this many rows is staged at once
MAX_PENDING = 2  # chunks handed to the writer thread at once (the connector fills the next meanwhile)
QUARANTINE_CHUNK = 5_000
# DuckDB's row group, in rows: staging commits when a table's staging table has a full one.
ROW_GROUP_ROWS = 122_880
# Staged bytes (of Arrow) after which the staging transaction commits anyway: bounds the uncommitted
# rows DuckDB holds when many tables grow at once, each short of a row group.
STAGE_COMMIT_BYTES = 40 << 20
# While a batch stages, DuckDB runs on the cores the connector leaves it (restored before the final
# transaction, whose joins may use more). No memory_limit: with one too tight for a row group of long
# notes, DuckDB's checkpoint fails fatally and invalidates the database.
STAGING_THREADS = max(1, (os.cpu_count() or 2) - 1)
# DuckDB's Python client takes the GIL back between vectors of a running statement (to notice
# Ctrl-C). At Python's 5 ms switch interval the writer thread then spends most of an INSERT waiting
# for the connector to let go of it. A vectorised connector (CSV, Parquet) mostly runs in Arrow with
# the GIL released, so while the writer runs a statement for one, the process's interval is this
# instead (put back after); a connector that maps row by row in Python is the bottleneck itself and
# would only lose time to the extra hand-overs, so its writes keep the default.
WRITER_SWITCH_INTERVAL = 0.0005

STAGE_PREFIX = "_medspace_stage_"
DUCKDB_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False, "autoload_known_extensions": False,
}
_live_tokens: set[str] = set()  # staging tokens of batches open in this process: not stale
_live_lock = threading.Lock()
# Store file -> (batches open on it in this process, DuckDB settings to restore when the last ends).
_limited: dict[str, tuple[int, dict[str, str]]] = {}
_handoff = [0, 0.0]  # writer statements running in this process, switch interval before the first


@contextlib.contextmanager
def _quick_gil_handoff() -> Iterator[None]:
    """Shorten Python's switch interval while a writer thread runs a DuckDB statement."""
    with _live_lock:
        if _handoff[0] == 0:
            _handoff[1] = sys.getswitchinterval()
            sys.setswitchinterval(min(_handoff[1], WRITER_SWITCH_INTERVAL))
        _handoff[0] += 1
    try:
        yield
    finally:
        with _live_lock:
            _handoff[0] -= 1
            if _handoff[0] == 0:
                sys.setswitchinterval(_handoff[1])


def _buffer_schema(table: str) -> pa.Schema:
    """The Arrow schema rows are buffered in (DuckDB checks NOT NULL, with its own message)."""
    return TABLES[table].buffer_schema


def _row_type(table: str) -> pa.StructType:
    """A table's row as an Arrow struct."""
    return TABLES[table].row_type


@dataclass
class TableCounts:
    """What one batch did to one table."""

    received: int = 0  # rows, an id given more than once in the batch counting once (its last values win)
    new: int = 0
    updated: int = 0

    @property
    def unchanged(self) -> int:
        """Rows received that were already stored with the same values."""
        return self.received - self.new - self.updated


@dataclass
class IngestReport:
    """What a batch did: rows per table, quarantine per reason, skipped input per kind."""

    batch_id: int
    label: str
    tables: dict[str, TableCounts] = field(default_factory=dict)
    quarantined: Counter[str] = field(default_factory=Counter)
    quarantined_new: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # (connector, source, table, field, kind) -> [count, example position], in the order first seen
    findings: dict[tuple[str, str, str, str, str], list[Any]] = field(default_factory=dict)
    sources: dict[str, None] = field(default_factory=dict)  # source files read to their end, in order
    committed: bool = False

    @property
    def rows_received(self) -> int:
        """Rows received over all tables."""
        return sum(c.received for c in self.tables.values())

    @property
    def rows_new(self) -> int:
        """Rows added over all tables."""
        return sum(c.new for c in self.tables.values())

    @property
    def rows_updated(self) -> int:
        """Rows whose stored values changed."""
        return sum(c.updated for c in self.tables.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "batch_id": self.batch_id,
            "label": self.label,
            "committed": self.committed,
            "tables": {
                t: {"received": c.received, "new": c.new, "updated": c.updated, "unchanged": c.unchanged}
                for t, c in sorted(self.tables.items())
            },
            "quarantined": dict(sorted(self.quarantined.items())),
            "quarantined_new": self.quarantined_new,
            "skipped": dict(sorted(self.skipped.items())),
            "findings": self.finding_summary(),
        }

    def finding_summary(self) -> list[dict[str, Any]]:
        """Findings per (connector, table, field, kind) over the batch's sources, each with its first example."""
        total: dict[tuple[str, str, str, str], list[Any]] = {}
        for (c, src, t, f, k), (n, pos) in self.findings.items():
            hit = total.get((c, t, f, k))
            if hit is None:
                total[(c, t, f, k)] = [n, src, pos]
            else:
                hit[0] += n
        return [
            {"connector": c, "table": t, "field": f, "kind": k, "count": v[0],
             "example": {"source": v[1], "position": v[2]}}
            for (c, t, f, k), v in sorted(total.items())
        ]


def _check_header(path: Path) -> None:
    """Refuse a file that is not a DuckDB database before DuckDB reads it (its magic is at byte 8)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except OSError as e:
        raise StoreOpenError(f"cannot read store {path}: {e.strerror or e}") from None
    if len(head) < 12 or head[8:12] != b"DUCK":
        raise StoreOpenError(f"{path} is not a medspace store (not a DuckDB database)")


def _one_line(message: str) -> str:
    """DuckDB's message, first line, without its class prefix."""
    line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    for prefix in ("IO Error: ", "IOException: ", "Invalid Input Error: ", "Catalog Error: "):
        line = line.removeprefix(prefix)
    return line


class Store:
    """A hospital node's DuckDB store."""

    def __init__(self, path: str | Path, *, read_only: bool = False, create: bool = True, wait: float = 0.0,
                 command: str | None = None) -> None:
        """Open a store; `create`: make it if there is none (never when read-only); `wait`: seconds to keep
        retrying while another process holds it; `command`: what this process is, for the lock-info file."""
        self.path = Path(path)
        self.read_only = read_only
        self.created = False  # whether this opening made the store file
        self._made_dirs: list[Path] = []  # directories made for it, outermost first
        self._claimed = False
        self._closed = False
        self.con = self._connect(create=create, wait=wait)
        try:
            self._refuse_foreign()
            self._migrate()
            if not read_only:
                self._drop_stale_staging()
                _lock.claim(self.path, command or _lock.default_command())
                self._claimed = True
        except BaseException:
            if self.created:
                self._discard_files()
            else:
                self.con.close()
                self._release()
            raise

    def _connect(self, *, create: bool, wait: float) -> duckdb.DuckDBPyConnection:
        path = self.path
        if path.is_dir():
            raise StoreOpenError(f"{path} is a directory, not a store")
        exists = path.exists()
        if exists:
            _check_header(path)
        elif self.read_only or not create:
            raise StoreOpenError(f"no store at {path}")
        else:
            missing: list[Path] = []
            d = path.parent.absolute()
            while not d.exists():
                missing.insert(0, d)
                d = d.parent
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                # mkdir(parents=True) meeting a file where a directory belongs says "File exists": say which.
                blocker = next((a for a in path.parents if a.exists() and not a.is_dir()), None)
                why = f"{blocker} is not a directory" if blocker is not None else os_reason(e)
                raise StoreOpenError(f"cannot create store {path}: {why}") from None
            self._made_dirs = missing
        deadline = time.monotonic() + wait
        pause = 0.05
        while True:
            try:
                # A node never fetches code: with auto-install on, opening a file that is not a DuckDB
                # database (SQLite, say) makes DuckDB download an extension to read it.
                con = duckdb.connect(str(path), read_only=self.read_only, config=DUCKDB_CONFIG)
            except duckdb.Error as e:
                msg = str(e)
                if _lock.is_lock_error(msg):
                    left = deadline - time.monotonic()
                    if left > 0:
                        time.sleep(min(pause, left))
                        pause = min(pause * 2, 0.5)
                        continue
                    raise _lock.busy_error(path, msg, wait) from None
                self._remove_made_dirs()
                if "not a valid DuckDB database" in msg or "Install it first" in msg:
                    raise StoreOpenError(f"{path} is not a medspace store (not a DuckDB database)") from None
                raise StoreOpenError(f"cannot open store {path}: {_one_line(msg)}") from None
            except OSError as e:
                self._remove_made_dirs()
                raise StoreOpenError(f"cannot open store {path}: {e.strerror or e}") from None
            self.created = not exists
            return con

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # A run that made the store and then failed leaves nothing behind: not an empty store that a
        # mistyped path would then find next time.
        if exc_type is not None and self.created and self._pristine():
            self.discard()
        else:
            self.close()

    def close(self) -> None:
        """Close the DuckDB connection; a writer that committed a batch first updates the statistics
        snapshot beside the store (what `node stats` shows while the next writer holds it)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._claimed:
                self._update_snapshot()
        finally:
            self.con.close()
            self._release()

    def discard(self) -> None:
        """Close and remove a store this opening made (with its write-ahead log and the files beside it)."""
        if not self.created:
            raise StoreError(f"store {self.path} existed before: not removing it")
        if not self._closed:
            self._closed = True
            self.con.close()
        self._discard_files()

    def _discard_files(self) -> None:
        with contextlib.suppress(duckdb.Error):
            self.con.close()
        self._release()
        remove_store_files(self.path)
        self._remove_made_dirs()

    def _remove_made_dirs(self) -> None:
        for d in reversed(self._made_dirs):
            with contextlib.suppress(OSError):
                d.rmdir()  # only if still empty
        self._made_dirs = []

    def _release(self) -> None:
        if self._claimed:
            self._claimed = False
            _lock.release(self.path)

    def _refuse_foreign(self) -> None:
        """Refuse a DuckDB database that holds other things than a medspace store (a new, empty one is fine)."""
        meta, other = self.con.execute(
            "SELECT count(*) FILTER (WHERE table_name = '_medspace_meta'), count(*) FROM duckdb_tables() "
            "WHERE NOT internal"
        ).fetchall()[0]
        views = self.con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall()[0][0]
        if not meta and (other or views):
            raise StoreOpenError(f"{self.path} is not a medspace store (a DuckDB database without medspace's tables)")

    def _pristine(self) -> bool:
        """Whether the store holds nothing a run committed (no batch, no view): safe to remove."""
        try:
            batches = self.con.execute("SELECT count(*) FROM ingest_batch").fetchall()[0][0]
            views = self.con.execute(
                "SELECT count(*) FROM duckdb_schemas() WHERE starts_with(schema_name, 'deid_')"
            ).fetchall()[0][0]
        except duckdb.Error:
            return False  # cannot tell: keep it
        return int(batches) == 0 and int(views) == 0

    def _update_snapshot(self) -> None:
        try:
            if snapshot_batch(self.path) != last_batch(self):
                write_snapshot(self)
        except (duckdb.Error, OSError):
            pass  # the snapshot is a convenience: an older one still says truthfully which batch it is of

    @property
    def store_id(self) -> str:
        """The store's identity: a random UUID made when the store was created (keyrings are bound to it)."""
        row = self.con.execute("SELECT value FROM _medspace_meta WHERE key = 'store_id'").fetchall()
        return str(row[0][0])

    @property
    def schema_version(self) -> int:
        """The schema version the store file is at."""
        row = self.con.execute(
            "SELECT value FROM _medspace_meta WHERE key = 'schema_version'"
        ).fetchall()[0]
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        exists = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = '_medspace_meta'"
        ).fetchall()[0]
        version = self.schema_version if exists and exists[0] else 0
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"store {self.path} is at schema version {version}; this medspace knows up to {SCHEMA_VERSION}"
            )
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            raise SchemaVersionError(f"store {self.path} needs migrating to version {SCHEMA_VERSION}")
        self.con.execute("BEGIN")
        try:
            self.con.execute("CREATE TABLE IF NOT EXISTS _medspace_meta (key VARCHAR, value VARCHAR)")
            for step in MIGRATIONS[version:]:
                step(self.con)
            self.con.execute("DELETE FROM _medspace_meta WHERE key = 'schema_version'")
            self.con.execute("INSERT INTO _medspace_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def _drop_stale_staging(self) -> None:
        """Drop staging tables a crashed or killed batch left behind: its rows were never visible."""
        with _live_lock:
            live = set(_live_tokens)
        rows = self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, ?)", [STAGE_PREFIX]
        ).fetchall()
        for (name,) in rows:
            token = str(name)[len(STAGE_PREFIX):].split("_", 1)[0]
            if token not in live:
                self.con.execute(f'DROP TABLE IF EXISTS "{name}"')

    def batch(self, label: str) -> BatchWriter:
        """A transactional batch: everything added commits together, or nothing does."""
        if self.read_only:
            raise StoreError("store opened read-only")
        return BatchWriter(self, label)

    def count(self, table: str) -> int:
        """Rows in a table."""
        if table not in TABLES and table not in ("quarantine", "data_quality", "ingest_source"):
            raise StoreError(f"unknown table {table!r}")
        row = self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0]
        return int(row[0]) if row else 0

    def arrow(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run a read query and return Arrow (for tools and tests inside the node)."""
        return self.con.sql(sql, params=params).to_arrow_table()


class _Pending:
    """One table's rows waiting to be staged: dicts not yet turned into Arrow, then Arrow pieces."""

    __slots__ = ("from_arrow", "from_source", "n", "nbytes", "pieces", "rows")

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.pieces: list[pa.Table] = []
        self.n = 0  # rows in pieces
        self.nbytes = 0  # bytes in pieces
        self.from_source = 0  # rows the current source file gave
        self.from_arrow = False  # whether the rows came as Arrow (a vectorised connector) or as dicts


class BatchWriter:
    """The store's sink for connectors: all or nothing, upsert by row `id`, memory flat in the batch's
    size. Implements `medspace.connect.base.Sink`.

    Rows are buffered per table and appended, a few thousand at a time, to the batch's own staging
    tables by a background thread while the connector parses on. The staging transaction commits
    each time a staging table fills a DuckDB row group (or holds too much), so the rows go to the
    file, compressed once, instead of piling up in the memory of one long transaction. No reader of
    the model's tables sees a staging table. At the end one transaction moves the batch in: a table
    that was empty becomes its staging table (a rename, nothing copied); into any other, new ids are
    inserted and changed rows replaced. A failure drops the staging tables; a crash leaves them to
    the store's next opening, which drops them: no part of a batch is ever visible.
    """

    def __init__(self, store: Store, label: str) -> None:
        self.store = store
        self.con = store.con
        self._token = secrets.token_hex(4)
        self._tables: dict[str, _Pending] = {}
        self._buffered = 0  # Arrow bytes over all tables' pieces
        self._quarantine: list[Quarantined] = []
        self._staged: dict[str, str] = {}  # table (or "quarantine") -> its staging table
        self._dups: set[str] = set()  # tables given an id more than once in this batch
        self._max_id: dict[str, str] = {}  # table -> greatest id staged (writer thread only)
        row = self.con.execute("SELECT coalesce(max(id), 0) + 1 FROM ingest_batch").fetchall()[0]
        self.report = IngestReport(batch_id=int(row[0]) if row else 1, label=label)
        self._open = False
        self._started = datetime.now()
        self._wcon: duckdb.DuckDBPyConnection | None = None
        self._uncommitted = (0, 0)  # staged rows and bytes not yet committed (writer thread only)
        self._submitted: dict[str, int] = {}  # table -> rows handed to the writer so far
        self._quick = False  # whether the last chunk came from a vectorised connector (writer thread)
        self._limited = False  # whether this batch holds DuckDB's staging settings
        # DuckDB releases the GIL while it writes, so staging runs on one background thread (with its
        # own connection: its commits are not the batch's) while the connector maps the next rows;
        # one thread keeps the chunks in order.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medspace-store")
        self._pending: deque[Future[None]] = deque()

    def __enter__(self) -> BatchWriter:
        with _live_lock:
            _live_tokens.add(self._token)
        self._started = datetime.now()
        self._limit_resources()
        self._wcon = self.con.cursor()
        self._open = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._open:
            return
        self._open = False
        try:
            if exc_type is None:
                try:
                    self.flush()
                    self._submit(self._commit_staging)
                    self._drain()
                except BaseException:
                    self._drain(raise_errors=False)
                    raise
                self._restore_resources()
                self._finish()
            else:
                self._drain(raise_errors=False)
        finally:
            self._writer.shutdown(wait=True)
            self._drop_staging()
            self._restore_resources()
            with _live_lock:
                _live_tokens.discard(self._token)

    def _limit_resources(self) -> None:
        """Leave a core to the connector while the batch stages. DuckDB's threads are a setting of the
        whole database, so the first open batch on a store file saves it and the last one restores it."""
        key = str(self.store.path.resolve())
        with _live_lock:
            count, saved = _limited.get(key, (0, {}))
            if count == 0:
                threads = int(self.con.execute("SELECT current_setting('threads')").fetchall()[0][0])
                saved = {"threads": str(threads)}
                if threads > STAGING_THREADS:
                    self.con.execute(f"SET threads = {STAGING_THREADS}")
            _limited[key] = (count + 1, saved)
        self._limited = True

    def _restore_resources(self) -> None:
        if not self._limited:
            return
        self._limited = False
        key = str(self.store.path.resolve())
        with _live_lock:
            count, saved = _limited.pop(key)
            if count > 1:
                _limited[key] = (count - 1, saved)
                return
            for name, value in saved.items():
                self.con.execute(f"SET {name} = {value}")

    # --- Sink -------------------------------------------------------------------------------
    def add(self, table: str, row: dict[str, Any]) -> None:
        """Add one checked row; a later row with the same id in the batch replaces it."""
        p = self._tables.get(table)
        if p is None:
            p = self._tables[table] = _Pending()
        p.rows.append(row)
        p.from_source += 1
        p.from_arrow = False
        if len(p.rows) >= PIECE_ROWS:
            self._buffer(table, p, self._to_arrow(table, p))

    def add_arrow(self, table: str, data: pa.Table) -> None:
        """Add many checked rows at once; a later row with an id already added replaces it."""
        p = self._tables.get(table)
        if p is None:
            p = self._tables[table] = _Pending()
        if p.rows:  # keep the order rows came in: the last row of an id wins
            self._take(table, p, self._to_arrow(table, p))
        p.from_source += data.num_rows
        p.from_arrow = True
        piece = data.select(list(TABLES[table].names))
        schema = _buffer_schema(table)
        if piece.schema != schema:
            piece = piece.cast(schema)
        self._buffer(table, p, piece)

    def quarantine(self, item: Quarantined) -> None:
        """Keep an input unit that did not parse or map."""
        self._quarantine.append(item)
        self.report.quarantined[item.reason.value] += 1
        if len(self._quarantine) >= QUARANTINE_CHUNK:
            self._flush_quarantine()

    def skip(self, kind: str, n: int = 1) -> None:
        """Count valid input outside the model."""
        self.report.skipped[kind] += n

    def finding(self, item: Finding, n: int = 1) -> None:
        """Count a data-quality finding per source; the first place each kind was seen is its example."""
        key = (item.connector, item.source, item.table, item.field, item.kind.value)
        hit = self.report.findings.get(key)
        if hit is None:
            self.report.findings[key] = [n, item.position]
        else:
            hit[0] += n

    def end_source(self, source: str | None = None) -> None:
        """A source file is done: stage the tables it gave many rows now, while the next one is read. Its
        name, when given, is recorded: its findings in this batch replace those of its earlier ingests."""
        if source is not None:
            self.report.sources[source] = None
        for table, p in self._tables.items():
            if p.from_source >= SOURCE_FLUSH_ROWS:
                self._write(table, p)
            p.from_source = 0

    # --- internals ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Stage everything buffered (the batch still commits, or not, as a whole)."""
        for table, p in self._tables.items():
            self._write(table, p)
        self._flush_quarantine()

    def _to_arrow(self, table: str, p: _Pending) -> pa.Table:
        rows, p.rows = p.rows, []
        try:
            return pa.Table.from_struct_array(pa.array(rows, type=_row_type(table)))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Arrow's message quotes the value: name the field instead.
            for f in _buffer_schema(table):
                try:
                    pa.array([r.get(f.name) for r in rows], type=f.type)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    raise StoreError(f"{table}.{f.name}: a value is not of the field's type ({f.type})") from None
            raise StoreError(f"{table}: rows do not fit the catalogue's types") from None

    def _take(self, table: str, p: _Pending, piece: pa.Table) -> None:
        p.pieces.append(piece)
        p.n += piece.num_rows
        size = piece.nbytes
        p.nbytes += size
        self._buffered += size
        counts = self.report.tables.get(table)
        if counts is None:
            counts = self.report.tables[table] = TableCounts()
        counts.received += piece.num_rows

    def _buffer(self, table: str, p: _Pending, piece: pa.Table) -> None:
        self._take(table, p, piece)
        if p.n >= CHUNK_ROWS or p.nbytes >= CHUNK_BYTES:
            self._write(table, p)
        elif self._buffered >= BUFFER_BYTES:
            name = max(self._tables, key=lambda t: self._tables[t].nbytes)
            self._write(name, self._tables[name])

    def _write(self, table: str, p: _Pending) -> None:
        if p.rows:
            self._take(table, p, self._to_arrow(table, p))
        if not p.pieces:
            return
        data = pa.concat_tables(p.pieces)
        self._buffered -= p.nbytes
        p.pieces, p.n, p.nbytes = [], 0, 0
        # Chunks end where the staging table's row groups do, and the staging transaction commits
        # when one is full: DuckDB then writes that row group once, compressed, and never again. A
        # commit in the middle of a row group would have it decompressed and written again at the
        # next one, which costs time and, above all, memory.
        done = self._submitted.get(table, 0)
        while data.num_rows:
            room = ROW_GROUP_ROWS - done % ROW_GROUP_ROWS
            part, data = data.slice(0, room), data.slice(room)
            done += part.num_rows
            self._submit(self._stage_chunk, table, part, done % ROW_GROUP_ROWS == 0, p.from_arrow)
        self._submitted[table] = done

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        while len(self._pending) >= MAX_PENDING:
            self._pending.popleft().result()  # re-raises a failed write here, in the caller's thread
        self._pending.append(self._writer.submit(fn, *args))

    def _drain(self, *, raise_errors: bool = True) -> None:
        """Wait for every queued write; the first failure is raised unless the batch is failing anyway."""
        while self._pending:
            fut = self._pending.popleft()
            try:
                fut.result()
            except BaseException:
                if raise_errors:
                    self._drain(raise_errors=False)
                    raise

    def _stage_chunk(self, table: str, data: pa.Table, fills_group: bool = False, quick: bool = False) -> None:
        """Append a chunk to the table's staging table (on the writer thread); commit the staging
        transaction when the chunk fills a row group, or when it holds too much."""
        con = self._wcon
        assert con is not None
        rows, size = self._uncommitted
        if rows == 0 and size == 0:
            con.execute("BEGIN")
        # `_stg` is found by DuckDB's replacement scan of this frame's locals. Unlike register(), that
        # lets DuckDB release the Arrow buffers as soon as the statement is done.
        _stg = data
        stage = self._staged.get(table)
        if stage is None:
            stage = f"{STAGE_PREFIX}{self._token}_{table}"
            con.execute(quarantine_ddl(stage) if table == "quarantine" else table_ddl(table, stage))
            self._staged[table] = stage
        if table != "quarantine" and table not in self._dups and self._again(con, table, stage, data):
            self._dups.add(table)
        try:
            self._quick = quick
            with _quick_gil_handoff() if quick else contextlib.nullcontext():
                con.execute(f"INSERT INTO {stage} SELECT * FROM _stg").fetchall()
        except duckdb.Error as e:
            # DuckDB names the column, never a value; the staging table is named as the table it is for.
            raise StoreError(f"cannot write {table}: {str(e).replace(stage, table)}") from None
        self._uncommitted = (rows + data.num_rows, size + data.nbytes)
        if fills_group or self._uncommitted[1] >= STAGE_COMMIT_BYTES:
            self._commit_staging()

    def _again(self, con: duckdb.DuckDBPyConnection, table: str, stage: str, data: pa.Table) -> bool:
        """Whether a chunk repeats an id, in itself or from an earlier chunk (on the writer thread).

        Checked as chunks come so that the end needs no aggregate over the whole batch, whose memory
        would grow with it. Ids mostly ascend within a source: a chunk whose ids all sort after every
        id staged so far needs no look at the staging table; otherwise the semi-join probes it, and
        DuckDB skips the row groups whose min/max id cannot match. A chunk whose ids ascend strictly
        (the usual case, again) needs no hashing to know it repeats none.
        """
        ids = data.column("id").combine_chunks()
        n = len(ids)
        if n > 1 and ids.null_count == 0 and pc.all(pc.less(ids.slice(0, n - 1), ids.slice(1))).as_py():
            lo, hi = ids[0].as_py(), ids[n - 1].as_py()  # strictly ascending: no id twice, bounds at the ends
        else:
            if pc.count_distinct(ids).as_py() < n:
                return True
            bounds = pc.min_max(ids)
            lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        top = self._max_id.get(table)
        if hi is not None and (top is None or hi > top):
            self._max_id[table] = hi
        if top is None or lo is None or lo > top:
            return False
        _ids = data.select(["id"])
        query = f"SELECT EXISTS (SELECT 1 FROM _ids s SEMI JOIN {stage} t ON s.id = t.id)"
        return bool(con.execute(query).fetchall()[0][0])

    def _commit_staging(self) -> None:
        """Commit what is staged so far (on the writer thread)."""
        if self._uncommitted != (0, 0):
            assert self._wcon is not None
            with _quick_gil_handoff() if self._quick else contextlib.nullcontext():
                self._wcon.execute("COMMIT")
            self._uncommitted = (0, 0)

    def _finish(self) -> None:
        """Move every staging table into its table and record the batch, in one transaction."""
        con = self.con
        r = self.report
        moved: dict[str, tuple[int, int, int]] = {}
        con.execute("BEGIN")
        try:
            defs = dict(con.execute(
                "SELECT table_name, sql FROM duckdb_tables() WHERE schema_name = current_schema()"
            ).fetchall())
            indexed = {row[0] for row in con.execute("SELECT DISTINCT table_name FROM duckdb_indexes()").fetchall()}
            for table in TABLES:
                if table in self._staged:
                    stage = self._staged[table]
                    # The staging table can become the table only if it is defined exactly like it.
                    same = table not in indexed and defs.get(stage, "").replace(stage, table, 1) == defs.get(table)
                    moved[table] = self._move(table, stage, same)
            quarantined_new = self._move_quarantine() if "quarantine" in self._staged else 0
            # One statement each, from Arrow: executemany costs a statement per row (a batch reads 1,000s of files).
            if r.findings:
                keys, counts = list(r.findings), list(r.findings.values())
                _dq = pa.table({
                    "batch_id": pa.array([r.batch_id] * len(keys), pa.int64()),
                    "connector": [k[0] for k in keys], "table_name": [k[2] for k in keys],
                    "field": [k[3] for k in keys], "kind": [k[4] for k in keys],
                    "count": pa.array([v[0] for v in counts], pa.int64()),
                    "example_source": [k[1] for k in keys], "example_position": [v[1] for v in counts],
                })
                con.execute("INSERT INTO data_quality SELECT * FROM _dq")
            read = list(dict.fromkeys([*r.sources, *(key[1] for key in r.findings)]))
            if read:
                _src = pa.table({"batch_id": pa.array([r.batch_id] * len(read), pa.int64()), "source": read})
                con.execute("INSERT INTO ingest_source SELECT * FROM _src")
            con.execute(
                "INSERT INTO ingest_batch (id, label, started_at, finished_at, rows_received, rows_new,"
                " rows_updated, quarantined, skipped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [r.batch_id, r.label, self._started, datetime.now(), sum(m[0] for m in moved.values()),
                 sum(m[1] for m in moved.values()), sum(m[2] for m in moved.values()),
                 sum(r.quarantined.values()), sum(r.skipped.values())],
            )
            for stage in self._staged.values():
                con.execute(f"DROP TABLE IF EXISTS {stage}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        for table, (received, new, updated) in moved.items():
            r.tables[table] = TableCounts(received=received, new=new, updated=updated)
        r.quarantined_new += quarantined_new
        r.committed = True

    def _move(self, table: str, stage: str, same_definition: bool) -> tuple[int, int, int]:
        """Upsert a staging table into its table by `id`; (rows received, new, updated), where an id
        given more than once in the batch is received once, with its last values."""
        con = self.con
        if table in self._dups:
            # A later row with an id already staged replaces it, as in `add`: staging appends in
            # arrival order, so the last rowid of an id is the one to keep.
            con.execute(
                f"DELETE FROM {stage} WHERE rowid IN (SELECT rowid FROM {stage} "
                "QUALIFY row_number() OVER (PARTITION BY id ORDER BY rowid DESC) > 1)"
            )
        received, has_rows = con.execute(
            f"SELECT (SELECT count(*) FROM {stage}), EXISTS (SELECT 1 FROM {table})"
        ).fetchall()[0]
        received = int(received)
        if not has_rows:
            if same_definition:
                # The common bulk load: the table is empty, so the staged rows simply become it.
                con.execute(f"DROP TABLE {table}")
                con.execute(f"ALTER TABLE {stage} RENAME TO {table}")
            else:
                con.execute(f"INSERT INTO {table} SELECT * FROM {stage}")
            return received, received, 0
        cols = TABLES[table].names
        s_row = "row(" + ", ".join(f"s.{c}" for c in cols) + ")"
        t_row = "row(" + ", ".join(f"t.{c}" for c in cols) + ")"
        counts = con.execute(
            f"SELECT count(*) FILTER (WHERE t.id IS NULL), "
            f"count(*) FILTER (WHERE t.id IS NOT NULL AND {s_row} IS DISTINCT FROM {t_row}) "
            f"FROM {stage} s LEFT JOIN {table} t ON s.id = t.id"
        ).fetchall()[0]
        new, changed = int(counts[0]), int(counts[1])
        if changed:
            con.execute(
                f"DELETE FROM {table} t USING {stage} s WHERE t.id = s.id AND {s_row} IS DISTINCT FROM {t_row}"
            )
        if new or changed:
            con.execute(f"INSERT INTO {table} SELECT s.* FROM {stage} s ANTI JOIN {table} t ON s.id = t.id")
        return received, new, changed

    def _move_quarantine(self) -> int:
        """Add the staged quarantine's new units; how many were new."""
        stage = self._staged["quarantine"]
        row = self.con.execute(
            f"INSERT INTO quarantine SELECT q.* FROM (SELECT DISTINCT ON (id) * FROM {stage}) q "
            "ANTI JOIN quarantine t ON q.id = t.id"
        ).fetchall()
        return int(row[0][0]) if row else 0

    def _drop_staging(self) -> None:
        """Drop what is left of the staging tables (after a failure; a no-op after a commit)."""
        if self._wcon is not None:
            self._wcon.close()  # rolls back what was staged and not committed
            self._wcon = None
        for stage in self._staged.values():
            with contextlib.suppress(duckdb.Error):  # if not, the store's next opening drops it
                self.con.execute(f"DROP TABLE IF EXISTS {stage}")
        self._staged.clear()

    def _flush_quarantine(self) -> None:
        if not self._quarantine:
            return
        now = datetime.now()
        items = self._quarantine
        self._quarantine = []
        ids = [quarantine_id(q.connector, q.position, q.reason.value, q.detail, q.raw) for q in items]
        data = pa.table(
            {
                "id": ids,
                "batch_id": pa.array([self.report.batch_id] * len(items), pa.int64()),
                "connector": [q.connector for q in items],
                "source": [q.source for q in items],
                "position": [q.position for q in items],
                "reason": [q.reason.value for q in items],
                "detail": [q.detail for q in items],
                "raw": pa.array([q.raw for q in items], pa.binary()),
                "received_at": pa.array([now] * len(items), pa.timestamp("us")),
            }
        )
        self._submit(self._stage_chunk, "quarantine", data)
