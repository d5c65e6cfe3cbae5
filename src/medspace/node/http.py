"""A node's HTTP connection to the hub: one keep-alive HTTPS connection (mutual TLS), answers read with the standard
library's ``http.client``.

A node sends one request per task (its answer, which also asks for the next assignments) and long-polls the rest of
the time; httpx costs it more CPU per request than counting a hospital's patients, so the node writes its HTTP/1.1
requests itself (one write each) and reads the answers with ``http.client``: the same TLS context (the node's space
certificate, the space CA), the same timeouts (a short one to connect, the long-poll's plus a margin to read). A
transport failure is ConnectionFailed, on which the node reconnects with backoff. A request on a kept-alive
connection that the hub closed meanwhile (its idle timeout) is sent once more on a new connection: the hub closes
only connections without a request in flight, and an answer sent twice is refused the second time (409), which the
node accepts.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from medspace.node.errors import ConnectionFailed

CONNECT_TIMEOUT = 5.0
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


@dataclass(frozen=True)
class Reply:
    """The hub's answer: status and body."""

    status_code: int
    content: bytes

    def json(self) -> Any:
        """The body as JSON (ValueError if it is not)."""
        return orjson.loads(self.content)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.content.decode()


class HubHttp:
    """One keep-alive HTTPS connection to the hub at ``url`` (https://host:port) with a client TLS context."""

    def __init__(self, url: str, context: ssl.SSLContext, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ConnectionFailed(f"the hub's URL must be https://host:port, not {url}")
        self.host = parts.hostname
        self.port = parts.port or 443
        self.prefix = parts.path.rstrip("/")
        self.context = context
        self.timeout = timeout
        self._host_header = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        self._sock: ssl.SSLSocket | None = None
        self._used = False  # whether the open connection served a request already (kept alive)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Reply:
        """GET ``path`` with query ``params``."""
        return self.request("GET", path, params=params)

    def post(self, path: str, params: Mapping[str, Any] | None = None, json: Any = None) -> Reply:
        """POST ``path`` with query ``params`` and a JSON body."""
        return self.request("POST", path, params=params, body=orjson.dumps(json))

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: bytes | None = None) -> Reply:
        """Send one request and read its whole answer; ConnectionFailed on a transport failure."""
        target = self.prefix + path + (f"?{urlencode(params)}" if params else "")
        head = f"{method} {target} HTTP/1.1\r\nHost: {self._host_header}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        # head and body in one write: one TLS record, one segment (http.client writes them apart)
        data = (head + "\r\n").encode() + (body or b"")
        for attempt in (1, 2):
            reused = self._used
            try:
                sock = self._connection()
                sock.sendall(data)
                resp = http.client.HTTPResponse(sock, method=method)
                resp.begin()
                content = resp.read()
            except _STALE as e:
                self.close()
                if reused and attempt == 1:  # the hub closed an idle kept-alive connection: once more, anew
                    continue
                raise ConnectionFailed(f"the hub at {self.host}:{self.port} closed the connection "
                                       f"({type(e).__name__})") from None
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise ConnectionFailed(f"the hub at {self.host}:{self.port} cannot be reached "
                                       f"({type(e).__name__})") from None
            self._used = True
            if resp.will_close:
                self.close()
            return Reply(resp.status, content)
        raise AssertionError("unreachable")

    def _connection(self) -> ssl.SSLSocket:
        if self._sock is None:
            raw = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
            try:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock = self.context.wrap_socket(raw, server_hostname=self.host)
            except BaseException:
                raw.close()
                raise
            sock.settimeout(self.timeout)  # a short timeout to connect, the long one (a long-poll's) to read
            self._sock = sock
            self._used = False
        return self._sock

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        sock, self._sock = self._sock, None
        self._used = False
        if sock is not None:
            sock.close()

    def __enter__(self) -> HubHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
