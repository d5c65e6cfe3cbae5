"""The audit log as a service: a store, the log's signing key, published checkpoints and their witnesses.

A log lives in a directory: ``log.json`` (origin, store, witnesses, quorum), ``log.key`` (the log's Ed25519 note
key, mode 0600), ``log.vkey`` (its public key), ``checkpoints.sqlite`` (every checkpoint the log published that met
its witness quorum, with the cosignatures it collected; each witness's last cosigned size; who wrote which entries
over HTTP) and, by default, the entries themselves in ``log.sqlite`` (or PostgreSQL, by URL). A checkpoint is only
ever signed over the committed, durable size of the store, so it never covers an entry that is not stored.

Paths in ``log.json`` are relative to the log's directory (``"store": "log.sqlite"``), so the log can be moved,
copied and used from any working directory. A config written before that rule (no ``"paths"`` key) named the
store relative to the directory ``ledger init`` ran in; it is read by finding the store's file in the log's own
directory. A PostgreSQL URL never holds a password: libpq takes it from ``PGPASSWORD``, ``~/.pgpass`` or a
service file, and :func:`redact_url` masks one found in an older config before anything is shown.
"""

from __future__ import annotations

import json
import re
import sqlite3
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from medspace.ledger.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    append_signatures,
    generate_key_files,
    load_verifier,
    open_checkpoint,
    read_private_key,
    sign_note,
    split_note,
    verify_signatures,
)
from medspace.ledger.entry import AuditEvent
from medspace.ledger.errors import CheckpointError, LedgerError, StorageError, TamperError
from medspace.ledger.store import LogStore, open_store
from medspace.ledger.witness import WitnessEndpoint, collect_cosignatures, new_client

CONFIG = "log.json"
PATHS_RELATIVE = "relative-to-log-directory"
_PG_PREFIXES = ("postgresql:", "postgres:")
_URL_PASSWORD = re.compile(r"^(postgres(?:ql)?://[^/?#@:]*):[^/?#@]*@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def is_postgres(store: str) -> bool:
    """Whether a store string names PostgreSQL (else a SQLite file)."""
    return store.startswith(_PG_PREFIXES)


def redact_url(store: str) -> str:
    """A store string fit to print: any password replaced by ``***``."""
    if not is_postgres(store):  # libpq's key=value form
        return _KV_PASSWORD.sub(r"\1***", store)
    out = _URL_PASSWORD.sub(r"\1:***@", store)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", out, flags=re.IGNORECASE)


def url_has_password(store: str) -> bool:
    """Whether a PostgreSQL URL carries a password (which a config file must not hold)."""
    return is_postgres(store) and redact_url(store) != store


@dataclass
class WitnessConfig:
    """A witness the log asks for cosignatures."""

    url: str
    vkey: str


@dataclass
class LogConfig:
    """What ``log.json`` holds; ``store`` as written there (see :meth:`store_location`)."""

    origin: str
    store: str
    witnesses: list[WitnessConfig] = field(default_factory=list)
    quorum: int = 0
    relative: bool = True  # False for a config written before paths were relative to the log directory
    witness_ca: str | None = None  # CA file that HTTPS witnesses' certificates must chain to (relative: to the dir)

    def to_json(self) -> str:
        """The file's text (always in the current form: paths relative to the log directory)."""
        doc: dict[str, object] = {
            "origin": self.origin,
            "store": self.store,
            "paths": PATHS_RELATIVE,
            "quorum": self.quorum,
            "witnesses": [w.__dict__ for w in self.witnesses],
        }
        if self.witness_ca:
            doc["witness_ca"] = self.witness_ca
        return json.dumps(doc, indent=1)

    def witness_tls(self, directory: Path) -> ssl.SSLContext | bool:
        """How HTTPS witnesses are authenticated: only by ``witness_ca`` when set, else by the system's roots."""
        if not self.witness_ca:
            return True
        path = Path(self.witness_ca)
        path = path if path.is_absolute() else directory / path
        try:
            return ssl.create_default_context(cafile=str(path))
        except (OSError, ssl.SSLError) as e:
            raise LedgerError(f"the witnesses' CA file {path} cannot be used: {e}") from None

    def store_location(self, directory: Path) -> str:
        """The store to open: a PostgreSQL URL as written, or the absolute path of the SQLite file."""
        if is_postgres(self.store):
            return self.store
        raw = self.store.removeprefix("sqlite:///")
        path = Path(raw)
        if path.is_absolute():
            return str(path)
        if not self.relative and not (directory / path).exists() and (directory / path.name).exists():
            # An old config: the path was relative to where `ledger init` ran; the file is in the log directory.
            return str((directory / path.name).absolute())
        return str((directory / path).absolute())

    def migrated(self, directory: Path) -> LogConfig:
        """This config in the current form (a SQLite store inside the directory named relative to it)."""
        if self.relative or is_postgres(self.store):
            return LogConfig(self.origin, self.store, list(self.witnesses), self.quorum, witness_ca=self.witness_ca)
        store = Path(self.store_location(directory))
        return LogConfig(self.origin, _relative_store(directory, store), list(self.witnesses), self.quorum,
                         witness_ca=self.witness_ca)


def _relative_store(directory: Path, store: Path) -> str:
    """How log.json names a SQLite store: relative to the log directory when inside it, else absolute."""
    store = store.absolute()
    try:
        return str(store.relative_to(directory.absolute()))
    except ValueError:
        return str(store)


def init_log(directory: Path, origin: str, *, store: str | None = None) -> LogConfig:
    """Create a log directory: a fresh signing key and a config; refuses to overwrite an existing log."""
    if store is not None and url_has_password(store):
        raise LedgerError(
            "the PostgreSQL URL holds a password, which log.json would keep: give the URL without it "
            "(postgresql://user@host/db) and the password in PGPASSWORD, ~/.pgpass or a libpq service file"
        )
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / CONFIG).exists():
        raise LedgerError(f"{directory} already holds a log")
    generate_key_files(origin, directory / "log.key", directory / "log.vkey")
    if store is None:
        named = "log.sqlite"
    elif is_postgres(store):
        named = store
    else:
        named = _relative_store(directory, Path(store.removeprefix("sqlite:///")))
    cfg = LogConfig(origin, named)
    (directory / CONFIG).write_text(cfg.to_json())
    return cfg


