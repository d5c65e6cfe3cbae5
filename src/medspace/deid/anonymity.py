"""Measure k-anonymity, l-diversity and t-closeness of any table, vectorised.

Rows are grouped by their quasi-identifiers once: each column is dictionary-encoded (hash, not sort), the codes
are combined into one mixed-radix int64 key and the key is made dense (``bincount`` when the key space is
small, ``np.unique`` otherwise). Sensitive values are then counted per class in one sparse pass over
``class * m + value`` (m distinct sensitive values), which gives every per-class figure without a Python loop:

- k: the smallest class;
- distinct l: the fewest distinct sensitive values in a class;
- entropy l: ``exp`` of the lowest class entropy (a class is entropy l-diverse iff its entropy >= log l);
- recursive (c, l): the largest l such that every class has ``r1 < c (r_l + ... + r_m)`` (r sorted descending);
- t: the largest Earth Mover's Distance between a class's sensitive distribution and the whole table's
  (Li, Li & Venkatasubramanian 2007): *equal* distance for categories (half the L1 distance) and *ordered*
  distance for numbers and dates (values ranked, adjacent ranks 1/(m-1) apart).

Nulls are values like any other (a null quasi-identifier is its own group; a null sensitive value is its own
category, ranked last for the ordered distance). :class:`PrivacyModel` holds the parameters the enforcement
search (``medspace.deid.lattice``) must reach; :meth:`AnonymityMeasures.satisfies` checks a measured table
against one (without suppression).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medspace.deid.errors import AnonymityError
from medspace.deid.hierarchy import Column, as_array

LVariant = Literal["distinct", "entropy", "recursive"]
Distance = Literal["auto", "equal", "ordered"]
TableLike: TypeAlias = pa.Table | Mapping[str, Column]
# The API; the other public functions are vectorised building blocks shared by lattice and risk.
__all__ = ["AnonymityMeasures", "Distance", "LVariant", "PrivacyModel", "TableLike", "equivalence_classes", "measure"]
_EPS = 1e-12  # float slack when comparing entropies and distances with their thresholds


@dataclass(frozen=True)
class PrivacyModel:
    """What a released table must reach: k-anonymity, optionally l-diversity and t-closeness on ``sensitive``.

    ``max_suppression`` is the largest share of rows the enforcement may suppress (rows in classes that fail).
    ``l_variant``: ``distinct`` (default), ``entropy`` or ``recursive`` (needs ``c``). ``t_distance``: ``auto``
    picks ``ordered`` for numeric/temporal sensitive attributes and ``equal`` otherwise.
    """

    k: int = 2
    l: int | None = None  # noqa: E741 - the model's name
    l_variant: LVariant = "distinct"
    c: float | None = None
    t: float | None = None
    t_distance: Distance = "auto"
    sensitive: str | None = None
    max_suppression: float = 0.05

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int | np.integer) or self.k < 1:
            raise AnonymityError("k must be an integer of at least 1")
        if self.l is not None and (isinstance(self.l, bool) or not isinstance(self.l, int | np.integer)
                                   or self.l < 1):
            raise AnonymityError("l must be an integer of at least 1")
        if self.l_variant not in ("distinct", "entropy", "recursive"):
            raise AnonymityError("l_variant must be distinct, entropy or recursive")
        if self.l_variant == "recursive" and self.l is not None and (self.c is None or not self.c > 0):
            raise AnonymityError("recursive (c, l)-diversity needs c > 0")
        if self.t is not None and not 0 <= self.t <= 1:
            raise AnonymityError("t must be a number in [0, 1]")
        if self.t_distance not in ("auto", "equal", "ordered"):
            raise AnonymityError("t_distance must be auto, equal or ordered")
        if (self.l is not None or self.t is not None) and not self.sensitive:
            raise AnonymityError("l-diversity and t-closeness need a sensitive attribute")
        if not 0 <= self.max_suppression < 1:
            raise AnonymityError("max_suppression must be a share in [0, 1)")

    @property
    def uses_sensitive(self) -> bool:
        """True if the model looks at the sensitive attribute."""
        return self.l is not None or self.t is not None

    def describe(self) -> str:
        """The model in words, e.g. ``k=5, distinct l=3``."""
        parts = [f"k={self.k}"]
        if self.l is not None:
            parts.append(f"recursive (c={self.c:g}, l={self.l})" if self.l_variant == "recursive"
                         else f"{self.l_variant} l={self.l}")
        if self.t is not None:
            parts.append(f"t={self.t:g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class AnonymityMeasures:
    """k, class sizes, l and t of a table over its quasi-identifiers (see the module doc)."""

    rows: int
    classes: int
    k: int  # smallest class; 0 for an empty table
    class_sizes: dict[int, int]  # class size -> number of classes of that size
    sensitive: str | None = None
    l_distinct: int | None = None
    l_entropy: float | None = None  # exp(lowest class entropy)
    c: float | None = None
    l_recursive: int | None = None  # largest l with recursive (c, l)-diversity, when c is given
    t: float | None = None  # largest class EMD
    t_distance: str | None = None

    def rows_in_classes_below(self, k: int) -> int:
        """Rows in classes smaller than k."""
        return sum(size * n for size, n in self.class_sizes.items() if size < k)

    def satisfies(self, model: PrivacyModel) -> bool:
        """True if every class meets the model (no suppression)."""
        if self.rows == 0:
            return True
        if self.k < model.k:
            return False
        if model.l is not None:
            if model.l_variant == "distinct":
                if self.l_distinct is None or self.l_distinct < model.l:
                    return False
            elif model.l_variant == "entropy":
                if self.l_entropy is None or np.log(self.l_entropy) < np.log(model.l) - _EPS:
                    return False
            elif self.l_recursive is None or self.c != model.c or self.l_recursive < model.l:
                return False
        return model.t is None or (self.t is not None and self.t <= model.t + _EPS)


# --- shared vectorised building blocks (also used by lattice and risk) -------------------------------------

def column(table: TableLike, name: str) -> pa.Array:
    """A named column of a table-like as one pyarrow array (missing names raise AnonymityError)."""
    names = table.column_names if isinstance(table, pa.Table) else list(table)
    if name not in names:
        raise AnonymityError(f"the table has no column {name!r}")
    return as_array(table[name])


def num_rows(table: TableLike, names: Sequence[str]) -> int:
    """Rows of a table-like (all named columns must agree)."""
    if isinstance(table, pa.Table):
        return table.num_rows
    lengths = {len(table[n]) for n in names if n in table}
    if len(lengths) > 1:
        raise AnonymityError("the columns have different lengths")
    return lengths.pop() if lengths else 0


def encode(arr: pa.Array) -> tuple[np.ndarray, int]:
    """Dense codes (int64) of a column and their number; null is a value of its own."""
    d = pc.dictionary_encode(arr, null_encoding="encode")
    return d.indices.to_numpy(zero_copy_only=False).astype(np.int64), len(d.dictionary)


def encode_sensitive(arr: pa.Array, distance: Distance) -> tuple[np.ndarray, int, bool]:
    """Codes of a sensitive column, their number and whether they are ranked (ordered distance)."""
    t = arr.type
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_temporal(t)
    ordered = distance == "ordered" or (distance == "auto" and numeric)
    d = pc.dictionary_encode(arr, null_encoding="encode")
    codes = d.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    if ordered:
        try:
            order = pc.array_sort_indices(d.dictionary).to_numpy()  # nulls last
        except pa.ArrowNotImplementedError:
            raise AnonymityError(f"the sensitive attribute's type {t} has no order for the ordered distance") from None
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        codes = rank[codes]
    return codes, len(d.dictionary), ordered


def densify(key: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct keys, dense index of each key) of int64 keys in ``[0, space)``."""
    n = len(key)
    if space <= max(4 * n, 1 << 12):  # a counting pass beats sorting up to a sparse key space
        counts = np.bincount(key, minlength=space)
        present = counts > 0
        rank = np.cumsum(present) - 1
        return np.flatnonzero(present), rank[key]
    uniq, inv = np.unique(key, return_inverse=True)
    return uniq, inv.reshape(-1)


