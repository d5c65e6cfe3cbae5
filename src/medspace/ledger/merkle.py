"""RFC 9162 §2.1 Merkle tree (the hashing of RFC 6962): leaf and node hashes, MTH, inclusion and consistency proofs.

One function per algorithm, after transparency-dev/merkle. Hashes are 32-byte ``bytes``.

Node addressing. A node ``(level, index)`` covers the leaves ``[index << level, (index + 1) << level)``. In a tree
of ``size`` leaves every subtree that RFC 9162's recursive definition hashes is of the form
``[index << level, min((index + 1) << level, size))``: it is either *perfect* (complete, ``2**level`` leaves, its
hash never changes once the tree has grown past it) or the *ephemeral* right-border node, which is clipped at
``size`` and is the fold of the perfect subtrees that tile it (:func:`perfect_cover`).

A :data:`NodeSource` is ``node(level, index, size) -> bytes``: the MTH of the leaves
``[index << level, min((index + 1) << level, size))``. Proof generation asks only for such nodes, so a store that
keeps every perfect subtree hash answers each call in O(log n) reads (and can prefetch them all in one query from
:func:`inclusion_path` / :func:`consistency_path` and :func:`perfect_cover`).

Policy on degenerate inputs (matching the test vectors of transparency-dev/merkle):
- inclusion: ``index >= size`` (so also ``size == 0``) fails; a leaf hash or proof element that is not 32 bytes fails.
- consistency: ``size1 > size2`` fails; ``size1 == size2`` needs an empty proof and equal roots (for size 0, both the
  empty-tree hash); ``0 == size1 < size2`` fails: RFC 9162 §2.1.4.1 defines proofs only for ``0 < m < n`` and the
  empty tree commits to nothing, so a caller with no previous state (a witness's first checkpoint) skips the call.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

from medspace.ledger.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

NodeId = tuple[int, int]
NodeSource = Callable[[int, int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """MTH of one entry: SHA-256(0x00 || data) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node: SHA-256(0x01 || left || right) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (RFC 9162 §2.1.1); the empty tree hashes to SHA-256("")."""
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    sha = hashlib.sha256
    # Level by level, promoting a lone last node unchanged: equal to the RFC's split at the largest power of two.
    while len(level) > 1:
        nxt = [sha(_NODE_PREFIX + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of consecutive perfect subtrees of strictly decreasing size, left to right (right fold of node_hash)."""
    if not hashes:
        raise ValueError("nothing to fold")
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def perfect_cover(begin: int, end: int) -> list[NodeId]:
    """Perfect subtrees tiling ``[begin, end)`` largest first; ``begin`` is aligned to the span (a tree or node)."""
    if begin < 0 or end < begin:
        raise ValueError("bad leaf range")
    out: list[NodeId] = []
    width = end - begin
    pos = begin
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            if pos & ((1 << level) - 1):
                raise ValueError("range start is not aligned")
            out.append((level, pos >> level))
            pos += 1 << level
    return out


def node_range(level: int, index: int, size: int) -> tuple[int, int]:
    """Leaf range ``[begin, end)`` that node (level, index) covers in a tree of ``size`` leaves."""
    begin = index << level
    return begin, min((index + 1) << level, size)


def is_perfect(level: int, index: int, size: int) -> bool:
    """Whether node (level, index) is complete (all 2**level leaves present) in a tree of ``size`` leaves."""
    return (index + 1) << level <= size


def extend(
    frontier: Sequence[bytes], size: int, leaves: Sequence[bytes]
) -> tuple[list[tuple[int, int, bytes]], list[bytes]]:
    """Append leaf hashes to a tree given its frontier (hashes of ``perfect_cover(0, size)``).

    Returns the perfect nodes of level >= 1 that the new leaves complete, as (level, index, hash), and the new
    frontier. Each new leaf merges once per trailing zero bit of the new size (a compact range, as in
    transparency-dev/merkle/compact).
    """
    if len(frontier) != size.bit_count():
        raise ValueError("frontier does not match the size")
    stack = list(frontier)
    out: list[tuple[int, int, bytes]] = []
    sha = hashlib.sha256
    n = size
    for h in leaves:
        n += 1
        m, level = n, 0
        while not m & 1:
            h = sha(_NODE_PREFIX + stack.pop() + h).digest()
            level += 1
            m >>= 1
            out.append((level, (n >> level) - 1, h))
        stack.append(h)
    return out, stack


