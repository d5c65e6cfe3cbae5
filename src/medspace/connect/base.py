"""What every connector shares: the sink it writes to, quarantine records and reasons, and the
final check of a mapped row against the field catalogue."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any, Protocol

import pyarrow as pa

from medspace.connect.errors import MappingError, Reason
from medspace.model import TABLES, canonical_system, code_valid, normalise_code, row_level
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

    def end_source(self) -> None:
        """A source file is done: a hint that what it gave may be written out now."""


@dataclass
class MemorySink:
    """A sink that keeps everything in memory: for tests and small tools."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

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

    def end_source(self) -> None:
        """Nothing to write out: everything is in memory already."""

    @property
    def reasons(self) -> Counter[str]:
        """Quarantine counts per reason."""
        return Counter(q.reason.value for q in self.quarantined)


# Senders repeat a handful of system URIs and names: remember what each one canonicalises to.
_canonical_system = lru_cache(maxsize=4096)(canonical_system)


def pick_coding(
    table: str, codings: Iterable[tuple[str | None, str | None, str | None]]
) -> tuple[str, str, str | None]:
    """From (system, code, display) candidates, the first in a code system the table accepts,
    canonicalised and checked. Raises MappingError naming what was wrong."""
    accepted = TABLES[table].code_systems
    unaccepted = 0
    best: tuple[int, str, str, str | None] | None = None
    invalid: str | None = None
    for raw_system, code, display in codings:
        system = _canonical_system(raw_system)
        if system is None or system not in accepted:
            unaccepted += 1
            continue
        if not code or not isinstance(code, str):
            invalid = f"{system} coding without a code"
            continue
        code = normalise_code(system, code)
        if not code_valid(system, code):
            invalid = f"code is not a valid {system} code"
            continue
        rank = accepted.index(system)
        if best is None or rank < best[0]:
            best = (rank, system, code, display)
    if best is not None:
        return best[1], best[2], best[3]
    if invalid is not None:
        raise MappingError(Reason.INVALID_CODE, invalid)
    if not unaccepted:
        raise MappingError(Reason.MISSING_FIELD, f"{table} has no coding")
    # The systems as sent are not echoed: in a misaligned field they can be a patient's data.
    raise MappingError(
        Reason.UNKNOWN_CODE_SYSTEM,
        f"{table}: {unaccepted} coding(s), none in an accepted system ({', '.join(accepted)})",
    )


@cache
def _completion(table: str) -> tuple[tuple[str, ...], str | None]:
    """A table's required fields, and its rows' level when no code can change it (None if one can)."""
    can_be_l1 = table == "genetic_variant" or any(t == table for t, _ in L1_PREFIXES)
    return TABLES[table].required, None if can_be_l1 else row_level(table).value


def complete(table: str, row: dict[str, Any], source: str) -> dict[str, Any]:
    """Fill in the row's sensitivity level and source, and check the catalogue's required fields."""
    required, level = _completion(table)
    row["sensitivity"] = level or row_level(table, row.get("code_system"), row.get("code")).value
    row["source"] = source
    for name in required:
        v = row.get(name)
        if v is None or v == "":
            raise MappingError(Reason.MISSING_FIELD, f"{table}.{name} is required")
    return row
