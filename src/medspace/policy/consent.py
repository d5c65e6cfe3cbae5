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
"""

from __future__ import annotations

import bisect
import threading
import tomllib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from medspace.gc_pause import gc_paused
from medspace.ledger.entry import Purpose
from medspace.model.catalogue import Level
from medspace.policy.consent_fhir import (
    CATEGORIES,
    CATEGORY_LEVEL,
    L1_CATEGORIES,
    Actor,
    ConsentRecord,
    ConsentStatus,
    Moment,
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
from medspace.policy.errors import ConsentError

__all__ = [
    "CATEGORIES", "EXAMPLE_CN_DEFAULTS", "EXAMPLE_US_DEFAULTS", "L1_CATEGORIES", "Actor", "Basis", "ConsentDecision",
    "ConsentFilter", "ConsentRecord", "ConsentRegistry", "ConsentStatus", "HospitalDefaults", "Period", "Rule",
    "Scope", "build_consent", "decide_record", "parse_consent", "row_categories",
]

Mode = Literal["opt-in", "opt-out"]
_MODES = ("opt-in", "opt-out")


class Basis(StrEnum):
    """Why a decision came out as it did."""

    EXPLICIT_PERMIT = "explicit-permit"
    EXPLICIT_DENY = "explicit-deny"
    DEFAULT_OPT_IN = "default-opt-in"
    DEFAULT_OPT_OUT = "default-opt-out"
    REVOKED = "revoked"
    OUTSIDE_PERIOD = "outside-period"


# --- hospital defaults ---------------------------------------------------------------------------------------------

# The examples, as data (the form HospitalDefaults.from_dict and TOML files take). Keys under "modes" are a
# purpose code or "*"; inside, a category, a level ("L1", "L2", "L3") or "*". L1 is opt-in whatever is written.
EXAMPLE_US_DEFAULTS: dict[str, Any] = {
    "hospital": "us-example",
    "fallback": "opt-in",
    "modes": {
        "HRESCH": {"L2": "opt-out", "L3": "opt-out", "L1": "opt-in"},  # research on L2 unless the patient objects
        "TREAT": {"*": "opt-out"},  # treatment, payment and operations need no authorisation (45 CFR 164.506)
        "ETREAT": {"*": "opt-out"},
    },
}
EXAMPLE_CN_DEFAULTS: dict[str, Any] = {
    "hospital": "cn-example",
    "fallback": "opt-in",  # PIPL art. 13-14: consent first; art. 29: separate consent for sensitive data
    "modes": {
        "HRESCH": {"L1": "opt-in", "L2": "opt-in"},
        "ETREAT": {"L2": "opt-out"},  # PIPL art. 13(4): emergencies, to protect life and health
    },
}


@dataclass(frozen=True)
class HospitalDefaults:
    """A hospital's default per (purpose, category): "opt-in" (excluded until the patient permits) or "opt-out"
    (included until the patient denies). `rules` are (purpose or "*", category, level or "*", mode); the most
    specific rule wins (purpose before "*", then category before level before "*"); else `fallback`."""

    hospital: str
    rules: tuple[tuple[str, str, Mode], ...] = ()
    fallback: Mode = "opt-in"
    _table: dict[tuple[Purpose, str], Mode] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_participant(self.hospital, "defaults.hospital")
        if self.fallback not in _MODES:
            raise ConsentError("defaults.fallback: opt-in or opt-out")
        specific: dict[tuple[str, str], Mode] = {}
        for purpose, target, mode in self.rules:
            if purpose != "*":
                check_purpose(purpose, "defaults.purpose")
            if target not in CATEGORY_LEVEL and target not in ("*", "L1", "L2", "L3"):
                raise ConsentError("defaults: a target is a category, a level (L1, L2, L3) or *")
            if mode not in _MODES:
                raise ConsentError("defaults: a mode is opt-in or opt-out")
            if mode == "opt-out" and (target == "L1" or CATEGORY_LEVEL.get(target) == Level.L1):
                raise ConsentError("defaults: L1 categories are opt-in only (explicit consent for sensitive data)")
            specific[(purpose, target)] = mode
        for p in Purpose:
            for c in CATEGORIES:
                level = CATEGORY_LEVEL[c].value
                mode = self.fallback
                for key in ((p.value, c), (p.value, level), (p.value, "*"), ("*", c), ("*", level), ("*", "*")):
                    if key in specific:
                        mode = specific[key]
                        break
                self._table[(p, c)] = "opt-in" if level == "L1" else mode

    def mode(self, category: str, purpose: Purpose | str) -> Mode:
        """The default for a category and a purpose."""
        return self._table[(check_purpose(purpose), check_category(category))]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HospitalDefaults:
        """Defaults from data: {"hospital": .., "fallback": .., "modes": {purpose|"*": {category|level|"*": mode}}}."""
        if not isinstance(data, Mapping) or not isinstance(data.get("modes", {}), Mapping):
            raise ConsentError("defaults: a mapping with hospital, fallback and modes expected")
        rules: list[tuple[str, str, Mode]] = []
        for purpose, targets in data.get("modes", {}).items():
            if not isinstance(targets, Mapping):
                raise ConsentError("defaults.modes: each purpose maps targets to modes")
            rules.extend((str(purpose), str(t), m) for t, m in targets.items())
        return cls(data.get("hospital", ""), tuple(rules), data.get("fallback", "opt-in"))

    @classmethod
    def from_toml(cls, source: Path | str) -> HospitalDefaults:
        """Defaults from a TOML file (or TOML text): top-level hospital, fallback and a [modes.PURPOSE] table each."""
        text = source.read_text("utf-8") if isinstance(source, Path) else source
        try:
            return cls.from_dict(tomllib.loads(text))
        except tomllib.TOMLDecodeError as e:
            raise ConsentError(f"defaults: not valid TOML ({e})") from None

    def to_dict(self) -> dict[str, Any]:
        """The data form from_dict reads."""
        modes: dict[str, dict[str, str]] = {}
        for purpose, target, mode in self.rules:
            modes.setdefault(purpose, {})[target] = mode
        return {"hospital": self.hospital, "fallback": self.fallback, "modes": modes}


# --- decisions -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentDecision:
    """The answer for one patient, purpose and category: permitted or not, why, and which consent version said
    so (None: the patient has no consent at this hospital). When permitted, records must lie in `data_period` (None:
    any date) and outside every `excluded_data_periods`."""

    permitted: bool
    basis: Basis
    consent_version: int | None
    data_period: Period | None = None
    excluded_data_periods: tuple[Period, ...] = ()

    @property
    def restricts_records(self) -> bool:
        """Whether the node must filter this patient's records by date."""
        return self.permitted and (self.data_period is not None or bool(self.excluded_data_periods))

    def allows_record(self, when: Moment) -> bool:
        """Whether a record dated `when` may be used (a date counts from its start, in UTC)."""
        if not self.permitted:
            return False
        if self.data_period is not None and not self.data_period.contains(when):
            return False
        return not any(p.contains(when) for p in self.excluded_data_periods)


