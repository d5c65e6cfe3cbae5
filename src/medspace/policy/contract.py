"""Data-use applications, stewards' approvals, and contracts as ODRL 2.2 Agreements (a small profile).

An :class:`Application` is what a researcher files (architecture, "A multi-centre study", step 1); each hospital's
steward answers with an :class:`Approval` (approve, restrict or refuse); an approval of one hospital turns the
application into one :class:`Contract` with that hospital (step 2). Every one of them is checked when it is made:
an invalid one raises :class:`ContractError` naming the rule it breaks.

The contract profile (``urn:medspace:odrl:v1``) uses the W3C ODRL 2.2 Information Model and Vocabulary
(Recommendation, 15 February 2018) in its JSON-LD serialisation. A contract is one ``Agreement`` in the compact
form the Dataspace Protocol 2025-1 asks of agreements (``target``, ``assigner`` and ``assignee`` on the policy, none
on its rules)::

    {"@context": ["http://www.w3.org/ns/odrl.jsonld", {"medspace": "urn:medspace:odrl:", "obo": ..., ...}],
     "@type": "Agreement", "uid": "urn:medspace:contract:<uid>", "profile": "urn:medspace:odrl:v1",
     "dct:issued": {"@value": <xsd:dateTime>, "@type": "xsd:dateTime"},
     "medspace:application": <application id>, "medspace:status": "active" | "revoked" | "terminated",
     ["medspace:statusTime": ..., "medspace:statusReason": ...]
     "target": {"@type": "AssetCollection", "source": "urn:medspace:dataset:<hospital>",
                "refinement": [{"leftOperand": "medspace:field", "operator": "isAnyOf", "rightOperand": [..]},
                               {"leftOperand": "medspace:category", "operator": "isAnyOf", "rightOperand": [..]}]},
     "assigner": "urn:medspace:party:<hospital>", "assignee": "urn:medspace:party:<applicant>",
     "permission": [{"action": "medspace:<operation>",            one permission per operation, alike otherwise
                     "constraint": [purpose eq hl7pou:<PurposeOfUse>, purpose isAllOf [obo:DUO_...],
                                    (medspace:disease eq <ICD-10:.. | MONDO:..>,)
                                    recipient isAnyOf [<assignee and recipients>],
                                    dateTime gteq <start>, dateTime lt <end>, spatial eq iso3166:<region>,
                                    medspace:cellSize gteq <minimum cell size>],
                     "duty": [{"action": "medspace:log"},
                              {"action": "delete", "constraint": [elapsedTime lteq P<n>D]}]}],
     "prohibition": [{"action": "distribute"}]}

Profile terms: actions ``medspace:<operation>`` (one per registered operation, each included in ``odrl:use``) and
``medspace:log`` (record every exercise of the permission in the audit log); left operands ``medspace:field``
(a catalogue field, ``table.field``), ``medspace:category`` (an L1 category), ``medspace:disease`` (the DS disease)
and ``medspace:cellSize`` (the smallest count a released cell may have). The ``delete`` duty applies to the results
of the permitted actions: they are deleted at most ``n`` days after release. ``spatial`` is where results go.
:meth:`Contract.from_odrl` reads any order of permissions, constraints and list items, and refuses anything outside
the profile, naming the JSON path. Two spellings differ from the DSP 2025-1 JSON schema for agreements: the policy id
is ODRL's ``uid`` (the ODRL context makes it an alias of ``@id``, which the DSP schema spells out), and ``target`` is
an ODRL AssetCollection with a refinement (the DSP schema has a plain dataset IRI, which is its ``source`` here); a
DSP wire binding maps these two.
"""

from __future__ import annotations

import copy
import re
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
_DURATION = re.compile(r"P([1-9]\d{0,3})D")

ODRL_CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
PROFILE = "urn:medspace:odrl:v1"
NS = "urn:medspace:odrl:"
CONTEXT: list[Any] = [
    ODRL_CONTEXT,
    {
        "medspace": NS,
        "obo": "http://purl.obolibrary.org/obo/",
        "hl7pou": "http://terminology.hl7.org/CodeSystem/v3-ActReason#",
        "iso3166": "https://www.iso.org/obp/ui/#iso:code:3166:",
    },
]
CONTRACT_IRI = "urn:medspace:contract:"
PARTY_IRI = "urn:medspace:party:"
DATASET_IRI = "urn:medspace:dataset:"


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


