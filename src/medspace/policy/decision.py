"""The decision engine: one request, the compliance packs enabled for its hospital, one deny-overrides decision.

A :class:`Request` says who (role, own hospital) wants to do what (operation on catalogue fields, L1 categories) at
which hospital, for which purpose (HL7 PurposeOfUse), under which contract, with what consent (as the caller found
it: per L1 category and for L2 data, ``explicit``, ``default`` or ``none``), how (de-identified, aggregates only),
and where the results go (node and destination regions, this year's cross-border volumes, the transfer safeguards
in place). It is checked when it is made (:class:`RequestError`).

:func:`decide` evaluates every rule of the packs ``roles`` and ``sensitivity`` (always) and of the packs the request
enables for its hospital (``hipaa``, ``gdpr``, ``pipl``). A rule first *applies* or not: its scope (``purposes``,
``roles``) must match, then its check (a registered predicate, :data:`PREDICATES`) says whether it applies and, if
so, whether its condition holds. A ``require`` rule is satisfied when its condition holds; a ``deny`` rule is
satisfied when it does not. The combining algorithm is deny-overrides (XACML 3.0 §C.2 in spirit): the request is
allowed only if at least one rule applied and every applied rule is satisfied. Every applied rule is listed in the
decision with its citation, so a refusal names the rule(s) that decided it.

Predicates are generic (consent at a level, row-level access, contract present, fields within the contract,
transfer mechanism, ...) and take their figures from the pack (thresholds, region lists, accepted consent), so the
law is data and this module holds no article numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from medspace.ledger.entry import Purpose, Role
from medspace.model.catalogue import PHI, TABLES, Field, Level
from medspace.policy.contract import (
    ID_FIELDS,
    L1_CATEGORIES,
    OPERATIONS,
    Contract,
    OperationKind,
    TaskRequest,
    check_categories,
    check_fields,
    check_region,
)
from medspace.policy.errors import ContractError, PackError, RequestError

if TYPE_CHECKING:
    from medspace.policy.packs import Pack, Rule

CONSENT_VALUES = ("explicit", "default", "none")
CONSENT_KEYS: tuple[str, ...] = (*L1_CATEGORIES, "L2")  # one consent per L1 category, one for L2 data
AUDIT_OPERATIONS = ("audit.read", "audit.verify")  # read the audit log; verify checkpoints and proofs
MANDATORY_PACKS = ("roles", "sensitivity")
_NAME = re.compile(r"[a-z][a-z0-9-]{0,40}")
_ACTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}")


class Effect(StrEnum):
    """What a rule does when it applies."""

    DENY = "deny"  # its condition describes a forbidden situation: satisfied when the condition does not hold
    REQUIRE = "require"  # its condition must hold: satisfied when it does


@dataclass(frozen=True)
class RuleOutcome:
    """One applied rule: which, from which pack, citing what, and whether the request satisfies it, and why."""

    rule_id: str
    pack: str
    citation: str
    effect: str
    satisfied: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The outcome as plain JSON values."""
        return {"rule_id": self.rule_id, "pack": self.pack, "citation": self.citation, "effect": self.effect,
                "satisfied": self.satisfied, "reason": self.reason}


@dataclass(frozen=True)
class Decision:
    """Allowed or not, with every rule that applied (a refusal's unsatisfied ones name why)."""

    allowed: bool
    outcomes: tuple[RuleOutcome, ...]

    @property
    def refusals(self) -> tuple[RuleOutcome, ...]:
        """The applied rules the request does not satisfy."""
        return tuple(o for o in self.outcomes if not o.satisfied)

    @property
    def reason(self) -> str:
        """One line: the refusing rules with their citations and reasons, or that every applied rule is met."""
        if self.allowed:
            return f"allowed: {len(self.outcomes)} applied rules satisfied"
        if not self.outcomes:
            return "refused: no rule applies to this request"
        return "; ".join(f"{o.rule_id} [{o.citation}]: {o.reason}" for o in self.refusals)

    def to_dict(self) -> dict[str, Any]:
        """The decision as plain JSON values."""
        return {"allowed": self.allowed, "outcomes": [o.to_dict() for o in self.outcomes]}


def _fail(name: str, what: str) -> RequestError:
    return RequestError(f"{name}: {what}")


