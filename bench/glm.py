"""Federated GLMs and Cox by Newton–Raphson: rounds, time, and distance from the pooled fit. Prints a table.

    python bench/glm.py [--sites 5] [--rows 200000] [--covariates 10] [--cox-rows 50000] [--seed 7]

Each site holds ``--rows`` rows (``--cox-rows`` for Cox) of ``--covariates`` covariates plus an intercept (GLMs),
with covariates shifted and scaled differently per site. The federated fit runs in process (sites one after the
other, plain sum as the aggregate); "site s/round" is the slowest site's share of a round, what a round costs
when sites compute in parallel. The references are statsmodels' GLM on the pooled rows (tol 1e-14) and lifelines'
CoxPHFitter stratified by site (precision 1e-12, full Newton steps) on continuous times, where Breslow = Efron.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeAlias

import numpy as np
import pandas as pd
import statsmodels.api as sm
from lifelines import CoxPHFitter
from rich.console import Console
from rich.table import Table

from medspace.compute.cox import CoxResult, CoxSite, fit_cox
from medspace.compute.glm import Family, GLMResult, GLMSite, fit_glm
from medspace.compute.newton import SiteFn

console = Console(width=140)
SM_FAMILY = {"binomial": sm.families.Binomial, "gaussian": sm.families.Gaussian, "poisson": sm.families.Poisson}


class TimedSite:
    """A site whose message time is recorded, to report the slowest site per round."""

    def __init__(self, site: SiteFn) -> None:
        self.site = site
        self.seconds: list[float] = []

    def __call__(self, beta: np.ndarray) -> np.ndarray:
        """The wrapped site's message, timed."""
        t0 = time.perf_counter()
        out = self.site(beta)
        self.seconds.append(time.perf_counter() - t0)
        return out


def covariates(rng: np.random.Generator, k: int, n: int, p: int) -> np.ndarray:
    """p covariates for site k: means and spreads shift with k; one binary in three."""
    cols = []
    for j in range(p):
        if j % 3 == 1:
            cols.append(rng.binomial(1, 0.2 + 0.1 * k, n).astype(np.float64))
        else:
            cols.append(rng.normal(0.15 * k * (j % 2 - 0.5), 1.0 + 0.1 * k, n))
    return np.column_stack(cols)


def glm_data(family: str, sites: int, rows: int, p: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Simulated sites for one family; effects small enough that Poisson means stay moderate."""
    rng = np.random.default_rng(seed)
    beta = np.r_[-0.3, rng.uniform(-0.3, 0.3, p)]
    out = []
    for k in range(sites):
        X = np.column_stack([np.ones(rows), covariates(rng, k, rows, p)])
        eta = X @ beta
        if family == "binomial":
            y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
        elif family == "poisson":
            y = rng.poisson(np.exp(eta))
        else:
            y = eta + rng.normal(0.0, 1.0 + 0.2 * k, rows)
        out.append((X, y.astype(np.float64)))
    return out


Result: TypeAlias = GLMResult | CoxResult


def run(fit: Callable[[list[SiteFn]], Result], sites: list[SiteFn]) -> tuple[Result, float, list[TimedSite]]:
    """Fit over timed sites; return the result, the wall time and the timed sites."""
    timed = [TimedSite(s) for s in sites]
    t0 = time.perf_counter()
    result = fit(list(timed))
    return result, time.perf_counter() - t0, timed


def row(label: str, n: int, p: int, result: Result, total: float, timed: list[TimedSite], ref_s: float,
        ref_coef: np.ndarray, ref_se: np.ndarray) -> list[str]:
    """One table row."""
    rounds = result.rounds
    slowest = sum(max(s.seconds[r] for s in timed) for r in range(rounds)) / rounds
    d_beta = float(np.max(np.abs(result.params - ref_coef)))
    d_se = float(np.max(np.abs(result.bse / ref_se - 1.0)))
    floats = p + p * (p + 1) // 2 + (5 if label != "cox" else 3)
    return [label, f"{len(timed)} x {n:,}", str(p), str(rounds), f"{total / rounds:.3f}", f"{slowest:.3f}",
            f"{total:.2f}", f"{ref_s:.2f}", f"{d_beta:.1e}", f"{d_se:.1e}", f"{floats} ({8 * floats} B)"]


def main() -> None:
    """Run every family and Cox; print the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=5)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--covariates", type=int, default=10)
    ap.add_argument("--cox-rows", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    table = Table(title="Federated Newton–Raphson vs the pooled fit (in process, plain sum)")
    for col in ("model", "sites x rows", "coefs", "rounds", "s/round", "site s/round", "total s", "pooled ref s",
                "max |Δβ|", "max rel ΔSE", "message floats"):
        table.add_column(col, justify="right")
    families: tuple[Family, ...] = ("binomial", "poisson", "gaussian")
    for family in families:
        data = glm_data(family, a.sites, a.rows, a.covariates, a.seed)
        p = a.covariates + 1

        def fit(sites: list[SiteFn], family: Family = family, p: int = p) -> Result:
            return fit_glm(sites, family, p)

        result, total, timed = run(fit, [GLMSite(X, y, family) for X, y in data])
        X = np.vstack([X for X, _ in data])
        y = np.concatenate([y for _, y in data])
        t0 = time.perf_counter()
        ref = sm.GLM(y, X, family=SM_FAMILY[family]()).fit(tol=1e-14, maxiter=200)
        ref_s = time.perf_counter() - t0
        label = {"binomial": "logistic", "poisson": "poisson", "gaussian": "linear"}[family]
        table.add_row(*row(label, a.rows, p, result, total, timed, ref_s, ref.params, ref.bse))
        del data, X, y
    rng = np.random.default_rng(a.seed + 1)
    beta = rng.uniform(-0.3, 0.3, a.covariates)
    frames, cox_sites = [], []
    for k in range(a.sites):
        X = covariates(rng, k, a.cox_rows, a.covariates)
        t = rng.exponential(1.0 / ((0.5 + 0.5 * k) * np.exp(X @ beta)))
        c = rng.exponential(2.0, a.cox_rows)
        tt, e = np.minimum(t, c), (t <= c).astype(np.float64)
        cox_sites.append(CoxSite(tt, e, X))
        frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(a.covariates)])
        frame["time"], frame["event"], frame["site"] = tt, e, k
        frames.append(frame)
    def fit_c(sites: list[SiteFn]) -> Result:
        return fit_cox(sites, a.covariates)

    result, total, timed = run(fit_c, list(cox_sites))
    df = pd.concat(frames, ignore_index=True)
    t0 = time.perf_counter()
    cph = CoxPHFitter().fit(df, "time", "event", strata=["site"],
                            fit_options={"precision": 1e-12, "r_precision": 0.0, "step_size": 1.0, "max_steps": 200})
    ref_s = time.perf_counter() - t0
    table.add_row(*row("cox", a.cox_rows, a.covariates, result, total, timed, ref_s, cph.params_.to_numpy(),
                       cph.standard_errors_.to_numpy()))
    console.print(table)
    t0 = time.perf_counter()
    fed_c = fit_cox(cox_sites, a.covariates, start=result.params,
                    concordance_sites=[s.concordance for s in cox_sites]).concordance
    c_s = time.perf_counter() - t0
    console.print(f"Cox concordance within sites: federated {fed_c:.12f}, lifelines {cph.concordance_index_:.12f} "
                  f""
                  f"(one round at the estimates + the pair counts: {c_s:.2f} s)")


if __name__ == "__main__":
    main()
