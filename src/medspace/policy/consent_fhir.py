"""FHIR R4 ``Consent`` resources for medspace's dynamic consent: the vocabulary, building, validating and parsing.

Standard: HL7 FHIR R4 (4.0.1) ``Consent``, validated with the ``fhir.resources`` R4B model (R4B's Consent is R4's,
element for element) plus the R4 invariants the model does not check. Elements used:

- ``status`` (``active``; a revocation is a new version with ``inactive``), ``meta.versionId``, ``meta.lastUpdated``.
- ``scope``: ``http://terminology.hl7.org/CodeSystem/consentscope`` ``research`` | ``patient-privacy`` |
  ``treatment`` (1..1 in R4); ``category``: LOINC 59284-0 *Patient Consent* (1..* in R4).
- ``patient``: ``Reference.identifier`` only, system ``urn:medspace:linkage``, value the linkage pseudonym
  (:func:`medspace.deid.keys.linkage_ids`). No ``Patient/`` id and no direct identifier ever appears.
- ``organization``: the hospital that holds the records (the consent's custodian), by identifier, system
  ``urn:medspace:participant``.
- ``policyRule``: HL7 v3 ActCode ``OPTIN`` / ``OPTINR`` / ``OPTOUT`` / ``OPTOUTE`` (the root provision's type, with or
  without exceptions), which satisfies invariant ppc-1 (policy or policyRule); ppc-2..5 (a patient for every scope)
  hold because every medspace consent names its patient.
- ``provision``: ``type`` permit | deny, ``period``, ``dataPeriod``, ``purpose`` (HL7 v3 ActReason PurposeOfUse,
  :class:`medspace.ledger.entry.Purpose`), ``class`` (system ``urn:medspace:category``: the L1 categories of
  :mod:`medspace.model.sensitivity` and one category per table of :mod:`medspace.model.catalogue`),
  ``securityLabel`` (HL7 v3 ActCode HIV, PSY, GDIS, SEX/STD for the L1 categories), ``actor`` (a participant by
  identifier with a v3 ParticipationType role, e.g. IRCP), and nested ``provision`` as exceptions.

Reading of R4 that medspace follows (R4's text leaves these open):

- The root provision carries a ``type``: it is the consent's base decision (R4's element text says "not permitted in
  root rule", but R4's own examples and IHE Privacy Consent on FHIR put the base decision there).
- ``class`` and ``securityLabel`` on one provision are both criteria: data must match both, so the categories a
  provision covers are the intersection of the two. The builder writes security labels only on provisions whose
  categories are all L1, where both say the same.
- A criterion the registry could not enforce (``action``, ``code``, ``data``, a ``class`` or ``securityLabel`` from
  another system, an unknown purpose, a ``modifierExtension``) makes the resource invalid: ignoring it could widen
  a permit. Every error names the element path, never the patient.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Literal

from medspace.deid.keys import PSEUDONYM_HEX
from medspace.ledger.entry import Purpose
from medspace.model.catalogue import TABLES, Level
from medspace.model.sensitivity import L1_WORDS
from medspace.policy.errors import ConsentError

LINKAGE_SYSTEM = "urn:medspace:linkage"
PARTICIPANT_SYSTEM = "urn:medspace:participant"
CATEGORY_SYSTEM = "urn:medspace:category"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC = "http://loinc.org"
CONSENT_CATEGORY = {"system": LOINC, "code": "59284-0", "display": "Patient Consent"}

# The L1 categories, as named by model.sensitivity (hiv, psychiatric, sexual_health, genetics).
L1_CATEGORIES: tuple[str, ...] = tuple(L1_WORDS)
# One data category per table of the common model; genetic variants are the genetics category.
TABLE_CATEGORY: dict[str, str] = {t: ("genetics" if t == "genetic_variant" else t) for t in TABLES}
CATEGORY_LEVEL: dict[str, Level] = {
    **{c: Level.L1 for c in L1_CATEGORIES},
    **{c: TABLES[t].base_level for t, c in TABLE_CATEGORY.items() if c not in L1_CATEGORIES},
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_LEVEL)
# HL7 v3 ActCode information-sensitivity codes (ActInformationSensitivityPolicy) for the L1 categories.
SECURITY_LABELS: dict[str, tuple[str, ...]] = {
    "hiv": ("HIV",),  # HIV/AIDS information sensitivity
    "psychiatric": ("PSY",),  # psychiatry disorder information sensitivity
    "sexual_health": ("SEX", "STD"),  # sexuality and reproductive health; sexually transmitted disease
    "genetics": ("GDIS",),  # genetic disease information sensitivity
}
_LABEL_CATEGORY = {code: cat for cat, codes in SECURITY_LABELS.items() for code in codes}
ROLES = frozenset({"IRCP", "PRCP", "CST", "AUT", "INF", "PPRF", "SPRF", "RESP"})  # v3 ParticipationType subset

_PSEUDONYM = re.compile(rf"[0-9a-f]{{{PSEUDONYM_HEX}}}")
_PARTICIPANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_FRACTION = re.compile(r"(\.\d{6})\d+")
MAX_PROVISIONS = 64  # per resource: evaluation stays bounded whatever a client sends
MAX_DEPTH = 6


class Scope(StrEnum):
    """Consent.scope: what the consent is about (consentscope code system)."""

    RESEARCH = "research"
    PRIVACY = "patient-privacy"
    TREATMENT = "treatment"


_SCOPE_DISPLAY = {Scope.RESEARCH: "Research", Scope.PRIVACY: "Privacy Consent", Scope.TREATMENT: "Treatment"}


class ConsentStatus(StrEnum):
    """Consent.status (R4 consent-state-codes)."""

    DRAFT = "draft"
    PROPOSED = "proposed"
    ACTIVE = "active"
    REJECTED = "rejected"
    INACTIVE = "inactive"
    ENTERED_IN_ERROR = "entered-in-error"


ProvisionType = Literal["permit", "deny"]
Moment = datetime | date


def check_pseudonym(value: object, where: str = "pseudonym") -> str:
    """The value if it is a linkage pseudonym (lower-case hex of the linkage length); ConsentError otherwise."""
    if not isinstance(value, str) or not _PSEUDONYM.fullmatch(value):
        # Never echo the value: a caller that passed a raw national ID by mistake must not see it logged.
        raise ConsentError(f"{where}: not a linkage pseudonym ({PSEUDONYM_HEX} lower-case hex digits)")
    return value


def check_participant(value: object, where: str = "hospital") -> str:
    """The value if it is a participant identifier (letters, digits and ._:- up to 64); ConsentError otherwise."""
    if not isinstance(value, str) or not _PARTICIPANT.fullmatch(value):
        raise ConsentError(f"{where}: not a participant identifier")
    return value


def check_category(value: object, where: str = "category") -> str:
    """The value if it is a known data category; ConsentError otherwise."""
    if value not in CATEGORY_LEVEL:
        raise ConsentError(f"{where}: unknown data category; known: {', '.join(CATEGORIES)}")
    return str(value)


def check_purpose(value: object, where: str = "purpose") -> Purpose:
    """The value as a Purpose (HL7 v3 PurposeOfUse code medspace uses); ConsentError otherwise."""
    try:
        return Purpose(str(value))
    except ValueError:
        raise ConsentError(f"{where}: not a purpose of use medspace knows") from None


def row_categories(table: str, l1: str | None = None) -> tuple[str, ...]:
    """The categories a row needs consent for: its table's, and its L1 category if it has one."""
    base = TABLE_CATEGORY.get(table)
    if base is None:
        raise ConsentError(f"table: unknown table {table!r}")
    if l1 is None or l1 == base:
        return (base,)
    return (base, check_category(l1, "l1 category"))


