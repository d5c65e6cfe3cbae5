"""`medspace ledger`, `medspace witness` and `medspace audit`: the verifiable audit log from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from medspace.cli.common import Finding, InputError, JsonOpt, clear_errors, console, writing

if TYPE_CHECKING:
    from medspace.ledger.checkpoint import Checkpoint

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


def _local_user() -> str:
    """The login name running the command (``unknown`` when the system cannot tell)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _events(source: Path) -> list[object]:
    """The JSON events of a file or stdin, as a list."""
    from medspace.ledger.errors import EntryError

    name = "stdin" if str(source) == "-" else str(source)
    try:
        raw = json.loads(sys.stdin.read() if str(source) == "-" else source.read_text())
    except OSError as e:
        raise EntryError(f"{name} cannot be read: {e.strerror or type(e).__name__}") from None
    except ValueError as e:
        raise EntryError(f"{name} is not JSON ({e.__class__.__name__} at {getattr(e, 'lineno', '?')}:"
                         f"{getattr(e, 'colno', '?')})") from None
    return raw if isinstance(raw, list) else [raw]


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
    from medspace.ledger.log import CONFIG, init_log, redact_url
    from medspace.ledger.store import open_store

    made = [directory, directory / "log.key", directory / "log.vkey", directory / CONFIG]
    files = _sqlite_files(store or str(directory / "log.sqlite"))
    with writing(*made, *files):
        cfg = init_log(directory, origin, store=store)
        location = cfg.store_location(directory)
        try:  # a store that cannot be created fails now, and the log is not left half-made
            with open_store(location):
                pass
        except StorageError as e:
            where = files[0] if files else redact_url(location)
            raise InputError(f"cannot create the log's store {where}: {e}") from None
    console.print(f"log {cfg.origin} created in {directory}; public key: {(directory / 'log.vkey').read_text()}")


@ledger_app.command("add-witness")
@clear_errors
def ledger_add_witness(
    url: Annotated[str, typer.Argument(help="The witness's URL, e.g. http://127.0.0.1:7380")],
    vkey: Annotated[str, typer.Argument(help="The witness's public key (vkey string or file).")],
    directory: DirOpt = DEFAULT_DIR,
    quorum: Annotated[int | None, typer.Option(min=0, help="Cosignatures a checkpoint needs to be published "
                                                           "(default: unchanged).")] = None,
    ca: Annotated[Path | None, typer.Option(help="CA file that HTTPS witnesses' certificates must chain to (e.g. a "
                                                 "data space's ca/ca.pem); default: unchanged.")] = None,
) -> None:
    """Ask a witness to cosign this log's checkpoints."""
    from medspace.ledger.checkpoint import load_verifier
    from medspace.ledger.log import CONFIG, WitnessConfig, read_config, write_config

    cfg = read_config(directory)
    key = load_verifier(vkey).vkey()
    cfg.witnesses = [w for w in cfg.witnesses if w.vkey != key] + [WitnessConfig(url, key)]
    if quorum is not None:
        cfg.quorum = quorum
    if ca is not None:
        if not ca.is_file():
            raise InputError(f"no CA file at {ca}")
        cfg.witness_ca = str(ca.resolve())
    with writing(directory / CONFIG):
        write_config(directory, cfg)
    console.print(f"{len(cfg.witnesses)} witness(es), quorum {cfg.quorum}")
    if cfg.quorum > len(cfg.witnesses):
        typer.echo(f"note: the quorum ({cfg.quorum}) exceeds the witnesses configured ({len(cfg.witnesses)}): "
                   "`ledger publish` fails until enough are added", err=True)


