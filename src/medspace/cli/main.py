"""The `medspace` command line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from medspace.cli import render
from medspace.cli.common import DEFAULT_STORE, JsonOpt, MedspaceGroup, StoreOpt, clear_errors, console
from medspace.cli.deid import deid_app
from medspace.cli.hub import hub_app, node_serve
from medspace.cli.ledger import audit_app, ledger_app, witness_app
from medspace.cli.space import space_app
from medspace.cli.stores import CreateOpt, MaxTextOpt, MaxValueOpt, WaitOpt, open_store, set_string_limits

app = typer.Typer(help="medspace: a trusted medical data space. Usable, not visible.\n\n"
                       "Exit status: 0 done; 1 a finding (a failed check or verification); 2 a usage or input "
                       "error; 70 an internal error (MEDSPACE_DEBUG=1 shows its traceback); 130 interrupted.",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=MedspaceGroup)
node_app = typer.Typer(help="A hospital node's local store.", no_args_is_help=True)
app.add_typer(node_app, name="node")
app.add_typer(deid_app, name="deid")
app.add_typer(hub_app, name="hub")
node_app.command("serve")(clear_errors(node_serve))
app.add_typer(ledger_app, name="ledger")
app.add_typer(witness_app, name="witness")
app.add_typer(audit_app, name="audit")
app.add_typer(space_app, name="space")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medspace")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from medspace import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"medspace {_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print medspace's version and exit.")] = False,
) -> None:
    """Options of every command (the help text is the app's, above)."""

@app.command()
@clear_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories: FHIR bundles (.json), bulk NDJSON, "
                                                     "HL7 v2 (.hl7), CSV/Parquet mapping files (.toml).")],
    store: StoreOpt = DEFAULT_STORE,
    create: CreateOpt = False,
    wait: WaitOpt = 0.0,
    strict: Annotated[bool, typer.Option(help="Validate whole FHIR resources against the R4B models.")] = False,
    max_value_chars: MaxValueOpt = None,
    max_text_chars: MaxTextOpt = None,
    jobs: Annotated[int | None, typer.Option(
        min=1, max=64, help="Processes mapping files at once (default: the usable cores, at most 8; 1: one "
                            "process). The batch is the same whatever the number.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest sources into the node's store, in one all-or-nothing batch; bad input is quarantined."""
    from medspace.connect.errors import SourceError
    from medspace.connect.fhir import forget_medications, preload_medications
    from medspace.connect.parallel import ParallelIngest, default_jobs
    from medspace.connect.sources import SourceKind, discover

    set_string_limits(max_value_chars, max_text_chars)
    found = list(discover(paths))
    # A file named on the command line was meant to be read: not recognising it is an error, not a skip.
    named = {p for p in paths if not p.is_dir()}
    for p, k in found:
        if k is None and p in named:
            raise SourceError(f"{p}: not a source medspace reads (FHIR .json or .ndjson, HL7 v2, "
                              "or a .toml mapping file for CSV/Parquet)")
    sources = [(p, k) for p, k in found if k is not None]
    ignored = [p for p, k in found if k is None]
    label = ", ".join(str(p) for p in paths)[:500]
    # A bulk export's Medication.ndjson is read first: orders in the export's other files reference its Medications.
    preload_medications(p for p, k in sources if k is SourceKind.FHIR_NDJSON)
    try:
        # Workers (if the input is worth them) fork before the store opens: its threads are not yet running.
        with ParallelIngest(sources, jobs=jobs or default_jobs(), strict=strict) as ingest_all, \
                open_store(store, create=create, wait=wait, can_create=True) as st, st.batch(label) as batch, \
                render.progress(console, quiet=as_json) as bar:
            task = bar.add_task("ingesting", total=len(sources))

            def start(path: Path, kind: SourceKind) -> None:
                bar.update(task, description=f"{kind.value}: {path.name}")

            def done(path: Path, kind: SourceKind) -> None:
                bar.advance(task)

            ingest_all.run(batch, start=start, done=done)
    finally:
        forget_medications()
    report = batch.report.to_dict()
    report["files"] = {"ingested": len(sources), "ignored": len(ignored), "ignored_paths": [str(p) for p in ignored]}
    if as_json:
        console.print_json(json.dumps(report))
    else:
        render.ingest_report(console, report)


@app.command("pull")
@clear_errors
def pull(
    base_url: Annotated[str, typer.Argument(help="Base URL of a FHIR R4 server, e.g. https://fhir.example/r4")],
    store: StoreOpt = DEFAULT_STORE,
    create: CreateOpt = False,
    wait: WaitOpt = 0.0,
    max_value_chars: MaxValueOpt = None,
    max_text_chars: MaxTextOpt = None,
    types: Annotated[str, typer.Option(help="Comma-separated resource types to pull.")] = (
        "Patient,Encounter,Condition,MedicationRequest,Observation,Procedure,AllergyIntolerance,DocumentReference"
    ),
    since: Annotated[str | None, typer.Option(help="Only resources updated since this FHIR instant.")] = None,
    strict: Annotated[bool, typer.Option(help="Validate whole resources against the R4B models.")] = False,
    token_env: Annotated[str | None, typer.Option(
        metavar="NAME", help="Bearer token from this environment variable (default: MEDSPACE_FHIR_TOKEN if set).",
    )] = None,
    token_file: Annotated[Path | None, typer.Option(
        metavar="PATH", help="Bearer token from this file (only its owner may read it).")] = None,
    smart_client_id: Annotated[str | None, typer.Option(
        metavar="ID", help="SMART Backend Services: the client id registered with the server.")] = None,
    smart_key: Annotated[Path | None, typer.Option(
        metavar="PATH", help="SMART: the client's PEM private key, RSA (RS384) or EC P-384 (ES384), mode 600.",
    )] = None,
    smart_kid: Annotated[str | None, typer.Option(
        metavar="KID", help="SMART: the key id registered in the client's JWKS (default: the JWK thumbprint).",
    )] = None,
    smart_scope: Annotated[str, typer.Option(metavar="SCOPE", help="SMART: the scopes to ask for.")] = "system/*.rs",
    smart_token_url: Annotated[str | None, typer.Option(
        metavar="URL", help="SMART: the token endpoint (default: from <base>/.well-known/smart-configuration).",
    )] = None,
    allow_http: Annotated[bool, typer.Option(
        help="Send credentials over plain http to a host other than this one (a trusted network only).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Pull resources from a FHIR REST server into the node's store (one all-or-nothing batch)."""
    from medspace.connect.fhir_rest import PullProgress, parse_base_url, pull_fhir_server
    from medspace.connect.smart_auth import SmartBackendAuth, credentials_for, safe_url

    parse_base_url(base_url)
    set_string_limits(max_value_chars, max_text_chars)
    resource_types = tuple(t.strip() for t in types.split(",") if t.strip())
    auth = credentials_for(base_url, token_env=token_env, token_file=token_file, smart_client_id=smart_client_id,
                           smart_key=smart_key, smart_kid=smart_kid, smart_scope=smart_scope,
                           smart_token_url=smart_token_url, allow_http=allow_http)
    try:
        if isinstance(auth, SmartBackendAuth):
            auth.access_token()  # refused credentials stop here, before the store is touched
        with open_store(store, create=create, wait=wait, can_create=True) as st, \
                st.batch(label=f"pull {safe_url(base_url)}") as batch, \
                render.progress(console, quiet=as_json) as bar:
            task = bar.add_task("pulling", total=len(resource_types))

            def show(p: PullProgress) -> None:
                bar.update(task, completed=p.types_done, description=(
                    f"{p.resource_type}: {p.resources:,} resource{'s' * (p.resources != 1)}, "
                    f"{p.pages:,} page{'s' * (p.pages != 1)}"))

            pull_fhir_server(base_url, batch, resource_types=resource_types, strict=strict, since=since, auth=auth,
                             progress=show)
    finally:
        if isinstance(auth, SmartBackendAuth):
            auth.close()
    report = batch.report.to_dict()
    if as_json:
        console.print_json(json.dumps(report))
    else:
        render.ingest_report(console, report)


@node_app.command("stats")
@clear_errors
def node_stats(store: StoreOpt = DEFAULT_STORE, wait: WaitOpt = 0.0, as_json: JsonOpt = False) -> None:
    """Rows per table and sensitivity level, quarantine per reason, data-quality findings: counts only.
    While another process writes the store, the figures of its last committed batch (a snapshot)."""
    from medspace.store import StoreBusyError, read_snapshot
    from medspace.store import node_stats as stats

    try:
        with open_store(store, read_only=True, wait=wait) as st:
            data = stats(st)
        data["snapshot"] = None
    except StoreBusyError as e:
        # DuckDB admits no reader while a writer holds the file; the writer's last snapshot is what a
        # reader would see anyway: nothing of a running batch is visible before it commits.
        snap = read_snapshot(store)
        if snap is None:
            raise
        data = snap
        data["snapshot"]["in_use_by"] = e.who
    if as_json:
        console.print_json(json.dumps(data))
    else:
        render.node_stats(console, data)


@node_app.command("quarantine")
@clear_errors
def node_quarantine(
    store: StoreOpt = DEFAULT_STORE,
    reason: Annotated[str | None, typer.Option(help="Only this reason (e.g. bad_date, parse_error).")] = None,
    source: Annotated[str | None, typer.Option(help="Only files whose path contains this.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="List at most this many (0: all).")] = 100,
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """What was quarantined: file, position, reason, detail, batch, when; never a value or the raw bytes."""
    from medspace.cli.common import InputError
    from medspace.connect.errors import Reason
    from medspace.store import quarantined

    with open_store(store, read_only=True, wait=wait) as st:
        if reason is not None:
            known = {r.value for r in Reason} | {str(r[0]) for r in st.con.execute(
                "SELECT DISTINCT reason FROM quarantine").fetchall()}
            if reason not in known:
                raise InputError(f"--reason {reason}: not a quarantine reason (one of: {', '.join(sorted(known))})")
        data = quarantined(st, reason=reason, source=source, limit=limit or None)
    data["filtered"] = reason is not None or source is not None
    if as_json:
        console.print_json(json.dumps(data))
    else:
        render.quarantine_list(console, data, limit or None)


@node_app.command("quality")
@clear_errors
def node_quality(
    store: StoreOpt = DEFAULT_STORE,
    table: Annotated[str | None, typer.Option(help="Only this table (e.g. observation).")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind (e.g. local_code, text_only).")] = None,
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Data-quality findings: values kept but flagged (local codes, text only, failed checks), per field and
    kind, with the first place each was seen."""
    from medspace.cli.common import InputError
    from medspace.connect.errors import FindingKind
    from medspace.model import TABLES
    from medspace.store import data_quality

    if table is not None and table not in TABLES:
        raise InputError(f"--table {table}: not a model table (one of: {', '.join(TABLES)})")
    if kind is not None and kind not in {k.value for k in FindingKind}:
        raise InputError(f"--kind {kind}: not a finding kind (one of: {', '.join(k.value for k in FindingKind)})")
    with open_store(store, read_only=True, wait=wait) as st:
        findings = data_quality(st, table=table, kind=kind)
    if as_json:
        console.print_json(json.dumps({"total": sum(f["count"] for f in findings), "findings": findings}))
    else:
        render.quality_list(console, findings)


@app.command()
@clear_errors
def synth(
    out: Annotated[Path, typer.Argument(help="Directory to write the hospitals' source files into.")],
    hospitals: Annotated[int, typer.Option(min=1, help="Number of hospitals.")] = 5,
    patients: Annotated[int, typer.Option(min=1, help="Patients per hospital.")] = 2000,
    seed: Annotated[int, typer.Option(min=0, max=2**64 - 1, help="Seed: the same seed writes the same bytes.")] = 7,
) -> None:
    """Write deterministic synthetic hospitals (FHIR, NDJSON, HL7 v2, CSV) with a ground truth."""
    from medspace.cli.common import writing
    from medspace.cli.demo import generate_all

    with writing(out):  # a directory this run creates is removed again if it fails
        manifest = generate_all(out, hospitals, patients, seed, console)
    console.print(f"wrote {len(manifest.hospitals)} hospitals to {out} (manifest: {out / 'manifest.json'})")


@app.command()
@clear_errors
def demo(
    workdir: Annotated[Path, typer.Option("--dir", help="Working directory for sources and stores: new, empty, "
                                                        "or one an earlier demo made.")] = Path("medspace-demo"),
    hospitals: Annotated[int, typer.Option(min=1, help="Number of synthetic hospitals.")] = 5,
    patients: Annotated[int, typer.Option(min=1, help="Patients per hospital.")] = 2000,
    seed: Annotated[int, typer.Option(min=0, max=2**64 - 1, help="Seed of the synthetic population.")] = 7,
    jobs: Annotated[int, typer.Option(min=1, max=64, help="Hospitals processed in parallel.")] = min(
        2, os.cpu_count() or 1),
    space: Annotated[bool, typer.Option("--space/--no-space", help="Then run the data space: hub, nodes and "
                                                                   "witnesses as processes, a study end to end.")]
    = True,
) -> None:
    """Generate synthetic hospitals, ingest each into its own node store, summarise them; then start a hub, a node
    per hospital and two witnesses, and walk a study through the space."""
    from medspace.cli.demo import run_demo

    run_demo(workdir, hospitals, patients, seed, jobs, console, space=space)


if __name__ == "__main__":
    app()
