"""The `medspace` command line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from medspace.cli import render
from medspace.cli.common import DEFAULT_STORE, JsonOpt, StoreOpt, clear_errors, console
from medspace.cli.deid import deid_app
from medspace.cli.ledger import audit_app, ledger_app, witness_app

app = typer.Typer(help="medspace: a trusted medical data space. Usable, not visible.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
node_app = typer.Typer(help="A hospital node's local store.", no_args_is_help=True)
app.add_typer(node_app, name="node")
app.add_typer(deid_app, name="deid")
app.add_typer(ledger_app, name="ledger")
app.add_typer(witness_app, name="witness")
app.add_typer(audit_app, name="audit")

@app.command()
@clear_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories: FHIR bundles (.json), bulk NDJSON, "
                                                     "HL7 v2 (.hl7), CSV/Parquet mapping files (.toml).")],
    store: StoreOpt = DEFAULT_STORE,
    strict: Annotated[bool, typer.Option(help="Validate whole FHIR resources against the R4B models.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest sources into the node's store, in one all-or-nothing batch; bad input is quarantined."""
    from medspace.connect.sources import discover, ingest_file
    from medspace.store import Store

    found = list(discover(paths))
    sources = [(p, k) for p, k in found if k is not None]
    ignored = [p for p, k in found if k is None]
    label = ", ".join(str(p) for p in paths)[:500]
    with Store(store) as st, st.batch(label) as batch, render.progress(console, quiet=as_json) as bar:
        task = bar.add_task("ingesting", total=len(sources))
        for path, kind in sources:
            bar.update(task, description=f"{kind.value}: {path.name}")
            ingest_file(path, kind, batch, strict=strict)
            bar.advance(task)
    report = batch.report.to_dict()
    report["files"] = {"ingested": len(sources), "ignored": len(ignored)}
    if as_json:
        console.print_json(json.dumps(report))
    else:
        render.ingest_report(console, report)


@app.command("pull")
@clear_errors
def pull(
    base_url: Annotated[str, typer.Argument(help="Base URL of a FHIR R4 server, e.g. https://fhir.example/r4")],
    store: StoreOpt = DEFAULT_STORE,
    types: Annotated[str, typer.Option(help="Comma-separated resource types to pull.")] = (
        "Patient,Encounter,Condition,MedicationRequest,Observation,Procedure,AllergyIntolerance,DocumentReference"
    ),
    since: Annotated[str | None, typer.Option(help="Only resources updated since this FHIR instant.")] = None,
    strict: Annotated[bool, typer.Option(help="Validate whole resources against the R4B models.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Pull resources from a FHIR REST server into the node's store (one all-or-nothing batch)."""
    from medspace.connect.fhir_rest import pull_fhir_server
    from medspace.store import Store

    with Store(store) as st, st.batch(label=f"pull {base_url}") as batch:
        pull_fhir_server(base_url, batch, resource_types=tuple(t.strip() for t in types.split(",") if t.strip()),
                         strict=strict, since=since)
    report = batch.report.to_dict()
    if as_json:
        console.print_json(json.dumps(report))
    else:
        render.ingest_report(console, report)


@node_app.command("stats")
@clear_errors
def node_stats(store: StoreOpt = DEFAULT_STORE, as_json: JsonOpt = False) -> None:
    """Rows per table and sensitivity level, quarantine per reason: counts only, never content."""
    from medspace.store import Store
    from medspace.store import node_stats as stats

    with Store(store, read_only=True) as st:
        data = stats(st)
    if as_json:
        console.print_json(json.dumps(data))
    else:
        render.node_stats(console, data)


@app.command()
@clear_errors
def synth(
    out: Annotated[Path, typer.Argument(help="Directory to write the hospitals' source files into.")],
    hospitals: Annotated[int, typer.Option(min=1, help="Number of hospitals.")] = 5,
    patients: Annotated[int, typer.Option(min=1, help="Patients per hospital.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same bytes.")] = 7,
) -> None:
    """Write deterministic synthetic hospitals (FHIR, NDJSON, HL7 v2, CSV) with a ground truth."""
    from medspace.cli.demo import generate_all

    manifest = generate_all(out, hospitals, patients, seed, console)
    console.print(f"wrote {len(manifest.hospitals)} hospitals to {out} (manifest: {out / 'manifest.json'})")


@app.command()
@clear_errors
def demo(
    workdir: Annotated[Path, typer.Option("--dir", help="Working directory for sources and stores.")] = Path(
        "medspace-demo"
    ),
    hospitals: Annotated[int, typer.Option(min=1, help="Number of synthetic hospitals.")] = 5,
    patients: Annotated[int, typer.Option(min=1, help="Patients per hospital.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic population.")] = 7,
    jobs: Annotated[int, typer.Option(min=1, help="Hospitals processed in parallel.")] = min(2, os.cpu_count() or 1),
) -> None:
    """Generate synthetic hospitals, ingest each into its own node store and summarise them."""
    from medspace.cli.demo import run_demo

    run_demo(workdir, hospitals, patients, seed, jobs, console)


if __name__ == "__main__":
    app()
