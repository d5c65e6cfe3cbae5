"""Keys of de-identification and the keyed transforms built on them: pseudonyms, linkage IDs, date shifts.

A node holds a **node key** (pseudonyms stable within the hospital; versioned, so it can be rotated) and,
where the space links patients across hospitals, a copy of the space-wide **linkage key** (the same patient
gets the same linkage pseudonym at every hospital; the hub never holds it). Both live in a keyring file
beside the store, readable by its owner only. Pseudonyms are HMAC-SHA256 (RFC 2104, stdlib `hmac`) with a
domain label per use, so a pseudonym of one kind never equals one of another kind; keys come from
`secrets`. Nothing here prints, logs or puts a key or an input value in an error.

A keyring is bound to one store (it records the store's identity) and the store records which keyring it
was used with (a fingerprint of the keyring's random id, never a key), so that neither a keyring copied to
another store nor a store copied without its keyring silently changes every pseudonym.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shlex
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from medspace.deid.errors import DeidKeyError
from medspace.private_files import loose_mode_message, os_reason, shared_with_others

if TYPE_CHECKING:
    from medspace.store import Store

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
    keyring_id: str | None = None  # random, made with the keyring; keyrings written before it have none
    store_id: str | None = None  # the store the keyring is bound to (None: not bound yet)

    @property
    def fingerprint(self) -> str | None:
        """A public name for this keyring (a hash of its random id, not of any key); stores record it."""
        if self.keyring_id is None:
            return None
        return hashlib.sha256(b"medspace/keyring-id\x00" + self.keyring_id.encode()).hexdigest()[:16]

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
            "keyring_id": self.keyring_id,
            "store_id": self.store_id,
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
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            # The mode given to open() is ignored for a file that already exists (a stale .tmp): set it.
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise DeidKeyError(f"cannot write {path}: {os_reason(e)}") from None


def check_private(path: Path, what: str = "keyring") -> None:
    """Refuse a key file that group or others may access (like ssh, and like the audit log's private key)."""
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise DeidKeyError(f"cannot read {what} {path}: {os_reason(e)}") from None
    if shared_with_others(mode):
        raise DeidKeyError(loose_mode_message(what, path))


def _read_json(path: Path, what: str) -> Any:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DeidKeyError(f"cannot read {what} {path}: {os_reason(e)}") from None
    try:
        return json.loads(data)
    except ValueError:
        raise DeidKeyError(f"the {what} {path} cannot be read as JSON") from None


def keyring_path(store: Path) -> Path:
    """Where a store's keyring lives by default: beside it."""
    return store.with_name(store.name + ".keys.json")


def new_keyring(path: Path, store_id: str | None = None) -> Keyring:
    """A fresh keyring (node key version 1, a new random id), saved to `path`."""
    ring = Keyring(path, [NodeKey(1, new_key(), _now())], keyring_id=uuid.uuid4().hex, store_id=store_id)
    ring.save()
    return ring


def load_keyring(path: Path, *, create: bool = False, check_mode: bool = True) -> Keyring:
    """Read a keyring file (refused if group or others may access it); with `create`, make one if it is absent.

    This is the file alone: `node_keyring` also checks that the keyring belongs to the store.
    """
    if not path.exists():
        if not create:
            raise DeidKeyError(f"no keyring at {path}")
        return new_keyring(path)
    if check_mode:
        check_private(path)
    doc = _read_json(path, "keyring")
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
    ids = {k: doc.get(k) for k in ("keyring_id", "store_id")}
    if any(v is not None and not isinstance(v, str) for v in ids.values()):
        raise DeidKeyError(f"the keyring_id or store_id of {path} is malformed")
    return Keyring(path, keys, _unb64(link, "the linkage key") if link is not None else None,
                   keyring_id=ids["keyring_id"], store_id=ids["store_id"])


def write_linkage_key(path: Path, key: bytes | None = None) -> str:
    """Create the space's linkage key file (done once, by the space's key custodian); returns its fingerprint."""
    if path.exists():
        raise DeidKeyError(f"{path} exists; refusing to overwrite a linkage key")
    k = key or new_key()
    _write_private(path, json.dumps({"format": LINKAGE_FORMAT, "key": _b64(k), "fingerprint": fingerprint(k)})
                   .encode())
    return fingerprint(k)


def read_linkage_key(path: Path) -> bytes:
    """Read a linkage key file written by `write_linkage_key` (refused if group or others may access it)."""
    check_private(path, "linkage key file")
    doc = _read_json(path, "linkage key file")
    if not isinstance(doc, dict) or doc.get("format") != LINKAGE_FORMAT:
        raise DeidKeyError(f"{path} is not a {LINKAGE_FORMAT} file")
    return _unb64(doc.get("key"), "the linkage key")


# --- keyrings bound to stores -----------------------------------------------------------------------------------

META_KEYRING = "deid_keyring"  # fingerprint of the keyring the store was last used with
META_VERSION = "deid_node_key_version"  # the highest node key version used with it
META_PATH = "deid_keyring_path"  # where that keyring was (to say where to copy it from)


@dataclass(frozen=True)
class StoreKeyRecord:
    """What a store remembers of its keys: the keyring last used with it, and how many views made with keys."""

    fingerprint: str | None
    version: int | None
    path: str | None
    views: int  # deid_* views not known to be built without keys

    @property
    def used(self) -> bool:
        """True if the store has ever had a keyring or a de-identified view."""
        return self.fingerprint is not None or self.views > 0

    def where(self, path: Path) -> str:
        """' (last used: X)' when the store's keyring was elsewhere, for messages."""
        if self.path and self.path != str(path.resolve()):
            return f" (last used: {self.path})"
        return ""


def store_record(st: Store) -> StoreKeyRecord:
    """Read what a store remembers of its keys."""
    meta = dict(st.con.execute("SELECT key, value FROM _medspace_meta WHERE key IN (?, ?, ?)",
                               [META_KEYRING, META_VERSION, META_PATH]).fetchall())
    keyless = ""
    if st.con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                      "AND schema_name = 'main' AND table_name = 'deid_application'").fetchall()[0][0]:
        # A view its application row says was built without a node key (safe-harbor) does not need one.
        keyless = (" AND schema_name NOT IN (SELECT view FROM main.deid_application "
                   "WHERE node_key_version IS NULL)")
    views = st.con.execute("SELECT count(*) FROM duckdb_schemas() WHERE database_name = current_database() "
                           "AND starts_with(schema_name, 'deid_')" + keyless).fetchall()[0][0]
    version = meta.get(META_VERSION)
    return StoreKeyRecord(meta.get(META_KEYRING), int(version) if version and version.isdigit() else None,
                          meta.get(META_PATH), int(views))


