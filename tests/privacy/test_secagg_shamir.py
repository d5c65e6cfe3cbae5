"""Shamir sharing of 32-byte secrets: any t shares reconstruct, fewer are refused, shares say nothing alone."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.privacy.errors import SecAggError
from medspace.privacy.secagg.shamir import Share, combine, split


@st.composite
def sharing(draw: st.DrawFn) -> tuple[bytes, int, int, list[int]]:
    """A secret, n, t in n//2+1..n, and a subset of at least t share indices in any order."""
    n = draw(st.integers(2, 12))
    t = draw(st.integers(n // 2 + 1, n))
    subset = draw(st.lists(st.integers(1, n), min_size=t, max_size=n, unique=True))
    return draw(st.binary(min_size=32, max_size=32)), n, t, subset


@settings(max_examples=80, deadline=None)
@given(sharing())
def test_any_threshold_of_shares_reconstructs(case: tuple[bytes, int, int, list[int]]) -> None:
    secret, n, t, subset = case
    shares = split(secret, t, n)
    assert [s.index for s in shares] == list(range(1, n + 1))
    assert combine([shares[i - 1] for i in subset], t) == secret


@settings(max_examples=40, deadline=None)
@given(sharing())
def test_fewer_than_threshold_shares_are_refused(case: tuple[bytes, int, int, list[int]]) -> None:
    secret, n, t, subset = case
    shares = split(secret, t, n)
    with pytest.raises(SecAggError, match=f"{t - 1} shares given, {t} needed"):
        combine([shares[i - 1] for i in subset[: t - 1]], t)


def test_shares_are_fresh_and_do_not_contain_the_secret() -> None:
    secret = secrets.token_bytes(32)
    a, b = split(secret, 3, 5), split(secret, 3, 5)
    assert all(x.value != y.value for x, y in zip(a, b, strict=True))  # new random polynomial each time
    assert all(secret[:16] not in s.value and secret[16:] not in s.value for s in a)


def test_too_few_shares_interpolate_to_something_else() -> None:
    # With t-1 shares forced into an interpolation, the result is not the secret (the polynomial has degree t-1).
    secret = secrets.token_bytes(32)
    shares = split(secret, 4, 6)
    assert combine(shares[:3], 3) != secret


def test_duplicate_indices_and_bad_sizes_are_refused() -> None:
    shares = split(secrets.token_bytes(32), 2, 3)
    with pytest.raises(SecAggError, match="two shares have index 1"):
        combine([shares[0], shares[0], shares[1]], 2)
    with pytest.raises(SecAggError, match="32 bytes"):
        split(b"short", 2, 3)
    with pytest.raises(SecAggError, match="32 bytes"):
        Share(1, b"x" * 16)
    with pytest.raises(SecAggError, match="threshold"):
        split(secrets.token_bytes(32), 4, 3)


def test_a_share_never_prints_its_value() -> None:
    share = split(secrets.token_bytes(32), 2, 3)[0]
    assert share.value.hex() not in repr(share)
    assert repr(share) == "Share(index=1, value=<32 bytes>)"
