"""C2SP signed notes, tlog checkpoints and cosignature/v1, with Ed25519 keys.

- A *checkpoint* (https://c2sp.org/tlog-checkpoint) is the note text ``origin\\nsize\\nbase64(root)\\n`` plus
  optional extension lines.
- A *signed note* (https://c2sp.org/signed-note) is that text, a blank line, then signature lines
  ``— <key name> base64(key ID || signature)``. Ed25519 note keys have signature type 0x01; key ID =
  SHA-256(name || 0x0A || type || public key)[:4], big-endian.
- A *cosignature* (https://c2sp.org/tlog-cosignature, cosignature/v1) is a note signature of type 0x04 whose
  signature is ``8-byte big-endian timestamp || Ed25519 signature`` over
  ``"cosignature/v1\\ntime <t>\\n" + checkpoint text``.

Key strings follow golang.org/x/mod/sumdb/note: a verifier key (vkey) is ``<name>+<8 hex key ID>+base64(type ||
public key)``; a signer key (skey) is ``PRIVATE+KEY+<name>+<8 hex key ID>+base64(type || 32-byte seed)``.
Signer objects never show their private key in ``repr`` or in an error message.

Verification follows the Go reference's ``note.Open``: signatures from unknown keys (name *and* key ID must
both match) are ignored, a known key whose signature fails rejects the whole note, duplicates are dropped, more
than :data:`MAX_SIGNATURES` signatures make the note malformed, and at least one known signature must verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medspace.ledger.errors import CheckpointError
from medspace.private_files import shared_with_others

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
# The signed-note spec requires accepting at least 16; Go's note.Open refuses more than 100.
MAX_SIGNATURES = 100
# Sizes are stored in SQLite INTEGER columns (int64), so larger trees cannot be represented.
MAX_TREE_SIZE = 2**63 - 1
HASH_SIZE = 32
EM_DASH = "\u2014"
SIG_PREFIX = EM_DASH + " "
COSIGNATURE_HEADER = "cosignature/v1\n"
_TIMESTAMP_SIZE = 8
_ED25519_SIG_SIZE = 64

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
# ASCII controls other than newline: signed notes must not contain them.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw
_RAW_PRIV = serialization.PrivateFormat.Raw
_NO_ENC = serialization.NoEncryption()


# --- encoding helpers -----------------------------------------------------------------------------------------------


def b64decode_strict(text: str, what: str) -> bytes:
    """Standard base64 (RFC 4648 §4) with padding, in its one canonical spelling; CheckpointError otherwise."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise CheckpointError(f"{what} is not valid base64") from None
    # Re-encoding rejects non-canonical spellings (stray pad bits), so one value has exactly one text form.
    if base64.b64encode(raw).decode("ascii") != text:
        raise CheckpointError(f"{what} is not canonical base64")
    return raw


def b64encode(raw: bytes) -> str:
    """Standard base64 with padding, as text."""
    return base64.b64encode(raw).decode("ascii")


