"""Wake-ups for long-polls: in this process, and from other hub processes through PostgreSQL's LISTEN/NOTIFY.

A long-poll takes the channel's current :class:`Wakeup` *before* it reads the database, reads, and waits on the
wake-up only when it found nothing, so a change committed between its read and its wait still wakes it. A wake-up
says only "something on this channel changed"; the waiter reads the database again. Notifications are sent in the
transaction that makes the change (``pg_notify``), so PostgreSQL delivers them on commit and never for a change
that was rolled back.

Channels: ``assignments`` (a node has work), ``tasks`` (a task finished), ``consents`` (a consent changed),
``contracts`` (a contract was revoked or ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

CHANNELS = ("assignments", "tasks", "consents", "contracts")
_PREFIX = "medspace_"


class Wakeup:
    """One channel's wake-up as a waiter saw it; set when the channel changes after it was taken."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._async: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lock = threading.Lock()

    def fire(self) -> None:
        """Wake every waiter (thread-safe)."""
        with self._lock:
            self._event.set()
            waiters, self._async = self._async, []
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
                loop.call_soon_threadsafe(_resolve, fut)

    async def wait(self, timeout: float) -> bool:
        """Wait until fired or ``timeout`` seconds pass; whether it fired."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._event.is_set():
                return True
            self._async.append((loop, fut))
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False

    def wait_sync(self, timeout: float) -> bool:
        """Block this thread until fired or ``timeout`` passes (for threads and tests)."""
        return self._event.wait(timeout)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Notifier:
    """The channels of one hub process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current = {c: Wakeup() for c in CHANNELS}
        self._listener: _PgListener | None = None

    def wakeup(self, channel: str) -> Wakeup:
        """The channel's current wake-up: take it before reading, wait on it after finding nothing."""
        with self._lock:
            return self._current[channel]

    def fire(self, channel: str) -> None:
        """Signal a change on a channel in this process (thread-safe)."""
        with self._lock:
            old, self._current[channel] = self._current[channel], Wakeup()
        old.fire()

    def listen_postgres(self, conninfo: str) -> None:
        """Also fire on NOTIFYs from other hub processes sharing the PostgreSQL database at ``conninfo``."""
        if self._listener is None:
            self._listener = _PgListener(conninfo, self)
            self._listener.start()
            self._listener.ready.wait(10)

    def close(self) -> None:
        """Stop listening."""
        if self._listener is not None:
            self._listener.stop()
            self._listener = None


def notify_sql(channel: str) -> tuple[str, dict[str, Any]]:
    """The statement and parameters that notify other hub processes of a change, sent inside the transaction."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel}")
    return "SELECT pg_notify(:c, '')", {"c": _PREFIX + channel}


class _PgListener(threading.Thread):
    """A thread with its own connection that LISTENs on every channel, reconnecting with backoff."""

    def __init__(self, conninfo: str, notifier: Notifier) -> None:
        super().__init__(name="medspace-hub-listen", daemon=True)
        self._conninfo = conninfo
        self._notifier = notifier
        self._halt = threading.Event()
        self.ready = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def run(self) -> None:
        import psycopg

        backoff = 0.1
        while not self._halt.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    for c in CHANNELS:
                        conn.execute(f"LISTEN {_PREFIX}{c}")
                    self.ready.set()
                    backoff = 0.1
                    # after a reconnect something may have been missed: wake every waiter to re-read
                    for c in CHANNELS:
                        self._notifier.fire(c)
                    while not self._halt.is_set():
                        for n in conn.notifies(timeout=0.5):
                            name = n.channel.removeprefix(_PREFIX)
                            if name in CHANNELS:
                                self._notifier.fire(name)
            except psycopg.Error:
                self._halt.wait(backoff)
                backoff = min(backoff * 2, 5.0)
