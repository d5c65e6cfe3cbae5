"""Cox proportional hazards fitted exactly across sites by federated Newton–Raphson, stratified by site.

The Cox partial likelihood compares each failure with everyone still at risk at that time; a risk set that
spanned hospitals would need every site's individual times. The standard exact federated model instead lets
each site keep its own baseline hazard: a Cox model STRATIFIED BY SITE (and, optionally, by local strata within
a site). Its partial likelihood is a product over strata, so its log, score and information are sums over sites,
and the federated fit equals the pooled fit stratified by site, e.g. lifelines'
``CoxPHFitter().fit(df, strata=["site"])`` or statsmodels' ``PHReg(..., strata=site, ties="breslow")``. It does
NOT equal an unstratified pooled Cox model (one shared baseline hazard); that is the reference to compare with.

Ties are handled by Breslow's approximation: the d failures at a time t share the risk set of everyone with
time ≥ t. Without ties, Breslow and Efron (lifelines' only method) coincide.

Each round the coordinator sends β; each site sends the flat vector (layout of :mod:`medspace.compute.newton`)::

    [0, p)                      score        Σ_t [Σ_{i fails at t} x_i − d_t S1_t / S0_t]
    [p, p + p(p+1)/2)           information  Σ_t d_t [S2_t / S0_t − S1_t S1_tᵀ / S0_t²], upper triangle row by row
    p + p(p+1)/2 + 0            loglik       Σ_t [Σ_{i fails at t} x_iᵀβ − d_t log S0_t]   (log partial likelihood)
                  + 1           n            rows
                  + 2           n_events     failures

with S0_t = Σ_{j: T_j ≥ t} exp(x_jᵀβ), S1_t, S2_t the same sums weighted by x_j and x_j x_jᵀ, over the risk set of
the row's own stratum. All sums: the sum of the sites' vectors is the vector of the pooled, site-stratified data.

A site without any failure contributes nothing to a site-stratified model; it is refused (:class:`NoEventsError`)
rather than reported as included.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from medspace.compute.errors import ConvergenceError, MessageLayoutError, NoEventsError, QueryError
from medspace.compute.newton import (
    Aggregate,
    Coefficients,
    FitResult,
    NewtonCoordinator,
    NewtonModel,
    SiteFn,
    column_names,
    infer,
    pack,
    plain_sum,
    unpack,
)

COX_EXTRAS = ("loglik", "n", "n_events")


def _check_site_data(time: np.ndarray, event: np.ndarray, X: np.ndarray, strata: np.ndarray | None) -> None:
    """Refuse data the model cannot use; messages name the parameter, never a value."""
    if X.ndim != 2:
        raise QueryError("covariates must be a 2-D array (rows × covariates)")
    n = X.shape[0]
    if time.shape != (n,) or event.shape != (n,):
        raise QueryError("time and event must be 1-D with one value per covariate row")
    if strata is not None and strata.shape != (n,):
        raise QueryError("strata must have one label per row")
    if not np.all(np.isfinite(X)):
        raise QueryError("covariates contain missing or infinite values")
    if not np.all(np.isfinite(time)) or np.any(time < 0):
        raise QueryError("time must be finite and non-negative")
    if not np.all((event == 0) | (event == 1)):
        raise QueryError("event must be 0 (censored) or 1 (failure)")
    if not np.any(event == 1):
        raise NoEventsError("a site without any failure contributes nothing to a site-stratified Cox model; "
                            "leave the site out of the study")


def _stratum(time: np.ndarray, event: np.ndarray, X: np.ndarray, beta: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, float]:
    """Score, information and log partial likelihood (Breslow) of one stratum."""
    order = np.argsort(-time, kind="stable")
    t, d, x = time[order], event[order], X[order]
    eta = x @ beta
    shift = float(eta.max())  # exp(eta − shift) ≤ 1: no overflow; the shift cancels in every ratio
    r = np.exp(eta - shift)
    # Rows sorted by descending time: the risk set of a time is every row up to the last one of its tie group.
    last = np.flatnonzero(np.r_[t[1:] != t[:-1], True])
    first = np.r_[0, last[:-1] + 1]
    deaths = np.add.reduceat(d, first)
    s0 = np.cumsum(r)[last]
    s1 = np.cumsum(r[:, None] * x, axis=0)[last]
    has = deaths > 0
    dg, s0g, s1g = deaths[has], s0[has], s1[has]
    events = d > 0
    score = x[events].sum(axis=0) - (dg / s0g) @ s1g
    loglik = float(eta[events].sum() - np.sum(dg * (np.log(s0g) + shift)))
    # Σ_t d_t S2_t / S0_t = Σ_j r_j a_j x_j x_jᵀ with a_j = Σ_{failure times t ≤ T_j} d_t / S0_t (a row is at risk
    # at every failure time up to its own): one weighted cross-product instead of an n × p × p cumulative sum.
    hazard = np.where(has, deaths / s0, 0.0)
    a_group = np.cumsum(hazard[::-1])[::-1]  # groups in descending time: later groups are earlier times
    group_of_row = np.repeat(np.arange(last.shape[0]), last - first + 1)
    weight = r * a_group[group_of_row]
    m = s1g * (np.sqrt(dg) / s0g)[:, None]
    information = x.T @ (x * weight[:, None]) - m.T @ m
    return score, information, loglik


def cox_message(time: np.ndarray, event: np.ndarray, X: np.ndarray, beta: np.ndarray,
                strata: np.ndarray | None = None) -> np.ndarray:
    """A site's flat message at ``beta``: score, information (upper triangle), log partial likelihood, n, events."""
    t, e, x = (np.asarray(a, dtype=np.float64) for a in (time, event, X))
    s = None if strata is None else np.asarray(strata)
    _check_site_data(t, e, x, s)
    return _message(t, e, x, np.asarray(beta, dtype=np.float64), s)


