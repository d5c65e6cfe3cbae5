"""Tables and progress bars for the command line (rich)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

IGNORED_SHOWN = 10  # ignored files named in an ingest's text report (--json lists them all)
QUALITY_SHOWN = 10  # data-quality rows in `node stats` (`node quality` lists them all)


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
    findings = report.get("findings") or []
    if findings:
        console.print(findings_table(f"data-quality findings: {sum(f['count'] for f in findings):,} "
                                     "(values kept, flagged)", findings))
    files = report.get("files")
    if files:
        console.print(f"files: {files['ingested']} ingested, {files['ignored']} not recognised as sources")
        ignored = files.get("ignored_paths") or []
        for path in ignored[:IGNORED_SHOWN]:
            console.print(f"  not a source: {escape(path)}", highlight=False)
        if len(ignored) > IGNORED_SHOWN:
            console.print(f"  ... and {len(ignored) - IGNORED_SHOWN:,} more (--json lists them all)")


def findings_table(title: str, findings: list[dict[str, Any]], *, files: bool = False) -> Table:
    """Data-quality findings: field, kind, count and the first place each was seen (never a value)."""
    t = Table(title=title, title_justify="left")
    for col in ("field", "kind", "count", "connector", "first seen", *(("files",) if files else ())):
        t.add_column(col, justify="right" if col == "count" else "left")
    for f in findings:
        ex = f["example"]
        cells = [f"{f['table']}.{f['field']}", f["kind"], f"{f['count']:,}", f["connector"],
                 escape(f"{ex['source']}, {ex['position']}")]
        if files:
            cells.append(f"{f['sources']:,}")
        t.add_row(*cells)
    return t


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
    dq = data.get("data_quality") or {"total": 0, "by_field_and_kind": {}}
    if dq["total"]:
        items = list(dq["by_field_and_kind"].items())
        t = Table(title=f"data-quality findings: {dq['total']:,}", title_justify="left")
        for col in ("field", "kind", "count"):
            t.add_column(col, justify="right" if col == "count" else "left")
        for key, n in items[:QUALITY_SHOWN]:
            field, _, kind = key.rpartition(":")
            t.add_row(field, kind, f"{n:,}")
        if len(items) > QUALITY_SHOWN:
            t.add_row(f"... {len(items) - QUALITY_SHOWN} more", "", "")
        console.print(t)
    else:
        console.print("data-quality findings: none")
    if q["total"] or dq["total"]:
        console.print("each listed with file and position: medspace node quarantine, medspace node quality")
    snap = data.get("snapshot")
    if snap:
        console.print(f"note: store in use by {escape(snap['in_use_by'])}: figures as of batch {snap['batch']} "
                      f"(snapshot written {snap['written_at'].replace('T', ' ')})", highlight=False)


def quarantine_list(console: Console, data: dict[str, Any], limit: int | None) -> None:
    """What was quarantined, one row per failure: file, position, reason, detail (never a value)."""
    items = data["items"]
    if not data["total"]:
        console.print("quarantine: nothing" + (" matches" if data.get("filtered") else " quarantined"))
        return
    shown = f"{len(items):,} of {data['total']:,}" if len(items) < data["total"] else f"{data['total']:,}"
    t = Table(title=f"quarantine: {shown}", title_justify="left")
    for col in ("batch", "file", "position", "reason", "detail", "when"):
        t.add_column(col, justify="right" if col == "batch" else "left")
    for q in items:
        t.add_row(str(q["batch"]), escape(q["file"]), escape(q["position"]), q["reason"], escape(q["detail"]),
                  q["received_at"].replace("T", " "))
    console.print(t)
    if len(items) < data["total"]:
        console.print(f"{data['total'] - len(items):,} more: raise --limit (0 lists all) or filter with --reason, "
                      "--source")


def quality_list(console: Console, findings: list[dict[str, Any]]) -> None:
    """The store's data-quality findings as they hold now (each source's latest ingest)."""
    if not findings:
        console.print("data-quality findings: none")
        return
    console.print(findings_table(f"data-quality findings: {sum(f['count'] for f in findings):,} "
                                 "(values kept, flagged)", findings, files=True))


def deid_views(console: Console, store: str, views: list[dict[str, Any]]) -> None:
    """The de-identified views of a store."""
    if not views:
        console.print(f"{escape(store)}: no de-identified views (medspace deid apply builds one)")
        return
    t = Table(title=f"de-identified views in {escape(store)}", title_justify="left")
    for col in ("view", "policy", "tables", "rows", "built", "node key"):
        t.add_column(col, justify="right" if col in ("tables", "rows", "node key") else "left")
    for v in views:
        t.add_row(v["view"], v["policy"] or "-", str(len(v["tables"])), f"{v['rows']:,}",
                  (v["built_at"] or "-").replace("T", " "),
                  "-" if v["node_key_version"] is None else str(v["node_key_version"]))
    console.print(t)


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
