"""Server strategies, the summed-update message layout and DP-SGD-style clipping and noise of client updates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.compute.errors import FederatedLearningError, MessageLayoutError, PrivacyConfigError
from medspace.compute.fl import (
    ClientInstructions,
    DPConfig,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    FLCoordinator,
    LogisticRegression,
    SoftmaxRegression,
    client_update,
    clip_update,
    message_length,
    pack_update,
    train_federated,
    unpack_update,
)
from medspace.compute.newton import plain_sum


def sites(seed: int = 3, sizes: tuple[int, ...] = (120, 300, 80), p: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """Binary sites with shifted covariates and different outcome rates."""
    rng = np.random.default_rng(seed)
    out = []
    for k, n in enumerate(sizes):
        X = rng.normal(0.5 * k, 1.0 + 0.2 * k, (n, p))
        z = X @ np.linspace(1.0, -1.0, p) + rng.normal(0.0, 1.0, n) - 0.3 * k
        out.append((X, (z > 0).astype(np.int64)))
    return out


def test_fedavg_one_client_full_batch_equals_centralised_gradient_descent() -> None:
    """R rounds of E full-batch local epochs at one client are R·E steps of plain gradient descent."""
    X, y = sites()[1]
    model = LogisticRegression(X.shape[1], l2=0.01)
    strategy = FedAvg(local_epochs=3, local_lr=0.5, batch_size=None)
    fed = train_federated(model, [(X, y)], strategy, rounds=7)
    w = np.zeros(model.n_params)
    for _ in range(7 * 3):
        w = w - 0.5 * model.loss_grad(w, X, y)[1]
    np.testing.assert_allclose(fed.params, w, rtol=0, atol=1e-12)
    assert fed.rounds == 7


def test_fedavg_aggregate_is_the_weighted_mean_of_client_parameters() -> None:
    """w ← Σ n_k w_k / Σ n_k, where w_k is what client k trained to from w."""
    data = sites()
    model = SoftmaxRegression(4, 2)
    w0 = np.random.default_rng(0).normal(0.0, 0.1, model.n_params)
    instructions = ClientInstructions(epochs=2, lr=0.1, batch_size=16)
    trained, weights = [], []
    for k, (X, y) in enumerate(data):
        local = model.clone()
        local.set_params(w0)
        local.fit_local(X, y, instructions, seed=k)
        trained.append(local.get_params())
        weights.append(X.shape[0])
    coordinator = FLCoordinator(FedAvg(local_epochs=2, local_lr=0.1, batch_size=16), w0)
    messages = [client_update(model.clone(), w0, X, y, coordinator.instructions(), seed=k)
                for k, (X, y) in enumerate(data)]
    coordinator.update(plain_sum(messages))
    expected = np.average(np.array(trained), axis=0, weights=np.array(weights, dtype=float))
    np.testing.assert_allclose(coordinator.params, expected, rtol=0, atol=1e-12)


def test_fedprox_with_mu_zero_equals_fedavg_and_mu_pulls_clients_towards_the_global_model() -> None:
    """μ = 0 is FedAvg exactly; μ > 0 keeps a client's local model closer to the global one."""
    data = sites()
    model = LogisticRegression(4)
    avg = train_federated(model, data, FedAvg(local_epochs=2, local_lr=0.2), rounds=5, seed=9)
    prox0 = train_federated(model, data, FedProx(local_epochs=2, local_lr=0.2, mu=0.0), rounds=5, seed=9)
    np.testing.assert_array_equal(prox0.params, avg.params)
    X, y = data[2]
    drift = {}
    for mu in (0.0, 1.0):
        local = model.clone()
        local.set_params(avg.params)
        local.fit_local(X, y, FedProx(local_epochs=20, local_lr=0.2, mu=mu).configure_fit(avg.state), seed=1)
        drift[mu] = float(np.linalg.norm(local.get_params() - avg.params))
    assert drift[1.0] < drift[0.0]
    assert FedProx(mu=0.3).configure_fit(avg.state).proximal_mu == 0.3


