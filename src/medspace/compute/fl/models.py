"""Models a client trains locally: the :class:`Model` protocol and the built-in numpy models.

Every model exposes its parameters as ONE flat float64 vector (what the strategies and the message layout work on)
and predicts class probabilities, an ``(n, C)`` array, for integer labels ``0 … C−1`` (binary: C = 2).

Built in, with hand-written vectorised gradients of the mean cross-entropy (plus an optional ridge penalty
``l2/2 ‖θ‖²`` on all parameters):

- :class:`LogisticRegression`: binary, parameters ``[w (p) | b]``;
- :class:`SoftmaxRegression`: multi-class, parameters ``[W (p×C, row-major) | b (C)]``;
- :class:`MLP`: one hidden ReLU layer, softmax output, parameters ``[W1 (p×h) | b1 (h) | W2 (h×C) | b2 (C)]``.

Local training is minibatch SGD on ``f_k(v) + μ/2 ‖v − w‖²`` (μ > 0 for FedProx; w the global parameters the round
started from). The client's numpy Generator, seeded per client and round, only shuffles minibatches (and draws
the MLP's initial weights): optimisation randomness, never privacy noise (see :mod:`medspace.compute.fl.dp`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np
from scipy.special import expit, log_softmax

from medspace.compute.errors import FederatedLearningError, MessageLayoutError, QueryError
from medspace.compute.fl.strategies import ClientInstructions


@runtime_checkable
class Model(Protocol):
    """A model a client trains locally, seen through its flat parameter vector."""

    @property
    def n_params(self) -> int:
        """Length of the flat parameter vector."""
        ...

    @property
    def n_classes(self) -> int:
        """Number of classes C (labels are 0 … C−1)."""
        ...

    def get_params(self) -> np.ndarray:
        """A copy of the current parameters, flat float64."""
        ...

    def set_params(self, params: np.ndarray) -> None:
        """Replace the parameters by a flat float64 vector of length :attr:`n_params`."""
        ...

    def fit_local(self, X: np.ndarray, y: np.ndarray, instructions: ClientInstructions, seed: int) -> None:
        """Train from the current parameters on (X, y) as instructed (epochs, lr, batch size, proximal μ)."""
        ...

    def loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """Mean cross-entropy of the current parameters on (X, y)."""
        ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, C)."""
        ...

    def clone(self) -> Model:
        """An independent copy with the same architecture and parameters."""
        ...


