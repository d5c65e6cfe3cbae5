"""Optional models behind the same :class:`~medspace.compute.fl.models.Model` protocol: PyTorch and scikit-learn.

Both libraries are optional extras, imported only when an adapter is built (``pip install medspace[ml]`` brings
scikit-learn; PyTorch is the caller's to install). Their parameters cross the wire as the same flat float64
vector as the numpy models', so every strategy, the message layout and secure aggregation apply unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from medspace.compute.errors import FederatedLearningError, MessageLayoutError, OptionalDependencyError
from medspace.compute.fl.metrics import log_loss
from medspace.compute.fl.models import check_xy, minibatches
from medspace.compute.fl.strategies import ClientInstructions


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise OptionalDependencyError("PyTorch is not installed (see pytorch.org for the wheel)") from exc
    return torch


def _sgd_classifier() -> Any:
    try:
        from sklearn.linear_model import SGDClassifier
    except ImportError as exc:
        raise OptionalDependencyError("scikit-learn is not installed: pip install 'medspace[ml]'") from exc
    return SGDClassifier


class TorchModel:
    """A classifier ``nn.Module`` (features -> C logits) trained locally by minibatch SGD on cross-entropy."""

    def __init__(self, module: Any, n_features: int, n_classes: int) -> None:
        self._t = _torch()
        self.module = module
        self.n_features, self._n_classes = n_features, n_classes

    @property
    def n_params(self) -> int:
        """Number of scalars in the module's parameters."""
        return int(sum(p.numel() for p in self.module.parameters()))

    @property
    def n_classes(self) -> int:
        """Number of classes C."""
        return self._n_classes

    def get_params(self) -> np.ndarray:
        """The module's parameters, flattened in ``parameters()`` order, as float64."""
        vec = self._t.nn.utils.parameters_to_vector(self.module.parameters())
        return np.asarray(vec.detach().cpu().numpy(), dtype=np.float64)

    def set_params(self, params: np.ndarray) -> None:
        """Load a flat vector into the module's parameters (cast to their dtype)."""
        p = np.asarray(params, dtype=np.float64)
        if p.shape != (self.n_params,):
            raise MessageLayoutError(f"{p.size} parameters given, the model has {self.n_params}")
        first = next(self.module.parameters())
        vec = self._t.as_tensor(p, dtype=first.dtype, device=first.device)
        with self._t.no_grad():
            self._t.nn.utils.vector_to_parameters(vec, self.module.parameters())

    def _tensors(self, X: np.ndarray, y: np.ndarray | None = None) -> tuple[Any, Any]:
        first = next(self.module.parameters())
        xt = self._t.as_tensor(np.asarray(X), dtype=first.dtype, device=first.device)
        yt = None if y is None else self._t.as_tensor(np.asarray(y), dtype=self._t.long, device=first.device)
        return xt, yt

    def fit_local(self, X: np.ndarray, y: np.ndarray, instructions: ClientInstructions, seed: int) -> None:
        """Minibatch SGD on cross-entropy plus FedProx's μ/2 ‖θ − θ₀‖²; the numpy ``seed`` only shuffles."""
        X, y = check_xy(X, y, self.n_features, self.n_classes)
        t = self._t
        xt, yt = self._tensors(X, y)
        anchor = [p.detach().clone() for p in self.module.parameters()]
        optimiser = t.optim.SGD(self.module.parameters(), lr=instructions.lr)
        self.module.train()
        for batch in minibatches(X.shape[0], instructions, np.random.default_rng(seed)):
            idx = slice(None) if batch is None else t.as_tensor(batch, device=xt.device)
            optimiser.zero_grad()
            loss = t.nn.functional.cross_entropy(self.module(xt[idx]), yt[idx])
            if instructions.proximal_mu > 0.0:
                prox = sum(((p - a) ** 2).sum() for p, a in zip(self.module.parameters(), anchor, strict=True))
                loss = loss + 0.5 * instructions.proximal_mu * prox
            loss.backward()
            optimiser.step()
        if not np.all(np.isfinite(self.get_params())):
            raise FederatedLearningError("local training diverged (parameters not finite): lower the learning rate")

    def loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """Mean cross-entropy at the current parameters."""
        X, y = check_xy(X, y, self.n_features, self.n_classes)
        xt, yt = self._tensors(X, y)
        self.module.eval()
        with self._t.no_grad():
            return float(self._t.nn.functional.cross_entropy(self.module(xt), yt))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax of the module's logits, (n, C)."""
        xt, _ = self._tensors(X)
        self.module.eval()
        with self._t.no_grad():
            out = self._t.softmax(self.module(xt), dim=1)
        return np.asarray(out.cpu().numpy(), dtype=np.float64)

    def clone(self) -> TorchModel:
        """A deep copy of the module."""
        return TorchModel(copy.deepcopy(self.module), self.n_features, self.n_classes)


