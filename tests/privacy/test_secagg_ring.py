"""Fixed-point encoding into Z_{2^64}: exact integers, floats to the grid's precision, bounds that forbid overflow."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from medspace.privacy.errors import BoundError, ConfigError
from medspace.privacy.secagg import Encoding, RoundConfig
from medspace.privacy.secagg.ring import ring_sum

FLOATS = Encoding.floats(frac_bits=24, bound=1000.0)
INTS = Encoding.integers(bound=10**12)


@settings(max_examples=60, deadline=None)
@given(st.lists(hnp.arrays(np.int64, 16, elements=st.integers(-(10**12), 10**12)), min_size=1, max_size=12))
def test_integer_sums_are_exact(vectors: list[np.ndarray]) -> None:
    total = INTS.decode(ring_sum([INTS.encode(v) for v in vectors]))
    assert total.dtype == np.int64
    assert np.array_equal(total, np.sum(vectors, axis=0))


@settings(max_examples=60, deadline=None)
@given(st.lists(hnp.arrays(np.float64, 16, elements=st.floats(-1000, 1000)), min_size=1, max_size=12))
def test_float_sums_are_within_the_grid_precision(vectors: list[np.ndarray]) -> None:
    total = FLOATS.decode(ring_sum([FLOATS.encode(v) for v in vectors]))
    assert total.dtype == np.float64
    # each value is rounded to within half a step of the grid
    tolerance = len(vectors) * FLOATS.precision / 2 + 1e-9
    assert np.max(np.abs(total - np.sum(vectors, axis=0))) <= tolerance


def test_negative_values_wrap_and_come_back() -> None:
    codes = FLOATS.encode(np.array([-1.5, 0.0, 2.25]))
    assert codes.dtype == np.uint64
    assert codes[0] == np.uint64(2**64 - int(1.5 * 2**24))
    assert FLOATS.decode(codes).tolist() == [-1.5, 0.0, 2.25]


def test_a_value_beyond_the_bound_is_refused_naming_the_bound() -> None:
    with pytest.raises(BoundError, match=r"2 values exceed the bound ±1000"):
        FLOATS.encode(np.array([1000.5, -2000.0, 3.0]))
    with pytest.raises(BoundError, match=r"exceed the bound ±1000000000000"):
        INTS.encode(np.array([10**12 + 1]))
    with pytest.raises(BoundError, match="not finite"):
        FLOATS.encode(np.array([np.nan, 1.0]))


def test_clipping_when_asked() -> None:
    enc = Encoding.floats(frac_bits=8, bound=4.0, clip=True)
    assert enc.decode(enc.encode(np.array([9.0, -9.0, 1.0]))).tolist() == [4.0, -4.0, 1.0]
    ints = Encoding.integers(bound=10, clip=True)
    assert ints.decode(ints.encode(np.array([11, -12, 3]))).tolist() == [10, -10, 3]


def test_integer_encoding_takes_integers_only() -> None:
    with pytest.raises(BoundError, match="integer vector"):
        INTS.encode(np.array([1.5]))
    assert INTS.decode(INTS.encode(np.array([True, False]))).tolist() == [1, 0]


def test_a_bound_that_lets_the_sum_overflow_is_refused() -> None:
    enc = Encoding.floats(frac_bits=40, bound=2.0**20)  # codes up to 2^60: eight of them overflow 2^63
    enc.check_sum(7)
    with pytest.raises(BoundError, match=r"bound 1048576 with 40 fractional bits lets the sum of 8 contributions"):
        enc.check_sum(8)
    with pytest.raises(BoundError, match="overflow"):
        RoundConfig("r1", [f"h{i}" for i in range(8)], 4, encoding=enc)
    with pytest.raises(BoundError, match="does not fit in the ring"):
        Encoding.floats(frac_bits=52, bound=2.0**12)


def test_the_largest_allowed_sum_does_not_overflow() -> None:
    n = 7
    enc = Encoding.integers(bound=(2**63 - 1) // n)
    enc.check_sum(n)
    top = np.full(3, int(enc.bound), dtype=np.int64)
    assert enc.decode(ring_sum([enc.encode(top)] * n)).tolist() == [n * int(enc.bound)] * 3
    assert enc.decode(ring_sum([enc.encode(-top)] * n)).tolist() == [-n * int(enc.bound)] * 3


def test_bad_encodings_are_refused() -> None:
    with pytest.raises(ConfigError, match="frac_bits"):
        Encoding.floats(frac_bits=60)
    with pytest.raises(ConfigError, match="bound"):
        Encoding.floats(bound=-1.0)
    with pytest.raises(ConfigError, match="no fractional bits"):
        Encoding("int", 3, 10.0)
