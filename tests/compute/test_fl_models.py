"""Numpy models' gradients (finite differences), convergence of federated training on non-IID sites, adapters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from medspace.compute.errors import FederatedLearningError, MessageLayoutError, QueryError
from medspace.compute.fl import (
    MLP,
    ClientInstructions,
    FedAdam,
    FedAvg,
    FedProx,
    LogisticRegression,
    Model,
    NumpyModel,
    SoftmaxRegression,
    train_federated,
)
from medspace.compute.fl.simulate import simulate_hospitals, standardise


def finite_difference_check(model: NumpyModel, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> None:
    """The analytic gradient equals central differences (step 1e-6) to 1e-6 relative."""
    _, grad = model.loss_grad(params, X, y)
    numeric = np.empty_like(params)
    h = 1e-6
    for i in range(params.size):
        e = np.zeros_like(params)
        e[i] = h
        numeric[i] = (model.loss_grad(params + e, X, y)[0] - model.loss_grad(params - e, X, y)[0]) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def data(n: int = 60, p: int = 4, c: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random features and labels in 0 … c−1."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, (n, p)), rng.integers(0, c, n)


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_softmax_gradient_matches_finite_differences(l2: float) -> None:
    """Softmax regression's hand-written gradient, with and without the ridge penalty."""
    X, y = data()
    model = SoftmaxRegression(4, 3, l2=l2)
    finite_difference_check(model, np.random.default_rng(1).normal(0.0, 0.5, model.n_params), X, y)


@pytest.mark.parametrize(("c", "l2"), [(2, 0.0), (3, 0.0), (4, 0.05)])
def test_mlp_gradient_matches_finite_differences(c: int, l2: float) -> None:
    """The MLP's back-propagation (ReLU kinks avoided: random weights put no pre-activation at 0)."""
    X, y = data(c=c)
    model = MLP(4, c, hidden=7, l2=l2, seed=3)
    finite_difference_check(model, model.get_params() + np.random.default_rng(2).normal(0.0, 0.1, model.n_params),
                            X, y)


def test_logistic_gradient_matches_finite_differences_and_softmax_with_two_classes() -> None:
    """Logistic regression's gradient; its probabilities equal a 2-class softmax with zero class-0 weights."""
    X, y = data(c=2)
    model = LogisticRegression(4, l2=0.02)
    theta = np.random.default_rng(4).normal(0.0, 0.7, model.n_params)
    finite_difference_check(model, theta, X, y)
    soft = SoftmaxRegression(4, 2)
    W = np.column_stack([np.zeros(4), theta[:4]])
    proba_soft = soft.proba(np.concatenate([W.ravel(), [0.0, theta[4]]]), X)
    np.testing.assert_allclose(model.proba(theta, X), proba_soft, rtol=1e-12, atol=1e-15)


def test_models_predict_probabilities_and_refuse_bad_input() -> None:
    """Probabilities are (n, C) and sum to 1; wrong parameter lengths and bad labels are typed errors."""
    X, y = data(c=3)
    for model in (SoftmaxRegression(4, 3), MLP(4, 3, hidden=5), LogisticRegression(4)):
        assert isinstance(model, Model)
        proba = model.predict_proba(X)
        assert proba.shape == (60, model.n_classes)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
        with pytest.raises(MessageLayoutError):
            model.set_params(np.zeros(model.n_params + 1))
        with pytest.raises(QueryError):
            model.predict_proba(X[:, :3])
    with pytest.raises(QueryError):
        LogisticRegression(4).fit_local(X, y, ClientInstructions(), seed=0)  # label 2 in a binary model
    with pytest.raises(QueryError):
        SoftmaxRegression(4, 3).fit_local(X, y + 0.5, ClientInstructions(), seed=0)
    with pytest.raises(FederatedLearningError):
        MLP(4, 3, hidden=0)