def write_config(directory: Path, cfg: LogConfig) -> None:
    """Write ``log.json`` in the current form."""
    (directory / CONFIG).write_text(cfg.migrated(directory).to_json())


def read_config(directory: Path) -> LogConfig:
    """Read ``log.json``."""
    path = directory / CONFIG
    try:
        doc = json.loads(path.read_text())
        return LogConfig(
            str(doc["origin"]),
            str(doc["store"]),
            [WitnessConfig(str(w["url"]), str(w["vkey"])) for w in doc.get("witnesses", [])],
            int(doc.get("quorum", 0)),
            relative=doc.get("paths") == PATHS_RELATIVE,
            witness_ca=str(doc["witness_ca"]) if doc.get("witness_ca") else None,
        )
    except NotADirectoryError:
        raise LedgerError(f"{directory} is a file, not a log directory") from None
    except FileNotFoundError:
        raise LedgerError(f"no log in {directory} (create one with `medspace ledger init`)") from None
    except IsADirectoryError:
        raise LedgerError(f"{path} is a directory, not a log config") from None
    except PermissionError:
        raise LedgerError(f"{path} cannot be read: permission denied") from None
    except OSError as e:
        raise LedgerError(f"{path} cannot be read: {e.strerror or type(e).__name__}") from None
    except (ValueError, KeyError, TypeError):
        raise LedgerError(f"{path} is malformed") from None