def record_keyring(st: Store, ring: Keyring, *, anew: bool = False) -> None:
    """Write into the store which keyring it is used with (its fingerprint, active version and path).

    `anew`: the keyring replaces whatever the store was used with before, so its versions start again.
    """
    if ring.fingerprint is None or ring.path is None:
        raise DeidKeyError("only a saved keyring with an id can be recorded in a store")
    rec = store_record(st)
    version = ring.active.version
    if not anew and rec.fingerprint == ring.fingerprint and rec.version is not None:
        version = max(version, rec.version)
    values = {META_KEYRING: ring.fingerprint, META_VERSION: str(version), META_PATH: str(ring.path.resolve())}
    if (rec.fingerprint, rec.version, rec.path) == (values[META_KEYRING], version, values[META_PATH]):
        return
    st.con.execute("BEGIN")
    try:
        st.con.execute("DELETE FROM _medspace_meta WHERE key IN (?, ?, ?)", list(values))
        st.con.executemany("INSERT INTO _medspace_meta VALUES (?, ?)", [[k, v] for k, v in values.items()])
        st.con.execute("COMMIT")
    except Exception:
        st.con.execute("ROLLBACK")
        raise


def _command(sub: str, st: Store, path: Path) -> str:
    """The `medspace deid keys` command line to run, naming --keys only when it is not the default."""
    keys = "" if path == keyring_path(st.path) else f" --keys {shlex.quote(str(path))}"
    return f"medspace deid keys {sub} --store {shlex.quote(str(st.path))}{keys}"


