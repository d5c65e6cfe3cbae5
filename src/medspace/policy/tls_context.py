"""The mutual-TLS contexts every party of a space speaks (re-exported by :mod:`medspace.policy.pki`).

:func:`server_context` and :func:`client_context` trust only the space's CA and check the leaf certificate
against the CRL at handshake (``VERIFY_CRL_CHECK_LEAF``). The CRL is read when a context is made: after a
revocation, call :func:`reload_crl` on live contexts (or make new ones). TLS 1.3 is the default minimum and the
server issues no session tickets, so no connection resumes a session that a revocation should have ended.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from medspace.policy.errors import PkiError
from medspace.policy.pki_identity import _check_private
from medspace.private_files import os_reason

if TYPE_CHECKING:
    from medspace.policy.pki import Space


def _space(space: Space | Path | str) -> Space:
    from medspace.policy.pki import Space  # pki imports this module to re-export the contexts

    return space if isinstance(space, Space) else Space.open(Path(space))


def _context(purpose: int, space: Space | Path | str, name: str, minimum: ssl.TLSVersion) -> ssl.SSLContext:
    s = _space(space)
    p = s.participant(name)
    _check_private(p.key, "the key file")
    if not p.cert.is_file():
        raise PkiError(f"no certificate for {name} in {s.directory}")
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = minimum
    try:
        ctx.load_cert_chain(p.cert, p.key)
        ctx.load_verify_locations(cafile=s.ca_pem)  # only the space's CA: no system roots
        s.crl()  # refuse a CRL the CA did not sign before OpenSSL silently skips it
        ctx.load_verify_locations(cafile=s.crl_pem)
    except ssl.SSLError as e:
        raise PkiError(f"cannot load the TLS files of {name} from {s.directory} ({e.reason or 'ssl error'})") from None
    except OSError as e:
        raise PkiError(f"cannot load the TLS files of {name} from {s.directory}: {os_reason(e)}") from None
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF | ssl.VERIFY_X509_STRICT
    ctx.options |= ssl.OP_NO_TICKET | ssl.OP_NO_RENEGOTIATION
    return ctx


def server_context(space: Space | Path | str, name: str, *,
                   minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3) -> ssl.SSLContext:
    """A server's TLS context: its own certificate, client certificates required, only the space's CA trusted,
    revoked clients refused at handshake (the CRL as of now: see reload_crl), no session resumption."""
    ctx = _context(ssl.PROTOCOL_TLS_SERVER, space, name, minimum_version)
    ctx.num_tickets = 0  # TLS 1.3: no tickets, so every connection makes a full handshake and sees the CRL
    return ctx


def client_context(space: Space | Path | str, name: str, *,
                   minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> ssl.SSLContext:
    """A client's TLS context: presents its certificate, trusts only the space's CA, checks the server's hostname
    (server certificates name localhost and 127.0.0.1) and that the server's certificate is not revoked."""
    ctx = _context(ssl.PROTOCOL_TLS_CLIENT, space, name, minimum_version)
    ctx.check_hostname = True
    return ctx


def reload_crl(ctx: ssl.SSLContext, space: Space | Path | str) -> None:
    """Load the space's current CRL into a live context: new handshakes are checked against it (OpenSSL uses the
    most recent CRL of the CA it holds). Connections already open are not affected."""
    s = _space(space)
    s.crl()
    try:
        ctx.load_verify_locations(cafile=s.crl_pem)
    except (ssl.SSLError, OSError) as e:
        raise PkiError(f"cannot load the revocation list {s.crl_pem}: {e}") from None