def _utc(at: datetime) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise ConsentError("at: an aware datetime (with a timezone) expected")
    return at.astimezone(UTC)


def _matches(rule: Rule, purpose: Purpose, category: str, at: datetime, recipient: str | None) -> bool:
    if rule.purposes and purpose not in rule.purposes:
        return False
    if rule.categories and category not in rule.categories:
        return False
    period = rule.period
    if period is not None and (
            (period.lo is not None and at < period.lo) or (period.hi is not None and at > period.hi)):
        return False
    if rule.actors:
        if recipient is None:
            return rule.type == "deny"  # an unknown recipient is inside every deny and outside every permit
        return any(a.participant == recipient for a in rule.actors)
    return True


def _intersect(a: tuple[datetime | None, datetime | None], p: Period | None) -> tuple[datetime | None, datetime | None]:
    if p is None:
        return a
    lo, hi = p.lo, p.hi
    return (lo if a[0] is None or (lo is not None and lo > a[0]) else a[0],
            hi if a[1] is None or (hi is not None and hi < a[1]) else a[1])


@dataclass
class _Outcome:
    depth: int = -1
    type: str = ""
    explicit: bool = False
    window: tuple[datetime | None, datetime | None] = (None, None)
    excluded: list[Period] = field(default_factory=list)


