"""The store's statistics as of its last committed batch, kept in a JSON file beside it.

DuckDB admits no reader while another process writes the file, and an ingest may hold a store for hours.
A writer that committed a batch rewrites `<store>.stats.json` (atomically) before it lets the store go, so
`medspace node stats` can still answer while the next ingest runs: with the figures as of batch N, which
is exactly what a reader of the store would see, since no part of a running batch is visible.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medspace.store.sidecar import SNAPSHOT_SUFFIX, sidecar, write_atomic

if TYPE_CHECKING:
    from medspace.store.duckdb_store import Store


def snapshot_path(store: Path) -> Path:
    """Where a store's statistics snapshot is kept."""
    return sidecar(store, SNAPSHOT_SUFFIX)


def last_batch(store: Store) -> int:
    """The id of the store's last committed batch (0 before the first)."""
    row = store.con.execute("SELECT coalesce(max(id), 0) FROM ingest_batch WHERE finished_at IS NOT NULL").fetchall()
    return int(row[0][0]) if row else 0


def write_snapshot(store: Store) -> dict[str, Any]:
    """Write the store's statistics beside it, as of its last committed batch; returns what was written."""
    from medspace.store.stats import node_stats

    data = node_stats(store)
    data["snapshot"] = {"batch": last_batch(store), "written_at": datetime.now().isoformat(timespec="seconds")}
    write_atomic(snapshot_path(store.path), json.dumps(data), like=store.path)
    return data


def read_snapshot(store: Path) -> dict[str, Any] | None:
    """The statistics snapshot beside a store, or None if there is no readable one."""
    try:
        data = json.loads(snapshot_path(store).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("snapshot"), dict):
        return None
    return data


def snapshot_batch(store: Path) -> int | None:
    """The batch a store's snapshot is as of, or None if there is none."""
    data = read_snapshot(store)
    return int(data["snapshot"]["batch"]) if data is not None else None