def group(codes: Sequence[np.ndarray], cards: Sequence[int], n: int) -> tuple[np.ndarray, int, list[np.ndarray]]:
    """Group rows by several code columns: (group of each row, number of groups, each group's codes)."""
    if not codes:
        return np.zeros(n, np.int64), (1 if n else 0), []
    key = codes[0].astype(np.int64, copy=True)
    space = max(int(cards[0]), 1)
    decodable = True
    for col, card in zip(codes[1:], cards[1:], strict=True):
        card = max(int(card), 1)
        if space * card >= 1 << 62:  # would overflow: make the key dense first
            uniq, key = densify(key, space)
            key = key.astype(np.int64)
            space = len(uniq)
            decodable = False
        key *= card
        key += col
        space *= card
    uniq, inv = densify(key, space)
    inv = inv.astype(np.int64)
    g = len(uniq)
    if decodable:
        out: list[np.ndarray] = []
        rest = uniq.astype(np.int64, copy=True)
        for card in reversed(cards[1:]):
            card = max(int(card), 1)
            out.append(rest % card)
            rest //= card
        out.append(rest)
        return inv, g, [c.astype(np.int32) for c in reversed(out)]
    rep = np.empty(g, np.int64)
    rep[inv] = np.arange(len(inv))  # any member stands for its group: all share the codes
    return inv, g, [c[rep].astype(np.int32) for c in codes]


