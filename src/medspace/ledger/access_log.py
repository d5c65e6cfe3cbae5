"""One access-log line per HTTP request, for the log's API and the witness: who asked what, and the answer.

A line is ``<remote> <principal> "<METHOD> <path>" <status> <bytes> <ms>ms``: the authenticated writer's name (or
``-``), never a header, a query value, a body or a token, so the access log carries no secret and no record. The
lines go to the ``medspace.access`` logger; the servers print it on stderr unless told not to.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOGGER = logging.getLogger("medspace.access")
# Set by an endpoint in ``scope["state"]`` (Starlette's ``request.state``) once a writer has authenticated.
PRINCIPAL_KEY = "principal"


class AccessLog:
    """ASGI middleware writing one line per HTTP request to :data:`LOGGER`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status, sent = 500, 0

        async def counting(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            client = scope.get("client")
            remote = f"{client[0]}:{client[1]}" if client else "-"
            state: dict[str, Any] = scope.get("state") or {}
            principal = str(state.get(PRINCIPAL_KEY) or "-")
            ms = (time.perf_counter() - t0) * 1000
            LOGGER.info('%s %s "%s %s" %d %d %.1fms', remote, principal, scope.get("method", "-"),
                        scope.get("path", "-"), status, sent, ms)


class _CurrentStderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a line is written, not when it was made: a server
    thread may outlive a replaced stderr (a test's capture, a daemon's redirect) and must not write to a
    closed stream."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def log_to_stderr(enabled: bool = True) -> None:
    """Print access-log lines on stderr (what the ``serve`` commands do unless ``--no-access-log``)."""
    LOGGER.propagate = False
    LOGGER.handlers.clear()
    if enabled:
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
        LOGGER.addHandler(handler)
        LOGGER.setLevel(logging.INFO)
    else:
        LOGGER.setLevel(logging.CRITICAL + 1)
