"""Errors of the audit log."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of the audit log's errors."""


class ProofError(LedgerError):
    """An inclusion or consistency proof is malformed or does not verify."""


class StorageError(LedgerError):
    """The log's storage cannot be opened, written or read."""


class TamperError(LedgerError):
    """The stored log does not re-derive: an entry or hash was edited, deleted, reordered or truncated."""


class CheckpointError(LedgerError):
    """A checkpoint or signed note is malformed, or its signatures do not verify."""


class WitnessError(LedgerError):
    """A witness refused a checkpoint (rollback, fork, bad proof, bad signature) or a quorum was not reached."""


class EntryError(LedgerError):
    """An audit event is malformed (missing field, patient data where a commitment belongs)."""
