"""Evaluation the way FLamby reports it: local-only, federated and pooled training, tested site by site.

On K hospitals, each with its own train and test split, :func:`evaluate_federated` trains

- **local**: one model per site on that site's training rows only (FLamby's "Local k"); each is tested on every
  site's test set (``local_cross``), and the table's "local" column is each site's own model on its own test set;
- **federated**: one model per strategy (FedAvg, FedProx, FedAdam, ...) over all sites' training rows by
  :func:`~medspace.compute.fl.federated.train_federated`;
- **pooled**: one model on all sites' training rows stacked (the centralised reference),

all from the same initial parameters with the same local learning rate and batch size and the same amount of
training: with whole local epochs, rounds × epochs passes over the data for every method; with a fixed number of
local steps per round (FLamby's setting), rounds × steps for a local-only model and K × rounds × steps for the
pooled one (the number of gradient steps all the federated clients take together). It reports per-site test
accuracy, AUC and log-loss side by side, with the unweighted average over sites (FLamby's summary) and the average
weighted by test size; a site whose test set has one class only has no AUC (NaN) and is left out of AUC averages.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from medspace.compute.errors import FederatedLearningError, QueryError
from medspace.compute.fl.dp import DPConfig
from medspace.compute.fl.federated import train_federated
from medspace.compute.fl.metrics import Metrics, classification_metrics
from medspace.compute.fl.models import Model
from medspace.compute.fl.strategies import ClientInstructions, Strategy
from medspace.compute.newton import Aggregate, plain_sum

LOCAL, POOLED = "local", "pooled"


@dataclass(frozen=True)
class SiteSplit:
    """One hospital's training and test rows (features, integer labels)."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        """(X_train, y_train)."""
        return self.X_train, self.y_train


@dataclass(frozen=True)
class EvaluationReport:
    """Per-site test metrics of each training method, ready for a table."""

    sites: tuple[str, ...]
    methods: tuple[str, ...]  # "local", the strategies' names, "pooled"
    metrics: dict[str, dict[str, Metrics]]  # method -> site -> metrics on that site's test set
    local_cross: dict[str, dict[str, Metrics]]  # site trained at -> site tested at
    params: dict[str, np.ndarray]  # method -> final parameters (local: absent, see local_params)
    local_params: dict[str, np.ndarray]  # site -> its local-only model's parameters
    rounds: int
    seconds: dict[str, float] = field(default_factory=dict)  # method -> wall time of its training
    loss_history: dict[str, tuple[float, ...]] = field(default_factory=dict)  # strategy -> train loss per round

    def value(self, method: str, site: str, metric: str = "accuracy") -> float:
        """One cell: ``metric`` of ``method`` on ``site``'s test set."""
        if method not in self.metrics:
            raise QueryError(f"unknown method {method!r}")
        if site not in self.metrics[method]:
            raise QueryError(f"unknown site {site!r}")
        return self.metrics[method][site].get(metric)

    def average(self, method: str, metric: str = "accuracy", weighted: bool = False) -> float:
        """Mean of ``metric`` over the sites where it is defined (FLamby's average), or weighted by test size."""
        values = np.array([self.value(method, s, metric) for s in self.sites])
        n = np.array([self.metrics[method][s].n for s in self.sites], dtype=np.float64)
        ok = ~np.isnan(values)
        if not ok.any():
            return math.nan
        if weighted:
            return float(np.sum(values[ok] * n[ok]) / n[ok].sum())
        return float(np.mean(values[ok]))

    def table(self, metric: str = "accuracy") -> list[dict[str, float | str]]:
        """Rows: one per site, then "average" and "weighted average"; columns: "site" and one per method."""
        rows: list[dict[str, float | str]] = []
        for s in self.sites:
            rows.append({"site": s, **{m: self.value(m, s, metric) for m in self.methods}})
        rows.append({"site": "average", **{m: self.average(m, metric) for m in self.methods}})
        rows.append({"site": "weighted average", **{m: self.average(m, metric, weighted=True) for m in self.methods}})
        return rows

    def max_gap(self, method: str, reference: str = POOLED, metric: str = "accuracy") -> float:
        """Largest per-site shortfall of ``method`` below ``reference`` (negative when better everywhere)."""
        return max(self.value(reference, s, metric) - self.value(method, s, metric) for s in self.sites)


def _test(model: Model, params: np.ndarray, splits: Sequence[SiteSplit]) -> dict[str, Metrics]:
    model.set_params(params)
    return {s.name: classification_metrics(model.predict_proba(s.X_test), s.y_test) for s in splits}