def _evaluate(root: Rule, purpose: Purpose, category: str, at: datetime, recipient: str | None) -> _Outcome:
    out = _Outcome()
    # (rule, depth, enclosing criteria hold, purpose named on the chain, category named, chain data window)
    stack: list[tuple[Rule, int, bool, bool, bool, tuple[datetime | None, datetime | None]]] = [
        (root, 0, True, False, False, (None, None))]
    while stack:
        rule, depth, chain_ok, named_p, named_c, window = stack.pop()
        own = _matches(rule, purpose, category, at, recipient)
        named_p, named_c = named_p or bool(rule.purposes), named_c or bool(rule.categories)
        window = _intersect(window, rule.data_period)
        if rule.type == "deny" and own:
            if rule.data_period is not None:
                out.excluded.append(rule.data_period)
            elif depth >= out.depth:
                out.depth, out.type = depth, "deny"
        elif rule.type == "permit" and own and chain_ok:
            empty = window[0] is not None and window[1] is not None and window[0] > window[1]
            if not empty and (depth > out.depth or (depth == out.depth and out.type != "deny")):
                out.depth, out.type, out.window = depth, "permit", window
                out.explicit = named_p and named_c
        for child in rule.exceptions:
            stack.append((child, depth + 1, chain_ok and own, named_p, named_c, window))
    return out


def decide_record(record: ConsentRecord | None, purpose: Purpose | str, category: str, at: datetime,
                  defaults: HospitalDefaults, *, recipient: str | None = None) -> ConsentDecision:
    """The decision for one patient from their consent version in force at the hospital (None: no consent)."""
    return _decide(record, check_purpose(purpose), check_category(category), _utc(at), defaults, recipient)


def _decide(record: ConsentRecord | None, purpose: Purpose, category: str, at: datetime, defaults: HospitalDefaults,
            recipient: str | None) -> ConsentDecision:
    # decide_record on checked arguments, `at` in UTC.
    if record is None:
        return _default(None, purpose, category, defaults)
    if record.status == ConsentStatus.INACTIVE:
        return ConsentDecision(False, Basis.REVOKED, record.version)
    if not _in_period(record.provision.period, at):
        return ConsentDecision(False, Basis.OUTSIDE_PERIOD, record.version)
    return _decide_rule(record.provision, record.version, purpose, category, at, defaults, recipient)


def _in_period(period: Period | None, at: datetime) -> bool:
    return period is None or ((period.lo is None or period.lo <= at) and (period.hi is None or at <= period.hi))


def _default(version: int | None, purpose: Purpose, category: str, defaults: HospitalDefaults,
             excluded: tuple[Period, ...] = ()) -> ConsentDecision:
    # the hospital's default; its table already holds L1 categories at opt-in
    if defaults._table[(purpose, category)] == "opt-out":
        return ConsentDecision(True, Basis.DEFAULT_OPT_OUT, version, None, excluded)
    return ConsentDecision(False, Basis.DEFAULT_OPT_IN, version)


def _decide_rule(root: Rule, version: int | None, purpose: Purpose, category: str, at: datetime,
                 defaults: HospitalDefaults, recipient: str | None) -> ConsentDecision:
    # the provisions' decision, once status and the root period have let the consent speak
    out = _evaluate(root, purpose, category, at, recipient)
    excluded = tuple(out.excluded)
    if out.type == "deny":
        return ConsentDecision(False, Basis.EXPLICIT_DENY, version)
    if out.type == "permit" and (out.explicit or CATEGORY_LEVEL[category] != Level.L1):
        lo, hi = out.window
        window = None if lo is None and hi is None else Period(lo, hi)
        return ConsentDecision(True, Basis.EXPLICIT_PERMIT, version, window, excluded)
    return _default(version, purpose, category, defaults, excluded)


def _boundaries(rule: Rule) -> Iterable[datetime]:
    # Instants at which a decision can change: a period's start, and just after its (inclusive) end.
    for r in rule.walk():
        if r.period is not None:
            if r.period.lo is not None:
                yield r.period.lo
            if r.period.hi is not None:
                yield r.period.hi + timedelta(microseconds=1)


