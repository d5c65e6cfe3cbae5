"""`medspace space`: the data space's certificate authority from the command line: create a space, make a
hospital's key and CSR, enrol it, revoke, list. Keys are written with mode 0600 and never printed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medspace.cli.common import InputError, JsonOpt, clear_errors, console, writing

if TYPE_CHECKING:
    from medspace.ledger.log import AuditLog

space_app = typer.Typer(help="The space's certificate authority: participants' certificates for mutual TLS.",
                        no_args_is_help=True)

SpaceDir = Annotated[Path, typer.Argument(help="The space directory (ca/, participants/).")]
LogOpt = Annotated[Path | None, typer.Option("--log", help="An audit log directory (e.g. the hub's log/) to record "
                                                           "the step in.")]


@contextmanager
def _audit(log: Path | None) -> Iterator[AuditLog | None]:
    """The audit log the CA records its steps in, if one is named."""
    if log is None:
        yield None
        return
    from medspace.ledger.log import AuditLog

    with AuditLog(log) as audit:
        yield audit


@contextmanager
def _pki_errors() -> Iterator[None]:
    """A refused request of the CA is a usage or input error: one line, exit status 2."""
    from medspace.policy.errors import PolicyError

    try:
        yield
    except PolicyError as e:
        raise InputError(str(e)) from None


@space_app.command("init")
@clear_errors
def space_init(
    directory: SpaceDir,
    name: Annotated[str, typer.Option("--name", help="The space's name (lower-case letters, digits, '-').")],
    hub: Annotated[str, typer.Option("--hub", help="The hub's name.")] = "hub",
    node: Annotated[list[str] | None, typer.Option("--node", help="A node, named by its hospital id (e.g. h1); "
                                                                  "repeatable.")] = None,
    witness: Annotated[list[str] | None, typer.Option("--witness", help="A witness's name; repeatable.")] = None,
    host: Annotated[list[str] | None, typer.Option("--host", help="A DNS name or address of the servers (hub, "
                                                                  "witnesses) besides localhost and 127.0.0.1; "
                                                                  "repeatable.")] = None,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Validity of the participants' certificates.")] = 365,
) -> None:
    """Create a space: its CA (key 0600), an empty revocation list, and keys and certificates for the hub, the
    nodes and the witnesses. DIRECTORY must be new or empty."""
    from medspace.policy.pki import init_space

    with _pki_errors(), writing(directory):  # a directory this run creates is removed again if it fails
        space = init_space(directory, name, hub=hub, nodes=node or (), witnesses=witness or (), hosts=host or (),
                           days=days)
    console.print(f"space {space.name} created in {escape(str(directory))}: "
                  f"{len(space.issued())} participants (`medspace space list {escape(str(directory))}`)",
                  highlight=False, soft_wrap=True)


@space_app.command("csr")
@clear_errors
def space_csr(
    name: Annotated[str, typer.Option("--name", help="This participant's name (a node: its hospital id).")],
    out: Annotated[Path, typer.Option("--out", help="Directory for key.pem (0600) and csr.pem.")],
) -> None:
    """Hospital side of enrolment: make a private key and a certificate signing request; send only csr.pem."""
    from medspace.policy.pki import write_csr

    with _pki_errors(), writing(out):
        _, csr = write_csr(out, name)
    console.print(f"wrote {escape(str(out / 'key.pem'))} (keep it here) and {escape(str(csr))} (send it to the "
                  "space's operator)", highlight=False, soft_wrap=True)


@space_app.command("enrol")
@clear_errors
def space_enrol(
    directory: SpaceDir,
    csr: Annotated[Path, typer.Option("--csr", help="The participant's CSR (PEM).")],
    role: Annotated[str, typer.Option("--role", help="hub, node or witness.")],
    name: Annotated[str, typer.Option("--name", help="The participant's name; the CSR's CN must equal it.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the certificate (PEM).")],
    host: Annotated[list[str] | None, typer.Option("--host", help="A server's extra DNS name or address; "
                                                                  "repeatable.")] = None,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Validity of the certificate.")] = 365,
    log: LogOpt = None,
) -> None:
    """Check a participant's CSR and issue its certificate (the CA also keeps a copy under participants/)."""
    from medspace.policy.pki import Space

    try:
        data = csr.read_bytes()[:65537]
    except OSError as e:
        from medspace.cli.common import os_error_line

        raise InputError(os_error_line(e, "read", csr)) from None
    with _pki_errors(), _audit(log) as audit:
        space = Space.open(directory, audit=audit)
        cert = space.enrol(data, role, name, hosts=host or (), days=days)
    try:
        out.write_bytes(cert)
    except OSError as e:
        from medspace.cli.common import os_error_line

        kept = directory / "participants" / name / "cert.pem"
        raise InputError(f"{os_error_line(e, 'write', out)}; the certificate is also in {kept}") from None
    console.print(f"{escape(name)} enrolled as {role}: certificate in {escape(str(out))}", highlight=False,
                  soft_wrap=True)


