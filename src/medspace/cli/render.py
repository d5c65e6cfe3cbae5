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


def _counts(title: str, by_reason: dict[str, int]) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("reason")
    t.add_column("count", justify="right")
    for reason, n in by_reason.items():
        t.add_row(reason, f"{n:,}")
    return t
