"""The vectorised consent filter: which of a hospital's patients, and which of their records, a computation may use.

Built by :meth:`medspace.policy.consent.ConsentRegistry.consent_filter` (which caches it); re-exported by
:mod:`medspace.policy.consent`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from medspace.ledger.entry import Purpose
from medspace.policy.consent_decision import ConsentDecision, HospitalDefaults, _decide_rule, _default, _in_period
from medspace.policy.consent_fhir import ConsentRecord, ConsentStatus, Moment, Rule
from medspace.policy.errors import ConsentError


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
