"""What a node holds: rows per table and sensitivity level, quarantine per reason, ingest batches."""

from __future__ import annotations

from typing import Any

from medspace.model import TABLES
from medspace.store.duckdb_store import Store


def node_stats(store: Store) -> dict[str, Any]:
    """Counts a node's steward (and `medspace node stats`) reports; never any row content."""
    con = store.con
    tables: dict[str, Any] = {}
    levels_total: dict[str, int] = {"L1": 0, "L2": 0, "L3": 0}
    for name in TABLES:
        by_level = dict(
            (str(lv), int(n))
            for lv, n in con.execute(f"SELECT sensitivity, count(*) FROM {name} GROUP BY 1 ORDER BY 1").fetchall()
        )
        for lv, n in by_level.items():
            levels_total[lv] = levels_total.get(lv, 0) + n
        tables[name] = {"rows": sum(by_level.values()), "by_level": by_level}
    quarantine = {
        str(r): int(n)
        for r, n in con.execute("SELECT reason, count(*) FROM quarantine GROUP BY 1 ORDER BY 2 DESC").fetchall()
    }
    by_connector = {
        str(c): int(n)
        for c, n in con.execute("SELECT connector, count(*) FROM quarantine GROUP BY 1 ORDER BY 1").fetchall()
    }
    batches = con.execute(
        "SELECT count(*), max(finished_at) FROM ingest_batch WHERE finished_at IS NOT NULL"
    ).fetchall()[0]
    return {
        "store": str(store.path),
        "schema_version": store.schema_version,
        "tables": tables,
        "rows_by_level": levels_total,
        "quarantine": {"total": sum(quarantine.values()), "by_reason": quarantine, "by_connector": by_connector},
        "batches": int(batches[0]) if batches else 0,
        "last_ingest": batches[1].isoformat(timespec="seconds") if batches and batches[1] else None,
    }
