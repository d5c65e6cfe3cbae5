"""Metrics (AUC by ranks, log-loss, accuracy) and the FLamby-style local / federated / pooled evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.compute.errors import QueryError
from medspace.compute.fl import FedAdam, FedAvg, FedProx, LogisticRegression, SoftmaxRegression
from medspace.compute.fl.evaluate import LOCAL, POOLED, SiteSplit, evaluate_federated, format_table
from medspace.compute.fl.metrics import accuracy, auc, binary_auc, classification_metrics, log_loss
from medspace.compute.fl.simulate import simulate_hospitals, standardise


def brute_force_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + ½ P(tie), over all pairs."""
    s1, s0 = score[positive], score[~positive]
    diff = s1[:, None] - s0[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=60))
def test_rank_auc_equals_the_pairwise_definition_with_ties(rows: list[tuple[int, bool]]) -> None:
    """The Mann–Whitney rank formula with mid-ranks equals counting pairs (ties count ½); NaN with one class."""
    score = np.array([r[0] for r in rows], dtype=float)
    positive = np.array([r[1] for r in rows])
    value = binary_auc(score, positive)
    if positive.all() or not positive.any():
        assert math.isnan(value)
    else:
        assert value == pytest.approx(brute_force_auc(score, positive), abs=1e-12)


def test_metrics_match_scikit_learn() -> None:
    """Accuracy, AUC (binary and macro one-vs-rest) and log-loss equal scikit-learn's."""
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y2 = rng.integers(0, 2, 200)
    p1 = np.clip(0.3 * y2 + rng.uniform(0.0, 0.7, 200), 0.0, 1.0)
    proba2 = np.column_stack([1 - p1, p1])
    assert accuracy(proba2, y2) == pytest.approx(sk.accuracy_score(y2, p1 > 0.5))
    assert auc(proba2, y2) == pytest.approx(sk.roc_auc_score(y2, p1), abs=1e-12)
    assert log_loss(proba2, y2) == pytest.approx(sk.log_loss(y2, proba2), abs=1e-12)
    y3 = rng.integers(0, 3, 300)
    logits = rng.normal(0.0, 1.0, (300, 3)) + np.eye(3)[y3]
    proba3 = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert auc(proba3, y3) == pytest.approx(sk.roc_auc_score(y3, proba3, multi_class="ovr", average="macro"),
                                            abs=1e-12)
    assert log_loss(proba3, y3) == pytest.approx(sk.log_loss(y3, proba3), abs=1e-12)
    m = classification_metrics(proba3, y3)
    assert m.n == 300 and m.get("accuracy") == accuracy(proba3, y3)
    with pytest.raises(QueryError):
        m.get("f1")


def test_log_loss_by_hand_and_refusals() -> None:
    """−mean log p(label), probabilities clipped at 1e-15; malformed inputs are typed errors."""
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [1.0, 0.0]])
    y = np.array([0, 1, 1])
    assert log_loss(proba, y) == pytest.approx(-(math.log(0.9) + math.log(0.8) + math.log(1e-15)) / 3)
    assert accuracy(proba, y) == pytest.approx(2 / 3)
    with pytest.raises(QueryError):
        accuracy(proba, np.array([0, 2, 1]))
    with pytest.raises(QueryError):
        log_loss(proba, np.array([0, 1]))


def small_hospitals() -> list[SiteSplit]:
    """Five small shifted hospitals: local-only training has little data, federated and pooled have it all."""
    return standardise(simulate_hospitals(5, sizes=(90, 120, 150, 110, 400), n_features=8, shift=1.0,
                                          test_fraction=0.5, seed=11))


def test_evaluation_reports_per_site_metrics_for_local_federated_and_pooled_side_by_side() -> None:
    """Every method has every site's metrics; the table has a row per site plus the averages; local's column is each
    site's own model (the diagonal of local_cross); a convex model trained by FedAdam ends where pooled training does
    (per-site accuracy within 1 point) and both beat local-only training on average."""
    splits = small_hospitals()
    model = LogisticRegression(8, l2=1e-2)
    report = evaluate_federated(model, splits,
                                {"FedAvg": FedAvg(local_epochs=1, local_lr=0.3, batch_size=None),
                                 "FedAdam": FedAdam(local_epochs=1, local_lr=0.3, batch_size=None, server_lr=0.05)},
                                rounds=300)
    sites = tuple(s.name for s in splits)
    assert report.sites == sites
    assert report.methods == (LOCAL, "FedAvg", "FedAdam", POOLED)
    rows = report.table("auc")
    assert [r["site"] for r in rows] == [*sites, "average", "weighted average"]
    assert all(set(r) == {"site", *report.methods} for r in rows)
    for s in sites:
        assert report.metrics[LOCAL][s] == report.local_cross[s][s]
        assert set(report.local_cross[s]) == set(sites)
        for m in report.methods:
            assert 0.0 <= report.value(m, s, "accuracy") <= 1.0
            assert report.metrics[m][s].n == next(x for x in splits if x.name == s).y_test.size
    acc = [report.value("FedAdam", s) for s in sites]
    assert report.average("FedAdam") == pytest.approx(float(np.mean(acc)))
    n = np.array([report.metrics["FedAdam"][s].n for s in sites])
    assert report.average("FedAdam", weighted=True) == pytest.approx(float(np.dot(acc, n) / n.sum()))
    assert report.max_gap("FedAdam") <= 0.01
    assert report.max_gap("FedAvg") <= 0.01
    assert report.average("FedAdam", "log_loss") < report.average(LOCAL, "log_loss")
    assert report.average(POOLED, "log_loss") < report.average(LOCAL, "log_loss")
    assert len(report.loss_history["FedAdam"]) == 300
    text = format_table(report, "accuracy")
    assert text.splitlines()[0].split() == ["site", *report.methods]
    assert len(text.splitlines()) == len(sites) + 3


