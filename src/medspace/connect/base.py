"""What every connector shares: the sink it writes to, quarantine records and reasons, and the
final check of a mapped row against the field catalogue."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any, NamedTuple, Protocol

import pyarrow as pa

from medspace.connect.errors import FindingKind, MappingError, Reason
from medspace.model import PHI, TABLES, canonical_system, code_valid, normalise_code, row_level
from medspace.model.sensitivity import L1_PREFIXES


@dataclass(frozen=True)
class Quarantined:
    """An input unit (resource, message, row) that did not parse or map, kept with its reason."""

    connector: str  # fhir, hl7v2, csv
    source: str  # file path or URL it came from
    position: str  # where in the source: "line 17", "entry 3", "message 5", "row 120"
    reason: Reason
    detail: str  # what exactly was wrong; never echoes a field's value
    raw: bytes  # the original bytes, so nothing is lost


@dataclass(frozen=True, slots=True)
class Finding:
    """A data-quality finding: one field of one stored row that was kept, but not as the standard has it."""

    connector: str
    source: str
    position: str  # where in the source, as for quarantine: "message 5", "line 17", "row 120"
    table: str
    field: str
    kind: FindingKind


class Sink(Protocol):
    """Where a connector puts what it read. The store's batch writer is the real one."""

    def add(self, table: str, row: dict[str, Any]) -> None:
        """Add one mapped row (already checked by `complete`)."""

    def add_arrow(self, table: str, data: pa.Table) -> None:
        """Add many mapped, checked rows at once, as an Arrow table with the catalogue's schema."""

    def quarantine(self, item: Quarantined) -> None:
        """Keep an input unit that did not parse or map."""

    def skip(self, kind: str, n: int = 1) -> None:
        """Count valid input that the model does not hold (e.g. FHIR Organization)."""

    def finding(self, item: Finding, n: int = 1) -> None:
        """Record a data-quality finding about `n` stored rows (call it only once the rows are added);
        `item.position` is the first of them."""

    def end_source(self, source: str | None = None) -> None:
        """A source file (named, where known) is done: a hint that what it gave may be written out now."""


