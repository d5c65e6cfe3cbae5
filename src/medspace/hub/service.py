"""The hub service: one class that brings together its parts (accounts and audit, contracts, consent, tasks)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from medspace.hub.consents import ConsentOps
from medspace.hub.core import CONFIG, DeferredRefusal, HubConfig, init_hub, read_config, reading_inline
from medspace.hub.tasks import TaskOps

__all__ = ["CONFIG", "Hub", "HubConfig", "init_hub", "offload", "read", "read_config"]
T = TypeVar("T")
# The hub's work is short and CPU-bound under one GIL: a few threads keep the cores busy (more fight over the GIL)
WORKER_THREADS = 8
_POOL = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="medspace-hub")


class Hub(TaskOps, ConsentOps):
    """A hub process: accounts, participants, contracts, consent registry, task dispatch, audit log."""


async def read(hub: Hub, fn: Callable[..., T], *args: Any) -> T:
    """Run a short read of the hub database from a route: on SQLite in the event loop (a read in WAL mode takes
    microseconds and waits for no lock: less than the hand-over to a worker thread), on PostgreSQL on a worker
    thread (a network round trip, and a pool that may make it wait). A refusal met in the read is logged on a worker
    thread before it is raised."""
    if hub.db.postgres:
        return await offload(fn, *args)
    try:
        with reading_inline():
            return fn(*args)
    except DeferredRefusal as r:
        refusal = r
    raise await offload(functools.partial(hub.refuse, refusal.who, refusal.rule, refusal.message,
                                          resource=refusal.resource, purpose=refusal.purpose))


async def offload(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking hub work (a write, an fsync, a PostgreSQL round trip) on a worker thread, with one hand-over
    each way: anyio's run_sync (what FastAPI does for sync routes) also yields to the event loop before and after,
    and under load each yield waits a full turn of the loop."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(fn, *args))
