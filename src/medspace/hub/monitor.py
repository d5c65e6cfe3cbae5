"""The monitor: ends what a contract no longer permits and carries out the contracts' duties, logging each.

Every tick (default 0.5 s) each hub process's monitor:

* ends contracts whose period is over (``contract.expire``) and cancels their open tasks (``task.end``);
* fails tasks past their deadline, and queues again assignments whose node did not answer within the lease;
* carries out the ``delete`` duty (every ``DUTY_EVERY`` s; retention is counted in days): a released result is
  erased from the hub once the shortest retention of the contracts it was computed under has passed
  (``duty.perform``, with the hash of what was erased).

Revocations need no tick: :meth:`ContractOps.revoke_contract` ends running tasks in the same transaction. With
several hub processes every step is idempotent and takes its rows with ``SKIP LOCKED`` or a conditional update,
so two monitors never log one step twice.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update

from medspace.hub.contracts import ContractOps, parse_odrl
from medspace.hub.db import Assignment, Task, UTCDateTime, utcnow
from medspace.hub.db import Contract as ContractRow
from medspace.hub.queue import LEASE, TaskState, expire_tasks, requeue_expired_leases
from medspace.hub.tasks import TaskOps, finish
from medspace.ledger.entry import Action, Purpose, Role

TICK = 0.5
# retention is counted in days: results due for deletion are looked for every half minute, not every tick
DUTY_EVERY = 30.0
MIN_RETENTION = timedelta(days=1)  # the shortest retention a contract may set (policy.contract checks it)


_ANY_LATE = (select(Task.id).where(Task.status.in_(("queued", "running")),
                                   Task.deadline < bindparam("b_now", type_=UTCDateTime())).limit(1))
_ANY_STALE = (select(Assignment.id).where(Assignment.status == "claimed",
                                          Assignment.claimed_at < bindparam("b_before", type_=UTCDateTime())).limit(1))


def tick(hub: TaskOps, now: datetime | None = None, *, duties: bool = True) -> dict[str, int]:
    """One round of the monitor (``duties``: also look for results whose retention has passed); what it did."""
    now = now or utcnow()
    done = {"expired": 0, "late": 0, "requeued": 0, "deleted": 0}
    with hub.db.sessions() as s:
        due = list(s.scalars(select(ContractRow.uid).where(ContractRow.ended.is_(None), ContractRow.ends_at <= now,
                                                           ContractRow.state == "FINALIZED")))
    for uid in due:
        hub.end_contract(uid, "expired", "the contract's period ended")
        done["expired"] += 1
    # a read first: most ticks find nothing to do, and a write transaction holds the database's write lock
    with hub.db.engine.connect() as c:
        late = c.execute(_ANY_LATE, {"b_now": now}).first() is not None
        stale = c.execute(_ANY_STALE, {"b_before": now - LEASE}).first() is not None
    # channels are notified only when something changed: every wake-up costs each long-polling node a query
    # a task finished here has its release (or end) logged before the transaction that finishes it commits
    if late:
        with hub.db.transaction() as s:
            ended: list[TaskState] = []
            done["late"] = len(expire_tasks(s, now=now, finisher=finish, ended=ended))
            hub.append(hub.end_events(ended))
            if done["late"]:
                hub.db.changed(s, "tasks")
    if stale:
        with hub.db.transaction() as s:
            ended = []
            done["requeued"] = requeue_expired_leases(s, now=now, finisher=finish, ended=ended)
            hub.append(hub.end_events(ended))
            if done["requeued"]:
                hub.db.changed(s, "assignments")
                hub.db.changed(s, "tasks")  # a part failed after its last attempt may have finished its task
    if duties:
        done["deleted"] = _delete_duty(hub, now)
    return done


def _delete_duty(hub: ContractOps, now: datetime, limit: int = 100) -> int:
    # No contract keeps results for less than MIN_RETENTION, so younger results are not even read; for the others
    # one query gives each task's contracts, and a task is due once the shortest of their retentions has passed.
    with hub.db.sessions() as s:
        rows = list(s.execute(
            select(Task.id, Task.finished_at, Task.purpose, ContractRow.odrl)
            .join(Assignment, Assignment.task_id == Task.id)
            .join(ContractRow, Assignment.contract_uid == ContractRow.uid)
            .where(Task.result.is_not(None), Task.finished_at.is_not(None), Task.finished_at <= now - MIN_RETENTION)
            .order_by(Task.finished_at)))
    keep: dict[str, tuple[datetime, str, int]] = {}
    for task_id, finished_at, purpose, odrl in rows:
        if not odrl or finished_at is None:
            continue
        days = parse_odrl(odrl).delete_after_days
        prev = keep.get(task_id)
        keep[task_id] = (finished_at, purpose, min(days, prev[2]) if prev else days)
    n = 0
    for task_id, (finished_at, purpose, days) in keep.items():
        if n >= limit or finished_at + timedelta(days=days) > now:
            continue
        with hub.db.transaction() as s:
            result = s.scalar(select(Task.result).where(Task.id == task_id).with_for_update())
            if result is None:
                continue
            s.execute(update(Task).where(Task.id == task_id).values(result=None))
        hub.record(Action.DUTY_PERFORM, actor="hub", role=Role.HUB, purpose=Purpose(purpose),
                   resource=f"task:{task_id}", inputs=[result.encode()])
        n += 1
    return n


class Monitor(threading.Thread):
    """The monitor's thread in a hub process."""

    def __init__(self, hub: TaskOps, interval: float = TICK, duty_interval: float = DUTY_EVERY) -> None:
        super().__init__(name="medspace-hub-monitor", daemon=True)
        self.hub = hub
        self.interval = interval
        self.duty_interval = duty_interval
        self._halt = threading.Event()
        self.errors = 0

    def run(self) -> None:
        last_duty = -self.duty_interval
        while not self._halt.wait(self.interval):
            now = time.monotonic()
            duties = now - last_duty >= self.duty_interval
            try:
                tick(self.hub, duties=duties)
                if duties:
                    last_duty = now
            except Exception:  # a database hiccup: count it, the next tick tries again (the thread must not die)
                self.errors += 1

    def stop(self) -> None:
        """End the thread."""
        self._halt.set()
        self.join(5)
