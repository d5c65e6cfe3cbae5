"""Enforce k-anonymity (with l-diversity / t-closeness) by an optimal search of the generalisation lattice.

The lattice is the product of the quasi-identifiers' hierarchy levels; a node gives one level per attribute.
A node *satisfies* the model when the rows in classes that fail it (size < k, too few distinct / too little
entropy, EMD > t) are at most ``max_suppression`` of all rows; those rows are then suppressed.

How it stays fast (after ARX): the rows are grouped **once** into the distinct combinations of base codes with
their counts (and, when l or t apply, sparse per-combination sensitive-value counts). Evaluating a node maps
those combinations' codes to the node's levels and regroups a weighted table that is far smaller than the
rows; a node is rolled up from the smallest already-evaluated node below it (its classes are unions of that
node's classes), so most evaluations work on a few hundred or thousand classes.

How it stays optimal (Flash, Kohlmayer et al. 2012): nodes are visited level by level, each unvisited node
starts a path upward that is binary-searched, with *predictive tagging*: a node that satisfies the model
tags all its generalisations as satisfying, one that fails tags all its specialisations as failing, so most
nodes are never evaluated. This is exact when the model is monotone under generalisation with suppression:
k-anonymity and distinct l-diversity always are; entropy / recursive l-diversity and t-closeness are when no
suppression is allowed. Otherwise the search tags with the monotone part (k and distinct l, which the full
model implies) and then checks the remaining candidates exactly, cheapest first, so the answer is still the
optimum.

Information loss (``metric``):

- ``loss`` (default): generalisation intensity, the mean over quasi-identifiers of ``level / top`` (0 = as
  recorded, 1 = all ``*``), ARX's height-based loss / Sweeney's precision. It is monotone (every
  generalisation loses strictly more), so the optimum is always a minimal satisfying node and Flash finds it
  without evaluating generalisations; it needs no row counts, so it is stable and explainable to a data
  protection officer ("age at level 2 of 4"). Ties go to the node suppressing fewer rows. Suppression itself
  is bounded by ``max_suppression`` rather than traded against generalisation.
- ``discernibility``: ``sum |E|^2`` over kept classes plus ``n`` per suppressed row (Bayardo & Agrawal). It
  is not monotone with suppression (generalising can un-suppress rows), so satisfying nodes above the minimal
  ones are checked too, pruned by the bound ``sum over all classes |E|^2`` of any node below (a lower bound for
  every generalisation).

Use::

    from medspace.deid.anonymity import PrivacyModel
    from medspace.deid.hierarchy import Intervals, Prefix, Suppress
    from medspace.deid.lattice import enforce

    result = enforce(patients, {"age": Intervals((5, 10, 20), top=90), "sex": Suppress(),
                                "area": Prefix((6, 4, 2, 0))},
                     PrivacyModel(k=5, l=2, sensitive="diagnosis", max_suppression=0.05))
    result.levels            # {"age": 2, "sex": 0, "area": 1}
    result.table             # QI columns as labels ("30-39", "1101**"), suppressed rows removed
    result.summary()         # counts for the report: loss, suppressed rows, nodes evaluated, ...

t-closeness is measured against the sensitive distribution of the whole input table (ARX's convention), so
``anonymity.measure(result_with_stars, qis, sensitive, exclude=result.suppressed)`` reproduces it.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medspace.deid.anonymity import (
    PrivacyModel,
    TableLike,
    column,
    densify,
    distinct_per_class,
    emd_per_class,
    encode_sensitive,
    entropy_per_class,
    group,
    num_rows,
    pair_counts,
    recursive_l_per_class,
)
from medspace.deid.errors import AnonymityError
from medspace.deid.hierarchy import STAR, Hierarchy, HierarchySpec, as_array

Metric = Literal["loss", "discernibility"]
SuppressedRows = Literal["remove", "star"]
__all__ = ["MAX_NODES", "Anonymisation", "Metric", "SuppressedRows", "enforce"]
MAX_NODES = 5_000_000
_EPS = 1e-12
_BASE = -1  # "level" of the distinct base values, below level 0
_USEFUL_BELOW = 4  # a node that cannot win is still checked when its failing would settle more nodes than this
_SLOTS = 512  # evaluated class tables kept for roll-ups
_CACHE_ROWS = 2_500_000  # classes kept over all slots: about 200 MB with 8 quasi-identifiers


def _weighted_groups(key: np.ndarray, weights: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct keys, summed weight of each) without the per-row inverse, which costs most."""
    n = len(key)
    if space <= max(4 * n, 1 << 12):
        total = np.bincount(key, weights=weights, minlength=space)
        uniq = np.flatnonzero(total)
        return uniq, np.rint(total[uniq]).astype(np.int64)
    bits = max(int(weights.max()).bit_length(), 1) if n else 1
    if space < 1 << (62 - bits):
        # one sort of (key, weight) packed in an int64 instead of argsort + inverse + bincount
        packed = np.sort((key << bits) | weights)
        keys = packed >> bits
        starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        return keys[starts], np.add.reduceat(packed & ((1 << bits) - 1), starts) if n else np.zeros(0, np.int64)
    uniq, inv = densify(key, space)
    return uniq, np.rint(np.bincount(inv, weights=weights, minlength=len(uniq))).astype(np.int64)