def test_evaluation_is_reproducible_and_uses_the_same_start_for_every_method() -> None:
    """Same seed, same report; the model passed in keeps its parameters."""
    splits = simulate_hospitals(3, sizes=(80, 120, 100), n_features=4, n_classes=3, seed=2)
    model = SoftmaxRegression(4, 3)
    before = model.get_params()
    a = evaluate_federated(model, splits, [FedProx(mu=0.1, local_lr=0.05)], rounds=5, seed=4)
    b = evaluate_federated(model, splits, [FedProx(mu=0.1, local_lr=0.05)], rounds=5, seed=4)
    np.testing.assert_array_equal(model.get_params(), before)
    assert a.methods == (LOCAL, "FedProx", POOLED)
    for m in a.methods:
        assert a.metrics[m] == b.metrics[m]


def test_evaluation_refuses_ambiguous_names() -> None:
    """Duplicate site names, two unnamed strategies of one type and the reserved names are refused."""
    splits = simulate_hospitals(2, sizes=(50, 60), n_features=4, seed=1)
    model = LogisticRegression(4)
    dup = [splits[0], SiteSplit(splits[0].name, splits[1].X_train, splits[1].y_train, splits[1].X_test,
                                splits[1].y_test)]
    with pytest.raises(QueryError):
        evaluate_federated(model, dup, [FedAvg()], rounds=1)
    with pytest.raises(QueryError):
        evaluate_federated(model, splits, [FedAvg(), FedAvg(local_lr=0.01)], rounds=1)
    with pytest.raises(QueryError):
        evaluate_federated(model, splits, {POOLED: FedAvg()}, rounds=1)
    with pytest.raises(QueryError):
        evaluate_federated(model, splits, [], rounds=1)


def test_local_steps_budget_matches_local_and_pooled_training_to_the_federated_one() -> None:
    """With S local steps per round: a local-only model takes R·S steps, the pooled one K·R·S (all clients' steps);
    checked by replaying both with full batches (deterministic gradient descent)."""
    splits = simulate_hospitals(3, sizes=(60, 90, 120), n_features=4, seed=6)
    model = LogisticRegression(4)
    report = evaluate_federated(model, splits, [FedAvg(local_steps=2, local_lr=0.1, batch_size=None)], rounds=3)
    X = np.vstack([s.X_train for s in splits])
    y = np.concatenate([s.y_train for s in splits])
    w = np.zeros(model.n_params)
    for _ in range(3 * 2 * 3):
        w = w - 0.1 * model.loss_grad(w, X, y)[1]
    np.testing.assert_allclose(report.params[POOLED], w, rtol=0, atol=1e-12)
    X0, y0 = splits[0].train
    w0 = np.zeros(model.n_params)
    for _ in range(3 * 2):
        w0 = w0 - 0.1 * model.loss_grad(w0, X0, y0)[1]
    np.testing.assert_allclose(report.local_params[splits[0].name], w0, rtol=0, atol=1e-12)


def test_auc_average_skips_sites_with_one_class() -> None:
    """A site whose test labels are all one class has NaN AUC; the averages use the other sites."""
    splits = simulate_hospitals(2, sizes=(80, 80), n_features=4, seed=8)
    one_class = SiteSplit("H9", splits[0].X_train, splits[0].y_train, splits[0].X_test,
                          np.zeros_like(splits[0].y_test))
    report = evaluate_federated(LogisticRegression(4), [one_class, splits[1]], [FedAvg()], rounds=2)
    assert math.isnan(report.value("FedAvg", "H9", "auc"))
    assert report.average("FedAvg", "auc") == pytest.approx(report.value("FedAvg", "H2", "auc"))


def test_simulated_hospitals_are_non_iid_and_reproducible() -> None:
    """Sites differ in feature means and class balance; ``n_test`` adds that many test rows; same seed, same data."""
    a = simulate_hospitals(4, sizes=(300, 500, 400, 600), n_features=5, shift=1.5, n_test=250, seed=3)
    b = simulate_hospitals(4, sizes=(300, 500, 400, 600), n_features=5, shift=1.5, n_test=250, seed=3)
    assert [s.y_train.size for s in a] == [300, 500, 400, 600]
    assert all(s.y_test.size == 250 for s in a)
    for s, t in zip(a, b, strict=True):
        np.testing.assert_array_equal(s.X_train, t.X_train)
        np.testing.assert_array_equal(s.y_test, t.y_test)
    means = np.array([s.X_train.mean(axis=0) for s in a])
    assert float(np.ptp(means, axis=0).max()) > 0.5  # covariate shift
    rates = [float(s.y_train.mean()) for s in a]
    assert max(rates) - min(rates) > 0.1  # class balance differs
    three = simulate_hospitals(2, sizes=(200, 200), n_features=4, n_classes=3, prior_skew=1.0, seed=1)
    assert set(np.concatenate([s.y_train for s in three]).tolist()) == {0, 1, 2}
    with pytest.raises(QueryError):
        simulate_hospitals(2, sizes=(10,))
