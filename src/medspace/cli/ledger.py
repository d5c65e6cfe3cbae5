"""`medspace ledger`, `medspace witness` and `medspace audit`: the verifiable audit log from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from medspace.cli.common import Finding, InputError, JsonOpt, clear_errors, console, writing

ledger_app = typer.Typer(help="The audit log: append, publish witnessed checkpoints, serve proofs.",
                         no_args_is_help=True)
witness_app = typer.Typer(help="An independent witness that cosigns consistent checkpoints.", no_args_is_help=True)
audit_app = typer.Typer(help="Verify the audit log offline: proof bundles and full re-derivation.",
                        no_args_is_help=True)

DirOpt = Annotated[Path, typer.Option("--dir", "-d", help="The log's directory (log.json, keys, checkpoints).")]
DEFAULT_DIR = Path("medspace-log")
PortOpt = Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port, printed).")]


def _sqlite_files(store: str) -> list[Path]:
    """The files a SQLite log store occupies (none for PostgreSQL)."""
    if store.startswith(("postgresql:", "postgres:")):
        return []
    path = Path(store.removeprefix("sqlite:///"))
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


@ledger_app.command("init")
@clear_errors
def ledger_init(
    origin: Annotated[str, typer.Option(help="The log's origin (its key name), e.g. hub.example.org/audit")],
    directory: DirOpt = DEFAULT_DIR,
    store: Annotated[str | None, typer.Option(help="Where entries live: a SQLite path (default "
                                                   "DIR/log.sqlite) or postgresql://...")] = None,
) -> None:
    """Create a log: a fresh Ed25519 signing key and a config; its store is opened once to prove it usable."""
    from medspace.ledger.errors import StorageError
    from medspace.ledger.log import CONFIG, init_log
    from medspace.ledger.store import open_store

    made = [directory, directory / "log.key", directory / "log.vkey", directory / CONFIG]
    files = _sqlite_files(store or str(directory / "log.sqlite"))
    with writing(*made, *files):
        cfg = init_log(directory, origin, store=store)
        try:  # a store that cannot be created fails now, and the log is not left half-made
            with open_store(cfg.store):
                pass
        except StorageError as e:
            where = files[0] if files else "the PostgreSQL store"  # a URL may hold a password: not printed
            raise InputError(f"cannot create the log's store {where}: {e}") from None
    console.print(f"log {cfg.origin} created in {directory}; public key: {(directory / 'log.vkey').read_text()}")


@ledger_app.command("add-witness")
@clear_errors
def ledger_add_witness(
    url: Annotated[str, typer.Argument(help="The witness's URL, e.g. http://127.0.0.1:7380")],
    vkey: Annotated[str, typer.Argument(help="The witness's public key (vkey string or file).")],
    directory: DirOpt = DEFAULT_DIR,
    quorum: Annotated[int | None, typer.Option(help="Cosignatures a checkpoint needs (default: unchanged).")] = None,
) -> None:
    """Ask a witness to cosign this log's checkpoints."""
    from medspace.ledger.checkpoint import load_verifier
    from medspace.ledger.log import CONFIG, WitnessConfig, read_config

    cfg = read_config(directory)
    key = load_verifier(vkey).vkey()
    cfg.witnesses = [w for w in cfg.witnesses if w.vkey != key] + [WitnessConfig(url, key)]
    if quorum is not None:
        cfg.quorum = quorum
    with writing(directory / CONFIG):
        (directory / CONFIG).write_text(cfg.to_json())
    console.print(f"{len(cfg.witnesses)} witness(es), quorum {cfg.quorum}")


@ledger_app.command("append")
@clear_errors
def ledger_append(
    events: Annotated[Path, typer.Argument(help="A JSON file with a list of audit events ('-' for stdin).")],
    directory: DirOpt = DEFAULT_DIR,
) -> None:
    """Append audit events in one durable batch; prints their indices."""
    from medspace.ledger.api import event_from_json
    from medspace.ledger.errors import EntryError
    from medspace.ledger.log import AuditLog

    try:
        raw = json.loads(sys.stdin.read() if str(events) == "-" else events.read_text())
    except (OSError, ValueError):
        raise EntryError(f"{events} is not a readable JSON file") from None
    items = raw if isinstance(raw, list) else [raw]
    parsed = [event_from_json(x) if isinstance(x, dict) else event_from_json({}) for x in items]
    with AuditLog(directory) as log:
        idx = log.append(parsed)
    console.print(json.dumps({"indices": idx}))


@ledger_app.command("publish")
@clear_errors
def ledger_publish(directory: DirOpt = DEFAULT_DIR, as_json: JsonOpt = False) -> None:
    """Sign a checkpoint of the log, collect witness cosignatures and store it."""
    from medspace.ledger.log import AuditLog

    with AuditLog(directory) as log:
        note, errors = log.publish()
    if as_json:
        console.print_json(json.dumps({"checkpoint": note, "witness_errors": errors}))
        return
    typer.echo(note, nl=False)
    for name, why in errors.items():
        console.print(f"witness {name} did not cosign: {why}", highlight=False)


@ledger_app.command("status")
@clear_errors
def ledger_status(directory: DirOpt = DEFAULT_DIR) -> None:
    """Size, store, latest checkpoint and witnesses of the log."""
    from medspace.ledger.log import AuditLog

    with AuditLog(directory, readonly=True) as log:
        console.print_json(json.dumps(log.status()))


@ledger_app.command("serve")
@clear_errors
def ledger_serve(
    directory: DirOpt = DEFAULT_DIR,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: PortOpt = 7390,
) -> None:
    """Serve the log's HTTP API: checkpoints, entries, inclusion and consistency proofs, bundles."""
    from medspace.ledger.api import serve
    from medspace.ledger.log import AuditLog

    with AuditLog(directory) as log:
        serve(log, host, port)


