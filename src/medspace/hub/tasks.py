"""Tasks at the hub: submitted under contracts, split into signed assignments per hospital, claimed by nodes,
answered, combined, released; each step an audit entry.

A task names its kind (the operation a contract must permit: ``count``), its parameters, its purpose and one
contract per hospital. The hub checks each contract (:meth:`ContractOps.authorise_task`) before anything is
queued: a task refused for one hospital is refused as a whole, naming the hospital and the rule. Each node
re-checks the same contract and its patients' consent itself before it computes.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import bindparam, func, select, update

from medspace.compute.count import CountQuery, combine
from medspace.compute.errors import QueryError
from medspace.hub.accounts import Principal
from medspace.hub.consents import defaults_digest, defaults_view
from medspace.hub.contracts import ContractOps, node_contract_view
from medspace.hub.db import Assignment, Consent, Participant, Task, UTCDateTime, dumps, new_id, utcnow
from medspace.hub.db import Contract as ContractRow
from medspace.hub.errors import BadRequest, Conflict, Forbidden, NotFound
from medspace.hub.queue import Part, TaskState, claim, enqueue, finish_assignment
from medspace.ledger.entry import Action, AuditEvent, Purpose, Role
from medspace.policy.envelope import seal, stamp

KINDS = ("count",)
DEFAULT_DEADLINE = timedelta(seconds=60)
CLAIM_LEASE_NAME_BYTES = 4


# statements of the claim, built once
_NODE_CONTRACTS = (select(ContractRow.uid, ContractRow.state, ContractRow.odrl, ContractRow.revoked_at,
                          ContractRow.ended)
                   .where(ContractRow.uid.in_(bindparam("b_uids", expanding=True)),
                          ContractRow.hospital == bindparam("b_hospital")))
_DEFAULTS = select(Participant.consent_defaults).where(Participant.name == bindparam("b_hospital"))
_CONSENT_TOP = select(func.max(Consent.seq)).where(Consent.hospital == bindparam("b_hospital"))
_SEEN = (update(Participant).where(Participant.name == bindparam("b_hospital"))
         .values(last_seen=bindparam("b_now", type_=UTCDateTime())))


_QUEUED = (select(Assignment.id).where(Assignment.hospital == bindparam("b_hospital"), Assignment.status == "queued")
           .limit(1))
_TASK_VIEW = (select(Task.id, Task.kind, Task.status, Task.purpose, Task.requester, Task.created_at, Task.finished_at,
                     Task.result, Task.error).where(Task.id == bindparam("b_id")))


def parse_query(kind: str, params: Mapping[str, Any]) -> CountQuery:
    """The typed query of a task kind; BadRequest names the parameter."""
    if kind not in KINDS:
        raise BadRequest(f"kind: one of {', '.join(KINDS)}")
    try:
        return CountQuery.from_params(params)
    except QueryError as e:
        raise BadRequest(str(e)) from None


def finish(task: TaskState, results: dict[str, Any], errors: dict[str, str]) -> tuple[str, Any, str | None]:
    """Combine the nodes' answers as the task's completion rule says."""
    if errors and (task.completion == "all" or not results):
        return "failed", None, "; ".join(f"{h}: {e}" for h, e in sorted(errors.items()))
    try:
        out = combine(results)
    except QueryError as e:
        return "failed", None, str(e)
    if errors:
        out["left_out"] = {h: e for h, e in sorted(errors.items())}
    return "done", out, None


def node_actor(hospital: str) -> str:
    """How a node is named as an actor in the audit log."""
    return f"node:{hospital}"


def digest(obj: Any) -> bytes:
    """Canonical JSON bytes of an object (what audit hashes cover)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


