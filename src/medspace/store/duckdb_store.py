"""The node's local store: one DuckDB file per hospital, with the model's tables and a quarantine."""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from medspace.connect.base import Quarantined
from medspace.model import TABLES
from medspace.store.errors import SchemaVersionError, StoreError, StoreOpenError
from medspace.store.schema import MIGRATIONS, SCHEMA_VERSION

FLUSH_ROWS = 50_000  # rows buffered per table before they go to DuckDB: bounds an ingest's memory


@dataclass
class TableCounts:
    """What one batch did to one table."""

    received: int = 0
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
        }


class Store:
    """A hospital node's DuckDB store."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise StoreOpenError(f"no store at {self.path}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except (duckdb.Error, OSError) as e:
            raise StoreOpenError(f"cannot open store {self.path}: {e}") from None
        self.read_only = read_only
        self._migrate()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()

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

    def batch(self, label: str) -> BatchWriter:
        """A transactional batch: everything added commits together, or nothing does."""
        if self.read_only:
            raise StoreError("store opened read-only")
        return BatchWriter(self, label)

    def count(self, table: str) -> int:
        """Rows in a table."""
        if table not in TABLES and table != "quarantine":
            raise StoreError(f"unknown table {table!r}")
        row = self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0]
        return int(row[0]) if row else 0

    def arrow(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run a read query and return Arrow (for tools and tests inside the node)."""
        return self.con.sql(sql, params=params).to_arrow_table()


