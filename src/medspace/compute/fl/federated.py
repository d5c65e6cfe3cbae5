"""One round of iterative federated training: the client's message, the coordinator's state machine, a simulation loop.

Each round the coordinator sends the global parameters w and the strategy's :class:`ClientInstructions`; client k
trains locally from w to w_k and sends ONE flat float64 vector of length d + 2 (d parameters)::

    index    content                                   without DP            with DP (see fl.dp)
    [0, d)   weighted update                           n_k (w_k − w)         clip_C(w_k − w) + share of noise
    d        weight                                    n_k                   1
    d + 1    weighted training loss at w (monitoring)  n_k · loss_k(w)       0 (not released)

Every entry is a sum over clients of what the server needs, so the element-wise sum of the messages (plain here,
secure aggregation in a deployment: the ``aggregate`` hook) is all the coordinator sees: Σ n_k (w_k − w), Σ n_k
and Σ n_k loss_k(w). Its :meth:`FLCoordinator.update` hands the first two to the strategy's ``aggregate_fit``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from medspace.compute.errors import FederatedLearningError, MessageLayoutError
from medspace.compute.fl.dp import DPConfig, clip_update
from medspace.compute.fl.models import Model
from medspace.compute.fl.strategies import ClientInstructions, ServerState, Strategy
from medspace.compute.newton import Aggregate, plain_sum

FL_EXTRAS = ("weight", "loss_sum")
Site = tuple[np.ndarray, np.ndarray]  # (features, integer labels) held by one client


def message_length(n_params: int) -> int:
    """Length of a client's message for a model of ``n_params`` parameters."""
    return n_params + len(FL_EXTRAS)


def pack_update(weighted_update: np.ndarray, weight: float, loss_sum: float) -> np.ndarray:
    """One client's flat message: [weighted update | weight | weighted loss]."""
    return np.concatenate([np.asarray(weighted_update, dtype=np.float64).ravel(), [float(weight), float(loss_sum)]])


def unpack_update(total: np.ndarray, n_params: int) -> tuple[np.ndarray, float, float]:
    """Split a (summed) message into Σ weighted updates, Σ weights and Σ weighted losses."""
    total = np.asarray(total, dtype=np.float64)
    if total.ndim != 1 or total.shape[0] != message_length(n_params):
        raise MessageLayoutError(f"message has {total.size} values, the layout for {n_params} parameters has "
                                 f"{message_length(n_params)}")
    return total[:n_params].copy(), float(total[n_params]), float(total[n_params + 1])


def round_seed(seed: int, client: int, rnd: int) -> int:
    """The shuffling seed of ``client`` in round ``rnd``: distinct per client and round, reproducible."""
    return int(np.random.SeedSequence([seed, client, rnd]).generate_state(1)[0])


def client_update(model: Model, global_params: np.ndarray, X: np.ndarray, y: np.ndarray,
                  instructions: ClientInstructions, seed: int, dp: DPConfig | None = None,
                  n_clients: int = 1) -> np.ndarray:
    """Train ``model`` locally from ``global_params`` and return the client's flat message for this round.

    With ``dp``, the update is clipped to the clip norm, weighted 1, and (distributed noise) carries this client's
    share of the noise, std σC/√``n_clients``; the training loss is not released.
    """
    w = np.asarray(global_params, dtype=np.float64)
    model.set_params(w)
    if dp is None:
        n_k = float(X.shape[0])
        loss_sum = n_k * model.loss(X, y)
        model.fit_local(X, y, instructions, seed)
        return pack_update(n_k * (model.get_params() - w), n_k, loss_sum)
    model.fit_local(X, y, instructions, seed)
    delta = clip_update(model.get_params() - w, dp.clip_norm)
    delta = delta + dp.sample(delta.size, dp.client_std(n_clients))
    return pack_update(delta, 1.0, 0.0)


@dataclass
class FLCoordinator:
    """The server's side of iterative federated training, transport-agnostic.

    Loop: send :attr:`params` and :meth:`instructions` to the clients, sum their messages (securely), pass the sum
    to :meth:`update`. With central DP (``dp.distributed`` False) the server adds the noise to the summed update.
    """

    strategy: Strategy
    initial_params: np.ndarray
    dp: DPConfig | None = None
    state: ServerState = field(init=False)
    loss_history: list[float] = field(default_factory=list, init=False)  # weighted mean train loss at each w

    def __post_init__(self) -> None:
        self.state = self.strategy.initialize(self.initial_params)

    @property
    def params(self) -> np.ndarray:
        """The current global parameters (sent to the clients)."""
        return self.state.params.copy()

    @property
    def n_params(self) -> int:
        """Length of the parameter vector."""
        return int(self.state.params.size)

    @property
    def rounds(self) -> int:
        """Rounds aggregated so far."""
        return self.state.round

    def instructions(self) -> ClientInstructions:
        """What the clients do in the coming round."""
        return self.strategy.configure_fit(self.state)

    def update(self, total: np.ndarray) -> None:
        """Take the summed messages of the round's clients and move to the next global parameters."""
        summed, weight, loss_sum = unpack_update(total, self.n_params)
        if self.dp is not None:
            summed = summed + self.dp.sample(summed.size, self.dp.server_std())
            self.loss_history.append(math.nan)
        else:
            self.loss_history.append(loss_sum / weight if weight > 0 else math.nan)
        self.state = self.strategy.aggregate_fit(self.state, summed, weight)


@dataclass(frozen=True)
class FLResult:
    """Federated training's outcome: the final parameters and state, rounds, and the train-loss history."""

    params: np.ndarray
    state: ServerState
    rounds: int
    loss_history: tuple[float, ...]


RoundCallback = Callable[[int, np.ndarray], None]


def train_federated(model: Model, sites: Sequence[Site], strategy: Strategy, rounds: int, *,
                    aggregate: Aggregate = plain_sum, dp: DPConfig | None = None, seed: int = 0,
                    initial_params: np.ndarray | None = None,
                    callback: RoundCallback | None = None) -> FLResult:
    """Simulate ``rounds`` rounds over in-process sites ((X, y) pairs) and return the final global parameters.

    The clients run one after the other on copies of ``model`` (its current parameters are the start unless
    ``initial_params`` is given); ``aggregate`` sums their messages (secure aggregation in a deployment);
    ``callback(round, params)`` is called after each round, e.g. to record validation metrics.
    """
    if not sites:
        raise MessageLayoutError("no site to train on")
    if rounds < 1:
        raise FederatedLearningError("federated training needs at least one round")
    start = model.get_params() if initial_params is None else np.asarray(initial_params, dtype=np.float64)
    coordinator = FLCoordinator(strategy, start, dp)
    clients = [model.clone() for _ in sites]
    for rnd in range(1, rounds + 1):
        instructions = coordinator.instructions()
        w = coordinator.params
        messages = [client_update(clients[k], w, X, y, instructions, round_seed(seed, k, rnd), dp, len(sites))
                    for k, (X, y) in enumerate(sites)]
        coordinator.update(aggregate(messages))
        if callback is not None:
            callback(rnd, coordinator.params)
    return FLResult(coordinator.params, coordinator.state, coordinator.rounds, tuple(coordinator.loss_history))
