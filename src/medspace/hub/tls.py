"""Serving an ASGI app (the hub's FastAPI app, a witness's Starlette app) over mutual TLS, with the client's
certificate in every request's scope.

uvicorn puts nothing of TLS in the ASGI scope. Here its HTTP protocol is subclassed: once the handshake is done
(asyncio calls ``connection_made`` only then) the connection reads the peer's certificate and wraps the app so each
request's scope carries the ASGI TLS extension, ``scope["extensions"]["tls"]``, with ``client_cert_der`` (DER bytes)
and ``client_cert_chain`` (the leaf as PEM, as the extension's specification spells it). An app reads it with
:func:`peer_der` and checks it with :meth:`medspace.policy.pki.Space.verify_peer`.

The HTTP parser is httptools' when it is installed (C; h11, pure Python, costs several times its CPU per
request), else h11, each subclassed the same way; the event loop is uvicorn's choice (uvloop when installed: its
TLS transport is C, asyncio's is Python). WebSocket upgrades are off (``ws="none"``), since a WebSocket protocol
would not carry the extension.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from medspace.hub.errors import HubError

ASGIApp = Callable[..., Any]
STARTUP_SECONDS = 30.0


class _PeerCertificate:
    """Mixin for a uvicorn HTTP protocol: adds the peer certificate of the TLS connection to every request's scope."""

    app: Any

    def connection_made(self, transport: Any) -> None:  # asyncio calls it once the TLS handshake succeeded
        """Register the connection, then wrap the app with this connection's TLS extension."""
        super().connection_made(transport)  # type: ignore[misc]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:  # plain TCP: no extension (the ASGI spec's rule)
            return
        der: bytes | None = ssl_object.getpeercert(binary_form=True)
        tls: dict[str, Any] = {
            "client_cert_der": der,
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "tls_version": ssl_object.version(),
        }
        inner = self.app

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            """The app, with this connection's TLS extension in each scope."""
            scope.setdefault("extensions", {})["tls"] = dict(tls)
            await inner(scope, receive, send)

        self.app = app


class MtlsH11Protocol(_PeerCertificate, H11Protocol):
    """uvicorn's h11 protocol (pure Python), adding the peer certificate of the TLS connection to every scope."""


def http_protocol() -> type[Any]:
    """The HTTP protocol class to serve with: httptools' C parser when installed (a fraction of h11's CPU per
    request), else h11; either adds the peer certificate to every scope."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return MtlsH11Protocol

    class MtlsHttpToolsProtocol(_PeerCertificate, HttpToolsProtocol):
        """uvicorn's httptools protocol, adding the peer certificate of the TLS connection to every scope."""

    return MtlsHttpToolsProtocol


def peer_der(scope: Any) -> bytes | None:
    """The DER certificate the client presented on this request's TLS connection, or None (no TLS, no cert);
    for Starlette and FastAPI, pass ``request.scope``."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    der = tls.get("client_cert_der")
    return der if isinstance(der, bytes) and der else None


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0: any free port; read it with ``getsockname()[1]``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP (see ledger.witness)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise HubError(f"cannot listen on {host}:{port}: {exc.strerror or type(exc).__name__}") from None
    return sock


def mtls_server(app: ASGIApp, *, context: ssl.SSLContext, log_level: str = "warning", access_log: bool = False,
                **config: Any) -> uvicorn.Server:
    """A uvicorn server (not started) for ``app`` over TLS with ``context`` (from pki.server_context), the peer
    certificate in each scope; ``config`` goes to uvicorn.Config (not ``http``, ``ws`` or ``ssl_*``)."""
    # long-polls would hold a graceful shutdown for their whole wait; nodes reconnect, so cut them after 2 s
    config.setdefault("timeout_graceful_shutdown", 2)
    cfg = uvicorn.Config(app, http=http_protocol(), ws="none", log_level=log_level, access_log=access_log, **config)
    cfg.load()
    cfg.ssl = context  # after load(), which would otherwise build its own context from ssl_* files
    return uvicorn.Server(cfg)


def serve_mtls(app: ASGIApp, *, host: str, port: int, context: ssl.SSLContext,
               announce: Callable[[str], None] | None = None, **config: Any) -> None:
    """Serve ``app`` over mutual TLS until interrupted (what `medspace hub serve` runs); ``port=0`` picks a free
    port; ``announce`` receives the URL once the socket listens (default: printed)."""
    sock = listen_socket(host, port)
    server = mtls_server(app, context=context, **config)
    (announce or (lambda u: print(f"listening on {u}", flush=True)))(_url(host, sock.getsockname()[1]))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


@dataclass
class ServerHandle:
    """A server running in a thread: its address, and stop() to end it (also on leaving a ``with`` block)."""

    host: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread
    _sock: socket.socket = field(repr=False)

    @property
    def url(self) -> str:
        """https://host:port of the server."""
        return _url(self.host, self.port)

    def stop(self) -> None:
        """Ask the server to finish its requests and stop, and wait for its thread."""
        self.server.should_exit = True
        self.thread.join()
        self._sock.close()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(app: ASGIApp, context: ssl.SSLContext, host: str = "127.0.0.1", port: int = 0,
                  **config: Any) -> ServerHandle:
    """Start ``app`` over mutual TLS in a daemon thread and return once it accepts connections (tests, the demo)."""
    sock = listen_socket(host, port)
    bound = sock.getsockname()[1]
    server = mtls_server(app, context=context, **config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"mtls-{host}:{bound}", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    # uvicorn has no start-up event to wait on; `started` is set once the lifespan ran and the socket serves
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=5)
            sock.close()
            raise HubError(f"the server on {host}:{bound} did not start")
        time.sleep(0.01)
    return ServerHandle(host, bound, server, thread, sock)
