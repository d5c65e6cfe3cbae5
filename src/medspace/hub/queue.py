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

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Integer, bindparam, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from medspace.hub.db import WRITE, Assignment, Task, UTCDateTime, dumps, is_postgres, make_engine, utcnow
from medspace.hub.errors import Conflict, NotFound
from medspace.hub.notify import Notifier, notify_sql

LEASE = timedelta(seconds=30)
_FIRE = "medspace_fire"  # Session.info key: the channels to notify once the transaction commits
MAX_ATTEMPTS = 3

# finishes a task from its parts' results: (task, {hospital: result}, {hospital: error}) -> (status, result, error)
Finisher = Callable[["TaskState", dict[str, Any], dict[str, str]], tuple[str, Any, str | None]]


class HubDB:
    """The hub database of one process: engine, sessions, and the notifications its commits send."""

    def __init__(self, url: str, *, notifier: Notifier | None = None, pool_size: int = 10) -> None:
        self.url = url
        self.postgres = is_postgres(url)
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(**{WRITE: True})
        self._writes = sessionmaker(self._write_engine, expire_on_commit=False)
        # SQLite has one writer at a time; threads of this process queue here, handed over at once, rather than in
        # SQLite's busy handler, which sleeps in steps of up to 100 ms (PostgreSQL locks rows, not the database)
        self._write_lock: threading.RLock | contextlib.nullcontext[None] = (
            contextlib.nullcontext() if self.postgres else threading.RLock())
        self.notifier = notifier or Notifier()

    def listen(self) -> None:
        """Wake this process's long-polls on other hub processes' changes too (PostgreSQL only)."""
        if self.postgres:
            self.notifier.listen_postgres(self.url.replace("postgresql+psycopg://", "postgresql://"))

    @contextmanager
    def transaction(self, *channels: str) -> Iterator[Session]:
        """A session in one transaction; on commit, the named channels (and those :meth:`changed` named in it) are
        notified here and in other processes."""
        with self._write_lock, self._writes() as s, s.begin():
            yield s
            for c in channels:
                self.changed(s, c)
            fire = set(s.info.pop(_FIRE, ()))
        for c in sorted(fire):
            self.notifier.fire(c)

    @contextmanager
    def write(self, *channels: str) -> Iterator[Connection]:
        """As :meth:`transaction`, a Core connection rather than an ORM session (the queue's hot paths: a session's
        unit of work costs more than their statements)."""
        with self._write_lock, self._write_engine.connect() as conn:
            conn.info.pop(_FIRE, None)  # the info dict outlives this checkout: start and end with no channels
            try:
                with conn.begin():
                    yield conn
                    for c in channels:
                        self.changed(conn, c)
                fire = set(conn.info.get(_FIRE, ()))
            finally:
                conn.info.pop(_FIRE, None)
        for c in sorted(fire):
            self.notifier.fire(c)

    def changed(self, s: Session | Connection, channel: str) -> None:
        """Notify ``channel`` when the transaction of ``s`` commits (for changes found only inside it)."""
        fire: set[str] = s.info.setdefault(_FIRE, set())
        if channel in fire:
            return
        fire.add(channel)
        if self.postgres:
            sql, params = notify_sql(channel)
            s.execute(text(sql), params)

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


@dataclass(frozen=True)
class Claimed:
    """An assignment handed to a node: its id, task, hospital, contract and the signed task (JSON text)."""

    id: int
    task_id: str
    hospital: str
    contract_uid: str | None
    payload: str


@dataclass(frozen=True)
class TaskState:
    """A task's row as the queue reads and finishes it."""

    id: str
    kind: str
    requester: str
    purpose: str
    completion: str
    status: str
    result: str | None
    error: str | None


_TASK_COLUMNS = (Task.id, Task.kind, Task.requester, Task.purpose, Task.completion, Task.status, Task.result,
                 Task.error)

# The queue's hot paths (a claim, an answer) are written in SQLAlchemy Core on the session's connection: the ORM's
# unit of work costs more than the statements themselves, several times per task and hospital.


def _conn(s: Session | Connection) -> Connection:
    return s.connection() if isinstance(s, Session) else s


def enqueue(s: Session | Connection, task: Task, parts: Sequence[Part]) -> None:
    """Add a task and its assignments (in the caller's transaction; notify ``assignments`` on commit)."""
    if not parts:
        raise Conflict("a task needs at least one hospital")
    conn = _conn(s)
    conn.execute(insert(Task).values(id=task.id, kind=task.kind, requester=task.requester, purpose=task.purpose,
                                     params=task.params, completion=task.completion or "all", status=task.status,
                                     result=task.result, error=task.error, deadline=task.deadline,
                                     created_at=task.created_at or utcnow()))
    conn.execute(insert(Assignment), [{"task_id": task.id, "hospital": p.hospital, "contract_uid": p.contract_uid,
                                       "status": "queued", "payload": dumps(p.payload), "attempts": 0}
                                      for p in parts])


# Statements of the hot paths, built once (building and keying a statement costs as much as running it)
_CLAIM = (
    update(Assignment)
    .where(Assignment.id.in_(
        select(Assignment.id).where(Assignment.hospital == bindparam("b_hospital"), Assignment.status == "queued")
        .order_by(Assignment.id).limit(bindparam("b_limit", type_=Integer)).with_for_update(skip_locked=True)))
    .values(status="claimed", claimed_by=bindparam("b_claimer"), claimed_at=bindparam("b_now", type_=UTCDateTime()),
            attempts=Assignment.attempts + 1)
    .returning(Assignment.id, Assignment.task_id, Assignment.hospital, Assignment.contract_uid, Assignment.payload))