class BatchWriter:
    """The store's sink for connectors: buffers rows per table, upserts them by `id` in bounded
    chunks, all inside one transaction. Implements `medspace.connect.base.Sink`."""

    def __init__(self, store: Store, label: str) -> None:
        self.store = store
        self.con = store.con
        self._buf: dict[str, dict[str, dict[str, Any]]] = {}
        self._quarantine: list[Quarantined] = []
        row = self.con.execute("SELECT coalesce(max(id), 0) + 1 FROM ingest_batch").fetchall()[0]
        self.report = IngestReport(batch_id=int(row[0]) if row else 1, label=label)
        self._open = False
        # DuckDB releases the GIL while it writes, so writes run on one background thread while the
        # connector maps the next rows; one thread keeps them in order, at most two wait (memory).
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medspace-store")
        self._pending: deque[Future[None]] = deque()

    def __enter__(self) -> BatchWriter:
        self.con.execute("BEGIN")
        self._open = True
        self.con.execute(
            "INSERT INTO ingest_batch (id, label, started_at) VALUES (?, ?, ?)",
            [self.report.batch_id, self.report.label, datetime.now()],
        )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._open:
            return
        self._open = False
        if exc_type is not None:
            self._drain(raise_errors=False)
            self._writer.shutdown(wait=True)
            self.con.execute("ROLLBACK")
            return
        try:
            self.flush()
            self._drain()
            r = self.report
            self.con.execute(
                "UPDATE ingest_batch SET finished_at = ?, rows_received = ?, rows_new = ?, rows_updated = ?,"
                " quarantined = ?, skipped = ? WHERE id = ?",
                [datetime.now(), r.rows_received, r.rows_new, r.rows_updated,
                 sum(r.quarantined.values()), sum(r.skipped.values()), r.batch_id],
            )
            self.con.execute("COMMIT")
            r.committed = True
        except BaseException:
            self._drain(raise_errors=False)
            self.con.execute("ROLLBACK")
            raise
        finally:
            self._writer.shutdown(wait=True)

    # --- Sink -------------------------------------------------------------------------------
    def add(self, table: str, row: dict[str, Any]) -> None:
        """Add one checked row; a later row with the same id in the batch replaces it."""
        buf = self._buf.setdefault(table, {})
        buf[row["id"]] = row
        if len(buf) >= FLUSH_ROWS:
            self._flush_rows(table)

    def add_arrow(self, table: str, data: pa.Table) -> None:
        """Add many checked rows at once."""
        self._buf_flush_if_any(table)
        self._submit(self._upsert, table, data.select(list(TABLES[table].names)))

    def quarantine(self, item: Quarantined) -> None:
        """Keep an input unit that did not parse or map."""
        self._quarantine.append(item)
        self.report.quarantined[item.reason.value] += 1
        if len(self._quarantine) >= 5_000:
            self._flush_quarantine()

    def skip(self, kind: str, n: int = 1) -> None:
        """Count valid input outside the model."""
        self.report.skipped[kind] += n

    # --- internals ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Write everything buffered (still inside the batch's transaction)."""
        for table in list(self._buf):
            self._flush_rows(table)
        self._flush_quarantine()

    def _buf_flush_if_any(self, table: str) -> None:
        if self._buf.get(table):
            self._flush_rows(table)

    def _flush_rows(self, table: str) -> None:
        rows = self._buf.pop(table, None)
        if not rows:
            return
        spec = TABLES[table]
        values = list(rows.values())
        arrays = [pa.array([r.get(f.name) for r in values], type=f.arrow_type) for f in spec.fields]
        self._submit(self._upsert, table, pa.Table.from_arrays(arrays, schema=spec.arrow_schema))

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        while len(self._pending) >= 2:
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

    def _upsert(self, table: str, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        cols = TABLES[table].names
        counts = self.report.tables.setdefault(table, TableCounts())
        counts.received += data.num_rows
        con = self.con
        ids = data.column("id")
        if pc.count_distinct(ids).as_py() < len(ids):
            # Within one chunk a later row with the same id wins, as in `add`.
            keep = pa.table({"id": ids, "_n": pa.array(range(len(ids)), pa.int64())}).group_by("id").aggregate(
                [("_n", "max")]
            )
            last = keep.column("_n_max").combine_chunks()
            data = data.take(pc.take(last, pc.array_sort_indices(last)))
        # `_stg` is found by DuckDB's replacement scan of this frame's locals. Unlike register(), that
        # lets DuckDB release the Arrow buffers after each statement instead of at commit, which keeps
        # a large batch's memory flat.
        _stg = data
        known = con.execute(f"SELECT EXISTS (SELECT 1 FROM _stg s SEMI JOIN {table} t ON s.id = t.id)")
        if not known.fetchall()[0][0]:
            # The common bulk-load case: every id is new, nothing to compare.
            con.execute(f"INSERT INTO {table} SELECT * FROM _stg").fetchall()
            counts.new += data.num_rows
            return
        self._merge(table, cols, counts, data)

    def _merge(self, table: str, cols: tuple[str, ...], counts: TableCounts, _stg: pa.Table) -> None:
        """Upsert `_stg` into a non-empty table: insert new ids, replace changed rows, leave the rest."""
        con = self.con
        s_row = "row(" + ", ".join(f"s.{c}" for c in cols) + ")"
        t_row = "row(" + ", ".join(f"t.{c}" for c in cols) + ")"
        row = con.execute(
            f"SELECT count(*) FILTER (WHERE t.id IS NULL), "
            f"count(*) FILTER (WHERE t.id IS NOT NULL AND {s_row} IS DISTINCT FROM {t_row}) "
            f"FROM _stg s LEFT JOIN {table} t ON s.id = t.id"
        ).fetchall()[0]
        new, changed = (int(row[0]), int(row[1])) if row else (0, 0)
        counts.new += new
        counts.updated += changed
        if changed:
            con.execute(
                f"DELETE FROM {table} t USING _stg s WHERE t.id = s.id AND {s_row} IS DISTINCT FROM {t_row}"
            )
        if new or changed:
            con.execute(f"INSERT INTO {table} SELECT s.* FROM _stg s ANTI JOIN {table} t ON s.id = t.id")

    def _flush_quarantine(self) -> None:
        if not self._quarantine:
            return
        now = datetime.now()
        items = self._quarantine
        self._quarantine = []
        ids = [
            hashlib.sha256(b"\x00".join([q.connector.encode(), q.position.encode(), q.raw])).hexdigest()
            for q in items
        ]
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
        self._submit(self._insert_quarantine, data)

    def _insert_quarantine(self, data: pa.Table) -> None:
        _q = data
        before = self.store.count("quarantine")
        self.con.execute(
            "INSERT INTO quarantine SELECT q.* FROM (SELECT DISTINCT ON (id) * FROM _q) q "
            "ANTI JOIN quarantine t ON q.id = t.id"
        ).fetchall()
        self.report.quarantined_new += self.store.count("quarantine") - before
