"""What a node holds: rows per table and sensitivity level, quarantine per reason, data-quality findings,
ingest batches."""

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
    findings = {
        f"{t}.{f}:{k}": int(n)
        for t, f, k, n in con.execute(
            "SELECT table_name, field, kind, sum(count) FROM data_quality GROUP BY ALL ORDER BY 4 DESC, 1, 2, 3"
        ).fetchall()
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
        "data_quality": {"total": sum(findings.values()), "by_field_and_kind": findings},
        "batches": int(batches[0]) if batches else 0,
        "last_ingest": batches[1].isoformat(timespec="seconds") if batches and batches[1] else None,
    }


def data_quality(store: Store, *, table: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Every data-quality finding of the store, summed over batches: table, field, kind, count and the
    first place it was seen (file and position, never a value)."""
    rows = store.con.execute(
        "SELECT connector, table_name, field, kind, sum(count), arg_min(example_source, batch_id), "
        "arg_min(example_position, batch_id), min(batch_id), max(batch_id) FROM data_quality "
        "WHERE (? IS NULL OR table_name = ?) AND (? IS NULL OR kind = ?) "
        "GROUP BY ALL ORDER BY 5 DESC, 2, 3, 4, 1",
        [table, table, kind, kind],
    ).fetchall()
    return [
        {"connector": c, "table": t, "field": f, "kind": k, "count": int(n),
         "example": {"source": src, "position": pos}, "batches": [int(b0), int(b1)]}
        for c, t, f, k, n, src, pos, b0, b1 in rows
    ]
