"""Server strategies for iterative federated training, after Flower's ``flwr.server.strategy`` (not depending on it).

A strategy is configuration only; what changes from round to round lives in a :class:`ServerState` (the global
parameters, the round number and the optimiser's slots, e.g. Adam's moments), so a coordinator can persist it
between rounds and replay a round from it. Three calls make a round:

- :meth:`Strategy.initialize` ``(params) -> state``;
- :meth:`Strategy.configure_fit` ``(state) -> ClientInstructions``: what every client does locally this round
  (epochs, learning rate, batch size, proximal μ);
- :meth:`Strategy.aggregate_fit` ``(state, summed_update, total_weight) -> state``: the next global parameters from
  the SUM of the clients' weighted updates ``Σ_k n_k (w_k − w)`` and the sum of their weights ``Σ_k n_k`` (see
  :mod:`medspace.compute.fl.messages`). Only sums reach the server, so secure aggregation can produce them.

The mean client update ``Δ = Σ n_k (w_k − w) / Σ n_k`` is the negative of Reddi et al.'s pseudo-gradient; every
server optimiser below steps along it:

- FedAvg (McMahan et al. 2017): ``w ← w + η Δ``; with η = 1 this is the weighted mean of the clients' parameters.
- FedProx (Li et al. 2020): FedAvg's server step; the clients minimise ``f_k(v) + μ/2 ‖v − w‖²``.
- FedAvgM (Hsu et al. 2019): server momentum, ``u ← β u + Δ``, ``w ← w + η u``.
- FedAdam (Reddi et al. 2021, "Adaptive Federated Optimization", Algorithm 2):
  ``m ← β₁ m + (1 − β₁) Δ``, ``v ← β₂ v + (1 − β₂) Δ²``, ``w ← w + η m / (√v + τ)``, with ``m₀ = 0`` and
  ``v₋₁ = τ²`` as in the paper (no bias correction there; ``bias_correction=True`` adds Adam's).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from medspace.compute.errors import FederatedLearningError, MessageLayoutError


@dataclass(frozen=True)
class ClientInstructions:
    """What each client does locally in a round (Flower's ``FitIns`` config, typed)."""

    epochs: int = 1
    lr: float = 0.1
    batch_size: int | None = None  # None: full-batch gradient descent (one step per epoch)
    proximal_mu: float = 0.0  # FedProx: weight of μ/2 ‖v − w_global‖² in the local objective
    round: int = 0
    # When set, every client takes exactly this many minibatch steps (reshuffling after each pass) instead of
    # ``epochs`` passes: FLamby's choice. With epochs, a large site takes more steps and pulls the average towards
    # its own optimum (the objective inconsistency of Wang et al. 2020, "FedNova"); equal steps avoid that.
    local_steps: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise FederatedLearningError("local epochs must be at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise FederatedLearningError("local learning rate must be positive and finite")
        if self.batch_size is not None and self.batch_size < 1:
            raise FederatedLearningError("batch size must be at least 1 (or None for full batch)")
        if not (self.proximal_mu >= 0 and math.isfinite(self.proximal_mu)):
            raise FederatedLearningError("proximal mu must be non-negative and finite")
        if self.local_steps is not None and self.local_steps < 1:
            raise FederatedLearningError("local steps must be at least 1 (or None for whole epochs)")


@dataclass(frozen=True)
class ServerState:
    """The global parameters after ``round`` aggregations and the server optimiser's slots (name -> vector)."""

    params: np.ndarray
    round: int = 0
    slots: dict[str, np.ndarray] = field(default_factory=dict)


def _check_update(state: ServerState, summed_update: np.ndarray, total_weight: float) -> np.ndarray:
    """The mean client update Δ; refuses a sum of the wrong length or a non-positive total weight."""
    summed = np.asarray(summed_update, dtype=np.float64)
    if summed.shape != state.params.shape:
        raise MessageLayoutError(f"summed update has {summed.size} values, the model has {state.params.size}")
    if not (total_weight > 0 and math.isfinite(total_weight)):
        raise FederatedLearningError("total client weight must be positive and finite (no client reported)")
    if not np.all(np.isfinite(summed)):
        raise FederatedLearningError("summed update is not finite (a client diverged: lower its learning rate)")
    return summed / float(total_weight)


@dataclass(frozen=True)
class Strategy(ABC):
    """How the server configures the clients and turns their summed updates into the next global parameters."""

    local_epochs: int = 1
    local_lr: float = 0.1
    batch_size: int | None = 32
    local_steps: int | None = None  # a fixed number of minibatch steps per round instead of local_epochs passes

    def initialize(self, params: np.ndarray) -> ServerState:
        """The state before the first round, at the given initial parameters (a flat float64 vector)."""
        p = np.asarray(params, dtype=np.float64)
        if p.ndim != 1:
            raise MessageLayoutError("parameters must be a flat vector")
        return ServerState(p.copy(), 0, self._init_slots(p))

    def configure_fit(self, state: ServerState) -> ClientInstructions:
        """The instructions every client trains with in the coming round."""
        return ClientInstructions(self.local_epochs, self.local_lr, self.batch_size, self.proximal_mu(),
                                  state.round + 1, self.local_steps)

    def aggregate_fit(self, state: ServerState, summed_update: np.ndarray, total_weight: float) -> ServerState:
        """The next state from Σ n_k (w_k − w) and Σ n_k over the clients of this round."""
        delta = _check_update(state, summed_update, total_weight)
        params, slots = self._step(state, delta)
        return ServerState(params, state.round + 1, slots)

    def proximal_mu(self) -> float:
        """μ of the clients' proximal term (0: none)."""
        return 0.0

    def _init_slots(self, params: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    @abstractmethod
    def _step(self, state: ServerState, delta: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """New parameters and slots from the mean client update ``delta``."""


@dataclass(frozen=True)
class FedAvg(Strategy):
    """Federated averaging: the weighted mean of the clients' parameters (server learning rate 1)."""

    server_lr: float = 1.0

    def _step(self, state: ServerState, delta: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return state.params + self.server_lr * delta, {}


@dataclass(frozen=True)
class FedProx(FedAvg):
    """FedAvg whose clients add the proximal term μ/2 ‖v − w_global‖² to their local objective."""

    mu: float = 0.01

    def __post_init__(self) -> None:
        if not (self.mu >= 0 and math.isfinite(self.mu)):
            raise FederatedLearningError("FedProx mu must be non-negative and finite")

    def proximal_mu(self) -> float:
        """μ of the clients' proximal term."""
        return self.mu


@dataclass(frozen=True)
class FedAvgM(Strategy):
    """FedAvg with server momentum: u ← β u + Δ, w ← w + η u."""

    server_lr: float = 1.0
    momentum: float = 0.9

    def _init_slots(self, params: np.ndarray) -> dict[str, np.ndarray]:
        return {"momentum": np.zeros_like(params)}

    def _step(self, state: ServerState, delta: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        u = self.momentum * state.slots["momentum"] + delta
        return state.params + self.server_lr * u, {"momentum": u}


@dataclass(frozen=True)
class FedAdam(Strategy):
    """Server-side Adam on the pseudo-gradient (Reddi et al. 2021, Algorithm 2); defaults as Flower's FedAdam."""

    server_lr: float = 0.1  # η
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-9  # adaptivity: larger τ, closer to FedAvgM
    bias_correction: bool = False

    def __post_init__(self) -> None:
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            raise FederatedLearningError("FedAdam betas must lie in [0, 1)")
        if not (self.tau > 0 and self.server_lr > 0):
            raise FederatedLearningError("FedAdam tau and server learning rate must be positive")

    def _init_slots(self, params: np.ndarray) -> dict[str, np.ndarray]:
        return {"m": np.zeros_like(params), "v": np.full_like(params, self.tau ** 2)}

    def _step(self, state: ServerState, delta: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        m = self.beta1 * state.slots["m"] + (1.0 - self.beta1) * delta
        v = self.beta2 * state.slots["v"] + (1.0 - self.beta2) * delta * delta
        lr = self.server_lr
        if self.bias_correction:
            t = state.round + 1
            lr = lr * math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)
        return state.params + lr * m / (np.sqrt(v) + self.tau), {"m": m, "v": v}