@dataclass(frozen=True, kw_only=True)
class Request:
    """One request to decide: actor, target, purpose, operation, data, contract, consent, method and destination."""

    actor: str
    role: Role
    actor_hospital: str | None  # the hospital the actor belongs to, None for researchers, patients, regulators
    hospital: str  # the hospital whose data the request is about
    purpose: Purpose
    operation: str  # a registered operation (contract.OPERATIONS) or an audit operation
    at: datetime
    node_region: str  # ISO 3166-1 alpha-2 of the hospital's node
    destination_region: str  # ISO 3166-1 alpha-2 of where results go
    fields: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # L1 categories whose rows the request reads
    contract: Contract | None = None
    consent: Mapping[str, str] = field(default_factory=dict, hash=False)  # key in CONSENT_KEYS -> CONSENT_VALUES
    de_identified: bool = True  # computed on the hospital's de-identified view
    aggregate_only: bool = True  # releases protected aggregates (or models) only
    # Cross-border volumes since 1 January, this transfer included: individuals whose (non-sensitive) personal
    # information, and individuals whose sensitive personal information, went abroad.
    persons_this_year: int = 0
    sensitive_persons_this_year: int = 0
    packs: tuple[str, ...] = ()  # compliance packs enabled for the hospital, e.g. ("sensitivity", "gdpr")
    safeguards: frozenset[str] = frozenset()  # declared approvals and mechanisms, e.g. "irb-approval"
    ciio: bool = False  # the hospital is a critical information infrastructure operator (PIPL Art. 40)
    reason: str = ""  # the stated reason, needed for break-the-glass

    def __post_init__(self) -> None:
        s = self._set
        if not isinstance(self.actor, str) or not _ACTOR.fullmatch(self.actor):
            raise _fail("actor", "must be 1-128 letters, digits and . _ : @ / + -")
        s("role", _enum("role", Role, self.role))
        if self.actor_hospital is not None and (not isinstance(self.actor_hospital, str)
                                                or not _ACTOR.fullmatch(self.actor_hospital)):
            raise _fail("actor_hospital", "must be a participant id or None")
        if not isinstance(self.hospital, str) or not _ACTOR.fullmatch(self.hospital):
            raise _fail("hospital", "must be a participant id")
        s("purpose", _enum("purpose", Purpose, self.purpose))
        if self.operation not in OPERATIONS and self.operation not in AUDIT_OPERATIONS:
            raise _fail("operation", f"{self.operation!r} is neither a registered operation nor an audit operation")
        try:
            s("fields", check_fields("fields", self.fields, direct_ok=True))
            s("categories", check_categories("categories", self.categories))
            check_region("node_region", self.node_region)
            check_region("destination_region", self.destination_region)
        except ContractError as e:
            raise RequestError(str(e)) from None
        if self.operation in AUDIT_OPERATIONS and (self.fields or self.categories):
            raise _fail("fields", "an audit operation reads the log, not clinical fields")
        if self.contract is not None and not isinstance(self.contract, Contract):
            raise _fail("contract", "must be a Contract or None")
        if not isinstance(self.at, datetime) or self.at.tzinfo is None:
            raise _fail("at", "must be a timezone-aware datetime")
        s("at", self.at.astimezone(UTC))
        if not isinstance(self.consent, Mapping):
            raise _fail("consent", "must map a category to a consent status")
        for k, v in self.consent.items():
            if k not in CONSENT_KEYS:
                raise _fail("consent", f"{k!r} is not a consent key ({', '.join(CONSENT_KEYS)})")
            if v not in CONSENT_VALUES:
                raise _fail(f"consent.{k}", f"must be one of {', '.join(CONSENT_VALUES)}")
        s("consent", MappingProxyType(dict(self.consent)))
        for name in ("de_identified", "aggregate_only", "ciio"):
            if not isinstance(getattr(self, name), bool):
                raise _fail(name, "must be true or false")
        op = OPERATIONS.get(self.operation)
        if op is not None and op.kind is OperationKind.RECORD and self.aggregate_only:
            raise _fail("aggregate_only", f"operation {self.operation} releases a record, not an aggregate")
        for name in ("persons_this_year", "sensitive_persons_this_year"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise _fail(name, "must be a whole number >= 0")
        if isinstance(self.packs, str) or not all(isinstance(p, str) and _NAME.fullmatch(p) for p in self.packs):
            raise _fail("packs", "must be a list of pack names")
        s("packs", tuple(self.packs))
        if isinstance(self.safeguards, str) or not all(isinstance(g, str) and _NAME.fullmatch(g)
                                                       for g in self.safeguards):
            raise _fail("safeguards", "must be a set of lower-case names (e.g. irb-approval)")
        s("safeguards", frozenset(self.safeguards))
        if not isinstance(self.reason, str) or len(self.reason) > 500 or not self.reason.isprintable():
            raise _fail("reason", "must be one line of at most 500 printable characters")

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    @property
    def data_operation(self) -> bool:
        """Whether the request touches clinical data (anything but reading or verifying the audit log)."""
        return self.operation not in AUDIT_OPERATIONS

    @property
    def cross_border(self) -> bool:
        """Whether results leave the node's country."""
        return self.destination_region != self.node_region

    def consent_keys(self, levels: frozenset[Level]) -> tuple[str, ...]:
        """The consent keys the request touches at the given levels: its L1 categories, and L2 for L2 fields."""
        keys: list[str] = []
        if Level.L1 in levels:
            cats = set(self.categories)
            if any(f.startswith("genetic_variant.") for f in self.fields):
                cats.add("genetics")
            keys += sorted(cats)
        if Level.L2 in levels and any(_level(f) is Level.L2 for f in self.fields):
            keys.append("L2")
        return tuple(keys)

    def touches(self, levels: frozenset[Level]) -> bool:
        """Whether the request reads data at any of the levels (L1 through its categories or L1 fields)."""
        if Level.L1 in levels and self.categories:
            return True
        return any(_level(f) in levels for f in self.fields)

    def task(self) -> TaskRequest:
        """The task this request runs under its contract (for :meth:`Contract.permits`)."""
        assert self.contract is not None
        return TaskRequest(contract=self.contract.uid, requester=self.actor, purpose=self.purpose,
                           operation=self.operation, fields=self.fields, hospital=self.hospital,
                           destination=self.destination_region, categories=self.categories)


def _field(name: str) -> Field:
    table, _, col = name.partition(".")
    return TABLES[table][col]


def _level(name: str) -> Level:
    return _field(name).level


def _enum(name: str, cls: type[StrEnum], value: object) -> Any:
    allowed = ", ".join(m.value for m in cls.__members__.values())
    if not isinstance(value, str) or value not in cls._value2member_map_:
        raise _fail(name, f"{value!r} is not one of {allowed}")
    return cls(value)


# --- predicates ----------------------------------------------------------------------------------------------------

Verdict = tuple[bool, str] | None  # None: the rule does not apply; else (condition holds, why)
PredicateFn = Callable[[Request, Mapping[str, Any]], Verdict]


@dataclass(frozen=True)
class Param:
    """One parameter of a predicate: its kind (what the pack must give) and its default (None: required)."""

    kind: str
    default: Any = None


@dataclass(frozen=True)
class Predicate:
    """A registered check a pack rule can name, with the parameters it takes."""

    name: str
    fn: PredicateFn
    params: Mapping[str, Param]
    doc: str


PREDICATES: dict[str, Predicate] = {}


def predicate(name: str, **params: Param) -> Callable[[PredicateFn], PredicateFn]:
    """Register a predicate under `name`, taking `params` (checked when a pack is loaded)."""

    def register(fn: PredicateFn) -> PredicateFn:
        PREDICATES[name] = Predicate(name, fn, MappingProxyType(params), (fn.__doc__ or "").strip())
        return fn

    return register


def _strs(kind: str, value: object, allowed: Collection[str] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ValueError(f"must be a list of {kind}")
    if allowed is not None:
        for x in value:
            if x not in allowed:
                raise ValueError(f"{x!r} is not one of {', '.join(sorted(allowed))}")
    return tuple(value)


_PURPOSES = frozenset(p.value for p in Purpose)
_ROLES = frozenset(r.value for r in Role)
_LEVELS = frozenset(lv.value for lv in Level)


def check_param(kind: str, value: object) -> Any:
    """A pack's parameter value checked against its kind and normalised; ValueError says what is wrong."""
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("must be a whole number >= 0")
        return value
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise ValueError("must be a non-empty string")
        return value
    if kind == "strs":
        return frozenset(_strs("strings", value))
    if kind == "purposes":
        return frozenset(Purpose(p) for p in _strs("PurposeOfUse codes", value, _PURPOSES))
    if kind == "roles":
        return frozenset(Role(r) for r in _strs("roles", value, _ROLES))
    if kind == "levels":
        return frozenset(Level(lv) for lv in _strs("levels", value, _LEVELS))
    if kind == "consent":
        return frozenset(_strs("consent statuses", value, CONSENT_VALUES))
    if kind == "regions":
        out = _strs("ISO 3166-1 alpha-2 codes", value)
        for r in out:
            try:
                check_region("region", r)
            except ContractError:
                raise ValueError(f"{r!r} is not an ISO 3166-1 alpha-2 code") from None
        return frozenset(out)
    if kind == "tier":
        if value not in ("exempt", "contract", "assessment"):
            raise ValueError("must be exempt, contract or assessment")
        return value
    if kind == "role_purposes":
        if not isinstance(value, dict):
            raise ValueError("must be a table of role = [purposes]")
        out_map: dict[Role, frozenset[Purpose]] = {}
        for role, purposes in value.items():
            if role not in _ROLES:
                raise ValueError(f"{role!r} is not a role ({', '.join(sorted(_ROLES))})")
            out_map[Role(role)] = frozenset(Purpose(p) for p in _strs("PurposeOfUse codes", purposes, _PURPOSES))
        return MappingProxyType(out_map)
    raise ValueError(f"unknown parameter kind {kind!r}")  # a programming error in a registration


def _names(xs: Any) -> str:
    return ", ".join(sorted(str(x) for x in xs))


_HEALTH_DATA = frozenset({Level.L1, Level.L2})  # the levels of special-category (GDPR) / sensitive (PIPL) data


def _contract_of(r: Request) -> Contract | None:
    # The contract the contract rules check: None (they do not apply) without one or for an audit operation.
    return r.contract if r.data_operation else None


def _lacking(r: Request, keys: Sequence[str], accepted: Collection[str]) -> list[str]:
    # The consent keys whose consent (as the caller found it; none if not given) is not among `accepted`.
    return [k for k in keys if r.consent.get(k, "none") not in accepted]


def _declared(r: Request, p: Mapping[str, Any]) -> list[str]:
    # The safeguards of the rule's ``any`` that the request declares, sorted so reasons read the same every time.
    return sorted(p["any"] & r.safeguards)


@predicate("role_purpose", allowed=Param("role_purposes"))
def _role_purpose(r: Request, p: Mapping[str, Any]) -> Verdict:
    """The actor's role may act with the request's purpose (``allowed``: role -> purposes)."""
    allowed = p["allowed"].get(r.role, frozenset())
    if r.purpose in allowed:
        return True, f"role {r.role.value} may act for {r.purpose.value}"
    return False, f"role {r.role.value} may not act for {r.purpose.value} (allowed: {_names(allowed) or 'none'})"


@predicate("own_hospital")
def _own_hospital(r: Request, p: Mapping[str, Any]) -> Verdict:
    """The actor belongs to the hospital the request is about."""
    if r.actor_hospital == r.hospital:
        return True, f"acts for own hospital {r.hospital}"
    return False, f"{r.role.value} of {r.actor_hospital or 'no hospital'} acts only for their own hospital, " \
                  f"not {r.hospital}"


@predicate("contract_present", levels=Param("levels", frozenset()))
def _contract_present(r: Request, p: Mapping[str, Any]) -> Verdict:
    """A data operation (at ``levels``, if given) runs under a contract."""
    if not r.data_operation or (p["levels"] and not r.touches(p["levels"])):
        return None
    if r.contract is not None:
        return True, f"under contract {r.contract.uid}"
    return False, f"{r.purpose.value} use of {r.hospital}'s data needs a contract; the request has none"


@predicate("contract_permits")
def _contract_permits(r: Request, p: Mapping[str, Any]) -> Verdict:
    """The request's contract permits it (purpose, parties, operation, fields, period, region, status)."""
    contract = _contract_of(r)
    if contract is None:
        return None
    if r.operation not in OPERATIONS:
        return False, f"operation {r.operation} is not one a contract can permit"
    d = contract.permits(r.task(), r.at)
    if d.allowed:
        return True, f"contract {contract.uid} permits the task"
    return False, "; ".join(o.reason for o in d.refusals)


@predicate("reason_given")
def _reason_given(r: Request, p: Mapping[str, Any]) -> Verdict:
    """The actor stated a reason."""
    if r.reason.strip():
        return True, "a reason is stated"
    return False, f"{r.purpose.value} needs a stated reason"


@predicate("operation_in", operations=Param("strs"))
def _operation_in(r: Request, p: Mapping[str, Any]) -> Verdict:
    """The operation is one of ``operations``."""
    if r.operation in p["operations"]:
        return True, f"operation {r.operation} allowed"
    return False, f"{r.role.value} may only {_names(p['operations'])}, not {r.operation}"


@predicate("operation_restricted", operations=Param("strs"), allowed_roles=Param("roles"))
def _operation_restricted(r: Request, p: Mapping[str, Any]) -> Verdict:
    """``operations`` are for ``allowed_roles`` only."""
    if r.operation not in p["operations"]:
        return None
    if r.role in p["allowed_roles"]:
        return True, f"{r.role.value} may {r.operation}"
    return False, f"{r.operation} is for {_names(p['allowed_roles'])} only, not {r.role.value}"


@predicate("consent", levels=Param("levels"), accepted=Param("consent"), unless_aggregate=Param("bool", False),
           cross_border_only=Param("bool", False))
def _consent(r: Request, p: Mapping[str, Any]) -> Verdict:
    """Every consent key the request touches at ``levels`` has a consent in ``accepted``."""
    if not r.data_operation or (p["unless_aggregate"] and r.aggregate_only):
        return None
    if p["cross_border_only"] and not r.cross_border:
        return None
    keys = r.consent_keys(p["levels"])
    if not keys:
        return None
    missing = _lacking(r, keys, p["accepted"])
    if not missing:
        return True, "consent " + ", ".join(f"{k}: {r.consent[k]}" for k in keys)
    have = ", ".join(f"{k}: {r.consent.get(k, 'none')}" for k in missing)
    return False, f"needs {' or '.join(sorted(p['accepted']))} consent for {r.purpose.value}; has {have}"


@predicate("row_level", levels=Param("levels"))
def _row_level(r: Request, p: Mapping[str, Any]) -> Verdict:
    """The request releases rows (not aggregates) of data at ``levels``."""
    if not r.data_operation or not r.touches(p["levels"]):
        return None
    if r.aggregate_only:
        return False, f"{_names(p['levels'])} data only as protected aggregates"
    return True, f"operation {r.operation} releases {_names(p['levels'])} data row by row"


@predicate("direct_identifiers")
def _direct_identifiers(r: Request, p: Mapping[str, Any]) -> Verdict:
    """The request asks for a direct identifier (a name, an ID number, a phone, an address; record ids aside)."""
    if not r.data_operation or not r.fields:
        return None
    direct = [f for f in r.fields if f.partition(".")[2] not in ID_FIELDS and PHI.DIRECT in _field(f).phi]
    if direct:
        return True, f"asks for direct identifier{'s' if len(direct) > 1 else ''} {', '.join(direct)}"
    return False, "no direct identifiers"


@predicate("de_identified")
def _de_identified(r: Request, p: Mapping[str, Any]) -> Verdict:
    """The request computes on the hospital's de-identified view."""
    if not r.data_operation:
        return None
    if r.de_identified:
        return True, "computed on the de-identified view"
    return False, "must compute on the de-identified view"


@predicate("fields_within_contract")
def _fields_within_contract(r: Request, p: Mapping[str, Any]) -> Verdict:
    """The request reads only fields and L1 categories its contract names."""
    contract = _contract_of(r)
    if contract is None:
        return None
    extra = [f for f in r.fields if f not in contract.fields]
    extra += [c for c in r.categories if c not in contract.categories]
    if not extra:
        return True, f"fields within contract {contract.uid}"
    return False, f"reads {', '.join(extra)} beyond contract {contract.uid}"


@predicate("purpose_matches_contract")
def _purpose_matches_contract(r: Request, p: Mapping[str, Any]) -> Verdict:
    """The request's purpose is its contract's."""
    contract = _contract_of(r)
    if contract is None:
        return None
    if r.purpose is contract.purpose:
        return True, f"purpose {r.purpose.value} as contracted"
    return False, f"contract {contract.uid} was made for {contract.purpose.value}, not {r.purpose.value}"


@predicate("safeguard_any", any=Param("strs"), unless_de_identified=Param("bool", False),
           cross_border_from=Param("regions", frozenset()), ciio_only=Param("bool", False))
def _safeguard_any(r: Request, p: Mapping[str, Any]) -> Verdict:
    """One of the safeguards ``any`` is declared (scoped to exports from ``cross_border_from`` / CIIOs if given)."""
    if not r.data_operation:
        return None
    if p["cross_border_from"] and not (r.cross_border and r.node_region in p["cross_border_from"]):
        return None
    if p["ciio_only"] and not r.ciio:
        return None
    if p["unless_de_identified"] and r.de_identified:
        return True, "de-identified data"
    have = _declared(r, p)
    if have:
        return True, f"{', '.join(have)} declared"
    return False, f"needs one of {_names(p['any'])}; none declared"


@predicate("transfer", home=Param("regions"), adequate=Param("regions", frozenset()), any=Param("strs"))
def _transfer(r: Request, p: Mapping[str, Any]) -> Verdict:
    """Results leaving ``home`` go to an ``adequate`` country or under one of the mechanisms ``any``."""
    if not r.data_operation or r.node_region not in p["home"] or r.destination_region in p["home"]:
        return None
    if r.destination_region in p["adequate"]:
        return True, f"{r.destination_region} has an adequacy decision"
    have = _declared(r, p)
    if have:
        return True, f"transfer to {r.destination_region} under {', '.join(have)}"
    return False, f"transfer to {r.destination_region} needs an adequacy decision or one of {_names(p['any'])}"


def export_tier(r: Request, p: Mapping[str, Any]) -> tuple[str, str]:
    """The mechanism a cross-border transfer needs by its volume (PIPL pack figures), and why."""
    if r.purpose in p["emergency_purposes"]:
        return "exempt", f"{r.purpose.value}: needed to protect life and health in an emergency"
    if r.ciio:
        return "assessment", "the hospital is a critical information infrastructure operator"
    s, n = r.sensitive_persons_this_year, r.persons_this_year
    if s >= p["assessment_sensitive_from"]:
        return "assessment", f"sensitive personal information of {s:,} persons since 1 January " \
                             f"(from {p['assessment_sensitive_from']:,})"
    if n >= p["assessment_persons_from"]:
        return "assessment", f"personal information of {n:,} persons since 1 January " \
                             f"(from {p['assessment_persons_from']:,})"
    if s == 0 and n < p["exempt_persons_below"]:
        return "exempt", f"{n:,} persons, no sensitive personal information, since 1 January " \
                         f"(below {p['exempt_persons_below']:,})"
    return "contract", f"{s:,} persons' sensitive and {n:,} persons' other personal information since 1 January"


@predicate("export_tier", home=Param("regions"), tier=Param("tier"), any=Param("strs", frozenset()),
           exempt_persons_below=Param("int"), assessment_persons_from=Param("int"),
           assessment_sensitive_from=Param("int"), emergency_purposes=Param("purposes", frozenset()))
def _export_tier(r: Request, p: Mapping[str, Any]) -> Verdict:
    """A transfer out of ``home`` whose volume puts it in ``tier`` has one of the mechanisms ``any``."""
    if not r.data_operation or r.node_region not in p["home"] or not r.cross_border:
        return None
    tier, why = export_tier(r, p)
    if tier != p["tier"]:
        return None
    if tier == "exempt":
        return True, f"exempt: {why}"
    have = _declared(r, p)
    if have:
        return True, f"{why}: {', '.join(have)} declared"
    return False, f"{why}: needs {' or '.join(sorted(p['any']))}"


@predicate("special_categories", care_purposes=Param("purposes"), vital_purposes=Param("purposes"),
           public_health_purposes=Param("purposes"), research_purposes=Param("purposes"),
           public_health_law=Param("str"), research_law=Param("str"))
def _special_categories(r: Request, p: Mapping[str, Any]) -> Verdict:
    """Health data is processed under an exception: care, vital interests, public health law, consent or research
    law with safeguards (GDPR Art. 9(2) shaped; the pack gives the purposes and safeguard names)."""
    if not r.data_operation or not r.touches(_HEALTH_DATA):
        return None
    if r.purpose in p["care_purposes"]:
        return True, f"{r.purpose.value}: provision of health care"
    if r.purpose in p["vital_purposes"]:
        return True, f"{r.purpose.value}: vital interests of a patient who cannot consent"
    if r.purpose in p["public_health_purposes"]:
        if p["public_health_law"] in r.safeguards:
            return True, f"{r.purpose.value} under {p['public_health_law']}"
        return False, f"{r.purpose.value} needs {p['public_health_law']} declared"
    if r.purpose in p["research_purposes"]:
        keys = r.consent_keys(_HEALTH_DATA)
        lacking = _lacking(r, keys, ("explicit",))
        if not lacking:
            return True, f"explicit consent for {', '.join(keys)}"
        if p["research_law"] in r.safeguards and r.de_identified:
            return True, f"research under {p['research_law']}, on pseudonymised data"
        return False, f"no explicit consent for {', '.join(lacking)}, and no {p['research_law']} with " \
                      "pseudonymised data"
    return False, f"no exception for special categories covers {r.purpose.value}"


@predicate("lawful_basis", emergency_purposes=Param("purposes"), care_purposes=Param("purposes"),
           consent_purposes=Param("purposes"), accepted=Param("consent"), unless_aggregate=Param("bool", False))
def _lawful_basis(r: Request, p: Mapping[str, Any]) -> Verdict:
    """The processing has a lawful basis: emergency, the care contract, or consent (PIPL Art. 13 shaped)."""
    if not r.data_operation:
        return None
    if r.purpose in p["emergency_purposes"]:
        return True, f"{r.purpose.value}: necessary to protect life and health in an emergency"
    if r.purpose in p["care_purposes"]:
        return True, f"{r.purpose.value}: necessary for the care the patient contracted"
    if r.purpose in p["consent_purposes"]:
        if p["unless_aggregate"] and r.aggregate_only:
            return True, "protected aggregates: anonymised results"
        keys = r.consent_keys(_HEALTH_DATA)
        lacking = _lacking(r, keys, p["accepted"])
        if not lacking:
            return True, f"consent for {', '.join(keys) or 'the data'}"
        return False, f"{r.purpose.value} rests on consent; lacking for {', '.join(lacking)}"
    return False, f"no lawful basis covers {r.purpose.value}"


@predicate("actor_role_in", allowed_roles=Param("roles"))
def _actor_role_in(r: Request, p: Mapping[str, Any]) -> Verdict:
    """The actor has one of ``allowed_roles``."""
    if r.role in p["allowed_roles"]:
        return True, f"{r.role.value} acts"
    return False, f"{r.purpose.value} is for {_names(p['allowed_roles'])}, not {r.role.value}"


# --- the engine ----------------------------------------------------------------------------------------------------


def evaluate(rule: Rule, request: Request) -> RuleOutcome | None:
    """One rule's outcome for a request, or None when the rule does not apply to it."""
    if rule.purposes and request.purpose not in rule.purposes:
        return None
    if rule.roles and request.role not in rule.roles:
        return None
    verdict = PREDICATES[rule.check].fn(request, rule.params)
    if verdict is None:
        return None
    holds, why = verdict
    satisfied = holds if rule.effect is Effect.REQUIRE else not holds
    return RuleOutcome(rule_id=rule.id, pack=rule.pack, citation=rule.citation, effect=rule.effect.value,
                       satisfied=satisfied, reason=why)


def decide(request: Request, packs: Mapping[str, Pack]) -> Decision:
    """Deny-overrides decision over the mandatory packs and those the request enables (module docstring)."""
    outcomes: list[RuleOutcome] = []
    for name in dict.fromkeys((*MANDATORY_PACKS, *request.packs)):
        pack = packs.get(name)
        if pack is None:
            raise PackError(f"pack {name}: enabled for hospital {request.hospital} but not loaded "
                            f"(loaded: {', '.join(sorted(packs)) or 'none'})")
        for rule in pack.rules:
            outcome = evaluate(rule, request)
            if outcome is not None:
                outcomes.append(outcome)
    allowed = bool(outcomes) and all(o.satisfied for o in outcomes)
    return Decision(allowed=allowed, outcomes=tuple(outcomes))
