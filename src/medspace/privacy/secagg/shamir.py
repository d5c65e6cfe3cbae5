"""Shamir secret sharing of 32-byte secrets (self-mask seeds and X25519 private keys), t of n.

Built on PyCryptodome's ``Crypto.Protocol.SecretSharing.Shamir`` (a maintained implementation over GF(2^128)),
which shares 16-byte secrets: a 32-byte secret is shared as two independent halves, and a share carries both
halves' values at the same index. Share indices are 1..n (a participant's position in the round's sorted list,
plus one). Shares carry no integrity of their own: the protocol checks a reconstructed secret against the
sender's signed advert (its public key, or its seed's commitment).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from Crypto.Protocol.SecretSharing import Shamir

from medspace.privacy.errors import SecAggError

SECRET_BYTES = 32
_HALF = 16
MAX_SHARES = 255  # indices fit one byte on the wire; far more than any round's participants


@dataclass(frozen=True, slots=True)
class Share:
    """One share of a 32-byte secret: its index (1..n) and 32 bytes (the two halves' shares)."""

    index: int
    value: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.index <= MAX_SHARES:
            raise SecAggError(f"a share's index must be in 1..{MAX_SHARES}")
        if len(self.value) != SECRET_BYTES:
            raise SecAggError(f"a share must be {SECRET_BYTES} bytes")

    def __repr__(self) -> str:
        return f"Share(index={self.index}, value=<{SECRET_BYTES} bytes>)"  # never print share material


def split(secret: bytes, threshold: int, count: int) -> list[Share]:
    """``count`` shares of ``secret`` (32 bytes), any ``threshold`` of which reconstruct it; share i has index i."""
    if len(secret) != SECRET_BYTES:
        raise SecAggError(f"a shared secret must be {SECRET_BYTES} bytes")
    if not 1 <= threshold <= count <= MAX_SHARES:
        raise SecAggError(f"shares need 1 <= threshold <= count <= {MAX_SHARES}")
    lo = Shamir.split(threshold, count, secret[:_HALF])
    hi = Shamir.split(threshold, count, secret[_HALF:])
    return [Share(i, a + b) for (i, a), (j, b) in zip(lo, hi, strict=True) if i == j]


def combine(shares: Sequence[Share], threshold: int) -> bytes:
    """The secret from ``threshold`` or more shares with distinct indices (the first ``threshold`` by index are
    used: PyCryptodome interpolates a polynomial of degree one less than the number of shares it is given)."""
    by_index: dict[int, Share] = {}
    for s in shares:
        if s.index in by_index:
            raise SecAggError(f"two shares have index {s.index}")
        by_index[s.index] = s
    if len(by_index) < threshold:
        raise SecAggError(f"{len(by_index)} shares given, {threshold} needed to reconstruct")
    chosen = [by_index[i] for i in sorted(by_index)[:threshold]]
    lo = Shamir.combine([(s.index, s.value[:_HALF]) for s in chosen])
    hi = Shamir.combine([(s.index, s.value[_HALF:]) for s in chosen])
    return lo + hi
