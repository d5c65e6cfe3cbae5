"""Distributed discrete Gaussian noise: each node adds its share of integer noise before secure aggregation.

The hub learns only the sum of the nodes' masked vectors (:mod:`medspace.privacy.secagg`), so if every node adds
its own noise to its integer (or fixed-point coded) contribution *before* masking, no party, the hub included,
ever sees an un-noised total. A node does::

    plan = NoisePlan(sigma=sigma_sum, n_nodes=n, min_nodes=t)      # the same plan at every node
    noisy = add_noise_share(codes, plan)                            # int64 in, int64 out
    client.masked_input(noisy, routed)                              # Encoding.integers(...) of the round

Scale. ``sigma`` is the standard deviation the *sum* must have, in the integer units of the contribution (counts;
for fixed-point values, codes: value * 2^frac_bits). Secure aggregation completes with at least t contributions
(and a colluding node may know, and subtract, its own noise), so the noise must suffice from any t honest nodes:
each node draws X_i ~ N_Z(0, s^2), the discrete Gaussian of parameter s = sigma / sqrt(t) (:func:`node_sigma`
raises s a hair when the discrete Gaussian's variance, slightly below s^2 for small s, would fall short, and never
goes below 1/2). The sum of any t shares then has variance >= sigma^2; more survivors only add independent noise.
Choose t as the round's secure-aggregation threshold minus the number of nodes that may collude with the hub (they
know their own noise and can subtract it): the noise of the honest survivors alone must suffice.

Privacy of the sum (what is charged). A sum of independent discrete Gaussians is not a discrete Gaussian, so the
central bound rho = Delta_2^2 / (2 sigma^2) does not apply as it is. Kairouz, Liu, Steinke 2021, "The Distributed
Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation" (ICML 2021, arXiv:2102.06387, Thm. 1 /
Prop. 14): for s >= 1/2, X_{i,j} ~ N_Z(0, s^2) independent (i = 1..n summands, j = 1..d coordinates),
Z = sum_i X_i, and every Delta in Z^d with ||Delta||_1 <= Delta_1, ||Delta||_2 <= Delta_2, for all alpha >= 1,

    D_alpha(Z + Delta || Z) <= alpha * rho,   tau = 10 * sum_{k=1}^{n-1} exp(-2 pi^2 s^2 k / (k + 1)),

    rho = min( Delta_2^2 / (2 n s^2) + tau d,
               (Delta_2^2 / (n s^2) + 2 Delta_1 tau / (sqrt(n) s) + tau^2 d) / 2,
               (Delta_2 / (sqrt(n) s) + tau sqrt(d))^2 / 2 ).

(The first term's ``tau d`` does not grow with alpha in the paper; it is charged as ``alpha tau d`` here, which is
larger for every alpha >= 1, so each term is a valid zCDP rho.) :func:`ddg_rho` charges this rho with n = t, the
worst case over the survivors (post-processing: further shares only add noise independent of the data). With n = 1
it is the central discrete Gaussian's Delta_2^2 / (2 s^2), equal to OpenDP's own map. tau is negligible once s >= 2
(tau < 1e-15 for any n); at s = 1 it is about 5e-4 per coordinate, which a large d multiplies: keep s >= 2 for
wide vectors. Skellam noise (Agarwal, Kairouz, Liu 2021), whose sums are exact, is not used: OpenDP has no Skellam
sampler, and noise is never drawn outside OpenDP.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medspace.privacy.dp.opendp_bridge import check_scale, discrete_gaussian
from medspace.privacy.errors import DPError
from medspace.privacy.vectors import integer_vector

MIN_NODE_SIGMA = 0.5  # the DDG bound's condition s >= 1/2
_VALUE_LIMIT = 1 << 62
_EXACT_VARIANCE_ABOVE = 4.0  # beyond this, s^2 - Var N_Z(0, s^2) < s^2 * e^-300: the variance is s^2 in float64


def discrete_gaussian_variance(s: float) -> float:
    """The variance of the discrete Gaussian N_Z(0, s^2) (P(x) proportional to exp(-x^2 / (2 s^2)), x integer):
    slightly below s^2 for s < 2, equal to it in float64 beyond."""
    s = check_scale(s, "s")
    if s >= _EXACT_VARIANCE_ABOVE:
        return s * s
    k = np.arange(1, math.ceil(40.0 * s) + 2, dtype=np.float64)  # terms beyond 40 s are below e^-800
    w = np.exp(-(k * k) / (2.0 * s * s))
    return float(2.0 * np.sum(k * k * w) / (1.0 + 2.0 * np.sum(w)))


def _check_nodes(n_nodes: int, min_nodes: int) -> None:
    for name, v in (("n_nodes", n_nodes), ("min_nodes", min_nodes)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise DPError(f"{name} must be an integer >= 1")
    if min_nodes > n_nodes:
        raise DPError("min_nodes (the contributions a sum completes with) cannot exceed n_nodes")


def node_sigma(sigma: float, min_nodes: int) -> float:
    """The discrete Gaussian parameter s each node uses so that any ``min_nodes`` shares sum to variance >= sigma^2:
    sigma / sqrt(t), raised until the discrete variance reaches sigma^2 / t, and at least 1/2."""
    sigma = check_scale(sigma)
    _check_nodes(min_nodes, min_nodes)
    target = sigma * sigma / min_nodes
    s = max(sigma / math.sqrt(min_nodes), MIN_NODE_SIGMA)
    for _ in range(200):
        var = discrete_gaussian_variance(s)
        if var >= target:
            return s
        s *= math.sqrt(target / var) * (1.0 + 1e-15)  # a few ulps past float rounding
    raise DPError("no node sigma reaches the target variance")  # unreachable: the deficit shrinks geometrically


def ddg_tau(s: float, n: int) -> float:
    """Kairouz-Liu-Steinke's tau = 10 * sum_{k=1}^{n-1} exp(-2 pi^2 s^2 k / (k+1)) for n summands of N_Z(0, s^2)."""
    s = check_scale(s, "s")
    k = np.arange(1, n, dtype=np.float64)
    return float(10.0 * np.sum(np.exp(-2.0 * math.pi**2 * s * s * k / (k + 1.0))))


