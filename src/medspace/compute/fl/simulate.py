"""Simulated non-IID hospitals for federated-learning tests and benchmarks (numpy Generator, reproducible by seed).

Every hospital draws its patients' features from its own distribution (covariate shift: a site-specific mean
offset and spread) and has its own size; the outcome follows ONE model shared by all sites (a linear score plus,
optionally, an interaction and a curvature term an MLP can learn and a linear model cannot). The shift moves sites
along the score too, so class balance differs from site to site (label skew through covariate shift) while
P(y | x) stays the same: a model trained on the union is the right target, which is what federated training
should reach. ``prior_skew`` adds label skew proper by sub-sampling classes per site.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from medspace.compute.errors import QueryError
from medspace.compute.fl.evaluate import SiteSplit


def _scores(X: np.ndarray, B: np.ndarray, nonlinear: bool) -> np.ndarray:
    Z = X @ B
    if nonlinear:
        # an interaction and a curvature term: the part of the signal a linear model misses
        Z[:, 0] += 1.2 * X[:, 0] * X[:, 1] - 0.6 * X[:, 2] ** 2
    return Z


def simulate_hospitals(n_sites: int = 5, sizes: tuple[int, ...] | None = None, n_features: int = 6,
                       n_classes: int = 2, *, shift: float = 1.0, nonlinear: bool = False, prior_skew: float = 0.0,
                       signal: float = 2.0, test_fraction: float = 0.3, n_test: int | None = None,
                       seed: int = 0) -> list[SiteSplit]:
    """``n_sites`` hospitals ("H1", …) with covariate shift of strength ``shift`` and a train/test split each.

    ``sizes`` are the sites' numbers of patients, ``test_fraction`` of them held out for testing; or, with
    ``n_test``, ``sizes`` rows for training and ``n_test`` more from the same site for testing (large test sets
    make per-site comparisons of two models precise without more training data).
    """
    if n_sites < 1 or n_features < 3 or n_classes < 2:
        raise QueryError("need at least one site, three features and two classes")
    if n_test is not None and n_test < 1:
        raise QueryError("n_test must be at least 1")
    if not 0.0 < test_fraction < 1.0:
        raise QueryError("test fraction must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    if sizes is None:
        sizes = tuple(int(s) for s in rng.integers(400, 2500, n_sites))
    if len(sizes) != n_sites:
        raise QueryError(f"{len(sizes)} sizes for {n_sites} sites")
    B = rng.normal(0.0, 1.0, (n_features, n_classes))
    B *= signal / np.linalg.norm(B, axis=0, keepdims=True).mean()
    splits = []
    for k, n_train in enumerate(sizes):
        n = n_train if n_test is None else n_train + n_test
        mean = shift * rng.normal(0.0, 0.6, n_features)
        spread = rng.uniform(0.7, 1.4, n_features)
        # per-site class preferences for prior skew; keep class c with probability keep[c]
        keep = np.exp(prior_skew * rng.normal(0.0, 1.0, n_classes))
        keep /= keep.max()
        X_parts, y_parts, total = [], [], 0
        while total < n:
            m = 2 * n
            X = mean + spread * rng.normal(0.0, 1.0, (m, n_features))
            P = softmax(_scores(X, B, nonlinear), axis=1)
            y = (rng.uniform(0.0, 1.0, (m, 1)) > np.cumsum(P, axis=1)).sum(axis=1)
            y = np.minimum(y, n_classes - 1)
            kept = rng.uniform(0.0, 1.0, m) < keep[y]
            X_parts.append(X[kept])
            y_parts.append(y[kept])
            total += int(kept.sum())
        X = np.vstack(X_parts)[:n]
        y = np.concatenate(y_parts)[:n].astype(np.int64)
        held = max(1, round(test_fraction * n)) if n_test is None else n_test
        splits.append(SiteSplit(f"H{k + 1}", X[held:], y[held:], X[:held], y[:held]))
    return splits


def standardise(splits: list[SiteSplit]) -> list[SiteSplit]:
    """Features scaled by the pooled training mean and sd (in a deployment: a federated mean/variance first)."""
    X = np.vstack([s.X_train for s in splits])
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd[sd == 0] = 1.0
    return [SiteSplit(s.name, (s.X_train - mu) / sd, s.y_train, (s.X_test - mu) / sd, s.y_test) for s in splits]
