"""The messages of a secure-aggregation round, their wire form (``to_bytes`` / ``from_bytes``) and their signatures.

Wire form: ``b"MSA1"``, one byte naming the message, then its fields, each with a 4-byte big-endian length.
Signed payloads are length-prefixed tuples that start with a label naming the message, so a signature made for
one kind of message never verifies as another. Signatures are ECDSA P-256 / SHA-256 with a node's certificate key
from the data space's CA; a peer's certificate is checked by a :class:`PeerVerifier` (the space,
:class:`medspace.policy.pki.Space`, is one: this layer does not import the policy layer, it takes any object with
its ``verify_peer``).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from medspace.privacy.errors import MessageError, SecAggError, SignatureError
from medspace.privacy.secagg.prg import KEY_BYTES, lp
from medspace.privacy.secagg.ring import U64Array
from medspace.privacy.secagg.shamir import SECRET_BYTES
from medspace.private_files import PrivateFileError, read_private_file

MAGIC = b"MSA1"
_ADVERT, _SHARES, _INPUT, _REQUEST, _REVEAL = b"A", b"S", b"I", b"U", b"R"
_MAX_KEY_PEM = 64 * 1024


# --- identities -------------------------------------------------------------------------------------------------------


class PeerIdentity(Protocol):
    """What a verified certificate names (medspace.policy.pki.Identity is one)."""

    @property
    def name(self) -> str:
        """The participant's name."""
        ...


class PeerVerifier(Protocol):
    """Checks that a certificate (DER) was issued by the data space's CA, is valid and unrevoked, and says whom it
    names; raises otherwise (medspace.policy.pki.Space is one)."""

    def verify_peer(self, cert_der: bytes, *, roles: Sequence[str] | None = None) -> PeerIdentity:
        """The identity a certificate names, or an exception saying why it is refused."""
        ...


@dataclass(frozen=True, slots=True)
class NodeKey:
    """A node's signing key (ECDSA P-256) and its certificate (DER) from the space's CA."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate: bytes = field(repr=False)

    @classmethod
    def load(cls, key_path: Path, cert_path: Path) -> NodeKey:
        """Read a participant's key.pem (refused if others can read it) and cert.pem from a space directory."""
        try:
            data = read_private_file(Path(key_path), "the node's key", _MAX_KEY_PEM)
        except PrivateFileError as e:
            raise SecAggError(str(e)) from None
        try:
            key = serialization.load_pem_private_key(data, None)
            cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        except (ValueError, TypeError, OSError):
            raise SecAggError("the node's key or certificate is not readable PEM") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise SecAggError("the node's key is not an ECDSA key")
        return cls(key, cert.public_bytes(serialization.Encoding.DER))

    def sign(self, payload: bytes) -> bytes:
        """An ECDSA-SHA256 signature of ``payload``."""
        return self.private_key.sign(payload, ec.ECDSA(hashes.SHA256()))


def certified_key(verifier: PeerVerifier, cert_der: bytes, name: str) -> ec.EllipticCurvePublicKey:
    """The public key of ``name``'s certificate if the space's CA issued it to node ``name``; else SignatureError
    with the reason."""
    try:
        ident = verifier.verify_peer(cert_der, roles=("node",))
    except Exception as e:  # the verifier belongs to an upper layer whose error types this one cannot import
        reason = getattr(e, "reason", None) or type(e).__name__
        raise SignatureError(f"the certificate presented for {name} is refused: {reason}") from None
    if ident.name != name:
        raise SignatureError(f"the certificate presented for {name} names another node ({ident.name})")
    key = x509.load_der_x509_certificate(cert_der).public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError(f"the certificate presented for {name} has no ECDSA key")
    return key


def check_signature(key: ec.EllipticCurvePublicKey, signature: bytes, payload: bytes, what: str) -> None:
    """SignatureError naming ``what`` unless ``signature`` is the key's signature of ``payload``."""
    try:
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise SignatureError(f"the signature of {what} does not verify") from None


# --- the wire form ----------------------------------------------------------------------------------------------------


def _pack(kind: bytes, *fields: bytes | memoryview) -> bytes:
    return MAGIC + kind + lp(*fields)