def test_fedprox_local_step_adds_the_proximal_gradient() -> None:
    """Two full-batch FedProx epochs from w: v1 = w − lr ∇f(w), v2 = v1 − lr (∇f(v1) + μ (v1 − w))."""
    X, y = sites()[0]
    model = LogisticRegression(4)
    w = np.full(model.n_params, 0.1)
    model.set_params(w)
    model.fit_local(X, y, ClientInstructions(epochs=2, lr=0.3, batch_size=None, proximal_mu=0.7), seed=0)
    v1 = w - 0.3 * model.loss_grad(w, X, y)[1]
    v2 = v1 - 0.3 * (model.loss_grad(v1, X, y)[1] + 0.7 * (v1 - w))
    np.testing.assert_allclose(model.get_params(), v2, rtol=0, atol=1e-14)
    plain = v1 - 0.3 * model.loss_grad(v1, X, y)[1]
    assert not np.allclose(plain, v2)


def test_fedadam_server_step_matches_the_paper_on_a_hand_computed_example() -> None:
    """Reddi et al. 2021, Alg. 2: m = β1 m + (1−β1)Δ, v = β2 v + (1−β2)Δ², w += η m/(√v + τ); v₋₁ = τ²."""
    s = FedAdam(server_lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    state = s.initialize(np.array([1.0, -2.0]))
    # clients' summed weighted updates and weights: Δ = [0.4, -0.2] / 2 = [0.2, -0.1]
    state = s.aggregate_fit(state, np.array([0.4, -0.2]), 2.0)
    m1 = [0.1 * 0.2, 0.1 * -0.1]  # = [0.02, -0.01]
    v1 = [0.99 * 1e-6 + 0.01 * 0.04, 0.99 * 1e-6 + 0.01 * 0.01]  # = [4.0099e-4, 1.0099e-4]
    w1 = [1.0 + 0.1 * m1[0] / (math.sqrt(v1[0]) + 1e-3), -2.0 + 0.1 * m1[1] / (math.sqrt(v1[1]) + 1e-3)]
    np.testing.assert_allclose(state.slots["m"], m1, rtol=1e-14)
    np.testing.assert_allclose(state.slots["v"], v1, rtol=1e-14)
    np.testing.assert_allclose(state.params, w1, rtol=1e-14)
    assert state.params[0] == pytest.approx(1.0 + 0.1 * 0.02 / (0.0200247347 + 1e-3), rel=1e-9)
    # second round, Δ = [-0.1, 0.3]
    state = s.aggregate_fit(state, np.array([-0.3, 0.9]), 3.0)
    m2 = [0.9 * m1[0] + 0.1 * -0.1, 0.9 * m1[1] + 0.1 * 0.3]
    v2 = [0.99 * v1[0] + 0.01 * 0.01, 0.99 * v1[1] + 0.01 * 0.09]
    w2 = [w1[i] + 0.1 * m2[i] / (math.sqrt(v2[i]) + 1e-3) for i in range(2)]
    np.testing.assert_allclose(state.params, w2, rtol=1e-14)
    assert state.round == 2
    # Adam's bias correction (off in the paper) scales the first step by √(1−β2)/(1−β1)
    sb = FedAdam(server_lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3, bias_correction=True)
    stb = sb.aggregate_fit(sb.initialize(np.array([1.0, -2.0])), np.array([0.4, -0.2]), 2.0)
    step = 0.1 * math.sqrt(0.01) / 0.1 * m1[0] / (math.sqrt(v1[0]) + 1e-3)
    assert stb.params[0] == pytest.approx(1.0 + step, rel=1e-13)


def test_fedavgm_momentum_recurrence() -> None:
    """u ← β u + Δ, w ← w + η u."""
    s = FedAvgM(server_lr=0.5, momentum=0.8)
    state = s.initialize(np.zeros(2))
    state = s.aggregate_fit(state, np.array([1.0, 2.0]), 1.0)
    state = s.aggregate_fit(state, np.array([2.0, 0.0]), 2.0)
    u1, u2 = np.array([1.0, 2.0]), 0.8 * np.array([1.0, 2.0]) + np.array([1.0, 0.0])
    np.testing.assert_allclose(state.params, 0.5 * u1 + 0.5 * u2, rtol=1e-15)


def test_strategies_refuse_malformed_sums_and_settings() -> None:
    """Wrong length, zero weight, non-finite sums and bad settings are typed errors."""
    s = FedAvg()
    state = s.initialize(np.zeros(3))
    with pytest.raises(MessageLayoutError):
        s.aggregate_fit(state, np.zeros(4), 1.0)
    with pytest.raises(FederatedLearningError):
        s.aggregate_fit(state, np.zeros(3), 0.0)
    with pytest.raises(FederatedLearningError):
        s.aggregate_fit(state, np.array([0.0, np.nan, 0.0]), 1.0)
    with pytest.raises(FederatedLearningError):
        FedAdam(beta1=1.0)
    with pytest.raises(FederatedLearningError):
        FedProx(mu=-1.0)
    with pytest.raises(FederatedLearningError):
        ClientInstructions(epochs=0)
    with pytest.raises(MessageLayoutError):
        unpack_update(np.zeros(5), 4)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_client_messages_sum_to_what_the_server_needs(n_clients: int, d: int, seed: int) -> None:
    """Σ messages = [Σ n_k δ_k | Σ n_k | Σ n_k loss_k], and the server step from that sum is FedAvg's weighted mean."""
    rng = np.random.default_rng(seed)
    deltas = rng.normal(0.0, 3.0, (n_clients, d))
    weights = rng.integers(1, 1000, n_clients).astype(float)
    losses = rng.uniform(0.0, 2.0, n_clients)
    messages = [pack_update(n * dk, n, n * lk) for dk, n, lk in zip(deltas, weights, losses, strict=True)]
    assert all(m.shape == (message_length(d),) for m in messages)
    summed, weight, loss_sum = unpack_update(plain_sum(messages), d)
    np.testing.assert_allclose(summed, (weights[:, None] * deltas).sum(axis=0), rtol=1e-12, atol=1e-9)
    assert weight == pytest.approx(weights.sum(), rel=1e-15)
    assert loss_sum == pytest.approx(float(weights @ losses), rel=1e-12)
    w = rng.normal(0.0, 1.0, d)
    coordinator = FLCoordinator(FedAvg(), w)
    coordinator.update(plain_sum(messages[::-1]))  # the order of the sum does not matter
    np.testing.assert_allclose(coordinator.params, np.average(w + deltas, axis=0, weights=weights),
                               rtol=1e-9, atol=1e-9)
    assert coordinator.loss_history[-1] == pytest.approx(float(np.average(losses, weights=weights)), rel=1e-9)


def test_aggregate_hook_is_the_only_path_from_clients_to_server() -> None:
    """``train_federated`` hands the round's messages to ``aggregate`` and uses only the sum it returns."""
    seen: list[int] = []

    def recording_sum(messages: list[np.ndarray]) -> np.ndarray:
        seen.append(len(messages))
        return plain_sum(messages)

    data = sites()
    model = LogisticRegression(4)
    a = train_federated(model, data, FedAdam(server_lr=0.05), rounds=4, aggregate=recording_sum)
    b = train_federated(model, data, FedAdam(server_lr=0.05), rounds=4)
    assert seen == [3, 3, 3, 3]
    np.testing.assert_array_equal(a.params, b.params)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 20), st.floats(1e-3, 1e3), st.integers(0, 2**32 - 1), st.floats(1e-3, 1e3))
