"""Mask generation: X25519 agreement, HKDF-SHA256 key derivation, and AES-256-CTR as the pseudo-random generator
that expands a 32-byte key into a mask over the whole ring Z_{2^64}.

Every key is 256 bits (Flower's SecAgg+ expands its masks from a 32-bit seed; ours must not be weaker than the
keys it comes from). A key is used for one mask of one round only: the HKDF ``info`` binds the purpose, the round id
and both names (sorted, so the two ends of a pair derive the same key), and the X25519 keys are fresh each round;
so the all-zero CTR nonce never meets the same key twice.
"""

from __future__ import annotations

import hashlib
import secrets
import struct

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medspace.privacy.errors import MessageError
from medspace.privacy.secagg.ring import U64Array

KEY_BYTES = 32
_DOMAIN = b"medspace secagg v1"
_ZERO_NONCE = bytes(16)

PAIRWISE = b"pairwise-mask"
SHARE_ENCRYPTION = b"share-encryption"


def lp(*parts: bytes | memoryview) -> bytes:
    """Length-prefixed concatenation (4-byte big-endian lengths): an unambiguous encoding of a tuple of byte
    strings, used for HKDF info, AEAD associated data, signed payloads and the wire form (one copy of each part)."""
    pieces: list[bytes | memoryview] = []
    for p in parts:
        pieces.append(struct.pack(">I", len(p) if isinstance(p, bytes) else p.nbytes))
        pieces.append(p)
    return b"".join(pieces)


def new_seed() -> bytes:
    """A fresh 32-byte secret from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


class MaskStream:
    """AES-256-CTR keystreams of one length, generated into one buffer reused from mask to mask (allocating and
    zeroing 8 MB per mask costs more than the AES itself). A keystream is valid until the next one."""

    def __init__(self, length: int) -> None:
        self.length = length
        self._zeros = bytes(8 * length)  # calloc'd: the zero pages cost little until read
        self._buffer = np.empty(8 * length + 15, dtype=np.uint8)  # update_into wants a block's room more
        self._view: U64Array = self._buffer[: 8 * length].view("<u8")

    def keystream(self, key: bytes) -> U64Array:
        """``length`` pseudo-random ring elements: the keystream of ``key`` as little-endian uint64."""
        if len(key) != KEY_BYTES:
            raise MessageError(f"a mask key must be {KEY_BYTES} bytes")
        encryptor = Cipher(algorithms.AES(key), modes.CTR(_ZERO_NONCE)).encryptor()
        encryptor.update_into(self._zeros, self._buffer.data)
        encryptor.finalize()  # CTR has no tail: finalize only closes the context
        return self._view


def expand(key: bytes, length: int) -> U64Array:
    """``length`` pseudo-random ring elements from ``key`` (a fresh array)."""
    return MaskStream(length).keystream(key)


def derive_key(shared_secret: bytes, purpose: bytes, round_id: str, a: str, b: str) -> bytes:
    """A 32-byte key from an X25519 shared secret, bound to the purpose, the round and the pair {a, b}."""
    lo, hi = sorted((a, b))
    info = lp(_DOMAIN, purpose, round_id.encode(), lo.encode(), hi.encode())
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(shared_secret)


def agree(private: X25519PrivateKey, peer_public: bytes, purpose: bytes, round_id: str, me: str, peer: str) -> bytes:
    """The key ``me`` and ``peer`` share for ``purpose`` in this round (X25519, then HKDF)."""
    try:
        public = X25519PublicKey.from_public_bytes(peer_public)
        shared = private.exchange(public)
    except ValueError:
        # a low-order point gives an all-zero secret, which cryptography refuses
        raise MessageError(f"the public key advertised by {peer} is not a usable X25519 key") from None
    return derive_key(shared, purpose, round_id, me, peer)


def add_pairwise_masks(y: U64Array, me: str, peer_keys: dict[str, bytes], stream: MaskStream | None = None) -> None:
    """Add to ``y`` (in place) +PRG(k) for every peer named after ``me`` and -PRG(k) for every peer before it, so
    that the pairwise masks of a set of nodes cancel in their sum."""
    stream = stream if stream is not None and stream.length == y.shape[0] else MaskStream(y.shape[0])
    for peer, key in peer_keys.items():
        mask = stream.keystream(key)
        if peer > me:
            y += mask
        else:
            y -= mask


def seed_commitment(round_id: str, name: str, seed: bytes) -> bytes:
    """SHA-256 commitment to a node's self-mask seed (the seed is 256 random bits, so it hides nothing useful)."""
    return hashlib.sha256(lp(_DOMAIN, b"seed-commitment", round_id.encode(), name.encode(), seed)).digest()


def new_x25519() -> X25519PrivateKey:
    """A fresh X25519 private key from ``secrets`` (any 32 bytes are a key: X25519 clamps them when used)."""
    return X25519PrivateKey.from_private_bytes(new_seed())
