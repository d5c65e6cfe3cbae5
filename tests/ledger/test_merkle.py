"""RFC 9162 Merkle tree: the transparency-dev vectors, and property tests against a naive RFC implementation."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.ledger import merkle
from medspace.ledger.errors import ProofError

VECTORS = Path(__file__).parent / "vectors_rfc6962"


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _load(kind: str) -> list[tuple[str, dict[str, Any]]]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    return [(str(f.relative_to(VECTORS)), json.loads(f.read_text())) for f in files]


INCLUSION = _load("inclusion")
CONSISTENCY = _load("consistency")


def test_vectors_are_present() -> None:
    assert len(INCLUSION) == 98
    assert len(CONSISTENCY) == 98
    assert sum(not v["wantErr"] for _, v in INCLUSION + CONSISTENCY) == 12


@pytest.mark.parametrize(("name", "case"), INCLUSION, ids=[n for n, _ in INCLUSION])
def test_inclusion_vector(name: str, case: dict[str, Any]) -> None:
    proof = [_b64(p) for p in case["proof"] or []]
    args = (_b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof, _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize(("name", "case"), CONSISTENCY, ids=[n for n, _ in CONSISTENCY])
def test_consistency_vector(name: str, case: dict[str, Any]) -> None:
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), proof)
    if case["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


# --- a naive, literal transcription of RFC 9162 §2.1 to test the iterative code against -------------------------


def _k(n: int) -> int:
    """Largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def naive_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + naive_mth(d[:k]) + naive_mth(d[k:])).digest()


def naive_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*naive_path(m, d[:k]), naive_mth(d[k:])]
    return [*naive_path(m - k, d[k:]), naive_mth(d[:k])]


def naive_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [naive_mth(d)]
    k = _k(n)
    if m <= k:
        return [*naive_subproof(m, d[:k], b), naive_mth(d[k:])]
    return [*naive_subproof(m - k, d[k:], False), naive_mth(d[:k])]


def _data(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") * (i % 3) for i in range(n)]


def _source(d: list[bytes]) -> merkle.NodeSource:
    def node(level: int, index: int, size: int) -> bytes:
        begin, end = merkle.node_range(level, index, size)
        assert 0 <= begin < end <= len(d)
        return naive_mth(d[begin:end])

    return node


def test_known_roots() -> None:
    assert merkle.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    # transparency-dev's reference roots for the leaves "", 0x00, 0x10, 0x2021, 0x3031, 0x40414243, ...
    leaves = [
        bytes.fromhex(h)
        for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
    ]
    want = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert merkle.root([merkle.leaf_hash(x) for x in leaves]).hex() == want


@given(st.integers(min_value=0, max_value=70))
def test_root_matches_naive(n: int) -> None:
    d = _data(n)
    assert merkle.root([merkle.leaf_hash(x) for x in d]) == naive_mth(d)


@given(st.integers(min_value=1, max_value=300), st.data())
@settings(max_examples=150, deadline=None)
def test_every_inclusion_proof_verifies(n: int, data: st.DataObject) -> None:
    d = _data(n)
    top = naive_mth(d)
    node = _source(d)
    for m in data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8)):
        proof = merkle.inclusion_proof(m, n, node)
        assert proof == naive_path(m, d)
        leaf = merkle.leaf_hash(d[m])
        merkle.verify_inclusion(leaf, m, n, proof, top)
        assert merkle.root_from_inclusion(leaf, m, n, proof) == top


def test_all_inclusion_proofs_small_trees() -> None:
    for n in range(1, 34):
        d = _data(n)
        top = naive_mth(d)
        for m in range(n):
            proof = merkle.inclusion_proof(m, n, _source(d))
            assert proof == naive_path(m, d)
            merkle.verify_inclusion(merkle.leaf_hash(d[m]), m, n, proof, top)


def test_all_consistency_proofs_small_trees() -> None:
    for n in range(1, 34):
        d = _data(n)
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(m, n, _source(d))
            assert proof == (naive_subproof(m, d, True) if m < n else [])
            merkle.verify_consistency(m, n, naive_mth(d[:m]), naive_mth(d), proof)


@given(st.integers(min_value=2, max_value=400), st.data())
@settings(max_examples=150, deadline=None)
def test_every_consistency_proof_verifies(n: int, data: st.DataObject) -> None:
    d = _data(n)
    m = data.draw(st.integers(1, n - 1))
    proof = merkle.consistency_proof(m, n, _source(d))
    assert proof == naive_subproof(m, d, True)
    merkle.verify_consistency(m, n, naive_mth(d[:m]), naive_mth(d), proof)


def _inclusion_shape(index: int, size: int, length: int) -> tuple[str, ...] | None:
    """The hashing directions RFC 9162 §2.1.3.2 takes for this (index, size, proof length); None when it fails."""
    if not 0 <= index < size:
        return None
    fn, sn, out = index, size - 1, []
    for _ in range(length):
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            out.append("L")
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            out.append("R")
        fn, sn = fn >> 1, sn >> 1
    return tuple(out) if sn == 0 else None