def test_clone_is_independent_and_minibatch_training_is_reproducible() -> None:
    """A clone keeps the parameters but not the identity; the same seed gives the same local model."""
    X, y = data(c=3)
    model = MLP(4, 3, hidden=6, seed=5)
    copy = model.clone()
    np.testing.assert_array_equal(copy.get_params(), model.get_params())
    ins = ClientInstructions(epochs=3, lr=0.1, batch_size=8)
    copy.fit_local(X, y, ins, seed=11)
    assert not np.array_equal(copy.get_params(), model.get_params())
    model.fit_local(X, y, ins, seed=11)
    np.testing.assert_array_equal(copy.get_params(), model.get_params())
    before = model.loss(X, y)
    model.fit_local(X, y, ClientInstructions(epochs=30, lr=0.1, batch_size=8), seed=12)
    assert model.loss(X, y) < before


def pooled_optimum(model: NumpyModel, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """The exact minimiser of the pooled mean loss (L-BFGS on the same loss and gradient)."""
    res = minimize(lambda t: model.loss_grad(t, X, y), np.zeros(model.n_params), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-10, "maxiter": 5000})
    return res.x, float(res.fun)


@pytest.mark.parametrize("strategy", [FedAvg(local_epochs=1, local_lr=0.5, batch_size=None),
                                      FedAdam(local_epochs=2, local_lr=0.05, batch_size=64, server_lr=0.05),
                                      FedProx(local_epochs=2, local_lr=0.2, batch_size=None, mu=0.1)],
                         ids=["FedAvg", "FedAdam", "FedProx"])
def test_federated_training_converges_to_the_pooled_optimum_on_non_iid_sites(strategy: FedAvg) -> None:
    """On shifted sites of different sizes and class balance, federated logistic regression reaches the pooled
    optimum's loss (within 2e-3) and agrees with the pooled model's predictions on ≥ 98% of the rows."""
    splits = standardise(simulate_hospitals(4, sizes=(300, 900, 500, 1500), n_features=5, shift=1.0, seed=7))
    assert len({round(float(s.y_train.mean()), 1) for s in splits}) > 1  # class balance differs by site
    sites = [s.train for s in splits]
    X = np.vstack([x for x, _ in sites])
    y = np.concatenate([t for _, t in sites])
    model = LogisticRegression(5, l2=1e-3)
    theta, best = pooled_optimum(model, X, y)
    result = train_federated(model, sites, strategy, rounds=150, seed=1)
    fed_loss = model.loss_grad(result.params, X, y)[0]
    assert best <= fed_loss < best + 2e-3
    agree = np.mean((model.proba(result.params, X)[:, 1] > 0.5) == (model.proba(theta, X)[:, 1] > 0.5))
    assert agree >= 0.98
    losses = [v for v in result.loss_history]
    assert losses[-1] < losses[0]


def test_fedavg_with_one_full_batch_epoch_is_gradient_descent_on_the_pooled_loss() -> None:
    """With E = 1 and full batches, Σ n_k (w_k − w)/Σ n_k = −lr ∇(pooled mean loss): FedAvg is pooled GD, non-IID
    or not (what FedProx and FedAdam improve on is the drift of E > 1)."""
    splits = simulate_hospitals(3, sizes=(100, 400, 250), n_features=4, n_classes=3, shift=1.5, seed=3)
    sites = [s.train for s in splits]
    X = np.vstack([x for x, _ in sites])
    y = np.concatenate([t for _, t in sites])
    model = SoftmaxRegression(4, 3)
    fed = train_federated(model, sites, FedAvg(local_epochs=1, local_lr=0.1, batch_size=None), rounds=12)
    w = np.zeros(model.n_params)
    for _ in range(12):
        w = w - 0.1 * model.loss_grad(w, X, y)[1]
    np.testing.assert_allclose(fed.params, w, rtol=0, atol=1e-12)


