"""Dynamic consent: a registry of FHIR R4 ``Consent`` resources, hospital defaults, and consent decisions.

Standard: HL7 FHIR R4 ``Consent`` (built, validated and parsed by :mod:`medspace.policy.consent_fhir`, whose
docstring lists the elements used: status, scope, category, patient by linkage-pseudonym identifier, organization,
policyRule, and provision.type / period / dataPeriod / purpose / class / securityLabel / actor / provision).
Purposes are HL7 v3 PurposeOfUse codes (:class:`medspace.ledger.entry.Purpose`).

Registry. One consent per (patient, hospital), identified by the linkage pseudonym, kept as a sequence of versions
(``meta.versionId`` strictly increasing; ``meta.lastUpdated`` set when the registry accepts it). A revocation is a
new version with status ``inactive``. Every accepted version gets the next registry ``sequence`` number; a replica
(a node) pulls :meth:`ConsentRegistry.changes_since` and applies them with :meth:`ConsentRegistry.apply_changes`,
which is idempotent and safe out of order (the highest version wins whatever the arrival order). Decisions read the
latest version in force (active or inactive); draft, proposed and rejected versions do not change it, and a latest
``entered-in-error`` version voids the consent (the patient is at the hospital default, as if there were none).

Decision for (patient, hospital, purpose, category, time, recipient), most specific first:

1. the latest version is ``inactive``: not permitted, basis ``revoked``;
2. the root provision's period does not cover the time: not permitted, basis ``outside-period`` (a patient who has
   recorded a choice is not handed back to the hospital default when it lapses or before it starts);
3. the provisions: a provision *matches* when each of its criteria that is present holds (purpose in its purposes,
   category in its classes, time in its period, recipient among its actors). A permit also needs every enclosing
   provision's criteria to hold (an exception never reaches beyond its parent); a deny holds on its own criteria
   (a "deny psychiatric data" exception applies to every purpose). The deepest matching provision decides, deny
   winning ties. A deny with a ``dataPeriod`` does not refuse the patient: it removes the records of that period
   (``excluded_data_periods``); a permit's (and its parents') ``dataPeriod`` bounds the records (``data_period``).
   An L1 category (genetics, hiv, psychiatric, sexual_health) is permitted only by a permit whose own chain names
   both that category and that purpose; a broader permit leaves L1 data at its default, which is opt-in;
4. no provision decides: the hospital default for (category, purpose), ``default-opt-in`` (not permitted) or
   ``default-opt-out`` (permitted). L1 categories are always opt-in.

A provision with actors matches a permit only for a named recipient among them; a deny with actors also applies
when the recipient is not known. Break-the-glass overrides are the caller's decision, not the registry's.

Nodes enforce consent themselves on the linkage pseudonym: :meth:`ConsentRegistry.consent_filter` decides once for
every patient with a consent at the hospital and once for all those without one (the default), so filtering a
population is one set or ``pyarrow.compute.is_in`` operation (:meth:`ConsentFilter.mask`), and limiting records by
``dataPeriod`` is a vectorised pass over (pseudonym, date) columns (:meth:`ConsentFilter.row_mask`). The filter is
cached until the registry changes or the time crosses a period boundary.

Hospital defaults and decisions are in :mod:`medspace.policy.consent_decision`, the filter in
:mod:`medspace.policy.consent_filter`; this module re-exports their public names.
"""

from __future__ import annotations

import bisect
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from medspace.gc_pause import gc_paused
from medspace.ledger.entry import Purpose
from medspace.policy.consent_decision import (
    EXAMPLE_CN_DEFAULTS,
    EXAMPLE_US_DEFAULTS,
    Basis,
    ConsentDecision,
    HospitalDefaults,
    _boundaries,
    _utc,
    decide_record,
)
from medspace.policy.consent_fhir import (
    CATEGORIES,
    L1_CATEGORIES,
    Actor,
    ConsentRecord,
    ConsentStatus,
    Period,
    Rule,
    Scope,
    build_consent,
    check_category,
    check_participant,
    check_pseudonym,
    check_purpose,
    parse_consent,
    row_categories,
    validate_model,
)
from medspace.policy.consent_filter import ConsentFilter, _build_filter
from medspace.policy.errors import ConsentError

__all__ = [
    "CATEGORIES", "EXAMPLE_CN_DEFAULTS", "EXAMPLE_US_DEFAULTS", "L1_CATEGORIES", "Actor", "Basis", "ConsentDecision",
    "ConsentFilter", "ConsentRecord", "ConsentRegistry", "ConsentStatus", "HospitalDefaults", "Period", "Rule",
    "Scope", "build_consent", "decide_record", "parse_consent", "row_categories",
]