def test_clipping_bounds_the_norm_and_keeps_the_direction(d: int, clip: float, seed: int, scale: float) -> None:
    """‖clip_C(u)‖ ≤ C; u is unchanged when already inside the ball; otherwise only its length changes."""
    u = np.random.default_rng(seed).normal(0.0, scale, d)
    c = clip_update(u, clip)
    norm = float(np.linalg.norm(u))
    assert float(np.linalg.norm(c)) <= clip * (1 + 1e-12)
    if norm <= clip:
        np.testing.assert_array_equal(c, u)
    else:
        np.testing.assert_allclose(c * norm / clip, u, rtol=1e-12, atol=1e-12 * scale)


def test_dp_client_messages_are_clipped_unit_weight_and_carry_their_noise_share() -> None:
    """With DP each client sends clip(δ) + N(0, (σC)²/K), weight 1 and no loss; the sum's noise has std σC."""
    data = sites()
    model = LogisticRegression(4)
    draws: list[tuple[int, float]] = []

    def fake_secure_noise(size: int, std: float) -> np.ndarray:
        # a stand-in sampler that records its calls; the real one is opendp_gaussian()
        draws.append((size, std))
        return np.full(size, std)

    dp = DPConfig(clip_norm=0.05, noise_multiplier=1.5, noise=fake_secure_noise)
    w = np.zeros(model.n_params)
    ins = ClientInstructions(epochs=5, lr=0.5, batch_size=None)
    clean = DPConfig(clip_norm=0.05)
    for k, (X, y) in enumerate(data):
        msg = client_update(model.clone(), w, X, y, ins, seed=k, dp=dp, n_clients=3)
        plain = client_update(model.clone(), w, X, y, ins, seed=k, dp=clean, n_clients=3)
        upd, weight, loss = unpack_update(msg, model.n_params)
        clipped, _, _ = unpack_update(plain, model.n_params)
        assert weight == 1.0 and loss == 0.0
        assert float(np.linalg.norm(clipped)) <= 0.05 * (1 + 1e-12)
        np.testing.assert_allclose(upd - clipped, 1.5 * 0.05 / math.sqrt(3), rtol=1e-12)
    assert draws == [(model.n_params, 1.5 * 0.05 / math.sqrt(3))] * 3
    # K shares of variance (σC)²/K add up to (σC)² on the sum
    assert 3 * (dp.client_std(3) ** 2) == pytest.approx(dp.sum_std ** 2)
    central = DPConfig(clip_norm=0.05, noise_multiplier=1.5, noise=fake_secure_noise, distributed=False)
    assert central.client_std(3) == 0.0 and central.server_std() == pytest.approx(0.075)


