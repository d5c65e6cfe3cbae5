"""Applications, stewards' decisions and contracts at the hub, negotiated in the Dataspace Protocol's states.

A researcher files an application (checked when made: :class:`medspace.policy.contract.Application`); the hub
opens one negotiation per hospital (REQUESTED; the consumer is the applicant, the provider the hospital). The
hospital's steward then decides:

* **approve**: the contract is the application's terms; the provider agrees (AGREED), the hub verifies on the
  consumer's behalf that the agreement is what was requested (VERIFIED) and the provider finalises (FINALIZED).
* **restrict**: the provider offers narrower terms (OFFERED); the researcher accepts them (ACCEPTED), after which
  the agreement is made and finalised as above; or terminates the negotiation.
* **refuse**: the provider terminates the negotiation (TERMINATED), with the steward's reason.

Only a FINALIZED contract in force permits tasks, and a task must also pass the decision engine with the packs
of the hospital (:mod:`medspace.policy.decision`). A steward (of that hospital) or an admin can revoke a contract
at any time; running tasks under it end at once and it permits nothing afterwards. Every step is an audit entry.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from medspace.hub.accounts import Principal, UserRole
from medspace.hub.core import HubCore
from medspace.hub.db import Application as ApplicationRow
from medspace.hub.db import Approval as ApprovalRow
from medspace.hub.db import Assignment, Participant, Task, dumps, new_id, utcnow
from medspace.hub.db import Contract as ContractRow
from medspace.hub.errors import BadRequest, Conflict, NotFound
from medspace.hub.queue import cancel_tasks
from medspace.ledger.entry import Action, Purpose, Role
from medspace.policy.consent import HospitalDefaults
from medspace.policy.consent_fhir import TABLE_CATEGORY
from medspace.policy.contract import L1_CATEGORIES, Application, Approval, Contract, Outcome, Restrictions, TaskRequest
from medspace.policy.decision import Request, decide
from medspace.policy.errors import ConsentError, ContractError, NegotiationError, PolicyError
from medspace.policy.negotiation import Negotiation, Party
from medspace.policy.packs import Pack, load_packs

_PACKS: dict[str, Pack] | None = None


def packs() -> dict[str, Pack]:
    """The built-in compliance packs (loaded once)."""
    global _PACKS
    if _PACKS is None:
        _PACKS = load_packs()
    return _PACKS


# statements of the frequent reads, built once
_APPLICATIONS = (select(ApplicationRow.id, ApplicationRow.applicant, ApplicationRow.body, ContractRow.hospital,
                        ContractRow.uid, ContractRow.state)
                 .select_from(ContractRow).join(ApplicationRow, ApplicationRow.id == ContractRow.application_id)
                 .order_by(ApplicationRow.created_at))
_APPLICATIONS_OF_HOSPITAL = _APPLICATIONS.where(ContractRow.hospital == bindparam("b_hospital"))
_APPLICATIONS_OF_APPLICANT = _APPLICATIONS.where(ApplicationRow.applicant == bindparam("b_applicant"))
_CONTRACT_VIEW = (select(ContractRow.uid, ContractRow.hospital, ContractRow.state, ContractRow.ended,
                         ContractRow.odrl, ContractRow.negotiation, ApplicationRow.applicant)
                  .join(ApplicationRow, ApplicationRow.id == ContractRow.application_id)
                  .where(ContractRow.uid == bindparam("b_uid")))


# what authorise_task reads of a task's contracts and hospitals (statements built once)
_TASK_CONTRACTS = (select(ContractRow.uid, ContractRow.hospital, ContractRow.state, ContractRow.odrl)
                   .where(ContractRow.uid.in_(bindparam("b_uids", expanding=True))))
_TASK_NODES = (select(Participant.name, Participant.role, Participant.region, Participant.packs, Participant.safeguards,
                      Participant.consent_defaults)
               .where(Participant.name.in_(bindparam("b_names", expanding=True))))


def _negotiation(row: ContractRow) -> Negotiation:
    return Negotiation.from_dict(orjson.loads(row.negotiation))


@functools.lru_cache(maxsize=4096)
def parse_odrl(text: str) -> Contract:
    """The contract of a stored ODRL agreement, parsed once per text (a revocation stores a new text, so it is
    never served stale; Contract is immutable, so callers share it). Parsing is most of a task check's cost."""
    return Contract.from_odrl(orjson.loads(text))