@ledger_app.command("append")
@clear_errors
def ledger_append(
    events: Annotated[Path, typer.Argument(help="A JSON file with a list of audit events ('-' for stdin).")],
    directory: DirOpt = DEFAULT_DIR,
) -> None:
    """Append audit events in one durable batch (all or none); prints their indices.

    The events are a JSON list of objects (README: "Audit events"); an error names the first event that is
    refused, counting from 1, and what its field must be."""
    from medspace.ledger.api import event_from_json
    from medspace.ledger.errors import EntryError
    from medspace.ledger.log import AuditLog

    items = _events(events)
    parsed = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise EntryError(f"event {n} of {len(items)}: not a JSON object")
        try:
            parsed.append(event_from_json(item))
        except EntryError as e:
            raise EntryError(f"event {n} of {len(items)}: {e}; nothing was appended") from None
    with AuditLog(directory) as log:
        idx = log.append(parsed)
        if idx:  # attributed like an HTTP write: to the local account that ran the command
            log.record_write(idx[0], len(idx), f"local:{_local_user()}", "cli")
    console.print(json.dumps({"indices": idx}))


@ledger_app.command("publish")
@clear_errors
def ledger_publish(directory: DirOpt = DEFAULT_DIR, as_json: JsonOpt = False) -> None:
    """Sign a checkpoint of the log, collect witness cosignatures and store it if they meet the quorum.

    Exit status 1 when fewer witnesses than the quorum cosign: the checkpoint is then not stored, and the latest
    stays the last witnessed one."""
    from medspace.ledger.log import AuditLog

    with AuditLog(directory) as log:
        pub = log.publish()
    if as_json:
        console.print_json(json.dumps({"checkpoint": pub.note, "size": pub.size, "cosigned": pub.cosigned,
                                       "quorum": pub.quorum, "stored": pub.stored,
                                       "witness_errors": pub.errors}))
    else:
        typer.echo(pub.note, nl=False)
        for name, why in pub.errors.items():
            typer.echo(f"witness {name} did not cosign: {why}", err=True)
    if not pub.witnessed:
        raise Finding(f"quorum not reached: {len(pub.cosigned)} of {len(log.config.witnesses)} witnesses cosigned "
                      f"the checkpoint at size {pub.size}, {pub.quorum} needed; it was not stored")


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
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", help="Accept writes from holders of the bearer token in this file (mode 0600; "
                             "`medspace ledger token FILE` writes one). Default: the token in "
                             "MEDSPACE_LEDGER_TOKEN, else read-only.")] = None,
    writer: Annotated[str, typer.Option(help="The name writes are recorded under (the token's holder).")] = "owner",
    actor: Annotated[list[str] | None, typer.Option(
        "--actor", help="An actor the writer may claim in its events, fnmatch style ('*@h1'); repeatable. "
                        "Default: only the writer's name; '*': any actor.")] = None,
    max_body: Annotated[int, typer.Option(min=1024, help="Largest POST body, in bytes; larger ones get 413.")
                        ] = 1024 * 1024,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log",
                                             help="One line per request on stderr (never a token or an entry).")
                          ] = True,
) -> None:
    """Serve the log's HTTP API: checkpoints, entries, inclusion and consistency proofs, bundles.

    Read-only unless given a write credential: a bearer token from --token-file or MEDSPACE_LEDGER_TOKEN (the
    file wins). Then POST /entries and POST /checkpoint need `Authorization: Bearer <token>`, and every event's
    actor must match one of the writer's --actor patterns, else the whole batch is refused. A hub that logs for
    the researchers of hospital h1: --writer hub --actor hub --actor '*@h1'."""
    from medspace.ledger.api import WriteAccess, read_token_file, serve, token_from_env
    from medspace.ledger.log import AuditLog

    token = read_token_file(token_file) if token_file is not None else token_from_env()
    if token is None and (writer != "owner" or actor):
        raise InputError("--writer and --actor need a write credential (--token-file or MEDSPACE_LEDGER_TOKEN)")
    access = WriteAccess.from_token(token, writer, actor or ()) if token is not None else None
    del token  # only its digest is kept
    with AuditLog(directory) as log:
        serve(log, host, port, access=access, max_body=max_body, access_log=access_log)


