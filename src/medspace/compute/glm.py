"""Generalised linear models fitted exactly across sites by federated Newton–Raphson (IRLS).

Families, each with its canonical link (so Newton–Raphson and Fisher scoring, i.e. IRLS, coincide):

- ``binomial``: logit link, outcome in [0, 1] (0/1 for logistic regression);
- ``gaussian``: identity link, linear regression; the dispersion is estimated from the residual sum of squares;
- ``poisson``: log link, counts, with an optional offset (log exposure) per row.

Each round the coordinator sends β; every site computes, from its own rows only, the flat vector (see
:mod:`medspace.compute.newton` for the common part)::

    index                         content (each a SUM over the site's rows i)
    [0, p)                        score        Σ x_i (y_i − μ_i)
    [p, p + p(p+1)/2)             information  Σ w_i x_i x_iᵀ, upper triangle row by row (np.triu_indices),
                                               w_i = μ_i(1 − μ_i) binomial, 1 gaussian, μ_i poisson
    p + p(p+1)/2 + 0              deviance     binomial 2Σ[y log(y/μ) + (1−y) log((1−y)/(1−μ))],
                                               gaussian Σ (y − μ)² (the residual sum of squares),
                                               poisson 2Σ[y log(y/μ) − (y − μ)]
                    + 1           loglik       binomial Σ[y log μ + (1−y) log(1−μ)],
                                               poisson Σ[y log μ − μ − log y!], gaussian 0 (needs the global scale)
                    + 2           n            rows
                    + 3           sum_y        Σ y
                    + 4           n_perfect    binomial: rows whose fitted probability is within 1e-8 of y; else 0

Everything is a sum, so the element-wise sum of the sites' vectors is the same vector computed on the pooled
rows, and secure aggregation can stand in for the sum. The coordinator's estimates therefore equal a pooled
fit (statsmodels ``GLM`` with the matching family): standard errors from the inverse summed information, the
gaussian's scaled by the dispersion RSS / (n − p) as statsmodels does; z statistics and normal p-values
(statsmodels' default), or t with n − p degrees of freedom when ``use_t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
from scipy.special import expit, gammaln, xlogy

from medspace.compute.errors import (
    ConvergenceError,
    MessageLayoutError,
    ModelError,
    NoEventsError,
    PerfectSeparationError,
    QueryError,
    SingularHessianError,
)
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

Family = Literal["binomial", "gaussian", "poisson"]
FAMILIES: tuple[str, ...] = get_args(Family)
GLM_EXTRAS = ("deviance", "loglik", "n", "sum_y", "n_perfect")
# A fitted probability this close to its 0/1 outcome counts as perfectly predicted (separation diagnostics only).
PERFECT = 1e-8


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise QueryError(f"unknown GLM family {family!r}; expected one of {', '.join(FAMILIES)}")


def _check_site_data(X: np.ndarray, y: np.ndarray, family: str, offset: np.ndarray | None) -> None:
    """Refuse data the model cannot use; messages name the parameter, never a value."""
    _check_family(family)
    if X.ndim != 2:
        raise QueryError("covariates must be a 2-D array (rows × covariates)")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise QueryError("outcome must be 1-D with one value per covariate row")
    if offset is not None and offset.shape != y.shape:
        raise QueryError("offset must have one value per row")
    if not np.all(np.isfinite(X)):
        raise QueryError("covariates contain missing or infinite values")
    if not np.all(np.isfinite(y)):
        raise QueryError("outcome contains missing or infinite values")
    if offset is not None and not np.all(np.isfinite(offset)):
        raise QueryError("offset contains missing or infinite values")
    if family == "binomial" and (np.any(y < 0) or np.any(y > 1)):
        raise QueryError("binomial outcome must lie in [0, 1]")
    if family == "poisson" and np.any(y < 0):
        raise QueryError("poisson outcome must be non-negative")
    if offset is not None and family != "poisson":
        raise QueryError("an offset is only supported for the poisson family")


def glm_message(X: np.ndarray, y: np.ndarray, beta: np.ndarray, family: Family,
                offset: np.ndarray | None = None) -> np.ndarray:
    """A site's flat message at ``beta``: score, information (upper triangle) and the sums of GLM_EXTRAS."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    off = None if offset is None else np.asarray(offset, dtype=np.float64)
    _check_site_data(X, y, family, off)
    return _message(X, y, np.asarray(beta, dtype=np.float64), family, off)


def _message(X: np.ndarray, y: np.ndarray, beta: np.ndarray, family: str, offset: np.ndarray | None) -> np.ndarray:
    """The message on validated arrays."""
    p = X.shape[1]
    if beta.shape != (p,):
        raise MessageLayoutError(f"coefficients have {beta.size} values, the site has {p} covariates")
    eta = X @ beta
    if offset is not None:
        eta = eta + offset
    n_perfect = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        if family == "binomial":
            mu = expit(eta)
            log_mu, log_1mu = -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)
            w = mu * (1.0 - mu)
            loglik = float(np.sum(y * log_mu + (1.0 - y) * log_1mu))
            # y log y + (1−y) log(1−y) is 0 for 0/1 outcomes and keeps the deviance right for proportions.
            saturated = float(np.sum(xlogy(y, y) + xlogy(1.0 - y, 1.0 - y)))
            deviance = 2.0 * (saturated - loglik)
            n_perfect = float(np.count_nonzero(np.abs(y - mu) < PERFECT))
        elif family == "poisson":
            mu = np.exp(eta)
            w = mu
            loglik = float(np.sum(y * eta - mu - gammaln(y + 1.0)))
            deviance = 2.0 * float(np.sum(xlogy(y, y) - y * eta - (y - mu)))
        else:
            mu = eta
            w = np.ones_like(eta)
            loglik = 0.0
            deviance = float(np.sum((y - mu) ** 2))
        score = X.T @ (y - mu)
        information = X.T @ (X * w[:, None])
    return pack(score, information, [deviance, loglik, float(X.shape[0]), float(np.sum(y)), n_perfect])


