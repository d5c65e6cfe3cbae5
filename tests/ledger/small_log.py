"""A small in-memory log for the witness tests: what a witness is shown, without a store."""

from __future__ import annotations

from medspace.ledger import merkle
from medspace.ledger.checkpoint import Checkpoint, NoteSigner
from medspace.ledger.witness import AddCheckpointRequest

ORIGIN = "medspace.example/audit"


class Log:
    """Entries ``<origin> entry <i>``, its key, signed checkpoints, split views and consistency proofs (via
    medspace.ledger.merkle); it grows to whatever size is asked of it."""

    def __init__(self, origin: str = ORIGIN, signer: NoteSigner | None = None) -> None:
        self.origin = origin
        self.signer = signer or NoteSigner.generate(origin)
        self.entries: list[bytes] = []
        self._leaves: list[bytes] = []  # the entries' leaf hashes, kept so large trees stay cheap

    def grow(self, size: int) -> None:
        """Append entries until there are ``size``."""
        while len(self.entries) < size:
            entry = f"{self.origin} entry {len(self.entries)}".encode()
            self.entries.append(entry)
            self._leaves.append(merkle.leaf_hash(entry))

    def leaves(self, size: int) -> list[bytes]:
        """The leaf hashes of the first ``size`` entries."""
        self.grow(size)
        return self._leaves[:size]

    def root(self, size: int) -> bytes:
        """The root hash of the tree of the first ``size`` entries."""
        return merkle.root(self.leaves(size))

    def note(self, size: int) -> str:
        """The checkpoint of size ``size``, signed by the log's key."""
        return Checkpoint(self.origin, size, self.root(size)).sign([self.signer])

    def fork(self, size: int) -> str:
        """A checkpoint of the same size with another root, signed by the same key (a split view)."""
        return Checkpoint(self.origin, size, merkle.root([merkle.leaf_hash(b"forked"), *self.leaves(size)[1:]])
                          ).sign([self.signer])

    def proof(self, old: int, new: int) -> list[bytes]:
        """The consistency proof from size ``old`` to size ``new`` (empty from size 0)."""
        leaves = self.leaves(new)
        return [] if old == 0 else merkle.consistency_proof(
            old, new, lambda level, index, size: merkle.root(leaves[index << level: min((index + 1) << level, size)]))

    def request(self, old: int, new: int) -> AddCheckpointRequest:
        """The add-checkpoint request that takes a witness from size ``old`` to size ``new``."""
        return AddCheckpointRequest(old, tuple(self.proof(old, new)), self.note(new))
