"""Federated Newton–Raphson: the message layout, the coordinator's step and the inference at the optimum.

A model fitted exactly across sites needs, at the current coefficients β, three things that are SUMS over
patients: the score (gradient of the log-likelihood), the information (minus its Hessian) and the objective
(deviance, or −2 × log partial likelihood). Each site packs its share into ONE flat float64 vector,

    [ score (p) | information, upper triangle row by row (p(p+1)/2) | extras (model-specific, each a sum) ]

so that the only thing the coordinator needs is the element-wise sum of the sites' vectors: a plain sum here,
secure aggregation later (the `aggregate` parameter of the fitting functions). The coordinator itself
(:class:`NewtonCoordinator`) is a state machine, independent of any transport: it says which β to send, takes
the summed vector of a round and says whether the fit has converged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from medspace.compute.errors import ConvergenceError, MessageLayoutError, SingularHessianError

# The coordinator's view of aggregation: the sites' vectors in, their sum out.
Aggregate = Callable[[list[np.ndarray]], np.ndarray]
# What one site does in a round: β in, its flat message out.
SiteFn = Callable[[np.ndarray], np.ndarray]

# Below this smallest eigenvalue of the information scaled to unit diagonal, columns are taken as collinear: the
# scaled matrix's eigenvalues lie in (0, p], and 1e-10 is far above what rounding in the sums produces.
SINGULAR_EIGENVALUE = 1e-10


def plain_sum(messages: list[np.ndarray]) -> np.ndarray:
    """Element-wise sum of the sites' messages (the stand-in for secure aggregation)."""
    if not messages:
        raise MessageLayoutError("no site message to aggregate")
    first = np.asarray(messages[0], dtype=np.float64)
    total = first.copy()
    for m in messages[1:]:
        m = np.asarray(m, dtype=np.float64)
        if m.shape != first.shape:
            raise MessageLayoutError("site messages differ in length")
        total += m
    return total


def message_length(p: int, n_extras: int) -> int:
    """Length of a message for p coefficients and n_extras model-specific sums."""
    return p + p * (p + 1) // 2 + n_extras


def pack(score: np.ndarray, information: np.ndarray, extras: Sequence[float]) -> np.ndarray:
    """Pack a site's score, information (upper triangle) and extra sums into one flat float64 vector."""
    p = score.shape[0]
    iu = np.triu_indices(p)
    return np.concatenate([score.astype(np.float64), information[iu].astype(np.float64),
                           np.asarray(extras, dtype=np.float64)])


