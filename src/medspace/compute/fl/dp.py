"""DP-SGD-style protection of client updates: per-client clipping to an L2 norm C, Gaussian noise of std σC on the sum.

This is DP-FedAvg (McMahan et al. 2018, "Learning Differentially Private Recurrent Language Models") at the level
of one hospital's update: each client's update w_k − w is clipped to ‖·‖₂ ≤ C and sent with weight 1 (weighting by
n_k would make one client's sensitivity n_k·C and disclose n_k), so one client changes the summed update by at most
C in L2 and Gaussian noise of std σC on the sum gives the Gaussian mechanism of noise multiplier σ per round. The
privacy accountant (composition over rounds, ε and δ per contract) is the caller's: this module only shapes the
updates.

Where the noise is added: with ``distributed=True`` (the default, and the deployment's choice) each of the K clients
adds independent noise of std σC/√K to its own message, so the securely aggregated sum carries noise of std σC and
no party, the server included, ever sees an un-noised total. With ``distributed=False`` the server adds σC to the
sum (central DP, for simulation).

The noise must come from a cryptographically secure sampler, never from numpy's generators: the caller passes a
:data:`NoiseFn`; :func:`opendp_gaussian` gives one backed by OpenDP's Gaussian mechanism (an optional dependency).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from medspace.compute.errors import OptionalDependencyError, PrivacyConfigError

# (size, std) -> a vector of `size` independent N(0, std²) draws from a cryptographically secure source.
NoiseFn = Callable[[int, float], np.ndarray]


def clip_update(update: np.ndarray, clip_norm: float) -> np.ndarray:
    """``update`` scaled down, if needed, to L2 norm at most ``clip_norm`` (its direction kept)."""
    if not (clip_norm > 0 and math.isfinite(clip_norm)):
        raise PrivacyConfigError("clip norm must be positive and finite")
    u = np.asarray(update, dtype=np.float64)
    norm = float(np.linalg.norm(u))
    if not math.isfinite(norm):
        raise PrivacyConfigError("update to clip is not finite")
    if norm <= clip_norm:
        return u.copy()
    return u * (clip_norm / norm)


@dataclass(frozen=True)
class DPConfig:
    """Clipping norm C, noise multiplier σ (noise std σC on the summed update), the sampler, and who adds noise."""

    clip_norm: float
    noise_multiplier: float = 0.0
    noise: NoiseFn | None = None
    distributed: bool = True

    def __post_init__(self) -> None:
        if not (self.clip_norm > 0 and math.isfinite(self.clip_norm)):
            raise PrivacyConfigError("clip norm must be positive and finite")
        if not (self.noise_multiplier >= 0 and math.isfinite(self.noise_multiplier)):
            raise PrivacyConfigError("noise multiplier must be non-negative and finite")
        if self.noise_multiplier > 0 and self.noise is None:
            raise PrivacyConfigError("a noise multiplier above 0 needs a secure noise sampler (e.g. opendp_gaussian())")

    @property
    def sum_std(self) -> float:
        """Standard deviation of the noise on the summed update, σC."""
        return self.noise_multiplier * self.clip_norm

    def client_std(self, n_clients: int) -> float:
        """Std of one client's share of the noise when K = ``n_clients`` clients each add theirs: σC/√K."""
        if n_clients < 1:
            raise PrivacyConfigError("distributed noise needs the number of clients in the round")
        return self.sum_std / math.sqrt(n_clients) if self.distributed else 0.0

    def server_std(self) -> float:
        """Std of the noise the server adds to the sum: σC for central DP, 0 when the clients add it."""
        return 0.0 if self.distributed else self.sum_std

    def sample(self, size: int, std: float) -> np.ndarray:
        """``size`` draws of N(0, std²) from the configured sampler (zeros when std is 0)."""
        if std == 0.0:
            return np.zeros(size)
        if self.noise is None:
            raise PrivacyConfigError("no noise sampler configured")
        out = np.asarray(self.noise(size, std), dtype=np.float64)
        if out.shape != (size,):
            raise PrivacyConfigError(f"noise sampler returned {out.size} values for {size} requested")
        return out


def _opendp() -> Any:
    try:
        import opendp.prelude as dp
    except ImportError as exc:
        raise OptionalDependencyError("OpenDP is not installed: pip install opendp") from exc
    return dp


def opendp_gaussian() -> NoiseFn:
    """A :data:`NoiseFn` drawing from OpenDP's Gaussian mechanism (its samplers use the OS's secure randomness)."""
    dp = _opendp()
    # OpenDP gates its mechanisms behind "contrib"; enabling it is process-wide and idempotent.
    dp.enable_features("contrib")

    def sample(size: int, std: float) -> np.ndarray:
        if not (std > 0 and math.isfinite(std)):
            raise PrivacyConfigError("noise std must be positive and finite")
        space = dp.vector_domain(dp.atom_domain(T=float, nan=False), size=size), dp.l2_distance(T=float)
        mechanism = dp.m.make_gaussian(*space, scale=float(std))
        return np.asarray(mechanism([0.0] * size), dtype=np.float64)

    return sample
