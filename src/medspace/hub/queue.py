"""The task queue: tasks split into one assignment per hospital, claimed by the nodes, finished once.

On PostgreSQL any number of hub processes share the queue. A node's long-poll claims its queued assignments with
``SELECT … FOR UPDATE SKIP LOCKED`` (two hub processes serving the same node never hand out one assignment twice,
and neither waits for the other's lock), and a finished assignment locks its task row before it checks whether it
was the last, so exactly one process finishes each task. On SQLite (one hub process) every write transaction
begins with ``BEGIN IMMEDIATE``, which serialises the same steps.

A claimed assignment whose node does not answer before its lease ends is queued again, up to ``max_attempts``;
a task past its deadline fails its open assignments and is finished with what arrived, as its completion rule
says: ``all`` fails the task when any hospital failed, ``available`` releases the answer of those that did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from medspace.hub.db import Assignment, Task, dumps, is_postgres, make_engine, utcnow
from medspace.hub.errors import Conflict, NotFound
from medspace.hub.notify import Notifier, notify_sql

LEASE = timedelta(seconds=30)
MAX_ATTEMPTS = 3

# finishes a task from its parts' results: (task, {hospital: result}, {hospital: error}) -> (status, result, error)
Finisher = Callable[[Task, dict[str, Any], dict[str, str]], tuple[str, Any, str | None]]


class HubDB:
    """The hub database of one process: engine, sessions, and the notifications its commits send."""

    def __init__(self, url: str, *, notifier: Notifier | None = None, pool_size: int = 10) -> None:
        self.url = url
        self.postgres = is_postgres(url)
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.notifier = notifier or Notifier()

    def listen(self) -> None:
        """Wake this process's long-polls on other hub processes' changes too (PostgreSQL only)."""
        if self.postgres:
            self.notifier.listen_postgres(self.url.replace("postgresql+psycopg://", "postgresql://"))

    @contextmanager
    def transaction(self, *channels: str) -> Iterator[Session]:
        """A session in one transaction; on commit, the named channels are notified here and in other processes."""
        with self.sessions() as s, s.begin():
            yield s
            if self.postgres:
                for c in channels:
                    sql, params = notify_sql(c)
                    s.execute(text(sql), params)
        for c in channels:
            self.notifier.fire(c)

    def close(self) -> None:
        """Release connections and stop listening."""
        self.notifier.close()
        self.engine.dispose()


@dataclass(frozen=True)
class Part:
    """One hospital's share of a new task."""

    hospital: str
    contract_uid: str | None
    payload: dict[str, Any]


def enqueue(s: Session, task: Task, parts: Sequence[Part]) -> None:
    """Add a task and its assignments (in the caller's transaction; notify ``assignments`` on commit)."""
    if not parts:
        raise Conflict("a task needs at least one hospital")
    s.add(task)
    s.flush()
    for p in parts:
        s.add(Assignment(task_id=task.id, hospital=p.hospital, contract_uid=p.contract_uid, status="queued",
                         payload=dumps(p.payload), attempts=0))


def claim(s: Session, hospital: str, claimer: str, *, limit: int = 16, now: datetime | None = None
          ) -> list[Assignment]:
    """Claim up to ``limit`` queued assignments of one hospital, oldest first; each is handed out once."""
    now = now or utcnow()
    rows = list(s.scalars(
        select(Assignment).where(Assignment.hospital == hospital, Assignment.status == "queued")
        .order_by(Assignment.id).limit(limit).with_for_update(skip_locked=True)))
    for a in rows:
        a.status = "claimed"
        a.claimed_by = claimer
        a.claimed_at = now
        a.attempts += 1
    return rows


def finish_assignment(s: Session, assignment_id: int, hospital: str, *, result: Any = None, error: str | None = None,
                      finisher: Finisher, now: datetime | None = None) -> Task:
    """Record a node's answer to its claimed assignment; the last answer finishes the task (exactly once)."""
    now = now or utcnow()
    a = s.scalars(select(Assignment).where(Assignment.id == assignment_id).with_for_update()).first()
    if a is None or a.hospital != hospital:
        raise NotFound(f"no assignment {assignment_id} for this node")
    if a.status != "claimed":
        raise Conflict(f"assignment {assignment_id} is {a.status}, not claimed: its answer is not accepted")
    a.status = "failed" if error is not None else "done"
    a.result = dumps(result) if error is None else None
    a.error = error
    a.finished_at = now
    return _maybe_finish(s, a.task_id, finisher, now)


def _maybe_finish(s: Session, task_id: str, finisher: Finisher, now: datetime) -> Task:
    # the task row's lock orders concurrent last answers: the second sees the first's commit
    task = s.scalars(select(Task).where(Task.id == task_id).with_for_update()).one()
    if task.status not in ("queued", "running"):
        return task
    parts = list(s.scalars(select(Assignment).where(Assignment.task_id == task_id)))
    open_ = [p for p in parts if p.status in ("queued", "claimed")]
    if open_:
        task.status = "running"
        return task
    results = {p.hospital: orjson.loads(p.result) for p in parts if p.status == "done" and p.result is not None}
    errors = {p.hospital: p.error or p.status for p in parts if p.status != "done"}
    status, result, error = finisher(task, results, errors)
    task.status = status
    task.result = dumps(result) if result is not None else None
    task.error = error
    task.finished_at = now
    return task


def requeue_expired_leases(s: Session, *, lease: timedelta = LEASE, max_attempts: int = MAX_ATTEMPTS,
                           now: datetime | None = None, finisher: Finisher) -> int:
    """Queue again the claimed assignments whose node did not answer within the lease (or fail them after
    ``max_attempts``); the number changed."""
    now = now or utcnow()
    stale = list(s.scalars(select(Assignment).where(Assignment.status == "claimed",
                                                    Assignment.claimed_at < now - lease)
                           .with_for_update(skip_locked=True)))
    for a in stale:
        if a.attempts >= max_attempts:
            a.status = "failed"
            a.error = f"node {a.hospital} did not answer after {a.attempts} attempts"
            a.finished_at = now
        else:
            a.status = "queued"
            a.claimed_by = None
    s.flush()
    for tid in {a.task_id for a in stale if a.status == "failed"}:
        _maybe_finish(s, tid, finisher, now)
    return len(stale)


def expire_tasks(s: Session, *, now: datetime | None = None, finisher: Finisher) -> list[str]:
    """Fail the open assignments of tasks past their deadline and finish those tasks; their ids."""
    now = now or utcnow()
    late = list(s.scalars(select(Task).where(Task.status.in_(("queued", "running")), Task.deadline < now)
                          .with_for_update(skip_locked=True)))
    for t in late:
        s.execute(update(Assignment).where(Assignment.task_id == t.id, Assignment.status.in_(("queued", "claimed")))
                  .values(status="failed", error="no answer before the task's deadline", finished_at=now))
        _maybe_finish(s, t.id, finisher, now)
    return [t.id for t in late]


def cancel_tasks(s: Session, task_ids: Sequence[str], reason: str, *, now: datetime | None = None) -> int:
    """Cancel open tasks (a contract ended or was revoked): their open assignments too; how many tasks."""
    now = now or utcnow()
    n = 0
    for t in s.scalars(select(Task).where(Task.id.in_(list(task_ids)), Task.status.in_(("queued", "running")))
                       .with_for_update()):
        s.execute(update(Assignment).where(Assignment.task_id == t.id, Assignment.status.in_(("queued", "claimed")))
                  .values(status="cancelled", error=reason, finished_at=now))
        t.status = "cancelled"
        t.error = reason
        t.finished_at = now
        n += 1
    return n
