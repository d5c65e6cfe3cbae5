"""Mutual TLS on 127.0.0.1 with real handshakes: a Starlette app served by `run_in_thread` sees the client's
verified identity; a client without a certificate, with one from another space's CA, or with a revoked one is
refused at handshake; the client refuses a server from another CA, a revoked server and a name its certificate
does not carry."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from medspace.hub.errors import HubError
from medspace.hub.tls import ServerHandle, listen_socket, peer_der, run_in_thread
from medspace.policy.errors import CertificateRejected, PkiError
from medspace.policy.pki import Space, client_context, init_space, reload_crl, server_context

# What a refused handshake looks like to httpx: the client's own verification fails (ConnectError), or in TLS 1.3
# the server's alert arrives after the client finished its side (ReadError, RemoteProtocolError).
REFUSED = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)


def identity_app(space: Space) -> Starlette:
    """An app that answers with the verified identity of the client certificate of the request's connection."""

    async def who(request: Request) -> JSONResponse:
        der = peer_der(request.scope)
        if der is None:
            return JSONResponse({"error": "no client certificate"}, status_code=401)
        try:
            ident = space.verify_peer(der)
        except CertificateRejected as e:
            return JSONResponse({"error": e.reason}, status_code=403)
        tls = request.scope["extensions"]["tls"]
        return JSONResponse({"space": ident.space, "role": ident.role, "name": ident.name,
                             "tls_version": tls["tls_version"], "chain": len(tls["client_cert_chain"])})

    return Starlette(routes=[Route("/who", who)])


@pytest.fixture
def space(tmp_path: Path) -> Space:
    return init_space(tmp_path / "space", "demo", nodes=["h1", "h2"], witnesses=["w1"])


@pytest.fixture
def hub(space: Space) -> Iterator[ServerHandle]:
    with run_in_thread(identity_app(space), server_context(space, "hub")) as handle:
        yield handle


def test_a_node_reaches_the_hub_and_the_app_sees_who_it_is(space: Space, hub: ServerHandle) -> None:
    assert hub.port > 0 and hub.url == f"https://127.0.0.1:{hub.port}"
    with httpx.Client(verify=client_context(space, "h1")) as client:
        for _ in range(2):  # two requests on one connection: each scope carries the certificate
            r = client.get(f"{hub.url}/who")
            assert r.status_code == 200
            assert r.json() == {"space": "demo", "role": "node", "name": "h1", "tls_version": "TLSv1.3", "chain": 1}
    # the server certificate names localhost too, and a witness is a client like any other
    r = httpx.get(f"https://localhost:{hub.port}/who", verify=client_context(space, "w1"))
    assert r.json()["role"] == "witness"


def test_a_client_without_a_certificate_is_refused(space: Space, hub: ServerHandle) -> None:
    ctx = ssl.create_default_context(cafile=str(space.ca_pem))  # trusts the hub, presents nothing
    with pytest.raises(REFUSED):
        httpx.get(f"{hub.url}/who", verify=ctx)


def test_a_client_certificate_from_another_space_is_refused(space: Space, hub: ServerHandle, tmp_path: Path) -> None:
    other = init_space(tmp_path / "other", "demo", nodes=["h1"])  # same space name, same node name, other CA
    ctx = client_context(other, "h1")
    ctx.load_verify_locations(cafile=str(space.ca_pem))  # even if it trusts our hub
    with pytest.raises(REFUSED):
        httpx.get(f"{hub.url}/who", verify=ctx)


def test_a_revoked_client_is_refused_by_a_new_server_context(space: Space, hub: ServerHandle) -> None:
    h2 = client_context(space, "h2")
    assert httpx.get(f"{hub.url}/who", verify=h2).status_code == 200
    space.revoke("h2", "key_compromise")
    # the running server still holds the old CRL at handshake; the app's own check already says no
    r = httpx.get(f"{hub.url}/who", verify=client_context(space, "h2"))
    assert (r.status_code, r.json()) == (403, {"error": "revoked"})
    with run_in_thread(identity_app(space), server_context(space, "hub")) as fresh:
        with pytest.raises(REFUSED):
            httpx.get(f"{fresh.url}/who", verify=client_context(space, "h2"))
        assert httpx.get(f"{fresh.url}/who", verify=client_context(space, "h1")).json()["name"] == "h1"


def test_reload_crl_refuses_a_revoked_client_on_a_live_server(space: Space) -> None:
    ctx = server_context(space, "hub")
    with run_in_thread(identity_app(space), ctx) as live:
        assert httpx.get(f"{live.url}/who", verify=client_context(space, "h2")).status_code == 200
        space.revoke("h2")
        reload_crl(ctx, space)
        with pytest.raises(REFUSED):
            httpx.get(f"{live.url}/who", verify=client_context(space, "h2"))
        space.revoke("h1")  # a second revocation right after the first: the newest CRL still wins
        reload_crl(ctx, space)
        with pytest.raises(REFUSED):
            httpx.get(f"{live.url}/who", verify=client_context(space, "h1"))
        assert httpx.get(f"{live.url}/who", verify=client_context(space, "w1")).status_code == 200


def test_the_client_refuses_a_server_of_another_ca(space: Space, tmp_path: Path) -> None:
    other = init_space(tmp_path / "other", "demo", nodes=["h1"])
    with (run_in_thread(identity_app(other), server_context(other, "hub")) as impostor,
          pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED")):
        httpx.get(f"{impostor.url}/who", verify=client_context(space, "h1"))


def test_the_client_refuses_a_revoked_server(space: Space) -> None:
    space.revoke("w1")
    with (run_in_thread(identity_app(space), server_context(space, "w1")) as revoked,
          pytest.raises(httpx.ConnectError, match="revoked")):
        httpx.get(f"{revoked.url}/who", verify=client_context(space, "h1"))


def test_the_client_checks_the_servers_name(space: Space) -> None:
    # a node's certificate names no host: serving with it fails the client's hostname check
    with (run_in_thread(identity_app(space), server_context(space, "h2")) as wrong,
          pytest.raises(httpx.ConnectError, match="IP address mismatch")):
        httpx.get(f"{wrong.url}/who", verify=client_context(space, "h1"))


def test_contexts_need_the_participants_key(space: Space, tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="cannot read the key file"):
        server_context(space, "nobody")
    space.participant("h1").key.chmod(0o640)
    with pytest.raises(PkiError, match="chmod 600"):
        client_context(space, "h1")
    ctx = server_context(space.directory, "hub")  # a path works as well as an open Space
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3


def test_peer_der_without_tls() -> None:
    assert peer_der({"type": "http"}) is None
    assert peer_der({"type": "http", "extensions": {"tls": {"client_cert_der": None}}}) is None
    assert peer_der({"extensions": {"tls": {"client_cert_der": b"\x30"}}}) == b"\x30"


def test_a_port_in_use_is_one_error() -> None:
    sock = listen_socket("127.0.0.1", 0)
    try:
        with pytest.raises(HubError, match=f"cannot listen on 127.0.0.1:{sock.getsockname()[1]}"):
            listen_socket("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()
