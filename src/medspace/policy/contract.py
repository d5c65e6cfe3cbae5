"""Data-use applications, stewards' approvals, and contracts as ODRL 2.2 Agreements (a small profile).

An :class:`Application` is what a researcher files (architecture, "A multi-centre study", step 1); each hospital's
steward answers with an :class:`Approval` (approve, restrict or refuse); an approval of one hospital turns the
application into one :class:`Contract` with that hospital (step 2). Every one of them is checked when it is made:
an invalid one raises :class:`ContractError` naming the rule it breaks.

A contract is one ODRL 2.2 ``Agreement`` of the medspace profile (``urn:medspace:odrl:v1``);
:mod:`medspace.policy.odrl` describes the profile, writes it (:meth:`Contract.to_odrl`) and reads it
(:meth:`Contract.from_odrl`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import MISSING, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from medspace.ledger.entry import Purpose
from medspace.model.catalogue import PHI, TABLES
from medspace.model.sensitivity import L1_WORDS
from medspace.policy.errors import ContractError
from medspace.policy.purpose import CLINICAL_PURPOSES, check_compatible, parse_purpose

if TYPE_CHECKING:
    from medspace.policy.decision import Decision

# ISO 3166-1 alpha-2, the 249 officially assigned codes (Debian iso-codes 4.15, identical to tzdata's iso3166.tab).
_REGION_TABLE = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW
BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI
FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN
IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF
PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE
YT ZA ZM ZW
"""
REGIONS = frozenset(_REGION_TABLE.split())
L1_CATEGORIES: tuple[str, ...] = tuple(sorted(L1_WORDS))  # genetics, hiv, psychiatric, sexual_health
MAX_PERIOD = timedelta(days=5 * 365 + 2)  # five years, leap days included
DEFAULT_MIN_CELL_SIZE = 5  # the disclosure-control default (medspace.privacy.disclosure.DisclosureRules.min_cell)
DEFAULT_RETENTION_DAYS = 180
MAX_RETENTION_DAYS = 3650
ID_FIELDS = ("id", "patient_id", "encounter_id")  # record identifiers: pseudonymised in every view, so releasable

# Ids and parties in the formats of the audit log (medspace.ledger.entry), so they can be logged as they are.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_PARTY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)")
DATASET_IRI = "urn:medspace:dataset:"  # + hospital: the contract's target


class OperationKind(StrEnum):
    """What an operation releases."""

    AGGREGATE = "aggregate"  # protected aggregate statistics
    MODEL = "model"  # parameters of a federated model, securely aggregated
    RECORD = "record"  # a de-identified summary of one patient (emergency care)


@dataclass(frozen=True)
class Operation:
    """A computation a contract may permit, by the name the compute package registers it under."""

    name: str
    kind: OperationKind
    description: str


_A, _MO, _R = OperationKind.AGGREGATE, OperationKind.MODEL, OperationKind.RECORD
OPERATIONS: dict[str, Operation] = {
    o.name: o
    for o in (
        Operation("count", _A, "number of patients or rows, per group"),
        Operation("sum", _A, "sum of a numeric field, per group"),
        Operation("mean", _A, "mean of a numeric field, per group"),
        Operation("variance", _A, "variance of a numeric field, per group"),
        Operation("quantile", _A, "quantiles of a numeric field"),
        Operation("histogram", _A, "counts per bin of a numeric field"),
        Operation("crosstab", _A, "counts per combination of categorical fields"),
        Operation("glm", _MO, "generalised linear model by federated IRLS"),
        Operation("fedavg", _MO, "neural model by federated averaging"),
        Operation("fedprox", _MO, "neural model by FedProx"),
        Operation("fedadam", _MO, "neural model by FedAdam"),
        Operation("lookup", _R, "de-identified summary of one patient, for emergency care"),
    )
}


# --- checks shared by applications, approvals, contracts and tasks -------------------------------------------------