def is_valid_key_name(name: str) -> bool:
    """A note key name: non-empty, valid UTF-8, no Unicode space, no '+' (signed-note §Format)."""
    if not name or "+" in name or _CONTROL.search(name):
        return False
    if any(c.isspace() for c in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def key_id(name: str, alg: int, public_key: bytes) -> int:
    """Key ID = first four bytes, big-endian, of SHA-256(name || 0x0A || alg || public key)."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _check_note_text(text: str) -> bytes:
    """The UTF-8 bytes of a note text, after the signed-note rules for a text (ends in newline, no controls)."""
    if not text or not text.endswith("\n"):
        raise CheckpointError("malformed note: text must be non-empty and end with a newline")
    if _CONTROL.search(text):
        raise CheckpointError("malformed note: control character in text")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise CheckpointError("malformed note: text is not valid UTF-8") from None


# --- checkpoints ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint body: origin, tree size, RFC 6962 root hash and opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or _CONTROL.search(self.origin):
            raise CheckpointError("checkpoint origin must be a non-empty line without control characters")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError("checkpoint size must be an integer in [0, 2^63-1]")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root hash must be {HASH_SIZE} bytes")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for ext in self.extensions:
            if not ext or "\n" in ext or _CONTROL.search(ext):
                raise CheckpointError("checkpoint extension lines must be non-empty lines without control characters")

    def to_text(self) -> str:
        """The exact note text: origin, decimal size, base64 root, extension lines, each ending in a newline."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly (CheckpointError with the reason)."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise CheckpointError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint text needs at least three lines (origin, size, root hash)")
        origin, size_line, root_line, *extensions = lines
        if not origin:
            raise CheckpointError("checkpoint origin line is empty")
        if not _DECIMAL.fullmatch(size_line):
            raise CheckpointError("checkpoint size line is not a decimal number without leading zeros")
        size = int(size_line)
        if size > MAX_TREE_SIZE:
            raise CheckpointError("checkpoint size exceeds 2^63-1")
        root_hash = b64decode_strict(root_line, "checkpoint root hash")
        if len(root_hash) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root hash is not {HASH_SIZE} bytes")
        if any(not ext for ext in extensions):
            raise CheckpointError("checkpoint extension lines must be non-empty")
        return cls(origin, size, root_hash, tuple(extensions))

    def sign(self, signers: Sequence[NoteSigner]) -> str:
        """This checkpoint as a signed note."""
        return sign_note(self.to_text(), signers)


# --- keys: signers and verifiers ------------------------------------------------------------------------------------


class NoteVerifier:
    """Verifies Ed25519 note signatures (type 0x01) of one named key."""

    alg = ALG_ED25519

    def __init__(self, name: str, public_key: Ed25519PublicKey | bytes) -> None:
        if not is_valid_key_name(name):
            raise CheckpointError("invalid key name (empty, or contains a space or '+')")
        if isinstance(public_key, bytes):
            if len(public_key) != 32:
                raise CheckpointError("an Ed25519 public key is 32 bytes")
            public_key = Ed25519PublicKey.from_public_bytes(public_key)
        self.name = name
        self._public = public_key
        self.public_bytes = public_key.public_bytes(_RAW, _RAW_PUB)
        self.key_id = key_id(name, self.alg, self.public_bytes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoteVerifier) and (self.name, self.alg, self.public_bytes) == (
            other.name,
            other.alg,
            other.public_bytes,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.alg, self.public_bytes))

    def vkey(self) -> str:
        """The verifier key string ``name+keyid+base64(type || public key)``."""
        return f"{self.name}+{self.key_id:08x}+{b64encode(bytes([self.alg]) + self.public_bytes)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (without the key ID) is this key's signature over the note text ``message``."""
        if len(signature) != _ED25519_SIG_SIZE:
            return False
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key string of this class's signature type (CheckpointError if malformed)."""
        name, kid, alg, public = _parse_vkey(vkey)
        return cls._from_parts(name, kid, alg, public)

    @classmethod
    def _from_parts(cls, name: str, kid: int, alg: int, public: bytes) -> NoteVerifier:
        if alg != cls.alg or len(public) != 32:
            raise CheckpointError("malformed verifier key: wrong signature type or key length")
        verifier = cls(name, public)
        if verifier.key_id != kid:
            raise CheckpointError("malformed verifier key: key ID does not match the key")
        return verifier