def _instant(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConsentError("time: a naive datetime; give a timezone")
    return moment.astimezone(UTC)


def _day_start(d: date) -> datetime:
    return datetime.combine(d, time.min, UTC)


def _day_end(d: date) -> datetime:
    return datetime.combine(d, time.max, UTC)


@dataclass(frozen=True)
class Period:
    """A FHIR Period: inclusive at both ends; a date covers its whole day (in UTC); None is open."""

    start: Moment | None = None
    end: Moment | None = None
    # The covered instants in UTC, computed once: decisions compare against them for every patient.
    lo: datetime | None = field(init=False, compare=False, repr=False)
    hi: datetime | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        for m in (self.start, self.end):
            if m is not None and not isinstance(m, date):
                raise ConsentError("period: start and end are dates or datetimes")
        s, e = self.start, self.end
        lo = None if s is None else _instant(s) if isinstance(s, datetime) else _day_start(s)
        hi = None if e is None else _instant(e) if isinstance(e, datetime) else _day_end(e)
        if lo is not None and hi is not None and lo > hi:
            raise ConsentError("period: start after end")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    def contains(self, at: Moment) -> bool:
        """Whether an instant (or the start of a day) lies in the period."""
        t = _instant(at) if isinstance(at, datetime) else _day_start(at)
        lo, hi = self.lo, self.hi
        return (lo is None or lo <= t) and (hi is None or t <= hi)


@dataclass(frozen=True)
class Actor:
    """Consent.provision.actor: a participant (by identifier) in a v3 ParticipationType role (IRCP: recipient)."""

    participant: str
    role: str = "IRCP"

    def __post_init__(self) -> None:
        check_participant(self.participant, "actor")
        if self.role not in ROLES:
            raise ConsentError(f"actor.role: not a supported ParticipationType code; known: {', '.join(sorted(ROLES))}")


@dataclass(frozen=True)
class Rule:
    """One provision: permit or deny, restricted by purposes, categories, actors and period (empty: any);
    `data_period` limits which records (by their date) it covers; `exceptions` are the nested provisions."""

    type: ProvisionType
    purposes: frozenset[Purpose] = frozenset()
    categories: frozenset[str] = frozenset()
    period: Period | None = None
    data_period: Period | None = None
    actors: tuple[Actor, ...] = ()
    exceptions: tuple[Rule, ...] = field(default=())
    _hash: int = field(init=False, compare=False, repr=False, default=0)

    def __post_init__(self) -> None:
        if self.type not in ("permit", "deny"):
            raise ConsentError("provision.type: must be permit or deny")
        object.__setattr__(self, "purposes", frozenset(check_purpose(p) for p in self.purposes))
        object.__setattr__(self, "categories", frozenset(check_category(c) for c in self.categories))
        object.__setattr__(self, "actors", tuple(self.actors))
        object.__setattr__(self, "exceptions", tuple(self.exceptions))
        if self.size() > MAX_PROVISIONS or self.depth() > MAX_DEPTH:
            raise ConsentError(f"provision: more than {MAX_PROVISIONS} provisions or nested deeper than {MAX_DEPTH}")
        object.__setattr__(self, "_hash", hash((self.type, self.purposes, self.categories, self.period,
                                                self.data_period, self.actors, self.exceptions)))

    def __hash__(self) -> int:
        # Computed once: registries intern equal trees and filters memoise decisions per tree.
        return self._hash

    def size(self) -> int:
        """The number of provisions in this tree."""
        return 1 + sum(r.size() for r in self.exceptions)

    def depth(self) -> int:
        """The nesting depth of this tree (1 for a lone provision)."""
        return 1 + max((r.depth() for r in self.exceptions), default=0)

    def walk(self) -> Iterable[Rule]:
        """Every provision of the tree, this one first."""
        yield self
        for r in self.exceptions:
            yield from r.walk()


@dataclass(frozen=True)
class ConsentRecord:
    """A typed, read-only view of one version of a patient's consent at one hospital."""

    id: str | None
    pseudonym: str
    hospital: str
    version: int
    status: ConsentStatus
    scope: Scope
    provision: Rule
    date_time: datetime | None = None
    last_updated: datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        """(pseudonym, hospital): the versions of one consent share it."""
        return (self.pseudonym, self.hospital)

    @property
    def in_force(self) -> bool:
        """Whether this version can be the one decisions read: active, or inactive (revoked)."""
        return self.status in (ConsentStatus.ACTIVE, ConsentStatus.INACTIVE)


# --- building ------------------------------------------------------------------------------------------------------


def _fhir_moment(m: Moment) -> str:
    if isinstance(m, datetime):
        return _instant(m).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return m.isoformat()


def _fhir_period(p: Period) -> dict[str, str]:
    out: dict[str, str] = {}
    if p.start is not None:
        out["start"] = _fhir_moment(p.start)
    if p.end is not None:
        out["end"] = _fhir_moment(p.end)
    return out


def _participant_ref(participant: str) -> dict[str, Any]:
    return {"identifier": {"system": PARTICIPANT_SYSTEM, "value": participant}}


def _provision(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"type": rule.type}
    if rule.period is not None:
        out["period"] = _fhir_period(rule.period)
    if rule.actors:
        out["actor"] = [{"role": {"coding": [{"system": PARTICIPATION_TYPE, "code": a.role}]},
                         "reference": _participant_ref(a.participant)} for a in rule.actors]
    if rule.categories and all(CATEGORY_LEVEL[c] == Level.L1 for c in rule.categories):
        out["securityLabel"] = [{"system": ACT_CODE, "code": code}
                                for c in sorted(rule.categories) for code in SECURITY_LABELS[c]]
    if rule.purposes:
        out["purpose"] = [{"system": ACT_REASON, "code": p.value} for p in sorted(rule.purposes)]
    if rule.categories:
        out["class"] = [{"system": CATEGORY_SYSTEM, "code": c} for c in sorted(rule.categories)]
    if rule.data_period is not None:
        out["dataPeriod"] = _fhir_period(rule.data_period)
    if rule.exceptions:
        out["provision"] = [_provision(r) for r in rule.exceptions]
    return out


def _policy_rule(root: Rule) -> str:
    if root.type == "permit":
        return "OPTINR" if any(r.type == "deny" for r in root.walk()) else "OPTIN"
    return "OPTOUTE" if any(r.type == "permit" for r in root.walk()) else "OPTOUT"


def _convenience_rule(permit_purposes: Iterable[Purpose | str], deny_purposes: Iterable[Purpose | str],
                      categories: Iterable[str], deny_categories: Iterable[str], period: Period | None,
                      data_period: Period | None, actors: Iterable[Actor]) -> Rule:
    permit, deny = frozenset(map(check_purpose, permit_purposes)), frozenset(map(check_purpose, deny_purposes))
    cats, deny_cats = frozenset(categories), frozenset(deny_categories)
    if permit:
        exceptions = []
        if deny_cats:
            exceptions.append(Rule("deny", categories=deny_cats))
        if deny:
            exceptions.append(Rule("deny", purposes=deny))
        return Rule("permit", permit, cats, period, data_period, tuple(actors), tuple(exceptions))
    if cats:
        raise ConsentError("categories: the categories of a permit need permit_purposes (use deny_categories)")
    return Rule("deny", deny, deny_cats, period, data_period, tuple(actors))


def build_consent(pseudonym: str, hospital: str, provision: Rule | None = None, *,
                  permit_purposes: Iterable[Purpose | str] = (), deny_purposes: Iterable[Purpose | str] = (),
                  categories: Iterable[str] = (), deny_categories: Iterable[str] = (),
                  period: Period | None = None, data_period: Period | None = None, actors: Iterable[Actor] = (),
                  scope: Scope | str = Scope.RESEARCH, status: ConsentStatus | str = ConsentStatus.ACTIVE,
                  version: int | None = 1, now: datetime | None = None,
                  consent_id: str | None = None) -> dict[str, Any]:
    """A validated FHIR R4 Consent for a patient (by linkage pseudonym) at a hospital.

    Either give `provision` (a :class:`Rule` tree) or the shorthand: with `permit_purposes`, a permit for those
    purposes on `categories` (empty: all) with deny exceptions for `deny_categories` and `deny_purposes`; without,
    a deny of `deny_purposes` on `deny_categories` (both empty: deny everything). `version=None` leaves
    meta.versionId out, for :meth:`ConsentRegistry.put` to give the next one."""
    check_pseudonym(pseudonym)
    check_participant(hospital)
    if provision is None:
        provision = _convenience_rule(permit_purposes, deny_purposes, categories, deny_categories, period,
                                      data_period, actors)
    elif any((permit_purposes, deny_purposes, categories, deny_categories, period, data_period, actors)):
        raise ConsentError("provision: give either a provision or the shorthand arguments, not both")
    try:
        scope, status = Scope(scope), ConsentStatus(status)
    except ValueError:
        raise ConsentError("scope/status: not a consentscope or consent-state code medspace uses") from None
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ConsentError("meta.versionId: a version is a positive integer")
    stamp = _fhir_moment(now if now is not None else datetime.now(UTC))
    resource: dict[str, Any] = {"resourceType": "Consent"}
    if consent_id is not None:
        resource["id"] = consent_id
    resource.update({
        "meta": {"lastUpdated": stamp} if version is None else {"versionId": str(version), "lastUpdated": stamp},
        "status": status.value,
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": scope.value, "display": _SCOPE_DISPLAY[scope]}]},
        "category": [{"coding": [dict(CONSENT_CATEGORY)]}],
        "patient": {"identifier": {"system": LINKAGE_SYSTEM, "value": pseudonym}},
        "dateTime": stamp,
        "organization": [_participant_ref(hospital)],
        "policyRule": {"coding": [{"system": ACT_CODE, "code": _policy_rule(provision)}]},
        "provision": _provision(provision),
    })
    # Every resource built is validated like one received (without a version: as a first version would be).
    parse_consent(resource if version is not None else {**resource, "meta": {"versionId": "1", "lastUpdated": stamp}})
    return resource


# --- validating and parsing ----------------------------------------------------------------------------------------

_MODEL: Any = None
_ELEMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _loc(loc: Iterable[Any]) -> str:
    out = "Consent"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _ELEMENT_NAME.fullmatch(part):
            out += "." + ("class" if part == "class_fhir" else part)
        else:
            out += ".<element>"
    return out


def validate_model(resource: Mapping[str, Any]) -> None:
    """Validate against the fhir.resources R4B Consent model; ConsentError naming the first failing elements."""
    global _MODEL
    from pydantic import ValidationError  # pydantic comes with fhir.resources; loaded on first use

    if _MODEL is None:
        from fhir.resources.R4B.consent import Consent

        _MODEL = Consent
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Consent":
        raise ConsentError("Consent.resourceType: not a Consent resource")
    try:
        _MODEL.model_validate(dict(resource))
    except ValidationError as e:
        # Types and locations only: an error's input (or its message) could quote the pseudonym.
        errors = e.errors(include_url=False, include_context=False, include_input=False)
        shown = "; ".join(f"{_loc(err['loc'])}: {err['type']}" for err in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ConsentError(f"fails the FHIR R4 Consent model: {shown}{more}") from None
    except Exception as e:
        raise ConsentError(f"fails the FHIR R4 Consent model ({type(e).__name__})") from None


def _get(obj: Mapping[str, Any], key: str, kind: type, where: str, *, required: bool = False) -> Any:
    value = obj.get(key)
    if value is None:
        if required:
            raise ConsentError(f"{where}.{key}: required by medspace")
        return None
    if not isinstance(value, kind):
        raise ConsentError(f"{where}.{key}: unexpected structure")
    return value


def _moment(text: str, where: str, *, end: bool) -> Moment:
    if "T" not in text:
        m = _DATE.fullmatch(text)
        if not m:
            raise ConsentError(f"{where}: not a FHIR dateTime")
        y, mo, d = int(m[1]), int(m[2] or (12 if end else 1)), m[3]
        try:
            if d is not None:
                return date(y, mo, int(d))
            if end:  # a partial end date covers its whole month or year
                return (date(y + (mo == 12), mo % 12 + 1, 1) - timedelta(days=1))
            return date(y, mo, 1)
        except ValueError:
            raise ConsentError(f"{where}: not a calendar date") from None
    try:
        value = datetime.fromisoformat(_FRACTION.sub(r"\1", text))
    except ValueError:
        raise ConsentError(f"{where}: not a FHIR dateTime") from None
    if value.tzinfo is None:
        raise ConsentError(f"{where}: a dateTime with a time needs a timezone")
    return value


def _period(obj: Mapping[str, Any] | None, where: str) -> Period | None:
    if obj is None:
        return None
    start, end = obj.get("start"), obj.get("end")
    if set(obj) - {"start", "end", "id", "extension"}:
        raise ConsentError(f"{where}: unexpected element")
    return Period(None if start is None else _moment(start, f"{where}.start", end=False),
                  None if end is None else _moment(end, f"{where}.end", end=True))


def _participant_of(ref: Mapping[str, Any], where: str) -> str:
    if ref.get("reference") is not None:
        raise ConsentError(f"{where}.reference: medspace names participants by identifier only")
    ident = _get(ref, "identifier", Mapping, where, required=True)
    if ident.get("system") != PARTICIPANT_SYSTEM:
        raise ConsentError(f"{where}.identifier.system: must be {PARTICIPANT_SYSTEM}")
    return check_participant(ident.get("value"), f"{where}.identifier.value")


_UNSUPPORTED = ("action", "code", "data", "modifierExtension")


def _parse_provision(p: Mapping[str, Any], where: str, depth: int) -> Rule:
    for key in _UNSUPPORTED:
        if p.get(key):
            raise ConsentError(f"{where}.{key}: a criterion medspace cannot enforce")
    kind = p.get("type")
    if kind not in ("permit", "deny"):
        raise ConsentError(f"{where}.type: every medspace provision is permit or deny")
    purposes = []
    for i, c in enumerate(_get(p, "purpose", list, where) or ()):
        if c.get("system") != ACT_REASON:
            raise ConsentError(f"{where}.purpose[{i}].system: must be {ACT_REASON}")
        purposes.append(check_purpose(c.get("code"), f"{where}.purpose[{i}].code"))
    classes = set()
    for i, c in enumerate(_get(p, "class", list, where) or ()):
        if c.get("system") != CATEGORY_SYSTEM:
            raise ConsentError(f"{where}.class[{i}].system: must be {CATEGORY_SYSTEM}")
        classes.add(check_category(c.get("code"), f"{where}.class[{i}].code"))
    labels = set()
    for i, c in enumerate(_get(p, "securityLabel", list, where) or ()):
        cat = _LABEL_CATEGORY.get(c.get("code")) if c.get("system") == ACT_CODE else None
        if cat is None:
            raise ConsentError(f"{where}.securityLabel[{i}]: not an ActCode sensitivity label medspace enforces")
        labels.add(cat)
    categories = classes & labels if classes and labels else classes | labels
    if classes and labels and not categories:
        raise ConsentError(f"{where}: class and securityLabel together select no data category")
    actors = []
    for i, a in enumerate(_get(p, "actor", list, where) or ()):
        codings = (a.get("role") or {}).get("coding") or ()
        roles = [c.get("code") for c in codings if c.get("system") == PARTICIPATION_TYPE]
        if len(roles) != 1:
            raise ConsentError(f"{where}.actor[{i}].role: one v3 ParticipationType coding expected")
        try:
            actors.append(Actor(_participant_of(a.get("reference") or {}, f"{where}.actor[{i}].reference"),
                                str(roles[0])))
        except ConsentError as e:
            raise ConsentError(f"{where}.actor[{i}]: {e}") from None
    children = _get(p, "provision", list, where) or ()
    if children and depth >= MAX_DEPTH:
        raise ConsentError(f"{where}.provision: nested deeper than {MAX_DEPTH}")
    exceptions = tuple(_parse_provision(c, f"{where}.provision[{i}]", depth + 1) for i, c in enumerate(children))
    try:
        return Rule(kind, frozenset(purposes), frozenset(categories),
                    _period(_get(p, "period", Mapping, where), f"{where}.period"),
                    _period(_get(p, "dataPeriod", Mapping, where), f"{where}.dataPeriod"),
                    tuple(actors), exceptions)
    except ConsentError as e:
        raise ConsentError(f"{where}: {e}") from None


def parse_consent(resource: Mapping[str, Any], *, validate: bool = True) -> ConsentRecord:
    """The typed view of a FHIR R4 Consent, after validating it (model and medspace's rules); ConsentError names
    the first element that fails."""
    if validate:
        validate_model(resource)
    where = "Consent"
    if resource.get("modifierExtension"):
        raise ConsentError("Consent.modifierExtension: medspace cannot honour modifier extensions")
    if not resource.get("policy") and not resource.get("policyRule"):
        raise ConsentError("Consent: invariant ppc-1 (either a policy or a policyRule) fails")
    rid = resource.get("id")
    if rid is not None and (not isinstance(rid, str) or not _FHIR_ID.fullmatch(rid)):
        raise ConsentError("Consent.id: not a FHIR id")
    meta = _get(resource, "meta", Mapping, where, required=True)
    vid = meta.get("versionId")
    if not isinstance(vid, str) or not vid.isascii() or not vid.isdigit() or int(vid) < 1 or len(vid) > 18:
        raise ConsentError("Consent.meta.versionId: a positive integer expected")
    try:
        status = ConsentStatus(str(resource.get("status")))
    except ValueError:
        raise ConsentError("Consent.status: not a consent-state code") from None
    codings = (resource.get("scope") or {}).get("coding") or ()
    scopes = [c.get("code") for c in codings if c.get("system") == CONSENT_SCOPE]
    if len(scopes) != 1 or scopes[0] not in Scope._value2member_map_:
        raise ConsentError("Consent.scope: one consentscope coding (research, patient-privacy, treatment) expected")
    patient = _get(resource, "patient", Mapping, where, required=True)
    if patient.get("reference") is not None:
        raise ConsentError("Consent.patient.reference: medspace names the patient by linkage pseudonym only")
    ident = _get(patient, "identifier", Mapping, "Consent.patient", required=True)
    if ident.get("system") != LINKAGE_SYSTEM:
        raise ConsentError(f"Consent.patient.identifier.system: must be {LINKAGE_SYSTEM}")
    pseudonym = check_pseudonym(ident.get("value"), "Consent.patient.identifier.value")
    orgs = _get(resource, "organization", list, where, required=True)
    if len(orgs) != 1:
        raise ConsentError("Consent.organization: exactly one hospital (the custodian) expected")
    hospital = _participant_of(orgs[0], "Consent.organization[0]")
    root = _get(resource, "provision", Mapping, where, required=True)
    provision = _parse_provision(root, "Consent.provision", 1)
    dt, lu = resource.get("dateTime"), meta.get("lastUpdated")
    return ConsentRecord(
        id=rid, pseudonym=pseudonym, hospital=hospital, version=int(vid), status=status, scope=Scope(scopes[0]),
        provision=provision,
        date_time=None if dt is None else _as_datetime(_moment(dt, "Consent.dateTime", end=False)),
        last_updated=None if lu is None else _as_datetime(_moment(lu, "Consent.meta.lastUpdated", end=False)),
    )


def _as_datetime(m: Moment) -> datetime:
    return m if isinstance(m, datetime) else _day_start(m)
