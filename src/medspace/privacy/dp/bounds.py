"""Per-patient contribution bounds: clip what each patient adds to a statistic, and state the statistic's
sensitivity, so that the noise scale follows from the bounds.

Neighbouring data sets differ by one patient, present or absent (add/remove, "unbounded" DP): the sensitivity of a
statistic is the most its released vector changes when one patient's records are added or removed. Each helper
below first collapses a patient's records to what that patient may contribute, then aggregates, so the stated
sensitivity holds whatever the rows look like (duplicates, many visits, extreme values).

=====================  ====================================================  =====================================
statistic              per-patient contribution (helper)                     sensitivity (L1, L2) of the vector
=====================  ====================================================  =====================================
count, per cell        0 or 1 per patient per cell (:func:`patient_counts`)  cells a patient may be in: m -> m, √m
histogram              one bin per patient (:func:`one_bin_per_patient`)     1, 1
contingency table      one cell of the flattened table per patient           1, 1 (margins are sums of the noisy
                       (:func:`one_bin_per_patient` on the cell index)       interior: post-processing, no cost)
sum of a value         patient's total clipped to [lo, hi] per cell          B = max(|lo|, |hi|) per cell: m B, √m B
                       (:func:`clipped_sums`)
mean = sum / count     the pair (clipped sum, 1) per patient                 B + 1, √(B² + 1); the mean is the noisy
                                                                             sum over the noisy count (post-proc.)
vector (model update)  the patient's vector clipped to L2 norm C             √d C (L1 worst case), C; in codes
                       (:func:`clip_l2`)                                     each coordinate's rounding adds 1/2
=====================  ====================================================  =====================================

(Under replace-one neighbouring the histogram's L1 and L2 are 2 and √2: :meth:`Sensitivity.replace_one`.)

Sums of real values travel as fixed-point codes (value * 2^frac_bits, :mod:`medspace.privacy.secagg.ring`): the
helpers round each patient's clipped total to the grid *before* adding, so a cell's sum is an exact integer of
codes and the sensitivity in codes is exactly B * 2^frac_bits (:meth:`Sensitivity.in_codes`), with lo and hi
themselves on the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medspace.privacy.errors import BoundsError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Sensitivity:
    """How much one patient can change a released vector of ``dim`` coordinates, in L1 and L2 norm, in the
    vector's own units (counts, or values; see :meth:`in_codes`)."""

    l1: float
    l2: float
    dim: int = 1

    def __post_init__(self) -> None:
        for name, v in (("l1", self.l1), ("l2", self.l2)):
            if not (math.isfinite(v) and v >= 0.0):
                raise BoundsError(f"sensitivity {name} must be finite and >= 0")
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise BoundsError("sensitivity dim must be an integer >= 1")
        if self.l2 > self.l1 + 1e-12 * self.l1:
            raise BoundsError("an L2 sensitivity cannot exceed the L1 sensitivity")

    def in_codes(self, frac_bits: int) -> Sensitivity:
        """The same sensitivity in fixed-point codes (times 2^frac_bits; exact for values on the grid)."""
        if not 0 <= frac_bits <= 52:
            raise BoundsError("frac_bits must be in 0..52")
        scale = float(1 << frac_bits)
        return Sensitivity(self.l1 * scale, self.l2 * scale, self.dim)

    def replace_one(self) -> Sensitivity:
        """Replace-one neighbouring (a patient's record changes): at most twice the add/remove sensitivity;
        exactly (2, √2) for one-bin-per-patient histograms."""
        return Sensitivity(2.0 * self.l1, math.sqrt(2.0) * self.l2 if self.l1 == self.l2 == 1.0 else 2.0 * self.l2,
                           self.dim)


