"""The node's DuckDB store: schema, transactional batch ingest, statistics."""

from medspace.store.duckdb_store import BatchWriter, IngestReport, Store, TableCounts
from medspace.store.errors import SchemaVersionError, StoreBusyError, StoreError, StoreOpenError
from medspace.store.schema import SCHEMA_VERSION
from medspace.store.snapshot import read_snapshot, write_snapshot
from medspace.store.stats import data_quality, deid_views, node_stats, quarantined

__all__ = [
    "SCHEMA_VERSION",
    "BatchWriter",
    "IngestReport",
    "SchemaVersionError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "StoreOpenError",
    "TableCounts",
    "data_quality",
    "deid_views",
    "node_stats",
    "quarantined",
    "read_snapshot",
    "write_snapshot",
]