def _contract(row: ContractRow | Any) -> Contract | None:
    return parse_odrl(row.odrl) if row.odrl else None


def node_contract_view(crow: Any) -> dict[str, Any]:
    """A contract (a row, or a Core row of uid, state, odrl, revoked_at, ended) as its hospital's node re-checks
    it: the ODRL agreement, its state, revocation and end."""
    return {"uid": crow.uid, "state": crow.state, "odrl": orjson.loads(crow.odrl) if crow.odrl else None,
            "revoked_at": crow.revoked_at.isoformat() if crow.revoked_at else None, "ended": crow.ended}


def defaults_of(p: Participant | Any) -> HospitalDefaults:
    """A hospital's consent defaults (opt-in everywhere until its steward sets them)."""
    return _defaults(p.name, p.consent_defaults or "")


@functools.lru_cache(maxsize=1024)
def _defaults(hospital: str, text: str) -> HospitalDefaults:
    # parsed once per stored text (HospitalDefaults is immutable): checking them is a good part of a task's check
    data = orjson.loads(text) if text else {"fallback": "opt-in"}
    return HospitalDefaults.from_dict({**data, "hospital": hospital})


class ContractOps(HubCore):
    """Applications, decisions, contracts, and the check every task part passes."""

    # --- applications -------------------------------------------------------------------------------------

    def submit_application(self, who: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
        """File an application (researchers; clinicians for care purposes); one negotiation per hospital."""
        if who.role not in (UserRole.RESEARCHER, UserRole.CLINICIAN):
            raise self.refuse(who, "roles.applicant", "only researchers and clinicians file applications",
                              resource="application:new")
        app_id = new_id("a")
        try:
            app = Application.from_dict({**body, "id": app_id, "applicant": who.name})
        except (ContractError, PolicyError) as e:
            raise BadRequest(str(e)) from None
        now = utcnow()
        with self.db.transaction() as s:
            for h in app.hospitals:
                p = s.get(Participant, h)
                if p is None or p.role != "node":
                    raise NotFound(f"no hospital {h} in this space")
            s.add(ApplicationRow(id=app_id, applicant=who.name, status="open", body=dumps(app.to_dict())))
            s.flush()
            uids = {}
            for h in app.hospitals:
                uid = new_id("c")
                n = Negotiation(uid, consumer=who.name, provider=h)
                n.request(Party.CONSUMER, app_id, now)
                s.add(ContractRow(uid=uid, application_id=app_id, hospital=h, state=n.state.value if n.state else "",
                                  odrl="", negotiation=dumps(n.to_dict()), starts_at=app.start, ends_at=app.end))
                uids[h] = uid
        self.record(Action.APPLICATION_SUBMIT, actor=who.name, role=Role(who.role), purpose=app.purpose,
                    resource=f"application:{app_id}", inputs=[dumps(app.to_dict()).encode()])
        return {"id": app_id, "contracts": uids, "state": "REQUESTED"}

    def application_view(self, who: Principal, app_id: str) -> dict[str, Any]:
        """An application with its negotiations: to its applicant, the stewards of its hospitals, admins."""
        with self.db.sessions() as s:
            row = s.get(ApplicationRow, app_id)
            if row is None:
                raise NotFound(f"no application {app_id}")
            contracts = list(s.scalars(select(ContractRow).where(ContractRow.application_id == app_id)))
            approvals = list(s.scalars(select(ApprovalRow).where(ApprovalRow.application_id == app_id)))
        hospitals = {c.hospital for c in contracts}
        if not (who.name == row.applicant or who.role in (UserRole.ADMIN, UserRole.REGULATOR)
                or (who.role == UserRole.STEWARD and who.hospital in hospitals)):
            raise self.refuse(who, "application.parties-only", "only the applicant, the stewards of its hospitals, "
                              "admins and regulators read an application", resource=f"application:{app_id}")
        return {"id": row.id, "applicant": row.applicant, "application": orjson.loads(row.body),
                "negotiations": {c.hospital: {"contract": c.uid, "state": c.state} for c in contracts},
                "decisions": {a.hospital: orjson.loads(a.body) for a in approvals}}

    def applications_for(self, who: Principal) -> list[dict[str, Any]]:
        """Applications a person takes part in: a researcher's own, a steward's hospital's (with its state)."""
        with self.db.engine.connect() as c:
            if who.role == UserRole.STEWARD:
                rows = c.execute(_APPLICATIONS_OF_HOSPITAL, {"b_hospital": who.hospital}).all()
            elif who.role in (UserRole.ADMIN, UserRole.REGULATOR):
                rows = c.execute(_APPLICATIONS).all()
            else:
                rows = c.execute(_APPLICATIONS_OF_APPLICANT, {"b_applicant": who.name}).all()
        return [{"application": r.id, "applicant": r.applicant, "hospital": r.hospital, "contract": r.uid,
                 "state": r.state, "purpose": orjson.loads(r.body)["purpose"]} for r in rows]

    # --- stewards' decisions ------------------------------------------------------------------------------

    def decide_application(self, who: Principal, app_id: str, hospital: str, outcome: str, *, reason: str = "",
                           restrictions: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A steward approves, approves with restrictions, or refuses an application for their hospital."""
        if who.role != UserRole.STEWARD:
            raise self.refuse(who, "roles.steward-decides", "only a hospital's steward decides on applications",
                              resource=f"application:{app_id}")
        if who.hospital != hospital:
            raise self.refuse(who, "roles.steward-own-hospital", "a steward decides only for their own hospital",
                              resource=f"application:{app_id}")
        now = utcnow()
        try:
            r = Restrictions.from_dict(dict(restrictions or {}))
            approval = Approval(application=app_id, hospital=hospital, steward=who.name, outcome=Outcome(outcome),
                                at=now, reason=reason, restrictions=r)
        except (ContractError, ValueError) as e:
            raise BadRequest(f"decision: {e}") from None
        with self.db.transaction() as s:
            row, crow = self._negotiating(s, app_id, hospital)
            app = Application.from_dict(orjson.loads(row.body))
            n = _negotiation(crow)
            if n.state is None or n.state.value != "REQUESTED":
                raise Conflict(f"the negotiation for {hospital} is {n.state.value if n.state else 'new'}, "
                               "not REQUESTED: it was decided already")
            try:
                if approval.outcome is Outcome.REFUSE:
                    n.terminate(Party.PROVIDER, now, reason or "refused by the steward")
                    contract = None
                else:
                    contract = Contract.from_application(app, approval, uid=crow.uid, issued=now)
                    if approval.outcome is Outcome.RESTRICT and not r.empty:
                        n.offer(Party.PROVIDER, crow.uid, now)
                    else:
                        self._conclude(n, contract, now)
            except (ContractError, NegotiationError) as e:
                raise Conflict(str(e)) from None
            s.add(ApprovalRow(application_id=app_id, hospital=hospital, steward=who.name,
                              outcome=approval.outcome.value, body=dumps(approval.to_dict())))
            self._store(crow, n, contract)
            state = crow.state
        action = Action.APPLICATION_REFUSE if approval.outcome is Outcome.REFUSE else Action.APPLICATION_APPROVE
        self.record(action, actor=who.name, role=Role.STEWARD, purpose=app.purpose,
                    resource=f"application:{app_id}", contract_id=crow.uid)
        if state == "FINALIZED":
            self._log_contract(crow, app.purpose)
        return {"contract": crow.uid, "state": state}

    def accept_offer(self, who: Principal, uid: str) -> dict[str, Any]:
        """The applicant accepts a steward's restricted offer; the contract is then agreed and finalised."""
        now = utcnow()
        with self.db.transaction() as s:
            crow = s.scalars(select(ContractRow).where(ContractRow.uid == uid).with_for_update()).first()
            if crow is None:
                raise NotFound(f"no contract {uid}")
            row = s.get(ApplicationRow, crow.application_id)
            assert row is not None
            if who.name != row.applicant:
                raise self.refuse(who, "contract.applicant-accepts", "only the applicant accepts an offer",
                                  resource=f"contract:{uid}")
            n = _negotiation(crow)
            app = Application.from_dict(orjson.loads(row.body))
            approval = s.scalars(select(ApprovalRow).where(ApprovalRow.application_id == app.id,
                                                           ApprovalRow.hospital == crow.hospital)).first()
            if approval is None:
                raise Conflict(f"contract {uid} has no offer to accept")
            try:
                n.accept(Party.CONSUMER, now)
                contract = Contract.from_application(app, Approval.from_dict(orjson.loads(approval.body)), uid=uid,
                                                     issued=now)
                self._conclude(n, contract, now)
            except (ContractError, NegotiationError) as e:
                raise Conflict(str(e)) from None
            self._store(crow, n, contract)
        self._log_contract(crow, app.purpose)
        return {"contract": uid, "state": crow.state}

    @staticmethod
    def _conclude(n: Negotiation, contract: Contract, now: datetime) -> None:
        n.agree(Party.PROVIDER, contract, now)
        n.verify(Party.CONSUMER, now)  # the hub checked the agreement is the requested (or accepted) terms
        n.finalize(Party.PROVIDER, now)

    @staticmethod
    def _store(crow: ContractRow, n: Negotiation, contract: Contract | None) -> None:
        crow.negotiation = dumps(n.to_dict())
        crow.state = n.state.value if n.state else ""
        if contract is not None:
            crow.odrl = dumps(contract.to_odrl())
            crow.starts_at, crow.ends_at = contract.start, contract.end

    def _log_contract(self, crow: ContractRow, purpose: Purpose) -> None:
        self.record(Action.CONTRACT_CREATE, actor="hub", role=Role.HUB, purpose=purpose,
                    resource=f"contract:{crow.uid}", contract_id=crow.uid, outputs=[crow.odrl.encode()])

    def _negotiating(self, s: Session, app_id: str, hospital: str) -> tuple[ApplicationRow, ContractRow]:
        row = s.get(ApplicationRow, app_id)
        if row is None:
            raise NotFound(f"no application {app_id}")
        crow = s.scalars(select(ContractRow).where(ContractRow.application_id == app_id,
                                                   ContractRow.hospital == hospital).with_for_update()).first()
        if crow is None:
            raise NotFound(f"application {app_id} does not ask hospital {hospital}")
        return row, crow

    # --- contracts ----------------------------------------------------------------------------------------

    def contract_view(self, who: Principal, uid: str) -> dict[str, Any]:
        """A contract (ODRL agreement), its negotiation and state: to its parties, its steward, admins, regulators."""
        with self.db.engine.connect() as c:
            crow = c.execute(_CONTRACT_VIEW, {"b_uid": uid}).first()
        if crow is None:
            raise NotFound(f"no contract {uid}")
        row = crow
        if not (who.name == row.applicant or who.role in (UserRole.ADMIN, UserRole.REGULATOR)
                or (who.role == UserRole.STEWARD and who.hospital == crow.hospital)):
            raise self.refuse(who, "contract.parties-only", "only a contract's parties read it",
                              resource=f"contract:{uid}")
        return {"uid": uid, "hospital": crow.hospital, "state": crow.state, "ended": crow.ended,
                "odrl": orjson.loads(crow.odrl) if crow.odrl else None, "negotiation": orjson.loads(crow.negotiation)}

    def contract_for_node(self, hospital: str, uid: str) -> dict[str, Any]:
        """A contract as its hospital's node re-checks it (never another hospital's)."""
        with self.db.sessions() as s:
            crow = s.get(ContractRow, uid)
        if crow is None or crow.hospital != hospital:
            raise NotFound(f"no contract {uid} for this hospital")
        return node_contract_view(crow)

    def revoke_contract(self, who: Principal, uid: str, reason: str) -> dict[str, Any]:
        """Revoke a contract (its hospital's steward, or an admin): running and later tasks under it end."""
        if not reason.strip():
            raise BadRequest("reason: say why the contract is revoked")
        with self.db.sessions() as s:
            crow = s.get(ContractRow, uid)
        if crow is None:
            raise NotFound(f"no contract {uid}")
        if not (who.role == UserRole.ADMIN or (who.role == UserRole.STEWARD and who.hospital == crow.hospital)):
            raise self.refuse(who, "contract.revoke-own-hospital",
                              "only the contract's hospital steward or an admin revokes it", resource=f"contract:{uid}")
        return self.end_contract(uid, "revoked", reason, actor=who.name, role=Role(who.role))

    def end_contract(self, uid: str, how: str, reason: str, *, actor: str = "hub", role: Role = Role.HUB
                     ) -> dict[str, Any]:
        """End a contract (``revoked`` or ``expired``) once, cancel its open tasks, log both; idempotent."""
        now = utcnow()
        with self.db.transaction("contracts", "tasks") as s:
            crow = s.scalars(select(ContractRow).where(ContractRow.uid == uid).with_for_update()).first()
            if crow is None:
                raise NotFound(f"no contract {uid}")
            if crow.ended:
                return {"contract": uid, "ended": crow.ended, "cancelled": []}
            contract = _contract(crow)
            if contract is not None and how == "revoked":
                crow.odrl = dumps(contract.revoke(now, reason[:200]).to_odrl())
            if how == "revoked":
                crow.revoked_at = now
            crow.ended = how
            open_ids = list(s.scalars(select(Assignment.task_id).where(Assignment.contract_uid == uid,
                                                                       Assignment.status.in_(("queued", "claimed")))))
            cancel_tasks(s, open_ids, f"contract {uid} {how}")
            purpose = contract.purpose if contract is not None else Purpose.HRESCH
        action = Action.CONTRACT_REVOKE if how == "revoked" else Action.CONTRACT_EXPIRE
        self.record(action, actor=actor, role=role, purpose=purpose, resource=f"contract:{uid}", contract_id=uid)
        for tid in open_ids:
            self.record(Action.TASK_END, actor="hub", role=Role.HUB, purpose=purpose, resource=f"task:{tid}",
                        contract_id=uid)
        return {"contract": uid, "ended": how, "cancelled": open_ids}

    # --- the check of every task part ---------------------------------------------------------------------

    def authorise_task(self, who: Principal, *, hospital: str, contract_uid: str, purpose: Purpose, operation: str,
                       fields: tuple[str, ...], task_id: str,
                       rows: tuple[Any, Any] | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Refuse (logged, naming the rule) a task part that its contract or the hospital's packs do not permit;
        ``rows``: the contract's and the hospital's rows when the caller read them already (see :meth:`task_rows`).
        Returns the decision (every applied rule with its citation); a refusal carries it too. ``dry_run``: a
        question, not a request; nothing is logged."""
        now = utcnow()
        if rows is None:
            with self.db.sessions() as s:
                rows = (s.get(ContractRow, contract_uid), s.get(Participant, hospital))
        crow, node = rows
        resource = f"task:{task_id}/{hospital}"

        def refuse(rule: str, message: str, decision: dict[str, Any] | None = None) -> Exception:
            if not dry_run:
                self.record(Action.TASK_REFUSE, actor=who.name, role=Role(who.role), purpose=purpose,
                            resource=resource, contract_id=contract_uid if crow is not None else None)
            from medspace.hub.errors import Forbidden

            return Forbidden(rule, f"{hospital}: {message}", decision)

        if node is None or node.role != "node":
            raise refuse("task.hospital-known", f"no hospital {hospital} in this space")
        if crow is None or crow.hospital != hospital:
            raise refuse("contract.exists", f"no contract {contract_uid} with this hospital")
        if crow.state != "FINALIZED" or not crow.odrl:
            raise refuse("contract.finalized", f"contract {contract_uid} is {crow.state}, not FINALIZED")
        contract = _contract(crow)
        assert contract is not None
        try:
            request = TaskRequest(contract=contract_uid, requester=who.name, purpose=purpose, operation=operation,
                                  fields=fields, hospital=hospital, destination=contract.region)
        except ContractError as e:
            raise refuse("task.malformed", str(e)) from None
        d = contract.permits(request, now)
        if not d.allowed:
            raise refuse(d.refusals[0].rule_id, d.reason, d.to_dict())
        # Nodes count only patients whose consent (or the hospital's default) permits the purpose; for the
        # decision that is explicit consent where the default is opt-in, the default where it is opt-out.
        try:
            defaults = defaults_of(node)
            tables = sorted({f.split(".", 1)[0] for f in fields})
            opt_out = all(defaults.mode(TABLE_CATEGORY.get(t, t), purpose) == "opt-out" for t in tables)
            consent = {"L2": "default" if opt_out else "explicit", **{c: "explicit" for c in L1_CATEGORIES}}
            req = Request(actor=who.name, role=Role(who.role), actor_hospital=who.hospital, hospital=hospital,
                          purpose=purpose, operation=operation, at=now, node_region=node.region or "CN",
                          destination_region=contract.region, fields=fields, contract=contract, consent=consent,
                          packs=tuple(p for p in node.packs.split(",") if p),
                          safeguards=frozenset(node_safeguards(node)))
            decision = decide(req, packs())
        except (PolicyError, ConsentError) as e:
            raise refuse("decision.request", str(e)) from None
        both = {"allowed": decision.allowed, "outcomes": d.to_dict()["outcomes"] + decision.to_dict()["outcomes"]}
        if not decision.allowed:
            raise refuse(decision.refusals[0].rule_id if decision.refusals else "decision.no-rule", decision.reason,
                         both)
        return both

    def task_rows(self, contracts: Mapping[str, str]) -> dict[str, tuple[Any, Any]]:
        """For a task's parts (hospital -> contract uid), the rows :meth:`authorise_task` checks (the columns it
        reads), in two queries on one connection."""
        with self.db.engine.connect() as c:
            crows = {r.uid: r for r in c.execute(_TASK_CONTRACTS, {"b_uids": sorted(set(contracts.values()))})}
            nodes = {r.name: r for r in c.execute(_TASK_NODES, {"b_names": sorted(contracts)})}
        return {h: (crows.get(uid), nodes.get(h)) for h, uid in contracts.items()}

    def open_tasks_under(self, uid: str) -> list[str]:
        """Tasks still open under a contract."""
        with self.db.sessions() as s:
            return list(s.scalars(select(Task.id).join(Assignment, Assignment.task_id == Task.id)
                                  .where(Assignment.contract_uid == uid, Task.status.in_(("queued", "running")))))


def node_safeguards(node: Participant | Any) -> list[str]:
    """The transfer and research safeguards a hospital declared (e.g. a signed standard contract)."""
    return [x for x in (node.safeguards or "").split(",") if x]
