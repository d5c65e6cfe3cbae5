"""Servers for the ledger's HTTP tests, on free loopback ports from background threads: an ASGI app under uvicorn,
and a TCP server that accepts connections and never answers (a witness gone silent)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import uvicorn


@contextlib.contextmanager
def thread_server(app: Any, *, lifespan: Literal["auto", "on", "off"] = "on") -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port from a background thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # so asyncio sets TCP_NODELAY
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan=lifespan))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        # a wait for start-up, not a timing assertion: generous, so a busy machine only makes it slower
        deadline = time.monotonic() + 30
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


class SilentServer:
    """A TCP server on a free loopback port that accepts every connection and never answers until closed (with
    ``drip``, it starts an HTTP answer and sends one header line every 50 ms without ever finishing it).
    ``accepted`` is set once a connection has come in. Use it in a ``with`` block, or call :meth:`close`."""

    def __init__(self, *, drip: bool = False) -> None:
        self.drip = drip
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)  # so the accept loop sees `close` promptly
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = threading.Event()
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._drippers: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self._held.append(conn)
            self.accepted.set()
            if self.drip:
                dripper = threading.Thread(target=self._dribble, args=(conn,), daemon=True)
                dripper.start()
                self._drippers.append(dripper)

    def _dribble(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            for i in range(2000):  # bounded: 100 s at most, far past any test's deadline
                if self._stop.wait(0.05):
                    return
                conn.sendall(b"X-Drip-%d: 1\r\n" % i)

    def close(self) -> None:
        """Hang up every connection and stop listening (the clients waiting see the connection closed)."""
        self._stop.set()
        self._thread.join(30)
        for dripper in self._drippers:  # before closing their connections, which they write to
            dripper.join(30)
        for conn in self._held:
            conn.close()
        self._held.clear()
        self.sock.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