# --- the vectorised filter -----------------------------------------------------------------------------------------


def _as_array(pseudonyms: Any) -> pa.Array:
    if isinstance(pseudonyms, pa.ChunkedArray):
        pseudonyms = pseudonyms.combine_chunks()
    if isinstance(pseudonyms, pa.Array):
        return pseudonyms.cast(pa.string())
    if isinstance(pseudonyms, np.ndarray):
        return pa.array(pseudonyms.astype(object), pa.string())
    return pa.array(list(pseudonyms), pa.string())


@dataclass(frozen=True, eq=False)
class ConsentFilter:
    """Which of a hospital's patients a computation (purpose, categories, time, recipient) may use. A patient is
    excluded when any of the categories is not permitted; patients without a consent follow `default_permitted`.
    `restricted` holds, for permitted patients whose records are limited by date, their per-category decisions."""

    hospital: str
    purpose: Purpose
    categories: frozenset[str]
    default_permitted: bool
    excluded_consented: frozenset[str]
    permitted_consented: frozenset[str]
    restricted: Mapping[str, Mapping[str, ConsentDecision]]
    _excluded_arr: pa.Array = field(compare=False, repr=False)
    _permitted_arr: pa.Array = field(compare=False, repr=False)

    def is_excluded(self, pseudonym: str) -> bool:
        """Whether one patient is excluded."""
        if pseudonym in self.excluded_consented:
            return True
        return not self.default_permitted and pseudonym not in self.permitted_consented

    def mask(self, pseudonyms: Any) -> npt.NDArray[np.bool_]:
        """A boolean array, True where the patient is excluded (nulls are excluded); takes an Arrow or numpy array
        or any iterable of pseudonyms."""
        arr = _as_array(pseudonyms)
        if self.default_permitted:
            hit = pc.is_in(arr, value_set=self._excluded_arr)
        else:
            hit = pc.invert(pc.is_in(arr, value_set=self._permitted_arr))
        # is_in answers False (not null) for a null, and a null pseudonym is no patient anyone consented for.
        hit = pc.or_(pc.fill_null(hit, True), pc.is_null(arr))
        return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)

    def excluded(self, pseudonyms: Any) -> set[str]:
        """The excluded patients among `pseudonyms` (a Python iterable, an Arrow or a numpy array)."""
        if isinstance(pseudonyms, pa.Array | pa.ChunkedArray | np.ndarray):
            arr = _as_array(pseudonyms)
            return set(pc.filter(arr, pa.array(self.mask(arr))).drop_null().to_pylist())
        given: set[str] | frozenset[str] = pseudonyms if isinstance(pseudonyms, set | frozenset) else set(pseudonyms)
        if self.default_permitted:
            return set(given & self.excluded_consented)
        return set(given - self.permitted_consented)

    def allows_record(self, pseudonym: str, category: str, when: Moment | None) -> bool:
        """Whether one record (its patient, category and date) may be used; an undated record of a patient whose
        records are limited by date may not."""
        if self.is_excluded(pseudonym) or category not in self.categories:
            return False
        decision = self.restricted.get(pseudonym, {}).get(category)
        return decision is None or (when is not None and decision.allows_record(when))

    def row_mask(self, pseudonyms: Any, dates: Any, category: str) -> npt.NDArray[np.bool_]:
        """For rows of one category (a pseudonym and a date per row: Arrow or numpy arrays; dates as date32 or
        timestamps, naive ones read as UTC), True where the row may be used."""
        if category not in self.categories:
            raise ConsentError("category: not one of the categories this filter was made for")
        arr = _as_array(pseudonyms)
        ok = ~self.mask(arr)
        limited = [(p, d[category]) for p, d in self.restricted.items() if category in d]
        if not limited or not ok.any():
            return ok
        # Per row, the index of its patient among those whose records are limited by date (null: not limited).
        slot = pc.index_in(arr, value_set=pa.array([p for p, _ in limited], pa.string()))
        rows = np.flatnonzero(ok & ~np.asarray(pc.is_null(slot).to_numpy(zero_copy_only=False), dtype=bool))
        if not len(rows):
            return ok
        when = _instants(dates, len(arr))[rows]
        who = np.asarray(slot.to_numpy(zero_copy_only=False))[rows].astype(np.int64)
        allowed = ~np.isnat(when)
        nat = np.datetime64("NaT", "us")
        lo = np.array([_np_us(d.data_period.lo) if d.data_period else nat for _, d in limited])[who]
        hi = np.array([_np_us(d.data_period.hi) if d.data_period else nat for _, d in limited])[who]
        allowed &= (np.isnat(lo) | (when >= lo)) & (np.isnat(hi) | (when <= hi))
        for k in range(max(len(d.excluded_data_periods) for _, d in limited)):
            windows = [d.excluded_data_periods[k] if k < len(d.excluded_data_periods) else None for _, d in limited]
            has = np.array([w is not None for w in windows])[who]
            wlo = np.array([_np_us(w.lo) if w else nat for w in windows])[who]
            whi = np.array([_np_us(w.hi) if w else nat for w in windows])[who]
            inside = has & (np.isnat(wlo) | (when >= wlo)) & (np.isnat(whi) | (when <= whi))
            allowed &= ~inside
        ok[rows] = allowed
        return ok