def _unlp(data: bytes | memoryview, what: str) -> list[memoryview]:
    """The fields of a length-prefixed tuple, as views into ``data`` (a masked vector is not copied)."""
    view = memoryview(data).cast("B")
    out: list[memoryview] = []
    pos = 0
    while pos < len(view):
        if pos + 4 > len(view):
            raise MessageError(f"{what} is truncated")
        (n,) = struct.unpack_from(">I", view, pos)
        pos += 4
        if pos + n > len(view):
            raise MessageError(f"{what} is truncated")
        out.append(view[pos:pos + n])
        pos += n
    return out


def _unpack(data: bytes, kind: bytes, count: int, what: str) -> list[memoryview]:
    if bytes(data[:4]) != MAGIC or bytes(data[4:5]) != kind:
        raise MessageError(f"not {what} (bad magic or kind)")
    fields = _unlp(memoryview(data)[5:], what)
    if len(fields) != count:
        raise MessageError(f"{what} has {len(fields)} fields, {count} expected")
    return fields


def _text(b: memoryview, what: str) -> str:
    try:
        return bytes(b).decode("utf-8")
    except UnicodeDecodeError:
        raise MessageError(f"{what} is not UTF-8") from None


def _names(b: memoryview, what: str) -> tuple[str, ...]:
    return tuple(_text(x, what) for x in _unlp(b, what))


def _sized(b: memoryview, size: int, what: str) -> bytes:
    if len(b) != size:
        raise MessageError(f"{what} must be {size} bytes")
    return bytes(b)