@ledger_app.command("token")
@clear_errors
def ledger_token(
    file: Annotated[Path, typer.Argument(help="File to write the token to (created with mode 0600).")],
    force: Annotated[bool, typer.Option("--force", help="Replace the token in an existing file.")] = False,
) -> None:
    """Write a fresh write token for `ledger serve --token-file` (and for its clients); it is never printed."""
    from medspace.ledger.api import write_token_file

    if file.exists() and not force:
        raise InputError(f"{file} already exists; pass --force to replace its token")
    with writing(file):
        write_token_file(file, replace=force)
    console.print(f"wrote a new write token to {file} (mode 0600); serve with "
                  f"`medspace ledger serve --token-file {file}`", highlight=False)


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
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="One line per request on stderr.")
    ] = True,
    space: Annotated[Path | None, typer.Option(help="The witness's copy of a data space (`medspace space export`): "
                                                    "serve HTTPS with its certificate.")] = None,
    name: Annotated[str | None, typer.Option(help="The witness's name in the space (with --space).")] = None,
) -> None:
    """Run a witness (C2SP tlog-witness: POST /add-checkpoint, GET /<sha256(origin)>/checkpoint) with its own key
    and store; over HTTPS with its space certificate when --space is given."""
    import ssl

    from medspace.ledger.witness import serve

    tls = None
    if space is not None:
        from medspace.policy.errors import PkiError
        from medspace.policy.pki import server_context

        if not name:
            raise InputError("--space needs --name: the witness's name in the space")
        try:
            tls = server_context(space, name)
        except PkiError as e:
            raise InputError(str(e)) from None
        # the log's signature authenticates what a witness cosigns, and regulators read its checkpoints without a
        # space certificate: client certificates are checked when presented, not required
        tls.verify_mode = ssl.CERT_OPTIONAL
    elif name:
        raise InputError("--name goes with --space")
    serve(state, key, log_key, host=host, port=port, access_log=access_log, tls=tls)


@audit_app.command("export")
@clear_errors
def audit_export(
    index: Annotated[int, typer.Argument(help="The entry's index.")],
    directory: DirOpt = DEFAULT_DIR,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="File to write (default: stdout).")] = None,
) -> None:
    """Write a self-contained proof bundle of one entry: entry, inclusion proof, checkpoint, cosignatures.

    The checkpoint is the smallest published one that covers the entry and meets the witness quorum."""
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


def _external_checkpoint(
    against: Path | None, witness: str | None, keys: Path | None, origin: str, ca: Path | None = None
) -> tuple[Checkpoint, str]:
    """The checkpoint held elsewhere (a file or a witness), verified under the trusted keys: (Checkpoint, source)."""
    from medspace.ledger.bundle import read_keys, verify_external
    from medspace.ledger.errors import LedgerError

    if against is not None and witness is not None:
        raise InputError("give --against or --witness, not both")
    if keys is None:
        raise InputError("--against and --witness need --keys (the keys file from `medspace audit keys`, "
                         "as held by whoever keeps the checkpoint)")
    trusted = read_keys(keys)
    if against is not None:
        source = str(against)
        try:
            text = against.read_text()
        except OSError as e:
            raise InputError(f"{against} cannot be read: {e.strerror or type(e).__name__}") from None
        if text.lstrip().startswith("{"):  # a proof bundle carries its checkpoint
            try:
                text = str(json.loads(text)["checkpoint"])
            except (ValueError, KeyError, TypeError):
                raise InputError(f"{against} is neither a checkpoint note nor a proof bundle") from None
        min_cosigners = trusted.quorum
    else:
        import ssl

        from medspace.ledger.witness import fetch_checkpoint, new_client

        assert witness is not None
        source = f"witness {witness}"
        try:
            verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if ca is not None else True
        except (OSError, ssl.SSLError) as e:
            raise InputError(f"the CA file {ca} cannot be used: {e}") from None
        with new_client(verify=verify) as http:
            text = fetch_checkpoint(witness, origin, client=http)
        min_cosigners = 1 if trusted.witnesses else 0  # a witness holds its own cosignature only
    try:
        cp = verify_external(text, trusted, min_cosigners, origin)
    except LedgerError as e:
        raise InputError(f"the checkpoint from {source} does not verify under {keys}: {e}") from None
    return cp, source


