"""The monitor: ends what a contract no longer permits and carries out the contracts' duties, logging each.

Every tick (default 0.5 s) each hub process's monitor:

* ends contracts whose period is over (``contract.expire``) and cancels their open tasks (``task.end``);
* fails tasks past their deadline, and queues again assignments whose node did not answer within the lease;
* carries out the ``delete`` duty: a released result is erased from the hub once the shortest retention of the
  contracts it was computed under has passed (``duty.perform``, with the hash of what was erased).

Revocations need no tick: :meth:`ContractOps.revoke_contract` ends running tasks in the same transaction. With
several hub processes every step is idempotent and takes its rows with ``SKIP LOCKED`` or a conditional update,
so two monitors never log one step twice.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import orjson
from sqlalchemy import select, update

from medspace.hub.contracts import ContractOps
from medspace.hub.db import Assignment, Task, utcnow
from medspace.hub.db import Contract as ContractRow
from medspace.hub.queue import expire_tasks, requeue_expired_leases
from medspace.hub.tasks import finish
from medspace.ledger.entry import Action, Purpose, Role
from medspace.policy.contract import Contract

TICK = 0.5


def tick(hub: ContractOps, now: datetime | None = None) -> dict[str, int]:
    """One round of the monitor; what it did, in counts."""
    now = now or utcnow()
    done = {"expired": 0, "late": 0, "requeued": 0, "deleted": 0}
    with hub.db.sessions() as s:
        due = list(s.scalars(select(ContractRow.uid).where(ContractRow.ended.is_(None), ContractRow.ends_at <= now,
                                                           ContractRow.state == "FINALIZED")))
    for uid in due:
        hub.end_contract(uid, "expired", "the contract's period ended")
        done["expired"] += 1
    with hub.db.transaction("tasks") as s:
        done["late"] = len(expire_tasks(s, now=now, finisher=finish))
    with hub.db.transaction("assignments") as s:
        done["requeued"] = requeue_expired_leases(s, now=now, finisher=finish)
    done["deleted"] = _delete_duty(hub, now)
    return done


def _retention(hub: ContractOps, task_id: str) -> timedelta | None:
    with hub.db.sessions() as s:
        odrls = list(s.scalars(select(ContractRow.odrl).join(Assignment, Assignment.contract_uid == ContractRow.uid)
                               .where(Assignment.task_id == task_id)))
    days = [Contract.from_odrl(orjson.loads(o)).delete_after_days for o in odrls if o]
    return timedelta(days=min(days)) if days else None


def _delete_duty(hub: ContractOps, now: datetime, limit: int = 100) -> int:
    with hub.db.sessions() as s:
        rows = list(s.execute(select(Task.id, Task.finished_at, Task.purpose).where(
            Task.result.is_not(None), Task.finished_at.is_not(None)).order_by(Task.finished_at).limit(limit)))
    n = 0
    for task_id, finished_at, purpose in rows:
        keep = _retention(hub, task_id)
        if keep is None or finished_at is None or finished_at + keep > now:
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

    def __init__(self, hub: ContractOps, interval: float = TICK) -> None:
        super().__init__(name="medspace-hub-monitor", daemon=True)
        self.hub = hub
        self.interval = interval
        self._halt = threading.Event()
        self.errors = 0

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                tick(self.hub)
            except Exception:  # a database hiccup: count it, the next tick tries again (the thread must not die)
                self.errors += 1

    def stop(self) -> None:
        """End the thread."""
        self._halt.set()
        self.join(5)
