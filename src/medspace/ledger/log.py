"""The audit log as a service: a store, the log's signing key, published checkpoints and their witnesses.

A log lives in a directory: ``log.json`` (origin, store URL, witnesses, quorum), ``log.key`` (the log's
Ed25519 note key, mode 0600), ``log.vkey`` (its public key), ``checkpoints.sqlite`` (every checkpoint the log
published, with the cosignatures it collected, and each witness's last cosigned size) and, by default, the
entries themselves in ``log.sqlite`` (or PostgreSQL, by URL). A checkpoint is only ever signed over the
committed, durable size of the store, so it never covers an entry that is not stored.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medspace.ledger.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    generate_key_files,
    load_verifier,
    read_private_key,
    sign_note,
)
from medspace.ledger.entry import AuditEvent
from medspace.ledger.errors import LedgerError, StorageError
from medspace.ledger.store import LogStore, open_store
from medspace.ledger.witness import WitnessEndpoint, collect_cosignatures

CONFIG = "log.json"


@dataclass
class WitnessConfig:
    """A witness the log asks for cosignatures."""

    url: str
    vkey: str


@dataclass
class LogConfig:
    """What ``log.json`` holds."""

    origin: str
    store: str
    witnesses: list[WitnessConfig] = field(default_factory=list)
    quorum: int = 0

    def to_json(self) -> str:
        """The file's text."""
        return json.dumps(
            {
                "origin": self.origin,
                "store": self.store,
                "quorum": self.quorum,
                "witnesses": [w.__dict__ for w in self.witnesses],
            },
            indent=1,
        )


def init_log(directory: Path, origin: str, *, store: str | None = None) -> LogConfig:
    """Create a log directory: a fresh signing key and a config; refuses to overwrite an existing log."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / CONFIG).exists():
        raise LedgerError(f"{directory} already holds a log")
    generate_key_files(origin, directory / "log.key", directory / "log.vkey")
    cfg = LogConfig(origin, store or str(directory / "log.sqlite"))
    (directory / CONFIG).write_text(cfg.to_json())
    return cfg


def read_config(directory: Path) -> LogConfig:
    """Read ``log.json``."""
    try:
        doc = json.loads((directory / CONFIG).read_text())
        return LogConfig(
            doc["origin"],
            doc["store"],
            [WitnessConfig(**w) for w in doc.get("witnesses", [])],
            int(doc.get("quorum", 0)),
        )
    except FileNotFoundError:
        raise LedgerError(f"no log in {directory} (create one with `medspace ledger init`)") from None
    except (ValueError, KeyError, TypeError):
        raise LedgerError(f"{directory / CONFIG} is malformed") from None


class AuditLog:
    """Append audit events, publish witnessed checkpoints, serve proofs."""

    def __init__(self, directory: Path, *, readonly: bool = False) -> None:
        self.directory = directory
        self.config = read_config(directory)
        sqlite = not self.config.store.startswith(("postgresql:", "postgres:"))
        self.store: LogStore = open_store(self.config.store, **({"readonly": True} if readonly and sqlite else {}))
        self.verifier: NoteVerifier = load_verifier(str(directory / "log.vkey"))
        self._signer: NoteSigner | None = None if readonly else read_private_key(directory / "log.key")
        try:
            self.db = sqlite3.connect(directory / "checkpoints.sqlite", isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS checkpoint (size INTEGER PRIMARY KEY, root BLOB NOT NULL, "
                "note TEXT NOT NULL, published REAL NOT NULL)"
            )
            self.db.execute("CREATE TABLE IF NOT EXISTS witness_size (name TEXT PRIMARY KEY, size INTEGER NOT NULL)")
        except sqlite3.Error as e:
            raise StorageError(f"cannot open the checkpoint file of {directory}: {type(e).__name__}") from None

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

    def witnesses(self) -> list[WitnessEndpoint]:
        """The configured witnesses."""
        return [WitnessEndpoint.parse(w.url, w.vkey) for w in self.config.witnesses]

    def publish(self) -> tuple[str, dict[str, str]]:
        """Sign a checkpoint of the committed log, collect witness cosignatures, store it; returns the note
        and the witnesses that did not cosign, with why."""
        if self._signer is None:
            raise LedgerError("the log was opened read-only")
        size = self.store.size  # committed and durable: the checkpoint covers nothing unstored
        root = self.store.root(size)
        note = sign_note(Checkpoint(self.config.origin, size, root).to_text(), [self._signer])
        errors: dict[str, str] = {}
        endpoints = self.witnesses()
        if endpoints:
            old = dict(self.db.execute("SELECT name, size FROM witness_size").fetchall())
            result = collect_cosignatures(
                endpoints, note, lambda s: self.store.consistency_proof(s, size), old_sizes=old
            )
            note, errors = result.note, dict(result.errors)
            self.db.execute("BEGIN")
            for name, s in result.sizes.items():
                self.db.execute("INSERT OR REPLACE INTO witness_size VALUES (?, ?)", (name, s))
            self.db.execute("COMMIT")
        self.db.execute("INSERT OR REPLACE INTO checkpoint VALUES (?, ?, ?, ?)", (size, root, note, time.time()))
        return note, errors

    def latest(self) -> str | None:
        """The latest published checkpoint note, with its cosignatures."""
        row = self.db.execute("SELECT note FROM checkpoint ORDER BY size DESC LIMIT 1").fetchone()
        return str(row[0]) if row else None

    def covering(self, index: int) -> str | None:
        """The smallest published checkpoint that covers entry ``index``."""
        row = self.db.execute("SELECT note FROM checkpoint WHERE size > ? ORDER BY size LIMIT 1", (index,)).fetchone()
        return str(row[0]) if row else None

    def checkpoints(self) -> list[tuple[int, bytes]]:
        """(size, root) of every published checkpoint."""
        return [(int(s), bytes(r)) for s, r in self.db.execute("SELECT size, root FROM checkpoint ORDER BY size")]

    def status(self) -> dict[str, Any]:
        """Size, root and the latest checkpoint's size, for people."""
        latest = self.db.execute("SELECT size, published FROM checkpoint ORDER BY size DESC LIMIT 1").fetchone()
        return {
            "origin": self.config.origin,
            "size": self.store.size,
            "store": self.config.store,
            "latest_checkpoint": int(latest[0]) if latest else None,
            "witnesses": [w.url for w in self.config.witnesses],
            "quorum": self.config.quorum,
        }