def test_dp_requires_a_secure_sampler_for_noise() -> None:
    """A noise multiplier without a sampler, or bad clip settings, are refused."""
    with pytest.raises(PrivacyConfigError):
        DPConfig(clip_norm=1.0, noise_multiplier=1.0)
    with pytest.raises(PrivacyConfigError):
        DPConfig(clip_norm=0.0)
    with pytest.raises(PrivacyConfigError):
        clip_update(np.ones(3), -1.0)


def test_dp_federated_training_still_learns_with_clipping_only() -> None:
    """Clipped, unit-weighted updates (σ = 0) still reduce the loss: DP-FedAvg's mechanics work end to end."""
    data = sites()
    model = LogisticRegression(4)
    res = train_federated(model, data, FedAvg(local_epochs=1, local_lr=0.2), rounds=30, dp=DPConfig(clip_norm=0.5))
    X = np.vstack([x for x, _ in data])
    y = np.concatenate([t for _, t in data])
    assert model.loss_grad(res.params, X, y)[0] < 0.8 * math.log(2.0)
    assert all(math.isnan(v) for v in res.loss_history)


def test_opendp_noise_has_the_stated_scale() -> None:
    """OpenDP's Gaussian sampler gives mean 0 and std σC (statistical test, 20,000 draws: ±6 standard errors)."""
    pytest.importorskip("opendp")
    from medspace.compute.fl import opendp_gaussian

    noise = opendp_gaussian()
    x = noise(20_000, 2.5)
    assert x.shape == (20_000,)
    se_std = 2.5 / math.sqrt(2 * x.size)
    assert abs(float(np.std(x)) - 2.5) < 6 * se_std
    assert abs(float(np.mean(x))) < 6 * 2.5 / math.sqrt(x.size)
    dp = DPConfig(clip_norm=1.0, noise_multiplier=0.5, noise=noise, distributed=False)
    coordinator = FLCoordinator(FedAvg(), np.zeros(3), dp)
    coordinator.update(pack_update(np.zeros(3), 4.0, 0.0))
    assert np.all(coordinator.params != 0.0)
