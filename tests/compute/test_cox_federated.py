"""The federated Cox model equals the pooled model STRATIFIED BY SITE (lifelines, statsmodels PHReg) to 1e-6.

lifelines only has Efron's ties, which equals Breslow's when no two times tie, so it is the reference on
continuous times (its Newton–Raphson tightened: precision 1e-12, no relative-likelihood stop, full steps);
statsmodels' PHReg with ties="breslow" is the reference on tied times and on local strata.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import CoxPHFitter
from statsmodels.duration.hazard_regression import PHReg

import medspace.compute.cox as cox_module
from medspace.compute.cox import (
    COX_EXTRAS,
    CoxCoordinator,
    CoxResult,
    CoxSite,
    concordance_message,
    cox_message,
    fit_cox,
)
from medspace.compute.errors import NoEventsError, QueryError, SingularHessianError
from medspace.compute.newton import message_length, plain_sum, unpack

SIZES = (250, 900, 500, 1600)
TRUE_BETA = np.array([0.5, -0.4, 0.3, 0.15])
NAMES = ("age_z", "female", "marker", "dose")
TIGHT = {"precision": 1e-12, "r_precision": 0.0, "step_size": 1.0, "max_steps": 200}


def simulate(seed: int, sizes: tuple[int, ...] = SIZES, round_to: float | None = None) -> pd.DataFrame:
    """Sites with shifted covariates and very different baseline hazards and censoring."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, n in enumerate(sizes):
        X = np.column_stack([rng.normal(0.3 * k - 0.5, 1.0 + 0.2 * k, n), rng.binomial(1, 0.3 + 0.1 * k, n),
                             rng.normal(0.0, 1.0, n), rng.uniform(0.0, 1.0 + k, n)])
        baseline = 0.2 * (1 + 2 * k) ** 1.5
        t = rng.weibull(1.0 + 0.3 * k, n) / (baseline * np.exp(X @ TRUE_BETA))
        c = rng.exponential(2.0 / baseline, n)
        time = np.minimum(t, c)
        if round_to is not None:
            time = np.ceil(time / round_to) * round_to
        frame = pd.DataFrame(X, columns=list(NAMES))
        frame["time"], frame["event"], frame["site"] = time, (t <= c).astype(float), k
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def sites_of(df: pd.DataFrame, strata: str | None = None) -> list[CoxSite]:
    """One CoxSite per site of the frame."""
    return [CoxSite(g["time"].to_numpy(), g["event"].to_numpy(), g[list(NAMES)].to_numpy(),
                    None if strata is None else g[strata].to_numpy()) for _, g in df.groupby("site")]


def assert_matches(fed: CoxResult, coef: Any, se: Any, p: Any) -> None:
    """Coefficients to 1e-6 absolute, standard errors to 1e-6 relative, p-values to 1e-6."""
    np.testing.assert_allclose(fed.params, coef, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fed.bse, se, rtol=1e-6, atol=0)
    np.testing.assert_allclose(fed.pvalues, p, rtol=1e-6, atol=1e-12)