def _prod(xs: Sequence[int]) -> int:
    out = 1
    for x in xs:
        out *= max(int(x), 1)
    return out


@dataclass(frozen=True)
class Anonymisation:
    """The chosen generalisation and what it does to the table."""

    quasi_identifiers: tuple[str, ...]
    levels: dict[str, int]  # chosen level per quasi-identifier
    model: PrivacyModel
    metric: str
    information_loss: float  # the chosen metric's value
    loss: float  # generalisation intensity in [0, 1]
    discernibility: float
    rows: int
    suppressed: np.ndarray = field(repr=False)  # bool per input row
    suppressed_rows: int
    k: int  # smallest class among the kept rows (0 if none are kept)
    classes: int  # classes among the kept rows
    nodes_in_lattice: int
    nodes_evaluated: int
    seconds: float
    table: pa.Table | None = field(default=None, repr=False)

    def summary(self) -> dict[str, object]:
        """Plain data (counts and levels, no values) for reports."""
        return {"model": self.model.describe(), "levels": dict(self.levels), "metric": self.metric,
                "information_loss": self.information_loss, "loss": self.loss,
                "discernibility": self.discernibility, "rows": self.rows, "suppressed_rows": self.suppressed_rows,
                "k": self.k, "classes": self.classes, "nodes_in_lattice": self.nodes_in_lattice,
                "nodes_evaluated": self.nodes_evaluated, "seconds": round(self.seconds, 4)}