@space_app.command("revoke")
@clear_errors
def space_revoke(
    directory: SpaceDir,
    name: Annotated[str, typer.Argument(help="The participant whose certificate is revoked.")],
    reason: Annotated[str, typer.Option("--reason", help="An RFC 5280 reason: unspecified, key_compromise, "
                                                         "affiliation_changed, superseded, cessation_of_operation, "
                                                         "privilege_withdrawn.")] = "unspecified",
    log: LogOpt = None,
) -> None:
    """Revoke a participant's certificate and re-sign the revocation list (servers refuse it once they reload)."""
    from medspace.policy.pki import Space

    with _pki_errors(), _audit(log) as audit:
        rec = Space.open(directory, audit=audit).revoke(name, reason)
    console.print(f"{escape(name)} revoked (serial {rec.serial}, reason {reason}); the new revocation list is "
                  f"{escape(str(directory / 'ca' / 'crl.pem'))}", highlight=False, soft_wrap=True)


@space_app.command("refresh-crl")
@clear_errors
def space_refresh_crl(directory: SpaceDir) -> None:
    """Re-sign the revocation list for another 7 days (run it daily: handshakes fail once it expires)."""
    from medspace.policy.pki import CRL_DAYS, Space

    with _pki_errors():
        Space.open(directory).refresh_crl()
    console.print(f"revocation list re-signed, valid {CRL_DAYS} days", highlight=False, soft_wrap=True)


@space_app.command("export")
@clear_errors
def space_export(
    directory: SpaceDir,
    name: Annotated[str, typer.Argument(help="The participant.")],
    out: Annotated[Path, typer.Option("--out", help="A new directory for the participant's copy of the space.")],
) -> None:
    """Write what one participant needs (CA certificate, revocation list, its key and certificate) to a new
    directory: the copy of the space its host opens."""
    from medspace.policy.pki import Space

    with _pki_errors(), writing(out):
        Space.open(directory).export(name, out)
    console.print(f"{escape(name)}'s copy of the space written to {escape(str(out))}", highlight=False,
                  soft_wrap=True)


@space_app.command("list")
@clear_errors
def space_list(directory: SpaceDir, as_json: JsonOpt = False) -> None:
    """Every certificate the CA issued: name, role, hospital, serial, expiry, revocation."""
    from medspace.policy.pki import Space, describe

    with _pki_errors():
        space = Space.open(directory)
        records = space.issued()
    if as_json:
        console.print_json(json.dumps({"space": space.name, "certificates": describe(records)}))
        return
    t = Table(title=f"space {space.name}", title_justify="left")
    for col in ("name", "role", "hospital", "serial", "not after", "revoked"):
        t.add_column(col)
    for r in records:
        t.add_row(r.name, r.role, r.hospital or "", r.serial[:16], r.not_after,
                  f"{r.revoked_at} ({r.reason})" if r.revoked_at else "")
    console.print(t)