def _message(time: np.ndarray, event: np.ndarray, X: np.ndarray, beta: np.ndarray,
             strata: np.ndarray | None) -> np.ndarray:
    """The message on validated arrays, summed over the site's local strata."""
    p = X.shape[1]
    if beta.shape != (p,):
        raise MessageLayoutError(f"coefficients have {beta.size} values, the site has {p} covariates")
    score, info, loglik = np.zeros(p), np.zeros((p, p)), 0.0
    groups = [np.arange(X.shape[0])] if strata is None else [
        np.flatnonzero(strata == label) for label in np.unique(strata)]
    for rows in groups:
        if not np.any(event[rows] > 0):
            continue  # a local stratum without failures has no partial likelihood
        g, h, ll = _stratum(time[rows], event[rows], X[rows], beta)
        score += g
        info += h
        loglik += ll
    return pack(score, info, [loglik, float(X.shape[0]), float(np.sum(event))])


# Rows per block of the concordance sweep: pairs inside a block are compared directly (≤ BLOCK² booleans).
BLOCK = 1024


def _concordance_counts(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> np.ndarray:
    """[concordant, tied, comparable] pairs of one stratum (Harrell): a failure i and a row j still at risk after it.

    j is comparable with failure i when T_j > T_i, or T_j = T_i and j is censored (it was at risk at T_i);
    concordant when i's risk is higher, tied when equal. O(n log n) plus BLOCK-sized direct comparisons.
    """
    n = time.shape[0]
    _, rank = np.unique(risk, return_inverse=True)  # equal risks share a rank
    order = np.lexsort((rank, time))
    t, e, k = time[order], event[order] > 0, rank[order].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
    ends = np.r_[starts[1:], n]
    group = np.repeat(np.arange(starts.shape[0]), ends - starts)
    comparable = float(np.sum((n - ends[group])[e]))
    concordant = tied = 0.0
    # Strictly later rows: sweep blocks of whole tie groups from the last time back; `later` holds the sorted risk
    # ranks of every row after the current block.
    later = np.empty(0, dtype=np.int64)
    block_end = n
    g = starts.shape[0] - 1
    while g >= 0:
        block_start = starts[g]
        while g > 0 and block_end - starts[g - 1] <= BLOCK:
            g -= 1
            block_start = starts[g]
        g -= 1
        rows = slice(block_start, block_end)
        ev = np.flatnonzero(e[rows]) + block_start
        if ev.size:
            lo, hi = np.searchsorted(later, k[ev], "left"), np.searchsorted(later, k[ev], "right")
            concordant += float(lo.sum())
            tied += float((hi - lo).sum())
            if group[block_start] != group[block_end - 1]:
                after = t[None, rows] > t[ev, None]
                concordant += float(np.sum(after & (k[None, rows] < k[ev, None])))
                tied += float(np.sum(after & (k[None, rows] == k[ev, None])))
        block = np.sort(k[rows])
        later = np.insert(later, np.searchsorted(later, block), block)  # a merge: O(n), no re-sort
        block_end = block_start
    # Same time: failures against the censored rows of their own tie group (keys sort by group, then risk rank).
    width = int(k.max()) + 2
    key = group.astype(np.int64) * width + k
    censored_keys = key[~e]  # increasing: rows are sorted by time, then rank
    base = group[e].astype(np.int64) * width
    lo = np.searchsorted(censored_keys, key[e], "left")
    concordant += float(np.sum(lo - np.searchsorted(censored_keys, base, "left")))
    tied += float(np.sum(np.searchsorted(censored_keys, key[e], "right") - lo))
    comparable += float(np.sum(np.searchsorted(censored_keys, base + width, "left")
                               - np.searchsorted(censored_keys, base, "left")))
    return np.array([concordant, tied, comparable])


def concordance_message(time: np.ndarray, event: np.ndarray, X: np.ndarray, beta: np.ndarray,
                        strata: np.ndarray | None = None) -> np.ndarray:
    """A site's [concordant, tied, comparable] pair counts at ``beta``, within its strata (sums across sites)."""
    t, e, x = (np.asarray(a, dtype=np.float64) for a in (time, event, X))
    s = None if strata is None else np.asarray(strata)
    _check_site_data(t, e, x, s)
    risk = x @ np.asarray(beta, dtype=np.float64)
    total = np.zeros(3)
    groups = [np.arange(x.shape[0])] if s is None else [np.flatnonzero(s == label) for label in np.unique(s)]
    for rows in groups:
        total += _concordance_counts(t[rows], e[rows], risk[rows])
    return total


def concordance(total: np.ndarray) -> float:
    """Harrell's C from summed [concordant, tied, comparable] counts: (concordant + tied / 2) / comparable."""
    concordant, tied, comparable = np.asarray(total, dtype=np.float64)
    if comparable <= 0:
        raise NoEventsError("no comparable pair of rows: concordance is undefined")
    return float((concordant + tied / 2.0) / comparable)


@dataclass
class CoxSite:
    """One site's survival data, validated once; calling it with β gives the site's message for that round."""

    time: np.ndarray
    event: np.ndarray
    X: np.ndarray
    strata: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.time = np.asarray(self.time, dtype=np.float64)
        self.event = np.asarray(self.event, dtype=np.float64)
        self.X = np.ascontiguousarray(self.X, dtype=np.float64)
        self.strata = None if self.strata is None else np.asarray(self.strata)
        _check_site_data(self.time, self.event, self.X, self.strata)

    @property
    def p(self) -> int:
        """Number of covariates (coefficients)."""
        return int(self.X.shape[1])

    def __call__(self, beta: np.ndarray) -> np.ndarray:
        """The site's message at ``beta``."""
        return _message(self.time, self.event, self.X, np.asarray(beta, dtype=np.float64), self.strata)

    def concordance(self, beta: np.ndarray) -> np.ndarray:
        """The site's [concordant, tied, comparable] pair counts at ``beta`` (a second kind of message)."""
        return concordance_message(self.time, self.event, self.X, beta, self.strata)


@dataclass(frozen=True)
class CoxResult(FitResult):
    """A fitted site-stratified Cox model: coefficients (log hazard ratios) with inference, and the fit."""

    coefficients: Coefficients
    loglik: float
    n: int
    n_events: int
    rounds: int
    loglik_history: tuple[float, ...]
    concordance: float | None = None  # Harrell's C within strata, when asked for (one more round)

    @property
    def hazard_ratios(self) -> np.ndarray:
        """exp(coefficients)."""
        return np.exp(self.coefficients.coef)

    @property
    def hazard_ratio_ci(self) -> tuple[np.ndarray, np.ndarray]:
        """The confidence interval of each hazard ratio (the log-scale interval, exponentiated)."""
        return np.exp(self.coefficients.ci_low), np.exp(self.coefficients.ci_high)


@dataclass
class CoxCoordinator(NewtonModel):
    """The coordinator's side of a federated Cox model, transport-agnostic (same loop as the GLM's)."""

    names: Sequence[str]
    tol: float = 1e-8
    max_rounds: int = 50
    alpha: float = 0.05
    start: np.ndarray | None = None
    _newton: NewtonCoordinator = field(init=False)

    def __post_init__(self) -> None:
        self._start_newton()

    def update(self, total: np.ndarray) -> bool:
        """Take the summed messages of the sites at :attr:`beta`; return True once the fit has converged."""
        score, info, extras = unpack(total, self.p, len(COX_EXTRAS))
        loglik, _, n_events = extras
        if n_events <= 0:
            raise NoEventsError("no failure at any site: there is nothing to model")
        return self._newton.update(score, info, -2.0 * float(loglik), extras)

    def result(self) -> CoxResult:
        """The fit after convergence: log hazard ratios, standard errors, z, p-values, intervals."""
        nc = self._newton
        if not nc.converged or nc.information is None or nc.extras is None:
            raise ConvergenceError("the fit has not converged yet")
        loglik, n, n_events = (float(v) for v in nc.extras)
        coefs = infer(self.names, nc.beta, nc.information, 1.0, self.alpha, None)
        return CoxResult(coefs, loglik, round(n), round(n_events), nc.rounds,
                         tuple(-h / 2.0 for h in nc.history))


def fit_cox(sites: Sequence[SiteFn], covariates: Sequence[str] | int, *, aggregate: Aggregate = plain_sum,
            tol: float = 1e-8, max_rounds: int = 50, alpha: float = 0.05, start: np.ndarray | None = None,
            concordance_sites: Sequence[SiteFn] | None = None) -> CoxResult:
    """Fit a site-stratified Cox model (Breslow ties) over in-process sites by federated Newton–Raphson.

    With ``concordance_sites`` (β → [concordant, tied, comparable], e.g. ``CoxSite.concordance``), one more
    aggregated round at the estimates gives Harrell's C within strata (lifelines' ``concordance_index_``).
    """
    names = column_names(None, covariates) if isinstance(covariates, int) else tuple(covariates)
    coordinator = CoxCoordinator(names, tol=tol, max_rounds=max_rounds, alpha=alpha, start=start)
    if not sites:
        raise MessageLayoutError("no site to fit on")
    while True:
        total = aggregate([np.asarray(site(coordinator.beta), dtype=np.float64) for site in sites])
        if coordinator.update(total):
            result = coordinator.result()
            if concordance_sites is None:
                return result
            counts = aggregate([np.asarray(site(result.params), dtype=np.float64) for site in concordance_sites])
            return dataclasses.replace(result, concordance=concordance(counts))