class SklearnModel:
    """scikit-learn's ``SGDClassifier`` (log-loss, one-vs-rest for C > 2) trained locally by ``partial_fit``.

    Parameters: ``[coef_ (rows × p, row-major) | intercept_ (rows)]`` with rows = 1 for two classes, C otherwise.
    Local training runs ``epochs`` passes of per-sample SGD at the instructed constant learning rate; scikit-learn
    has no minibatch or proximal term, so ``batch_size`` is ignored and μ > 0 is refused.
    """

    def __init__(self, n_features: int, n_classes: int, *, alpha: float = 1e-4, estimator: Any = None) -> None:
        cls = _sgd_classifier()
        self.n_features, self._n_classes = n_features, n_classes
        self.estimator = estimator if estimator is not None else cls(loss="log_loss", alpha=alpha)
        if self.estimator.get_params().get("loss") not in ("log_loss", "modified_huber"):
            raise FederatedLearningError("SGDClassifier needs loss='log_loss' (or 'modified_huber') for probabilities")
        if self.estimator.get_params().get("average"):
            raise FederatedLearningError("SGDClassifier with averaging keeps hidden state: use average=False")
        self.classes = np.arange(n_classes)
        self._rows = 1 if n_classes == 2 else n_classes
        self._allocate()

    def _allocate(self) -> None:
        # partial_fit on one all-zero row creates coef_ and intercept_ with the right shapes; they are then zeroed
        self.estimator.set_params(learning_rate="constant", eta0=1e-12, shuffle=True)
        self.estimator.partial_fit(np.zeros((1, self.n_features)), np.zeros(1, dtype=np.int64), classes=self.classes)
        self.set_params(np.zeros(self.n_params))

    @property
    def n_params(self) -> int:
        """rows × (p + 1)."""
        return self._rows * (self.n_features + 1)

    @property
    def n_classes(self) -> int:
        """Number of classes C."""
        return self._n_classes

    def get_params(self) -> np.ndarray:
        """[coef_ | intercept_] flattened."""
        est = self.estimator
        return np.concatenate([np.asarray(est.coef_, dtype=np.float64).ravel(),
                               np.asarray(est.intercept_, dtype=np.float64).ravel()])

    def set_params(self, params: np.ndarray) -> None:
        """Write coef_ and intercept_ from a flat vector."""
        p = np.asarray(params, dtype=np.float64)
        if p.shape != (self.n_params,):
            raise MessageLayoutError(f"{p.size} parameters given, the model has {self.n_params}")
        k = self._rows * self.n_features
        self.estimator.coef_ = p[:k].reshape(self._rows, self.n_features).copy()
        self.estimator.intercept_ = p[k:].copy()

    def fit_local(self, X: np.ndarray, y: np.ndarray, instructions: ClientInstructions, seed: int) -> None:
        """``epochs`` passes of ``partial_fit`` at constant learning rate ``lr``, shuffled by ``seed``."""
        if instructions.proximal_mu > 0.0:
            raise FederatedLearningError("SGDClassifier has no proximal term: use FedAvg or FedAdam with it")
        if instructions.local_steps is not None:
            raise FederatedLearningError("SGDClassifier trains by whole passes: use local_epochs, not local_steps")
        X, y = check_xy(X, y, self.n_features, self.n_classes)
        self.estimator.set_params(learning_rate="constant", eta0=instructions.lr, random_state=seed % (2**32))
        for _ in range(instructions.epochs):
            self.estimator.partial_fit(X, y, classes=self.classes)
        if not np.all(np.isfinite(self.get_params())):
            raise FederatedLearningError("local training diverged (parameters not finite): lower the learning rate")

    def loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """Mean log-loss of the current probabilities."""
        X, y = check_xy(X, y, self.n_features, self.n_classes)
        return log_loss(self.predict_proba(X), y)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The estimator's class probabilities, (n, C)."""
        return np.asarray(self.estimator.predict_proba(np.asarray(X, dtype=np.float64)), dtype=np.float64)

    def clone(self) -> SklearnModel:
        """A copy with the same settings and parameters."""
        other = SklearnModel(self.n_features, self.n_classes, estimator=copy.deepcopy(self.estimator))
        other.set_params(self.get_params())
        return other
