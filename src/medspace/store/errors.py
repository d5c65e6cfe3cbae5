"""Errors of the node's store."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's errors."""


class SchemaVersionError(StoreError):
    """The store file was written by a newer medspace, or its schema cannot be migrated."""


class StoreOpenError(StoreError):
    """The store file cannot be opened (missing when read-only, locked, not a DuckDB file)."""


class StoreBusyError(StoreOpenError):
    """Another process holds the store: a writer excludes everyone, a reader excludes writers."""

    def __init__(self, message: str, *, who: str = "another process", pid: int | None = None,
                 command: str | None = None) -> None:
        super().__init__(message)
        self.who = who  # the holder in a few words, e.g. "medspace ingest (PID 812, writing since ...)"
        self.pid = pid
        self.command = command  # what a medspace writer recorded, if the holder is one
