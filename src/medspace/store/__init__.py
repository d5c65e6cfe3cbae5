"""The node's DuckDB store: schema, transactional batch ingest, statistics."""

from medspace.store.duckdb_store import BatchWriter, IngestReport, Store, TableCounts
from medspace.store.errors import SchemaVersionError, StoreError, StoreOpenError
from medspace.store.schema import SCHEMA_VERSION
from medspace.store.stats import data_quality, node_stats

__all__ = [
    "SCHEMA_VERSION",
    "BatchWriter",
    "IngestReport",
    "SchemaVersionError",
    "Store",
    "StoreError",
    "StoreOpenError",
    "TableCounts",
    "data_quality",
    "node_stats",
]
