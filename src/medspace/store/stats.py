"""What a node holds: rows per table and sensitivity level, quarantine per reason, data-quality findings,
ingest batches."""

from __future__ import annotations

from typing import Any

from medspace.model import TABLES
from medspace.store.duckdb_store import Store

# The findings that hold now: for each source, those of the latest batch that read it (a file ingested again
# replaces its rows, so its new findings replace its old ones; a fixed file's findings are gone).
_CURRENT = (
    "SELECT q.* FROM data_quality q JOIN (SELECT source, max(batch_id) AS latest FROM ("
    "SELECT source, batch_id FROM ingest_source UNION ALL SELECT example_source, batch_id FROM data_quality) "
    "GROUP BY source) l ON q.example_source = l.source AND q.batch_id = l.latest"
)


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
            f"SELECT table_name, field, kind, sum(count) FROM ({_CURRENT}) "
            "GROUP BY ALL ORDER BY 4 DESC, 1, 2, 3"
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
    """The data-quality findings that hold now (a re-ingested source's latest ones): table, field, kind,
    count, one example (file and position, never a value) and `sources`, how many files show it."""
    rows = store.con.execute(
        "SELECT connector, table_name, field, kind, sum(count), arg_min(example_source, (batch_id, example_source)), "
        "arg_min(example_position, (batch_id, example_source)), count(DISTINCT example_source) "
        f"FROM ({_CURRENT}) WHERE (? IS NULL OR table_name = ?) AND (? IS NULL OR kind = ?) "
        "GROUP BY ALL ORDER BY 5 DESC, 2, 3, 4, 1",
        [table, table, kind, kind],
    ).fetchall()
    return [
        {"connector": c, "table": t, "field": f, "kind": k, "count": int(n),
         "example": {"source": src, "position": pos}, "sources": int(files)}
        for c, t, f, k, n, src, pos, files in rows
    ]


def quarantined(store: Store, *, reason: str | None = None, source: str | None = None,
                limit: int | None = None) -> dict[str, Any]:
    """What was quarantined: file, position, reason, detail, batch and when; never the value or the raw
    bytes. `source` matches any part of the file's path; `limit` caps the items listed (not the total)."""
    where = "WHERE (? IS NULL OR reason = ?) AND (? IS NULL OR contains(source, ?))"
    params: list[Any] = [reason, reason, source, source]
    total = int(store.con.execute(f"SELECT count(*) FROM quarantine {where}", params).fetchall()[0][0])
    # Positions are "line 17", "entry 3", "row 120": ordered by their number, not as text.
    rows = store.con.execute(
        "SELECT connector, source, position, reason, detail, batch_id, received_at FROM quarantine "
        f"{where} ORDER BY batch_id, source, TRY_CAST(regexp_extract(position, '(\\d+)', 1) AS BIGINT), position, "
        "reason, detail" + (" LIMIT ?" if limit is not None else ""),
        params + ([limit] if limit is not None else []),
    ).fetchall()
    return {
        "total": total,
        "items": [
            {"file": src, "position": pos, "reason": r, "detail": d, "connector": c, "batch": int(b),
             "received_at": at.isoformat(timespec="seconds")}
            for c, src, pos, r, d, b, at in rows
        ],
    }


def deid_views(store: Store) -> list[dict[str, Any]]:
    """The de-identified views a store holds (schemas `deid_*`): policy, tables and their rows, when built."""
    con = store.con
    schemas = [str(r[0]) for r in con.execute(
        "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database() "
        "AND starts_with(schema_name, 'deid_') ORDER BY 1"
    ).fetchall()]
    applied: dict[str, tuple[Any, ...]] = {}
    has_log = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = 'deid_application'"
    ).fetchall()[0][0]
    if has_log:
        applied = {str(r[0]): r[1:] for r in con.execute(
            "SELECT view, policy, applied_at, node_key_version, policy_sha256 FROM main.deid_application"
        ).fetchall()}
    views = []
    for schema in schemas:
        names = [str(r[0]) for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? "
            "ORDER BY 1", [schema]
        ).fetchall()]
        tables = {n: int(con.execute(f'SELECT count(*) FROM "{schema}"."{n}"').fetchall()[0][0]) for n in names}
        policy, at, nkv, sha = applied.get(schema, (None, None, None, None))
        views.append({
            "view": schema, "policy": policy, "tables": tables, "rows": sum(tables.values()),
            "built_at": at.isoformat(timespec="seconds") if at is not None else None,
            "node_key_version": nkv, "policy_sha256": sha,
        })
    return views