def pair_counts(cls: np.ndarray, val: np.ndarray, weights: np.ndarray | None, classes: int, m: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse class x value counts: (class, value, count), sorted by class then value, zero counts left out."""
    key = cls.astype(np.int64) * m + val
    space = classes * m
    if space <= max(4 * len(key), 1 << 16):
        cnt = np.bincount(key, weights=weights, minlength=space)
        nz = np.flatnonzero(cnt)
        counts = cnt[nz]
    else:
        nz, inv = np.unique(key, return_inverse=True)
        counts = np.bincount(inv.reshape(-1), weights=weights, minlength=len(nz))
    return nz // m, nz % m, np.rint(counts).astype(np.int64)


def distinct_per_class(p_cls: np.ndarray, classes: int) -> np.ndarray:
    """Distinct sensitive values per class."""
    return np.bincount(p_cls, minlength=classes)


def entropy_per_class(p_cls: np.ndarray, p_cnt: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each class's sensitive values."""
    c = p_cnt.astype(np.float64)
    s = np.bincount(p_cls, weights=c * np.log(c), minlength=len(sizes))
    size = np.maximum(sizes.astype(np.float64), 1.0)
    return np.maximum(np.log(size) - s / size, 0.0)


def recursive_l_per_class(p_cls: np.ndarray, p_cnt: np.ndarray, sizes: np.ndarray, c: float) -> np.ndarray:
    """Per class, the largest l for which ``r1 < c (r_l + ... + r_m)`` holds (0 if none)."""
    order = np.lexsort((-p_cnt, p_cls))
    cls = p_cls[order]
    cnt = p_cnt[order].astype(np.float64)
    classes = len(sizes)
    starts = np.searchsorted(cls, np.arange(classes))
    before = np.cumsum(cnt) - cnt  # sum of counts before each position, overall
    tail = sizes[cls].astype(np.float64) - (before - before[starts[cls]])  # r_j + ... + r_m within the class
    r1 = np.zeros(classes)
    has = starts < len(cls)
    r1[has] = cnt[starts[has]]
    return np.bincount(cls, weights=(c * tail > r1[cls]).astype(np.float64), minlength=classes).astype(np.int64)


def emd_per_class(p_cls: np.ndarray, p_val: np.ndarray, p_cnt: np.ndarray, sizes: np.ndarray, overall: np.ndarray,
                  ordered: bool) -> np.ndarray:
    """Earth Mover's Distance of each class's sensitive distribution to ``overall`` (a distribution over m)."""
    classes = len(sizes)
    m = len(overall)
    size = np.maximum(sizes.astype(np.float64), 1.0)
    q = p_cnt / size[p_cls]
    if not ordered or m <= 1:
        diff = np.bincount(p_cls, weights=np.abs(q - overall[p_val]), minlength=classes)
        covered = np.bincount(p_cls, weights=overall[p_val], minlength=classes)
        return np.clip(0.5 * (diff + 1.0 - covered), 0.0, 1.0)
    out = np.empty(classes)
    cum_p = np.cumsum(overall)[:-1]
    block = max(1, (1 << 21) // m)  # classes per dense block: bounded memory
    for start in range(0, classes, block):
        stop = min(start + block, classes)
        lo, hi = np.searchsorted(p_cls, [start, stop])
        dense = np.bincount((p_cls[lo:hi] - start) * m + p_val[lo:hi], weights=q[lo:hi],
                            minlength=(stop - start) * m).reshape(stop - start, m)
        out[start:stop] = np.abs(np.cumsum(dense, axis=1)[:, :-1] - cum_p).sum(axis=1) / (m - 1)
    return np.clip(out, 0.0, 1.0)


# --- measuring -------------------------------------------------------------------------------------------

def equivalence_classes(table: TableLike, quasi_identifiers: Sequence[str], exclude: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(class of each kept row, size of each class); ``exclude`` marks rows to leave out (e.g. suppressed)."""
    n = num_rows(table, quasi_identifiers)
    keep = _keep_mask(exclude, n)
    codes, cards = [], []
    for q in quasi_identifiers:
        arr = column(table, q)
        if keep is not None:
            arr = arr.filter(pa.array(keep))
        c, card = encode(arr)
        codes.append(c)
        cards.append(card)
    rows = n if keep is None else int(keep.sum())
    inv, g, _ = group(codes, cards, rows)
    return inv, np.bincount(inv, minlength=g).astype(np.int64)


def _keep_mask(exclude: np.ndarray | None, n: int) -> np.ndarray | None:
    if exclude is None:
        return None
    ex = np.asarray(exclude, bool)
    if ex.shape != (n,):
        raise AnonymityError(f"exclude must be a mask of {n} rows")
    return ~ex


def measure(table: TableLike, quasi_identifiers: Sequence[str], sensitive: str | None = None, *,
            c: float | None = None, t_distance: Distance = "auto", exclude: np.ndarray | None = None
            ) -> AnonymityMeasures:
    """k, class sizes and (with ``sensitive``) l and t of a table.

    ``exclude`` marks rows to leave out of the classes (e.g. suppressed rows); t is still measured against the
    sensitive distribution of the whole table, as the enforcement search does (ARX's convention).
    """
    if sensitive is not None and sensitive in quasi_identifiers:
        raise AnonymityError(f"{sensitive!r} cannot be both a quasi-identifier and the sensitive attribute")
    inv, sizes = equivalence_classes(table, quasi_identifiers, exclude)
    rows = len(inv)
    classes = len(sizes)
    hist_size, hist_n = np.unique(sizes, return_counts=True)
    base = AnonymityMeasures(rows=rows, classes=classes, k=int(sizes.min()) if classes else 0,
                             class_sizes={int(s): int(n) for s, n in zip(hist_size, hist_n, strict=True)})
    if sensitive is None:
        return base
    sv, m, ordered = encode_sensitive(column(table, sensitive), t_distance)
    if rows == 0:
        return AnonymityMeasures(**{**base.__dict__, "sensitive": sensitive, "c": c,
                                    "t_distance": "ordered" if ordered else "equal"})
    overall = np.bincount(sv, minlength=m) / len(sv)  # the whole table's, excluded rows too (as enforced)
    keep = _keep_mask(exclude, num_rows(table, [*quasi_identifiers, sensitive]))
    if keep is not None:
        sv = sv[keep]
    p_cls, p_val, p_cnt = pair_counts(inv, sv, None, classes, m)
    l_rec = int(recursive_l_per_class(p_cls, p_cnt, sizes, c).min()) if c is not None else None
    return AnonymityMeasures(
        rows=rows, classes=classes, k=base.k, class_sizes=base.class_sizes, sensitive=sensitive,
        l_distinct=int(distinct_per_class(p_cls, classes).min()),
        l_entropy=float(np.exp(entropy_per_class(p_cls, p_cnt, sizes).min())),
        c=c, l_recursive=l_rec,
        t=float(emd_per_class(p_cls, p_val, p_cnt, sizes, overall, ordered).max()),
        t_distance="ordered" if ordered else "equal")