@witness_app.command("keygen")
@clear_errors
def witness_keygen(
    name: Annotated[str, typer.Argument(help="The witness's key name, e.g. regulator.example/witness")],
    out: Annotated[Path, typer.Option(help="Directory for witness.key (0600) and witness.vkey.")] = Path("."),
) -> None:
    """Create a witness's cosignature key pair."""
    from medspace.ledger.checkpoint import generate_key_files

    with writing(out, out / "witness.key", out / "witness.vkey"):
        out.mkdir(parents=True, exist_ok=True)
        vkey = generate_key_files(name, out / "witness.key", out / "witness.vkey", cosigner=True)
    console.print(f"witness key written to {out / 'witness.key'}; public key: {vkey}", highlight=False)


@witness_app.command("serve")
@clear_errors
def witness_serve(
    state: Annotated[Path, typer.Option(help="The witness's own state file (SQLite).")],
    key: Annotated[Path, typer.Option(help="The witness's private key file (0600).")],
    log_key: Annotated[list[str], typer.Option(help="Public key (vkey or file) of a log to witness; repeatable.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: PortOpt = 7380,
) -> None:
    """Run a witness (C2SP tlog-witness: POST /add-checkpoint) with its own key and store."""
    from medspace.ledger.witness import serve

    serve(state, key, log_key, host=host, port=port)


@audit_app.command("export")
@clear_errors
def audit_export(
    index: Annotated[int, typer.Argument(help="The entry's index.")],
    directory: DirOpt = DEFAULT_DIR,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="File to write (default: stdout).")] = None,
) -> None:
    """Write a self-contained proof bundle of one entry: entry, inclusion proof, checkpoint, cosignatures."""
    from medspace.ledger.bundle import export_bundle
    from medspace.ledger.log import AuditLog

    with AuditLog(directory, readonly=True) as log:
        bundle = export_bundle(log, index)
    text = json.dumps(bundle, indent=1)
    if out is None:
        typer.echo(text)
    else:
        with writing(out):
            out.write_text(text)
        console.print(f"wrote {out}")


@audit_app.command("keys")
@clear_errors
def audit_keys(
    out: Annotated[Path, typer.Argument(help="Keys file to write for `audit verify`.")],
    directory: DirOpt = DEFAULT_DIR,
) -> None:
    """Write the keys file a regulator needs: the log's key, its witnesses' keys and the quorum."""
    from medspace.ledger.bundle import write_keys
    from medspace.ledger.log import read_config

    cfg = read_config(directory)
    try:
        vkey = (directory / "log.vkey").read_text().strip()
    except OSError as e:
        raise InputError(f"the log's public key cannot be read: {e.strerror or type(e).__name__}") from None
    with writing(out):
        write_keys(out, vkey, [w.vkey for w in cfg.witnesses], cfg.quorum)
    console.print(f"wrote {out}")


@audit_app.command("verify")
@clear_errors
def audit_verify(
    bundle: Annotated[Path, typer.Argument(help="A proof bundle written by `audit export`.")],
    keys: Annotated[Path, typer.Option(help="Keys file: the log's key, witnesses' keys, quorum.")],
    as_json: JsonOpt = False,
) -> None:
    """Check a proof bundle with no network: log signature, witness quorum, inclusion of the entry.

    Exit status 1 if the bundle does not verify; 2 if it or the keys file cannot be read."""
    from medspace.ledger.bundle import read_keys, verify_bundle
    from medspace.ledger.errors import LedgerError, ProofError

    try:
        doc = json.loads(bundle.read_text())
    except (OSError, ValueError):
        raise ProofError(f"{bundle} is not a readable JSON bundle") from None
    trusted = read_keys(keys)
    try:
        v = verify_bundle(doc, trusted)
    except LedgerError as failed:
        if as_json:
            console.print_json(json.dumps({"verified": False, "error": str(failed)}))
        raise Finding(f"not verified: {failed}") from None
    result = {"verified": True, "index": v.index, "checkpoint_size": v.checkpoint.size,
              "origin": v.checkpoint.origin, "event": v.event.to_dict()}
    if as_json:
        console.print_json(json.dumps(result))
    else:
        e = v.event
        console.print(f"verified: entry {v.index} is in checkpoint {v.checkpoint.origin} @ {v.checkpoint.size}, "
                      f"signed by the log and cosigned by a quorum: {e.time:%Y-%m-%d %H:%M:%S} {e.actor} ({e.role}) "
                      f"{e.action} {e.resource} for {e.purpose}", highlight=False)


@audit_app.command("check")
@clear_errors
def audit_check(directory: DirOpt = DEFAULT_DIR, as_json: JsonOpt = False) -> None:
    """Re-derive the whole log from its entries; any edited, deleted, reordered or truncated entry is found.

    Exit status 1 if the log does not re-derive; 2 if it cannot be opened."""
    from medspace.ledger.check import check
    from medspace.ledger.errors import TamperError
    from medspace.ledger.log import AuditLog

    with AuditLog(directory, readonly=True) as log:
        try:
            report = check(log.store, log.checkpoints())
        except TamperError as e:
            if as_json:
                console.print_json(json.dumps({"ok": False, "error": str(e)}))
            raise Finding(f"check failed: {e}") from None
    data = {"ok": True, "size": report.size, "root": report.root.hex(), "entries": report.entries}
    if as_json:
        console.print_json(json.dumps(data))
    else:
        console.print(f"ok: {report.size:,} entries re-derived, root {report.root.hex()}")