def _strategy_names(strategies: Mapping[str, Strategy] | Sequence[Strategy]) -> dict[str, Strategy]:
    if isinstance(strategies, Mapping):
        named = dict(strategies)
    else:
        named = {}
        for s in strategies:
            name = type(s).__name__
            if name in named:
                raise QueryError(f"two strategies named {name!r}: pass a mapping of names to strategies")
            named[name] = s
    if not named:
        raise QueryError("no federated strategy to evaluate")
    reserved = {LOCAL, POOLED} & set(named)
    if reserved:
        raise QueryError(f"strategy name {sorted(reserved)[0]!r} is reserved")
    return named


def evaluate_federated(model: Model, splits: Sequence[SiteSplit],
                       strategies: Mapping[str, Strategy] | Sequence[Strategy], rounds: int, *,
                       local: ClientInstructions | None = None, pooled: ClientInstructions | None = None,
                       aggregate: Aggregate = plain_sum,
                       dp: DPConfig | None = None, seed: int = 0) -> EvaluationReport:
    """Train local-only, federated (one model per strategy) and pooled models from ``model``'s current parameters
    and report each one's metrics on every site's test set.

    ``local`` and ``pooled`` set the local-only and pooled training; by default the first strategy's learning rate
    and batch size for the amount of training described in the module's documentation.
    """
    if len(splits) < 1:
        raise QueryError("no site to evaluate")
    names = [s.name for s in splits]
    if len(set(names)) != len(names):
        raise QueryError("site names must be distinct")
    named = _strategy_names(strategies)
    if rounds < 1:
        raise FederatedLearningError("federated training needs at least one round")
    first = next(iter(named.values()))
    local = local or _budget(first, rounds, 1)
    pooled = pooled or _budget(first, rounds, len(splits))
    start = model.get_params()
    work = model.clone()
    metrics: dict[str, dict[str, Metrics]] = {}
    params: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    history: dict[str, tuple[float, ...]] = {}

    # local-only: each site's model, tested everywhere
    local_cross: dict[str, dict[str, Metrics]] = {}
    local_params: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    for k, s in enumerate(splits):
        work.set_params(start)
        work.fit_local(s.X_train, s.y_train, local, seed=_seed(seed, 1, k))
        local_params[s.name] = work.get_params()
        local_cross[s.name] = _test(work, local_params[s.name], splits)
    seconds[LOCAL] = time.perf_counter() - t0
    metrics[LOCAL] = {s.name: local_cross[s.name][s.name] for s in splits}

    for name, strategy in named.items():
        t0 = time.perf_counter()
        result = train_federated(model, [s.train for s in splits], strategy, rounds, aggregate=aggregate, dp=dp,
                                 seed=seed, initial_params=start)
        seconds[name] = time.perf_counter() - t0
        params[name] = result.params
        history[name] = result.loss_history
        metrics[name] = _test(work, result.params, splits)

    t0 = time.perf_counter()
    X = np.vstack([s.X_train for s in splits])
    y = np.concatenate([s.y_train for s in splits])
    work.set_params(start)
    work.fit_local(X, y, pooled, seed=_seed(seed, 2, 0))
    params[POOLED] = work.get_params()
    seconds[POOLED] = time.perf_counter() - t0
    metrics[POOLED] = _test(work, params[POOLED], splits)

    methods = (LOCAL, *named, POOLED)
    return EvaluationReport(tuple(names), methods, metrics, local_cross, params, local_params, rounds, seconds,
                            history)


def _budget(strategy: Strategy, rounds: int, sites: int) -> ClientInstructions:
    """Centralised training matching ``rounds`` of ``strategy`` over ``sites`` clients (see the module docstring)."""
    if strategy.local_steps is None:
        return ClientInstructions(epochs=rounds * strategy.local_epochs, lr=strategy.local_lr,
                                  batch_size=strategy.batch_size)
    return ClientInstructions(lr=strategy.local_lr, batch_size=strategy.batch_size,
                              local_steps=rounds * strategy.local_steps * sites)


def _seed(seed: int, kind: int, k: int) -> int:
    """Shuffling seeds of the centralised runs, apart from the federated clients' (kind 1 local, 2 pooled)."""
    return int(np.random.SeedSequence([seed, 1_000_003, kind, k]).generate_state(1)[0])


def format_table(report: EvaluationReport, metric: str = "accuracy", digits: int = 3) -> str:
    """The report's table for ``metric`` as fixed-width text (sites down, methods across)."""
    rows = report.table(metric)
    width = max(12, *(len(m) + 2 for m in report.methods))
    site_w = max(len(str(r["site"])) for r in rows) + 2
    lines = ["site".ljust(site_w) + "".join(m.rjust(width) for m in report.methods)]
    for r in rows:
        cells = []
        for m in report.methods:
            v = float(r[m])
            cells.append(("nan" if math.isnan(v) else f"{v:.{digits}f}").rjust(width))
        lines.append(str(r["site"]).ljust(site_w) + "".join(cells))
    return "\n".join(lines)
