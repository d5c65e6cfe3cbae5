"""Federated GLMs equal the pooled fit (statsmodels GLM, matching family) to 1e-6; what crosses the wire is a sum."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.compute.errors import (
    MessageLayoutError,
    NoEventsError,
    PerfectSeparationError,
    QueryError,
    SingularHessianError,
)
from medspace.compute.glm import GLM_EXTRAS, Family, GLMCoordinator, GLMResult, GLMSite, fit_glm, glm_message
from medspace.compute.newton import message_length, pack, plain_sum, unpack

SIZES = (300, 1500, 800, 4000, 650)
TRUE_BETA = np.array([-0.6, 0.7, -0.5, 0.25, 0.4])
NAMES = ("const", "age_z", "female", "bmi_z", "dose")
SM_FAMILY = {"binomial": sm.families.Binomial, "gaussian": sm.families.Gaussian, "poisson": sm.families.Poisson}


def simulate(family: str, seed: int, sizes: tuple[int, ...] = SIZES) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sites of different sizes whose covariates are shifted and scaled differently from one site to the next."""
    rng = np.random.default_rng(seed)
    out = []
    for k, n in enumerate(sizes):
        X = np.column_stack([np.ones(n), rng.normal(0.4 * k - 0.8, 1.0 + 0.25 * k, n),
                             rng.binomial(1, 0.25 + 0.12 * k, n), rng.normal(0.0, 1.0, n) + 0.1 * k,
                             rng.uniform(-1.0, 1.0 + 0.5 * k, n)])
        eta = X @ TRUE_BETA
        if family == "binomial":
            y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
        elif family == "poisson":
            y = rng.poisson(np.exp(eta))
        else:
            y = eta + rng.normal(0.0, 1.5 + 0.3 * k, n)
        out.append((X, y.astype(np.float64)))
    return out


