"""Disclosure control after noise: released counts are integers >= 0, marked cells, and the existing cell
suppression applied to the noisy table (post-processing, no budget)."""

from __future__ import annotations

import numpy as np
import pytest

from medspace.privacy.disclosure import Axis, DisclosureRules, protect_counts
from medspace.privacy.dp import from_codes, noisy_mean, postprocess_counts, protect_noisy_counts
from medspace.privacy.errors import BoundsError, DPError


def test_counts_are_rounded_clamped_and_marked() -> None:
    out = postprocess_counts(np.array([-3, 0, 2, 4, 5, 17]))
    assert out.values.tolist() == [0, 0, 2, 4, 5, 17]
    assert out.values.dtype == np.int64
    assert out.clamped.tolist() == [True, False, False, False, False, False]
    assert out.small.tolist() == [False, False, True, True, False, False]
    assert out.masked().tolist() == [0, 0, None, None, 5, 17]
    floats = postprocess_counts(np.array([[-0.6, 2.5], [3.49, 11.7]]), DisclosureRules(min_cell=3))
    assert floats.values.tolist() == [[0, 2], [3, 12]]
    assert floats.small.tolist() == [[False, True], [False, False]]
    with pytest.raises(DPError):
        postprocess_counts(np.array([1.0, np.nan]))
    with pytest.raises(DPError):
        postprocess_counts(np.array(["1"]))


def test_noisy_tables_get_the_same_suppression_as_their_clamped_values() -> None:
    noisy = np.array([[40.2, 3.0, -2.0], [25.0, 31.4, 12.0]])
    axes = [Axis("sex", ("F", "M")), Axis("band", ("<40", "40-60", ">60"))]
    table = protect_noisy_counts(noisy, axes=axes)
    reference = protect_counts(np.array([[40, 3, 0], [25, 31, 12]]), axes=axes)
    assert np.array_equal(table.published().mask, reference.published().mask)
    published = table.published()
    assert published[0, 1] is np.ma.masked  # the small noisy cell is suppressed
    assert published[0, 2] == 0  # a clamped zero is published as zero
    assert published.min() >= 0
    assert table.verify().ok


def test_the_mean_is_post_processed_from_noisy_sum_and_count() -> None:
    mean = noisy_mean(np.array([500.0, -20.0, 90.0, 3.0]), np.array([10.0, 4.0, 0.0, -2.0]), 0.0, 40.0)
    assert mean[0] == 40.0  # 50 clamped to hi
    assert mean[1] == 0.0  # -5 clamped to lo
    assert np.isnan(mean[2]) and np.isnan(mean[3])  # no one (noisily) in the cell: no mean
    with pytest.raises(BoundsError):
        noisy_mean(np.ones(2), np.ones(2), 1.0, 0.0)
    with pytest.raises(DPError):
        noisy_mean(np.ones(2), np.ones(3), 0.0, 1.0)


def test_fixed_point_codes_decode() -> None:
    assert from_codes(np.array([256, -128, 3]), 8).tolist() == [1.0, -0.5, 3 / 256]


def test_the_documented_flow_releases_a_protected_noisy_histogram() -> None:
    """The package docstring's path: policy, accountant, calibration, charge, node shares, sum, release."""
    from medspace.privacy.dp import (
        Accountant,
        DPPolicy,
        NoisePlan,
        add_noise_share,
        histogram_sensitivity,
        one_bin_per_patient,
    )

    policy = DPPolicy.from_terms("c-flow", {"dp_epsilon": 1.0, "dp_delta": 1e-6})
    acc: Accountant = policy.accountant()
    bins, n, t = 4, 5, 4
    sens = histogram_sensitivity(bins)
    cal = acc.calibrate(l2=sens.l2, l1=sens.l1, dim=sens.dim, min_nodes=t, fraction=0.25)
    acc.charge("hist-1", cal.rho)
    plan = NoisePlan(cal.sigma, n_nodes=n, min_nodes=t)
    rng = np.random.default_rng(11)  # test data only
    shares, truth = [], np.zeros(bins, dtype=np.int64)
    for node in range(n):
        patients = np.arange(200) + 1000 * node
        counts = one_bin_per_patient(np.repeat(patients, 2), rng.integers(0, bins, 400), bins)
        truth += counts
        shares.append(add_noise_share(counts, plan))
    total = np.sum(shares, axis=0)
    assert truth.sum() == 5 * 200  # each patient in one bin, though each has two records
    assert np.all(np.abs(total - truth) <= n * plan.noise_bound(bins))
    table = protect_noisy_counts(total, axes=[Axis("band", tuple(range(bins)))])
    assert table.published().min() >= 0
    assert acc.remaining().rho == pytest.approx(acc.rho_budget * 0.75, rel=1e-12)
