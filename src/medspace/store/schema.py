"""The store's schema, derived from the field catalogue, and its versioned migrations."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

import duckdb

from medspace.model import TABLES

SCHEMA_VERSION = 3

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS {name} (
    id VARCHAR NOT NULL,          -- quarantine_id(): sha256 of connector, position, reason, detail and raw bytes
    batch_id BIGINT NOT NULL,
    connector VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    position VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    detail VARCHAR NOT NULL,
    raw BLOB NOT NULL,
    received_at TIMESTAMP NOT NULL
)"""


def quarantine_ddl(name: str = "quarantine") -> str:
    """CREATE TABLE for the quarantine, or for a table shaped like it (a batch's staging table)."""
    return QUARANTINE_DDL.format(name=name)


BATCH_DDL = """
CREATE TABLE IF NOT EXISTS ingest_batch (
    id BIGINT NOT NULL,
    label VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    rows_received BIGINT NOT NULL DEFAULT 0,
    rows_new BIGINT NOT NULL DEFAULT 0,
    rows_updated BIGINT NOT NULL DEFAULT 0,
    quarantined BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0
)"""


def table_ddl(name: str, as_name: str | None = None) -> str:
    """CREATE TABLE for one model table, under its own name or `as_name` (a batch's staging table,
    which must be defined exactly like the table it is staged for).

    No PRIMARY KEY: the batch writer keeps `id` unique itself (it upserts by anti-join), which keeps
    memory flat in the table size instead of holding an ART index of every key in RAM.
    """
    spec = TABLES[name]
    cols = ",\n    ".join(
        f"{f.name} {f.sql_type}{' NOT NULL' if f.required else ''}" for f in spec.fields
    )
    return f"CREATE TABLE IF NOT EXISTS {as_name or name} (\n    {cols}\n)"


DATA_QUALITY_DDL = """
CREATE TABLE IF NOT EXISTS data_quality (
    batch_id BIGINT NOT NULL,
    connector VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    field VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,          -- a medspace.connect.errors.FindingKind
    count BIGINT NOT NULL,
    example_source VARCHAR NOT NULL,    -- the first place it was seen: file and position, never a value
    example_position VARCHAR NOT NULL
)"""


def quarantine_id(connector: str, position: str, reason: str, detail: str, raw: bytes) -> str:
    """A quarantined unit's id: the same failure of the same input is kept once however often it is
    ingested, and each failure of one input (a CSV row failing for two tables) has its own row."""
    parts = [connector.encode(), position.encode(), reason.encode(), detail.encode(), raw]
    return hashlib.sha256(b"\x00".join(parts)).hexdigest()


def _v1(con: duckdb.DuckDBPyConnection) -> None:
    for name in _V1_TABLES:
        con.execute(_V1_TABLES[name])
    con.execute(quarantine_ddl())
    con.execute(BATCH_DDL)


def _v2(con: duckdb.DuckDBPyConnection) -> None:
    """Coded tables keep local and text-only concepts (code and code_system nullable, `code_status`);
    the data-quality findings; the store's identity; one quarantine row per failure."""
    for name, spec in TABLES.items():
        if "code_status" not in spec:
            continue
        tmp = f"_medspace_v2_{name}"
        con.execute(table_ddl(name, tmp))
        cols = ", ".join("'standard'" if f.name == "code_status" else f.name for f in spec.fields)
        con.execute(f"INSERT INTO {tmp} SELECT {cols} FROM {name}")
        con.execute(f"DROP TABLE {name}")
        con.execute(f"ALTER TABLE {tmp} RENAME TO {name}")
    con.execute(DATA_QUALITY_DDL)
    con.execute("INSERT INTO _medspace_meta SELECT 'store_id', ? WHERE NOT EXISTS "
                "(SELECT 1 FROM _medspace_meta WHERE key = 'store_id')", [str(uuid.uuid4())])
    rows = con.execute("SELECT id, connector, position, reason, detail, raw FROM quarantine").fetchall()
    if rows:
        con.executemany("UPDATE quarantine SET id = ? WHERE id = ? AND position = ?",
                        [[quarantine_id(c, p, r, d, bytes(raw)), i, p] for i, c, p, r, d, raw in rows])


INGEST_SOURCE_DDL = """
CREATE TABLE IF NOT EXISTS ingest_source (
    batch_id BIGINT NOT NULL,
    source VARCHAR NOT NULL         -- a file (or URL) the batch read: its findings replace earlier batches'
)"""


def _v3(con: duckdb.DuckDBPyConnection) -> None:
    """The sources each batch read, so that a file ingested again has only its latest findings counted."""
    con.execute(INGEST_SOURCE_DDL)
    con.execute("INSERT INTO ingest_source SELECT DISTINCT batch_id, example_source FROM data_quality")


# Version n is reached by applying MIGRATIONS[n - 1] to a store at version n - 1.
MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [_v1, _v2, _v3]
assert len(MIGRATIONS) == SCHEMA_VERSION


def _v1_coded(name: str) -> str:
    """A version-1 table: the catalogue's, with code and code_system required and no code_status."""
    spec = TABLES[name]
    cols = ",\n    ".join(
        f"{f.name} {f.sql_type}{' NOT NULL' if f.required or f.name in ('code', 'code_system') else ''}"
        for f in spec.fields if f.name != "code_status"
    )
    return f"CREATE TABLE IF NOT EXISTS {name} (\n    {cols}\n)"


# Migrations replay history: version 1's tables as they were, whatever the catalogue says now.
_V1_TABLES = {name: _v1_coded(name) if "code_status" in TABLES[name] else table_ddl(name) for name in TABLES}