def node_keyring(st: Store, path: Path, *, create: bool = False,
                 say: Callable[[str], None] | None = None) -> Keyring:
    """The store's keyring, checked: private, bound to this store, the one the store was last used with.

    With `create`, a missing keyring is made only if the store has never had keys or views: otherwise every
    pseudonym would silently change. A keyring written before keyrings were bound is bound on first use
    (`say` is told). The store records the keyring it is used with.
    """
    rec = store_record(st)
    if not path.exists():
        if rec.used:
            raise DeidKeyError(
                f"keyring missing at {path}; this store was used with a keyring before{rec.where(path)}: "
                f"copy it here, or run `{_command('init', st, path)} --force` to start new pseudonyms")
        if not create:
            raise DeidKeyError(f"no keyring at {path}: run `{_command('init', st, path)}`")
        ring = new_keyring(path, st.store_id)
        record_keyring(st, ring)
        if say is not None:
            say(f"created keyring {path} for this store")
        return ring
    ring = load_keyring(path)
    bind = _command("bind", st, path)
    if ring.store_id is None:
        if rec.fingerprint is not None and ring.fingerprint != rec.fingerprint:
            raise DeidKeyError(
                f"keyring {path} has no store identity and this store was last used with another keyring "
                f"(fingerprint {rec.fingerprint}{rec.where(path)}): use that one, or bind this one on purpose "
                f"with `{bind}`")
        ring.store_id = st.store_id
        if ring.keyring_id is None:
            ring.keyring_id = uuid.uuid4().hex
        ring.save()
        if say is not None:
            say(f"keyring {path} had no store identity: bound it to this store (store id {st.store_id})")
    elif ring.store_id != st.store_id:
        raise DeidKeyError(
            f"keyring {path} belongs to another store (store id {ring.store_id}, this one is {st.store_id}); "
            f"to use its keys for this store on purpose (pseudonyms stay those of the old keys): `{bind}`")
    elif rec.fingerprint is not None and ring.fingerprint != rec.fingerprint:
        raise DeidKeyError(
            f"keyring {path} is not the one this store was last used with (fingerprint {ring.fingerprint}, the "
            f"store records {rec.fingerprint}{rec.where(path)}): use that one, or bind this one on purpose "
            f"with `{bind}`")
    elif rec.version is not None and ring.node_keys and ring.active.version < rec.version:
        raise DeidKeyError(
            f"keyring {path} holds node key version {ring.active.version} but this store was last used with "
            f"version {rec.version}: it is an older copy of the keyring; use the current one")
    record_keyring(st, ring)
    return ring


def init_keyring(st: Store, path: Path, *, force: bool = False) -> tuple[Keyring, Path | None]:
    """Make a fresh keyring for a store; returns it and where the keyring it replaced was kept (if any).

    Refused without `force` if a keyring exists or the store was used with one (new keys change every
    pseudonym). With `force`, an existing keyring is kept beside as `<name>.replaced-<time>` and its linkage
    key (the space's, not the node's) carried over.
    """
    rec = store_record(st)
    if path.exists() and not force:
        raise DeidKeyError(f"a keyring exists at {path}; `{_command('init', st, path)} --force` replaces it with "
                           "new keys and every pseudonym changes")
    if not path.exists() and rec.used and not force:
        raise DeidKeyError(
            f"keyring missing at {path}; this store was used with a keyring before{rec.where(path)}: "
            f"copy it here, or run `{_command('init', st, path)} --force` to start new pseudonyms")
    kept: Path | None = None
    linkage: bytes | None = None
    if path.exists():
        with contextlib.suppress(DeidKeyError):
            linkage = load_keyring(path, check_mode=False).linkage
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        kept = path.with_name(f"{path.name}.replaced-{stamp}")
        n = 1
        while kept.exists():  # never overwrite an earlier replaced keyring
            n += 1
            kept = path.with_name(f"{path.name}.replaced-{stamp}-{n}")
        try:
            os.replace(path, kept)
            os.chmod(kept, 0o600)
        except OSError as e:
            raise DeidKeyError(f"cannot move the old keyring {path} aside: {os_reason(e)}") \
                from None
    try:
        ring = Keyring(path, [NodeKey(1, new_key(), _now())], linkage, uuid.uuid4().hex, st.store_id)
        ring.save()
    except DeidKeyError:
        if kept is not None:
            with contextlib.suppress(OSError):
                os.replace(kept, path)  # put the old keyring back: nothing half-made stays behind
        raise
    record_keyring(st, ring, anew=True)
    return ring, kept


def bind_keyring(st: Store, path: Path) -> Keyring:
    """Bind a keyring to a store on purpose (the store's pseudonyms become those of the keyring's keys)."""
    ring = load_keyring(path)
    ring.store_id = st.store_id
    if ring.keyring_id is None:
        ring.keyring_id = uuid.uuid4().hex
    ring.save()
    record_keyring(st, ring, anew=True)
    return ring


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