def check_categories(name: str, value: object) -> tuple[str, ...]:
    """Sorted L1 categories (genetics, hiv, psychiatric, sexual_health), or ContractError."""
    out = _seq(name, value)
    for c in out:
        if c not in L1_CATEGORIES:
            raise ContractError(f"{name}: {c!r} is not an L1 category ({', '.join(L1_CATEGORIES)})")
    return tuple(sorted(out))


def check_operations(name: str, value: object) -> tuple[str, ...]:
    """Sorted names of registered operations, or ContractError naming the registry."""
    out = _seq(name, value)
    for o in out:
        if o not in OPERATIONS:
            raise ContractError(f"{name}: {o!r} is not a registered operation ({', '.join(OPERATIONS)})")
    return tuple(sorted(out))


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
    """One hospital's agreement to an application: an ODRL Agreement of the medspace profile (module docstring)."""

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

    # --- ODRL ------------------------------------------------------------------------------------------------------

    def to_odrl(self) -> dict[str, Any]:
        """The contract as an ODRL 2.2 Agreement in JSON-LD (the profile of the module docstring)."""
        constraints: list[dict[str, Any]] = [
            _c("purpose", "eq", {"@id": f"hl7pou:{self.purpose.value}"}),
            _c("purpose", "isAllOf", [{"@id": "obo:" + d.replace(":", "_")} for d in self.duo]),
        ]
        if self.disease is not None:
            constraints.append(_c("medspace:disease", "eq", self.disease))
        constraints += [
            _c("recipient", "isAnyOf", [{"@id": PARTY_IRI + p} for p in self.parties]),
            _c("dateTime", "gteq", {"@value": format_time(self.start), "@type": "xsd:dateTime"}),
            _c("dateTime", "lt", {"@value": format_time(self.end), "@type": "xsd:dateTime"}),
            _c("spatial", "eq", {"@id": f"iso3166:{self.region}"}),
            _c("medspace:cellSize", "gteq", self.min_cell_size),
        ]
        duties = [
            {"action": "medspace:log"},
            {"action": "delete", "constraint": [
                _c("elapsedTime", "lteq", {"@value": f"P{self.delete_after_days}D", "@type": "xsd:duration"})]},
        ]
        refinement = [_c("medspace:field", "isAnyOf", list(self.fields))]
        if self.categories:
            refinement.append(_c("medspace:category", "isAnyOf", list(self.categories)))
        doc: dict[str, Any] = {
            "@context": CONTEXT,
            "@type": "Agreement",
            "uid": CONTRACT_IRI + self.uid,
            "profile": PROFILE,
            "dct:issued": {"@value": format_time(self.issued), "@type": "xsd:dateTime"},
            "medspace:application": self.application,
            "medspace:status": self.status.value,
        }
        if self.status_time is not None:
            doc["medspace:statusTime"] = {"@value": format_time(self.status_time), "@type": "xsd:dateTime"}
            doc["medspace:statusReason"] = self.status_reason
        doc.update({
            "target": {"@type": "AssetCollection", "source": self.target, "refinement": refinement},
            "assigner": PARTY_IRI + self.assigner,
            "assignee": PARTY_IRI + self.assignee,
            # fresh copies per permission: a caller editing one must not edit them all
            "permission": [{"action": f"medspace:{op}", "constraint": copy.deepcopy(constraints),
                            "duty": copy.deepcopy(duties)} for op in self.operations],
            "prohibition": [{"action": "distribute"}],
        })
        return doc

    @classmethod
    def from_odrl(cls, doc: object) -> Contract:
        """A contract from an ODRL Agreement of the profile; anything outside it is refused, naming the JSON path."""
        return _OdrlReader().read(doc)


def _c(left: str, op: str, right: object) -> dict[str, Any]:
    return {"leftOperand": left, "operator": op, "rightOperand": right}