@dataclass
class _Classes:
    """A weighted table of classes at some levels: codes per QI, row count, sensitive counts per class."""

    levels: tuple[int, ...]
    weights: np.ndarray
    codes_: np.ndarray | None = None  # (q, classes) int64 codes, offset into the search's global code space
    key: np.ndarray | None = None  # or the classes' mixed-radix keys, decoded only when the table is kept
    radix: np.ndarray | None = None  # (q, 1)
    cards: np.ndarray | None = None  # (q, 1)
    offsets: np.ndarray | None = None  # (q, 1)
    s_cls: np.ndarray | None = None
    s_val: np.ndarray | None = None
    s_cnt: np.ndarray | None = None

    @property
    def codes(self) -> np.ndarray:
        """Each class's code per quasi-identifier (decoded from the keys on first use)."""
        if self.codes_ is None:
            assert self.key is not None and self.radix is not None and self.cards is not None
            self.codes_ = (self.key[None, :] // self.radix) % self.cards + self.offsets
            self.key = None
        return self.codes_


@dataclass(frozen=True)
class _Eval:
    suppressed: int  # rows in classes failing the full model
    relaxed: int  # rows in classes failing its monotone part
    discernibility: float
    squares: float  # sum |E|^2 over all classes: a lower bound of discernibility for every generalisation


class _Search:
    """One lattice search: the distinct base combinations, node tags, evaluations and the roll-up cache."""

    def __init__(self, hierarchies: Sequence[Hierarchy], base_codes: Sequence[np.ndarray], n: int,
                 model: PrivacyModel, metric: Metric, sensitive: tuple[np.ndarray, int, bool] | None) -> None:
        self.h = list(hierarchies)
        self.q = len(self.h)
        self.n = n
        self.model = model
        self.metric = metric
        self.allowed = int(np.floor(model.max_suppression * n + 1e-9))
        self.monotone = self.allowed == 0 or not (
            model.t is not None or (model.l is not None and model.l_variant != "distinct"))
        self.tops = np.array([h.top for h in self.h], np.int64)
        heights = self.tops + 1
        total = int(np.prod(heights, dtype=np.float64))
        if total > MAX_NODES:
            raise AnonymityError(f"the generalisation lattice has {total:,} nodes (limit {MAX_NODES:,}); "
                                 "use fewer quasi-identifiers or shorter hierarchies")
        self.nodes = np.stack(np.unravel_index(np.arange(total), tuple(heights)), axis=1).astype(np.int16) \
            if self.q else np.zeros((1, 0), np.int16)
        self.strides = np.array([int(np.prod(heights[i + 1:])) for i in range(self.q)], np.int64)
        self.N = len(self.nodes)
        self.sums = self.nodes.sum(axis=1, dtype=np.int64)
        norm = np.where(self.tops > 0, self.tops, 1).astype(np.float64)
        self.intensity = (self.nodes / norm).sum(axis=1) / max(self.q, 1)
        self.loss_key = np.round(self.intensity, 12)  # equal losses compare equal despite float sums
        order = np.lexsort((np.arange(self.N), self.loss_key, self.sums))
        self.order = order
        self.rank = np.empty(self.N, np.int64)
        self.rank[order] = np.arange(self.N)
        self.tag = np.zeros(self.N, np.int8)  # 1 satisfies (monotone part), -1 fails, 0 unknown
        self.evals: dict[int, _Eval] = {}
        self.lower = np.zeros(self.N) if metric == "discernibility" else None
        self.heap: list[tuple[int, int]] = []
        self.prune = self.monotone and metric == "loss"
        self.best_loss = np.inf
        self.best_dm = np.inf  # best discernibility of a node found to satisfy the whole model
        # evaluated class tables kept for roll-ups, in slots: levels and sizes as arrays for a vectorised lookup
        self.slots: list[_Classes | None] = [None] * _SLOTS
        self.slot_levels = np.full((_SLOTS, self.q), np.iinfo(np.int16).max, np.int16)
        self.slot_sizes = np.full(_SLOTS, np.iinfo(np.int64).max, np.int64)
        self.cache_rows = 0
        self.used = 0  # slots filled so far
        self.cards = [[h.cardinality(lvl) for lvl in range(h.levels)] for h in self.h]
        # per QI and level: which nodes are at or above / at or below it; predictive tagging ANDs q of these
        self.masks = self.N * int(heights.sum()) <= 64_000_000
        if self.masks:
            self.ge = [[self.nodes[:, i] >= lvl for lvl in range(h.levels)] for i, h in enumerate(self.h)]
            self.le = [[self.nodes[:, i] <= lvl for lvl in range(h.levels)] for i, h in enumerate(self.h)]

        inv, d, combo = group(list(base_codes), [len(h.values) for h in self.h], n)
        self.row_combo = inv
        weights = np.bincount(inv, minlength=d).astype(np.int64)
        # every (QI, level, code) has one slot in a global code space, so that one gather maps all QIs at once
        self.off: list[dict[int, int]] = []
        total = 0
        for h in self.h:
            offs = {}
            for lvl, size in [(_BASE, len(h.values)), *[(x, h.cardinality(x)) for x in range(h.levels)]]:
                offs[lvl] = total
                total += size
            self.off.append(offs)
        self.scratch = np.zeros(total, np.int64)
        self.maps: dict[tuple[int, int, int], np.ndarray] = {}
        base_off = np.array([o[_BASE] for o in self.off], np.int64)
        combo_codes = (np.stack(combo).astype(np.int64) + base_off[:, None]) if combo else np.zeros((0, d), np.int64)
        self.base = _Classes((_BASE,) * self.q, weights, codes_=combo_codes)
        self.sens = sensitive
        if sensitive is not None:
            sv, m, ordered = sensitive
            self.m = m
            self.ordered = ordered
            self.overall = np.bincount(sv, minlength=m) / max(n, 1)
            self.base.s_cls, self.base.s_val, self.base.s_cnt = pair_counts(inv, sv, None, d, m)

    # --- evaluating one node ---------------------------------------------------------------------------

    def _source(self, node: np.ndarray) -> _Classes:
        ok = np.all(self.slot_levels <= node, axis=1)
        if not ok.any():
            return self.base
        slot = int(np.argmin(np.where(ok, self.slot_sizes, np.iinfo(np.int64).max)))
        cls = self.slots[slot]
        return cls if cls is not None and len(cls.weights) < len(self.base.weights) else self.base

    def _store(self, cls: _Classes) -> bool:
        """Keep a class table for later roll-ups, evicting larger ones if needed; False if not kept."""
        size = len(cls.weights)
        if size * 10 >= len(self.base.weights) * 9:  # hardly smaller than the base: no use
            return False
        while self.used == _SLOTS or self.cache_rows + size > _CACHE_ROWS:
            slot = int(np.argmax(np.where(np.arange(_SLOTS) < self.used, self.slot_sizes, -1)))
            if self.used == 0 or self.slot_sizes[slot] <= size:
                return False
            self.cache_rows -= int(self.slot_sizes[slot])
            last = self.used - 1  # move the last kept table into the freed slot
            self.slots[slot], self.slot_levels[slot], self.slot_sizes[slot] = \
                self.slots[last], self.slot_levels[last], self.slot_sizes[last]
            self.slots[last] = None
            self.slot_levels[last] = np.iinfo(np.int16).max
            self.slot_sizes[last] = np.iinfo(np.int64).max
            self.used -= 1
        slot = self.used
        self.used += 1
        self.slots[slot] = cls
        self.slot_levels[slot] = cls.levels
        self.slot_sizes[slot] = size
        self.cache_rows += size
        return True

    def _map(self, i: int, a: int, b: int) -> np.ndarray:
        m = self.maps.get((i, a, b))
        if m is None:
            h = self.h[i]
            m = (h.codes_at(b) if a == _BASE else h.map(a, b)).astype(np.int64)
            self.maps[(i, a, b)] = m
        return m

    def rollup(self, node: np.ndarray, src: _Classes | None = None, inverse: bool = True
               ) -> tuple[_Classes, np.ndarray | None]:
        """The classes of a node, and (``inverse``, or when sensitive counts need it) the class of each source row."""
        src = src if src is not None else self._source(node)
        inverse = inverse or src.s_cls is not None
        target = tuple(int(x) for x in node)
        cards = [self.cards[i][target[i]] for i in range(self.q)]
        offsets = np.array([self.off[i][target[i]] for i in range(self.q)], np.int64)[:, None]
        space = _prod(cards)
        if space < 1 << 62:
            radix = [_prod(cards[i + 1:]) for i in range(self.q)]
            # scratch[global code of the source] = code at the node * radix: one gather and a sum give the key
            for i in range(self.q):
                a = src.levels[i]
                m = self._map(i, a, target[i])
                self.scratch[self.off[i][a]:self.off[i][a] + len(m)] = m * radix[i]
            codes = src.codes
            key = self.scratch[codes[0]]
            for i in range(1, self.q):  # row by row: no (q, rows) temporary
                key += self.scratch[codes[i]]
            inv: np.ndarray | None = None
            if inverse:
                uniq, inv = densify(key, space)
                w = np.bincount(inv, weights=src.weights, minlength=len(uniq)).astype(np.int64)
            else:
                uniq, w = _weighted_groups(key, src.weights, space)
            c = len(uniq)
            out = _Classes(target, w, key=uniq, radix=np.array(radix, np.int64)[:, None],
                           cards=np.array(cards, np.int64)[:, None], offsets=offsets)
        else:
            g = [self._map(i, src.levels[i], target[i])[src.codes[i] - self.off[i][src.levels[i]]]
                 for i in range(self.q)]
            inv, c, parts = group(g, cards, len(src.weights))
            w = np.bincount(inv, weights=src.weights, minlength=c).astype(np.int64)
            out = _Classes(target, w, codes_=np.stack(parts).astype(np.int64) + offsets)
        if src.s_cls is not None and src.s_val is not None and inv is not None:
            out.s_cls, out.s_val, out.s_cnt = pair_counts(inv[src.s_cls], src.s_val, src.s_cnt, c, self.m)
        return out, inv

    def failing(self, cls: _Classes) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """Per class: fails the model, fails its monotone part; rows failing each criterion."""
        mdl = self.model
        w = cls.weights
        small = w < mdl.k
        fail = small.copy()
        relax = small.copy()
        why = {"k": int(w[small].sum())}
        if self.sens is not None and cls.s_cls is not None and cls.s_cnt is not None and cls.s_val is not None:
            if mdl.l is not None:
                few = distinct_per_class(cls.s_cls, len(w)) < mdl.l
                relax |= few
                if mdl.l_variant == "distinct":
                    bad = few
                elif mdl.l_variant == "entropy":
                    bad = entropy_per_class(cls.s_cls, cls.s_cnt, w) < np.log(mdl.l) - _EPS
                else:
                    bad = recursive_l_per_class(cls.s_cls, cls.s_cnt, w, float(mdl.c or 0)) < mdl.l
                fail |= bad
                why["l"] = int(w[bad].sum())
            if mdl.t is not None:
                far = emd_per_class(cls.s_cls, cls.s_val, cls.s_cnt, w, self.overall, self.ordered) > mdl.t + _EPS
                fail |= far
                why["t"] = int(w[far].sum())
        if self.monotone:
            relax = fail
        return fail, relax, why

    def evaluate(self, idx: int) -> _Eval:
        node = self.nodes[idx]
        cls, _ = self.rollup(node, inverse=False)
        fail, relax, _ = self.failing(cls)
        w = cls.weights
        sup = int(w[fail].sum())
        wf = w.astype(np.float64)
        ev = _Eval(sup, int(w[relax].sum()), float((wf[~fail] ** 2).sum() + sup * float(self.n)),
                   float((wf ** 2).sum()))
        self.evals[idx] = ev
        if ev.suppressed <= self.allowed:
            self.best_dm = min(self.best_dm, ev.discernibility)
        self._store(cls)
        if self.lower is not None:
            up = self._above(idx)
            np.maximum(self.lower, np.where(up, ev.squares, 0.0), out=self.lower)
        return ev

    # --- Flash -------------------------------------------------------------------------------------------

    def _above(self, idx: int) -> np.ndarray:
        if not self.masks:
            return np.all(self.nodes >= self.nodes[idx], axis=1)
        node = self.nodes[idx].tolist()
        out = self.ge[0][node[0]].copy()
        for i in range(1, self.q):
            out &= self.ge[i][node[i]]
        return out

    def _below(self, idx: int) -> np.ndarray:
        if not self.masks:
            return np.all(self.nodes <= self.nodes[idx], axis=1)
        node = self.nodes[idx].tolist()
        out = self.le[0][node[0]].copy()
        for i in range(1, self.q):
            out &= self.le[i][node[i]]
        return out

    def _check(self, idx: int) -> bool:
        """Evaluate a node if needed and tag predictively; True if it satisfies the monotone part."""
        if self.tag[idx] == 0:
            if self._cannot_win(idx):
                # Cannot beat a satisfying node already found, and its failing would settle few nodes that
                # still could: treat it as satisfying without evaluating. That only tags nodes that cannot win
                # either (higher loss, or a discernibility bound above the best); the others are still decided
                # by real checks, so the optimum is unchanged.
                self.tag[self._above(idx) & (self.tag == 0)] = 1
                return True
            ok = self.evaluate(idx).relaxed <= self.allowed
            if ok and self.prune:
                self.best_loss = min(self.best_loss, float(self.loss_key[idx]))
            if ok:
                self.tag[self._above(idx) & (self.tag == 0)] = 1
            else:
                self.tag[self._below(idx) & (self.tag == 0)] = -1
        return bool(self.tag[idx] == 1)

    def _cannot_win(self, idx: int) -> bool:
        if self.prune and self.loss_key[idx] > self.best_loss:
            could = self.loss_key < self.best_loss
        elif self.lower is not None and self.lower[idx] >= self.best_dm:
            could = self.lower < self.best_dm
        else:
            return False
        return int(np.count_nonzero(self._below(idx) & (self.tag == 0) & could)) <= _USEFUL_BELOW

    def _successors(self, idx: int) -> list[int]:
        node = self.nodes[idx]
        out = [idx + int(self.strides[i]) for i in range(self.q) if node[i] < self.tops[i]]
        return sorted(out, key=lambda j: int(self.rank[j]))

    def _path(self, idx: int) -> list[int]:
        path = [idx]
        while True:
            nxt = [j for j in self._successors(path[-1]) if self.tag[j] == 0]
            if not nxt:
                return path
            path.append(nxt[0])

    def _check_path(self, path: list[int]) -> None:
        lo, hi = 0, len(path) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            if self._check(path[mid]):
                hi = mid - 1
            else:
                heapq.heappush(self.heap, (int(self.rank[path[mid]]), path[mid]))
                lo = mid + 1

    def flash(self) -> None:
        """Tag every node (evaluating few) for the monotone part of the model."""
        for idx in self.order.tolist():
            if self.tag[idx] != 0:
                continue
            self._check_path(self._path(idx))
            while self.heap:
                _, j = heapq.heappop(self.heap)
                for s in self._successors(j):
                    if self.tag[s] == 0:
                        self._check_path(self._path(s))

    # --- choosing the optimum ----------------------------------------------------------------------------

    def _exact(self, idx: int) -> _Eval:
        return self.evals[idx] if idx in self.evals else self.evaluate(idx)

    def best(self) -> int | None:
        """The optimal satisfying node, or None."""
        self.flash()
        candidates = [i for i in self.order.tolist() if self.tag[i] == 1]
        if self.metric == "loss":
            if self.monotone:
                sat = [i for i, e in self.evals.items() if e.suppressed <= self.allowed]
                return min(sat, key=lambda i: (self.loss_key[i], self.evals[i].suppressed, i)) if sat else None
            found: int | None = None
            for i in sorted(candidates, key=lambda j: (self.loss_key[j], j)):
                if found is not None and self.loss_key[i] > self.loss_key[found]:
                    break
                ev = self._exact(i)
                if ev.suppressed <= self.allowed and (found is None or ev.suppressed < self.evals[found].suppressed):
                    found = i
            return found
        assert self.lower is not None
        best_i: int | None = None
        best_v = np.inf
        for i in sorted(self.evals):
            e = self.evals[i]
            if e.suppressed <= self.allowed and e.discernibility < best_v:
                best_i, best_v = i, e.discernibility
        for i in candidates:  # by level sum: every node below is done first
            if i in self.evals:
                continue
            if self.lower[i] >= best_v:
                continue
            ev = self.evaluate(i)
            if ev.suppressed <= self.allowed and ev.discernibility < best_v:
                best_i, best_v = i, ev.discernibility
        return best_i


def enforce(table: TableLike, hierarchies: Mapping[str, Hierarchy | HierarchySpec], model: PrivacyModel, *,
            metric: Metric = "loss", suppressed: SuppressedRows = "remove", transform: bool = True) -> Anonymisation:
    """Find the optimal generalisation of ``table`` reaching ``model`` and (``transform``) apply it.

    ``hierarchies`` maps each quasi-identifier to its hierarchy (or a spec, fitted to the column); their order is
    the lattice's. Suppressed rows are removed from the output table or (``suppressed="star"``) kept with every
    quasi-identifier set to ``*``. Raises :class:`AnonymityError` when no node reaches the model within the
    suppression limit, saying by how much (counts and shares, never values).
    """
    started = time.perf_counter()
    if metric not in ("loss", "discernibility"):
        raise AnonymityError("metric must be loss or discernibility")
    if suppressed not in ("remove", "star"):
        raise AnonymityError("suppressed must be remove or star")
    qis = tuple(hierarchies)
    if not qis:
        raise AnonymityError("no quasi-identifiers to generalise")
    if model.sensitive is not None and model.sensitive in qis:
        raise AnonymityError(f"{model.sensitive!r} cannot be both a quasi-identifier and the sensitive attribute")
    n = num_rows(table, [*qis, *([model.sensitive] if model.sensitive else [])])
    hiers: list[Hierarchy] = []
    for name in qis:
        spec = hierarchies[name]
        hiers.append(spec if isinstance(spec, Hierarchy) else spec.fit(name, column(table, name)))
    base_codes = [h.encode(column(table, name)) for name, h in zip(qis, hiers, strict=True)]
    sens = None
    if model.uses_sensitive and model.sensitive is not None:
        sens = encode_sensitive(column(table, model.sensitive), model.t_distance)
    search = _Search(hiers, base_codes, n, model, metric, sens)
    if n == 0:
        chosen: int | None = 0
    else:
        chosen = search.best()
    if chosen is None:
        raise AnonymityError(_why_not(search))
    node = search.nodes[chosen]
    cls, inv = search.rollup(node, search.base)
    fail, _, _ = search.failing(cls)
    mask = fail[inv][search.row_combo] if n and inv is not None else np.zeros(0, bool)
    kept = cls.weights[~fail]
    ev = search._exact(chosen) if n else _Eval(0, 0, 0.0, 0.0)
    levels = {name: int(node[i]) for i, name in enumerate(qis)}
    out = _transform(table, qis, hiers, base_codes, levels, mask, suppressed) if transform else None
    return Anonymisation(
        quasi_identifiers=qis, levels=levels, model=model, metric=metric,
        information_loss=float(search.intensity[chosen]) if metric == "loss" else ev.discernibility,
        loss=float(search.intensity[chosen]), discernibility=ev.discernibility, rows=n, suppressed=mask,
        suppressed_rows=int(mask.sum()), k=int(kept.min()) if len(kept) else 0, classes=len(kept),
        nodes_in_lattice=search.N, nodes_evaluated=len(search.evals), seconds=time.perf_counter() - started,
        table=out)


def _why_not(search: _Search) -> str:
    top = search.N - 1
    cls, _ = search.rollup(search.nodes[top], search.base, inverse=False)
    fail, _, why = search.failing(cls)
    n = search.n
    sup = int(cls.weights[fail].sum())
    mdl = search.model
    parts = [f"below k={mdl.k}: {why['k'] / n:.1%}"]
    if "l" in why:
        parts.append(f"failing {mdl.l_variant} l={mdl.l}: {why['l'] / n:.1%}")
    if "t" in why:
        parts.append(f"farther than t={mdl.t:g}: {why['t'] / n:.1%}")
    lead = "even the top of the lattice" if search.monotone else "no node reaches the model; the top of the lattice"
    return (f"{lead} leaves {sup / n:.1%} of rows ({sup:,} of {n:,}) in classes that fail {mdl.describe()} "
            f"({'; '.join(parts)}), above the suppression limit of {mdl.max_suppression:.1%} "
            f"({search.allowed:,} rows)")


def _transform(table: TableLike, qis: Sequence[str], hiers: Sequence[Hierarchy], base_codes: Sequence[np.ndarray],
               levels: Mapping[str, int], mask: np.ndarray, suppressed: SuppressedRows) -> pa.Table:
    """The table with each quasi-identifier replaced by its labels at the chosen level."""
    tbl = table if isinstance(table, pa.Table) else pa.table({k: as_array(v) for k, v in table.items()})
    star_rows = pa.array(mask) if suppressed == "star" and mask.any() else None
    for name, h, codes in zip(qis, hiers, base_codes, strict=True):
        lvl = levels[name]
        labels = h.labels_for(h.codes_at(lvl)[codes], lvl)
        if star_rows is not None:
            labels = pc.if_else(star_rows, pa.scalar(STAR), labels)
        tbl = tbl.set_column(tbl.column_names.index(name), name, labels)
    if suppressed == "remove" and mask.any():
        tbl = tbl.filter(pa.array(~mask))
    return tbl
