"""Dynamic consent at the hub: the durable registry of FHIR R4 Consent versions, and each hospital's defaults.

Patients are known to the hub only by their linkage pseudonym (their account carries it; the node computed it).
A patient records, changes or revokes their consent at any hospital at any time; a steward may record a consent
for their own hospital (a signed paper form). Every version is validated (:func:`medspace.policy.consent_fhir.
parse_consent`), numbered (``meta.versionId``: the next for that patient and hospital), given the registry's
next sequence number, and the ``consents`` channel is notified on commit, so each node's long-poll returns it
within one round trip. Inserts are serialised (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) so
sequence numbers become visible in order and a node reading "everything after N" never skips one.

A hospital's defaults (opt-in or opt-out per purpose and category, :class:`HospitalDefaults`) are set by its
steward and sent to its node with the consents.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import bindparam, func, select, text

from medspace.hub.accounts import Principal, UserRole
from medspace.hub.core import HubCore
from medspace.hub.db import Consent, Participant, dumps, utcnow
from medspace.hub.errors import BadRequest, NotFound
from medspace.ledger.entry import Action, AuditEvent, Purpose, Role
from medspace.policy.consent import ConsentStatus, HospitalDefaults
from medspace.policy.consent_fhir import ConsentRecord, build_consent, parse_consent
from medspace.policy.errors import ConsentError

_LOCK_KEY = 0x6D656463  # "medc": the advisory lock that orders consent inserts on PostgreSQL
MAX_BATCH = 5000
# the frequent reads, Core statements of the columns they need, built once (a patient's list grows with every
# change, and on SQLite it is read in the event loop)
_SINCE = (select(Consent.seq, Consent.resource)
          .where(Consent.hospital == bindparam("b_hospital"), Consent.seq > bindparam("b_since"))
          .order_by(Consent.seq).limit(MAX_BATCH))
_TOP = select(func.max(Consent.seq))


def defaults_view(hospital: str, raw: str | None) -> dict[str, Any]:
    """A hospital's consent defaults as data from their stored JSON (opt-in everywhere until set)."""
    if not raw:
        return HospitalDefaults.from_dict({"hospital": hospital, "fallback": "opt-in"}).to_dict()
    return dict(orjson.loads(raw))