# --- messages -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyAdvert:
    """Phase 1, node to all: the node's fresh X25519 public keys for this round (one for pairwise masks, one for
    encrypting shares) and a commitment to its self-mask seed, signed with its certificate key."""

    round_id: str
    name: str
    mask_key: bytes
    share_key: bytes
    seed_commitment: bytes
    certificate: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    def payload(self) -> bytes:
        """What the signature covers."""
        return lp(b"secagg advert", self.round_id.encode(), self.name.encode(), self.mask_key, self.share_key,
                  self.seed_commitment)

    def to_bytes(self) -> bytes:
        """The wire form."""
        return _pack(_ADVERT, self.round_id.encode(), self.name.encode(), self.mask_key, self.share_key,
                     self.seed_commitment, self.certificate, self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyAdvert:
        """Parse the wire form (the signature is checked by whoever receives it)."""
        f = _unpack(data, _ADVERT, 7, "a key advert")
        return cls(_text(f[0], "round id"), _text(f[1], "name"), _sized(f[2], KEY_BYTES, "a mask key"),
                   _sized(f[3], KEY_BYTES, "a share key"), _sized(f[4], 32, "a seed commitment"), bytes(f[5]),
                   bytes(f[6]))


@dataclass(frozen=True, slots=True)
class EncryptedShare:
    """Phase 2, node to node through the relay: the sender's shares of its seed and mask key for one recipient,
    AES-256-GCM encrypted (``ciphertext`` = 12-byte nonce + sealed box) under a key the two derive from their
    share keys; the associated data binds the round, the sender and the recipient."""

    round_id: str
    sender: str
    recipient: str
    ciphertext: bytes = field(repr=False)

    def aad(self) -> bytes:
        """The AEAD associated data."""
        return lp(b"secagg share", self.round_id.encode(), self.sender.encode(), self.recipient.encode())

    def to_bytes(self) -> bytes:
        """The wire form."""
        return _pack(_SHARES, self.round_id.encode(), self.sender.encode(), self.recipient.encode(), self.ciphertext)

    @classmethod
    def from_bytes(cls, data: bytes) -> EncryptedShare:
        """Parse the wire form."""
        f = _unpack(data, _SHARES, 4, "an encrypted share")
        return cls(_text(f[0], "round id"), _text(f[1], "sender"), _text(f[2], "recipient"), bytes(f[3]))


def _vector_bytes(vector: U64Array) -> memoryview:
    return np.ascontiguousarray(vector, dtype="<u8").data.cast("B")


def vector_digest(vector: U64Array) -> bytes:
    """SHA-256 of a ring vector's little-endian bytes (pyca's, which uses the CPU's SHA extensions)."""
    h = hashes.Hash(hashes.SHA256())
    h.update(_vector_bytes(vector))
    return h.finalize()


@dataclass(frozen=True, slots=True)
class MaskedInput:
    """Phase 3, node to server: the node's masked vector, signed over the round, its name and the vector's hash."""

    round_id: str
    name: str
    vector: U64Array = field(repr=False)
    signature: bytes = field(repr=False)

    @staticmethod
    def signed_payload(round_id: str, name: str, digest: bytes) -> bytes:
        """What the signature covers, given the vector's SHA-256."""
        return lp(b"secagg masked input", round_id.encode(), name.encode(), digest)

    def payload(self) -> bytes:
        """What the signature covers."""
        return self.signed_payload(self.round_id, self.name, vector_digest(self.vector))

    def to_bytes(self) -> bytes:
        """The wire form (the vector as little-endian uint64)."""
        return _pack(_INPUT, self.round_id.encode(), self.name.encode(), _vector_bytes(self.vector), self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> MaskedInput:
        """Parse the wire form."""
        f = _unpack(data, _INPUT, 4, "a masked input")
        if len(f[2]) % 8:
            raise MessageError("a masked vector's length must be a multiple of 8 bytes")
        return cls(_text(f[0], "round id"), _text(f[1], "name"), np.frombuffer(f[2], dtype="<u8"), bytes(f[3]))


@dataclass(frozen=True, slots=True)
class UnmaskRequest:
    """Phase 4, server to survivors: who sent a masked input (reveal their seeds' shares) and who dropped after
    sharing (reveal their mask keys' shares)."""

    round_id: str
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]

    def to_bytes(self) -> bytes:
        """The wire form."""
        return _pack(_REQUEST, self.round_id.encode(), lp(*(s.encode() for s in self.survivors)),
                     lp(*(d.encode() for d in self.dropped)))

    @classmethod
    def from_bytes(cls, data: bytes) -> UnmaskRequest:
        """Parse the wire form."""
        f = _unpack(data, _REQUEST, 3, "an unmask request")
        return cls(_text(f[0], "round id"), _names(f[1], "survivors"), _names(f[2], "dropped"))


def _share_map(entries: Mapping[str, bytes]) -> bytes:
    return lp(*(p for k in sorted(entries) for p in (k.encode(), entries[k])))


def _read_share_map(b: memoryview, what: str) -> dict[str, bytes]:
    parts = _unlp(b, what)
    if len(parts) % 2:
        raise MessageError(f"{what} is malformed")
    out: dict[str, bytes] = {}
    for k, v in zip(parts[::2], parts[1::2], strict=True):
        name = _text(k, what)
        if name in out:
            raise MessageError(f"{what} names {name} twice")
        out[name] = _sized(v, SECRET_BYTES, f"a share in {what}")
    return out


@dataclass(frozen=True, slots=True)
class Reveal:
    """Phase 4, survivor to server: its shares of each survivor's self-mask seed and of each dropped node's mask
    key (never both for one node), signed."""

    round_id: str
    name: str
    seed_shares: Mapping[str, bytes] = field(repr=False)
    key_shares: Mapping[str, bytes] = field(repr=False)
    signature: bytes = field(repr=False)

    def payload(self) -> bytes:
        """What the signature covers."""
        return lp(b"secagg reveal", self.round_id.encode(), self.name.encode(), _share_map(self.seed_shares),
                  _share_map(self.key_shares))

    def to_bytes(self) -> bytes:
        """The wire form."""
        return _pack(_REVEAL, self.round_id.encode(), self.name.encode(), _share_map(self.seed_shares),
                     _share_map(self.key_shares), self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> Reveal:
        """Parse the wire form."""
        f = _unpack(data, _REVEAL, 5, "a reveal")
        return cls(_text(f[0], "round id"), _text(f[1], "name"), _read_share_map(f[2], "seed shares"),
                   _read_share_map(f[3], "key shares"), bytes(f[4]))
