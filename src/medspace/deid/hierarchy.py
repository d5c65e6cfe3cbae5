"""Generalisation hierarchies, ARX-style: level 0 is the value as recorded, each higher level coarser.

A :class:`Hierarchy` covers a fixed set of distinct *base values* of one attribute. It is held as arrays:
``values`` (the sorted distinct base values, a pyarrow array that may hold one null), and per level an integer
array mapping base-value index -> label index plus the labels of that level. Every level is a coarsening of the
one below it (checked), so a class at one level never splits at a higher one: this is what makes the
generalisation lattice monotone. The top level is usually the single label ``*``.

Hierarchies are declared by a *spec* that a policy file can name (``intervals``, ``dates``, ``prefix``,
``icd10``, ``table``, ``suppress``; see :func:`spec_from_options`) and fitted to a column's distinct values
with ``spec.fit(attribute, column)``. ``Hierarchy.encode`` turns a column into base codes (hash-based
``dictionary_encode`` + ``index_in`` over the column's distinct values, never row by row);
``Hierarchy.generalise`` gives a column's labels at a level. A value the hierarchy does not cover raises
:class:`HierarchyError` naming the attribute and counting values, never showing one.

Nulls: rule-based specs keep a null as its own base value whose label is null at every level below the top
and ``*`` at the top (an "unknown" class). ``table`` hierarchies cover only the values they list.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medspace.deid.errors import HierarchyError

Column: TypeAlias = pa.Array | pa.ChunkedArray | np.ndarray | Sequence[Any]
STAR = "*"
__all__ = ["HIERARCHY_KINDS", "ICD10", "ICD10_CHAPTERS", "STAR", "Column", "Dates", "Hierarchy", "HierarchySpec",
           "Intervals", "Prefix", "Suppress", "Table", "as_array", "fit_all", "spec_from_options"]
HIERARCHY_KINDS = ("intervals", "dates", "prefix", "icd10", "table", "suppress")


def as_array(column: Column) -> pa.Array:
    """A column (pyarrow, numpy or a sequence) as one contiguous pyarrow array, dictionaries decoded."""
    arr = _raw_array(column)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    return arr


def _raw_array(column: Column) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        arr = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        if column.num_chunks == 0:
            arr = pa.array([], type=column.type)
    elif isinstance(column, pa.Array):
        arr = column
    else:
        arr = pa.array(column)
    return arr


class Hierarchy:
    """A generalisation hierarchy of one attribute over a fixed set of base values (see the module doc)."""

    def __init__(self, attribute: str, values: pa.Array, codes: Sequence[np.ndarray], labels: Sequence[pa.Array],
                 kind: str = "table") -> None:
        n = len(values)
        if not codes or len(codes) != len(labels):
            raise HierarchyError(f"hierarchy of {attribute}: needs at least one level, with labels for each")
        if pc.count_distinct(values, mode="all").as_py() != n:
            raise HierarchyError(f"hierarchy of {attribute}: base values are not distinct")
        cs: list[np.ndarray] = []
        ls: list[pa.Array] = []
        for lvl, (c, lab) in enumerate(zip(codes, labels, strict=True)):
            c = np.asarray(c)
            if c.shape != (n,) or (n and (c.min() < 0 or c.max() >= len(lab))):
                raise HierarchyError(f"hierarchy of {attribute}: level {lvl} maps base values out of its labels")
            lab = as_array(lab)
            if not pa.types.is_string(lab.type):
                lab = lab.cast(pa.string())
            used = np.bincount(c, minlength=len(lab)) > 0 if n else np.zeros(len(lab), bool)
            if not used.all():  # drop labels no base value reaches, so that cardinalities are real
                remap = np.cumsum(used) - 1
                c = remap[c]
                lab = lab.filter(pa.array(used))
            cs.append(c.astype(np.int32))
            ls.append(lab)
        for lvl in range(1, len(cs)):
            up = np.full(len(ls[lvl - 1]), -1, np.int64)
            up[cs[lvl - 1]] = cs[lvl]
            if not np.array_equal(up[cs[lvl - 1]], cs[lvl]):
                raise HierarchyError(f"hierarchy of {attribute}: level {lvl} is not a coarsening of level {lvl - 1} "
                                     "(values grouped together below are split above)")
        self.attribute = attribute
        self.kind = kind
        self.values = values
        self._codes = tuple(cs)
        self._labels = tuple(ls)
        self._maps: dict[tuple[int, int], np.ndarray] = {}

    def __repr__(self) -> str:
        cards = "/".join(str(len(lab)) for lab in self._labels)
        return f"Hierarchy({self.attribute!r}, kind={self.kind!r}, levels={self.levels}, cardinalities={cards})"

    @property
    def levels(self) -> int:
        """Number of levels, 0 .. levels - 1."""
        return len(self._codes)

    @property
    def top(self) -> int:
        """The highest level."""
        return len(self._codes) - 1

    def cardinality(self, level: int) -> int:
        """Number of distinct labels at a level."""
        return len(self._labels[self._check(level)])

    def labels_at(self, level: int) -> pa.Array:
        """The labels of a level (a label's index is its code)."""
        return self._labels[self._check(level)]

    def codes_at(self, level: int) -> np.ndarray:
        """Base-value index -> label code at a level."""
        return self._codes[self._check(level)]

    def map(self, from_level: int, to_level: int) -> np.ndarray:
        """Label code at ``from_level`` -> label code at ``to_level`` (``to_level >= from_level``)."""
        key = (self._check(from_level), self._check(to_level))
        if to_level < from_level:
            raise HierarchyError(f"hierarchy of {self.attribute}: cannot map level {from_level} down to {to_level}")
        m = self._maps.get(key)
        if m is None:
            m = np.empty(self.cardinality(from_level), np.int32)
            m[self._codes[from_level]] = self._codes[to_level]
            self._maps[key] = m
        return m

    def encode(self, column: Column) -> np.ndarray:
        """Base codes (int32) of a column; every value must be a base value of the hierarchy."""
        arr = _raw_array(column)
        if pa.types.is_dictionary(arr.type) and arr.null_count == 0:
            indices, dictionary = arr.indices, arr.dictionary
        else:
            if pa.types.is_dictionary(arr.type):
                arr = arr.cast(arr.type.value_type)
            d = pc.dictionary_encode(arr, null_encoding="encode")
            indices, dictionary = d.indices, d.dictionary
        # only the distinct values are cast and looked up, never the rows
        where = pc.index_in(self._coerce(dictionary), value_set=self.values, skip_nulls=False)
        idx = indices.to_numpy(zero_copy_only=False)
        if where.null_count:
            missing = np.asarray(pc.is_null(where).to_numpy(zero_copy_only=False), bool)
            rows = int(missing[idx].sum())
            raise HierarchyError(f"hierarchy of {self.attribute} does not cover {int(missing[np.unique(idx)].sum())}"
                                 f" distinct value(s) of the column ({rows} row(s))")
        lookup = where.to_numpy(zero_copy_only=False).astype(np.int32)
        return lookup[idx]

    def generalise(self, column: Column, level: int) -> pa.Array:
        """The labels of a column's values at a level (strings; null stays null below the top)."""
        return self.labels_for(self._codes[self._check(level)][self.encode(column)], level)

    def labels_for(self, codes: np.ndarray, level: int) -> pa.Array:
        """The labels of label codes of a level."""
        return self._labels[self._check(level)].take(pa.array(codes, pa.int32()))

    def _check(self, level: int) -> int:
        if not 0 <= level < len(self._codes):
            raise HierarchyError(f"hierarchy of {self.attribute} has levels 0..{self.top}, not {level}")
        return level

    def _coerce(self, arr: pa.Array) -> pa.Array:
        if arr.type == self.values.type:
            return arr
        if pa.types.is_date(self.values.type) and pa.types.is_timestamp(arr.type) and arr.type.tz is not None:
            arr = arr.cast(pa.timestamp(arr.type.unit))  # a zoned time's calendar day in UTC
        try:
            return arr.cast(self.values.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise HierarchyError(f"hierarchy of {self.attribute}: a column of type {arr.type} cannot be read as "
                                 f"its base values ({self.values.type})") from None


# --- building blocks -------------------------------------------------------------------------------------

def _distinct(arr: pa.Array) -> pa.Array:
    """Sorted distinct values, null (if any) last."""
    u = pc.unique(arr)
    return u.take(pc.array_sort_indices(u))


def _level_from_keys(keys: np.ndarray, null: np.ndarray, fmt: Callable[[Any], str]) -> tuple[np.ndarray, pa.Array]:
    """A level from one sortable key per base value: equal keys share a label ``fmt(key)``; nulls get null."""
    codes = np.empty(len(keys), np.int32)
    uniq, inv = np.unique(keys[~null], return_inverse=True)
    codes[~null] = inv
    labels: list[str | None] = [fmt(u) for u in uniq.tolist()]
    if null.any():
        codes[null] = len(labels)
        labels.append(None)
    return codes, pa.array(labels, pa.string())


def _level_from_labels(labels: pa.Array | Sequence[str | None]) -> tuple[np.ndarray, pa.Array]:
    d = pc.dictionary_encode(as_array(labels), null_encoding="encode")
    return d.indices.to_numpy(zero_copy_only=False).astype(np.int32), d.dictionary.cast(pa.string())


def _star(n: int) -> tuple[np.ndarray, pa.Array]:
    return np.zeros(n, np.int32), pa.array([STAR])


def _null_mask(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.is_null(values, nan_is_null=True).to_numpy(zero_copy_only=False), bool)


def _as_strings(attribute: str, arr: pa.Array) -> pa.Array:
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr.cast(pa.string())
    try:
        return arr.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise HierarchyError(f"hierarchy of {attribute}: a column of type {arr.type} cannot be read as text") from None


def _build(attribute: str, kind: str, values: pa.Array, levels: list[tuple[np.ndarray, pa.Array]]) -> Hierarchy:
    return Hierarchy(attribute, values, [c for c, _ in levels], [lab for _, lab in levels], kind)


def _level0(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    return np.arange(len(values), dtype=np.int32), values.cast(pa.string())


# --- specs -----------------------------------------------------------------------------------------------

class HierarchySpec(ABC):
    """A declarative hierarchy; ``fit`` builds it over the distinct values of a column."""

    kind: ClassVar[str] = ""

    @abstractmethod
    def fit(self, attribute: str, column: Column) -> Hierarchy:
        """The hierarchy over the column's distinct values."""


@dataclass(frozen=True)
class Intervals(HierarchySpec):
    """Numbers into intervals of growing width (each a multiple of the last), then ``*``.

    Bins are aligned at 0: width 5 gives ``20-24`` for integers, ``[20, 25)`` for other numbers. With ``top``,
    values ``>= top`` form one group ``"{top}+"`` at *every* level, level 0 included (HIPAA: ages over 89),
    and the bin just below is cut at ``top``.
    """

    widths: tuple[float, ...] = (5, 10, 20)
    top: float | None = None
    kind: ClassVar[str] = "intervals"

    def __post_init__(self) -> None:
        ws = tuple(self.widths)
        if any(isinstance(w, bool) or not isinstance(w, int | float) or not w > 0 for w in ws):
            raise HierarchyError("intervals hierarchy: widths must be positive numbers")
        for a, b in itertools.pairwise(ws):
            if b <= a or not math.isclose(b / a, round(b / a)):
                raise HierarchyError("intervals hierarchy: each width must be a larger multiple of the one before "
                                     "(e.g. 5, 10, 20), so that intervals nest")
        if self.top is not None and (isinstance(self.top, bool) or not isinstance(self.top, int | float)):
            raise HierarchyError("intervals hierarchy: top must be a number")
        object.__setattr__(self, "widths", ws)

    def fit(self, attribute: str, column: Column) -> Hierarchy:
        """The hierarchy over the column's distinct values."""
        arr = as_array(column)
        if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type)
                or pa.types.is_null(arr.type)):
            raise HierarchyError(f"hierarchy of {attribute}: intervals need numbers, not {arr.type}")
        if pa.types.is_null(arr.type):
            arr = arr.cast(pa.int64())
        values = _distinct(arr)
        null = _null_mask(values)
        v = np.asarray(values.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)
        v = np.where(null, 0.0, v)
        integral = pa.types.is_integer(values.type) and all(float(w).is_integer() for w in self.widths)
        top = self.top
        topped = (v >= top) & ~null if top is not None else np.zeros(len(v), bool)
        levels: list[tuple[np.ndarray, pa.Array]] = []
        if topped.any():
            lab0 = pc.if_else(pa.array(topped), pa.scalar(f"{_num(top)}+"), values.cast(pa.string()))
            levels.append(_level_from_labels(lab0))
        else:
            levels.append(_level0(values))
        for w in self.widths:
            lo = np.floor(v / w) * w
            keys = np.where(topped, np.inf, lo)
            levels.append(_level_from_keys(keys, null, _interval_label(w, top, integral)))
        levels.append(_star(len(values)))
        return _build(attribute, self.kind, values, levels)


def _num(x: float | None) -> str:
    return "" if x is None else (str(int(x)) if float(x).is_integer() else f"{x:g}")


def _interval_label(width: float, top: float | None, integral: bool) -> Callable[[float], str]:
    def fmt(lo: float) -> str:
        if math.isinf(lo):
            return f"{_num(top)}+"
        hi = lo + width if top is None else min(lo + width, top)
        return f"{_num(lo)}-{_num(hi - 1)}" if integral else f"[{lo:g}, {hi:g})"
    return fmt


_DATE_LEVELS = ("month", "quarter", "year", "5-year", "decade")


@dataclass(frozen=True)
class Dates(HierarchySpec):
    """Dates: day -> the coarser ``levels`` in order (month, quarter, year, 5-year, decade) -> ``*``.

    Reads date32/date64, ISO ``YYYY-MM-DD`` strings and timestamps (a time is taken to its calendar day, so the
    base value is the day). Labels: ``2020-03``, ``2020-Q1``, ``2020``, ``2020-2024``, ``2020-2029``.
    """

    levels: tuple[str, ...] = ("month", "year", "decade")
    kind: ClassVar[str] = "dates"

    def __post_init__(self) -> None:
        lv = tuple(self.levels)
        if not lv or any(x not in _DATE_LEVELS for x in lv):
            raise HierarchyError(f"dates hierarchy: levels must be taken from {', '.join(_DATE_LEVELS)}")
        order = [_DATE_LEVELS.index(x) for x in lv]
        if order != sorted(set(order)):
            raise HierarchyError("dates hierarchy: levels must go from fine to coarse without repeats")
        object.__setattr__(self, "levels", lv)

    def fit(self, attribute: str, column: Column) -> Hierarchy:
        """The hierarchy over the column's distinct values."""
        arr = _as_dates(attribute, as_array(column))
        values = _distinct(arr)
        null = _null_mask(values)
        days = np.asarray(values.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False), np.int64)
        d64 = days.astype("datetime64[D]")
        months = d64.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
        years = d64.astype("datetime64[Y]").astype(np.int64) + 1970
        levels: list[tuple[np.ndarray, pa.Array]] = [_level0(values)]
        for name in self.levels:
            if name == "month":
                levels.append(_level_from_keys(months, null, lambda m: f"{1970 + m // 12:04d}-{m % 12 + 1:02d}"))
            elif name == "quarter":
                q = months // 3
                levels.append(_level_from_keys(q, null, lambda x: f"{1970 + x // 4:04d}-Q{x % 4 + 1}"))
            elif name == "year":
                levels.append(_level_from_keys(years, null, lambda y: f"{y:04d}"))
            else:
                span = 5 if name == "5-year" else 10
                levels.append(_level_from_keys((years // span) * span, null, _year_span(span)))
        levels.append(_star(len(values)))
        return _build(attribute, self.kind, values, levels)


def _year_span(span: int) -> Callable[[int], str]:
    return lambda y: f"{y:04d}-{y + span - 1:04d}"


def _as_dates(attribute: str, arr: pa.Array) -> pa.Array:
    t = arr.type
    try:
        if pa.types.is_date32(t):
            return arr
        if pa.types.is_timestamp(t) and t.tz is not None:
            arr = arr.cast(pa.timestamp(t.unit))
        if pa.types.is_null(t) or pa.types.is_date64(t) or pa.types.is_timestamp(t) or pa.types.is_string(t) \
                or pa.types.is_large_string(t):
            return arr.cast(pa.date32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = "values that are not ISO dates (YYYY-MM-DD)" if pa.types.is_string(t) else f"values of type {t}"
        raise HierarchyError(f"hierarchy of {attribute}: the column holds {bad}") from None
    raise HierarchyError(f"hierarchy of {attribute}: dates need a date, timestamp or ISO text column, not {t}")


@dataclass(frozen=True)
class Prefix(HierarchySpec):
    """Codes masked from the right: ``keep`` gives the characters kept per level, e.g. (5, 3, 0) for US ZIP codes,
    (6, 4, 2, 0) for GB 11643 area codes (province 2, city 4, district 6).

    ``keep[0]`` is the full code length (level 0 is the code as recorded); a level keeping k characters shows
    ``code[:k]`` padded with ``*`` to the code's own length (``100872`` -> ``1008**``); keeping 0 gives ``*``.
    """

    keep: tuple[int, ...] = (5, 3, 0)
    kind: ClassVar[str] = "prefix"

    def __post_init__(self) -> None:
        ks = tuple(self.keep)
        if len(ks) < 2 or any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in ks):
            raise HierarchyError("prefix hierarchy: keep must list at least two character counts >= 0, "
                                 "the full length first")
        if any(b >= a for a, b in itertools.pairwise(ks)):
            raise HierarchyError("prefix hierarchy: keep must decrease strictly (e.g. 6, 4, 2, 0)")
        object.__setattr__(self, "keep", ks)

    def fit(self, attribute: str, column: Column) -> Hierarchy:
        """The hierarchy over the column's distinct values."""
        values = _distinct(_as_strings(attribute, as_array(column)))
        strs: list[str | None] = values.to_pylist()
        levels: list[tuple[np.ndarray, pa.Array]] = [_level0(values)]
        for k in self.keep[1:]:
            if k == 0:
                lab: list[str | None] = [STAR] * len(strs)  # the top: nulls join everyone else
            else:
                lab = [s if s is None or len(s) <= k else s[:k] + STAR * (len(s) - k) for s in strs]
            levels.append(_level_from_labels(pa.array(lab, pa.string())))
        if self.keep[-1] != 0:
            levels.append(_star(len(values)))
        return _build(attribute, self.kind, values, levels)


# WHO ICD-10 (2019) chapters by the first code of their range; codes in gaps (ICD-10-CM's D49, K94, ...) fall to
# the chapter whose range starts last before them. U00-U99 (XXII) sits between XIX and XX in code order.
ICD10_CHAPTERS: tuple[tuple[str, str, str], ...] = (
    ("A00", "B99", "I"), ("C00", "D48", "II"), ("D50", "D89", "III"), ("E00", "E90", "IV"), ("F00", "F99", "V"),
    ("G00", "G99", "VI"), ("H00", "H59", "VII"), ("H60", "H95", "VIII"), ("I00", "I99", "IX"), ("J00", "J99", "X"),
    ("K00", "K93", "XI"), ("L00", "L99", "XII"), ("M00", "M99", "XIII"), ("N00", "N99", "XIV"), ("O00", "O99", "XV"),
    ("P00", "P96", "XVI"), ("Q00", "Q99", "XVII"), ("R00", "R99", "XVIII"), ("S00", "T98", "XIX"),
    ("U00", "U99", "XXII"), ("V01", "Y98", "XX"), ("Z00", "Z99", "XXI"),
)
_ICD10_RE = "^[A-Z][0-9][0-9A-Z]"


@dataclass(frozen=True)
class ICD10(HierarchySpec):
    """ICD-10 codes: code -> 3-character category (``E11``) -> chapter (``IV: E00-E90``) -> ``*``.

    Codes are read case-blind with or without the dot (``e11.9``, ``E119``); anything that does not start with a
    letter, a digit and a digit or letter is refused.
    """

    kind: ClassVar[str] = "icd10"

    def fit(self, attribute: str, column: Column) -> Hierarchy:
        """The hierarchy over the column's distinct values."""
        values = _distinct(_as_strings(attribute, as_array(column)))
        norm = pc.utf8_upper(pc.replace_substring(pc.utf8_trim_whitespace(values), ".", ""))
        ok = pc.match_substring_regex(norm, _ICD10_RE)
        bad = int(pc.sum(pc.invert(ok)).as_py() or 0)
        if bad:
            raise HierarchyError(f"hierarchy of {attribute}: {bad} distinct value(s) are not ICD-10 codes")
        null = _null_mask(values)
        cat = pc.utf8_slice_codeunits(norm, 0, 3)
        cats = np.asarray(cat.fill_null("").to_numpy(zero_copy_only=False), dtype="U3")
        starts = np.array([s for s, _, _ in ICD10_CHAPTERS], dtype="U3")
        chapter = np.clip(np.searchsorted(starts, cats, side="right") - 1, 0, len(starts) - 1)
        names = [f"{r}: {a}-{b}" for a, b, r in ICD10_CHAPTERS]
        levels = [_level0(values), _level_from_labels(cat),
                  _level_from_keys(chapter.astype(np.int64), null, lambda i: names[i]), _star(len(values))]
        return _build(attribute, self.kind, values, levels)


@dataclass(frozen=True)
class Table(HierarchySpec):
    """An explicit hierarchy, one row per base value: ``value;level1;level2;...`` (ARX's hierarchy CSV files)."""

    rows: tuple[tuple[str, ...], ...]
    kind: ClassVar[str] = "table"

    def __post_init__(self) -> None:
        rows = tuple(tuple("" if x is None else str(x) for x in r) for r in self.rows)
        if not rows:
            raise HierarchyError("table hierarchy: no rows")
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise HierarchyError(f"table hierarchy: rows have different numbers of levels ({sorted(widths)})")
        object.__setattr__(self, "rows", rows)

    @classmethod
    def from_csv(cls, source: str | Path, delimiter: str = ";") -> Table:
        """A table hierarchy from an ARX-style CSV file (a path) or its text (a string holding a newline)."""
        text = source if isinstance(source, str) and "\n" in source else Path(source).read_text("utf-8")
        rows = [tuple(line.rstrip("\r").split(delimiter)) for line in text.split("\n") if line.strip()]
        return cls(tuple(rows))

    def fit(self, attribute: str, column: Column | None = None) -> Hierarchy:
        """The whole table as a hierarchy; with a column, also check that it covers the column."""
        cols = list(zip(*self.rows, strict=True))
        values = pa.array(cols[0], pa.string())
        levels = [_level0(values)] + [_level_from_labels(pa.array(c, pa.string())) for c in cols[1:]]
        h = _build(attribute, self.kind, values, levels)
        if column is not None:
            h.encode(column)
        return h


@dataclass(frozen=True)
class Suppress(HierarchySpec):
    """Value -> ``*`` (two levels)."""

    kind: ClassVar[str] = "suppress"

    def fit(self, attribute: str, column: Column) -> Hierarchy:
        """The hierarchy over the column's distinct values."""
        values = _distinct(as_array(column))
        return _build(attribute, self.kind, values, [_level0(values), _star(len(values))])


def spec_from_options(kind: str, options: Mapping[str, Any]) -> HierarchySpec:
    """A hierarchy spec from a policy file's declarative parameters (raises :class:`HierarchyError`).

    ``intervals``: ``widths`` (list, default [5, 10, 20]), ``top`` (number); ``dates``: ``levels`` (list of month,
    quarter, year, 5-year, decade); ``prefix``: ``keep`` (list, full length first); ``icd10``: none;
    ``table``: ``rows`` (list of lists) or ``file`` (ARX CSV path) with optional ``delimiter``; ``suppress``: none.
    """
    allowed = {"intervals": {"widths", "top"}, "dates": {"levels"}, "prefix": {"keep"}, "icd10": set(),
               "table": {"rows", "file", "delimiter"}, "suppress": set()}
    if kind not in allowed:
        raise HierarchyError(f"unknown hierarchy {kind!r}; expected one of {', '.join(HIERARCHY_KINDS)}")
    for key in options:
        if key not in allowed[kind]:
            takes = f"; it takes {', '.join(sorted(allowed[kind]))}" if allowed[kind] else ""
            raise HierarchyError(f"{kind} hierarchy takes no option {key!r}{takes}")

    def seq(key: str, default: Sequence[Any]) -> tuple[Any, ...]:
        v = options.get(key, default)
        if not isinstance(v, list | tuple):
            raise HierarchyError(f"{kind} hierarchy: {key} must be a list")
        return tuple(v)

    if kind == "intervals":
        return Intervals(widths=seq("widths", (5, 10, 20)), top=options.get("top"))
    if kind == "dates":
        return Dates(levels=seq("levels", ("month", "year", "decade")))
    if kind == "prefix":
        if "keep" not in options:
            raise HierarchyError("prefix hierarchy needs keep, e.g. [5, 3, 0]")
        return Prefix(keep=seq("keep", ()))
    if kind == "icd10":
        return ICD10()
    if kind == "table":
        if ("rows" in options) == ("file" in options):
            raise HierarchyError("table hierarchy needs either rows or file")
        if "file" in options:
            delim = options.get("delimiter", ";")
            if not isinstance(delim, str) or len(delim) != 1:
                raise HierarchyError("table hierarchy: delimiter must be one character")
            try:
                return Table.from_csv(Path(str(options["file"])), delim)
            except OSError:
                raise HierarchyError("table hierarchy: the file cannot be read") from None
        rows = seq("rows", ())
        if not all(isinstance(r, list | tuple) for r in rows):
            raise HierarchyError("table hierarchy: rows must be lists of labels")
        return Table(tuple(tuple(r) for r in rows))
    return Suppress()


def fit_all(table: pa.Table | Mapping[str, Column], specs: Mapping[str, HierarchySpec | Hierarchy]) -> dict[str,
                                                                                                          Hierarchy]:
    """Fit each spec to its column (hierarchies already built pass through)."""
    out: dict[str, Hierarchy] = {}
    for name, spec in specs.items():
        if isinstance(spec, Hierarchy):
            out[name] = spec
            continue
        names = table.column_names if isinstance(table, pa.Table) else list(table)
        if name not in names:
            raise HierarchyError(f"hierarchy of {name}: the table has no such column")
        out[name] = spec.fit(name, table[name])
    return out

