"""The one place medspace talks to OpenDP: its discrete Gaussian sampler and its zCDP -> (epsilon, delta) conversion.

OpenDP gates its constructors behind features; they are enabled here, on import, for the whole process:

* ``contrib``: the measurements and combinators used (``make_gaussian``, ``make_zCDP_to_approxDP``).
* ``honest-but-curious``: :func:`epsilon_for_rho` states a query's rho through ``make_user_measurement`` (a
  measurement whose privacy map we supply), so that OpenDP's conversion can be applied to any rho the accountant
  holds; the map is ours, and the rho it states is the one charged (:mod:`medspace.privacy.dp.noise` derives it).

Noise is never drawn with numpy or ``random``: OpenDP samples the discrete Gaussian exactly (Canonne, Kamath,
Steinke 2020) from the operating system's CSPRNG.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import opendp.prelude as dp

from medspace.privacy.errors import DPError

dp.enable_features("contrib", "honest-but-curious")

I64 = "i64"
_I64_LIMIT = 1 << 63


@functools.lru_cache(maxsize=64)
def _vector_gaussian(scale: float) -> Any:
    """OpenDP's discrete Gaussian on i64 vectors with parameter ``scale`` (cached: building one costs a few ms)."""
    space = dp.vector_domain(dp.atom_domain(T=I64)), dp.l2_distance(T=I64)
    return dp.m.make_gaussian(*space, scale=scale)


def check_scale(scale: float, name: str = "sigma") -> float:
    """A noise scale as a float: finite and > 0, else DPError naming the parameter."""
    value = float(scale)
    if not (math.isfinite(value) and value > 0.0):
        raise DPError(f"{name} must be a positive finite number")
    return value


def discrete_gaussian(values: npt.NDArray[np.int64], scale: float) -> npt.NDArray[np.int64]:
    """``values`` plus independent discrete Gaussian noise N_Z(0, scale^2) per entry, sampled by OpenDP."""
    scale = check_scale(scale, "scale")
    x = np.asarray(values)
    if x.ndim != 1 or x.dtype != np.int64:
        raise DPError("noise is added to a 1-d int64 vector")
    if x.size == 0:
        return x.copy()
    try:
        out = _vector_gaussian(scale)(x.tolist())
    except dp.OpenDPException as e:  # e.g. a value so close to the i64 limit that the noise overflows it
        raise DPError(f"OpenDP's discrete Gaussian failed: {e.variant}") from e
    return np.asarray(out, dtype=np.int64)


def gaussian_rho(l2_sensitivity: int, scale: float) -> float:
    """OpenDP's own zCDP rho for one discrete Gaussian of parameter ``scale`` on i64 vectors at an integer L2
    sensitivity (the central, one-party case: l2^2 / (2 scale^2), rounded up by OpenDP)."""
    return float(_vector_gaussian(check_scale(scale, "scale")).map(int(l2_sensitivity)))


def _stated(rho: float) -> Any:
    """A measurement whose privacy map states ``rho`` (zCDP) at any input distance: a carrier for OpenDP's
    conversion and composition of rhos the accountant holds."""
    return dp.m.make_user_measurement(
        dp.atom_domain(T=I64), dp.absolute_distance(T=I64), dp.zero_concentrated_divergence(),
        function=lambda x: x, privacy_map=lambda d_in: rho)


def check_delta(delta: float) -> float:
    """A delta as a float in (0, 1), else DPError."""
    value = float(delta)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise DPError("delta must be in (0, 1)")
    return value


@functools.lru_cache(maxsize=4096)
def epsilon_for_rho(rho: float, delta: float) -> float:
    """The epsilon of rho-zCDP at ``delta``, by OpenDP's conversion (``make_zCDP_to_approxDP``, the tight bound of
    Canonne, Kamath, Steinke 2020, Prop. 12 / Asoodeh et al.), which is below rho + 2 sqrt(rho ln(1/delta))."""
    delta = check_delta(delta)
    rho = float(rho)
    if not (math.isfinite(rho) and rho >= 0.0):
        raise DPError("rho must be a finite number >= 0")
    if rho == 0.0:
        return 0.0
    try:
        profile = dp.c.make_zCDP_to_approxDP(_stated(rho)).map(1)
        return float(profile.epsilon(delta))
    except dp.OpenDPException as e:  # e.g. an overflow for an absurd rho: name it, no data involved
        raise DPError(f"OpenDP cannot convert rho={rho:.6g} at delta={delta:g}: {e.variant}") from e


@functools.lru_cache(maxsize=1024)
def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """The largest rho whose OpenDP conversion at ``delta`` gives at most ``epsilon`` (bisection to 1e-12 relative;
    the result always satisfies ``epsilon_for_rho(result, delta) <= epsilon``)."""
    delta = check_delta(delta)
    epsilon = float(epsilon)
    if not (math.isfinite(epsilon) and epsilon > 0.0):
        raise DPError("epsilon must be a positive finite number")
    # rho + 2 sqrt(rho L) <= eps holds at rho = (sqrt(L + eps) - sqrt(L))^2, L = ln(1/delta): that rho fits (the
    # classic bound is above OpenDP's); eps itself is too much (the conversion's epsilon is at least rho)
    log_term = math.log(1.0 / delta)
    lo = (math.sqrt(log_term + epsilon) - math.sqrt(log_term)) ** 2
    hi = epsilon
    if epsilon_for_rho(hi, delta) <= epsilon:
        return hi
    while hi - lo > 1e-12 * hi:
        mid = (lo + hi) / 2.0
        if mid in (lo, hi):
            break
        if epsilon_for_rho(mid, delta) <= epsilon:
            lo = mid
        else:
            hi = mid
    return lo


def composed_rho(rhos: list[float]) -> float:
    """OpenDP's basic composition of zCDP measurements of the given rhos (the sum, rounded up): the reference the
    accountant's exact sum is checked against."""
    if not rhos:
        return 0.0
    return float(dp.c.make_composition([_stated(float(r)) for r in rhos]).map(1))