# --- the registry --------------------------------------------------------------------------------------------------


def _dumps(resource: Mapping[str, Any]) -> bytes:
    return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)


@dataclass
class _Entry:
    record: ConsentRecord
    blob: bytes  # the resource as accepted, canonical JSON


class ConsentRegistry:
    """Versions of FHIR R4 Consent resources per (pseudonym, hospital), in memory and thread-safe; the hub's copy
    and the nodes' replicas are the same class."""

    _CACHE_SIZE = 64

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._log: list[bytes] = []  # accepted resources in sequence order
        self._versions: dict[tuple[str, str], dict[int, _Entry]] = {}
        self._ids: dict[tuple[str, str], str] = {}
        self._id_owner: dict[str, tuple[str, str]] = {}
        # hospital -> pseudonym -> (version in force, its provision tree without the root period, interned)
        self._in_force: dict[str, dict[str, tuple[ConsentRecord, Rule]]] = {}
        self._cache: dict[tuple[Any, ...], tuple[int, datetime | None, datetime | None, ConsentFilter]] = {}
        self._bounds: dict[str, list[datetime]] = {}  # hospital -> sorted period boundaries of consents in force
        self._bound_counts: dict[str, dict[datetime, int]] = {}
        self._intern: dict[Rule, Rule] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._versions)

    @property
    def sequence(self) -> int:
        """The number of versions this registry has accepted: changes_since(sequence) is empty."""
        with self._lock:
            return len(self._log)

    # -- writing --

    def put(self, resource: Mapping[str, Any], *, now: datetime | None = None) -> ConsentRecord:
        """Accept a new version (validated): its versionId must exceed every version held for its patient and
        hospital (absent: the next one); the registry sets meta.lastUpdated and, on a first version, the id."""
        if not isinstance(resource, Mapping):
            raise ConsentError("Consent: a resource (a JSON object) expected")
        res = orjson.loads(_dumps(resource))
        meta = res.get("meta") or {}
        if not isinstance(meta, dict):
            raise ConsentError("Consent.meta: unexpected structure")
        assign = meta.get("versionId") is None
        # A provisional version so the resource can be read before the registry knows which one is next.
        res["meta"] = {**meta, "versionId": "1"} if assign else meta
        validate_model(res)
        key = parse_consent(res, validate=False).key  # who it is about; the final form is parsed again below
        stamp = _utc(now if now is not None else datetime.now(UTC))
        with self._lock:
            top = max(self._versions.get(key, {}), default=0)
            version = top + 1 if assign else int(res["meta"]["versionId"])
            if version <= top:
                raise ConsentError(f"Consent.meta.versionId: not above version {top} held for this patient at "
                                   f"hospital {key[1]}")
            res["meta"] = {**res["meta"], "versionId": str(version),
                           "lastUpdated": stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")}
            known = self._ids.get(key)
            if known is not None and res.get("id") not in (None, known):
                raise ConsentError("Consent.id: a new version must keep the id of the consent it updates")
            if self._id_owner.get(res.get("id") or "", key) != key:
                raise ConsentError("Consent.id: already the id of another patient's or hospital's consent")
            res["id"] = known or res.get("id") or uuid.uuid4().hex
            record = parse_consent(res, validate=False)  # only id and meta changed, in forms the model accepts
            self._insert(record, _dumps(res))
            return record

    def revoke(self, pseudonym: str, hospital: str, now: datetime | None = None) -> ConsentRecord:
        """Revoke the patient's consent at the hospital: a new version, status inactive; already revoked: unchanged."""
        check_pseudonym(pseudonym)
        check_participant(hospital)
        with self._lock:
            held = self._versions.get((pseudonym, hospital))
            if not held:
                raise ConsentError(f"revoke: no consent for this patient at hospital {hospital}")
            latest = held[max(held)]
            if latest.record.status == ConsentStatus.INACTIVE:
                return latest.record
            res = orjson.loads(latest.blob)
            stamp = _utc(now if now is not None else datetime.now(UTC))
            res["status"] = ConsentStatus.INACTIVE.value
            res["dateTime"] = stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")
            res["meta"] = {**res.get("meta", {}), "versionId": str(latest.record.version + 1)}
            return self.put(res, now=stamp)

    def apply_changes(self, resources: Iterable[Mapping[str, Any]]) -> int:
        """Apply versions pulled from another registry (all or nothing); a version already held is skipped if
        identical and refused if not. Returns how many were new."""
        parsed: list[tuple[ConsentRecord, bytes]] = []
        with gc_paused():  # validating makes many small acyclic objects per resource: see medspace.gc_pause
            for res in resources:
                blob = _dumps(res)
                record = parse_consent(res)
                if record.id is None or (res.get("meta") or {}).get("lastUpdated") is None:
                    raise ConsentError("Consent.id/meta.lastUpdated: a change carries the id and time its registry "
                                       "gave")
                parsed.append((record, blob))
        with self._lock:
            new: dict[tuple[tuple[str, str], int], bytes] = {}
            ids, owners = dict(self._ids), dict(self._id_owner)
            for record, blob in parsed:
                vkey = (record.key, record.version)
                held = self._versions.get(record.key, {}).get(record.version)
                seen = held.blob if held is not None else new.get(vkey)
                if seen is not None:
                    if seen != blob:
                        raise ConsentError(f"apply_changes: two different copies of version {record.version} for "
                                           f"a patient at hospital {record.hospital}")
                    continue
                assert record.id is not None
                if ids.setdefault(record.key, record.id) != record.id or \
                        owners.setdefault(record.id, record.key) != record.key:
                    raise ConsentError("Consent.id: does not match the consent this version updates")
                new[vkey] = blob
            count = 0
            for record, blob in parsed:
                if new.pop((record.key, record.version), None) is not None:
                    self._insert(record, blob)
                    count += 1
            return count

    def _insert(self, record: ConsentRecord, blob: bytes) -> None:
        key = record.key
        # Consents come from a few forms: equal provision trees are shared, which keeps memory down and lets a
        # filter's memo (keyed by the tree) compare by identity.
        provision = self._intern.setdefault(record.provision, record.provision)
        if provision is not record.provision:
            record = replace(record, provision=provision)
        assert record.id is not None
        self._versions.setdefault(key, {})[record.version] = _Entry(record, blob)
        self._ids[key] = record.id
        self._id_owner[record.id] = key
        self._log.append(blob)
        versions = self._versions[key]
        in_force = None
        for v in sorted(versions, reverse=True):
            candidate = versions[v].record
            if candidate.status == ConsentStatus.ENTERED_IN_ERROR:
                break  # the consent itself is void (FHIR: not to be treated as valid): as if there were none
            if candidate.in_force:
                in_force = candidate
                break
        by_patient = self._in_force.setdefault(record.hospital, {})
        before = by_patient.get(record.pseudonym)
        if before is not None and before[0] is in_force:
            return
        if before is not None:
            self._count_bounds(record.hospital, before[0].provision, -1)
        if in_force is None:
            by_patient.pop(record.pseudonym, None)
        else:
            root = in_force.provision
            shape = root if root.period is None else replace(root, period=None)
            by_patient[record.pseudonym] = (in_force, self._intern.setdefault(shape, shape))
            self._count_bounds(record.hospital, root, +1)

    def _count_bounds(self, hospital: str, rule: Rule, step: int) -> None:
        # Keeps, per hospital, the sorted instants at which some decision changes (a period starts or ends).
        counts = self._bound_counts.setdefault(hospital, {})
        ordered = self._bounds.setdefault(hospital, [])
        for b in set(_boundaries(rule)):
            n = counts.get(b, 0) + step
            if n > 0:
                if b not in counts:
                    bisect.insort(ordered, b)
                counts[b] = n
            else:
                counts.pop(b, None)
                del ordered[bisect.bisect_left(ordered, b)]

    # -- reading --

    def current(self, pseudonym: str, hospital: str) -> ConsentRecord | None:
        """The latest version of the patient's consent at the hospital (any status), or None."""
        with self._lock:
            held = self._versions.get((check_pseudonym(pseudonym), hospital))
            return held[max(held)].record if held else None

    def in_force(self, pseudonym: str, hospital: str) -> ConsentRecord | None:
        """The version decisions read: the latest active or inactive one, or None."""
        with self._lock:
            held = self._in_force.get(hospital, {}).get(check_pseudonym(pseudonym))
            return None if held is None else held[0]

    def history(self, pseudonym: str) -> list[ConsentRecord]:
        """Every version of the patient's consents, by hospital then version."""
        check_pseudonym(pseudonym)
        with self._lock:
            keys = sorted(k for k in self._versions if k[0] == pseudonym)
            return [self._versions[k][v].record for k in keys for v in sorted(self._versions[k])]

    def resource(self, pseudonym: str, hospital: str, version: int | None = None) -> dict[str, Any]:
        """One version as a FHIR resource (the latest by default)."""
        with self._lock:
            held = self._versions.get((check_pseudonym(pseudonym), hospital))
            if not held or (version is not None and version not in held):
                raise ConsentError(f"resource: no such consent version for this patient at hospital {hospital}")
            return dict(orjson.loads(held[max(held) if version is None else version].blob))

    def changes_since(self, seq: int) -> list[dict[str, Any]]:
        """The versions accepted after sequence number `seq`, in order (changes_since(0): all of them)."""
        return self.changes_batch(seq)[1]

    def changes_batch(self, seq: int) -> tuple[int, list[dict[str, Any]]]:
        """(sequence, changes_since(seq)) read at one instant: pass the sequence back next time."""
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ConsentError("seq: a sequence number is a non-negative integer")
        with self._lock:
            blobs = self._log[seq:]
            top = len(self._log)
        return top, [orjson.loads(b) for b in blobs]

    def dump(self) -> list[dict[str, Any]]:
        """Every version, in sequence order: what load() reads back."""
        return self.changes_since(0)

    def dumps(self) -> bytes:
        """dump() as JSON bytes."""
        with self._lock:
            return b"[" + b",".join(self._log) + b"]"

    @classmethod
    def load(cls, resources: Iterable[Mapping[str, Any]]) -> ConsentRegistry:
        """A registry holding the given versions (a dump, or rows in sequence order)."""
        registry = cls()
        registry.apply_changes(resources)
        return registry

    @classmethod
    def loads(cls, data: bytes | str) -> ConsentRegistry:
        """load() from JSON (a list of resources)."""
        try:
            items = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ConsentError("registry: not JSON") from None
        if not isinstance(items, list):
            raise ConsentError("registry: a JSON list of Consent resources expected")
        return cls.load(items)

    # -- deciding --

    def decide(self, pseudonym: str, hospital: str, purpose: Purpose | str, category: str, at: datetime,
               defaults: HospitalDefaults, *, recipient: str | None = None) -> ConsentDecision:
        """May this patient's data of this category at this hospital be used for this purpose at this time?"""
        _check_defaults(hospital, defaults)
        return decide_record(self.in_force(pseudonym, hospital), purpose, category, at, defaults, recipient=recipient)

    def consent_filter(self, hospital: str, purpose: Purpose | str, categories: Iterable[str], at: datetime,
                       defaults: HospitalDefaults, *, recipient: str | None = None) -> ConsentFilter:
        """The filter for one computation at a hospital, decided once per patient with a consent (cached)."""
        _check_defaults(hospital, defaults)
        purpose, at = check_purpose(purpose), _utc(at)
        cats = frozenset(check_category(c) for c in categories)
        if not cats:
            raise ConsentError("categories: at least one data category")
        key = (hospital, purpose, cats, recipient, defaults)
        with self._lock:
            seq = len(self._log)
            hit = self._cache.get(key)
            if hit is not None and hit[0] == seq and (hit[1] is None or hit[1] <= at) and \
                    (hit[2] is None or at < hit[2]):
                return hit[3]
            records = dict(self._in_force.get(hospital, {}))
            lo, hi = self._interval(hospital, at)
        with gc_paused():  # thousands of small acyclic objects: see medspace.gc_pause
            flt = _build_filter(hospital, purpose, cats, at, defaults, recipient, records)
        with self._lock:
            if len(self._cache) >= self._CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = (seq, lo, hi, flt)
        return flt

    def excluded(self, pseudonyms: Any, hospital: str, purpose: Purpose | str, categories: Iterable[str],
                 at: datetime, defaults: HospitalDefaults, *, recipient: str | None = None) -> set[str]:
        """The patients among `pseudonyms` a computation on `categories` must leave out."""
        flt = self.consent_filter(hospital, purpose, categories, at, defaults, recipient=recipient)
        return flt.excluded(pseudonyms)

    def _interval(self, hospital: str, at: datetime) -> tuple[datetime | None, datetime | None]:
        # The span around `at` in which no period of the hospital's consents starts or ends: decisions are constant.
        bounds = self._bounds.get(hospital, [])
        i = bisect.bisect_right(bounds, at)
        return (bounds[i - 1] if i > 0 else None, bounds[i] if i < len(bounds) else None)


def _check_defaults(hospital: str, defaults: HospitalDefaults) -> None:
    check_participant(hospital)
    if not isinstance(defaults, HospitalDefaults) or defaults.hospital != hospital:
        raise ConsentError(f"defaults: not the defaults of hospital {hospital}")
