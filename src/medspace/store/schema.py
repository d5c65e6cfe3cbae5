"""The store's schema, derived from the field catalogue, and its versioned migrations."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from medspace.model import TABLES

SCHEMA_VERSION = 1

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS {name} (
    id VARCHAR NOT NULL,          -- sha256 of connector, position and raw bytes: re-ingest adds nothing
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


def _v1(con: duckdb.DuckDBPyConnection) -> None:
    for name in TABLES:
        con.execute(table_ddl(name))
    con.execute(quarantine_ddl())
    con.execute(BATCH_DDL)


# Version n is reached by applying MIGRATIONS[n - 1] to a store at version n - 1.
MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [_v1]
assert len(MIGRATIONS) == SCHEMA_VERSION