def defaults_digest(view: Mapping[str, Any]) -> str:
    """The digest by which a node knows which defaults it holds."""
    return hashlib.sha256(orjson.dumps(view, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _stamp() -> str:
    return utcnow().isoformat(timespec="microseconds").replace("+00:00", "Z")


class ConsentOps(HubCore):
    """The consent registry and hospital defaults."""

    def put_consent(self, who: Principal, resource: Mapping[str, Any]) -> dict[str, Any]:
        """Record a new version of a consent (a FHIR R4 Consent); the patient's own, or a steward's hospital's."""
        return self.put_consents(who, [resource])[0]

    def put_consents(self, who: Principal, resources: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Record new versions of consents, all or none (a steward importing signed forms of their hospital)."""
        if not resources:
            return []
        if len(resources) > MAX_BATCH:
            raise BadRequest(f"at most {MAX_BATCH} consents per request")
        staged: list[tuple[dict[str, Any], dict[str, Any], ConsentRecord]] = []
        for i, resource in enumerate(resources):
            res = orjson.loads(orjson.dumps(resource))
            if not isinstance(res, dict):
                raise BadRequest(f"consent {i + 1}: a JSON object expected")
            meta: dict[str, Any] = res["meta"] if isinstance(res.get("meta"), dict) else {}
            res["meta"] = {**meta, "versionId": "1"}  # provisional, to read it; the registry numbers versions
            try:
                record = parse_consent(res)
            except ConsentError as e:
                raise BadRequest(f"consent {i + 1}: {e}" if len(resources) > 1 else str(e)) from None
            self._may_consent(who, record.pseudonym, record.hospital)
            staged.append((res, meta, record))
        out: list[dict[str, Any]] = []
        events: list[AuditEvent] = []
        now = utcnow()
        patient = who.role == UserRole.PATIENT
        # salted commitments for the events (the patient as actor, and as subject), kept in one write up front
        keep = [r.pseudonym for _, _, r in staged for _ in range(2 if patient else 1)]
        commitments = iter(self.salts.commit_many(keep))
        with self.db.transaction("consents") as s:
            if self.db.postgres:
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            for hospital in {r.hospital for _, _, r in staged}:
                if s.get(Participant, hospital) is None:
                    raise NotFound(f"no hospital {hospital} in this space")
            for res, meta, record in staged:
                prev = s.scalars(select(Consent).where(Consent.pseudonym == record.pseudonym,
                                                       Consent.hospital == record.hospital)
                                 .order_by(Consent.version.desc()).limit(1)).first()
                version = (prev.version if prev else 0) + 1
                first_id = orjson.loads(prev.resource).get("id") if prev else None
                res["id"] = first_id or res.get("id") or uuid.uuid4().hex
                res["meta"] = {**meta, "versionId": str(version), "lastUpdated": _stamp()}
                try:
                    final = parse_consent(res, validate=False)  # only id and meta changed, in forms already valid
                except ConsentError as e:
                    raise BadRequest(str(e)) from None
                row = Consent(pseudonym=final.pseudonym, hospital=final.hospital, version=version,
                              resource=dumps(res))
                s.add(row)
                s.flush()
                out.append({"id": res["id"], "version": version, "seq": row.seq, "status": final.status.value})
                if final.status is ConsentStatus.INACTIVE:
                    action = Action.CONSENT_REVOKE
                else:
                    action = Action.CONSENT_GRANT if version == 1 else Action.CONSENT_UPDATE
                events.append(AuditEvent(
                    actor=next(commitments) if patient else who.name, role=Role(who.role),
                    action=action, purpose=Purpose.PATRQT, resource=f"consent:{final.hospital}", time=now,
                    input_hashes=(hashlib.sha256(dumps(res).encode()).hexdigest(),),
                    subject_commitment=next(commitments)))
            # in the log before the change commits: nodes apply no consent change that is not logged
            self.record_all(events)
        return out

    def consent_simple(self, who: Principal, hospital: str, *, permit: list[str], categories: list[str],
                       deny_categories: list[str]) -> dict[str, Any]:
        """A patient's consent in a few words: permit these purposes (for these categories, except those)."""
        if who.role != UserRole.PATIENT or not who.pseudonym:
            raise self.refuse(who, "consent.patient-own", "only a patient sets their consent this way",
                              resource=f"consent:{hospital}")
        try:
            res = build_consent(who.pseudonym, hospital, permit_purposes=permit, categories=categories,
                                deny_categories=deny_categories, version=None)
        except ConsentError as e:
            raise BadRequest(str(e)) from None
        return self.put_consent(who, res)

    def revoke_consent(self, who: Principal, hospital: str, pseudonym: str | None = None) -> dict[str, Any]:
        """Revoke a consent: a new version with status inactive (the patient's own, or a steward's hospital's)."""
        pseudonym = pseudonym or who.pseudonym
        if not pseudonym:
            raise BadRequest("pseudonym: whose consent to revoke")
        self._may_consent(who, pseudonym, hospital)
        with self.db.sessions() as s:
            prev = s.scalars(select(Consent).where(Consent.pseudonym == pseudonym, Consent.hospital == hospital)
                             .order_by(Consent.version.desc()).limit(1)).first()
        if prev is None:
            # nothing recorded yet: revoking means "no" for everything, which a deny-all consent says
            res = build_consent(pseudonym, hospital, status=ConsentStatus.INACTIVE, version=None)
        else:
            res = orjson.loads(prev.resource)
            res["status"] = ConsentStatus.INACTIVE.value
        return self.put_consent(who, res)

    def revoke_everywhere(self, who: Principal) -> list[dict[str, Any]]:
        """A patient revokes their consent at every hospital of the space at once (one new inactive version each;
        the hub does not know where the patient has records, so every hospital gets one)."""
        if who.role != UserRole.PATIENT or not who.pseudonym:
            raise self.refuse(who, "consent.patient-own", "only a patient revokes their consent everywhere",
                              resource="consent:all")
        pseudonym = who.pseudonym
        with self.db.sessions() as s:
            hospitals = list(s.scalars(select(Participant.name).where(Participant.role == "node")
                                       .order_by(Participant.name)))
            latest = {c.hospital: c for c in s.scalars(select(Consent).where(Consent.pseudonym == pseudonym)
                                                       .order_by(Consent.version))}
        resources = []
        for h in hospitals:
            prev = latest.get(h)
            if prev is None:
                resources.append(build_consent(pseudonym, h, status=ConsentStatus.INACTIVE, version=None))
            else:
                res = orjson.loads(prev.resource)
                res["status"] = ConsentStatus.INACTIVE.value
                resources.append(res)
        return self.put_consents(who, resources)

    def _may_consent(self, who: Principal, pseudonym: str, hospital: str) -> None:
        if who.role == UserRole.PATIENT:
            if who.pseudonym != pseudonym:
                raise self.refuse(who, "consent.own-only", "a patient changes only their own consent",
                                  resource=f"consent:{hospital}", purpose=Purpose.PATRQT)
        elif who.role == UserRole.STEWARD:
            if who.hospital != hospital:
                raise self.refuse(who, "roles.steward-own-hospital", "a steward records consent only for their "
                                  "own hospital", resource=f"consent:{hospital}", purpose=Purpose.PATRQT)
        else:
            raise self.refuse(who, "consent.patient-or-steward", "only the patient or their hospital's steward "
                              "records a consent", resource=f"consent:{hospital}", purpose=Purpose.PATRQT)

    def my_consents(self, who: Principal, *, current: bool = False, limit: int = 100,
                    offset: int = 0) -> list[dict[str, Any]]:
        """A patient's consents, newest version first per hospital (``current``: only the latest at each), a page
        of ``limit`` from ``offset``."""
        if who.role != UserRole.PATIENT or not who.pseudonym:
            raise self.refuse(who, "consent.patient-own", "only a patient lists their consents",
                              resource="consent:mine")
        q = select(Consent.resource).where(Consent.pseudonym == who.pseudonym)
        if current:
            latest = (select(Consent.hospital, func.max(Consent.version).label("v"))
                      .where(Consent.pseudonym == who.pseudonym).group_by(Consent.hospital).subquery())
            q = q.join(latest, (Consent.hospital == latest.c.hospital) & (Consent.version == latest.c.v))
        q = q.order_by(Consent.hospital, Consent.version.desc()).limit(limit).offset(offset)
        with self.db.engine.connect() as c:
            return [orjson.loads(r) for r in c.scalars(q)]

    def consents_since(self, hospital: str, since: int) -> tuple[int, list[dict[str, Any]]]:
        """A hospital's consent versions after sequence ``since`` (at most MAX_BATCH), and the sequence reached."""
        with self.db.engine.connect() as c:
            rows = c.execute(_SINCE, {"b_hospital": hospital, "b_since": since}).all()
            if rows:
                return int(rows[-1].seq), [orjson.loads(r.resource) for r in rows]
            top = c.scalar(_TOP) or 0
            return max(since, int(top)), []

    # --- hospital defaults --------------------------------------------------------------------------------

    def set_consent_defaults(self, who: Principal, hospital: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """A hospital's consent defaults (its steward, or an admin)."""
        if not (who.role == UserRole.ADMIN or (who.role == UserRole.STEWARD and who.hospital == hospital)):
            raise self.refuse(who, "roles.steward-own-hospital", "only the hospital's steward sets its defaults",
                              resource=f"participant:{hospital}")
        try:
            d = HospitalDefaults.from_dict({**data, "hospital": hospital})
        except ConsentError as e:
            raise BadRequest(str(e)) from None
        with self.db.transaction("consents") as s:
            p = s.get(Participant, hospital)
            if p is None or p.role != "node":
                raise NotFound(f"no hospital {hospital} in this space")
            p.consent_defaults = dumps(d.to_dict())
        self.record(Action.CONSENT_UPDATE, actor=who.name, role=Role(who.role), purpose=Purpose.HSYSADMIN,
                    resource=f"participant:{hospital}")
        return d.to_dict()

    def consent_defaults(self, hospital: str) -> dict[str, Any]:
        """A hospital's consent defaults as data (opt-in everywhere until set)."""
        with self.db.sessions() as s:
            p = s.get(Participant, hospital)
        if p is None:
            raise NotFound(f"no hospital {hospital} in this space")
        return defaults_view(hospital, p.consent_defaults)
