"""PostgreSQL backend of the audit log: for a hub with several workers.

The sequencer is the head row, locked with ``SELECT ... FOR UPDATE`` at the start of each append transaction: any
number of workers (processes or hosts) may append, and indices are assigned by one of them at a time. A worker whose
cached frontier is older than the head re-reads it (O(log n) rows) under the lock. Sessions run with
``synchronous_commit = on``, so COMMIT returns only once the WAL is flushed: an acknowledged append is durable.
Entries are written with binary COPY, tiles with an upsert.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from medspace.ledger.errors import StorageError
from medspace.ledger.merkle import NodeId
from medspace.ledger.store import DEFAULT_PREFIX, TILE_WIDTH, LogStore, StoreStats

FORMAT = "medspace-ledger/2 rfc9162-sha256 tiles64"
_NAME_RE = re.compile(r"[a-z_][a-z0-9_]{0,40}")


@contextmanager
def _errors(what: str) -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        # Server messages can quote key values; report the class and SQLSTATE only.
        raise StorageError(f"{what}: {type(exc).__name__} ({exc.sqlstate})") from exc


def describe(conninfo: str) -> str:
    """Where a connection string points, without its password: ``user@host:port/dbname``."""
    try:
        d = conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "PostgreSQL (the connection string is malformed)"
    if "service" in d:
        return f"the libpq service {d['service']!r}"
    env = os.environ
    user = d.get("user") or env.get("PGUSER") or getpass.getuser()
    host = d.get("host") or env.get("PGHOST") or "the local socket"
    port = d.get("port") or env.get("PGPORT") or "5432"
    db = d.get("dbname") or env.get("PGDATABASE") or user
    return f"{user}@{host}:{port}/{db}"


_NEEDS_PASSWORD = ("no password supplied", "password authentication failed")


def _connect(conninfo: str) -> psycopg.Connection[Any]:
    """A connection, or a StorageError naming the server and the cause (a connection error quotes no data)."""
    try:
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        cause = text.rsplit(" failed: ", 1)[-1].removeprefix("connection failed: ").replace("FATAL:", "").strip()
        cause = re.sub(r"\s+", " ", cause)
        if any(k in cause for k in _NEEDS_PASSWORD):
            cause += " (give the password in PGPASSWORD, ~/.pgpass or a libpq service file, never in log.json)"
        raise StorageError(f"cannot connect to PostgreSQL at {describe(conninfo)}: {cause}") from None


class PostgresLogStore(LogStore):
    """The log in PostgreSQL tables ``<schema>.<prefix>entries``, ``tiles``, ``head`` (created if absent)."""

    def __init__(
        self, conninfo: str, *, schema: str = "public", prefix: str = DEFAULT_PREFIX, readonly: bool = False
    ) -> None:
        super().__init__()
        if not _NAME_RE.fullmatch(schema) or not _NAME_RE.fullmatch(prefix):
            raise StorageError("schema and table prefix must be lower-case letters, digits and underscores")
        self.url = conninfo
        self.schema = schema
        self.prefix = prefix
        self._e, self._n, self._h, self._m = (
            sql.Identifier(schema, f"{prefix}{t}") for t in ("entries", "tiles", "head", "meta")
        )
        self._conn = _connect(conninfo)
        with _errors("cannot open the log"):
            try:
                if readonly:
                    self._conn.execute("SET default_transaction_read_only = on")
                    self._check_format()
                else:
                    self._setup(f"{schema}.{prefix}")
            except BaseException:
                self._conn.close()
                raise

    def _setup(self, name: str) -> None:
        c = self._conn
        c.execute("SET synchronous_commit = on")
        with c.transaction():
            # Serialise concurrent first opens: CREATE ... IF NOT EXISTS races otherwise.
            c.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
            c.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            c.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value text NOT NULL)").format(self._m)
            )
            c.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (id smallint PRIMARY KEY CHECK (id = 0), size bigint NOT NULL)"
                ).format(self._h)
            )
            c.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (idx bigint PRIMARY KEY, data bytea NOT NULL)").format(self._e)
            )
            c.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (level smallint NOT NULL, tile bigint NOT NULL, "
                    "hashes bytea NOT NULL, PRIMARY KEY (level, tile))"
                ).format(self._n)
            )
            c.execute(sql.SQL("INSERT INTO {} VALUES ('format', %s) ON CONFLICT DO NOTHING").format(self._m), (FORMAT,))
            c.execute(sql.SQL("INSERT INTO {} VALUES (0, 0) ON CONFLICT DO NOTHING").format(self._h))
        self._check_format()

    def _check_format(self) -> None:
        try:
            row = self._conn.execute(sql.SQL("SELECT value FROM {} WHERE key = 'format'").format(self._m)).fetchone()
        except psycopg.errors.UndefinedTable:
            row = None
        if row is None or row[0] != FORMAT:
            raise StorageError("the tables do not hold a log of this format")

    def spec(self, *, readonly: bool = False) -> tuple[str, dict[str, Any]]:
        """(conninfo, options) to open this log again, e.g. in another process."""
        return self.url, {"schema": self.schema, "prefix": self.prefix, "readonly": readonly}

    # --- primitives -------------------------------------------------------------------------------------------

    def _read_size(self) -> int:
        with _errors("cannot read the head"):
            row = self._conn.execute(sql.SQL("SELECT size FROM {} WHERE id = 0").format(self._h)).fetchone()
        if row is None:
            raise StorageError("the head row is missing")
        return int(row[0])

    @contextmanager
    def _sequenced(self) -> Iterator[int]:
        with _errors("append failed"), self._conn.transaction():
            row = self._conn.execute(sql.SQL("SELECT size FROM {} WHERE id = 0 FOR UPDATE").format(self._h)).fetchone()
            if row is None:
                raise StorageError("the head row is missing")
            yield int(row[0])

    def _insert(self, start: int, datas: Sequence[bytes], tiles: Sequence[tuple[int, int, bytes]]) -> None:
        cur = self._conn.cursor()
        big = len(datas) > 16
        if big:
            with cur.copy(sql.SQL("COPY {} (idx, data) FROM STDIN (FORMAT BINARY)").format(self._e)) as cp:
                cp.set_types(["int8", "bytea"])
                for row in zip(range(start, start + len(datas)), datas, strict=True):
                    cp.write_row(row)
        # Pipelined: the remaining writes go out together and cost one round trip (COPY cannot be pipelined, and
        # for a few entries one multi-row INSERT is quicker anyway).
        with self._conn.pipeline():
            if not big:
                cur.execute(
                    sql.SQL("INSERT INTO {} (idx, data) SELECT * FROM unnest(%s::int8[], %s::bytea[])").format(self._e),
                    (list(range(start, start + len(datas))), list(datas)),
                )
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (level, tile, hashes) SELECT * FROM unnest(%s::int2[], %s::int8[], %s::bytea[]) "
                    "ON CONFLICT (level, tile) DO UPDATE SET hashes = excluded.hashes"
                ).format(self._n),
                ([t[0] for t in tiles], [t[1] for t in tiles], [t[2] for t in tiles]),
            )
            cur.execute(sql.SQL("UPDATE {} SET size = %s WHERE id = 0").format(self._h), (start + len(datas),))

    def _read_tile(self, level: int, tile: int) -> bytes | None:
        q = sql.SQL("SELECT hashes FROM {} WHERE level = %s AND tile = %s").format(self._n)
        with _errors("cannot read a tile"):
            row = self._conn.execute(q, (level, tile), binary=True).fetchone()
        return None if row is None else bytes(row[0])

    def _read_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        if not ids:
            return {}
        levels = [lv for lv, _ in ids]
        idxs = [i for _, i in ids]
        q = sql.SQL(
            "SELECT q.l, q.i, substring(t.hashes FROM (mod(q.i, {w}) * 32 + 1)::int FOR 32) FROM {} t "
            "JOIN unnest(%s::int2[], %s::int8[]) AS q(l, i) ON t.level = q.l AND t.tile = q.i / {w}"
        ).format(self._n, w=sql.Literal(TILE_WIDTH))
        with _errors("cannot read nodes"):
            rows = self._conn.execute(q, (levels, idxs), binary=True).fetchall()
        return {(int(lv), int(i)): bytes(h) for lv, i, h in rows if len(h) == 32}

    def scan_entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Stored (idx, data) rows with start <= idx < end in index order, as found (gaps included)."""
        q = sql.SQL("SELECT idx, data FROM {} WHERE idx >= %s AND idx < %s ORDER BY idx").format(self._e)
        with self._lock, _errors("cannot read entries"):
            rows = self._conn.execute(q, (start, end), binary=True).fetchall()
        return [(int(i), bytes(d)) for i, d in rows]

    def _scan_tiles(self, level: int, first: int, last: int) -> list[tuple[int, bytes]]:
        q = sql.SQL("SELECT tile, hashes FROM {} WHERE level = %s AND tile >= %s AND tile <= %s ORDER BY tile").format(
            self._n
        )
        with _errors("cannot read tiles"):
            rows = self._conn.execute(q, (level, first, last), binary=True).fetchall()
        return [(int(t), bytes(h)) for t, h in rows]

    def stats(self) -> StoreStats:
        """Row counts and largest indices, to spot rows beyond the recorded size."""
        with self._lock, _errors("cannot count rows"):
            size = self._read_size()
            row = self._conn.execute(sql.SQL("SELECT min(idx), max(idx) FROM {}").format(self._e)).fetchone()
            levels = self._conn.execute(
                sql.SQL(
                    "SELECT level, sum(length(hashes)) / 32, max(tile * {w} + length(hashes) / 32) - 1, "
                    "count(*) FILTER (WHERE mod(length(hashes), 32) != 0) FROM {} GROUP BY level"
                ).format(self._n, w=sql.Literal(TILE_WIDTH))
            ).fetchall()
        low, top = row if row is not None else (None, None)
        return StoreStats(
            size,
            None if low is None else int(low),
            None if top is None else int(top),
            {int(lv): (int(n), int(m)) for lv, n, m, _ in levels},
            sum(int(r) for *_, r in levels),
        )

    def drop(self) -> None:
        """Delete the log's tables (tests and benchmarks)."""
        with self._lock, _errors("cannot drop the log"), self._conn.transaction():
            for t in (self._e, self._n, self._h, self._m):
                self._conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))

    def _close(self) -> None:
        with _errors("cannot close the log"):
            self._conn.close()
