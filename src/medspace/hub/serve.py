"""Running a hub process (`medspace hub serve`): the API over TLS, the monitor, checkpoint publication.

One listener serves everyone. Its TLS context is the space's server context with client certificates *optional*:
people (browsers, the CLI, the Python client) connect with server authentication and a bearer token; nodes present
their space certificate, which is then verified at the handshake (a certificate from another CA, or a revoked one,
fails the handshake) and again by every node route, which refuses a request without one. A hub directory without
a space (development only) serves plain HTTP, and its node routes refuse everything.

Several processes may serve one hub directory whose database is PostgreSQL, each on its own port; they share the
task queue, the consent registry and the audit log, and wake each other's long-polls with LISTEN/NOTIFY.
"""

from __future__ import annotations

import contextlib
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from medspace.hub.app import create_app
from medspace.hub.monitor import Monitor
from medspace.hub.service import Hub
from medspace.ledger.errors import LedgerError
from medspace.policy.pki import server_context

PUBLISH_EVERY = 2.0
SWITCH_INTERVAL = 0.001  # seconds (Python's default: 0.005)


def hub_context(hub: Hub) -> ssl.SSLContext | None:
    """The listener's TLS context (client certificates optional), or None for a hub without a space."""
    if hub.space is None:
        return None
    ctx = server_context(hub.space, hub.config.name)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


class Publisher(threading.Thread):
    """Publishes a witnessed checkpoint of the audit log every few seconds when it has grown."""

    def __init__(self, hub: Hub, every: float = PUBLISH_EVERY) -> None:
        super().__init__(name="medspace-hub-publish", daemon=True)
        self.hub = hub
        self.every = every
        self._halt = threading.Event()
        self.last_error: str | None = None

    def publish_now(self) -> None:
        """Publish if the log grew since the latest checkpoint."""
        log = self.hub.log
        if log.store.size > log.latest_size():
            with self.hub._log_lock:  # a checkpoint covers only what is committed; appends wait a moment
                pub = log.publish()
            self.last_error = "; ".join(f"{k}: {v}" for k, v in pub.errors.items()) or None

    def run(self) -> None:
        while not self._halt.wait(self.every):
            try:
                self.publish_now()
            except (LedgerError, OSError) as e:
                self.last_error = str(e)

    def stop(self) -> None:
        """End the thread."""
        self._halt.set()
        self.join(10)


@dataclass
class RunningHub:
    """A hub serving in this process: its URL and how to stop it."""

    hub: Hub
    url: str
    stop: Callable[[], None]


@contextmanager
def running(directory: Path, *, host: str = "127.0.0.1", port: int = 0, monitor: bool = True,
            publish: bool = True) -> Iterator[RunningHub]:
    """Serve a hub directory in background threads of this process until the block ends (tests, benchmarks)."""
    from medspace.hub.tls import run_in_thread

    hub = Hub.open(directory)
    threads: list[Monitor | Publisher] = []
    try:
        if hub.db.postgres:
            hub.db.listen()
        ctx = hub_context(hub)
        if ctx is None:
            raise ValueError("a hub without a space has no TLS listener")
        handle = run_in_thread(create_app(hub), ctx, host=host, port=port)
        if monitor:
            threads.append(Monitor(hub))
        if publish:
            threads.append(Publisher(hub))
        for t in threads:
            t.start()
        try:
            yield RunningHub(hub, handle.url, handle.stop)
        finally:
            handle.stop()
    finally:
        for t in threads:
            with contextlib.suppress(Exception):
                t.stop()
        hub.close()


def serve(directory: Path, *, host: str, port: int, announce: Callable[[str], None] | None = None) -> None:
    """Serve a hub directory until interrupted (what `medspace hub serve` runs)."""
    from medspace.hub.tls import serve_mtls

    # Worker threads (writes: fsyncs, SQLite) give the GIL up often and wait for it back; with the event loop busy
    # they would wait the default 5 ms every time. The hub's slices of work are short: hand the GIL over sooner.
    sys.setswitchinterval(SWITCH_INTERVAL)
    hub = Hub.open(directory)
    monitor, publisher = Monitor(hub), Publisher(hub)
    try:
        if hub.db.postgres:
            hub.db.listen()
        ctx = hub_context(hub)
        if ctx is None:
            raise ValueError(f"{directory}: the hub has no space (hub.toml: space); it serves only over TLS")
        monitor.start()
        publisher.start()
        serve_mtls(create_app(hub), host=host, port=port, context=ctx, announce=announce)
    finally:
        monitor.stop()
        publisher.stop()
        hub.close()
