"""Per-patient contribution bounds: whatever a patient's records look like, adding or removing the patient moves
the clipped statistic by at most its stated sensitivity (checked by hypothesis on random record sets)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from medspace.privacy.dp import (
    Sensitivity,
    clip_l2,
    clipped_sums,
    count_sensitivity,
    histogram_sensitivity,
    mean_sensitivity,
    one_bin_per_patient,
    patient_counts,
    sum_sensitivity,
    to_grid,
    vector_sensitivity,
)
from medspace.privacy.errors import BoundsError

CELLS = 6
records = st.lists(st.tuples(st.integers(0, 7), st.integers(0, CELLS - 1),
                             st.floats(-1e4, 1e4, allow_nan=False)), max_size=60)


def _split(rows: list[tuple[int, int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    who = np.array([r[0] for r in rows], dtype=np.int64)
    cell = np.array([r[1] for r in rows], dtype=np.int64)
    value = np.array([r[2] for r in rows], dtype=np.float64)
    return who, cell, value


def _without(rows: list[tuple[int, int, float]], patient: int) -> list[tuple[int, int, float]]:
    return [r for r in rows if r[0] != patient]


@settings(max_examples=150, deadline=None)
@given(records, st.integers(0, 7))
def test_a_patient_moves_counts_by_at_most_one_per_cell(rows: list[tuple[int, int, float]], patient: int) -> None:
    who, cell, _ = _split(rows)
    full = patient_counts(who, cell, CELLS)
    w2, c2, _ = _split(_without(rows, patient))
    diff = full - patient_counts(w2, c2, CELLS)
    assert np.all((diff == 0) | (diff == 1))
    m = len({r[1] for r in rows if r[0] == patient})
    sens = count_sensitivity(CELLS, cells_per_patient=max(m, 1))
    assert np.abs(diff).sum() <= sens.l1 and np.linalg.norm(diff) <= sens.l2 + 1e-12
    assert full.sum() == len({(r[0], r[1]) for r in rows})


@settings(max_examples=150, deadline=None)
@given(records, st.integers(0, 7))
def test_a_histogram_counts_each_patient_in_one_bin(rows: list[tuple[int, int, float]], patient: int) -> None:
    who, cell, _ = _split(rows)
    full = one_bin_per_patient(who, cell, CELLS)
    assert full.sum() == len({r[0] for r in rows})
    w2, c2, _ = _split(_without(rows, patient))
    diff = full - one_bin_per_patient(w2, c2, CELLS)
    sens = histogram_sensitivity(CELLS)
    assert np.abs(diff).sum() <= sens.l1 and np.linalg.norm(diff) <= sens.l2
    if any(r[0] == patient for r in rows):  # counted in the lowest of its bins
        assert diff[min(r[1] for r in rows if r[0] == patient)] == 1


@settings(max_examples=150, deadline=None)
@given(records, st.integers(0, 7), st.sampled_from([(-10.0, 50.0), (0.0, 1.0), (-3.0, -1.0), (3.0, 3.0)]),
       st.sampled_from([0, 4, 20]))
def test_clipped_sums_move_by_at_most_the_bound(rows: list[tuple[int, int, float]], patient: int,
                                                bounds: tuple[float, float], frac_bits: int) -> None:
    lo, hi = bounds
    who, cell, value = _split(rows)
    full = clipped_sums(who, value, lo, hi, cell, CELLS, frac_bits=frac_bits)
    assert full.dtype == np.int64
    w2, c2, v2 = _split(_without(rows, patient))
    diff = full - clipped_sums(w2, v2, lo, hi, c2, CELLS, frac_bits=frac_bits)
    m = max(len({r[1] for r in rows if r[0] == patient}), 1)
    sens = sum_sensitivity(lo, hi, CELLS, cells_per_patient=m).in_codes(frac_bits)
    assert np.max(np.abs(diff)) <= max(abs(lo), abs(hi)) * 2**frac_bits
    assert np.abs(diff).sum() <= sens.l1 and np.linalg.norm(diff) <= sens.l2 * (1 + 1e-12)


def test_clipped_sums_clip_each_patients_total_not_each_row() -> None:
    who = np.array(["p1", "p1", "p1", "p2"])
    value = np.array([4.0, 4.0, 4.0, -30.0])
    assert clipped_sums(who, value, -5.0, 10.0).tolist() == [10 - 5]
    # on the fixed-point grid, exactly
    assert clipped_sums(who, np.array([0.3, 0.3, 0.3, 1.0]), 0.0, 2.0, frac_bits=8).tolist() == [
        round(0.9 * 256) + 256]
    with pytest.raises(BoundsError, match="grid"):
        clipped_sums(who, value, 0.1, 1.0, frac_bits=8)


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 9)),
                  elements=st.floats(-1e6, 1e6, allow_nan=False)), st.floats(0.01, 100.0))
def test_l2_clipping_caps_norms_and_keeps_short_rows(x: np.ndarray, c: float) -> None:
    y = clip_l2(x, c)
    norms = np.linalg.norm(x, axis=1)
    assert np.all(np.linalg.norm(y, axis=1) <= c * (1 + 1e-12))
    short = norms <= c
    assert np.array_equal(y[short], x[short])
    long = ~short
    # clipped rows keep their direction
    assert np.allclose(y[long] * norms[long, None] / c, x[long], rtol=1e-9, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.just(1), st.integers(1, 30)), elements=st.floats(-10, 10)),
       st.sampled_from([0, 3, 12]))
def test_vector_codes_sensitivity_covers_the_rounding(x: np.ndarray, frac_bits: int) -> None:
    c = 2.5
    codes = to_grid(clip_l2(x, c)[0], frac_bits)
    sens = vector_sensitivity(c, x.shape[1], frac_bits=frac_bits)
    assert np.linalg.norm(codes) <= sens.l2 and np.abs(codes).sum() <= sens.l1


def test_stated_sensitivities() -> None:
    assert count_sensitivity(10) == Sensitivity(1.0, 1.0, 10)
    assert count_sensitivity(10, cells_per_patient=4) == Sensitivity(4.0, 2.0, 10)
    assert count_sensitivity(3, cells_per_patient=9) == Sensitivity(3.0, math.sqrt(3), 3)
    assert histogram_sensitivity(7) == Sensitivity(1.0, 1.0, 7)
    assert histogram_sensitivity(7).replace_one() == Sensitivity(2.0, math.sqrt(2), 7)
    assert sum_sensitivity(-3.0, 10.0, cells=5) == Sensitivity(10.0, 10.0, 5)
    assert sum_sensitivity(-3.0, 10.0).in_codes(4) == Sensitivity(160.0, 160.0, 1)
    assert mean_sensitivity(0.0, 120.0) == Sensitivity(121.0, math.hypot(120.0, 1.0), 2)
    assert vector_sensitivity(1.5, 4) == Sensitivity(3.0, 1.5, 4)


@pytest.mark.parametrize("call", [
    lambda: sum_sensitivity(2.0, 1.0),
    lambda: sum_sensitivity(0.0, math.inf),
    lambda: count_sensitivity(0),
    lambda: histogram_sensitivity(True),
    lambda: Sensitivity(1.0, 2.0),
    lambda: Sensitivity(-1.0, 0.0),
    lambda: patient_counts([1, 2], [0, 5], 5),
    lambda: patient_counts([1, 2], [0], 5),
    lambda: patient_counts([1, 2], [0.5, 1.0], 5),
    lambda: one_bin_per_patient([[1]], [0], 2),
    lambda: clipped_sums([1], [math.nan], 0.0, 1.0),
    lambda: clip_l2(np.ones(3), 1.0),
    lambda: clip_l2(np.ones((2, 2)), 0.0),
    lambda: to_grid([1e300], 10),
])
def test_bad_bounds_and_inputs_are_refused(call: object) -> None:
    with pytest.raises(BoundsError):
        call()  # type: ignore[operator]


def test_errors_name_the_input_not_the_values() -> None:
    with pytest.raises(BoundsError) as err:
        patient_counts(["p1", "p2"], [0, 123456], 4)
    assert "123456" not in str(err.value) and "1 cell indices" in str(err.value)