def _token(name: str, value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ContractError(f"{name}: must be {what}")
    return value


def _party(name: str, value: object) -> str:
    return _token(name, value, _PARTY, "1-128 letters, digits and . _ : @ / + - (e.g. dr-chen@h1)")


def _ident(name: str, value: object) -> str:
    return _token(name, value, _ID, "1-64 letters, digits and . _ : - (e.g. c-12)")


def _seq(name: str, value: object) -> tuple[Any, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple | set | frozenset):
        raise ContractError(f"{name}: must be a list")
    out = tuple(value)
    if len(set(out)) != len(out):
        raise ContractError(f"{name}: lists an item twice")
    return out


def check_time(name: str, value: object) -> datetime:
    """A timezone-aware datetime, converted to UTC, or ContractError naming the field."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ContractError(f"{name}: must be a timezone-aware datetime")
    return value.astimezone(UTC)


def format_time(t: datetime) -> str:
    """An xsd:dateTime in UTC with a Z, microseconds only where there are some."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(name: str, value: object) -> datetime:
    """An xsd:dateTime with a timezone, as an aware UTC datetime, or ContractError naming the field."""
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise ContractError(f"{name}: must be an xsd:dateTime with a timezone (2026-01-01T00:00:00Z)")
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        raise ContractError(f"{name}: is not a valid date and time") from None


def check_region(name: str, value: object) -> str:
    """An ISO 3166-1 alpha-2 code, or ContractError naming the field."""
    if not isinstance(value, str) or value not in REGIONS:
        raise ContractError(f"{name}: must be an ISO 3166-1 alpha-2 country code (DE, CN, US, ...)")
    return value


def check_fields(name: str, value: object, *, direct_ok: bool = False) -> tuple[str, ...]:
    """Sorted ``table.field`` names that exist in the catalogue; direct identifiers only where `direct_ok`."""
    out = _seq(name, value)
    for f in out:
        table, _, col = f.partition(".") if isinstance(f, str) else ("", "", "")
        if table not in TABLES or col not in TABLES[table]:
            raise ContractError(f"{name}: {f!r} is not a field of the catalogue (table.field)")
        if not direct_ok and PHI.DIRECT in TABLES[table][col].phi and col not in ID_FIELDS:
            raise ContractError(f"{name}: {f} is a direct identifier; de-identified views drop it and no "
                                "contract releases it")
    return tuple(sorted(out))


def _check_members(name: str, value: object, allowed: Collection[str], what: str) -> tuple[str, ...]:
    out = _seq(name, value)
    for x in out:
        if x not in allowed:
            raise ContractError(f"{name}: {x!r} is not {what} ({', '.join(allowed)})")
    return tuple(sorted(out))


def check_categories(name: str, value: object) -> tuple[str, ...]:
    """Sorted L1 categories (genetics, hiv, psychiatric, sexual_health), or ContractError."""
    return _check_members(name, value, L1_CATEGORIES, "an L1 category")


def check_operations(name: str, value: object) -> tuple[str, ...]:
    """Sorted names of registered operations, or ContractError naming the registry."""
    return _check_members(name, value, OPERATIONS, "a registered operation")


def _text(name: str, value: object, *, required: bool) -> str:
    if value is None or value == "":
        if required:
            raise ContractError(f"{name}: a reason is required")
        return ""
    if not isinstance(value, str) or len(value) > 500 or not value.isprintable():
        raise ContractError(f"{name}: must be one line of at most 500 printable characters")
    return value


def _days(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ContractError(f"{name}: must be a whole number from {low} to {high}")
    return value


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _check_terms(obj: Application | Contract) -> None:
    """The terms an application and a contract share, normalised in place."""
    purpose, duo = check_compatible(obj.purpose, _seq("duo", obj.duo), obj.disease)
    _set(obj, "purpose", purpose)
    _set(obj, "duo", duo)
    flds = check_fields("fields", obj.fields)
    if not flds:
        raise ContractError("fields: at least one field is needed")
    _set(obj, "fields", flds)
    cats = check_categories("categories", obj.categories)
    if any(f.startswith("genetic_variant.") for f in flds) and "genetics" not in cats:
        raise ContractError("categories: fields of genetic_variant are L1 genetics; list the category genetics")
    _set(obj, "categories", cats)
    ops = check_operations("operations", obj.operations)
    if not ops:
        raise ContractError("operations: at least one operation is needed")
    if purpose not in CLINICAL_PURPOSES:
        for o in ops:
            if OPERATIONS[o].kind is OperationKind.RECORD:
                raise ContractError(f"operations: {o} releases a per-patient record; purpose {purpose.value} "
                                    "gets aggregates and models only")
    _set(obj, "operations", ops)
    recipients = tuple(sorted(_party(f"recipients[{i}]", r) for i, r in enumerate(_seq("recipients", obj.recipients))))
    _set(obj, "recipients", recipients)
    start, end = check_time("start", obj.start), check_time("end", obj.end)
    if end <= start:
        raise ContractError("end: must be after start")
    if end - start > MAX_PERIOD:
        raise ContractError("end: the period may last at most five years")
    _set(obj, "start", start)
    _set(obj, "end", end)
    _set(obj, "region", check_region("region", obj.region))


# --- applications and approvals -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Application:
    """A data-use application: who wants which fields of which hospitals, for what, how, until when, sent where."""

    id: str
    applicant: str
    purpose: Purpose
    duo: tuple[str, ...]
    fields: tuple[str, ...]
    operations: tuple[str, ...]
    start: datetime
    end: datetime
    region: str  # ISO 3166-1 alpha-2 of where results go
    hospitals: tuple[str, ...]
    categories: tuple[str, ...] = ()  # L1 categories the study needs
    recipients: tuple[str, ...] = ()  # who else receives results, besides the applicant
    disease: str | None = None  # with DUO:0000007 DS only
    retention_days: int = DEFAULT_RETENTION_DAYS  # results are deleted this many days after release

    def __post_init__(self) -> None:
        _ident("id", self.id)
        _party("applicant", self.applicant)
        _check_terms(self)
        if self.applicant in self.recipients:
            raise ContractError("recipients: the applicant receives results anyway; do not list them")
        hospitals = tuple(sorted(_party(f"hospitals[{i}]", h) for i, h in enumerate(_seq("hospitals",
                                                                                          self.hospitals))))
        if not hospitals:
            raise ContractError("hospitals: at least one hospital is needed")
        _set(self, "hospitals", hospitals)
        _days("retention_days", self.retention_days, 1, MAX_RETENTION_DAYS)

    def to_dict(self) -> dict[str, Any]:
        """The application as plain JSON values (times as xsd:dateTime)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = format_time(v) if isinstance(v, datetime) else list(v) if isinstance(v, tuple) else v
        out["purpose"] = self.purpose.value
        return out

    @classmethod
    def from_dict(cls, data: object) -> Application:
        """An application from :meth:`to_dict`'s output, checked as at construction."""
        return cls(**_from_plain(cls, data, "application", times=("start", "end")))


def _from_plain(cls: type, data: object, what: str, times: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ContractError(f"{what}: must be a JSON object")
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ContractError(f"{what}: unknown key {unknown[0]!r}")
    missing = [f.name for f in fields(cls) if f.name not in data and f.default is MISSING]
    if missing:
        raise ContractError(f"{what}: missing key {missing[0]!r}")
    out = dict(data)
    for t in times:
        if out.get(t) is not None:
            out[t] = parse_time(t, out[t])
    return out


class Outcome(StrEnum):
    """A steward's answer to an application."""

    APPROVE = "approve"
    RESTRICT = "restrict"
    REFUSE = "refuse"


@dataclass(frozen=True, kw_only=True)
class Restrictions:
    """What a steward takes away or tightens when approving with restrictions."""

    fields_removed: tuple[str, ...] = ()
    operations_removed: tuple[str, ...] = ()
    categories_removed: tuple[str, ...] = ()
    recipients_removed: tuple[str, ...] = ()
    end: datetime | None = None  # an earlier end
    min_cell_size: int | None = None  # a larger minimum cell size
    delete_after_days: int | None = None  # a shorter retention of results

    def __post_init__(self) -> None:
        _set(self, "fields_removed", check_fields("restrictions.fields_removed", self.fields_removed))
        _set(self, "operations_removed", check_operations("restrictions.operations_removed",
                                                          self.operations_removed))
        _set(self, "categories_removed", check_categories("restrictions.categories_removed",
                                                          self.categories_removed))
        _set(self, "recipients_removed", tuple(sorted(
            _party("restrictions.recipients_removed", r) for r in _seq("restrictions.recipients_removed",
                                                                       self.recipients_removed))))
        if self.end is not None:
            _set(self, "end", check_time("restrictions.end", self.end))
        if self.min_cell_size is not None:
            _days("restrictions.min_cell_size", self.min_cell_size, DEFAULT_MIN_CELL_SIZE, 10_000)
        if self.delete_after_days is not None:
            _days("restrictions.delete_after_days", self.delete_after_days, 1, MAX_RETENTION_DAYS)

    @property
    def empty(self) -> bool:
        """Whether it restricts nothing."""
        return self == Restrictions()

    def to_dict(self) -> dict[str, Any]:
        """The restrictions as plain JSON values."""
        return {f.name: (format_time(v) if isinstance(v, datetime) else list(v) if isinstance(v, tuple) else v)
                for f in fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, data: object) -> Restrictions:
        """Restrictions from :meth:`to_dict`'s output."""
        return cls(**_from_plain(cls, data, "restrictions", times=("end",)))


@dataclass(frozen=True, kw_only=True)
class Approval:
    """One hospital steward's answer to one application."""

    application: str
    hospital: str
    steward: str
    outcome: Outcome
    at: datetime
    reason: str = ""
    restrictions: Restrictions = Restrictions()

    def __post_init__(self) -> None:
        _ident("application", self.application)
        _party("hospital", self.hospital)
        _party("steward", self.steward)
        try:
            _set(self, "outcome", Outcome(self.outcome))
        except ValueError:
            raise ContractError("outcome: must be approve, restrict or refuse") from None
        _set(self, "at", check_time("at", self.at))
        if not isinstance(self.restrictions, Restrictions):
            raise ContractError("restrictions: must be a Restrictions")
        _text("reason", self.reason, required=self.outcome is Outcome.REFUSE)
        if self.outcome is Outcome.RESTRICT and self.restrictions.empty:
            raise ContractError("restrictions: an approval with restrictions must restrict something")
        if self.outcome is not Outcome.RESTRICT and not self.restrictions.empty:
            raise ContractError(f"restrictions: an outcome of {self.outcome.value} carries no restrictions; "
                                "use restrict")

    def to_dict(self) -> dict[str, Any]:
        """The approval as plain JSON values."""
        return {"application": self.application, "hospital": self.hospital, "steward": self.steward,
                "outcome": self.outcome.value, "at": format_time(self.at), "reason": self.reason,
                "restrictions": self.restrictions.to_dict()}

    @classmethod
    def from_dict(cls, data: object) -> Approval:
        """An approval from :meth:`to_dict`'s output."""
        out = _from_plain(cls, data, "approval", times=("at",))
        if "restrictions" in out:
            out["restrictions"] = Restrictions.from_dict(out["restrictions"])
        return cls(**out)


# --- contracts -----------------------------------------------------------------------------------------------------


class ContractStatus(StrEnum):
    """Whether a contract is in force; a revoked or terminated one permits nothing."""

    ACTIVE = "active"
    REVOKED = "revoked"  # withdrawn by the hospital (steward) or the space
    TERMINATED = "terminated"  # ended early by agreement or by the assignee


@dataclass(frozen=True, kw_only=True)
class TaskRequest:
    """A task to run under a contract: who asks, for what, which operation on which fields, results sent where."""

    contract: str
    requester: str
    purpose: Purpose
    operation: str
    fields: tuple[str, ...]
    hospital: str
    destination: str  # ISO 3166-1 alpha-2 of where results go
    categories: tuple[str, ...] = ()  # L1 categories the task reads

    def __post_init__(self) -> None:
        _ident("contract", self.contract)
        _party("requester", self.requester)
        _set(self, "purpose", parse_purpose(self.purpose))
        if not isinstance(self.operation, str) or self.operation not in OPERATIONS:
            raise ContractError(f"operation: {self.operation!r} is not a registered operation")
        # direct identifiers are allowed here so that asking for one is refused by the contract, by name
        _set(self, "fields", check_fields("fields", self.fields, direct_ok=True))
        _party("hospital", self.hospital)
        check_region("destination", self.destination)
        _set(self, "categories", check_categories("categories", self.categories))


@dataclass(frozen=True, kw_only=True)
class Contract:
    """One hospital's agreement to an application: an ODRL Agreement of the medspace profile (medspace.policy.odrl)."""

    uid: str
    application: str
    assigner: str  # the hospital
    assignee: str  # the applicant
    purpose: Purpose
    duo: tuple[str, ...]
    fields: tuple[str, ...]
    operations: tuple[str, ...]
    start: datetime
    end: datetime
    region: str
    issued: datetime
    categories: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    disease: str | None = None
    min_cell_size: int = DEFAULT_MIN_CELL_SIZE
    delete_after_days: int = DEFAULT_RETENTION_DAYS
    status: ContractStatus = ContractStatus.ACTIVE
    status_time: datetime | None = None
    status_reason: str = ""

    def __post_init__(self) -> None:
        _ident("uid", self.uid)
        _ident("application", self.application)
        _party("assigner", self.assigner)
        _party("assignee", self.assignee)
        _check_terms(self)
        if self.assignee in self.recipients:
            raise ContractError("recipients: the assignee receives results anyway; do not list them")
        _set(self, "issued", check_time("issued", self.issued))
        _days("min_cell_size", self.min_cell_size, 1, 10_000)
        _days("delete_after_days", self.delete_after_days, 1, MAX_RETENTION_DAYS)
        try:
            _set(self, "status", ContractStatus(self.status))
        except ValueError:
            raise ContractError("status: must be active, revoked or terminated") from None
        if self.status is ContractStatus.ACTIVE:
            if self.status_time is not None or self.status_reason:
                raise ContractError("status: an active contract has no status time or reason")
        else:
            if self.status_time is None:
                raise ContractError(f"status_time: a {self.status.value} contract says when")
            _set(self, "status_time", check_time("status_time", self.status_time))
            _text("status_reason", self.status_reason, required=True)

    @property
    def target(self) -> str:
        """The IRI of the hospital's de-identified dataset the contract is about."""
        return DATASET_IRI + self.assigner

    @property
    def parties(self) -> tuple[str, ...]:
        """Who may run tasks and receive results: the assignee, then the recipients."""
        return (self.assignee, *self.recipients)

    @classmethod
    def from_application(cls, application: Application, approval: Approval, *, uid: str,
                         issued: datetime) -> Contract:
        """The contract one hospital's approval makes of an application, with the steward's restrictions applied."""
        app, r = application, approval.restrictions
        if approval.application != app.id:
            raise ContractError(f"approval: answers application {approval.application}, not {app.id}")
        if approval.hospital not in app.hospitals:
            raise ContractError(f"approval: hospital {approval.hospital} is not one of the application's hospitals")
        if approval.outcome is Outcome.REFUSE:
            raise ContractError(f"approval: hospital {approval.hospital} refused application {app.id}")

        def keep(name: str, have: tuple[str, ...], removed: tuple[str, ...]) -> tuple[str, ...]:
            extra = [x for x in removed if x not in have]
            if extra:
                raise ContractError(f"restrictions.{name}_removed: {extra[0]} is not in the application")
            return tuple(x for x in have if x not in removed)

        end = app.end
        if r.end is not None:
            if r.end > app.end:
                raise ContractError("restrictions.end: may only end the contract earlier than the application")
            end = r.end
        retention = app.retention_days
        if r.delete_after_days is not None:
            if r.delete_after_days > app.retention_days:
                raise ContractError("restrictions.delete_after_days: may only shorten the retention of results")
            retention = r.delete_after_days
        return cls(
            uid=uid, application=app.id, assigner=approval.hospital, assignee=app.applicant, purpose=app.purpose,
            duo=app.duo, disease=app.disease, fields=keep("fields", app.fields, r.fields_removed),
            operations=keep("operations", app.operations, r.operations_removed),
            categories=keep("categories", app.categories, r.categories_removed),
            recipients=keep("recipients", app.recipients, r.recipients_removed),
            start=app.start, end=end, region=app.region, issued=issued,
            min_cell_size=r.min_cell_size or DEFAULT_MIN_CELL_SIZE, delete_after_days=retention,
        )

    def revoke(self, at: datetime, reason: str) -> Contract:
        """The contract revoked (by its hospital or the space) at `at`: it permits nothing from then on."""
        return self._end(ContractStatus.REVOKED, at, reason)

    def terminate(self, at: datetime, reason: str) -> Contract:
        """The contract terminated early (by agreement or its assignee) at `at`: it permits nothing from then on."""
        return self._end(ContractStatus.TERMINATED, at, reason)

    def _end(self, status: ContractStatus, at: datetime, reason: str) -> Contract:
        if self.status is not ContractStatus.ACTIVE:
            raise ContractError(f"contract {self.uid}: already {self.status.value}")
        if check_time("at", at) < self.issued:
            raise ContractError(f"contract {self.uid}: cannot end before it was issued")
        return replace(self, status=status, status_time=at, status_reason=reason)

    def permits(self, task: TaskRequest, at: datetime) -> Decision:
        """Whether the contract permits a task at `at`; every constraint is an outcome, a refusal names it."""
        from medspace.policy.decision import Decision, RuleOutcome  # decision imports this module

        at = check_time("at", at)
        c = f"contract {self.uid}"
        rows: list[tuple[str, str, bool, str]] = []

        def check(rule: str, term: str, ok: bool, bad: str, good: str) -> None:
            rows.append((rule, term, ok, good if ok else f"{c}: {bad}"))

        active = self.status is ContractStatus.ACTIVE
        when = format_time(self.status_time) if self.status_time else ""
        check("status", "medspace:status", active, f"{self.status.value} at {when}; it permits nothing",
              "in force")
        check("uid", "uid", task.contract == self.uid, f"the task names contract {task.contract}", "named by the task")
        check("assigner", "assigner", task.hospital == self.assigner,
              f"assigned by {self.assigner}, the task is for {task.hospital}", f"assigned by {self.assigner}")
        check("recipient", "recipient isAnyOf", task.requester in self.parties,
              f"{task.requester} is neither the assignee nor a recipient", f"{task.requester} is a party")
        check("purpose", "purpose eq", task.purpose is self.purpose,
              f"purpose {self.purpose.value} required, request has {task.purpose.value}",
              f"purpose {self.purpose.value}")
        check("action", "action", task.operation in self.operations, f"operation {task.operation} not permitted",
              f"operation {task.operation} permitted")
        missing = [f for f in task.fields if f not in self.fields]
        check("field", "target refinement medspace:field isAnyOf", not missing,
              f"field{'s' if len(missing) > 1 else ''} {', '.join(missing)} not in contract", "fields in contract")
        cats = [k for k in task.categories if k not in self.categories]
        check("category", "target refinement medspace:category isAnyOf", not cats,
              f"L1 categor{'ies' if len(cats) > 1 else 'y'} {', '.join(cats)} not in contract",
              "categories in contract")
        if at < self.start:
            check("dateTime", "dateTime gteq", False, f"not in force until {format_time(self.start)}", "")
        else:
            check("dateTime", "dateTime lt", at < self.end, f"expired at {format_time(self.end)}",
                  f"in force until {format_time(self.end)}")
        check("spatial", "spatial eq", task.destination == self.region,
              f"results may go to {self.region} only, the task sends them to {task.destination}",
              f"results go to {self.region}")
        outcomes = tuple(RuleOutcome(rule_id=f"contract.{rule}", pack="contract", citation=f"{c}, ODRL {term}",
                                     effect="require", satisfied=ok, reason=reason) for rule, term, ok, reason in rows)
        return Decision(allowed=all(o.satisfied for o in outcomes), outcomes=outcomes)

    def to_odrl(self) -> dict[str, Any]:
        """The contract as an ODRL 2.2 Agreement in JSON-LD (the profile of :mod:`medspace.policy.odrl`)."""
        from medspace.policy.odrl import to_odrl  # odrl imports this module
        return to_odrl(self)

    @classmethod
    def from_odrl(cls, doc: object) -> Contract:
        """A contract from an ODRL Agreement of the profile; anything outside it is refused, naming the JSON path."""
        from medspace.policy.odrl import from_odrl  # odrl imports this module
        return from_odrl(doc)