@dataclass
class MemorySink:
    """A sink that keeps everything in memory: for tests and small tools."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    finding_counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (table, field, kind)

    def add(self, table: str, row: dict[str, Any]) -> None:
        """Add one row."""
        self.rows.setdefault(table, []).append(row)

    def add_arrow(self, table: str, data: pa.Table) -> None:
        """Add rows from an Arrow table."""
        self.rows.setdefault(table, []).extend(data.to_pylist())

    def quarantine(self, item: Quarantined) -> None:
        """Keep a quarantined unit."""
        self.quarantined.append(item)

    def skip(self, kind: str, n: int = 1) -> None:
        """Count skipped input."""
        self.skipped[kind] += n

    def finding(self, item: Finding, n: int = 1) -> None:
        """Keep a data-quality finding and count it."""
        self.findings.append(item)
        self.finding_counts[(item.table, item.field, item.kind.value)] += n

    def end_source(self, source: str | None = None) -> None:
        """Nothing to write out: everything is in memory already."""

    @property
    def reasons(self) -> Counter[str]:
        """Quarantine counts per reason."""
        return Counter(q.reason.value for q in self.quarantined)


# Senders repeat a handful of system URIs and names: remember what each one canonicalises to.
_canonical_system = lru_cache(maxsize=4096)(canonical_system)


class Concept(NamedTuple):
    """A coded concept as a node stores it: the code as chosen, its status, and what was not standard."""

    system: str | None
    code: str | None
    display: str | None
    status: str  # a value of medspace.model.CODE_STATUSES
    finding: FindingKind | None  # the data-quality finding to record for the row, if any


# HL7 table 0396's names for "a local code" (L, 99zzz) and the usual spellings of the same.
_LOCAL_NAMES = frozenset({"l", "local", "lc", "99l", "99local"})


def local_system(sent: str | None, sender: str | None = None) -> str:
    """The name a local code system is stored under: `local:<sender>` when the sender only said "local"
    (HL7 v2 `L`, `99zzz`, or nothing), else `local:<the system as named>`."""
    name = (sent or "").strip()
    low = name.lower()
    if not name or low in _LOCAL_NAMES or (low.startswith("99") and len(low) <= 8):
        return f"local:{(sender or '').strip() or 'unknown'}"
    return name if name.startswith("local:") else f"local:{name}"


def pick_concept(
    table: str,
    codings: Iterable[tuple[str | None, str | None, str | None]],
    text: str | None = None,
    *,
    sender: str | None = None,
) -> Concept:
    """Choose how a coded concept is stored, keeping what was sent (never raises for a code it cannot
    verify): the best valid coding in a system the table accepts (`standard`); else a code of an
    accepted system that fails its check, as sent (`invalid`); else the first code in any other system,
    as sent (`local`, system named by `local_system` unless it is a known system the table does not
    accept); else the text alone (`text`). Raises MappingError(MISSING_FIELD) only for a concept with
    neither a code nor any text."""
    accepted = TABLES[table].code_systems
    best: tuple[int, str, str, str | None] | None = None
    invalid: tuple[str, str, str | None] | None = None
    other: tuple[str, str, str | None] | None = None
    first_display: str | None = None
    for raw_system, code, display in codings:
        if first_display is None and display:
            first_display = display
        if not code or not isinstance(code, str) or not code.strip():
            continue
        system = _canonical_system(raw_system)
        if system is None or system not in accepted:
            if other is None:
                other = (system or local_system(raw_system, sender), code.strip(), display)
            continue
        norm = normalise_code(system, code)
        if not code_valid(system, norm):
            if invalid is None:
                invalid = (system, code.strip(), display)
            continue
        rank = accepted.index(system)
        if best is None or rank < best[0]:
            best = (rank, system, norm, display)
    label = text or first_display
    if best is not None:
        return Concept(best[1], best[2], best[3] or label, "standard",
                       FindingKind.INVALID_CODE_SKIPPED if invalid is not None else None)
    if invalid is not None:
        return Concept(invalid[0], invalid[1], invalid[2] or label, "invalid", FindingKind.INVALID_CODE)
    if other is not None:
        return Concept(other[0], other[1], other[2] or label, "local", FindingKind.LOCAL_CODE)
    if label:
        return Concept(None, None, label, "text", FindingKind.TEXT_ONLY)
    raise MappingError(Reason.MISSING_FIELD, f"{table} has neither a code nor a text")


@dataclass(frozen=True)
class Limits:
    """The longest string a node stores in one field, in characters; a longer value sends its input unit
    to quarantine (`bad_value`). Free text (notes) and attachments are allowed much more than the rest."""

    value_chars: int = 65_536
    text_chars: int = 16 << 20

    def __post_init__(self) -> None:
        if self.value_chars < 1 or self.text_chars < 1:
            raise ValueError("limits must be positive")


_limits = Limits()


def limits() -> Limits:
    """The string-size limits in force."""
    return _limits


def set_limits(new: Limits) -> Limits:
    """Put new string-size limits in force (e.g. from `medspace ingest --max-value-chars`); returns the old."""
    global _limits
    old, _limits = _limits, new
    _completion.cache_clear()
    return old


@cache
def _text_fields(table: str) -> frozenset[str]:
    return frozenset(f.name for f in TABLES[table] if PHI.FREE_TEXT in f.phi)


def _check_sizes(table: str, row: dict[str, Any]) -> None:
    lim = _limits.value_chars
    for name, v in row.items():
        if v.__class__ is str and len(v) > lim:
            big = _limits.text_chars if name in _text_fields(table) else lim
            if len(v) > big:
                raise MappingError(Reason.BAD_VALUE, f"{table}.{name} is longer than {big:,} characters "
                                                     f"(the limit; see --max-value-chars / --max-text-chars)")


@cache
def _completion(table: str) -> tuple[tuple[str, ...], str | None]:
    """A table's required fields, and its rows' level when no code can change it (None if one can)."""
    can_be_l1 = table == "genetic_variant" or any(t == table for t, _ in L1_PREFIXES)
    return TABLES[table].required, None if can_be_l1 else row_level(table).value


def complete(table: str, row: dict[str, Any], source: str) -> dict[str, Any]:
    """Fill in the row's sensitivity level and source, and check the catalogue's required fields."""
    required, level = _completion(table)
    _check_sizes(table, row)
    if "code_status" not in row and "code_status" in TABLES[table]:
        row["code_status"] = "standard"  # a connector that only stores verified standard codes
    if level is None:
        status = row.get("code_status")
        level = row_level(table, row.get("code_system"), row.get("code"), text=row.get("display"),
                          standard=status is None or status == "standard").value
    row["sensitivity"] = level
    row["source"] = source
    for name in required:
        v = row.get(name)
        if v is None or v == "":
            raise MappingError(Reason.MISSING_FIELD, f"{table}.{name} is required")
    return row
