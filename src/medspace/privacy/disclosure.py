"""Statistical disclosure control for aggregate tables: minimum cell size, dominance, complementary suppression.

Every count, sum or mean table that leaves a node passes through here. A table is an N-dimensional array of
interior cells together with all its margins (every GROUPING SETS combination, up to the grand total); it is
held as the *augmented* array of shape ``(n_1 + 1, ..., n_d + 1)`` whose last index on each axis is that
axis' total. The additive constraints an attacker knows are: along every axis, every line's interior cells
add up to the line's total cell; every cell is non-negative.

Primary (sensitive) cells
    * **Small cell** (counts; for sums the number of contributors): ``0 < n < min_cell`` (default 5), on
      interior cells and on margins alike. Required protection: the attacker's feasible interval for the
      cell must reach ``min_cell`` (he cannot rule out that the cell is publishable, so he cannot learn that
      it is small) and, with ``hide_presence`` (default), reach 0 (he cannot rule out that the cell is empty,
      so he cannot learn that anyone is in it). That is, the interval contains ``[0, min_cell]``. Without
      ``hide_presence`` the lower end need only reach ``n - 1``.
    * **Zeros**: true zeros are published (common practice in health statistics; a zero is not a person).
      With ``publish_zeros=False`` an empty cell is primary and its interval must reach ``min_cell``.
      Empty cells are never chosen as complementary cells: an empty cell may be a structural zero the
      attacker knows (pregnant men), and then suppressing it hides nothing.
    * **Dominance** (sums): the (n, k) rule, default (2, 85 %): the n largest contributors make up more than
      k % of the cell; required protection ``100/k * (x_1 + ... + x_n) - X`` on both sides. Optionally the
      p % rule: ``X - x_1 - x_2 < p/100 * x_1``; required protection ``p/100 * x_1 - (X - x_1 - x_2)``.
      Contributions are summed per contributor (e.g. patient) within each cell, margins included. A sum cell
      with fewer than ``min_cell`` contributors is primary too, with a required range of
      ``threshold_pct`` % (default 30 %) of its value on both sides, besides the count protection above.
    * Lower protection is capped at the value itself (no interval reaches below 0).

Complementary suppression (the hypercube method of Repsilber and Giessing)
    For each primary cell in turn (margins first, then by position), all hypercubes of the augmented table
    that have the cell as a corner are evaluated at once (vectorised): a cube picks, on every axis, one
    partner index. The perturbation that adds +d to the cell and +/-d to the other corners (sign flips along
    an axis only when both indices are interior cells; a total corner moves with its line) keeps every
    published cell and every additive constraint fixed. The cube protects the cell when the corners that go
    down have room for it: value >= upper protection (cell goes up), value >= lower protection (cell goes
    down). Among protecting cubes the cheapest is taken, cost being the value of newly suppressed cells
    (``cost="value"``, ties by fewer cells) or the number of newly suppressed cells (``cost="cells"``, ties by
    value); ties after that go to the first cube in a fixed order, so the result is deterministic. Already
    suppressed corners are free. When no single cube suffices (a small margin whose interior cells are all
    small), cubes are added one after another on the residual table until the required range is covered.
    Each primary cell thus has an explicit witness table, equal to the true one on every published cell and
    non-negative, at each end of its required range. For counts the witnesses are integer tables, so the
    protection holds against an attacker who solves the integer problem, not only its LP relaxation. A margin
    becomes a complementary suppression whenever the cheapest cube has a total corner, e.g. a line with a
    single other cell.

    For tables with several layers (counts and sums, for means) one suppression pattern is shared and each
    layer's requirements are met on that pattern, so releasing all layers together is protected.

Verifier
    :func:`feasible_intervals` and :meth:`ProtectedTable.verify` compute, with ``scipy.optimize.linprog``
    (HiGHS) over the additive constraints given every published cell, each suppressed cell's feasible
    interval, and report primary cells whose interval does not contain the required range, and any
    suppressed cell that is exactly determined. By default a cell's LPs stop as soon as the LP solutions
    seen (each one a feasible table) prove its range and that it is not a point, and LPs that push all open
    cells up or down at once come first, so the verdict costs a handful of LPs per table; ``exact=True``
    solves both ends of every interval. The LP relaxation's interval contains the integer one, so a
    passing audit is about the LP attacker; the construction above covers the integer attacker.

Input: an N-D numpy array of interior counts with :class:`Axis` labels, or a long table (pyarrow, a
mapping of columns, or anything with ``__arrow_c_stream__`` such as a DuckDB relation): group columns and
a count column as ``GROUP BY`` returns them, or record-level rows (counts, and contributions for sums).
The margins are computed here, with the semantics of ``GROUP BY CUBE``.

What leaves the node: :meth:`ProtectedTable.published` / :meth:`ProtectedTable.to_arrow` (values with
suppressed cells as null, margins included). The reasons (:meth:`ProtectedTable.suppressions`,
:meth:`ProtectedTable.report`) and the audit are for the node's steward: telling a reader which suppressed
cells are primary would tell him which cells are small.

Not modelled: hierarchical classifications (nested codes whose sub-totals are published), tables linked by
more than a shared pattern, and the singleton problem (a contributor who subtracts his own share).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medspace.privacy.errors import InputError, ProtectionError, RulesError

__all__ = [
    "TOTAL",
    "Audit",
    "Axis",
    "CellInterval",
    "DisclosureRules",
    "ProtectedTable",
    "Reason",
    "Suppression",
    "augment",
    "feasible_intervals",
    "protect_counts",
    "protect_sums",
]


class _Total:
    """The label of a margin along an axis."""

    _instance: _Total | None = None

    def __new__(cls) -> _Total:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "TOTAL"


TOTAL = _Total()


class Reason(StrEnum):
    """Why a cell is suppressed."""

    SMALL_CELL = "small_cell"  # primary: 0 < n < min_cell (counts, or contributors of a sum)
    ZERO = "zero"  # primary: an empty cell, with publish_zeros=False
    DOMINANCE_NK = "dominance_nk"  # primary: the n largest contributors exceed k % of the cell
    P_PERCENT = "p_percent"  # primary: the p % rule
    COMPLEMENTARY = "complementary"  # secondary: protects a primary cell against recomputation from margins


_BITS: dict[Reason, int] = {
    Reason.SMALL_CELL: 1,
    Reason.ZERO: 2,
    Reason.DOMINANCE_NK: 4,
    Reason.P_PERCENT: 8,
    Reason.COMPLEMENTARY: 16,
}
_PRIMARY_MASK = 1 | 2 | 4 | 8


@dataclass(frozen=True)
class DisclosureRules:
    """The disclosure rules a node applies; see the module docstring for what each one means."""

    min_cell: int = 5
    publish_zeros: bool = True
    hide_presence: bool = True
    nk: tuple[int, float] | None = (2, 85.0)
    p_percent: float | None = None
    threshold_pct: float = 30.0
    cost: Literal["value", "cells"] = "value"

    def __post_init__(self) -> None:
        if isinstance(self.min_cell, bool) or not isinstance(self.min_cell, int) or self.min_cell < 1:
            raise RulesError("min_cell must be an integer >= 1")
        if self.nk is not None:
            n, k = self.nk
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise RulesError("nk: n must be an integer >= 1")
            if not (0.0 < float(k) <= 100.0):
                raise RulesError("nk: k must be a percentage in (0, 100]")
        if self.p_percent is not None and not (0.0 < float(self.p_percent) <= 100.0):
            raise RulesError("p_percent must be a percentage in (0, 100]")
        if not (math.isfinite(self.threshold_pct) and self.threshold_pct >= 0.0):
            raise RulesError("threshold_pct must be a finite percentage >= 0")
        if self.cost not in ("value", "cells"):
            raise RulesError("cost must be 'value' or 'cells'")


@dataclass(frozen=True)
class Axis:
    """One dimension of a table: its name and its category labels, in order (the total comes after them)."""

    name: str
    labels: tuple[Any, ...]
    arrow_type: pa.DataType | None = field(default=None, compare=False)  # the source column's type, for to_arrow

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Suppression:
    """One suppressed cell for the steward's report: where it is and why, never its value."""

    position: tuple[int, ...]  # index into the augmented table; an axis' length means its total
    labels: tuple[Any, ...]  # category label per axis, TOTAL for a margin
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class CellInterval:
    """A suppressed cell's feasible interval in one layer, as an attacker computes it from what is published."""

    position: tuple[int, ...]
    layer: str
    low: float
    high: float
    required_low: float | None  # the interval must reach at least this low (primary cells with a demand)
    required_high: float | None
    determined: bool  # the interval is a single point
    protected: bool  # reaches the required range (True for cells with no requirement)
    exact: bool = True  # low and high are the LP optimum; False: an inner bound that already proves the range