def test_federated_cox_equals_lifelines_stratified_by_site() -> None:
    df = simulate(seed=1)
    assert df["time"].nunique() == len(df)  # continuous times: Breslow = Efron
    fed = fit_cox(sites_of(df), NAMES)
    cph = CoxPHFitter().fit(df[[*NAMES, "time", "event", "site"]], "time", "event", strata=["site"],
                            fit_options=TIGHT)
    s = cph.summary.loc[list(NAMES)]
    assert_matches(fed, s["coef"].to_numpy(), s["se(coef)"].to_numpy(), s["p"].to_numpy())
    np.testing.assert_allclose(fed.coefficients.stat, s["z"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(fed.hazard_ratios, s["exp(coef)"].to_numpy(), rtol=1e-6)
    low, high = fed.hazard_ratio_ci
    np.testing.assert_allclose(low, s["exp(coef) lower 95%"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(high, s["exp(coef) upper 95%"].to_numpy(), rtol=1e-6)
    assert fed.loglik == pytest.approx(cph.log_likelihood_, rel=1e-9)
    assert fed.n == len(df) and fed.n_events == int(df["event"].sum())


def test_concordance_equals_lifelines_stratified_concordance() -> None:
    df = simulate(seed=8)
    sites = sites_of(df)
    fed = fit_cox(sites, NAMES, concordance_sites=[s.concordance for s in sites])
    cph = CoxPHFitter().fit(df[[*NAMES, "time", "event", "site"]], "time", "event", strata=["site"],
                            fit_options=TIGHT)
    assert fed.concordance == pytest.approx(cph.concordance_index_, abs=1e-12)
    assert fit_cox(sites, NAMES).concordance is None


def brute_force_counts(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> list[float]:
    """Harrell's pair counts by looking at every pair."""
    concordant = tied = comparable = 0
    for i in np.flatnonzero(event):
        for j in range(time.size):
            if time[j] > time[i] or (time[j] == time[i] and event[j] == 0):
                comparable += 1
                concordant += int(risk[i] > risk[j])
                tied += int(risk[i] == risk[j])
    return [concordant, tied, comparable]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 120), time_digits=st.integers(0, 2),
       risk_digits=st.integers(0, 2), block=st.integers(1, 30))
def test_concordance_counts_equal_brute_force_with_ties(seed: int, n: int, time_digits: int, risk_digits: int,
                                                        block: int) -> None:
    rng = np.random.default_rng(seed)
    time = np.round(rng.exponential(1.0, n), time_digits)
    event = rng.binomial(1, 0.6, n).astype(float)
    event[0] = 1.0
    x = np.round(rng.normal(0.0, 1.0, (n, 1)), risk_digits)
    # small blocks exercise the sweep across blocks as well as the direct comparisons inside one
    saved = cox_module.BLOCK
    cox_module.BLOCK = block
    try:
        got = concordance_message(time, event, x, np.array([1.0]))
    finally:
        cox_module.BLOCK = saved
    assert list(got) == brute_force_counts(time, event, x[:, 0])


def test_federated_cox_is_not_the_unstratified_pooled_model() -> None:
    # the reference is the site-stratified model: with baselines this different, one shared baseline is another fit
    df = simulate(seed=1)
    fed = fit_cox(sites_of(df), NAMES)
    unstratified = CoxPHFitter().fit(df[[*NAMES, "time", "event"]], "time", "event", fit_options=TIGHT)
    assert np.max(np.abs(fed.params - unstratified.params_.to_numpy())) > 1e-2


def test_federated_cox_with_tied_times_equals_breslow_phreg() -> None:
    df = simulate(seed=2, round_to=0.05)
    assert df["time"].nunique() < len(df) / 5  # many ties
    fed = fit_cox(sites_of(df), NAMES)
    ref = PHReg(df["time"].to_numpy(), df[list(NAMES)].to_numpy(), status=df["event"].to_numpy(),
                strata=df["site"].to_numpy(), ties="breslow").fit()
    assert_matches(fed, ref.params, ref.bse, ref.pvalues)
    assert fed.loglik == pytest.approx(ref.llf, rel=1e-9)


def test_local_strata_within_sites_equal_pooled_site_by_stratum() -> None:
    df = simulate(seed=3, round_to=0.02)
    df["sex_stratum"] = df["female"].astype(int)
    names = [n for n in NAMES if n != "female"]
    sites = [CoxSite(g["time"].to_numpy(), g["event"].to_numpy(), g[names].to_numpy(), g["sex_stratum"].to_numpy())
             for _, g in df.groupby("site")]
    fed = fit_cox(sites, names)
    ref = PHReg(df["time"].to_numpy(), df[names].to_numpy(), status=df["event"].to_numpy(),
                strata=(df["site"] * 10 + df["sex_stratum"]).to_numpy(), ties="breslow").fit()
    assert_matches(fed, ref.params, ref.bse, ref.pvalues)


def test_pooled_message_stratified_by_site_is_our_own_pooled_fit() -> None:
    df = simulate(seed=4)
    pooled = CoxSite(df["time"].to_numpy(), df["event"].to_numpy(), df[list(NAMES)].to_numpy(),
                     df["site"].to_numpy())
    fed = fit_cox(sites_of(df), NAMES)
    own = fit_cox([pooled], NAMES)
    np.testing.assert_allclose(fed.params, own.params, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fed.bse, own.bse, rtol=1e-10)
    assert fed.rounds == own.rounds <= 10


def test_a_site_without_events_is_refused() -> None:
    df = simulate(seed=5)
    g = df[df["site"] == 0]
    with pytest.raises(NoEventsError, match="without any failure"):
        CoxSite(g["time"].to_numpy(), np.zeros(len(g)), g[list(NAMES)].to_numpy())
    with pytest.raises(NoEventsError):
        cox_message(g["time"].to_numpy(), np.zeros(len(g)), g[list(NAMES)].to_numpy(), np.zeros(len(NAMES)))


def test_no_failure_in_the_sum_is_refused() -> None:
    # a node that skipped its own check still cannot make the coordinator fit nothing
    coordinator = CoxCoordinator(NAMES)
    empty = np.zeros(message_length(len(NAMES), len(COX_EXTRAS)))
    with pytest.raises(NoEventsError, match="no failure"):
        coordinator.update(empty)


def test_collinear_covariates_are_named() -> None:
    df = simulate(seed=6)
    df["dose_mg"] = 3.0 * df["dose"] + df["marker"]
    sites = [CoxSite(g["time"].to_numpy(), g["event"].to_numpy(), g[[*NAMES, "dose_mg"]].to_numpy())
             for _, g in df.groupby("site")]
    with pytest.raises(SingularHessianError, match="collinear") as err:
        fit_cox(sites, (*NAMES, "dose_mg"))
    assert {"marker", "dose", "dose_mg"} <= set(str(err.value).replace(",", " ").split())
    assert "age_z" not in str(err.value)


def test_bad_survival_data_is_refused_without_values() -> None:
    df = simulate(seed=7, sizes=(40,))
    t, e, X = df["time"].to_numpy(), df["event"].to_numpy(), df[list(NAMES)].to_numpy()
    with pytest.raises(QueryError, match="event must be 0"):
        CoxSite(t, np.where(np.arange(40) == 3, 2.0, e), X)
    bad_t = t.copy()
    bad_t[5] = -123.5
    with pytest.raises(QueryError, match="non-negative") as err:
        CoxSite(bad_t, e, X)
    assert "123" not in str(err.value)


def test_message_layout_and_breslow_by_hand() -> None:
    # five rows, one stratum, a tie at time 2: the score and information written out from Breslow's formula
    time = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    event = np.array([1.0, 1.0, 1.0, 0.0, 1.0])
    x = np.array([[0.5], [-1.0], [2.0], [0.0], [1.0]])
    beta = np.array([0.3])
    r = np.exp(x[:, 0] * beta[0])
    loglik = score = info = 0.0
    for t, d_rows in ((1.0, [0]), (2.0, [1, 2]), (4.0, [4])):
        risk = time >= t
        s0, s1, s2 = r[risk].sum(), (r * x[:, 0])[risk].sum(), (r * x[:, 0] ** 2)[risk].sum()
        d = len(d_rows)
        loglik += x[d_rows, 0].sum() * beta[0] - d * np.log(s0)
        score += x[d_rows, 0].sum() - d * s1 / s0
        info += d * (s2 / s0 - (s1 / s0) ** 2)
    message = cox_message(time, event, x, beta)
    assert message.shape == (message_length(1, len(COX_EXTRAS)),)
    g, h, extras = unpack(message, 1, len(COX_EXTRAS))
    assert g[0] == pytest.approx(score, rel=1e-12) and h[0, 0] == pytest.approx(info, rel=1e-12)
    assert extras[0] == pytest.approx(loglik, rel=1e-12)
    assert list(extras[1:]) == [5.0, 4.0]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.integers(10, 190), min_size=1, max_size=4, unique=True),
       beta=st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3), ties=st.booleans())
def test_sum_of_site_messages_equals_pooled_site_stratified_message(seed: int, cuts: list[int], beta: list[float],
                                                                   ties: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    X = np.column_stack([rng.normal(0, 1, n), rng.binomial(1, 0.5, n), rng.uniform(-2, 2, n)])
    time = rng.exponential(1.0, n)
    if ties:
        time = np.round(time, 1)
    event = rng.binomial(1, 0.6, n).astype(float)
    edges = [0, *sorted(set(cuts)), n]
    site = np.zeros(n, dtype=int)
    for k, (a, c) in enumerate(itertools.pairwise(edges)):
        site[a:c] = k
        event[a] = 1.0  # every site has a failure
    b = np.asarray(beta)
    parts = [cox_message(time[a:c], event[a:c], X[a:c], b) for a, c in itertools.pairwise(edges)]
    whole = cox_message(time, event, X, b, strata=site)
    np.testing.assert_allclose(plain_sum(parts), whole, rtol=1e-10, atol=1e-9)
