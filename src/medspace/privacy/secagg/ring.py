"""Fixed-point encoding of vectors into the ring Z_{2^64} (numpy uint64, whose arithmetic wraps modulo 2^64).

A float x becomes round(x * 2^f) as a two's-complement 64-bit integer (f fractional bits); an integer is taken as
it is. Sums are computed in the ring and read back as signed 64-bit integers, so a sum is exact as long as the
true (integer) sum of the codes lies in [-2^63, 2^63): :meth:`Encoding.check_sum` refuses a bound that lets n
contributions leave that range, and :meth:`Encoding.encode` refuses (or, with ``clip``, clips) a value beyond it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from medspace.privacy.errors import BoundError, ConfigError
from medspace.privacy.vectors import integer_vector

RING_BITS = 64
_SIGNED_LIMIT = 1 << 63  # sums are read as int64: |sum of codes| must stay below this
MAX_FRAC_BITS = 52  # beyond float64's mantissa, extra bits only encode rounding noise

Kind = Literal["float", "int"]
U64Array = npt.NDArray[np.uint64]


def _show(bound: float) -> str:
    return str(int(bound)) if bound.is_integer() else repr(bound)


@dataclass(frozen=True, slots=True)
class Encoding:
    """How a vector is put into the ring: floats with ``frac_bits`` fractional bits, or integers; every value
    must satisfy |x| <= ``bound`` (values beyond it are refused, or clipped to it when ``clip`` is set)."""

    kind: Kind = "float"
    frac_bits: int = 24
    bound: float = float(1 << 20)
    clip: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("float", "int"):
            raise ConfigError("an encoding's kind must be 'float' or 'int'")
        if self.kind == "int" and self.frac_bits != 0:
            raise ConfigError("an integer encoding has no fractional bits (frac_bits=0)")
        if not 0 <= self.frac_bits <= MAX_FRAC_BITS:
            raise ConfigError(f"frac_bits must be in 0..{MAX_FRAC_BITS}")
        if not (math.isfinite(self.bound) and self.bound > 0):
            raise ConfigError("an encoding's bound must be a positive finite number")
        if self.max_code >= _SIGNED_LIMIT:
            raise BoundError(f"the bound {_show(self.bound)} with {self.frac_bits} fractional bits does not fit in the "
                             "ring even for one contribution")

    @classmethod
    def floats(cls, frac_bits: int = 24, bound: float = float(1 << 20), *, clip: bool = False) -> Encoding:
        """Fixed-point floats: precision 2^-frac_bits, |x| <= bound."""
        return cls("float", frac_bits, float(bound), clip)

    @classmethod
    def integers(cls, bound: int = 1 << 40, *, clip: bool = False) -> Encoding:
        """Exact integers (counts) with |x| <= bound."""
        return cls("int", 0, float(int(bound)), clip)

    @property
    def scale(self) -> float:
        """2^frac_bits: the factor between a value and its code."""
        return float(1 << self.frac_bits)

    @property
    def max_code(self) -> int:
        """The largest |code| a value within the bound encodes to."""
        return math.floor(self.bound * (1 << self.frac_bits) + 0.5)

    @property
    def precision(self) -> float:
        """The step of the fixed-point grid (each value is rounded to within half of it)."""
        return 1.0 / self.scale

    def check_sum(self, n: int) -> None:
        """BoundError unless the sum of ``n`` contributions within the bound stays inside the signed ring."""
        if n * self.max_code >= _SIGNED_LIMIT:
            most = (_SIGNED_LIMIT - 1) // (n * (1 << self.frac_bits))
            raise BoundError(f"the bound {_show(self.bound)} with {self.frac_bits} fractional bits lets the sum of {n} "
                             f"contributions overflow the 64-bit ring (n * bound * 2^frac_bits must stay below 2^63; "
                             f"the bound can be at most {most} here)")

    def encode(self, values: npt.ArrayLike) -> U64Array:
        """The ring codes of a 1-d vector (float64 in, uint64 out); BoundError if a value is beyond the bound or
        not finite (the message counts them, never shows them)."""
        if self.kind == "int":
            return self._encode_int(values)
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 1:
            raise BoundError("a contribution must be a 1-d vector")
        within = np.abs(x) <= self.bound  # False for NaN too: one test for both rules on the common path
        if not within.all():
            bad = int(np.count_nonzero(~np.isfinite(x)))
            if bad:
                raise BoundError(f"{bad} values are not finite; a contribution must be finite and within "
                                 f"±{_show(self.bound)}")
            if not self.clip:
                raise BoundError(f"{int(np.count_nonzero(~within))} values exceed the bound ±{_show(self.bound)}")
            x = np.clip(x, -self.bound, self.bound)
        scaled = x * self.scale  # exact: a power of two
        np.rint(scaled, out=scaled)
        # |scaled| <= max_code < 2^63 (round half to even never passes floor(bound * 2^f + 0.5)), so the cast is exact
        codes = scaled.astype(np.int64)
        return codes.view(np.uint64)

    def _encode_int(self, values: npt.ArrayLike) -> U64Array:
        x = integer_vector(values, BoundError, "an integer encoding takes an integer vector")
        bound = int(self.bound)
        over = x > np.uint64(bound) if x.dtype.kind == "u" else (x > bound) | (x < -bound)
        if over.any():
            if not self.clip:
                raise BoundError(f"{int(np.count_nonzero(over))} values exceed the bound ±{bound}")
            x = np.clip(x, -bound if x.dtype.kind == "i" else 0, bound)
        return x.astype(np.int64).view(np.uint64)

    def decode(self, codes: U64Array) -> npt.NDArray[np.float64] | npt.NDArray[np.int64]:
        """A ring vector (e.g. a sum) back to values: int64 for integers, float64 for floats."""
        signed = np.asarray(codes, dtype=np.uint64).view(np.int64)
        if self.kind == "int":
            return signed.copy()
        out = signed.astype(np.float64)
        out *= self.precision  # a power of two: exact
        return out


def ring_sum(vectors: list[U64Array]) -> U64Array:
    """The sum of ring vectors modulo 2^64."""
    out = np.zeros_like(vectors[0], dtype=np.uint64)
    for v in vectors:
        out += v  # uint64 array arithmetic wraps modulo 2^64 without a warning
    return out