def pooled(data: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The sites' rows stacked, as a pooled analysis would see them."""
    return np.vstack([X for X, _ in data]), np.concatenate([y for _, y in data])


def assert_matches(fed: GLMResult, ref: Any) -> None:
    """Coefficients, SEs, statistics, p-values and intervals of a federated fit equal statsmodels' to 1e-6."""
    c = fed.coefficients
    np.testing.assert_allclose(c.coef, ref.params, rtol=0, atol=1e-6)
    np.testing.assert_allclose(c.se, ref.bse, rtol=1e-6, atol=0)
    np.testing.assert_allclose(c.stat, ref.tvalues, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(c.pvalue, ref.pvalues, rtol=1e-6, atol=1e-12)
    ci = ref.conf_int()
    np.testing.assert_allclose(c.ci_low, ci[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(c.ci_high, ci[:, 1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(c.cov, ref.cov_params(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("family", ["binomial", "gaussian", "poisson"])
def test_federated_glm_equals_pooled_statsmodels(family: Family) -> None:
    data = simulate(family, seed=11)
    fed = fit_glm([GLMSite(X, y, family) for X, y in data], family, NAMES)
    X, y = pooled(data)
    ref = sm.GLM(y, X, family=SM_FAMILY[family]()).fit(tol=1e-14, maxiter=200)
    assert_matches(fed, ref)
    assert fed.deviance == pytest.approx(ref.deviance, rel=1e-9)
    assert fed.loglik == pytest.approx(ref.llf, rel=1e-9)
    assert fed.scale == pytest.approx(ref.scale, rel=1e-9)
    assert fed.n == sum(SIZES)
    assert fed.df_resid == ref.df_resid
    assert fed.coefficients.names == NAMES
    rows = fed.coefficients.rows()
    assert [r["name"] for r in rows] == list(NAMES) and rows[1]["coef"] == pytest.approx(ref.params[1], abs=1e-6)


def test_logistic_converges_in_at_most_ten_rounds() -> None:
    for seed in (11, 12, 13):
        data = simulate("binomial", seed=seed)
        fed = fit_glm([GLMSite(X, y, "binomial") for X, y in data], "binomial", NAMES)
        assert fed.rounds <= 10
        # the deviance only goes down once Newton has its footing
        assert list(fed.deviance_history) == sorted(fed.deviance_history, reverse=True)


@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_convergence_does_not_depend_on_covariate_units(scale: float) -> None:
    # a covariate in tiny or huge units (grams vs tonnes) makes its coefficient huge or tiny: the stopping rule
    # measures the Newton step in standard errors, so the estimate is as exact either way
    data = [(X * np.r_[1.0, scale, 1.0, 1.0, 1.0], y) for X, y in simulate("binomial", seed=14)]
    fed = fit_glm([GLMSite(X, y, "binomial") for X, y in data], "binomial", NAMES)
    X, y = pooled(data)
    ref = sm.GLM(y, X, family=sm.families.Binomial()).fit(tol=1e-14, maxiter=200)
    np.testing.assert_array_less(np.abs(fed.params - ref.params), 1e-6 * ref.bse)
    np.testing.assert_allclose(fed.bse, ref.bse, rtol=1e-6)
    assert fed.rounds <= 10


def test_gaussian_is_exact_after_one_step() -> None:
    data = simulate("gaussian", seed=5)
    fed = fit_glm([GLMSite(X, y, "gaussian") for X, y in data], "gaussian", NAMES)
    # one Newton step solves least squares; the second round confirms it and brings the residual sum of squares
    assert fed.rounds == 2


def test_gaussian_t_inference_equals_statsmodels_use_t() -> None:
    data = simulate("gaussian", seed=6)
    fed = fit_glm([GLMSite(X, y, "gaussian") for X, y in data], "gaussian", NAMES, use_t=True)
    X, y = pooled(data)
    ref = sm.GLM(y, X, family=sm.families.Gaussian()).fit(use_t=True)
    assert fed.coefficients.df == ref.df_resid
    assert_matches(fed, ref)


def test_poisson_with_offset_equals_statsmodels() -> None:
    rng = np.random.default_rng(21)
    data, offsets = [], []
    for k, n in enumerate(SIZES):
        X = np.column_stack([np.ones(n), rng.normal(0.3 * k, 1.0, n), rng.binomial(1, 0.3, n)])
        exposure = rng.uniform(0.5, 5.0 + k, n)
        y = rng.poisson(exposure * np.exp(X @ np.array([-1.0, 0.3, 0.5])))
        data.append((X, y.astype(np.float64)))
        offsets.append(np.log(exposure))
    sites = [GLMSite(X, y, "poisson", offset=o) for (X, y), o in zip(data, offsets, strict=True)]
    fed = fit_glm(sites, "poisson", ["const", "x", "group"])
    X, y = pooled(data)
    ref = sm.GLM(y, X, family=sm.families.Poisson(), offset=np.concatenate(offsets)).fit(tol=1e-14)
    assert_matches(fed, ref)
    assert fed.deviance == pytest.approx(ref.deviance, rel=1e-9)


def test_a_site_without_events_still_gives_the_pooled_logistic_fit() -> None:
    data = simulate("binomial", seed=31)
    X0, _ = data[0]
    data[0] = (X0, np.zeros(X0.shape[0]))
    fed = fit_glm([GLMSite(X, y, "binomial") for X, y in data], "binomial", NAMES)
    X, y = pooled(data)
    assert_matches(fed, sm.GLM(y, X, family=sm.families.Binomial()).fit(tol=1e-14))


def test_no_event_anywhere_is_refused() -> None:
    data = simulate("binomial", seed=32)
    sites = [GLMSite(X, np.zeros_like(y), "binomial") for X, y in data]
    with pytest.raises(NoEventsError, match="no event"):
        fit_glm(sites, "binomial", NAMES)


def test_complete_separation_is_a_typed_error() -> None:
    rng = np.random.default_rng(41)
    sites = []
    for n in (200, 500, 300):
        x = rng.normal(0.0, 1.0, n)
        sites.append(GLMSite(np.column_stack([np.ones(n), x]), (x > 0.1).astype(float), "binomial"))
    with pytest.raises(PerfectSeparationError, match="complete separation"):
        fit_glm(sites, "binomial", ["const", "marker"])


def test_quasi_complete_separation_is_a_typed_error() -> None:
    rng = np.random.default_rng(42)
    sites = []
    for n in (400, 700):
        x = rng.normal(0.0, 1.0, n)
        group = rng.binomial(1, 0.3, n).astype(float)
        y = np.where(group == 1, 1.0, rng.binomial(1, 1.0 / (1.0 + np.exp(-x))))  # group 1 always has the event
        sites.append(GLMSite(np.column_stack([np.ones(n), x, group]), y, "binomial"))
    with pytest.raises(PerfectSeparationError, match="quasi-complete"):
        fit_glm(sites, "binomial", ["const", "x", "group"])


@pytest.mark.parametrize("family", ["binomial", "gaussian", "poisson"])
def test_collinear_columns_are_named(family: Family) -> None:
    data = simulate(family, seed=51)
    # "dose_mg" is an exact linear combination of two other covariates at every site
    sites = [GLMSite(np.column_stack([X, 2.0 * X[:, 1] - X[:, 3]]), y, family)
             for X, y in data]
    with pytest.raises(SingularHessianError, match="collinear") as err:
        fit_glm(sites, family, (*NAMES, "dose_mg"))
    message = str(err.value)
    assert "age_z" in message and "bmi_z" in message and "dose_mg" in message
    assert "female" not in message and "const" not in message


def test_a_column_of_zeros_is_named() -> None:
    data = simulate("gaussian", seed=52)
    sites = [GLMSite(np.column_stack([X, np.zeros(X.shape[0])]), y, "gaussian") for X, y in data]
    with pytest.raises(SingularHessianError, match="never_given"):
        fit_glm(sites, "gaussian", (*NAMES, "never_given"))


def test_the_coordinator_sees_only_what_aggregate_returns() -> None:
    data = simulate("binomial", seed=61)
    seen: list[int] = []

    def reversed_sum(messages: list[np.ndarray]) -> np.ndarray:
        # stands in for secure aggregation: the coordinator gets the sum and nothing else
        seen.append(len(messages))
        assert all(m.dtype == np.float64 and m.ndim == 1 for m in messages)
        return np.sum(np.stack(messages[::-1]), axis=0)

    fed = fit_glm([GLMSite(X, y, "binomial") for X, y in data], "binomial", NAMES, aggregate=reversed_sum)
    base = fit_glm([GLMSite(X, y, "binomial") for X, y in data], "binomial", NAMES)
    assert seen == [len(SIZES)] * fed.rounds
    np.testing.assert_allclose(fed.params, base.params, rtol=0, atol=1e-12)


def test_coordinator_loop_by_hand_equals_fit_glm() -> None:
    data = simulate("poisson", seed=62)
    sites = [GLMSite(X, y, "poisson") for X, y in data]
    coordinator = GLMCoordinator("poisson", NAMES)
    while True:
        beta = coordinator.beta  # what the hub would dispatch to the nodes
        if coordinator.update(plain_sum([site(beta) for site in sites])):
            break
    result = coordinator.result()
    np.testing.assert_allclose(result.params, fit_glm(sites, "poisson", NAMES).params, rtol=0, atol=1e-12)
    assert result.rounds == coordinator.rounds


def test_message_layout() -> None:
    X, y = simulate("binomial", seed=71, sizes=(50,))[0]
    beta = np.linspace(-0.2, 0.2, 5)
    message = glm_message(X, y, beta, "binomial")
    p = X.shape[1]
    assert message.dtype == np.float64 and message.shape == (message_length(p, len(GLM_EXTRAS)),)
    score, info, extras = unpack(message, p, len(GLM_EXTRAS))
    mu = 1.0 / (1.0 + np.exp(-X @ beta))
    np.testing.assert_allclose(score, X.T @ (y - mu), rtol=1e-12)
    np.testing.assert_allclose(info, X.T @ (X * (mu * (1 - mu))[:, None]), rtol=1e-12)
    assert extras[2] == 50 and extras[3] == y.sum()
    np.testing.assert_array_equal(pack(score, info, extras), message)
    with pytest.raises(MessageLayoutError, match="layout"):
        GLMCoordinator("binomial", NAMES).update(message[:-1])


def test_bad_site_data_is_refused_without_values() -> None:
    X, y = simulate("binomial", seed=72, sizes=(30,))[0]
    bad = y.copy()
    bad[3] = 7.25
    with pytest.raises(QueryError, match=r"\[0, 1\]") as err:
        GLMSite(X, bad, "binomial")
    assert "7.25" not in str(err.value)
    X2 = X.copy()
    X2[0, 1] = np.nan
    with pytest.raises(QueryError, match="missing"):
        GLMSite(X2, y, "binomial")
    with pytest.raises(QueryError, match="family"):
        GLMSite(X, y, "gamma")
    with pytest.raises(QueryError, match="offset"):
        GLMSite(X, y, "binomial", offset=np.zeros_like(y))


@settings(max_examples=40, deadline=None)
@given(family=st.sampled_from(["binomial", "gaussian", "poisson"]), seed=st.integers(0, 2**32 - 1),
       cuts=st.lists(st.integers(1, 119), min_size=1, max_size=5, unique=True),
       beta=st.lists(st.floats(-1.5, 1.5), min_size=4, max_size=4))
def test_sum_of_site_messages_equals_pooled_message(family: Family, seed: int, cuts: list[int],
                                                    beta: list[float]) -> None:
    rng = np.random.default_rng(seed)
    n = 120
    X = np.column_stack([np.ones(n), rng.normal(0, 1, n), rng.binomial(1, 0.5, n), rng.uniform(-2, 2, n)])
    y = {"binomial": rng.binomial(1, 0.4, n), "poisson": rng.poisson(2.0, n),
         "gaussian": rng.normal(0, 3, n)}[family].astype(np.float64)
    b = np.asarray(beta)
    edges = [0, *sorted(cuts), n]
    parts = [glm_message(X[a:c], y[a:c], b, family) for a, c in itertools.pairwise(edges)]
    whole = glm_message(X, y, b, family)
    np.testing.assert_allclose(plain_sum(parts), whole, rtol=1e-10, atol=1e-9)
