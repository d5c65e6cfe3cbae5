"""Classification metrics of predicted class probabilities: accuracy, AUC by the rank formula, log-loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from medspace.compute.errors import QueryError

# Probabilities are clipped to [EPS, 1] in the log-loss, as scikit-learn does, so a confident miss costs ~34.5.
EPS = 1e-15


def _check(proba: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(y).astype(np.int64)
    if proba.ndim != 2 or labels.ndim != 1 or proba.shape[0] != labels.shape[0]:
        raise QueryError("probabilities must be (n, C) with one label per row")
    if labels.size == 0:
        raise QueryError("no test rows to evaluate")
    if labels.min() < 0 or labels.max() >= proba.shape[1]:
        raise QueryError(f"labels must lie in 0 … {proba.shape[1] - 1}")
    return proba, labels


def accuracy(proba: np.ndarray, y: np.ndarray) -> float:
    """Share of rows whose most probable class is the label."""
    proba, labels = _check(proba, y)
    return float(np.mean(np.argmax(proba, axis=1) == labels))


def binary_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve by the rank (Mann–Whitney) formula, ties at mid-rank; NaN with one class only."""
    score = np.asarray(score, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    n1 = int(pos.sum())
    n0 = pos.size - n1
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = rankdata(score)  # average ranks for ties
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def auc(proba: np.ndarray, y: np.ndarray) -> float:
    """Binary: AUC of P(class 1). Multi-class: macro mean of one-vs-rest AUCs over the classes present."""
    proba, labels = _check(proba, y)
    if proba.shape[1] == 2:
        return binary_auc(proba[:, 1], labels == 1)
    values = [binary_auc(proba[:, c], labels == c) for c in range(proba.shape[1])]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-probability of the label (probabilities clipped to [1e-15, 1])."""
    proba, labels = _check(proba, y)
    p = np.clip(proba[np.arange(labels.size), labels], EPS, 1.0)
    return float(-np.mean(np.log(p)))


@dataclass(frozen=True)
class Metrics:
    """A model's metrics on one test set."""

    accuracy: float
    auc: float
    log_loss: float
    n: int

    def get(self, name: str) -> float:
        """The metric called ``name`` (accuracy, auc, log_loss or n)."""
        if name not in ("accuracy", "auc", "log_loss", "n"):
            raise QueryError(f"unknown metric {name!r}; expected accuracy, auc, log_loss or n")
        return float(getattr(self, name))


def classification_metrics(proba: np.ndarray, y: np.ndarray) -> Metrics:
    """Accuracy, AUC and log-loss of ``proba`` against labels ``y``."""
    return Metrics(accuracy(proba, y), auc(proba, y), log_loss(proba, y), int(np.asarray(y).size))
