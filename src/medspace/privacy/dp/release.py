"""Disclosure control after noise: what the hub does to a noisy total before it is released.

Everything here is post-processing of a differentially private output, so it costs no budget: counts are rounded
to integers and clamped at 0 (no negative counts), cells are marked (clamped, or below the minimum cell size), and,
because the issue asks that disclosure control apply to every released cell, :func:`protect_noisy_counts` runs the
existing cell suppression (:func:`medspace.privacy.disclosure.protect_counts`, unchanged) on the noisy, clamped
table. Its margins are sums of the noisy interior cells: consistent with them, and themselves post-processing.
Note that with noise a small *noisy* value does not mean a small true count (nor the reverse); suppressing on the
noisy value is what a reader could do himself, so it reveals nothing further.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medspace.privacy.disclosure import Axis, DisclosureRules, ProtectedTable, protect_counts
from medspace.privacy.errors import BoundsError, DPError


@dataclass(frozen=True)
class NoisyCounts:
    """Noisy counts ready for release: integer, non-negative ``values``; ``clamped`` marks cells whose noisy value
    was negative (released as 0); ``small`` marks released values in 1..min_cell-1."""

    values: npt.NDArray[np.int64]
    clamped: npt.NDArray[np.bool_]
    small: npt.NDArray[np.bool_]
    min_cell: int

    def masked(self) -> np.ma.MaskedArray:
        """The values with small cells masked (what a table without complementary suppression would show)."""
        return np.ma.MaskedArray(self.values, mask=self.small)


def _noisy(noisy: npt.ArrayLike) -> npt.NDArray[np.int64]:
    x = np.asarray(noisy)
    if x.dtype.kind == "b" or x.dtype.kind not in "iuf":
        raise DPError("noisy counts must be numbers")
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)):
            raise DPError(f"{int(np.count_nonzero(~np.isfinite(x)))} noisy counts are not finite")
        x = np.rint(x)
    return x.astype(np.int64)


def postprocess_counts(noisy: npt.ArrayLike, rules: DisclosureRules | None = None) -> NoisyCounts:
    """Round noisy counts to integers, clamp negatives to 0, and mark clamped and small cells (min_cell of
    ``rules``, default 5); any shape."""
    rules = rules or DisclosureRules()
    x = _noisy(noisy)
    clamped = x < 0
    values = np.where(clamped, 0, x).astype(np.int64)
    small = (values > 0) & (values < rules.min_cell)
    return NoisyCounts(values, clamped, small, rules.min_cell)


def protect_noisy_counts(noisy: npt.ArrayLike, *, axes: Sequence[Axis] | None = None,
                         rules: DisclosureRules | None = None) -> ProtectedTable:
    """Noisy interior counts (an N-d array) rounded, clamped at 0, then protected by the node's disclosure rules:
    small-cell and complementary suppression, margins computed from the noisy cells."""
    cleaned = postprocess_counts(noisy, rules)
    if cleaned.values.ndim == 0:
        raise DPError("a table of counts has at least one axis")
    return protect_counts(cleaned.values, axes=axes, rules=rules)


def noisy_mean(noisy_sum: npt.ArrayLike, noisy_count: npt.ArrayLike, lo: float, hi: float,
               min_count: float = 1.0) -> npt.NDArray[np.float64]:
    """The mean as noisy sum / noisy count, clamped to [lo, hi] (the values' clipping range); NaN where the noisy
    count is below ``min_count`` (a mean over no one is not released)."""
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise BoundsError("a mean's clipping bounds must be finite with lo <= hi")
    s = np.asarray(noisy_sum, dtype=np.float64)
    n = np.asarray(noisy_count, dtype=np.float64)
    if s.shape != n.shape:
        raise DPError("noisy sums and counts must have the same shape")
    ok = n >= max(float(min_count), np.finfo(np.float64).tiny)
    mean = np.divide(s, n, out=np.full(s.shape, np.nan), where=ok)
    return np.where(ok, np.clip(mean, lo, hi), np.nan)


def from_codes(codes: npt.ArrayLike, frac_bits: int) -> npt.NDArray[np.float64]:
    """Fixed-point codes of a noisy sum back to values (codes / 2^frac_bits)."""
    if not 0 <= frac_bits <= 52:
        raise DPError("frac_bits must be in 0..52")
    return np.asarray(codes, dtype=np.int64).astype(np.float64) / float(1 << frac_bits)