def _np_us(t: datetime | None) -> np.datetime64:
    # a UTC instant as a naive numpy microsecond timestamp (NaT for None)
    if t is None:
        return np.datetime64("NaT", "us")
    return np.datetime64(t.astimezone(UTC).replace(tzinfo=None), "us")


def _instants(dates: Any, n: int) -> npt.NDArray[np.datetime64]:
    # Row dates as naive UTC microsecond timestamps: a date is its day's first instant (as Period.contains reads it).
    if isinstance(dates, pa.ChunkedArray):
        dates = dates.combine_chunks()
    if not isinstance(dates, pa.Array):
        dates = pa.array(np.asarray(dates)) if isinstance(dates, np.ndarray) else pa.array(list(dates))
    if len(dates) != n:
        raise ConsentError("dates: one date per row expected")
    if pa.types.is_timestamp(dates.type) and dates.type.tz is not None:
        dates = dates.cast(pa.timestamp("us", "UTC")).cast(pa.timestamp("us"))
    try:
        out = dates.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ConsentError("dates: dates or timestamps expected") from None
    return np.asarray(out, dtype="datetime64[us]")


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


def _build_filter(hospital: str, purpose: Purpose, cats: frozenset[str], at: datetime, defaults: HospitalDefaults,
                  recipient: str | None, records: Mapping[str, tuple[ConsentRecord, Rule]]) -> ConsentFilter:
    default_ok = all(_default(None, purpose, c, defaults).permitted for c in cats)
    excluded, permitted = set(), set()
    restricted: dict[str, dict[str, ConsentDecision]] = {}
    ordered: Sequence[str] = sorted(cats)
    # Consents come from a few forms and differ mostly in the root period (the day they were signed): once the root
    # period holds, equal trees without it (`shape`, interned by the registry) get equal decisions, so each is
    # evaluated once; only the version differs, and only patients whose records are restricted keep it.
    memo: dict[Rule, tuple[bool, list[tuple[str, ConsentDecision]]]] = {}
    for pseudonym, (record, shape) in records.items():
        if record.status == ConsentStatus.INACTIVE or not _in_period(record.provision.period, at):
            excluded.add(pseudonym)
            continue
        hit = memo.get(shape)
        if hit is None:
            decisions = [_decide_rule(shape, None, purpose, c, at, defaults, recipient) for c in ordered]
            ok = all(d.permitted for d in decisions)
            hit = memo[shape] = (ok, [(c, d) for c, d in zip(ordered, decisions, strict=True) if d.restricts_records])
        if hit[0]:
            permitted.add(pseudonym)
            if hit[1]:
                restricted[pseudonym] = {c: ConsentDecision(d.permitted, d.basis, record.version, d.data_period,
                                                            d.excluded_data_periods) for c, d in hit[1]}
        else:
            excluded.add(pseudonym)
    return ConsentFilter(hospital, purpose, cats, default_ok, frozenset(excluded), frozenset(permitted), restricted,
                         pa.array(sorted(excluded), pa.string()), pa.array(sorted(permitted), pa.string()))