def ddg_rho(s: float, n: int, *, l2: float, l1: float | None = None, dim: int = 1) -> float:
    """The zCDP rho of the sum of ``n`` independent N_Z(0, s^2) vectors of ``dim`` coordinates at L2 (and L1)
    sensitivity: Kairouz, Liu, Steinke 2021, Prop. 14 (module docstring), tau term included. ``l1=None`` takes
    the worst case l1 = l2 * sqrt(dim)."""
    s = check_scale(s, "s")
    if s < MIN_NODE_SIGMA:
        raise DPError("the distributed discrete Gaussian bound needs a node sigma >= 1/2")
    _check_nodes(n, 1)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise DPError("dim must be an integer >= 1")
    l2 = float(l2)
    l1 = l2 * math.sqrt(dim) if l1 is None else float(l1)
    if not (math.isfinite(l2) and l2 >= 0.0 and math.isfinite(l1) and l1 >= 0.0):
        raise DPError("sensitivities must be finite and >= 0")
    var = n * s * s
    tau = ddg_tau(s, n)
    if tau == 0.0:
        return l2 * l2 / (2.0 * var)
    return min(l2 * l2 / (2.0 * var) + tau * dim,
               (l2 * l2 / var + 2.0 * l1 * tau / math.sqrt(var) + tau * tau * dim) / 2.0,
               (l2 / math.sqrt(var) + tau * math.sqrt(dim)) ** 2 / 2.0)