def test_sklearn_adapter_trains_federated_through_flat_parameters() -> None:
    """SGDClassifier behind the Model protocol: flat parameters round-trip, FedAvg improves on the start."""
    pytest.importorskip("sklearn")
    from medspace.compute.fl.adapters import SklearnModel

    splits = standardise(simulate_hospitals(3, sizes=(300, 600, 400), n_features=4, n_classes=3, seed=5))
    model = SklearnModel(4, 3, alpha=1e-4)
    assert isinstance(model, Model) and model.n_params == 3 * 5
    theta = np.arange(15, dtype=np.float64) / 10
    model.set_params(theta)
    np.testing.assert_array_equal(model.get_params(), theta)
    model.set_params(np.zeros(15))
    X = np.vstack([s.X_test for s in splits])
    y = np.concatenate([s.y_test for s in splits])
    start = model.loss(X, y)
    res = train_federated(model, [s.train for s in splits], FedAvg(local_epochs=1, local_lr=0.01), rounds=5)
    model.set_params(res.params)
    assert model.loss(X, y) < 0.8 * start
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=1e-9)
    binary = SklearnModel(4, 2)
    assert binary.n_params == 5
    with pytest.raises(FederatedLearningError):
        binary.fit_local(X, (y > 0).astype(int), ClientInstructions(proximal_mu=0.1), seed=0)


def test_torch_adapter_matches_the_numpy_softmax_model() -> None:
    """A linear nn.Module trained by full-batch SGD equals SoftmaxRegression's GD (skipped without PyTorch)."""
    torch = pytest.importorskip("torch")
    from medspace.compute.fl.adapters import TorchModel

    X, y = data(c=3)
    module = torch.nn.Linear(4, 3).double()
    tm = TorchModel(module, 4, 3)
    with torch.no_grad():
        module.weight.zero_()
        module.bias.zero_()
    ins = ClientInstructions(epochs=5, lr=0.3, batch_size=None, proximal_mu=0.2)
    tm.fit_local(X, y, ins, seed=0)
    ref = SoftmaxRegression(4, 3)
    ref.fit_local(X, y, ins, seed=0)
    W = module.weight.detach().numpy().T  # torch stores (out, in); the numpy model (in, out)
    np.testing.assert_allclose(W.ravel(), ref.get_params()[:12], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tm.predict_proba(X), ref.predict_proba(X), rtol=1e-10)
    flat = tm.get_params()
    tm.set_params(flat + 1.0)
    np.testing.assert_allclose(tm.get_params(), flat + 1.0)


def test_fixed_local_steps_take_that_many_minibatches_from_shuffled_passes() -> None:
    """local_steps: exactly that many batches of the batch size, each pass a permutation; epochs: whole passes."""
    from medspace.compute.fl.models import minibatches

    rng = np.random.default_rng(0)
    batches = list(minibatches(50, ClientInstructions(batch_size=16, local_steps=7), rng))
    assert len(batches) == 7 and all(b is not None and b.size == 16 for b in batches)
    first_pass = np.concatenate([b for b in batches[:3] if b is not None])
    assert np.unique(first_pass).size == 48  # 3 batches of one pass: no row twice
    epochs = list(minibatches(50, ClientInstructions(batch_size=16, epochs=2), rng))
    assert [b.size for b in epochs if b is not None] == [16, 16, 16, 2] * 2
    assert list(minibatches(50, ClientInstructions(batch_size=None, local_steps=3), rng)) == [None] * 3
    with pytest.raises(FederatedLearningError):
        ClientInstructions(local_steps=0)


def test_fedavg_with_full_batch_local_steps_is_gradient_descent_for_one_client() -> None:
    """Full-batch local steps are gradient steps: R rounds of S steps at one client are R·S steps of GD."""
    X, y = data(c=3)
    model = SoftmaxRegression(4, 3, l2=0.01)
    fed = train_federated(model, [(X, y)], FedAvg(local_steps=4, local_lr=0.2, batch_size=None), rounds=5)
    w = np.zeros(model.n_params)
    for _ in range(20):
        w = w - 0.2 * model.loss_grad(w, X, y)[1]
    np.testing.assert_allclose(fed.params, w, rtol=0, atol=1e-12)