def unpack(message: np.ndarray, p: int, n_extras: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a (summed) message into score, symmetric information matrix and extras."""
    message = np.asarray(message, dtype=np.float64)
    if message.ndim != 1 or message.shape[0] != message_length(p, n_extras):
        raise MessageLayoutError(f"message has {message.size} values, the layout for {p} coefficients and "
                                 f"{n_extras} extras has {message_length(p, n_extras)}")
    score = message[:p].copy()
    info = np.zeros((p, p))
    iu = np.triu_indices(p)
    info[iu] = message[p:p + iu[0].size]
    info = info + np.triu(info, 1).T
    return score, info, message[p + iu[0].size:].copy()


def check_information(info: np.ndarray, names: Sequence[str]) -> None:
    """Raise SingularHessianError, naming the columns involved, when the information matrix is singular."""
    diag = np.diag(info)
    dead = [names[i] for i in np.flatnonzero(~(diag > 0)).tolist()]
    if dead:
        raise SingularHessianError(f"singular information matrix: covariate(s) {', '.join(dead)} carry no "
                                   f"information (constant zero column, or all weight lost)")
    scale = 1.0 / np.sqrt(diag)
    scaled = info * scale[:, None] * scale[None, :]
    if not np.all(np.isfinite(scaled)):
        raise SingularHessianError("information matrix is not finite")
    values, vectors = np.linalg.eigh(scaled)
    if values[0] < SINGULAR_EIGENVALUE:
        # The eigenvector of the smallest eigenvalue is the (near) linear combination that vanishes.
        v = np.abs(vectors[:, 0])
        involved = [names[i] for i in np.flatnonzero(v > 0.1 * v.max()).tolist()]
        raise SingularHessianError(f"singular information matrix: covariates {', '.join(involved)} are collinear "
                                   f"(smallest scaled eigenvalue {values[0]:.1e}); drop or combine them")


@dataclass
class NewtonCoordinator:
    """Newton–Raphson with step halving, driven by summed (score, information, objective) of each round.

    ``objective`` is minimised (a deviance: −2 × log-likelihood up to a constant). Convergence: every component of
    the Newton step is below ``tol`` standard errors of its coefficient (so the test does not depend on the units of
    a covariate); Newton converges quadratically, so the coefficients returned (β + that last step) are then
    accurate far below ``tol`` standard errors. A round whose objective is worse than the last
    accepted one (or not finite) halves the previous step instead. The standard errors use the information of that
    last round, computed at β, less than ``tol`` standard errors from the coefficients returned: their relative error
    is of that order or below, far inside the 1e-6 the pooled fit is matched to, and it saves a round.
    """

    p: int
    names: Sequence[str]
    tol: float = 1e-8
    max_rounds: int = 50
    max_halvings: int = 30
    beta: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rounds: int = field(default=0, init=False)
    converged: bool = field(default=False, init=False)
    history: list[float] = field(default_factory=list, init=False)  # every round's objective, rejected ones too
    information: np.ndarray | None = field(default=None, init=False)
    score: np.ndarray | None = field(default=None, init=False)
    extras: np.ndarray | None = field(default=None, init=False)
    objective: float = field(default=float("nan"), init=False)
    last_step_size: float = field(default=float("inf"), init=False)  # in standard errors
    _accepted: tuple[np.ndarray, float] | None = field(default=None, init=False, repr=False)
    _last_step: np.ndarray | None = field(default=None, init=False, repr=False)
    _halvings: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.beta.size == 0:
            self.beta = np.zeros(self.p)
        elif self.beta.shape != (self.p,):
            raise MessageLayoutError(f"start has {self.beta.size} coefficients, the model has {self.p}")
        self.beta = np.asarray(self.beta, dtype=np.float64).copy()

    def update(self, score: np.ndarray, information: np.ndarray, objective: float,
               extras: np.ndarray | None = None) -> bool:
        """Take the summed statistics at ``self.beta``; move ``self.beta``; return True once converged.

        ``extras`` (the model's other sums) are kept with the last accepted round, the one the result is built on.
        """
        if self.converged:
            raise ConvergenceError("the fit has already converged")
        self.rounds += 1
        self.history.append(float(objective))
        worse = (self._accepted is not None
                 and not objective <= self._accepted[1] + 1e-10 * (abs(self._accepted[1]) + 1.0))
        if not np.isfinite(objective) or worse:
            if self._accepted is None or self._last_step is None:
                raise ConvergenceError("objective is not finite at the starting coefficients")
            self._halvings += 1
            if self._halvings > self.max_halvings:
                raise ConvergenceError(f"no improving step after {self.max_halvings} halvings")
            self._last_step = self._last_step / 2.0
            self.beta = self._accepted[0] + self._last_step
            self._check_rounds()
            return False
        self._halvings = 0
        check_information(information, self.names)
        try:
            step = np.linalg.solve(information, score)
        except np.linalg.LinAlgError as exc:
            raise SingularHessianError(f"information matrix cannot be solved: {exc}") from exc
        self._accepted = (self.beta.copy(), float(objective))
        self.information, self.score, self.objective = information, score, float(objective)
        self.extras = None if extras is None else np.asarray(extras, dtype=np.float64).copy()
        unit_se = np.sqrt(np.diag(np.linalg.inv(information)))
        self.last_step_size = float(np.max(np.abs(step) / unit_se)) if step.size else 0.0
        self._last_step = step
        self.beta = self.beta + step
        if self.last_step_size < self.tol:
            self.converged = True
            return True
        self._check_rounds()
        return False

    def _check_rounds(self) -> None:
        if self.rounds >= self.max_rounds:
            raise ConvergenceError(f"not converged after {self.max_rounds} rounds "
                                   f"(last step {self.last_step_size:.1e} standard errors, tolerance {self.tol:.0e})")


class NewtonModel:
    """What a model's coordinator shares: its coefficient names and the Newton iteration it drives (subclasses
    are dataclasses with ``names``, ``tol``, ``max_rounds`` and ``start``, and call :meth:`_start_newton`)."""

    names: Sequence[str]
    tol: float
    max_rounds: int
    start: np.ndarray | None
    _newton: NewtonCoordinator

    def _start_newton(self) -> None:
        self.names = tuple(self.names)
        start = np.zeros(len(self.names)) if self.start is None else np.asarray(self.start, dtype=np.float64)
        self._newton = NewtonCoordinator(len(self.names), self.names, tol=self.tol, max_rounds=self.max_rounds,
                                         beta=start)

    @property
    def p(self) -> int:
        """Number of coefficients."""
        return len(self.names)

    @property
    def beta(self) -> np.ndarray:
        """The coefficients at which the sites compute the next round's message."""
        return self._newton.beta.copy()

    @property
    def rounds(self) -> int:
        """Rounds taken so far."""
        return self._newton.rounds


class FitResult:
    """The estimates every fitted model reports, in statsmodels' names (subclasses hold ``coefficients``)."""

    coefficients: Coefficients

    @property
    def params(self) -> np.ndarray:
        """The coefficient estimates (log hazard ratios for Cox)."""
        return self.coefficients.coef

    @property
    def bse(self) -> np.ndarray:
        """The standard errors."""
        return self.coefficients.se

    @property
    def pvalues(self) -> np.ndarray:
        """The two-sided Wald p-values."""
        return self.coefficients.pvalue


@dataclass(frozen=True)
class Coefficients:
    """Estimates with their standard errors, test statistics, p-values and confidence intervals."""

    names: tuple[str, ...]
    coef: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    pvalue: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    cov: np.ndarray
    alpha: float
    df: float | None  # degrees of freedom of the t distribution, None for the normal

    def rows(self) -> list[dict[str, float | str]]:
        """One dict per coefficient: name, coef, se, stat, p, ci_low, ci_high."""
        return [{"name": n, "coef": float(c), "se": float(s), "stat": float(t), "p": float(pv),
                 "ci_low": float(lo), "ci_high": float(hi)}
                for n, c, s, t, pv, lo, hi in zip(self.names, self.coef, self.se, self.stat, self.pvalue,
                                                  self.ci_low, self.ci_high, strict=True)]


def infer(names: Sequence[str], coef: np.ndarray, information: np.ndarray, scale: float, alpha: float,
          df: float | None) -> Coefficients:
    """Wald inference from the inverse information (times the dispersion ``scale``)."""
    cov = np.linalg.inv(information) * scale
    cov = (cov + cov.T) / 2.0
    se = np.sqrt(np.diag(cov))
    stat = coef / se
    if df is None:
        pvalue = 2.0 * stats.norm.sf(np.abs(stat))
        q = float(stats.norm.ppf(1.0 - alpha / 2.0))
    else:
        pvalue = 2.0 * stats.t.sf(np.abs(stat), df)
        q = float(stats.t.ppf(1.0 - alpha / 2.0, df))
    return Coefficients(tuple(names), coef, se, stat, pvalue, coef - q * se, coef + q * se, cov, alpha, df)


def column_names(names: Sequence[str] | None, p: int) -> tuple[str, ...]:
    """The covariates' names, x0… when not given; checks their number."""
    if names is None:
        return tuple(f"x{i}" for i in range(p))
    if len(names) != p:
        raise MessageLayoutError(f"{len(names)} names for {p} coefficients")
    return tuple(names)
