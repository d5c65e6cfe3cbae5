"""Distributed discrete Gaussian noise: OpenDP's samples have the stated scale, any t shares sum to at least the
target variance, outputs stay integers, the charged rho follows Kairouz-Liu-Steinke, and noise goes in front of
secure aggregation so the hub only unmasks a noisy total.

Statistical thresholds are fixed: each two-sided check fails a correct sampler with probability about 2e-9
(z = 6), so the suite is not flaky."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from secagg_space import NODES, Spaces

from medspace.privacy.dp import NoisePlan, add_noise_share, ddg_rho, ddg_tau, discrete_gaussian_variance, node_sigma
from medspace.privacy.dp.noise import sigma_for_rho
from medspace.privacy.dp.opendp_bridge import discrete_gaussian, gaussian_rho
from medspace.privacy.errors import DPError
from medspace.privacy.secagg import Encoding, RoundConfig
from medspace.privacy.secagg.local import run_round

TAIL = 1e-9  # per side: false-failure probability of one statistical check
Z = float(stats.norm.isf(TAIL))


def _chi2_interval(n: int) -> tuple[float, float]:
    """Bounds on sample variance / true variance for n Gaussian samples, each side failing with TAIL."""
    return float(stats.chi2.ppf(TAIL, n - 1) / (n - 1)), float(stats.chi2.isf(TAIL, n - 1) / (n - 1))


def _variance_ok(samples: np.ndarray, var: float) -> bool:
    lo, hi = _chi2_interval(samples.size)
    return lo <= float(np.var(samples, ddof=1)) / var <= hi


def _mean_ok(samples: np.ndarray, var: float) -> bool:
    return abs(float(np.mean(samples))) <= Z * math.sqrt(var / samples.size)


def test_a_node_share_has_the_stated_scale() -> None:
    plan = NoisePlan(sigma=30.0, n_nodes=12, min_nodes=9)
    assert plan.node_sigma == pytest.approx(10.0, rel=1e-12)
    noise = add_noise_share(np.zeros(40_000, dtype=np.int64), plan)
    assert noise.dtype == np.int64 and noise.shape == (40_000,)
    assert _variance_ok(noise, 100.0)
    assert _mean_ok(noise, 100.0)
    # the interval is tight enough to see a wrong scale: 10 % off would fail
    assert not _variance_ok(noise, 110.0) and not _variance_ok(noise, 90.0)


def test_the_sum_of_any_t_shares_has_at_least_the_target_variance() -> None:
    sigma, t = 20.0, 4
    plan = NoisePlan(sigma=sigma, n_nodes=6, min_nodes=t)
    assert plan.sum_variance() >= sigma**2
    shares = [add_noise_share(np.zeros(15_000, dtype=np.int64), plan) for _ in range(t)]
    total = np.sum(shares, axis=0)
    assert _variance_ok(total, plan.sum_variance())
    lo, _ = _chi2_interval(total.size)
    assert np.var(total, ddof=1) >= lo * sigma**2
    assert _mean_ok(total, sigma**2)


@pytest.mark.parametrize("sigma", [0.5, 0.8, 1.0, 1.3, 2.0, 3.7, 10.0, 1e3])
@pytest.mark.parametrize("t", [1, 2, 3, 5, 9])
def test_node_sigma_gives_the_target_variance_exactly(sigma: float, t: int) -> None:
    s = node_sigma(sigma, t)
    assert s >= 0.5
    assert s >= sigma / math.sqrt(t) * (1 - 1e-15)
    assert t * discrete_gaussian_variance(s) >= sigma**2
    # and no more than needed once the floor and the discreteness do not bite
    if sigma / math.sqrt(t) >= 2.0:
        assert s == pytest.approx(sigma / math.sqrt(t), rel=1e-12)


def test_the_discrete_variance_is_below_s2_for_small_s_and_matches_samples() -> None:
    s = 0.5
    var = discrete_gaussian_variance(s)
    assert 0.2 < var < s * s
    k = np.arange(-40, 41, dtype=np.float64)
    p = np.exp(-k * k / (2 * s * s))
    p /= p.sum()
    assert var == pytest.approx(float(np.sum(p * k * k)), rel=1e-12)
    fourth = float(np.sum(p * k**4))
    n = 40_000
    x = discrete_gaussian(np.zeros(n, dtype=np.int64), s)
    # non-Gaussian at this scale: a CLT bound on the mean of x^2, whose variance is E x^4 - (E x^2)^2
    assert abs(float(np.mean(x.astype(np.float64) ** 2)) - var) <= Z * math.sqrt((fourth - var * var) / n)
    assert set(np.unique(x).tolist()) <= set(range(-6, 7))


def test_noise_is_added_to_the_values_and_stays_integer() -> None:
    plan = NoisePlan(sigma=5.0, n_nodes=3, min_nodes=1)
    x = np.arange(-(10**12), -(10**12) + 20_000, dtype=np.int64)
    noisy = add_noise_share(x, plan)
    assert noisy.dtype == np.int64
    diff = noisy - x
    assert _variance_ok(diff, 25.0) and _mean_ok(diff, 25.0)
    assert np.all(np.abs(diff) <= plan.noise_bound(x.size))
    assert add_noise_share(np.array([True, False]), plan).dtype == np.int64
    assert add_noise_share(np.zeros(0, dtype=np.int64), plan).shape == (0,)


def test_threads_split_the_vector_and_keep_the_scale() -> None:
    plan = NoisePlan(sigma=8.0, n_nodes=2, min_nodes=1)
    x = np.arange(30_001, dtype=np.int64)
    noisy = add_noise_share(x, plan, workers=3)
    assert noisy.shape == x.shape and noisy.dtype == np.int64
    diff = noisy - x
    assert _variance_ok(diff, 64.0) and _mean_ok(diff, 64.0)
    for part in np.array_split(diff, 3):  # every thread's part is noised, none passed through
        assert np.count_nonzero(part) > 0.9 * part.size


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((2, 2), dtype=np.int64), np.array(["a"]),
                                 np.array([2**62], dtype=np.int64), np.array([-(2**62)], dtype=np.int64),
                                 np.array([2**63], dtype=np.uint64)])
def test_non_integer_or_non_vector_contributions_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(DPError):
        add_noise_share(bad, NoisePlan(2.0, 2, 1))


@pytest.mark.parametrize(("sigma", "n", "t"), [(0.0, 2, 1), (-1.0, 2, 1), (math.inf, 2, 1), (1.0, 2, 3),
                                               (1.0, 0, 0), (1.0, 2, True)])
def test_bad_plans_are_refused(sigma: float, n: int, t: int) -> None:
    with pytest.raises(DPError):
        NoisePlan(sigma, n, t)


def test_with_one_summand_the_charge_is_the_central_discrete_gaussian_as_opendp_states_it() -> None:
    for s, l2 in [(1.0, 1), (3.0, 1), (7.5, 4), (100.0, 25)]:
        assert ddg_tau(s, 1) == 0.0
        assert ddg_rho(s, 1, l2=l2) == pytest.approx(gaussian_rho(l2, s), rel=1e-12)
        assert ddg_rho(s, 1, l2=l2) == l2 * l2 / (2 * s * s)


def test_the_distributed_charge_includes_the_tau_term() -> None:
    # s = 1: tau ~ 5e-4 per coordinate, more than the central bound for n s^2 = 5
    s, n = 1.0, 5
    tau = ddg_tau(s, n)
    expected_tau = 10 * sum(math.exp(-2 * math.pi**2 * s * s * k / (k + 1)) for k in range(1, n))
    assert tau == pytest.approx(expected_tau, rel=1e-12)
    central = 1.0 / (2 * n * s * s)
    d = 1000
    rho = ddg_rho(s, n, l2=1.0, l1=1.0, dim=d)
    assert rho > central
    terms = (central + tau * d, (1.0 / (n * s * s) + 2 * tau / math.sqrt(n * s * s) + tau * tau * d) / 2,
             (1 / math.sqrt(n * s * s) + tau * math.sqrt(d)) ** 2 / 2)
    assert rho == pytest.approx(min(terms), rel=1e-12)
    # s = 2: tau below 1e-15, the sum's charge is the central one to float precision
    assert ddg_tau(2.0, 1000) < 1e-15
    assert ddg_rho(2.0, 9, l2=3.0, dim=10**6) == pytest.approx(9.0 / (2 * 9 * 4.0), rel=1e-9)
    with pytest.raises(DPError):
        ddg_rho(0.4, 3, l2=1.0)


@pytest.mark.parametrize(("rho", "l2", "l1", "dim", "t"), [(0.01, 1.0, None, 1, 1), (0.01, 1.0, 1.0, 50, 3),
                                                           (0.5, 1.0, 1.0, 10**6, 5), (2.0, 1.0, 1.0, 10, 7),
                                                           (1e-4, 1000.0, None, 3, 4), (50.0, 1.0, 1.0, 1, 2)])
def test_calibration_is_the_smallest_sigma_that_fits(rho: float, l2: float, l1: float | None, dim: int,
                                                      t: int) -> None:
    sigma = sigma_for_rho(rho, l2=l2, l1=l1, dim=dim, min_nodes=t)
    plan = NoisePlan(sigma, n_nodes=t + 2, min_nodes=t)
    assert plan.rho(l2=l2, l1=l1, dim=dim) <= rho
    floor = 0.5 * math.sqrt(t)
    if sigma > floor:
        smaller = NoisePlan(sigma * (1 - 1e-6), n_nodes=t + 2, min_nodes=t)
        assert smaller.rho(l2=l2, l1=l1, dim=dim) > rho
    if dim == 1 and sigma / math.sqrt(t) >= 2:  # tau negligible: the central formula inverted
        assert sigma == pytest.approx(l2 / math.sqrt(2 * rho), rel=1e-8)


def test_noise_in_front_of_secure_aggregation_hides_the_total(spaces: Spaces) -> None:
    """Each node noises its counts before masking: the unmasked sum is the true total plus the nodes' noise, with
    the target variance, and no node ever sends an un-noised vector."""
    length = 4_000
    rng = np.random.default_rng(3)  # test data only
    counts = {n: rng.integers(0, 50, length) for n in NODES}
    t = 5
    plan = NoisePlan(sigma=12.0, n_nodes=len(NODES), min_nodes=t)
    noisy = {n: add_noise_share(c, plan) for n, c in counts.items()}
    bound = 50 + plan.noise_bound(length)
    config = RoundConfig("dp-counts-1", NODES, length, threshold=t, encoding=Encoding.integers(bound=bound))
    report = run_round(*spaces.round(config), noisy, drop_before_input=("h2", "h6"))
    survivors = report.survivors
    assert len(survivors) == t
    true_total = np.sum([counts[n] for n in survivors], axis=0)
    assert np.array_equal(report.total, np.sum([noisy[n] for n in survivors], axis=0))
    error = report.total - true_total
    assert not np.array_equal(report.total, true_total)
    assert _variance_ok(error, plan.sum_variance(len(survivors)))
    assert plan.sum_variance(len(survivors)) >= 144.0