class _OdrlReader:
    """Reads one Agreement of the profile; order-insensitive, otherwise strict."""

    def fail(self, path: str, msg: str) -> ContractError:
        """An error naming the JSON path."""
        return ContractError(f"odrl {path}: {msg}")

    def obj(self, path: str, value: object, required: set[str], optional: frozenset[str] = frozenset()
            ) -> dict[str, Any]:
        """A JSON object with the `required` keys and no keys outside `optional`."""
        if not isinstance(value, dict):
            raise self.fail(path, "must be a JSON object")
        missing = sorted(required - set(value))
        if missing:
            raise self.fail(path, f"missing {missing[0]!r}")
        unknown = sorted(set(value) - required - optional)
        if unknown:
            raise self.fail(path, f"{unknown[0]!r} is not part of the medspace profile")
        return value

    def lst(self, path: str, value: object) -> list[Any]:
        """A non-empty JSON list."""
        if not isinstance(value, list) or not value:
            raise self.fail(path, "must be a non-empty list")
        return value

    def iri(self, path: str, value: object, prefix: str) -> str:
        """The local part of an IRI (bare or as {"@id": ...}) under `prefix`."""
        if isinstance(value, dict):
            value = self.obj(path, value, {"@id"})["@id"]
        if not isinstance(value, str) or not value.startswith(prefix) or len(value) == len(prefix):
            raise self.fail(path, f"must be an IRI starting {prefix}")
        return value[len(prefix):]

    def typed(self, path: str, value: object, datatype: str) -> str:
        """The lexical form of a {"@value", "@type"} literal of `datatype`."""
        v = self.obj(path, value, {"@value", "@type"})
        if v["@type"] != datatype or not isinstance(v["@value"], str):
            raise self.fail(path, f"must be an {datatype} value")
        return v["@value"]

    def constraints(self, path: str, value: object) -> dict[tuple[str, str], tuple[str, Any]]:
        """Atomic constraints keyed by (leftOperand, operator), each with its path and rightOperand."""
        out: dict[tuple[str, str], tuple[str, Any]] = {}
        for i, c in enumerate(self.lst(path, value)):
            p = f"{path}[{i}]"
            c = self.obj(p, c, {"leftOperand", "operator", "rightOperand"})
            key = (c["leftOperand"], c["operator"])
            if not all(isinstance(k, str) for k in key):
                raise self.fail(p, "leftOperand and operator must be strings")
            if key in out:
                raise self.fail(p, f"{key[0]} {key[1]} appears twice")
            out[key] = (p, c["rightOperand"])
        return out

    def read(self, doc: object) -> Contract:
        """The contract of an Agreement document."""
        top = self.obj("$", doc, {"@context", "@type", "uid", "profile", "dct:issued", "medspace:application",
                                  "medspace:status", "target", "assigner", "assignee", "permission", "prohibition"},
                       frozenset({"medspace:statusTime", "medspace:statusReason"}))
        if top["@context"] != CONTEXT:
            raise self.fail("$.@context", f"must be the ODRL context {ODRL_CONTEXT} with the medspace prefixes")
        if top["@type"] != "Agreement":
            raise self.fail("$.@type", "must be Agreement")
        if top["profile"] != PROFILE:
            raise self.fail("$.profile", f"must be {PROFILE}")
        args: dict[str, Any] = {
            "uid": self.iri("$.uid", top["uid"], CONTRACT_IRI),
            "issued": parse_time("$.dct:issued", self.typed("$.dct:issued", top["dct:issued"], "xsd:dateTime")),
            "application": top["medspace:application"],
            "status": top["medspace:status"],
            "assigner": self.iri("$.assigner", top["assigner"], PARTY_IRI),
            "assignee": self.iri("$.assignee", top["assignee"], PARTY_IRI),
        }
        if "medspace:statusTime" in top:
            args["status_time"] = parse_time("$.medspace:statusTime", self.typed(
                "$.medspace:statusTime", top["medspace:statusTime"], "xsd:dateTime"))
        if "medspace:statusReason" in top:
            args["status_reason"] = top["medspace:statusReason"]
        target = self.obj("$.target", top["target"], {"@type", "source", "refinement"})
        if target["@type"] != "AssetCollection":
            raise self.fail("$.target.@type", "must be AssetCollection")
        if target["source"] != DATASET_IRI + args["assigner"]:
            raise self.fail("$.target.source", "must be the assigner's dataset, "
                                               f"{DATASET_IRI}{args['assigner']}")
        ref = self.constraints("$.target.refinement", target["refinement"])
        extra = sorted(set(ref) - {("medspace:field", "isAnyOf"), ("medspace:category", "isAnyOf")})
        if extra:
            raise self.fail(ref[extra[0]][0], f"{extra[0][0]} {extra[0][1]} is not a refinement of the profile")
        if ("medspace:field", "isAnyOf") not in ref:
            raise self.fail("$.target.refinement", "needs medspace:field isAnyOf")
        args["fields"] = self.strings(*ref[("medspace:field", "isAnyOf")])
        if ("medspace:category", "isAnyOf") in ref:
            args["categories"] = self.strings(*ref[("medspace:category", "isAnyOf")])
        prohibitions = self.lst("$.prohibition", top["prohibition"])
        if prohibitions != [{"action": "distribute"}]:
            raise self.fail("$.prohibition", 'must be [{"action": "distribute"}]')
        ops: list[str] = []
        common: tuple[dict[str, Any], Any] | None = None
        for i, perm in enumerate(self.lst("$.permission", top["permission"])):
            p = f"$.permission[{i}]"
            perm = self.obj(p, perm, {"action", "constraint", "duty"})
            action = perm["action"]
            if not isinstance(action, str) or not action.startswith("medspace:") or action[9:] not in OPERATIONS:
                raise self.fail(f"{p}.action", "must be medspace:<registered operation>")
            ops.append(action[9:])
            terms = self.terms(p, perm["constraint"]), self.duties(p, perm["duty"])
            if common is None:
                common = terms
            elif terms != common:
                raise self.fail(p, "constraints and duties differ from permission[0]; the profile puts the same "
                                   "ones on every operation")
        assert common is not None  # lst() refuses an empty list
        args.update(common[0])
        _split_parties(args)
        args["delete_after_days"] = common[1]
        args["operations"] = ops
        return Contract(**args)

    def strings(self, path: str, value: object) -> list[str]:
        """A non-empty list of strings."""
        items = self.lst(path, value)
        if not all(isinstance(x, str) for x in items):
            raise self.fail(path, "must be a list of strings")
        return items

    def terms(self, p: str, value: object) -> dict[str, Any]:
        """The contract terms of one permission's constraints."""
        cs = self.constraints(f"{p}.constraint", value)
        known = {("purpose", "eq"), ("purpose", "isAllOf"), ("medspace:disease", "eq"), ("recipient", "isAnyOf"),
                 ("dateTime", "gteq"), ("dateTime", "lt"), ("spatial", "eq"), ("medspace:cellSize", "gteq")}
        for key, (path, _) in cs.items():
            if key not in known:
                raise self.fail(path, f"{key[0]} {key[1]} is not a constraint of the profile")
        for key in known - {("medspace:disease", "eq")}:
            if key not in cs:
                raise self.fail(f"{p}.constraint", f"needs {key[0]} {key[1]}")
        out: dict[str, Any] = {}
        path, v = cs[("purpose", "eq")]
        out["purpose"] = self.iri(path, v, "hl7pou:")
        path, v = cs[("purpose", "isAllOf")]
        duo = [self.iri(f"{path}[{i}]", d, "obo:DUO_") for i, d in enumerate(self.lst(path, v))]
        out["duo"] = [f"DUO:{d}" for d in duo]
        if ("medspace:disease", "eq") in cs:
            out["disease"] = cs[("medspace:disease", "eq")][1]
        path, v = cs[("recipient", "isAnyOf")]
        parties = [self.iri(f"{path}[{i}]", x, PARTY_IRI) for i, x in enumerate(self.lst(path, v))]
        out["parties"] = sorted(parties)
        path, v = cs[("dateTime", "gteq")]
        out["start"] = parse_time(path, self.typed(path, v, "xsd:dateTime"))
        path, v = cs[("dateTime", "lt")]
        out["end"] = parse_time(path, self.typed(path, v, "xsd:dateTime"))
        path, v = cs[("spatial", "eq")]
        out["region"] = self.iri(path, v, "iso3166:")
        path, v = cs[("medspace:cellSize", "gteq")]
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(path, "must be a whole number")
        out["min_cell_size"] = v
        return out

    def duties(self, p: str, value: object) -> int:
        """The retention in days of one permission's duties (log and delete)."""
        duties = self.lst(f"{p}.duty", value)
        days: int | None = None
        logged = False
        for i, d in enumerate(duties):
            path = f"{p}.duty[{i}]"
            if d == {"action": "medspace:log"} and not logged:
                logged = True
                continue
            d = self.obj(path, d, {"action", "constraint"})
            cs = self.constraints(f"{path}.constraint", d["constraint"])
            if d["action"] != "delete" or days is not None or set(cs) != {("elapsedTime", "lteq")}:
                raise self.fail(path, "the profile's duties are medspace:log and delete with elapsedTime lteq")
            cpath, v = cs[("elapsedTime", "lteq")]
            m = _DURATION.fullmatch(self.typed(cpath, v, "xsd:duration"))
            if not m:
                raise self.fail(cpath, "must be a duration in days, P<n>D")
            days = int(m.group(1))
        if not logged or days is None:
            raise self.fail(f"{p}.duty", "needs both duties: medspace:log and delete")
        return days


def _split_parties(args: dict[str, Any]) -> None:
    parties = args.pop("parties")
    if args["assignee"] not in parties:
        raise ContractError("odrl recipient: the assignee must be among the recipients of results")
    args["recipients"] = [p for p in parties if p != args["assignee"]]
