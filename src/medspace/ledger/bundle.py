"""Offline proof bundles: one entry, its inclusion proof and a witnessed checkpoint, checkable with no network.

A bundle is a JSON object::

    {"format": "medspace-proof-bundle/1", "index": 17, "entry": "<base64 of the entry bytes>",
     "checkpoint": "<signed checkpoint note with cosignatures>", "inclusion_proof": ["<base64>", ...]}

Verifying it needs only the trusted keys (a JSON keys file: the log's vkey, the witnesses' vkeys and the quorum
k): the checkpoint must carry the log's signature and k valid witness cosignatures, and the entry's leaf hash
must be included in the checkpoint's tree at its index.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medspace.ledger import merkle
from medspace.ledger.checkpoint import Checkpoint, NoteVerifier, open_checkpoint, split_note, verifier_from_vkey
from medspace.ledger.entry import AuditEvent
from medspace.ledger.errors import CheckpointError, EntryError, LedgerError, ProofError
from medspace.ledger.log import AuditLog
from medspace.ledger.witness import verify_quorum

FORMAT = "medspace-proof-bundle/1"
KEYS_FORMAT = "medspace-audit-keys/1"


@dataclass(frozen=True)
class TrustedKeys:
    """What a verifier trusts: the log's key, the witnesses' keys, how many cosignatures it needs."""

    log: NoteVerifier
    witnesses: tuple[NoteVerifier, ...]
    quorum: int


@dataclass(frozen=True)
class VerifiedEntry:
    """A bundle that verified."""

    index: int
    event: AuditEvent
    checkpoint: Checkpoint
    signatures: int  # signature lines on the checkpoint (the log's and the witnesses')


def export_bundle(log: AuditLog, index: int) -> dict[str, Any]:
    """The bundle for entry ``index``, under the smallest published checkpoint that covers it."""
    if not 0 <= index < log.store.size:
        raise LedgerError(f"the log has no entry {index} (size {log.store.size})")
    note = log.covering(index)
    if note is None:
        quorum = log.config.quorum
        need = f" with the cosignatures of {quorum} witness(es) (the quorum)" if quorum else ""
        raise LedgerError(f"no published checkpoint{need} covers entry {index} yet: run `medspace ledger publish`")
    cp = Checkpoint.from_text(split_note(note)[0])
    proof = log.store.inclusion_proof(index, cp.size)
    return {
        "format": FORMAT,
        "index": index,
        "entry": base64.b64encode(log.store.entry(index)).decode(),
        "checkpoint": note,
        "inclusion_proof": [base64.b64encode(h).decode() for h in proof],
    }


def write_keys(path: Path, log_vkey: str, witness_vkeys: list[str], quorum: int) -> None:
    """Write a keys file for `medspace audit verify`."""
    path.write_text(
        json.dumps({"format": KEYS_FORMAT, "log": log_vkey, "witnesses": witness_vkeys, "quorum": quorum}, indent=1)
    )


def read_keys(path: Path) -> TrustedKeys:
    """Read a keys file."""
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != KEYS_FORMAT:
            raise ValueError
        witnesses = {str(v): verifier_from_vkey(v) for v in doc["witnesses"]}  # a key listed twice counts once
        keys = TrustedKeys(verifier_from_vkey(doc["log"]), tuple(witnesses.values()), int(doc["quorum"]))
    except FileNotFoundError:
        raise LedgerError(f"no keys file at {path}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise LedgerError(f"{path} is not a {KEYS_FORMAT} file") from None
    if not 0 <= keys.quorum <= len(keys.witnesses):
        raise LedgerError(
            f"{path}: the quorum ({keys.quorum}) must be between 0 and the number of distinct "
            f"witnesses ({len(keys.witnesses)})"
        )
    return keys


def verify_external(note: str, keys: TrustedKeys, min_cosigners: int, origin: str) -> Checkpoint:
    """A checkpoint held outside the log, accepted only if the trusted log key signed it for ``origin`` and at
    least ``min_cosigners`` of the trusted witnesses validly cosigned it."""
    if min_cosigners == 0:
        cp, _ = open_checkpoint(note, [keys.log])
        if cp.origin != origin:
            raise CheckpointError(f"the checkpoint is of the log {cp.origin!r}, not {origin!r}")
        return cp
    return verify_quorum(note, keys.log, list(keys.witnesses), min_cosigners, origin=origin)


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise ProofError(f"the bundle's {what} is not base64") from None


def verify_bundle(bundle: dict[str, Any], keys: TrustedKeys) -> VerifiedEntry:
    """Check a bundle offline; raises CheckpointError / WitnessError / ProofError / EntryError saying why."""
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise ProofError(f"not a {FORMAT} bundle")
    index = bundle.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ProofError("the bundle's index is not a non-negative integer")
    note = bundle.get("checkpoint")
    if not isinstance(note, str):
        raise ProofError("the bundle has no checkpoint note")
    proof_raw = bundle.get("inclusion_proof")
    if not isinstance(proof_raw, list):
        raise ProofError("the bundle has no inclusion proof")
    if keys.quorum == 0:
        cp, _ = open_checkpoint(note, [keys.log])
    else:
        cp = verify_quorum(note, keys.log, list(keys.witnesses), keys.quorum)
    entry = _b64(bundle.get("entry"), "entry")
    proof = [_b64(h, "inclusion proof") for h in proof_raw]
    merkle.verify_inclusion(merkle.leaf_hash(entry), index, cp.size, proof, cp.root_hash)
    try:
        event = AuditEvent.from_bytes(entry)
    except EntryError as e:
        raise EntryError(f"the entry is included but is not an audit event: {e}") from None
    _, sigs = split_note(note)
    return VerifiedEntry(index, event, cp, signatures=len(sigs))