@dataclass
class GLMSite:
    """One site's rows, validated once; calling it with β gives the site's message for that round."""

    X: np.ndarray
    y: np.ndarray
    family: Family
    offset: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.X = np.ascontiguousarray(self.X, dtype=np.float64)
        self.y = np.asarray(self.y, dtype=np.float64)
        self.offset = None if self.offset is None else np.asarray(self.offset, dtype=np.float64)
        _check_site_data(self.X, self.y, self.family, self.offset)

    @property
    def p(self) -> int:
        """Number of covariates (coefficients)."""
        return int(self.X.shape[1])

    def __call__(self, beta: np.ndarray) -> np.ndarray:
        """The site's message at ``beta``."""
        return _message(self.X, self.y, np.asarray(beta, dtype=np.float64), self.family, self.offset)


@dataclass(frozen=True)
class GLMResult(FitResult):
    """A fitted GLM: coefficients with inference, fit statistics and how the fit went."""

    family: str
    coefficients: Coefficients
    deviance: float
    loglik: float
    n: int
    df_resid: float
    scale: float
    rounds: int
    deviance_history: tuple[float, ...]


@dataclass
class GLMCoordinator(NewtonModel):
    """The coordinator's side of a federated GLM, transport-agnostic.

    Loop: send ``beta`` to every site, sum their messages (securely), pass the sum to :meth:`update`; stop when
    it returns True, then read :meth:`result`.
    """

    family: Family
    names: Sequence[str]
    tol: float = 1e-8
    max_rounds: int = 50
    alpha: float = 0.05
    use_t: bool = False
    start: np.ndarray | None = None
    _newton: NewtonCoordinator = field(init=False)

    def __post_init__(self) -> None:
        _check_family(self.family)
        self._start_newton()

    def update(self, total: np.ndarray) -> bool:
        """Take the summed messages of the sites at :attr:`beta`; return True once the fit has converged."""
        score, info, extras = unpack(total, self.p, len(GLM_EXTRAS))
        return self._step(score, info, extras)

    def _step(self, score: np.ndarray, info: np.ndarray, extras: np.ndarray) -> bool:
        deviance, _, n, sum_y, n_perfect = extras
        if n <= self.p:
            raise ModelError(f"{int(n)} rows for {self.p} coefficients: nothing left to estimate the model from")
        if self.family == "binomial":
            if sum_y <= 0 or sum_y >= n:
                raise NoEventsError("binomial outcome is " + ("0" if sum_y <= 0 else "1") + " in every row of "
                                    "every site: there is no event to model")
            if n_perfect >= n:
                raise PerfectSeparationError("complete separation: the covariates predict the outcome of every row "
                                             "exactly; the maximum-likelihood estimates do not exist")
        try:
            return self._newton.update(score, info, float(deviance), extras)
        except (SingularHessianError, ConvergenceError) as exc:
            if self.family == "binomial" and n_perfect > 0:
                raise PerfectSeparationError(f"quasi-complete separation: {int(n_perfect)} rows are predicted "
                                             f"exactly and the estimates diverge ({exc})") from exc
            raise

    def result(self) -> GLMResult:
        """The fit after convergence: coefficients, standard errors, statistics, p-values, intervals."""
        nc = self._newton
        if not nc.converged or nc.information is None or nc.extras is None:
            raise ConvergenceError("the fit has not converged yet")
        deviance, loglik, n, _, _ = (float(v) for v in nc.extras)
        df_resid = n - self.p
        if self.family == "gaussian":
            scale = deviance / df_resid
            loglik = -n / 2.0 * (1.0 + np.log(2.0 * np.pi * deviance / n))
        else:
            scale = 1.0
        coefs = infer(self.names, nc.beta, nc.information, scale, self.alpha, df_resid if self.use_t else None)
        return GLMResult(self.family, coefs, deviance, float(loglik), round(n), df_resid, scale, nc.rounds,
                         tuple(nc.history))


def fit_glm(sites: Sequence[SiteFn], family: Family, covariates: Sequence[str] | int, *,
            aggregate: Aggregate = plain_sum, tol: float = 1e-8, max_rounds: int = 50, alpha: float = 0.05,
            use_t: bool = False, start: np.ndarray | None = None) -> GLMResult:
    """Fit a GLM over in-process sites (β → message callables, e.g. :class:`GLMSite`) by federated Newton–Raphson.

    ``covariates`` names the columns (or gives their number); ``aggregate`` sums the sites' messages each round
    (secure aggregation in a deployment).
    """
    names = column_names(None, covariates) if isinstance(covariates, int) else tuple(covariates)
    coordinator = GLMCoordinator(family, names, tol=tol, max_rounds=max_rounds, alpha=alpha, use_t=use_t,
                                 start=start)
    if not sites:
        raise MessageLayoutError("no site to fit on")
    while True:
        total = aggregate([np.asarray(site(coordinator.beta), dtype=np.float64) for site in sites])
        if coordinator.update(total):
            return coordinator.result()
