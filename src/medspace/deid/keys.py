"""Keys of de-identification and the keyed transforms built on them: pseudonyms, linkage IDs, date shifts.

A node holds a **node key** (pseudonyms stable within the hospital; versioned, so it can be rotated) and,
where the space links patients across hospitals, a copy of the space-wide **linkage key** (the same patient
gets the same linkage pseudonym at every hospital; the hub never holds it). Both live in a keyring file
beside the store, readable by its owner only. Pseudonyms are HMAC-SHA256 (RFC 2104, stdlib `hmac`) with a
domain label per use, so a pseudonym of one kind never equals one of another kind; keys come from
`secrets`. Nothing here prints, logs or puts a key or an input value in an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from medspace.deid.errors import DeidKeyError

KEY_BYTES = 32
PSEUDONYM_HEX = 32  # 128 bits: collisions are negligible (birthday bound ~2^64 values)
FORMAT = "medspace-keyring/1"
LINKAGE_FORMAT = "medspace-linkage-key/1"


def new_key() -> bytes:
    """A fresh 256-bit key from the OS's CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def fingerprint(key: bytes) -> str:
    """A short public name for a key (not a secret): the first 8 bytes of SHA-256 over a label and the key."""
    return hashlib.sha256(b"medspace/key-fingerprint\x00" + key).hexdigest()[:16]


@dataclass
class NodeKey:
    """One version of the node key."""

    version: int
    key: bytes = field(repr=False)
    created: str
    retired: str | None = None