def sigma_for_rho(rho: float, *, l2: float, l1: float | None = None, dim: int = 1, min_nodes: int = 1) -> float:
    """Calibration: the smallest sum-level sigma whose t-node plan (:func:`node_sigma`) is charged at most ``rho``
    by :func:`ddg_rho` (bisection to 1e-9 relative, always on the safe side)."""
    rho = float(rho)
    if not (math.isfinite(rho) and rho > 0.0):
        raise DPError("rho must be a positive finite number")
    if not (math.isfinite(float(l2)) and float(l2) > 0.0):
        raise DPError("l2 sensitivity must be a positive finite number")
    _check_nodes(min_nodes, min_nodes)

    def cost(sigma: float) -> float:
        return ddg_rho(node_sigma(sigma, min_nodes), min_nodes, l2=l2, l1=l1, dim=dim)

    floor = MIN_NODE_SIGMA * math.sqrt(min_nodes)  # below it every node draws with s = 1/2: the same cost
    if cost(floor) <= rho:
        return floor
    lo, hi = floor, max(float(l2) / math.sqrt(2.0 * rho), floor)  # the central sigma, where tau is 0
    while cost(hi) > rho:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:
            raise DPError("no sigma fits this rho")
    while hi - lo > 1e-9 * hi:
        mid = (lo + hi) / 2.0
        if cost(mid) <= rho:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass(frozen=True)
class NoisePlan:
    """The noise of one secure-aggregation round, the same at every node: ``sigma`` for the sum (integer units),
    ``n_nodes`` taking part, and ``min_nodes`` = t, the fewest contributions the sum may complete with."""

    sigma: float
    n_nodes: int
    min_nodes: int

    def __post_init__(self) -> None:
        check_scale(self.sigma)
        _check_nodes(self.n_nodes, self.min_nodes)

    @property
    def node_sigma(self) -> float:
        """Each node's discrete Gaussian parameter (:func:`node_sigma`)."""
        return node_sigma(self.sigma, self.min_nodes)

    def rho(self, *, l2: float, l1: float | None = None, dim: int = 1) -> float:
        """The zCDP rho this plan's sum costs at the given sensitivities (the distributed bound, n = t)."""
        return ddg_rho(self.node_sigma, self.min_nodes, l2=l2, l1=l1, dim=dim)

    def sum_variance(self, nodes: int | None = None) -> float:
        """The variance of the sum of ``nodes`` (default t) shares: at least sigma^2 for any nodes >= t."""
        k = self.min_nodes if nodes is None else nodes
        return k * discrete_gaussian_variance(self.node_sigma)

    def noise_bound(self, dim: int, failure: float = 2.0**-40) -> int:
        """An integer B with P(some |share noise| of ``dim`` coordinates > B) <= ``failure``: sub-Gaussian tails of
        N_Z(0, s^2) (Canonne, Kamath, Steinke 2020, Prop. 25), union bound. Size a round's Encoding with it."""
        if not 0.0 < failure < 1.0:
            raise DPError("failure must be in (0, 1)")
        s = self.node_sigma
        return math.ceil(s * math.sqrt(2.0 * math.log(2.0 * max(dim, 1) / failure)))


def add_noise_share(values: npt.ArrayLike, plan: NoisePlan, *, workers: int = 1) -> npt.NDArray[np.int64]:
    """One node's contribution plus its share of the noise: int64 in (counts or fixed-point codes), int64 out,
    each entry plus an independent N_Z(0, s^2) sample from OpenDP, s = ``plan.node_sigma``. ``workers`` > 1 splits
    the vector over threads (OpenDP's sampler runs outside the GIL)."""
    x = integer_vector(values, DPError, "noise shares are added to integer vectors; encode fixed-point values first")
    if x.size and (int(x.max()) >= _VALUE_LIMIT or int(x.min()) <= -_VALUE_LIMIT):
        # OpenDP saturates at the i64 limits; far below them the noisy sum stays exact
        raise DPError("a contribution's entries must stay within ±2^62 to take noise")
    x64: npt.NDArray[np.int64] = x.astype(np.int64, copy=False)
    s = plan.node_sigma
    if workers <= 1 or x64.size < 2 * workers:
        return discrete_gaussian(x64, s)
    parts = np.array_split(x64, workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        noisy = list(pool.map(lambda part: discrete_gaussian(part, s), parts))
    return np.concatenate(noisy)
