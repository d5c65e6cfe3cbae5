"""Consent decisions: hospital defaults, and the decision for one patient from their consent in force.

The rules (revocation, the root period, the provisions, the hospital default) are in the docstring of
:mod:`medspace.policy.consent`, which re-exports every public name of this module.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from medspace.ledger.entry import Purpose
from medspace.model.catalogue import Level
from medspace.policy.consent_fhir import (
    CATEGORIES,
    CATEGORY_LEVEL,
    ConsentRecord,
    ConsentStatus,
    Moment,
    Period,
    Rule,
    check_category,
    check_participant,
    check_purpose,
)
from medspace.policy.errors import ConsentError

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
