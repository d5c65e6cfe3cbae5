"""Tables and progress bars for the command line (rich)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


@contextmanager
def progress(console: Console, *, quiet: bool = False) -> Any:
    """A progress bar on stderr-like transient output; silent when `quiet`."""
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=quiet,
    )
    with bar:
        yield bar


def ingest_report(console: Console, report: dict[str, Any]) -> None:
    """What one ingest batch did."""
    t = Table(title=f"ingest batch {report['batch_id']}", title_justify="left")
    for col in ("table", "received", "new", "updated", "unchanged"):
        t.add_column(col, justify="right" if col != "table" else "left")
    for name, c in report["tables"].items():
        t.add_row(name, f"{c['received']:,}", f"{c['new']:,}", f"{c['updated']:,}", f"{c['unchanged']:,}")
    console.print(t)
    if report["quarantined"]:
        console.print(_counts("quarantined", report["quarantined"]))
    else:
        console.print("quarantined: none")
    if report["skipped"]:
        console.print("skipped (outside the model): " + ", ".join(f"{k} {v:,}" for k, v in report["skipped"].items()))
    files = report.get("files")
    if files:
        console.print(f"files: {files['ingested']} ingested, {files['ignored']} not recognised as sources")


def node_stats(console: Console, data: dict[str, Any]) -> None:
    """A node's holdings, per table and sensitivity level."""
    t = Table(title=f"{data['store']} (schema v{data['schema_version']}, {data['batches']} batches)",
              title_justify="left")
    for col in ("table", "rows", "L1", "L2", "L3"):
        t.add_column(col, justify="left" if col == "table" else "right")
    for name, info in data["tables"].items():
        lv = info["by_level"]
        t.add_row(name, f"{info['rows']:,}", *(f"{lv.get(k, 0):,}" for k in ("L1", "L2", "L3")))
    tot = data["rows_by_level"]
    t.add_row("[b]all[/b]", f"{sum(tot.values()):,}", *(f"{tot.get(k, 0):,}" for k in ("L1", "L2", "L3")))
    console.print(t)
    q = data["quarantine"]
    if q["total"]:
        console.print(_counts(f"quarantine: {q['total']:,}", q["by_reason"]))
    else:
        console.print("quarantine: empty")


def _counts(title: str, by_reason: dict[str, int], what: str = "reason") -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column(what)
    t.add_column("count", justify="right")
    for reason, n in by_reason.items():
        t.add_row(reason, f"{n:,}")
    return t


def deid_report(console: Console, r: dict[str, Any]) -> None:
    """What applying a policy did, in counts."""
    t = Table(title=f"view {r['view']} (policy {r['policy']}, as of {r['as_of']}, {r['seconds']:.1f} s)",
              title_justify="left")
    for col in ("table", "rows in", "L1 rows excluded", "rows out"):
        t.add_column(col, justify="left" if col == "table" else "right")
    for name, n in r["rows_in"].items():
        t.add_row(name, f"{n:,}", f"{r['l1_rows_excluded'].get(name, 0):,}", f"{r['rows_out'].get(name, 0):,}")
    console.print(t)
    if r["tables_excluded"]:
        console.print("tables excluded (L1): " + ", ".join(r["tables_excluded"]))
    c = Table(title="what each rule changed", title_justify="left")
    for col in ("field", "action", "values", "becomes", "policy line"):
        c.add_column(col, justify="right" if col == "values" else "left")
    for ch in r["changes"]:
        c.add_row(f"{ch['table']}.{ch['field']}", ch["action"], f"{ch['values']:,}", ch["output"] or "-",
                  str(ch["line"]) if ch["line"] else "default")
    console.print(c)
    if r["notes"]:
        console.print(_counts("placeholders put into notes", r["notes"], "PHI type"))
    if r.get("anonymity"):
        a = r["anonymity"]
        k = Table(title=f"{a['model']}: chosen generalisation", title_justify="left")
        for col in ("quasi-identifier", "level"):
            k.add_column(col)
        for name, level in a["levels"].items():
            k.add_row(name, str(level))
        console.print(k)
        console.print(f"k reached {a['k_measured']}, {a['classes']:,} classes, {a['suppressed_rows']:,} of "
                      f"{a['rows']:,} patients suppressed, information loss ({a['metric']}) "
                      f"{a['information_loss']:.3f}; {a['nodes_evaluated']} of {a['nodes_in_lattice']} lattice "
                      f"nodes evaluated in {a['seconds']:.2f} s")
    for remark in r["remarks"]:
        console.print(f"note: {remark}")


def deid_risk(console: Console, d: dict[str, Any]) -> None:
    """k, l, t and re-identification risk of a view."""
    t = Table(title=f"view {d['view']}: {d['records']:,} records, quasi-identifiers: {', '.join(d['quasi'])}",
              title_justify="left")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for k, v in d["measures"].items():
        t.add_row(k, f"{v:,.4g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))
    console.print(t)


def policy_rules(console: Console, name: str, title: str, rows: list[dict[str, Any]]) -> None:
    """Every field's rule under a policy."""
    t = Table(title=f"policy {name}: {title}", title_justify="left")
    for col in ("field", "action", "options", "policy line"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["field"], r["action"], ", ".join(f"{k}={v}" for k, v in r["options"].items()),
                  str(r["line"]) if r["line"] else "default")
    console.print(t)