def _consistency_shape(size1: int, size2: int, length: int) -> tuple[str, ...] | None:
    """The hashing directions RFC 9162 §2.1.4.2 takes for these sizes and proof length; None when it fails."""
    if not 0 < size1 < size2:
        return None
    pow2 = size1 & (size1 - 1) == 0
    fn, sn, out = size1 - 1, size2 - 1, ["P" if pow2 else "-"]
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    for _ in range(length - (0 if pow2 else 1)):
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            out.append("L")
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            out.append("R")
        fn, sn = fn >> 1, sn >> 1
    return tuple(out) if sn == 0 else None


def _flip(proof: list[bytes], which: int, bit: int) -> list[bytes]:
    out = list(proof)
    b = bytearray(out[which])
    b[bit // 8] ^= 1 << (bit % 8)
    out[which] = bytes(b)
    return out


@given(st.integers(min_value=1, max_value=200), st.data())
@settings(max_examples=150, deadline=None)
def test_tampered_inclusion_fails(n: int, data: st.DataObject) -> None:
    d = _data(n)
    top = naive_mth(d)
    m = data.draw(st.integers(0, n - 1))
    proof = merkle.inclusion_proof(m, n, _source(d))
    leaf = merkle.leaf_hash(d[m])
    bit = data.draw(st.integers(0, 255))
    if proof:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf, m, n, _flip(proof, data.draw(st.integers(0, len(proof) - 1)), bit), top)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(_flip([leaf], 0, bit)[0], m, n, proof, top)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaf, m, n, proof, _flip([top], 0, bit)[0])
    wrong_index = data.draw(st.integers(-1, n + 2).filter(lambda i: i != m))
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaf, wrong_index, n, proof, top)
    wrong_size = data.draw(st.integers(0, 2 * n + 2).filter(lambda s: s != n))
    if _inclusion_shape(m, wrong_size, len(proof)) != _inclusion_shape(m, n, len(proof)):
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf, m, wrong_size, proof, top)
    else:
        # RFC 6962 proofs do not bind the size when it hashes the same way (e.g. 65 vs 66 for leaf 0): the signed
        # checkpoint binds it. The verifier can only be as strict as the shape.
        merkle.verify_inclusion(leaf, m, wrong_size, proof, top)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaf, m, n, [*proof, proof[0] if proof else leaf], top)
    if proof:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf, m, n, proof[:-1], top)


@given(st.integers(min_value=2, max_value=200), st.data())
@settings(max_examples=150, deadline=None)
def test_tampered_consistency_fails(n: int, data: st.DataObject) -> None:
    d = _data(n)
    m = data.draw(st.integers(1, n - 1))
    r1, r2 = naive_mth(d[:m]), naive_mth(d)
    proof = merkle.consistency_proof(m, n, _source(d))
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, r1, r2, _flip(proof, data.draw(st.integers(0, len(proof) - 1)), bit))
    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, _flip([r1], 0, bit)[0], r2, proof)
    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, r1, _flip([r2], 0, bit)[0], proof)
    wrong_m = data.draw(st.integers(0, n + 1).filter(lambda x: x != m))
    with pytest.raises(ProofError):
        merkle.verify_consistency(wrong_m, n, r1, r2, proof)
    wrong_n = data.draw(st.integers(0, 2 * n + 2).filter(lambda x: x != n))
    if _consistency_shape(m, wrong_n, len(proof)) != _consistency_shape(m, n, len(proof)):
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, wrong_n, r1, r2, proof)
    else:
        merkle.verify_consistency(m, wrong_n, r1, r2, proof)
    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, r1, r2, [*proof, proof[0]])
    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, r1, r2, proof[:-1])
    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, r2, r1, proof)


def test_degenerate_inputs() -> None:
    with pytest.raises(ProofError):
        merkle.inclusion_path(0, 0)
    with pytest.raises(ProofError):
        merkle.consistency_path(0, 3)
    assert merkle.consistency_proof(5, 5, _source(_data(5))) == []
    with pytest.raises(ProofError):
        merkle.verify_inclusion(b"short", 0, 1, [], b"short")
    merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    assert merkle.perfect_cover(0, 13) == [(3, 0), (2, 2), (0, 12)]
    with pytest.raises(ValueError, match="aligned"):
        merkle.perfect_cover(1, 4)


@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=10))
@settings(max_examples=100, deadline=None)
def test_extend_emits_every_perfect_node_once(batches: list[int]) -> None:
    d = _data(sum(batches))
    leaves = [merkle.leaf_hash(x) for x in d]
    frontier: list[bytes] = []
    size = 0
    seen: dict[tuple[int, int], bytes] = {}
    for k in batches:
        completed, frontier = merkle.extend(frontier, size, leaves[size : size + k])
        for level, index, h in completed:
            assert (level, index) not in seen
            seen[(level, index)] = h
        size += k
        assert [lv for lv, _ in merkle.perfect_cover(0, size)] == [
            lv for lv in range(size.bit_length() - 1, -1, -1) if size >> lv & 1
        ]
        if size:
            assert merkle.fold(frontier) == naive_mth(d[:size])
    want = {(lv, i) for lv in range(1, size.bit_length()) for i in range(size >> lv)}
    assert set(seen) == want
    for (lv, i), h in seen.items():
        assert h == naive_mth(d[i << lv : (i + 1) << lv])
    with pytest.raises(ValueError, match="frontier"):
        merkle.extend([], 3, [])