def inclusion_path(index: int, size: int) -> list[NodeId]:
    """Nodes of the inclusion proof of leaf ``index`` in a tree of ``size`` (RFC 9162 §2.1.3.1 PATH), leaf first."""
    if not 0 <= index < size:
        raise ProofError("leaf index out of range")
    return _path_from(0, index, size)


def _path_from(level0: int, index: int, size: int) -> list[NodeId]:
    """Siblings on the way from node (level0, index) to the root of a tree of ``size`` leaves."""
    leaf = index << level0
    last = size - 1
    # Below `inner` the path is in the left part where every level has a sibling; above it, the node is on the
    # right border and has a (left) sibling only where its own bit is 1.
    inner = (leaf ^ last).bit_length()
    out: list[NodeId] = []
    for level in range(level0, last.bit_length()):
        pos = leaf >> level
        if level < inner or pos & 1:
            out.append((level, pos ^ 1))
    return out


def consistency_path(size1: int, size2: int) -> list[NodeId]:
    """Nodes of the consistency proof from ``size1`` to ``size2`` (RFC 9162 §2.1.4.1 PROOF), ``0 < size1 < size2``."""
    if not 0 < size1 < size2:
        raise ProofError("consistency proof needs 0 < size1 < size2")
    # The largest perfect subtree ending at size1, then its inclusion path in the tree of size2; the subtree itself
    # is omitted when it is the whole old tree (size1 a power of two): the verifier knows it as root1.
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    path = _path_from(level, index, size2)
    if index == 0:
        return path
    return [(level, index), *path]


def inclusion_proof(index: int, size: int, node: NodeSource) -> list[bytes]:
    """Audit path of leaf ``index`` in the tree of ``size`` (RFC 9162 §2.1.3.1), read through ``node``."""
    return [node(level, i, size) for level, i in inclusion_path(index, size)]


def consistency_proof(size1: int, size2: int, node: NodeSource) -> list[bytes]:
    """Consistency proof between sizes (RFC 9162 §2.1.4.1), read through ``node``; empty when the sizes are equal."""
    if size1 == size2 and size1 >= 0:
        return []
    return [node(level, i, size2) for level, i in consistency_path(size1, size2)]


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} is not a {HASH_SIZE}-byte hash")


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Root that an inclusion proof implies (RFC 9162 §2.1.3.2 steps 1-4 and the sn == 0 check of step 5)."""
    if not 0 <= index < size:
        raise ProofError("leaf index out of range")
    _check_hash(leaf, "leaf hash")
    fn, sn = index, size - 1
    r = bytes(leaf)
    for p in proof:
        _check_hash(p, "proof element")
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf`` is at ``index`` in the tree of ``size`` with hash ``root`` (RFC 9162 §2.1.3.2)."""
    computed = root_from_inclusion(leaf, index, size, proof)
    if not hmac.compare_digest(computed, bytes(root)):
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree (size2, root2) extends the tree (size1, root1) (RFC 9162 §2.1.4.2)."""
    if size1 < 0 or size2 < size1:
        raise ProofError("size2 is smaller than size1")
    if size1 == size2:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if size1 == 0 and not hmac.compare_digest(bytes(root1), EMPTY_ROOT):
            raise ProofError("the empty tree has another root")
        if not hmac.compare_digest(bytes(root1), bytes(root2)):
            raise ProofError("equal sizes with different roots")
        return
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    # Step 1: an empty path fails.
    if not proof:
        raise ProofError("empty consistency proof")
    for p in proof:
        _check_hash(p, "proof element")
    path = list(proof)
    # Step 2: the old root is the first node when size1 is a power of two.
    if size1 & (size1 - 1) == 0:
        path.insert(0, bytes(root1))
    # Step 3.
    fn, sn = size1 - 1, size2 - 1
    # Step 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 7.
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if not hmac.compare_digest(fr, bytes(root1)):
        raise ProofError("consistency proof does not lead to root1")
    if not hmac.compare_digest(sr, bytes(root2)):
        raise ProofError("consistency proof does not lead to root2")