@dataclass
class Keyring:
    """The node's keys: versioned node keys (the newest not retired is active) and the optional linkage key."""

    path: Path | None
    node_keys: list[NodeKey]
    linkage: bytes | None = field(default=None, repr=False)

    @property
    def active(self) -> NodeKey:
        """The node key in use."""
        live = [k for k in self.node_keys if k.retired is None]
        if not live:
            raise DeidKeyError("the keyring has no active node key")
        return max(live, key=lambda k: k.version)

    def node_key(self, version: int | None = None) -> NodeKey:
        """A node key by version (default: the active one)."""
        if version is None:
            return self.active
        for k in self.node_keys:
            if k.version == version:
                return k
        raise DeidKeyError(f"the keyring has no node key version {version}")

    def rotate(self) -> NodeKey:
        """Make a new node key version active and retire the old one (kept for crosswalks until destroyed)."""
        now = _now()
        for k in self.node_keys:
            if k.retired is None:
                k.retired = now
        nk = NodeKey(max((k.version for k in self.node_keys), default=0) + 1, new_key(), now)
        self.node_keys.append(nk)
        return nk

    def destroy_retired(self) -> int:
        """Forget every retired node key; returns how many were destroyed."""
        before = len(self.node_keys)
        self.node_keys = [k for k in self.node_keys if k.retired is None]
        return before - len(self.node_keys)

    def require_linkage(self) -> bytes:
        """The linkage key, or an error saying how to install it."""
        if self.linkage is None:
            raise DeidKeyError("no linkage key installed: import the space's linkage key with "
                               "`medspace deid keys import-linkage FILE`")
        return self.linkage

    def save(self, path: Path | None = None) -> Path:
        """Write the keyring atomically, readable and writable by its owner only."""
        target = path or self.path
        if target is None:
            raise DeidKeyError("the keyring has no file to save to")
        doc: dict[str, Any] = {
            "format": FORMAT,
            "node_keys": [{"version": k.version, "key": _b64(k.key), "created": k.created, "retired": k.retired}
                          for k in self.node_keys],
            "linkage_key": _b64(self.linkage) if self.linkage is not None else None,
        }
        _write_private(target, json.dumps(doc, indent=1).encode())
        self.path = target
        return target


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: Any, what: str) -> bytes:
    try:
        key = base64.b64decode(str(s), validate=True)
    except (ValueError, TypeError):
        raise DeidKeyError(f"{what} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise DeidKeyError(f"{what} must be {KEY_BYTES} bytes")
    return key


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def keyring_path(store: Path) -> Path:
    """Where a store's keyring lives by default: beside it."""
    return store.with_name(store.name + ".keys.json")


def load_keyring(path: Path, *, create: bool = False) -> Keyring:
    """Read a keyring file; with `create`, make one with a fresh node key if it does not exist."""
    if not path.exists():
        if not create:
            raise DeidKeyError(f"no keyring at {path}")
        ring = Keyring(path, [NodeKey(1, new_key(), _now())])
        ring.save()
        return ring
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        raise DeidKeyError(f"the keyring {path} cannot be read as JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DeidKeyError(f"{path} is not a {FORMAT} file")
    keys = []
    for i, k in enumerate(doc.get("node_keys") or []):
        try:
            keys.append(NodeKey(int(k["version"]), _unb64(k["key"], f"node key {i}"), str(k["created"]),
                                k.get("retired")))
        except (KeyError, TypeError, ValueError):
            raise DeidKeyError(f"node key entry {i} of {path} is malformed") from None
    link = doc.get("linkage_key")
    return Keyring(path, keys, _unb64(link, "the linkage key") if link is not None else None)


def write_linkage_key(path: Path, key: bytes | None = None) -> str:
    """Create the space's linkage key file (done once, by the space's key custodian); returns its fingerprint."""
    if path.exists():
        raise DeidKeyError(f"{path} exists; refusing to overwrite a linkage key")
    k = key or new_key()
    _write_private(path, json.dumps({"format": LINKAGE_FORMAT, "key": _b64(k), "fingerprint": fingerprint(k)})
                   .encode())
    return fingerprint(k)


def read_linkage_key(path: Path) -> bytes:
    """Read a linkage key file written by `write_linkage_key`."""
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        raise DeidKeyError(f"the linkage key file {path} cannot be read as JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != LINKAGE_FORMAT:
        raise DeidKeyError(f"{path} is not a {LINKAGE_FORMAT} file")
    return _unb64(doc.get("key"), "the linkage key")


def _strings(values: Any) -> pa.Array:
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.string())


def _macs(key: bytes, domain: str, items: list[str]) -> list[bytes]:
    prefix = b"medspace/" + domain.encode() + b"\x00"
    # One HMAC per distinct value: callers pass dictionaries, so this loop runs over distinct IDs only.
    return [hmac.digest(key, prefix + v.encode(), "sha256") for v in items]


def pseudonymise(key: bytes, domain: str, values: Any) -> pa.Array:
    """HMAC-SHA256 pseudonyms (128-bit hex) of a column; nulls stay null, equal values get equal pseudonyms."""
    arr = _strings(values)
    enc = pc.dictionary_encode(arr)
    dictionary = enc.dictionary.to_pylist()
    out = pa.array([m[: PSEUDONYM_HEX // 2].hex() for m in _macs(key, domain, dictionary)], pa.string())
    return out.take(enc.indices)


def normalise_national_id(values: Any) -> pa.Array:
    """National IDs in one canonical form before linkage: no spaces or hyphens, upper case."""
    arr = _strings(values)
    return pc.utf8_upper(pc.replace_substring_regex(arr, r"[\s\-]", ""))


def linkage_ids(linkage_key: bytes, national_ids: Any) -> pa.Array:
    """Space-wide linkage pseudonyms: the same person's national ID gives the same value at every hospital."""
    return pseudonymise(linkage_key, "linkage", normalise_national_id(national_ids))


def date_shifts(key: bytes, patient_ids: Any, max_days: int = 365) -> npt.NDArray[np.int32]:
    """A keyed, per-patient shift in days in [-max_days, max_days] without 0; nulls get 0."""
    if max_days < 1:
        raise DeidKeyError("max_days must be at least 1")
    arr = _strings(patient_ids)
    enc = pc.dictionary_encode(arr)
    macs = _macs(key, "date-shift", enc.dictionary.to_pylist())
    raw = np.frombuffer(b"".join(m[:8] for m in macs), dtype="<u8") if macs else np.zeros(0, np.uint64)
    # 2**64 is not a multiple of 2*max_days; the bias is below 2**-40 for any sensible max_days.
    r = (raw % np.uint64(2 * max_days)).astype(np.int64)
    per_value = np.where(r < max_days, r - max_days, r - max_days + 1).astype(np.int32)
    idx = enc.indices.to_numpy(zero_copy_only=False)
    valid = ~np.asarray(pc.is_null(enc.indices).to_numpy(zero_copy_only=False), dtype=bool)
    out = np.zeros(len(arr), dtype=np.int32)
    out[valid] = per_value[idx[valid].astype(np.int64)]
    return out


def surrogates(n: int) -> list[str]:
    """Random surrogate codes (not derived from any identifier, as HIPAA §164.514(c) asks)."""
    blob = secrets.token_bytes(n * PSEUDONYM_HEX // 2).hex()  # one call to the CSPRNG for all of them
    return [blob[i: i + PSEUDONYM_HEX] for i in range(0, len(blob), PSEUDONYM_HEX)]


def compare(a: str, b: str) -> bool:
    """Constant-time comparison of two pseudonyms."""
    return hmac.compare_digest(a.encode(), b.encode())
