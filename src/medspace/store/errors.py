"""Errors of the node's store."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's errors."""


class SchemaVersionError(StoreError):
    """The store file was written by a newer medspace, or its schema cannot be migrated."""


class StoreOpenError(StoreError):
    """The store file cannot be opened (missing when read-only, locked, not a DuckDB file)."""