@audit_app.command("checkpoint")
@clear_errors
def audit_checkpoint(
    directory: DirOpt = DEFAULT_DIR,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="File to write (default: stdout).")] = None,
) -> None:
    """Write the latest witnessed checkpoint: keep it (a regulator, an auditor) to check the log against later."""
    from medspace.ledger.log import AuditLog

    with AuditLog(directory, readonly=True) as log:
        note = log.latest()
    if note is None:
        raise InputError("the log has no checkpoint that meets its witness quorum: run `medspace ledger publish`")
    if out is None:
        typer.echo(note, nl=False)
        return
    with writing(out):
        out.write_text(note)
    console.print(f"wrote {out}")


@audit_app.command("check")
@clear_errors
def audit_check(
    directory: DirOpt = DEFAULT_DIR,
    against: Annotated[Path | None, typer.Option(help="A checkpoint held elsewhere (a note from `audit checkpoint` "
                                                      "or a proof bundle) to prove the log consistent with.")] = None,
    witness: Annotated[str | None, typer.Option(help="A witness's URL: check against the latest checkpoint it "
                                                     "cosigned for this log.")] = None,
    keys: Annotated[Path | None, typer.Option(help="Trusted keys file (from `audit keys`) for --against and "
                                                   "--witness.")] = None,
    ca: Annotated[Path | None, typer.Option(help="CA file an HTTPS witness's certificate must chain to.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-derive the whole log from its entries and verify every stored checkpoint's signatures; any edited,
    deleted, reordered or truncated entry is found. With --against or --witness, also prove the log consistent
    with a checkpoint held elsewhere, which catches a log rewritten together with its own checkpoint file.

    Exit status 1 if the log does not re-derive or does not match; 2 if something cannot be opened or read."""
    from medspace.ledger.check import check, verify_checkpoints
    from medspace.ledger.errors import TamperError
    from medspace.ledger.log import AuditLog

    with AuditLog(directory, readonly=True) as log:
        external = None
        if against is not None or witness is not None:
            external = _external_checkpoint(against, witness, keys, log.config.origin, ca)
        try:
            stored = log.stored_checkpoints()
            report = check(log.store, [(c.size, c.checkpoint.root_hash) for c in stored])
            if external is not None:
                cp, source = external
                size, root = cp.size, cp.root_hash
                if size > report.size:
                    raise TamperError(f"entry {report.size}: the log has {report.size:,} entries, fewer than the "
                                      f"{size:,} of the checkpoint from {source} (truncated)")
                try:
                    verify_checkpoints(log.store, [(size, root)])
                except TamperError:
                    raise TamperError(f"the first {size:,} entries do not match the checkpoint from {source}: "
                                      "the log was rewritten after it was witnessed") from None
        except TamperError as e:
            if as_json:
                console.print_json(json.dumps({"ok": False, "error": str(e)}))
            raise Finding(f"check failed: {e}") from None
        witnessed = sum(1 for c in stored if len(c.cosigners) >= log.config.quorum)
    data = {"ok": True, "size": report.size, "root": report.root.hex(), "entries": report.entries,
            "checkpoints": len(stored), "witnessed_checkpoints": witnessed,
            "against": None if external is None else {"source": external[1], "size": external[0].size}}
    if as_json:
        console.print_json(json.dumps(data))
        return
    line = (f"ok: {report.size:,} entries re-derived, root {report.root.hex()}; {len(stored)} stored checkpoint(s) "
            f"verified ({witnessed} witnessed)")
    if external is not None:
        line += f"; consistent with the checkpoint of size {external[0].size:,} from {external[1]}"
    console.print(line, highlight=False)