@dataclass
class Publication:
    """What :meth:`AuditLog.publish` did: the checkpoint, who cosigned it, and whether it met the quorum."""

    note: str
    size: int
    cosigned: list[str]
    errors: dict[str, str]
    quorum: int
    stored: bool

    @property
    def witnessed(self) -> bool:
        """Whether at least ``quorum`` witnesses cosigned."""
        return len(self.cosigned) >= self.quorum


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint from the checkpoint file, its signatures verified: the note is what counts, not the columns."""

    checkpoint: Checkpoint
    note: str
    cosigners: tuple[str, ...]  # configured witnesses whose cosignature verifies

    @property
    def size(self) -> int:
        """The tree size it commits to."""
        return self.checkpoint.size


_CHECKPOINT_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS checkpoint (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL, "
    "published REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS witness_size (name TEXT PRIMARY KEY, size INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS writes (first INTEGER PRIMARY KEY, count INTEGER NOT NULL, writer TEXT NOT NULL, "
    "remote TEXT NOT NULL, time REAL NOT NULL)",
)


class AuditLog:
    """Append audit events, publish witnessed checkpoints, serve proofs.

    ``readonly`` opens the store and the checkpoint file read-only (SQLite ``mode=ro``, a PostgreSQL session with
    ``default_transaction_read_only``): checking and exporting create, migrate and lock nothing.
    """

    def __init__(self, directory: Path, *, readonly: bool = False, create: bool = False) -> None:
        self.directory = directory
        self.config = read_config(directory)
        self.readonly = readonly
        self._witness_keys: list[NoteVerifier] | None = None
        # One connection to the checkpoint file, used from the HTTP API's worker threads: a transaction of one
        # thread (publish) must not take in another's statements (record_write).
        self._db_lock = threading.RLock()
        location = self.config.store_location(directory)
        if not is_postgres(location) and not create and not Path(location).exists():
            raise StorageError(f"the log's store {location} does not exist (log.json in {directory} names it)")
        try:
            self.store: LogStore = open_store(location, **({"readonly": True} if readonly else {}))
        except StorageError as e:
            if is_postgres(location):  # the error names the server already, without a password
                raise
            raise StorageError(f"cannot open the log's store {location}: {e}") from None
        try:
            self.verifier: NoteVerifier = load_verifier(str(directory / "log.vkey"))
            self._signer: NoteSigner | None = None if readonly else read_private_key(directory / "log.key")
            self.db = self._open_checkpoints()
        except BaseException:
            self.store.close()
            raise

    def _open_checkpoints(self) -> sqlite3.Connection:
        path = self.directory / "checkpoints.sqlite"
        try:
            if self.readonly:
                if not path.exists():  # a log that never published: nothing to read
                    db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                    for ddl in _CHECKPOINT_SCHEMA:
                        db.execute(ddl)
                    return db
                uri = f"file:{quote(str(path.absolute()))}?mode=ro"
                return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            for ddl in _CHECKPOINT_SCHEMA:
                db.execute(ddl)
            return db
        except sqlite3.Error as e:
            raise StorageError(f"cannot open the checkpoint file {path}: {e}") from None

    def close(self) -> None:
        """Close the store and the checkpoint file."""
        self.store.close()
        self.db.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append events in one durable batch; returns their indices."""
        return self.store.append([e.encode() for e in events])

    def record_write(self, first: int, count: int, writer: str, remote: str) -> None:
        """Record who appended entries ``first .. first + count - 1`` (over HTTP: the authenticated writer)."""
        if count:
            with self._db_lock:
                self.db.execute("INSERT OR REPLACE INTO writes VALUES (?, ?, ?, ?, ?)",
                                (first, count, writer, remote, time.time()))

    def writer_of(self, index: int) -> str | None:
        """The writer recorded for entry ``index`` (None if it was appended locally)."""
        try:
            with self._db_lock:
                row = self.db.execute(
                    "SELECT writer FROM writes WHERE first <= ? AND first + count > ? ORDER BY first DESC LIMIT 1",
                    (index, index),
                ).fetchone()
        except sqlite3.OperationalError:  # a checkpoint file from before writes were recorded, opened read-only
            return None
        return str(row[0]) if row else None

    def witnesses(self) -> list[WitnessEndpoint]:
        """The configured witnesses."""
        return [WitnessEndpoint.parse(w.url, w.vkey) for w in self.config.witnesses]

    def witness_verifiers(self) -> list[NoteVerifier]:
        """The configured witnesses' cosignature keys."""
        if self._witness_keys is None:
            self._witness_keys = list(dict.fromkeys(load_verifier(w.vkey) for w in self.config.witnesses))
        return self._witness_keys

    def publish(self) -> Publication:
        """Sign a checkpoint of the committed log, collect witness cosignatures and store it if they meet the quorum.

        A checkpoint below the quorum is not stored (the latest stays the last witnessed one). At a size already
        published, the cosignatures of both are merged, so a checkpoint never loses a cosignature it had.
        """
        if self._signer is None:
            raise LedgerError("the log was opened read-only")
        size = self.store.size  # committed and durable: the checkpoint covers nothing unstored
        root = self.store.root(size)
        note = sign_note(Checkpoint(self.config.origin, size, root).to_text(), [self._signer])
        errors: dict[str, str] = {}
        cosigned: list[str] = []
        sizes: dict[str, int] = {}
        endpoints = self.witnesses()
        if endpoints:
            with self._db_lock:
                old = dict(self.db.execute("SELECT name, size FROM witness_size").fetchall())
            http = new_client(verify=self.config.witness_tls(self.directory))
            try:
                result = collect_cosignatures(
                    endpoints, note, lambda s: self.store.consistency_proof(s, size), old_sizes=old, client=http
                )
            finally:
                http.close()
            note, errors, cosigned, sizes = result.note, dict(result.errors), list(result.cosigned), result.sizes
        with self._db_lock:
            return self._store_publication(size, root, note, cosigned, errors, sizes)

    def _store_publication(self, size: int, root: bytes, note: str, cosigned: list[str], errors: dict[str, str],
                           sizes: dict[str, int]) -> Publication:
        quorum, stored = self.config.quorum, False
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for name, s in sizes.items():
                self.db.execute("INSERT OR REPLACE INTO witness_size VALUES (?, ?)", (name, s))
            row = self.db.execute("SELECT note FROM checkpoint WHERE size = ?", (size,)).fetchone()
            if row is not None:
                note = self._merge(str(row[0]), note, size)
            have = self._cosigners(note)
            if len(have) >= quorum:
                self.db.execute("INSERT OR REPLACE INTO checkpoint VALUES (?, ?, ?, ?)",
                                (size, root, note, time.time()))
                stored = True
                cosigned = list(have)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return Publication(note, size, cosigned, errors, quorum, stored)

    def _merge(self, old: str, new: str, size: int) -> str:
        """The stored note at ``size`` with the new note's cosignatures of witnesses it lacks."""
        old_text, old_sigs = split_note(old)
        new_text, new_sigs = split_note(new)
        if old_text != new_text:
            raise TamperError(f"entry 0: the log's root at size {size} differs from the checkpoint published "
                              "at that size")
        have = {(s.name, s.key_id) for s in old_sigs}
        extra = [s.line() for s in new_sigs if (s.name, s.key_id) not in have]
        return append_signatures(old, extra) if extra else old

    def _cosigners(self, note: str) -> tuple[str, ...]:
        """Configured witnesses whose cosignature on ``note`` verifies."""
        witnesses = self.witness_verifiers()
        if not witnesses:
            return ()
        _text, valid, _invalid, _unknown = verify_signatures(note, witnesses)
        return tuple(dict.fromkeys(s.name for s in valid))

    def stored_checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, oldest first, each note's signatures verified.

        Raises TamperError when a note's log signature or a configured witness's cosignature does not verify, or
        when a row's size column disagrees with its signed note: the checkpoint file was edited.
        """
        out = []
        witnesses = self.witness_verifiers()
        with self._db_lock:
            rows = self.db.execute("SELECT size, note FROM checkpoint ORDER BY size").fetchall()
        for size, note in rows:
            try:
                cp, _ = open_checkpoint(str(note), [self.verifier])
            except CheckpointError as e:
                raise TamperError(f"checkpoint {size}: the log's signature does not verify ({e})") from None
            if cp.size != int(size) or cp.origin != self.config.origin:
                raise TamperError(f"checkpoint {size}: the row does not match its signed note")
            _text, valid, invalid, _unknown = verify_signatures(str(note), witnesses)
            if invalid:
                raise TamperError(f"checkpoint {size}: the cosignature of {invalid[0].name} does not verify")
            out.append(StoredCheckpoint(cp, str(note), tuple(dict.fromkeys(s.name for s in valid))))
        return out

    def _witnessed(self, note: str) -> bool:
        try:
            open_checkpoint(note, [self.verifier])
        except CheckpointError:
            return False
        return len(self._cosigners(note)) >= self.config.quorum

    def latest(self) -> str | None:
        """The latest published checkpoint note that meets the quorum, with its cosignatures."""
        with self._db_lock:  # newest first, read lazily: normally the first one is it
            for (note,) in self.db.execute("SELECT note FROM checkpoint ORDER BY size DESC"):
                if self._witnessed(str(note)):
                    return str(note)
        return None

    def latest_size(self) -> int:
        """The size of :meth:`latest` (0 when none)."""
        note = self.latest()
        return Checkpoint.from_text(split_note(note)[0]).size if note else 0

    def covering(self, index: int) -> str | None:
        """The smallest published checkpoint that covers entry ``index`` and meets the quorum."""
        with self._db_lock:
            for (note,) in self.db.execute("SELECT note FROM checkpoint WHERE size > ? ORDER BY size", (index,)):
                if self._witnessed(str(note)):
                    return str(note)
        return None

    def checkpoints(self) -> list[tuple[int, bytes]]:
        """(size, root) of every stored checkpoint, read from its verified note (see :meth:`stored_checkpoints`)."""
        return [(c.size, c.checkpoint.root_hash) for c in self.stored_checkpoints()]

    def status(self) -> dict[str, Any]:
        """Size, store and the latest witnessed checkpoint's size, for people (no password is shown)."""
        latest = self.latest()
        return {
            "origin": self.config.origin,
            "directory": str(self.directory.absolute()),
            "size": self.store.size,
            "store": redact_url(self.config.store_location(self.directory)),
            "latest_checkpoint": self.latest_size() if latest else None,
            "witnesses": [w.url for w in self.config.witnesses],
            "quorum": self.config.quorum,
        }