class CosignatureVerifier(NoteVerifier):
    """Verifies timestamped Ed25519 cosignatures (cosignature/v1, type 0x04) of one witness key."""

    alg = ALG_COSIGNATURE_V1

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (timestamp || Ed25519 signature) cosigns the checkpoint text ``message``."""
        if len(signature) != _TIMESTAMP_SIZE + _ED25519_SIG_SIZE:
            return False
        (timestamp,) = struct.unpack(">Q", signature[:_TIMESTAMP_SIZE])
        if timestamp > 2**63 - 1:
            return False
        try:
            self._public.verify(signature[_TIMESTAMP_SIZE:], cosignature_message(timestamp, message))
        except InvalidSignature:
            return False
        return True

    @classmethod
    def _from_parts(cls, name: str, kid: int, alg: int, public: bytes) -> NoteVerifier:
        # A plain Ed25519 vkey (0x01) names the same key; like transparency-dev/formats, it is accepted and
        # re-identified with the cosignature type, so its key ID changes.
        if alg == ALG_ED25519 and len(public) == 32 and key_id(name, ALG_ED25519, public) == kid:
            return cls(name, public)
        return super()._from_parts(name, kid, alg, public)


class NoteSigner:
    """Signs note texts with an Ed25519 key (type 0x01). ``repr`` and errors never show the private key."""

    alg = ALG_ED25519
    verifier_class: type[NoteVerifier] = NoteVerifier

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not is_valid_key_name(name):
            raise CheckpointError("invalid key name (empty, or contains a space or '+')")
        self.name = name
        self._private = private_key
        self.public_bytes = private_key.public_key().public_bytes(_RAW, _RAW_PUB)
        self.key_id = key_id(name, self.alg, self.public_bytes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, key_id={self.key_id:08x})"

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """A new signer with a fresh key from the OS's CSPRNG."""
        return cls(name, Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        """The signature bytes (without the key ID) over the note text ``message``."""
        return self._private.sign(message)

    def verifier(self) -> NoteVerifier:
        """The matching verifier."""
        return self.verifier_class(self.name, self.public_bytes)

    def vkey(self) -> str:
        """The public verifier key string."""
        return self.verifier().vkey()

    def skey(self) -> str:
        """The private signer key string ``PRIVATE+KEY+name+keyid+base64(type || seed)``: keep it secret."""
        seed = self._private.private_bytes(_RAW, _RAW_PRIV, _NO_ENC)
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64encode(bytes([self.alg]) + seed)}"

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse a signer key string of this class's type; the key ID must match (errors never echo the key)."""
        name, kid, alg, seed = _parse_skey(skey)
        return cls._from_parts(name, kid, alg, seed)

    @classmethod
    def _from_parts(cls, name: str, kid: int, alg: int, seed: bytes) -> NoteSigner:
        if alg != cls.alg or len(seed) != 32:
            raise CheckpointError("malformed signer key: wrong signature type or seed length")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        if signer.key_id != kid:
            raise CheckpointError("malformed signer key: key ID does not match the key")
        return signer