class TaskOps(ContractOps):
    """Task submission, dispatch, answers and results."""

    process_name = "hub-" + secrets.token_hex(CLAIM_LEASE_NAME_BYTES)

    def check_task(self, who: Principal, *, kind: str, params: Mapping[str, Any], purpose: str,
                   contracts: Mapping[str, str]) -> dict[str, Any]:
        """What the hub would decide for each part of a task, without dispatching or logging it: per hospital,
        allowed or not, the rule that refused it and every applied rule with its citation."""
        query = parse_query(kind, params)
        if not contracts:
            raise BadRequest("contracts: name one contract per hospital")
        try:
            p = Purpose(purpose)
        except ValueError:
            raise BadRequest("purpose: an HL7 v3 PurposeOfUse code such as HRESCH") from None
        rows = self.task_rows(contracts)
        out: dict[str, Any] = {}
        for hospital, uid in sorted(contracts.items()):
            try:
                d = self.authorise_task(who, hospital=hospital, contract_uid=uid, purpose=p, operation=kind,
                                        fields=query.fields, task_id="check", rows=rows[hospital], dry_run=True)
                out[hospital] = {"allowed": True, "rule": None, "message": None, "outcomes": d["outcomes"]}
            except Forbidden as e:
                out[hospital] = {"allowed": False, "rule": e.rule, "message": str(e),
                                 "outcomes": (e.decision or {}).get("outcomes", [])}
        return {"allowed": all(v["allowed"] for v in out.values()), "hospitals": out}

    def submit_task(self, who: Principal, *, kind: str, params: Mapping[str, Any], purpose: str,
                    contracts: Mapping[str, str], completion: str = "all",
                    deadline_s: float | None = None) -> dict[str, Any]:
        """Check and queue a task: one signed assignment per hospital (``contracts`` maps hospital -> contract)."""
        query = parse_query(kind, params)
        if completion not in ("all", "available"):
            raise BadRequest("completion: 'all' or 'available'")
        if not contracts:
            raise BadRequest("contracts: name one contract per hospital")
        if self.task_key is None:
            raise Conflict("this hub has no space key to sign tasks with (hub.toml: space)")
        try:
            p = Purpose(purpose)
        except ValueError:
            raise BadRequest("purpose: an HL7 v3 PurposeOfUse code such as HRESCH") from None
        task_id = new_id("t")
        rows = self.task_rows(contracts)
        for hospital, uid in sorted(contracts.items()):
            self.authorise_task(who, hospital=hospital, contract_uid=uid, purpose=p, operation=kind,
                                fields=query.fields, task_id=task_id, rows=rows[hospital])
        now = utcnow()
        deadline = now + (timedelta(seconds=deadline_s) if deadline_s else DEFAULT_DEADLINE)
        params_json = query.to_params()
        parts = []
        for hospital, uid in sorted(contracts.items()):
            payload = stamp({"task": task_id, "hospital": hospital, "kind": kind, "params": params_json,
                             "purpose": p.value, "contract": uid, "requester": who.name}, now=now,
                            lifetime=max(deadline - now, timedelta(seconds=5)) + timedelta(seconds=30))
            parts.append(Part(hospital, uid, seal(payload, self.task_key)))
        task = Task(id=task_id, kind=kind, requester=who.name, purpose=p.value, params=dumps(params_json),
                    completion=completion, status="queued", deadline=deadline)
        # logged before any node can see it: a node's computation never precedes its dispatch in the log
        inputs = [digest(params_json)]
        self.append([self.event(Action.TASK_DISPATCH, actor=who.name, role=Role(who.role), purpose=p,
                                resource=f"task:{task_id}/{hospital}", contract_id=uid, inputs=inputs)
                     for hospital, uid in sorted(contracts.items())])
        try:
            with self.db.write("assignments") as c:
                enqueue(c, task, parts)
        except Exception:
            self.record(Action.TASK_END, actor="hub", role=Role.HUB, purpose=p, resource=f"task:{task_id}")
            raise
        return {"id": task_id, "status": "queued", "hospitals": sorted(contracts)}

    def has_queued(self, hospital: str) -> bool:
        """Whether a node has queued assignments now (a read: most polls find none, and a claim is a write)."""
        with self.db.engine.connect() as c:
            return c.execute(_QUEUED, {"b_hospital": hospital}).first() is not None

    def claim_for_node(self, hospital: str) -> dict[str, Any]:
        """Claim a node's queued assignments (each handed out once, across hub processes), with the contracts they
        name as they are in the same transaction (the node re-checks each task against its contract)."""
        with self.db.write() as conn:
            rows = claim(conn, hospital, self.process_name)
            if not rows:
                return {"assignments": [], "contracts": {}}
            out = [{"id": a.id, "task": a.task_id, "envelope": orjson.loads(a.payload)} for a in rows]
            uids = sorted({a.contract_uid for a in rows if a.contract_uid})
            crows = conn.execute(_NODE_CONTRACTS, {"b_uids": uids, "b_hospital": hospital}).all()
            contracts = {c.uid: node_contract_view(c) for c in crows}
            conn.execute(_SEEN, {"b_hospital": hospital, "b_now": utcnow()})
            # the consent state these tasks were dispatched under: the node runs them only once its replica holds
            # at least this (a change made before a task is enforced by the task)
            raw = conn.execute(_DEFAULTS, {"b_hospital": hospital}).scalar()
            top = conn.execute(_CONSENT_TOP, {"b_hospital": hospital}).scalar() or 0
        return {"assignments": out, "contracts": contracts, "consent_seq": int(top),
                "defaults_digest": defaults_digest(defaults_view(hospital, raw))}

    def answer_assignment(self, hospital: str, assignment_id: int, *, result: Any, error: str | None,
                          rule: str | None = None, events: Sequence[dict[str, Any]] = ()) -> str:
        """Record a node's answer and its audit events about the work; the last answer finishes the task. Returns
        the task's status.

        The node's events are in the log before its answer is recorded, and the task's release (or end) before
        the transaction that finishes the task commits: nobody reads a result whose release is not logged. (A
        crash in between leaves an entry for a release that did not happen, never the reverse.)"""
        self.append(self._node_events(hospital, events))
        with self.db.write() as c:
            message = None if error is None else (f"{error} (rule {rule})" if rule else error)
            task = finish_assignment(c, assignment_id, hospital, result=result, error=message, finisher=finish)
            if task.status in ("done", "failed"):
                self.append(self.end_events([task]))
                self.db.changed(c, "tasks")  # wake those waiting for the task only when it ended
        return task.status

    def end_events(self, tasks: Sequence[TaskState]) -> list[AuditEvent]:
        """The audit events of tasks that just ended: the release of a result, or the end of a failed task."""
        out = []
        for t in tasks:
            if t.status not in ("done", "failed"):
                continue
            action = Action.RESULT_RELEASE if t.status == "done" else Action.TASK_END
            outputs = [t.result.encode()] if t.result else []
            out.append(self.event(action, actor="hub", role=Role.HUB, purpose=t.purpose, resource=f"task:{t.id}",
                                  outputs=outputs))
        return out

    def task_view(self, who: Principal, task_id: str) -> dict[str, Any]:
        """A task's status and, once done, its combined result (to its requester, or a regulator)."""
        with self.db.engine.connect() as c:
            t = c.execute(_TASK_VIEW, {"b_id": task_id}).first()
        if t is None:
            raise NotFound(f"no task {task_id}")
        if who.name != t.requester and who.role not in ("regulator", "admin"):
            raise self.refuse(who, "task.requester-only", "only the task's requester reads its result",
                              resource=f"task:{task_id}")
        out: dict[str, Any] = {"id": t.id, "kind": t.kind, "status": t.status, "purpose": t.purpose,
                               "created_at": t.created_at.isoformat(),
                               "finished_at": t.finished_at.isoformat() if t.finished_at else None}
        if t.result is not None:
            out["result"] = orjson.loads(t.result)
            out["result_sha256"] = hashlib.sha256(t.result.encode()).hexdigest()
        if t.error is not None:
            out["error"] = t.error
        return out

    def task_finished(self, task_id: str) -> bool:
        """Whether a task has ended (done, failed or cancelled)."""
        with self.db.sessions() as s:
            status = s.scalar(select(Task.status).where(Task.id == task_id))
        if status is None:
            raise NotFound(f"no task {task_id}")
        return status in ("done", "failed", "cancelled")

    def record_node_events(self, hospital: str, events: list[dict[str, Any]]) -> list[int]:
        """Append a node's audit events about its own work: every actor must be the node itself, all or none."""
        return self.append(self._node_events(hospital, events))

    def _node_events(self, hospital: str, events: Sequence[dict[str, Any]]) -> list[AuditEvent]:
        """A node's events, parsed; refused (logged, naming the rule) if one names another actor than the node."""
        from medspace.ledger.api import event_from_json
        from medspace.ledger.errors import EntryError

        me = node_actor(hospital)
        parsed = []
        for i, obj in enumerate(events, 1):
            try:
                ev = event_from_json(obj)
            except (EntryError, ValueError, TypeError) as e:
                raise BadRequest(f"event {i} of {len(events)}: {e}") from None
            if ev.actor != me or ev.role is not Role.NODE:
                who = Principal(name=me, role="node", hospital=hospital, service=True)
                raise self.refuse(who, "audit.actor-is-caller",
                                  f"event {i} of {len(events)} names another actor than the node sending it",
                                  resource=f"participant:{hospital}")
            parsed.append(ev)
        return parsed

