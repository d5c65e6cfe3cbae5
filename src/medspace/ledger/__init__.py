"""The verifiable audit log: RFC 9162 Merkle tree, storage, signed checkpoints, witnesses, offline proofs."""