@dataclass(frozen=True)
class Audit:
    """The verifier's findings for a protected table (node-local: the intervals derive from true values)."""

    intervals: tuple[CellInterval, ...]

    @property
    def violations(self) -> tuple[CellInterval, ...]:
        """Primary cells not protected in a layer where they are sensitive."""
        return tuple(c for c in self.intervals if not c.protected)

    @property
    def determined(self) -> tuple[CellInterval, ...]:
        """Suppressed cells whose value the published table fixes exactly (in any layer)."""
        return tuple(c for c in self.intervals if c.determined)

    @property
    def ok(self) -> bool:
        """True when every sensitive cell's interval contains its required range."""
        return not self.violations


@dataclass(frozen=True)
class _Layer:
    values: np.ndarray  # augmented, float64
    lower: np.ndarray  # required distance below the value (0: none)
    upper: np.ndarray  # required distance above the value (0: none)
    integer: bool


@dataclass(frozen=True)
class ProtectedTable:
    """A table after disclosure control: true values (node-local), the suppression pattern and its reasons."""

    axes: tuple[Axis, ...]
    rules: DisclosureRules
    suppressed: np.ndarray  # bool, augmented shape
    reasons: np.ndarray  # uint8 bit flags, augmented shape
    _layers: dict[str, _Layer] = field(repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """The augmented shape: one more than the number of categories on each axis (the total)."""
        return tuple(self.suppressed.shape)

    @property
    def layers(self) -> tuple[str, ...]:
        """The layer names ("count", and "sum" for a sums table)."""
        return tuple(self._layers)

    def true_values(self, layer: str = "count") -> np.ndarray:
        """The unprotected augmented values of a layer; node-local, never to be released."""
        return self._layer(layer).values.copy()

    def required_range(self, layer: str = "count") -> tuple[np.ndarray, np.ndarray]:
        """Per augmented cell, how far below and above its value an attacker's interval must reach (0: no
        requirement); node-local."""
        lay = self._layer(layer)
        return lay.lower.copy(), lay.upper.copy()

    def published(self, layer: str = "count") -> np.ma.MaskedArray:
        """The releasable augmented array of a layer: suppressed cells masked, margins at each axis' last index."""
        lay = self._layer(layer)
        data = lay.values.astype(np.int64) if lay.integer else lay.values.copy()
        return np.ma.MaskedArray(data, mask=self.suppressed.copy())

    def to_arrow(self, layers: Sequence[str] | None = None, mean: bool | None = None) -> pa.Table:
        """The releasable long table: one row per cell and margin, group columns null where a margin sums
        the axis out, ``grouping`` as SQL GROUPING() (bit set for an aggregated column, first column
        highest), suppressed values null; ``mean`` is sum / count where both are published and count > 0."""
        names = list(self.layers if layers is None else layers)
        for name in names:
            self._layer(name)
        with_mean = ("count" in names and "sum" in names) if mean is None else mean
        if with_mean and not ("count" in self._layers and "sum" in self._layers):
            raise InputError("mean needs the count and sum layers")
        reserved = {*names, "grouping", *(["mean"] if with_mean else [])}
        clash = [a.name for a in self.axes if a.name in reserved]
        if clash:
            raise InputError(f"axis name {clash[0]!r} clashes with an output column")
        shape = self.shape
        size = int(np.prod(shape))
        coords = np.unravel_index(np.arange(size, dtype=np.int64), shape) if shape else ()
        cols: dict[str, pa.Array] = {}
        grouping = np.zeros(size, dtype=np.int64)
        d = len(self.axes)
        for k, ax in enumerate(self.axes):
            labels = pa.array(list(ax.labels), type=ax.arrow_type)
            ext = pa.concat_arrays([labels, pa.nulls(1, type=labels.type)])
            cols[ax.name] = ext.take(pa.array(coords[k]))
            grouping |= (coords[k] == len(ax)).astype(np.int64) << (d - 1 - k)
        mask = self.suppressed.ravel()
        for name in names:
            lay = self._layers[name]
            vals = lay.values.ravel()
            cols[name] = pa.array(vals.astype(np.int64) if lay.integer else vals, mask=mask)
        if with_mean:
            cnt = self._layers["count"].values.ravel()
            sm = self._layers["sum"].values.ravel()
            safe = np.where(cnt > 0, cnt, 1.0)
            cols["mean"] = pa.array(sm / safe, mask=mask | (cnt <= 0))
        cols["grouping"] = pa.array(grouping)
        return pa.table(cols)

    def suppressions(self) -> list[Suppression]:
        """Every suppressed cell with its reasons, in position order (steward's report; no values)."""
        out: list[Suppression] = []
        for flat in np.flatnonzero(self.suppressed.ravel()):
            pos = tuple(int(i) for i in np.unravel_index(int(flat), self.shape))
            bits = int(self.reasons.ravel()[flat])
            out.append(Suppression(pos, self._labels(pos), tuple(r for r, b in _BITS.items() if bits & b)))
        return out

    def summary(self) -> dict[str, int]:
        """How many cells each rule suppressed (a cell with two primary reasons counts under both)."""
        flat = self.reasons.ravel()
        out = {r.value: int(np.count_nonzero(flat & b)) for r, b in _BITS.items()}
        out["suppressed"] = int(np.count_nonzero(self.suppressed))
        out["cells"] = int(self.suppressed.size)
        return out

    def report(self) -> dict[str, Any]:
        """A JSON-able account for the steward: the rules, counts per reason and each suppressed cell's reasons."""
        return {
            "rules": {
                "min_cell": self.rules.min_cell,
                "publish_zeros": self.rules.publish_zeros,
                "hide_presence": self.rules.hide_presence,
                "nk": list(self.rules.nk) if self.rules.nk else None,
                "p_percent": self.rules.p_percent,
                "threshold_pct": self.rules.threshold_pct,
                "cost": self.rules.cost,
            },
            "axes": [a.name for a in self.axes],
            "counts": self.summary(),
            "cells": [
                {"labels": ["TOTAL" if lb is TOTAL else str(lb) for lb in s.labels],
                 "reasons": [r.value for r in s.reasons]}
                for s in self.suppressions()
            ],
        }

    def verify(self, cells: Literal["all", "primary"] = "all", exact: bool = False) -> Audit:
        """Run the LP verifier on every layer over each suppressed (or only primary) cell. With ``exact`` every
        interval is solved; otherwise a cell's LPs stop once solutions prove its required range and that it
        is not a point (its interval is then an inner bound); the verdicts are the same either way."""
        out: list[CellInterval] = []
        primary = (self.reasons & _PRIMARY_MASK) != 0
        targets = self.suppressed if cells == "all" else primary
        target_flat = np.flatnonzero(targets.ravel())
        for name, lay in self._layers.items():
            vals = lay.values.ravel()
            dn, up = lay.lower.ravel(), lay.upper.ravel()
            demand = (dn > 0) | (up > 0)
            need_lo = np.where(demand, vals - dn, np.nan)
            need_hi = np.where(demand, vals + up, np.nan)
            if exact:
                lo, hi, known = _intervals(lay.values, self.suppressed, targets, None, None)
            else:
                lo, hi, known = _intervals(lay.values, self.suppressed, targets, need_lo, need_hi)
            tol = 1e-6 * max(1.0, float(np.abs(vals).max(initial=0.0)))
            for i, flat in enumerate(target_flat):
                determined = bool(hi[i] - lo[i] <= tol)
                protected = True
                if demand[flat]:
                    protected = bool(lo[i] <= need_lo[flat] + tol and hi[i] >= need_hi[flat] - tol and not determined)
                out.append(CellInterval(
                    tuple(int(j) for j in np.unravel_index(int(flat), self.shape)), name, float(lo[i]), float(hi[i]),
                    float(need_lo[flat]) if demand[flat] else None, float(need_hi[flat]) if demand[flat] else None,
                    determined, protected, bool(known[i])))
        return Audit(tuple(out))

    def _layer(self, name: str) -> _Layer:
        if name not in self._layers:
            raise InputError(f"no layer {name!r}; this table has {list(self._layers)}")
        return self._layers[name]

    def _labels(self, pos: tuple[int, ...]) -> tuple[Any, ...]:
        return tuple(TOTAL if i == len(ax) else ax.labels[i] for ax, i in zip(self.axes, pos, strict=True))


# ---------------------------------------------------------------------------------------------------------
# Margins and the attacker's LP


def augment(interior: np.ndarray) -> np.ndarray:
    """The augmented array of an N-D table: every margin appended as the last index of its axes."""
    a = np.asarray(interior)
    for k in range(a.ndim):
        a = np.concatenate([a, a.sum(axis=k, keepdims=True)], axis=k)
    return a


def _line_equations(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """All additive lines of an augmented table: (lines x cells) flat indices and +1/-1 coefficients, per axis."""
    idx = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    rows: list[np.ndarray] = []
    coefs: list[np.ndarray] = []
    width = max(shape) if shape else 0
    for k, n in enumerate(shape):
        lines = np.moveaxis(idx, k, -1).reshape(-1, n)
        coef = np.ones(lines.shape, dtype=np.float64)
        coef[:, -1] = -1.0
        # pad to a common width so all axes stack into one array; padding has coefficient 0
        pad = width - n
        rows.append(np.pad(lines, ((0, 0), (0, pad)), constant_values=0))
        coefs.append(np.pad(coef, ((0, 0), (0, pad)), constant_values=0.0))
    if not rows:
        return np.zeros((0, 0), dtype=np.int64), np.zeros((0, 0))
    return np.concatenate(rows), np.concatenate(coefs)


def feasible_intervals(values: np.ndarray, suppressed: np.ndarray,
                       cells: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of each suppressed cell over non-negative augmented tables that agree on every published
    cell and satisfy all additive lines (LP, HiGHS). ``cells`` (bool, same shape) limits which suppressed
    cells are solved; results follow their flat order. An unbounded maximum is ``inf``."""
    lo, hi, _ = _intervals(values, suppressed, cells, None, None)
    return lo, hi


def _solve_component(a_eq: Any, b: np.ndarray, true: np.ndarray, targets: np.ndarray,
                     need_lo: np.ndarray | None, need_hi: np.ndarray | None,
                     tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intervals of ``targets`` (local variable indices) in one connected sub-problem; see :func:`_intervals`."""
    from scipy.optimize import linprog

    # every LP solution is a feasible table, and so is the true one: the values seen bound each interval
    # from inside, and a cell seen at 0 has its exact minimum
    seen_lo = true.astype(np.float64, copy=True)
    seen_hi = seen_lo.copy()
    lo_known = seen_lo <= tol
    hi_known = np.zeros(true.size, dtype=bool)

    def solve(obj: np.ndarray) -> tuple[int, float]:
        r = linprog(obj, A_eq=a_eq, b_eq=b, bounds=(0, None), method="highs")
        if r.status == 0:
            x = np.maximum(r.x, 0.0)
            np.minimum(seen_lo, x, out=seen_lo)
            np.maximum(seen_hi, x, out=seen_hi)
            lo_known[x <= tol] = True
        elif r.status != 3:
            raise ProtectionError(f"verifier LP failed (status {r.status}) on {true.size} linked suppressed cells")
        return int(r.status), float(r.fun) if r.status == 0 else -np.inf

    def proven(i: int, j: int) -> bool:
        if lo_known[j] and hi_known[j]:
            return True
        if need_lo is None or need_hi is None:
            return False
        ok_lo = bool(np.isnan(need_lo[i]) or seen_lo[j] <= need_lo[i] + tol)
        ok_hi = bool(np.isnan(need_hi[i]) or seen_hi[j] >= need_hi[i] - tol)
        return ok_lo and ok_hi and bool(seen_hi[j] - seen_lo[j] > tol)

    if need_lo is not None:
        # LPs pushing all unproven targets up (down) at once: each extreme table settles many cells; repeat
        # while a round still settles a fair share, then finish cell by cell
        open_ = np.ones(targets.size, dtype=bool)
        for _ in range(8):
            before = int(open_.sum())
            if before == 0:
                break
            weight = np.zeros(true.size)
            weight[targets[open_]] = 1.0
            solve(-weight)
            solve(weight)
            open_ = np.array([not proven(i, int(j)) for i, j in enumerate(targets)], dtype=bool)
            if before - int(open_.sum()) < max(2, before // 10):
                break
    for i, j in enumerate(int(t) for t in targets):
        obj = np.zeros(true.size)
        if not proven(i, j) and not hi_known[j]:
            obj[j] = -1.0
            status, fun = solve(obj)
            seen_hi[j] = -fun if status == 0 else np.inf
            hi_known[j] = True
        if not proven(i, j) and not lo_known[j]:
            obj[j] = 1.0
            _, fun = solve(obj)
            seen_lo[j] = fun
            lo_known[j] = True
    return seen_lo[targets], seen_hi[targets], (lo_known & hi_known)[targets]


def _intervals(values: np.ndarray, suppressed: np.ndarray, cells: np.ndarray | None,
               need_lo: np.ndarray | None, need_hi: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feasible intervals of the chosen suppressed cells: exact when ``need_lo``/``need_hi`` are None;
    otherwise LPs stop as soon as solutions seen so far prove a cell reaches ``need_lo`` (flat, augmented;
    nan: no requirement), ``need_hi`` and is not a single point, so ``low``/``high`` may be inner bounds.
    Returns low, high and whether each is exact (both ends solved or proven)."""
    from scipy.sparse import coo_matrix, csr_matrix
    from scipy.sparse.csgraph import connected_components

    vals = np.asarray(values, dtype=np.float64).ravel()
    sup = np.asarray(suppressed, dtype=bool).ravel()
    want = sup if cells is None else (np.asarray(cells, dtype=bool).ravel() & sup)
    var_cells = np.flatnonzero(sup)
    var_of = np.full(sup.size, -1, dtype=np.int64)
    var_of[var_cells] = np.arange(var_cells.size)
    targets = np.flatnonzero(want)
    lo = np.zeros(targets.size)
    hi = np.full(targets.size, np.inf)
    exact = np.ones(targets.size, dtype=bool)
    if targets.size == 0:
        return lo, hi, exact
    tol = 1e-6 * max(1.0, float(np.abs(vals).max(initial=0.0)))
    lines, coef = _line_equations(tuple(np.shape(values)))
    is_var = sup[lines] & (coef != 0)
    keep = is_var.any(axis=1)
    lines, coef, is_var = lines[keep], coef[keep], is_var[keep]
    rhs = -(coef * vals[lines] * ~is_var).sum(axis=1)
    eq_rows, pos = np.nonzero(is_var)
    a_eq = csr_matrix((coef[eq_rows, pos], (eq_rows, var_of[lines[eq_rows, pos]])),
                      shape=(lines.shape[0], var_cells.size))
    # variables linked through equations form independent sub-problems; solve each on its own
    nv, ne = var_cells.size, lines.shape[0]
    link = coo_matrix((np.ones(eq_rows.size), (var_of[lines[eq_rows, pos]], nv + eq_rows)), shape=(nv + ne, nv + ne))
    _, comp = connected_components(link, directed=False)
    target_var = var_of[targets]
    for c in np.unique(comp[target_var]):
        cvars = np.flatnonzero(comp[:nv] == c)
        ceqs = np.flatnonzero(comp[nv:] == c)
        mine = np.flatnonzero(comp[target_var] == c)
        if ceqs.size == 0:
            continue  # a cell in no equation (0-D table): [0, inf)
        local = np.searchsorted(cvars, target_var[mine])
        flats = targets[mine]
        lo[mine], hi[mine], exact[mine] = _solve_component(
            a_eq[ceqs][:, cvars], rhs[ceqs], vals[var_cells[cvars]], local,
            None if need_lo is None or need_hi is None else need_lo[flats],
            None if need_lo is None or need_hi is None else need_hi[flats],
            tol)
    return lo, hi, exact


# ---------------------------------------------------------------------------------------------------------
# Complementary suppression


def _cubes(target: tuple[int, ...], shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """All hypercubes with ``target`` as a corner: (corners x cubes) flat indices and +1/-1 perturbation signs.
    Corner row 0 is the target itself."""
    d = len(shape)
    strides = np.array([int(np.prod(shape[k + 1:])) for k in range(d)], dtype=np.int64)
    parts = [np.delete(np.arange(n, dtype=np.int64), target[k]) for k, n in enumerate(shape)]
    grid = tuple(len(p) for p in parts)
    m = int(np.prod(grid))
    if d == 0 or m == 0:
        return np.zeros((1, 0), dtype=np.int64), np.zeros((1, 0), dtype=np.int8)
    flips = [np.where((target[k] != shape[k] - 1) & (parts[k] != shape[k] - 1), -1, 1).astype(np.int8)
             for k in range(d)]
    corners = np.empty((2**d, m), dtype=np.int64)
    signs = np.empty((2**d, m), dtype=np.int8)
    for ci, bits in enumerate(itertools.product((0, 1), repeat=d)):
        flat: np.ndarray = np.zeros(grid, dtype=np.int64)
        sign: np.ndarray = np.ones(grid, dtype=np.int8)
        for k, b in enumerate(bits):
            if b:
                shp = [1] * d
                shp[k] = grid[k]
                flat = flat + (parts[k] * strides[k]).reshape(shp)
                sign = sign * flips[k].reshape(shp)
            else:
                flat = flat + target[k] * strides[k]
        corners[ci] = np.broadcast_to(flat, grid).ravel()
        signs[ci] = np.broadcast_to(sign, grid).ravel()
    return corners, signs


def _pick(ok: np.ndarray, main: np.ndarray, tie: np.ndarray) -> int:
    """The first cube (in enumeration order) with the least (main, tie) cost among ``ok``."""
    cand = np.flatnonzero(ok)
    order = np.lexsort((cand, tie[cand], main[cand]))
    return int(cand[order[0]])


def _costs(sup: np.ndarray, corners: np.ndarray, cost_val: np.ndarray, cost: str) -> tuple[np.ndarray, np.ndarray]:
    """Each cube's (main, tie-break) cost: the value and the number of its corners not yet suppressed."""
    fresh = ~sup[corners]
    value = np.where(fresh, cost_val[corners], 0.0).sum(axis=0)
    cells = fresh.sum(axis=0).astype(np.float64)
    return (value, cells) if cost == "value" else (cells, value)


def _complement(layers: Sequence[_Layer], cost_layer: _Layer, allowed: np.ndarray,
                primary: np.ndarray, rules: DisclosureRules) -> np.ndarray:
    """The suppression pattern: primary cells plus complementary cells chosen by the hypercube method."""
    shape = primary.shape
    sup = primary.ravel().copy()
    if primary.ndim == 0 or not primary.any() or min(shape) < 2:
        return sup.reshape(shape)
    allowed_f = allowed.ravel()
    cost_val = np.where(allowed_f, np.abs(cost_layer.values.ravel()), np.inf)
    flat_lay = [(lay.values.ravel(), lay.lower.ravel(), lay.upper.ravel()) for lay in layers]
    scale = max(1.0, max(float(np.abs(v).max(initial=0.0)) for v, _, _ in flat_lay))
    tol = 1e-9 * scale
    prim_flat = np.flatnonzero(primary.ravel())
    coords = np.unravel_index(prim_flat, shape)
    n_totals = sum((c == n - 1).astype(np.int64) for c, n in zip(coords, shape, strict=True))
    # higher-level margins first: their cubes are the costliest, and later cells reuse their corners for free
    for flat in prim_flat[np.lexsort((prim_flat, -n_totals))]:
        target = tuple(int(i) for i in np.unravel_index(int(flat), shape))
        corners, signs = _cubes(target, shape)
        if corners.shape[1] == 0:
            continue
        down_corner = signs > 0  # corners that go down when the target goes down
        up_corner = signs < 0  # corners that go down when the target goes up

        main, tie = _costs(sup, corners, cost_val, rules.cost)
        ok = np.isfinite(main)
        demands: list[tuple[np.ndarray, np.ndarray, float]] = []
        for vals, lower, upper in flat_lay:
            if lower[flat] <= 0 and upper[flat] <= 0:
                continue
            cv = vals[corners]
            if lower[flat] > 0:
                demands.append((vals, down_corner, float(lower[flat])))
                ok &= np.where(down_corner, cv, np.inf).min(axis=0) >= lower[flat] - tol
            if upper[flat] > 0:
                demands.append((vals, up_corner, float(upper[flat])))
                ok &= np.where(up_corner, cv, np.inf).min(axis=0) >= upper[flat] - tol
        if ok.any():
            sup[corners[:, _pick(ok, main, tie)]] = True
            continue
        # no single cube has room for the whole range: add cubes on the residual table, one direction at a time
        for vals, goes_down, need in demands:
            residual = vals.copy()
            remaining = need
            for _ in range(corners.shape[1] + 1):
                if remaining <= tol:
                    break
                main, tie = _costs(sup, corners, cost_val, rules.cost)
                cap = np.where(goes_down, residual[corners], np.inf).min(axis=0)
                usable = np.isfinite(main) & (cap > tol)
                if not usable.any():
                    break
                full = usable & (cap >= remaining - tol)
                # a cube that covers the rest at least cost, else the most room per unit of cost
                best = _pick(full, main, tie) if full.any() else _pick(usable, main / np.where(usable, cap, 1.0), -cap)
                step = min(float(cap[best]), remaining)
                col, dn = corners[:, best], goes_down[:, best]
                residual[col[dn]] -= step
                residual[col[~dn]] += step
                sup[col] = True
                remaining -= step
            if remaining > tol:
                where = ", ".join(f"{i}" for i in target)
                raise ProtectionError(f"the sensitive cell at position ({where}) cannot be protected by suppression")
    return sup.reshape(shape)


# ---------------------------------------------------------------------------------------------------------
# Primary rules


def _count_protection(counts: np.ndarray, rules: DisclosureRules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small-cell and zero rules on an augmented count array: reason bits, lower and upper protection."""
    m = rules.min_cell
    small = (counts > 0) & (counts < m)
    zero = (counts == 0) & (not rules.publish_zeros)
    bits = np.where(small, _BITS[Reason.SMALL_CELL], 0) | np.where(zero, _BITS[Reason.ZERO], 0)
    upper = np.where(small | zero, m - counts, 0.0)
    lower_small = counts if rules.hide_presence else np.minimum(counts, 1.0)
    lower = np.where(small, lower_small, 0.0)
    return bits.astype(np.uint8), lower.astype(np.float64), upper.astype(np.float64)


def _finish(axes: Sequence[Axis], layers: dict[str, _Layer], bits: np.ndarray, cost_layer: str,
            rules: DisclosureRules) -> ProtectedTable:
    counts = layers["count"].values
    primary = (bits & _PRIMARY_MASK) != 0
    if counts.ndim and min(counts.shape) < 2:
        # an axis without categories: every cell is an empty total, structurally zero and known to be
        primary = np.zeros_like(primary)
        bits = np.zeros_like(bits)
        layers = {k: _Layer(v.values, np.zeros_like(v.lower), np.zeros_like(v.upper), v.integer)
                  for k, v in layers.items()}
    allowed = counts > 0
    sup = _complement(list(layers.values()), layers[cost_layer], allowed, primary, rules)
    bits = bits | np.where(sup & ~primary, _BITS[Reason.COMPLEMENTARY], 0).astype(np.uint8)
    return ProtectedTable(tuple(axes), rules, sup, bits, layers)


# ---------------------------------------------------------------------------------------------------------
# Inputs


def _as_table(data: pa.Table | Mapping[str, Any]) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    if hasattr(data, "__arrow_c_stream__"):  # a DuckDB relation, a polars frame, ...
        return pa.RecordBatchReader.from_stream(data).read_all()
    if isinstance(data, Mapping):
        try:
            return pa.table({k: (v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v))
                             for k, v in data.items()})
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise InputError(f"columns cannot be read as a table ({type(exc).__name__})") from None
    raise InputError(f"expected a pyarrow Table or a mapping of columns, got {type(data).__name__}")


def _column(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:
        raise InputError(f"no column {name!r} in the table")
    col = table.column(name).combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col


def _encode(table: pa.Table, by: Sequence[str],
            categories: Mapping[str, Sequence[Any]] | None) -> tuple[list[Axis], np.ndarray]:
    """Axes (sorted categories, or the given ones) and each row's interior flat cell index."""
    if len(set(by)) != len(by):
        raise InputError("the group columns repeat a name")
    axes: list[Axis] = []
    codes: list[np.ndarray] = []
    for name in by:
        col = _column(table, name)
        if categories is not None and name in categories:
            given = list(categories[name])
            try:
                labels = pa.array(given, type=col.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                raise InputError(f"the categories of column {name!r} do not have the column's type") from None
            if len(pc.unique(labels)) != len(labels):
                raise InputError(f"the categories of column {name!r} repeat a label")
        else:
            uniq = pc.unique(col)
            labels = uniq.take(pc.array_sort_indices(uniq, null_placement="at_end"))
        idx = pc.index_in(col, value_set=labels, skip_nulls=False)
        if idx.null_count:
            raise InputError(f"column {name!r}: {idx.null_count} rows fall outside the given categories")
        axes.append(Axis(name, tuple(labels.to_pylist()), labels.type))
        codes.append(idx.to_numpy(zero_copy_only=False).astype(np.int64))
    shape = tuple(len(a) for a in axes)
    if not codes:
        return axes, np.zeros(table.num_rows, dtype=np.int64)
    return axes, np.ravel_multi_index(tuple(codes), shape) if table.num_rows else np.zeros(0, dtype=np.int64)


def _numbers(table: pa.Table, name: str, integer: bool) -> np.ndarray:
    col = _column(table, name)
    if col.null_count:
        raise InputError(f"column {name!r} has {col.null_count} nulls; filter or fill them first")
    if integer:
        if not (pa.types.is_integer(col.type) or pa.types.is_decimal(col.type) or pa.types.is_floating(col.type)):
            raise InputError(f"column {name!r} must hold integer counts")
        arr = col.to_numpy(zero_copy_only=False)
        if arr.dtype == object:
            arr = np.array([int(v) for v in arr], dtype=np.int64) if len(arr) else np.zeros(0, dtype=np.int64)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise InputError(f"column {name!r} must hold integer counts")
        out = np.asarray(arr, dtype=np.float64)
    else:
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type)):
            raise InputError(f"column {name!r} must be numeric")
        out = np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        if not np.all(np.isfinite(out)):
            raise InputError(f"column {name!r} has non-finite values")
    if np.any(out < 0):
        raise InputError(f"column {name!r} has negative values; disclosure rules here assume non-negative data")
    return out


def protect_counts(data: pa.Table | Mapping[str, Any] | np.ndarray, *, by: Sequence[str] | None = None,
                   count: str | None = None, axes: Sequence[Axis] | None = None,
                   categories: Mapping[str, Sequence[Any]] | None = None,
                   rules: DisclosureRules | None = None) -> ProtectedTable:
    """Protect a frequency table: small cells (and zeros if asked), then complementary suppression.

    ``data`` is either an N-D array of interior counts (``axes`` names them; default ``axis0``... with
    labels 0..n-1) or a long table (pyarrow, or a mapping of columns): the ``by`` group columns and a
    ``count`` column, as ``SELECT a, b, count(*) AS n ... GROUP BY a, b`` returns it. Rows with the same key
    are added, so with ``count=None`` every row counts one (record-level input). Categories are the sorted
    distinct values (nulls last) unless ``categories`` lists them, which also brings in empty cells a
    GROUP BY leaves out. Margins are computed here."""
    rules = rules or DisclosureRules()
    if isinstance(data, np.ndarray):
        if by is not None or count is not None or categories is not None:
            raise InputError("by, count and categories apply to long tables; name an array's axes with axes=")
        arr = np.asarray(data)
        if arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not np.all(np.isfinite(arr)
                                                                                  & (arr == np.round(arr)))):
            raise InputError("the array must hold integer counts")
        if np.any(arr < 0):
            raise InputError("the array has negative counts")
        if axes is None:
            axes = [Axis(f"axis{k}", tuple(range(n))) for k, n in enumerate(arr.shape)]
        axes = list(axes)
        if tuple(len(a) for a in axes) != arr.shape:
            raise InputError("the axes' label counts do not match the array's shape")
        interior: np.ndarray = arr.astype(np.float64)
    else:
        if axes is not None:
            raise InputError("axes= applies to arrays; a long table's axes come from by=")
        if by is None:
            raise InputError("a long table needs by= (its group columns)")
        table = _as_table(data)
        axes, cell = _encode(table, list(by), categories)
        shape = tuple(len(a) for a in axes)
        weights = _numbers(table, count, integer=True) if count is not None else np.ones(table.num_rows)
        size = int(np.prod(shape))
        interior = np.bincount(cell, weights=weights, minlength=size).reshape(shape) if size else np.zeros(shape)
    counts = augment(interior)
    bits, lower, upper = _count_protection(counts, rules)
    layers = {"count": _Layer(counts, lower, upper, integer=True)}
    return _finish(axes, layers, bits, "count", rules)


def _contributions(cell: np.ndarray, values: np.ndarray, who: np.ndarray | None, shape: tuple[int, ...],
                   nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Per augmented cell: the number of distinct contributors, and the ``nmax`` largest contributions (rows
    of the second array, largest first, 0 where there are fewer). A contributor's rows are summed first."""
    aug_shape = tuple(n + 1 for n in shape)
    size = int(np.prod(aug_shape))
    ncontrib = np.zeros(size)
    tops = np.zeros((nmax, size))
    coords = np.unravel_index(cell, shape) if cell.size and shape else tuple(np.zeros(0, np.int64) for _ in shape)
    aug_strides = [int(np.prod(aug_shape[k + 1:])) for k in range(len(shape))]
    width = int(who.max(initial=0)) + 1 if who is not None else 1
    for keep in itertools.product((True, False), repeat=len(shape)):
        aug = np.zeros(cell.size, dtype=np.int64)
        for k, kept in enumerate(keep):
            aug += (coords[k] if kept else shape[k]) * aug_strides[k]
        if cell.size == 0:
            continue
        # one integer sort groups rows by cell and, within a cell, by contributor
        if who is not None:
            key = aug * width + who
            order = np.argsort(key)
            ks = key[order]
            first = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
            v = np.add.reduceat(values[order], first)
            g = ks[first] // width
        else:
            order = np.argsort(aug)
            g, v = aug[order], values[order]
        start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        run = np.diff(np.r_[start, g.size])
        ncontrib[g[start]] = run
        seg = np.repeat(np.arange(start.size), run)
        work = v.astype(np.float64, copy=True)
        for r in range(nmax):
            top = np.maximum.reduceat(work, start)
            tops[r, g[start]] = np.where(np.isfinite(top), top, 0.0)
            # take out one occurrence of each cell's maximum, so the next round finds the next largest
            hit = np.flatnonzero(work == top[seg])
            once = hit[np.r_[True, seg[hit][1:] != seg[hit][:-1]]] if hit.size else hit
            work[once] = -np.inf
    return ncontrib, tops


def protect_sums(data: pa.Table | Mapping[str, Any], *, by: Sequence[str], value: str,
                 contributor: str | None = None, categories: Mapping[str, Sequence[Any]] | None = None,
                 rules: DisclosureRules | None = None) -> ProtectedTable:
    """Protect a magnitude table (sums, and counts and means with them) from per-contributor values.

    ``data`` has one row per contribution: the ``by`` group columns and a non-negative ``value`` column;
    ``contributor`` (e.g. a pseudonymous patient key) adds up a contributor's rows in each cell, otherwise
    each row is its own contributor. The table has layers ``count`` (contributors per interior cell, added
    up the margins) and ``sum``; primary cells are those with too few contributors (small-cell rule on the
    count) or a dominant few (the (n, k) and p % rules on every cell, margins included, from the
    contributions under it). One suppression pattern protects both layers."""
    rules = rules or DisclosureRules()
    table = _as_table(data)
    axes, cell = _encode(table, list(by), categories)
    shape = tuple(len(a) for a in axes)
    vals = _numbers(table, value, integer=False)
    who: np.ndarray | None = None
    if contributor is not None:
        col = _column(table, contributor)
        if col.null_count:
            raise InputError(f"column {contributor!r} has {col.null_count} nulls")
        who = np.asarray(pc.dictionary_encode(col).indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    nmax = max(rules.nk[0] if rules.nk else 1, 2)
    size = int(np.prod(shape))
    aug_shape = tuple(n + 1 for n in shape)
    distinct, tops = _contributions(cell, vals, who, shape, nmax)
    interior = tuple(slice(0, n) for n in shape)
    counts = augment(distinct.reshape(aug_shape)[interior])  # additive: interior contributors summed up
    sums = augment((np.bincount(cell, weights=vals, minlength=size) if size else np.zeros(0)).reshape(shape))

    # the small-cell rule counts distinct contributors, which at a margin may be fewer than the additive count
    distinct = distinct.reshape(aug_shape)
    bits, c_lower, c_upper = _count_protection(distinct, rules)
    c_lower = np.minimum(c_lower, counts)
    small = (bits & _BITS[Reason.SMALL_CELL]) != 0
    s_upper = np.where(small, rules.threshold_pct / 100.0 * sums, 0.0)
    x1 = tops[0].reshape(aug_shape)
    x2 = tops[1].reshape(aug_shape)
    if rules.nk is not None:
        n, k = rules.nk
        top_n = tops[:n].sum(axis=0).reshape(aug_shape)
        nk_hit = top_n > k / 100.0 * sums * (1 + 1e-12)
        bits |= np.where(nk_hit, _BITS[Reason.DOMINANCE_NK], 0).astype(np.uint8)
        s_upper = np.maximum(s_upper, np.where(nk_hit, 100.0 / k * top_n - sums, 0.0))
    if rules.p_percent is not None:
        p = rules.p_percent / 100.0
        rest = sums - x1 - x2
        p_hit = rest < p * x1 * (1 - 1e-12)
        p_hit &= sums > 0
        bits |= np.where(p_hit, _BITS[Reason.P_PERCENT], 0).astype(np.uint8)
        s_upper = np.maximum(s_upper, np.where(p_hit, p * x1 - rest, 0.0))
    s_lower = np.minimum(s_upper, sums)
    layers = {
        "count": _Layer(counts, c_lower, c_upper, integer=True),
        "sum": _Layer(sums, s_lower, s_upper, integer=False),
    }
    return _finish(axes, layers, bits, "sum", rules)