def _positive_int(name: str, v: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise BoundsError(f"{name} must be an integer >= 1")
    return int(v)


def check_range(lo: float, hi: float) -> tuple[float, float]:
    """A clipping range as floats: finite, lo <= hi, else BoundsError."""
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise BoundsError("clipping bounds must be finite")
    if lo > hi:
        raise BoundsError("clipping bounds need lo <= hi")
    return lo, hi


def count_sensitivity(cells: int, cells_per_patient: int = 1) -> Sensitivity:
    """A vector of ``cells`` counts in which a patient adds 0 or 1 to each of at most ``cells_per_patient`` cells."""
    cells, m = _positive_int("cells", cells), _positive_int("cells_per_patient", cells_per_patient)
    m = min(m, cells)
    return Sensitivity(float(m), math.sqrt(m), cells)


def histogram_sensitivity(bins: int) -> Sensitivity:
    """A histogram (or a flattened contingency table) of ``bins`` cells, one cell per patient: L1 = L2 = 1."""
    return Sensitivity(1.0, 1.0, _positive_int("bins", bins))


def sum_sensitivity(lo: float, hi: float, cells: int = 1, cells_per_patient: int = 1) -> Sensitivity:
    """Sums over ``cells`` cells of per-patient totals clipped to [lo, hi], a patient in at most
    ``cells_per_patient`` of them: B = max(|lo|, |hi|) per cell."""
    lo, hi = check_range(lo, hi)
    cells, m = _positive_int("cells", cells), _positive_int("cells_per_patient", cells_per_patient)
    m = min(m, cells)
    b = max(abs(lo), abs(hi))
    return Sensitivity(m * b, math.sqrt(m) * b, cells)


def mean_sensitivity(lo: float, hi: float) -> Sensitivity:
    """The pair (sum of values clipped to [lo, hi], count) released together for a mean: each patient adds
    (v, 1), so L1 = B + 1, L2 = √(B² + 1). The mean is noisy sum / noisy count, post-processing."""
    lo, hi = check_range(lo, hi)
    b = max(abs(lo), abs(hi))
    return Sensitivity(b + 1.0, math.hypot(b, 1.0), 2)


def vector_sensitivity(clip_norm: float, dim: int, frac_bits: int | None = None) -> Sensitivity:
    """Sums of per-patient vectors of ``dim`` coordinates clipped to L2 norm ``clip_norm`` (:func:`clip_l2`). With
    ``frac_bits``, in fixed-point codes of each patient's rounded vector: rounding moves each coordinate by at
    most 1/2 code, so L2 = C 2^f + √d / 2 and L1 = √d C 2^f + d / 2."""
    c = float(clip_norm)
    if not (math.isfinite(c) and c > 0.0):
        raise BoundsError("clip_norm must be a positive finite number")
    dim = _positive_int("dim", dim)
    if frac_bits is None:
        return Sensitivity(c * math.sqrt(dim), c, dim)
    if not 0 <= frac_bits <= 52:
        raise BoundsError("frac_bits must be in 0..52")
    cc = c * float(1 << frac_bits)
    return Sensitivity(cc * math.sqrt(dim) + dim / 2.0, cc + math.sqrt(dim) / 2.0, dim)


def _patients(patient_ids: npt.ArrayLike) -> IntArray:
    ids = np.asarray(patient_ids)
    if ids.ndim != 1:
        raise BoundsError("patient_ids must be a 1-d array")
    _, inverse = np.unique(ids, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1)


def _cells(cells: npt.ArrayLike, n_cells: int, rows: int) -> IntArray:
    idx = np.asarray(cells)
    if idx.shape != (rows,):
        raise BoundsError("cells must hold one cell index per row")
    if rows and idx.dtype.kind not in "iu":
        raise BoundsError("cell indices must be integers")
    idx = idx.astype(np.int64)
    if rows and (idx.min() < 0 or idx.max() >= n_cells):
        raise BoundsError(f"{int(np.count_nonzero((idx < 0) | (idx >= n_cells)))} cell indices are outside "
                          f"0..{n_cells - 1}")
    return idx


def patient_counts(patient_ids: npt.ArrayLike, cells: npt.ArrayLike, n_cells: int) -> IntArray:
    """Counts per cell where each patient counts at most once per cell (rows = records: a patient's repeated
    records in a cell count once)."""
    n_cells = _positive_int("n_cells", n_cells)
    who = _patients(patient_ids)
    idx = _cells(cells, n_cells, who.size)
    pairs = np.unique(who * n_cells + idx)
    return np.bincount(pairs % n_cells, minlength=n_cells).astype(np.int64)


def one_bin_per_patient(patient_ids: npt.ArrayLike, bins: npt.ArrayLike, n_bins: int) -> IntArray:
    """A histogram (or flattened contingency table) where each patient is counted in exactly one bin: a patient
    whose records fall in several bins is counted in the lowest of them."""
    n_bins = _positive_int("n_bins", n_bins)
    who = _patients(patient_ids)
    idx = _cells(bins, n_bins, who.size)
    if who.size == 0:
        return np.zeros(n_bins, dtype=np.int64)
    lowest = np.full(int(who.max()) + 1, n_bins, dtype=np.int64)
    np.minimum.at(lowest, who, idx)
    return np.bincount(lowest, minlength=n_bins).astype(np.int64)


def to_grid(values: npt.ArrayLike, frac_bits: int) -> IntArray:
    """Fixed-point codes round(v * 2^frac_bits) of finite values (BoundsError if a value is not finite or the
    code would not fit in 62 bits)."""
    if not 0 <= frac_bits <= 52:
        raise BoundsError("frac_bits must be in 0..52")
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise BoundsError(f"{int(np.count_nonzero(~np.isfinite(v)))} values are not finite")
    scaled = np.rint(v * float(1 << frac_bits))
    if scaled.size and np.max(np.abs(scaled)) >= float(1 << 62):
        raise BoundsError("a value is too large for its fixed-point code")
    return scaled.astype(np.int64)


def clipped_sums(patient_ids: npt.ArrayLike, values: npt.ArrayLike, lo: float, hi: float,
                 cells: npt.ArrayLike | None = None, n_cells: int = 1, frac_bits: int = 0) -> IntArray:
    """Per-cell sums, as fixed-point codes (value * 2^frac_bits; ``frac_bits=0`` for integers), of each patient's
    total in the cell clipped to [lo, hi] and rounded to the grid, so that one patient moves a cell's code sum by
    at most max(|lo|, |hi|) * 2^frac_bits (:func:`sum_sensitivity`, :meth:`Sensitivity.in_codes`). lo and hi
    must lie on the grid."""
    lo, hi = check_range(lo, hi)
    scale = float(1 << frac_bits) if 0 <= frac_bits <= 52 else math.nan
    if not (math.isfinite(scale) and (lo * scale).is_integer() and (hi * scale).is_integer()):
        raise BoundsError("lo and hi must lie on the fixed-point grid (multiples of 2^-frac_bits)")
    n_cells = _positive_int("n_cells", n_cells)
    who = _patients(patient_ids)
    v = np.asarray(values, dtype=np.float64)
    if v.shape != who.shape:
        raise BoundsError("values must hold one value per row")
    if not np.all(np.isfinite(v)):
        raise BoundsError(f"{int(np.count_nonzero(~np.isfinite(v)))} values are not finite")
    idx = np.zeros(who.size, dtype=np.int64) if cells is None else _cells(cells, n_cells, who.size)
    key = who * n_cells + idx
    uniq, inverse = np.unique(key, return_inverse=True)
    per_patient = np.bincount(inverse.reshape(-1), weights=v, minlength=uniq.size)
    codes = to_grid(np.clip(per_patient, lo, hi), frac_bits)
    out = np.zeros(n_cells, dtype=np.int64)
    np.add.at(out, uniq % n_cells, codes)
    return out


def clip_l2(vectors: npt.ArrayLike, clip_norm: float) -> FloatArray:
    """Rows of a 2-d array (one per patient) scaled down to L2 norm at most ``clip_norm`` (rows within it are
    unchanged; a scaled row's norm is ``clip_norm`` to within float64 rounding, which the 1/2-code rounding margin
    of :func:`vector_sensitivity` covers many times over)."""
    c = float(clip_norm)
    if not (math.isfinite(c) and c > 0.0):
        raise BoundsError("clip_norm must be a positive finite number")
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise BoundsError("clip_l2 takes one row per patient (a 2-d array)")
    if not np.all(np.isfinite(x)):
        raise BoundsError(f"{int(np.count_nonzero(~np.isfinite(x)))} values are not finite")
    norms = np.linalg.norm(x, axis=1)
    factor = np.ones_like(norms)
    long = norms > c
    factor[long] = c / norms[long]
    return x * factor[:, None]