_ANSWER = (
    update(Assignment)
    .where(Assignment.id == bindparam("b_aid"), Assignment.hospital == bindparam("b_hospital"),
           Assignment.status == "claimed")
    .values(status=bindparam("b_status"), result=bindparam("b_result"), error=bindparam("b_error"),
            finished_at=bindparam("b_now", type_=UTCDateTime()))
    .returning(Assignment.task_id))
_TASK_FOR_UPDATE = select(*_TASK_COLUMNS).where(Task.id == bindparam("b_tid")).with_for_update()
_PARTS = (select(Assignment.hospital, Assignment.status, Assignment.result, Assignment.error)
          .where(Assignment.task_id == bindparam("b_tid")))
_RUNNING = update(Task).where(Task.id == bindparam("b_tid")).values(status="running")
_FINISH = (update(Task).where(Task.id == bindparam("b_tid"))
           .values(status=bindparam("b_status"), result=bindparam("b_result"), error=bindparam("b_error"),
                   finished_at=bindparam("b_now", type_=UTCDateTime())))


def claim(s: Session | Connection, hospital: str, claimer: str, *, limit: int = 16, now: datetime | None = None
          ) -> list[Claimed]:
    """Claim up to ``limit`` queued assignments of one hospital, oldest first; each is handed out once."""
    rows = _conn(s).execute(_CLAIM, {"b_hospital": hospital, "b_limit": limit, "b_claimer": claimer,
                                           "b_now": now or utcnow()}).all()
    return sorted((Claimed(*r) for r in rows), key=lambda a: a.id)


def finish_assignment(s: Session | Connection, assignment_id: int, hospital: str, *, result: Any = None,
                      error: str | None = None, finisher: Finisher, now: datetime | None = None) -> TaskState:
    """Record a node's answer to its claimed assignment; the last answer finishes the task (exactly once)."""
    now = now or utcnow()
    conn = _conn(s)
    done = conn.execute(_ANSWER, {"b_aid": assignment_id, "b_hospital": hospital, "b_now": now, "b_error": error,
                                  "b_status": "failed" if error is not None else "done",
                                  "b_result": dumps(result) if error is None else None}).first()
    if done is None:  # why not: read it to say so
        a = conn.execute(select(Assignment.hospital, Assignment.status).where(Assignment.id == assignment_id)).first()
        if a is None or a.hospital != hospital:
            raise NotFound(f"no assignment {assignment_id} for this node")
        raise Conflict(f"assignment {assignment_id} is {a.status}, not claimed: its answer is not accepted")
    return _maybe_finish(s, done.task_id, finisher, now)


def _maybe_finish(s: Session | Connection, task_id: str, finisher: Finisher, now: datetime) -> TaskState:
    # the task row's lock orders concurrent last answers: the second sees the first's commit
    conn = _conn(s)
    task = TaskState(*conn.execute(_TASK_FOR_UPDATE, {"b_tid": task_id}).one())
    if task.status not in ("queued", "running"):
        return task
    parts = conn.execute(_PARTS, {"b_tid": task_id}).all()
    if any(p.status in ("queued", "claimed") for p in parts):
        if task.status != "running":
            conn.execute(_RUNNING, {"b_tid": task_id})
        return replace(task, status="running")
    results = {p.hospital: orjson.loads(p.result) for p in parts if p.status == "done" and p.result is not None}
    errors = {p.hospital: p.error or p.status for p in parts if p.status != "done"}
    status, result, error = finisher(task, results, errors)
    text_result = dumps(result) if result is not None else None
    conn.execute(_FINISH, {"b_tid": task_id, "b_status": status, "b_result": text_result, "b_error": error,
                          "b_now": now})
    return replace(task, status=status, result=text_result, error=error)


def requeue_expired_leases(s: Session, *, lease: timedelta = LEASE, max_attempts: int = MAX_ATTEMPTS,
                           now: datetime | None = None, finisher: Finisher,
                           ended: list[TaskState] | None = None) -> int:
    """Queue again the claimed assignments whose node did not answer within the lease (or fail them after
    ``max_attempts``); the number changed. Tasks this finished are added to ``ended``."""
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
    for tid in sorted({a.task_id for a in stale if a.status == "failed"}):
        state = _maybe_finish(s, tid, finisher, now)
        if ended is not None and state.status in ("done", "failed"):
            ended.append(state)
    return len(stale)


def expire_tasks(s: Session, *, now: datetime | None = None, finisher: Finisher,
                 ended: list[TaskState] | None = None) -> list[str]:
    """Fail the open assignments of tasks past their deadline and finish those tasks; their ids. Their final
    states are added to ``ended``."""
    now = now or utcnow()
    late = list(s.scalars(select(Task).where(Task.status.in_(("queued", "running")), Task.deadline < now)
                          .with_for_update(skip_locked=True)))
    for t in late:
        s.execute(update(Assignment).where(Assignment.task_id == t.id, Assignment.status.in_(("queued", "claimed")))
                  .values(status="failed", error="no answer before the task's deadline", finished_at=now))
        state = _maybe_finish(s, t.id, finisher, now)
        if ended is not None and state.status in ("done", "failed"):
            ended.append(state)
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