class LossGrad(Protocol):
    """(θ, X, y) -> (mean loss, its gradient)."""

    def __call__(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean loss and gradient at θ."""
        ...


def check_xy(X: np.ndarray, y: np.ndarray, n_features: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 features and int64 labels; messages name the parameter, never a value."""
    X = np.asarray(X, dtype=np.float64)
    y_in = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise QueryError(f"features must be a 2-D array with {n_features} columns")
    if y_in.ndim != 1 or y_in.shape[0] != X.shape[0]:
        raise QueryError("labels must be 1-D with one value per feature row")
    if X.shape[0] == 0:
        raise QueryError("a site has no rows to train on")
    if not np.all(np.isfinite(X)):
        raise QueryError("features contain missing or infinite values")
    labels = y_in.astype(np.int64)
    if not np.array_equal(labels, y_in) or labels.min() < 0 or labels.max() >= n_classes:
        raise QueryError(f"labels must be integers in 0 … {n_classes - 1}")
    return X, labels


def minibatches(n: int, instructions: ClientInstructions, rng: np.random.Generator) -> Iterator[np.ndarray | None]:
    """Row indices of each local step (None: the whole site, full batch), as the instructions ask.

    ``local_steps`` set: exactly that many batches, drawn from successive shuffled passes (a pass's remainder
    shorter than a batch is dropped); otherwise ``epochs`` shuffled passes, the last batch of a pass possibly short.
    """
    batch = n if instructions.batch_size is None else min(instructions.batch_size, n)
    if instructions.local_steps is not None:
        order, pos = rng.permutation(n), 0
        for _ in range(instructions.local_steps):
            if batch == n:
                yield None
                continue
            if pos + batch > n:
                order, pos = rng.permutation(n), 0
            yield order[pos:pos + batch]
            pos += batch
        return
    for _ in range(instructions.epochs):
        if batch == n:
            yield None
            continue
        order = rng.permutation(n)
        for start in range(0, n, batch):
            yield order[start:start + batch]


def sgd(loss_grad: LossGrad, params: np.ndarray, X: np.ndarray, y: np.ndarray, instructions: ClientInstructions,
        seed: int) -> np.ndarray:
    """Minibatch SGD on the mean loss plus μ/2 ‖θ − θ₀‖² from θ₀ = ``params``; returns the trained parameters."""
    anchor = params
    w = params.copy()
    mu, lr = instructions.proximal_mu, instructions.lr
    for idx in minibatches(X.shape[0], instructions, np.random.default_rng(seed)):
        _, g = loss_grad(w, X, y) if idx is None else loss_grad(w, X[idx], y[idx])
        if mu > 0.0:
            g = g + mu * (w - anchor)
        w -= lr * g
    if not np.all(np.isfinite(w)):
        raise FederatedLearningError("local training diverged (parameters not finite): lower the learning rate")
    return w


class NumpyModel(ABC):
    """A numpy model: pure loss/gradient and probability functions of θ, plus the current θ."""

    def __init__(self, n_features: int, n_classes: int, l2: float = 0.0) -> None:
        if n_features < 1 or n_classes < 2:
            raise FederatedLearningError("a model needs at least one feature and two classes")
        if not l2 >= 0.0:
            raise FederatedLearningError("l2 penalty must be non-negative")
        self.n_features, self._n_classes, self.l2 = n_features, n_classes, l2
        self._params = np.zeros(self.n_params)

    @property
    def n_classes(self) -> int:
        """Number of classes C."""
        return self._n_classes

    @property
    @abstractmethod
    def n_params(self) -> int:
        """Length of the flat parameter vector."""

    @abstractmethod
    def _logits_grad(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean cross-entropy and its gradient, without the ridge penalty."""

    @abstractmethod
    def proba(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, C) at θ."""

    def loss_grad(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean cross-entropy plus l2/2 ‖θ‖², and its gradient, at θ."""
        value, grad = self._logits_grad(params, X, y)
        if self.l2 > 0.0:
            value += 0.5 * self.l2 * float(params @ params)
            grad = grad + self.l2 * params
        return value, grad

    def get_params(self) -> np.ndarray:
        """A copy of the current parameters."""
        return self._params.copy()

    def set_params(self, params: np.ndarray) -> None:
        """Replace the parameters."""
        p = np.asarray(params, dtype=np.float64)
        if p.shape != (self.n_params,):
            raise MessageLayoutError(f"{p.size} parameters given, the model has {self.n_params}")
        self._params = p.copy()

    def fit_local(self, X: np.ndarray, y: np.ndarray, instructions: ClientInstructions, seed: int) -> None:
        """Minibatch SGD from the current parameters (with FedProx's proximal term when μ > 0)."""
        X, y = check_xy(X, y, self.n_features, self.n_classes)
        self._params = sgd(self.loss_grad, self._params, X, y, instructions, seed)

    def loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """Mean cross-entropy (plus ridge penalty) at the current parameters."""
        X, y = check_xy(X, y, self.n_features, self.n_classes)
        return self.loss_grad(self._params, X, y)[0]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, C) at the current parameters."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise QueryError(f"features must be a 2-D array with {self.n_features} columns")
        return self.proba(self._params, X)

    def clone(self) -> NumpyModel:
        """An independent copy (same architecture, same parameters)."""
        other = self._empty_like()
        other.set_params(self._params)
        return other

    @abstractmethod
    def _empty_like(self) -> NumpyModel:
        """A model of the same architecture."""


def _softmax_ce(Z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of logits Z (n, C) for labels y, and its gradient with respect to Z."""
    n = Z.shape[0]
    logp = log_softmax(Z, axis=1)
    value = -float(np.mean(logp[np.arange(n), y]))
    G = np.exp(logp)
    G[np.arange(n), y] -= 1.0
    return value, G / n


class LogisticRegression(NumpyModel):
    """Binary logistic regression, parameters [w (p) | b]; probabilities (n, 2)."""

    def __init__(self, n_features: int, l2: float = 0.0) -> None:
        super().__init__(n_features, 2, l2)

    @property
    def n_params(self) -> int:
        """p + 1."""
        return self.n_features + 1

    def _logits_grad(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        z = X @ params[:-1] + params[-1]
        value = float(np.mean(np.logaddexp(0.0, z) - y * z))
        r = (expit(z) - y) / X.shape[0]
        return value, np.concatenate([X.T @ r, [r.sum()]])

    def proba(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        """[1 − σ(z), σ(z)] per row."""
        p1 = expit(X @ params[:-1] + params[-1])
        return np.column_stack([1.0 - p1, p1])

    def _empty_like(self) -> LogisticRegression:
        return LogisticRegression(self.n_features, self.l2)


class SoftmaxRegression(NumpyModel):
    """Multinomial logistic regression, parameters [W (p×C) | b (C)]."""

    @property
    def n_params(self) -> int:
        """(p + 1) C."""
        return (self.n_features + 1) * self.n_classes

    def _unpack(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, c = self.n_features, self.n_classes
        return params[:p * c].reshape(p, c), params[p * c:]

    def _logits_grad(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        W, b = self._unpack(params)
        value, G = _softmax_ce(X @ W + b, y)
        return value, np.concatenate([(X.T @ G).ravel(), G.sum(axis=0)])

    def proba(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Softmax of XW + b."""
        W, b = self._unpack(params)
        return np.exp(log_softmax(X @ W + b, axis=1))

    def _empty_like(self) -> SoftmaxRegression:
        return SoftmaxRegression(self.n_features, self.n_classes, self.l2)


class MLP(NumpyModel):
    """One hidden ReLU layer of ``hidden`` units and a softmax output; He-initialised from ``seed``."""

    def __init__(self, n_features: int, n_classes: int, hidden: int = 16, l2: float = 0.0, seed: int = 0) -> None:
        if hidden < 1:
            raise FederatedLearningError("an MLP needs at least one hidden unit")
        self.hidden, self.seed = hidden, seed
        super().__init__(n_features, n_classes, l2)
        rng = np.random.default_rng(seed)
        p, h, c = n_features, hidden, n_classes
        # He initialisation for the ReLU layer, Glorot for the output; biases 0.
        W1 = rng.normal(0.0, np.sqrt(2.0 / p), (p, h))
        W2 = rng.normal(0.0, np.sqrt(2.0 / (h + c)), (h, c))
        self._params = np.concatenate([W1.ravel(), np.zeros(h), W2.ravel(), np.zeros(c)])

    @property
    def n_params(self) -> int:
        """p h + h + h C + C."""
        p, h, c = self.n_features, self.hidden, self.n_classes
        return p * h + h + h * c + c

    def _unpack(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        p, h, c = self.n_features, self.hidden, self.n_classes
        i = p * h
        W1, b1 = params[:i].reshape(p, h), params[i:i + h]
        i += h
        W2, b2 = params[i:i + h * c].reshape(h, c), params[i + h * c:]
        return W1, b1, W2, b2

    def _logits_grad(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        W1, b1, W2, b2 = self._unpack(params)
        A = X @ W1 + b1
        H = np.maximum(A, 0.0)
        value, G = _softmax_ce(H @ W2 + b2, y)
        dA = (G @ W2.T) * (A > 0.0)
        return value, np.concatenate([(X.T @ dA).ravel(), dA.sum(axis=0), (H.T @ G).ravel(), G.sum(axis=0)])

    def proba(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Softmax of relu(X W1 + b1) W2 + b2."""
        W1, b1, W2, b2 = self._unpack(params)
        return np.exp(log_softmax(np.maximum(X @ W1 + b1, 0.0) @ W2 + b2, axis=1))

    def _empty_like(self) -> MLP:
        return MLP(self.n_features, self.n_classes, self.hidden, self.l2, self.seed)