class CosignatureSigner(NoteSigner):
    """Witness cosigner: cosignature/v1 (type 0x04), timestamped with ``clock()`` in whole POSIX seconds."""

    alg = ALG_COSIGNATURE_V1
    verifier_class = CosignatureVerifier

    def __init__(self, name: str, private_key: Ed25519PrivateKey, clock: Callable[[], float] = time.time) -> None:
        super().__init__(name, private_key)
        self.clock = clock

    @classmethod
    def generate(cls, name: str) -> CosignatureSigner:
        """A new cosigner with a fresh key from the OS's CSPRNG."""
        return cls(name, Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        """``timestamp || Ed25519 signature`` over ``cosignature/v1\\ntime <t>\\n`` + the checkpoint text."""
        return self.sign_at(int(self.clock()), message)

    def sign_at(self, timestamp: int, message: bytes) -> bytes:
        """A cosignature with an explicit timestamp (POSIX seconds)."""
        if not 0 <= timestamp <= 2**63 - 1:
            raise CheckpointError("cosignature timestamp out of range")
        Checkpoint.from_text(message.decode("utf-8"))
        return struct.pack(">Q", timestamp) + self._private.sign(cosignature_message(timestamp, message))

    @classmethod
    def _from_parts(cls, name: str, kid: int, alg: int, seed: bytes) -> NoteSigner:
        # A plain Ed25519 signer key (0x01) is the same key material; transparency-dev/formats accepts it too.
        if alg == ALG_ED25519 and len(seed) == 32:
            private = Ed25519PrivateKey.from_private_bytes(seed)
            public = private.public_key().public_bytes(_RAW, _RAW_PUB)
            if key_id(name, ALG_ED25519, public) != kid:
                raise CheckpointError("malformed signer key: key ID does not match the key")
            return cls(name, private)
        return super()._from_parts(name, kid, alg, seed)


# The names the ledger layout uses.
Signer = NoteSigner
Verifier = NoteVerifier


def cosignature_message(timestamp: int, checkpoint_text: bytes) -> bytes:
    """The cosignature/v1 signed message: header line, ``time <t>`` line, then the whole checkpoint text."""
    return f"{COSIGNATURE_HEADER}time {timestamp}\n".encode("ascii") + checkpoint_text


def cosignature_timestamp(signature: bytes) -> int:
    """The timestamp of a cosignature/v1 signature (the bytes after the key ID)."""
    if len(signature) != _TIMESTAMP_SIZE + _ED25519_SIG_SIZE:
        raise CheckpointError("not a cosignature/v1 signature (wrong length)")
    return int(struct.unpack(">Q", signature[:_TIMESTAMP_SIZE])[0])


def _parse_vkey(vkey: str) -> tuple[str, int, int, bytes]:
    parts = vkey.split("+", 2) if isinstance(vkey, str) else []
    if len(parts) != 3 or not is_valid_key_name(parts[0]) or not _HEX8.fullmatch(parts[1]):
        raise CheckpointError("malformed verifier key: expected name+keyid+base64")
    raw = b64decode_strict(parts[2], "verifier key material")
    if len(raw) < 2:
        raise CheckpointError("malformed verifier key: no key material")
    return parts[0], int(parts[1], 16), raw[0], raw[1:]


def _parse_skey(skey: str) -> tuple[str, int, int, bytes]:
    parts = skey.split("+", 4) if isinstance(skey, str) else []
    if (
        len(parts) != 5
        or parts[0] != "PRIVATE"
        or parts[1] != "KEY"
        or not is_valid_key_name(parts[2])
        or not _HEX8.fullmatch(parts[3])
    ):
        raise CheckpointError("malformed signer key: expected PRIVATE+KEY+name+keyid+base64")
    try:
        raw = b64decode_strict(parts[4], "signer key material")
    except CheckpointError:
        raise CheckpointError("malformed signer key: key material is not canonical base64") from None
    if len(raw) < 2:
        raise CheckpointError("malformed signer key: no key material")
    return parts[2], int(parts[3], 16), raw[0], raw[1:]


def verifier_from_vkey(vkey: str) -> NoteVerifier:
    """A verifier for a vkey of type 0x01 (NoteVerifier) or 0x04 (CosignatureVerifier)."""
    name, kid, alg, public = _parse_vkey(vkey)
    if alg == ALG_COSIGNATURE_V1:
        return CosignatureVerifier._from_parts(name, kid, alg, public)
    return NoteVerifier._from_parts(name, kid, alg, public)


def signer_from_skey(skey: str) -> NoteSigner:
    """A signer for an skey of type 0x01 (NoteSigner) or 0x04 (CosignatureSigner)."""
    name, kid, alg, seed = _parse_skey(skey)
    if alg == ALG_COSIGNATURE_V1:
        return CosignatureSigner._from_parts(name, kid, alg, seed)
    return NoteSigner._from_parts(name, kid, alg, seed)


def generate_key(name: str, *, cosigner: bool = False) -> tuple[str, str]:
    """A fresh key pair as ``(skey, vkey)`` strings: a log key (0x01) or, with ``cosigner``, a witness key (0x04)."""
    signer: NoteSigner = CosignatureSigner.generate(name) if cosigner else NoteSigner.generate(name)
    return signer.skey(), signer.vkey()


# --- key files ------------------------------------------------------------------------------------------------------


def write_private_key(path: str | os.PathLike[str], skey: str, *, overwrite: bool = False) -> Path:
    """Write a signer key to a file only its owner can read or write (0600); refuses to overwrite by default."""
    signer_from_skey(skey)
    p = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(p, flags, 0o600)
    except FileExistsError:
        raise CheckpointError(f"key file {p} exists; refusing to overwrite it") from None
    try:
        # The mode given to open() is masked by the umask and ignored for an existing file: set it explicitly.
        os.fchmod(fd, 0o600)
        os.write(fd, (skey + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return p


def read_private_key(path: str | os.PathLike[str], *, cosigner: bool = False) -> NoteSigner:
    """Load a signer from a private key file (refused if group or others may read it, like ssh); with
    ``cosigner``, as a cosignature/v1 signer (an Ed25519 skey of type 0x01 is accepted and re-typed)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckpointError(f"cannot read key file {p}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"key file {p} is not a key (not UTF-8 text)") from None
    if shared_with_others(mode):
        raise CheckpointError(f"private key file {p} is accessible by group or others; chmod 600 it")
    if cosigner:
        return CosignatureSigner.from_skey(text.strip())
    return signer_from_skey(text.strip())


def write_public_key(path: str | os.PathLike[str], vkey: str) -> Path:
    """Write a verifier key to a file (world-readable: it is public)."""
    verifier_from_vkey(vkey)
    p = Path(path)
    p.write_text(vkey + "\n", encoding="utf-8")
    return p


def load_verifier(vkey_or_path: str | os.PathLike[str]) -> NoteVerifier:
    """A verifier from a vkey string, or from a file holding one."""
    text = os.fspath(vkey_or_path)
    if "+" not in text or Path(text).is_file():
        try:
            text = Path(text).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CheckpointError(f"cannot read the key file {text}: {exc.strerror or type(exc).__name__}") from None
        except UnicodeDecodeError:
            raise CheckpointError("the verifier key file is not a key (not UTF-8 text)") from None
    return verifier_from_vkey(text)


def generate_key_files(
    name: str, private_path: str | os.PathLike[str], public_path: str | os.PathLike[str], *, cosigner: bool = False
) -> str:
    """Generate a key pair into a private (0600) and a public file; returns the vkey."""
    skey, vkey = generate_key(name, cosigner=cosigner)
    write_private_key(private_path, skey)
    write_public_key(public_path, vkey)
    return vkey


# --- signed notes ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note: key name, key ID and the signature bytes after the key ID."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """The signature line, without its newline."""
        return f"{SIG_PREFIX}{self.name} {b64encode(self.key_id.to_bytes(4, 'big') + self.signature)}"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse one signature line (with or without its trailing newline)."""
        if line.endswith("\n"):
            line = line[:-1]
        if not line.startswith(SIG_PREFIX) or "\n" in line:
            raise CheckpointError("malformed note: signature line must start with an em dash and a space")
        name, sep, b64 = line[len(SIG_PREFIX) :].partition(" ")
        if not sep or not b64 or not is_valid_key_name(name):
            raise CheckpointError("malformed note: signature line needs a key name and a base64 signature")
        raw = b64decode_strict(b64, "note signature")
        if len(raw) < 5:
            raise CheckpointError("malformed note: signature is shorter than a key ID and one byte")
        return cls(name, int.from_bytes(raw[:4], "big"), raw[4:])


def _as_text(note: str | bytes) -> str:
    if isinstance(note, bytes):
        try:
            return note.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("malformed note: not valid UTF-8") from None
    return note


def split_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and its signature lines, checking syntax only (no verification)."""
    note = _as_text(note)
    if _CONTROL.search(note):
        raise CheckpointError("malformed note: control character")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        raise CheckpointError("malformed note: not valid UTF-8") from None
    # The text ends at the last blank line; the signatures follow it.
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("malformed note: no blank line before the signatures")
    text, sigs = note[: split + 1], note[split + 2 :]
    if not sigs or not sigs.endswith("\n"):
        raise CheckpointError("malformed note: signature block must be non-empty and end with a newline")
    lines = sigs[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    return text, [NoteSignature.from_line(line) for line in lines]


class _KeyRing:
    """Verifiers indexed by (name, key ID); two different keys under one index are ambiguous."""

    def __init__(self, verifiers: Iterable[NoteVerifier]) -> None:
        self._by_id: dict[tuple[str, int], list[NoteVerifier]] = {}
        for v in verifiers:
            slot = self._by_id.setdefault((v.name, v.key_id), [])
            if v not in slot:
                slot.append(v)

    def get(self, name: str, kid: int) -> NoteVerifier | None:
        slot = self._by_id.get((name, kid))
        if not slot:
            return None
        if len(slot) > 1:
            raise CheckpointError(f"ambiguous key {name}+{kid:08x}")
        return slot[0]


def verify_signatures(
    note: str | bytes, verifiers: Iterable[NoteVerifier]
) -> tuple[str, list[NoteSignature], list[NoteSignature], list[NoteSignature]]:
    """Check every signature whose (name, key ID) is known: ``(text, valid, invalid, unknown)``, duplicates dropped.

    Unlike :func:`open_note` this does not reject the note for an invalid signature, so a quorum check can count
    the valid cosignatures of honest witnesses while ignoring a lying one.
    """
    text, sigs = split_note(note)
    message = text.encode("utf-8")
    ring = _KeyRing(verifiers)
    valid: list[NoteSignature] = []
    invalid: list[NoteSignature] = []
    unknown: list[NoteSignature] = []
    seen_known: set[tuple[str, int]] = set()
    seen_unknown: set[NoteSignature] = set()
    for sig in sigs:
        verifier = ring.get(sig.name, sig.key_id)
        if verifier is None:
            if sig not in seen_unknown:
                seen_unknown.add(sig)
                unknown.append(sig)
            continue
        # Like Go's note.Open, only a key's first signature counts.
        if (sig.name, sig.key_id) in seen_known:
            continue
        seen_known.add((sig.name, sig.key_id))
        (valid if verifier.verify(message, sig.signature) else invalid).append(sig)
    return text, valid, invalid, unknown


def open_note(note: str | bytes, verifiers: Iterable[NoteVerifier]) -> tuple[str, list[NoteSignature]]:
    """Verify a signed note: ``(text, verified signatures)``; unknown keys are ignored, a bad known one rejects."""
    text, valid, invalid, _unknown = verify_signatures(note, verifiers)
    if invalid:
        sig = invalid[0]
        raise CheckpointError(f"invalid signature for key {sig.name}+{sig.key_id:08x}")
    if not valid:
        raise CheckpointError("note has no verifiable signatures")
    return text, valid


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign a note text with each signer: text, blank line, one signature line per signer."""
    message = _check_note_text(text)
    if not signers:
        raise CheckpointError("sign_note needs at least one signer")
    lines = [NoteSignature(s.name, s.key_id, s.sign(message)).line() for s in signers]
    return text + "\n" + "".join(line + "\n" for line in lines)


def append_signatures(note: str, lines: Iterable[str]) -> str:
    """Add signature lines (e.g. cosignatures) to a signed note, dropping exact duplicates."""
    text, sigs = split_note(note)
    out = [s.line() for s in sigs]
    for line in lines:
        new = NoteSignature.from_line(line).line()
        if new not in out:
            out.append(new)
    if len(out) > MAX_SIGNATURES:
        raise CheckpointError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    return text + "\n" + "".join(line + "\n" for line in out)


def open_checkpoint(note: str | bytes, verifiers: Iterable[NoteVerifier]) -> tuple[Checkpoint, list[NoteSignature]]:
    """Verify a signed checkpoint note and parse its text."""
    text, sigs = open_note(note, verifiers)
    return Checkpoint.from_text(text), sigs
