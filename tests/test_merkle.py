"""Tests for domain.merkle against RFC 9162 §2.1, pymerkle and the transparency-dev corpus.

Four independent sources of truth, so a shared misreading has to fool all of them:

1. the RFC 6962 / RFC 9162 known roots for the eight standard leaves, hard-coded below;
2. pymerkle 7.0 (test-only), for roots and inclusion proofs of every tree up to 300 leaves;
3. a naive reference written here straight from the RFC's recursive definitions (MTH, PATH,
   PROOF/SUBPROOF) and from the MTC draft's SUBTREE_SUBPROOF, sharing no code with the module;
4. the transparency-dev/merkle verification probes in tests/vectors/merkle/testdata.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree  # type: ignore[import-untyped]

from domain import merkle
from domain.errors import LedgerIntegrityError, ProofError
from domain.merkle import (
    EMPTY_ROOT,
    CompactRange,
    complete_subtrees,
    consistency_proof,
    consistency_proof_length,
    consistency_proof_ranges,
    inclusion_proof,
    inclusion_proof_length,
    inclusion_proof_ranges,
    is_valid_subtree,
    leaf_hash,
    node_hash,
    range_hash,
    root_from_inclusion_proof,
    root_of,
    subtree_consistency_proof,
    subtree_consistency_proof_length,
    subtree_consistency_proof_ranges,
    subtree_inclusion_proof,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)

VECTORS = Path(__file__).parent / "vectors" / "merkle" / "testdata"

Node = Callable[[int, int], bytes]


# ---------------------------------------------------------------------------------------------
# Naive reference, straight from RFC 9162 §2.1 and the MTC draft §4.4.1. Recursive on purpose,
# over leaf *data*, using hashlib directly: nothing here comes from domain.merkle.
# ---------------------------------------------------------------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + d[0])
    k = _k(n)
    return _sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:n])]
    return ref_path(m - k, d[k:n]) + [ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:n])]
    return ref_subproof(m - k, d[k:n], False) + [ref_mth(d[:k])]


def ref_subtree_proof(start: int, end: int, d: Sequence[bytes]) -> list[bytes]:
    if start == end:
        return []
    return ref_subtree_subproof(start, end, d, True)


def ref_subtree_subproof(start: int, end: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if start == 0 and end == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if end <= k:
        return ref_subtree_subproof(start, end, d[:k], b) + [ref_mth(d[k:n])]
    if k <= start:
        return ref_subtree_subproof(start - k, end - k, d[k:n], b) + [ref_mth(d[:k])]
    assert start == 0
    return ref_subtree_subproof(0, end - k, d[k:n], False) + [ref_mth(d[:k])]


# The *shape* of a proof: which side each element is hashed on, bottom up, and how the
# consistency proof starts. The RFC verifiers see nothing of the tree sizes but this shape, so a
# proof presented with other sizes of the very same shape is (rightly) accepted: tree sizes are
# authenticated by the signed tree head, not by the proof. Every other change must be rejected.


def ref_path_shape(m: int, n: int) -> tuple[str, ...] | None:
    if not 0 <= m < n:
        return None
    if n == 1:
        return ()
    k = _k(n)
    if m < k:
        shape = ref_path_shape(m, k)
        assert shape is not None
        return (*shape, "right")
    shape = ref_path_shape(m - k, n - k)
    assert shape is not None
    return (*shape, "left")


def ref_proof_shape(m: int, n: int, b: bool = True) -> tuple[str, ...] | None:
    if not 0 < m <= n:
        return None
    if m == n:
        return ("old root",) if b else ("start node",)
    k = _k(n)
    if m <= k:
        shape = ref_proof_shape(m, k, b)
        assert shape is not None
        return (*shape, "right")
    shape = ref_proof_shape(m - k, n - k, False)
    assert shape is not None
    return (*shape, "left")


# ---------------------------------------------------------------------------------------------
# Shared fixtures: leaf data of varied lengths (the functions must work for any leaf data), and
# the node store a ledger would keep, filled from CompactRange.append.
# ---------------------------------------------------------------------------------------------

LEAF_DATA = [bytes([i % 251]) * (i % 7) + i.to_bytes(2, "big") for i in range(300)]
LEAF_HASHES = [leaf_hash(data) for data in LEAF_DATA]


def _build_store(leaf_hashes: Sequence[bytes]) -> dict[tuple[int, int], bytes]:
    store: dict[tuple[int, int], bytes] = {}
    compact = CompactRange()
    for value in leaf_hashes:
        for level, index, node_value in compact.append(value):
            store[(level, index)] = node_value
    return store


STORE = _build_store(LEAF_HASHES)


def node(level: int, index: int) -> bytes:
    return STORE[(level, index)]


ROOTS = [root_of(LEAF_HASHES[:n]) for n in range(len(LEAF_HASHES) + 1)]


def _flip(value: bytes, bit: int) -> bytes:
    flipped = bytearray(value)
    flipped[bit // 8 % len(value)] ^= 1 << (bit % 8)
    return bytes(flipped)


def _rejects(check: Callable[..., None], *args: Any) -> bool:
    try:
        check(*args)
    except ProofError:
        return True
    return False


# ---------------------------------------------------------------------------------------------
# 1. Known values
# ---------------------------------------------------------------------------------------------

RFC6962_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]

RFC6962_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


@pytest.mark.parametrize("size", sorted(RFC6962_ROOTS))
def test_rfc6962_known_roots(size: int) -> None:
    leaves = [leaf_hash(bytes.fromhex(data)) for data in RFC6962_LEAVES[:size]]
    compact = CompactRange()
    for value in leaves:
        compact.append(value)

    assert root_of(leaves).hex() == RFC6962_ROOTS[size]
    assert compact.root().hex() == RFC6962_ROOTS[size]


def test_rfc6962_known_roots_match_the_brief() -> None:
    # The brief's abbreviations, so the full values above cannot drift from them unnoticed.
    assert RFC6962_ROOTS[1].startswith("6e340b9c") and RFC6962_ROOTS[1].endswith("a01d")
    assert RFC6962_ROOTS[2].startswith("fac54203") and RFC6962_ROOTS[2].endswith("c125")
    assert RFC6962_ROOTS[3].startswith("aeb6bcfe") and RFC6962_ROOTS[3].endswith("6e77")
    assert RFC6962_ROOTS[8].startswith("5dc9da79") and RFC6962_ROOTS[8].endswith("4328")


def test_hashing_primitives() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_of([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"L" * 32, b"R" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


def test_rfc6962_example_proof_shapes() -> None:
    # RFC 6962 §2.1.3's worked examples over the seven-leaf tree.
    assert consistency_proof_ranges(3, 7) == [(2, 3), (3, 4), (0, 2), (4, 7)]
    assert consistency_proof_ranges(4, 7) == [(4, 7)]
    assert consistency_proof_ranges(6, 7) == [(4, 6), (6, 7), (0, 4)]
    assert inclusion_proof_ranges(0, 7) == [(1, 2), (2, 4), (4, 7)]
    assert inclusion_proof_ranges(3, 7) == [(2, 3), (0, 2), (4, 7)]
    assert inclusion_proof_ranges(4, 7) == [(5, 6), (6, 7), (0, 4)]
    assert inclusion_proof_ranges(6, 7) == [(4, 6), (0, 4)]


# ---------------------------------------------------------------------------------------------
# 2. Agreement with pymerkle 7.0
#
# What pymerkle 7.0.0 does, read from its source: InmemoryTree(algorithm="sha256") hashes an
# appended entry as sha256(0x00 || entry) and a node as sha256(0x01 || left || right) (its
# "security" mode, on by default; disable_security=True would drop both prefixes); the empty
# tree is sha256(""). Leaf indices count from one. get_state is a deprecated alias of get_root.
# prove_inclusion(i, size).path starts with the leaf hash itself, then the RFC's PATH, bottom up.
# Its consistency proofs are not the RFC's (they always start at a leaf and split at m < k rather
# than m <= k), so only roots and inclusion proofs are compared.
# ---------------------------------------------------------------------------------------------


def test_pymerkle_agrees_on_roots_and_inclusion_proofs() -> None:
    tree = InmemoryTree(algorithm="sha256")
    for data in LEAF_DATA:
        tree.append_entry(data)
    assert tree.security is True

    for position, value in enumerate(LEAF_HASHES):
        assert tree.get_leaf(position + 1) == value

    for size in range(1, len(LEAF_DATA) + 1):
        assert tree.get_root(size) == ROOTS[size], size

        for index in range(size):
            theirs = tree.prove_inclusion(index + 1, size).path
            ours = inclusion_proof(index, size, node)

            assert theirs[0] == LEAF_HASHES[index]
            assert theirs[1:] == ours, (index, size)
            verify_inclusion(LEAF_HASHES[index], index, size, theirs[1:], ROOTS[size])


# ---------------------------------------------------------------------------------------------
# 3. Agreement with the naive reference, and rejection of every tampered variant
# ---------------------------------------------------------------------------------------------

SMALL = 64


def test_roots_match_reference() -> None:
    for size in range(SMALL + 1):
        assert ROOTS[size] == ref_mth(LEAF_DATA[:size])


def test_inclusion_proofs_match_reference_and_verify() -> None:
    for size in range(1, SMALL + 1):
        for index in range(size):
            proof = inclusion_proof(index, size, node)

            assert proof == ref_path(index, LEAF_DATA[:size])
            assert inclusion_proof_length(index, size) == len(proof)
            verify_inclusion(LEAF_HASHES[index], index, size, proof, ROOTS[size])
            assert root_from_inclusion_proof(LEAF_HASHES[index], index, size, proof) == ROOTS[size]


def test_consistency_proofs_match_reference_and_verify() -> None:
    for size2 in range(1, SMALL + 1):
        for size1 in range(1, size2 + 1):
            proof = consistency_proof(size1, size2, node)

            assert proof == ref_proof(size1, LEAF_DATA[:size2])
            assert consistency_proof_length(size1, size2) == len(proof)
            verify_consistency(size1, size2, proof, ROOTS[size1], ROOTS[size2])


def test_tampered_inclusion_proofs_are_rejected() -> None:
    for size in range(1, SMALL + 1):
        root = ROOTS[size]
        for index in range(size):
            leaf = LEAF_HASHES[index]
            proof = inclusion_proof(index, size, node)

            for position in range(len(proof)):
                for bit in (0, 77, 255):
                    bad = [*proof]
                    bad[position] = _flip(bad[position], bit)
                    assert _rejects(verify_inclusion, leaf, index, size, bad, root)
                dropped = proof[:position] + proof[position + 1 :]
                assert _rejects(verify_inclusion, leaf, index, size, dropped, root)
            assert _rejects(verify_inclusion, leaf, index, size, [*proof, ROOTS[size]], root)
            assert _rejects(verify_inclusion, leaf, index, size, [root, *proof], root)
            assert _rejects(verify_inclusion, _flip(leaf, 3), index, size, proof, root)
            assert _rejects(verify_inclusion, leaf, index, size, proof, _flip(root, 200))

            for other_index in {index - 1, index + 1, index ^ 2, size, -1}:
                if other_index != index:
                    assert _rejects(verify_inclusion, leaf, other_index, size, proof, root)

            want = ref_path_shape(index, size)
            for other_size in {size - 1, size + 1, size + 2, size * 2, size // 2, 0}:
                accepted = not _rejects(verify_inclusion, leaf, index, other_size, proof, root)
                assert accepted == (ref_path_shape(index, other_size) == want), other_size


def test_tampered_consistency_proofs_are_rejected() -> None:
    for size2 in range(1, SMALL + 1):
        for size1 in range(1, size2 + 1):
            root1, root2 = ROOTS[size1], ROOTS[size2]
            proof = consistency_proof(size1, size2, node)

            for position in range(len(proof)):
                for bit in (0, 77, 255):
                    bad = [*proof]
                    bad[position] = _flip(bad[position], bit)
                    assert _rejects(verify_consistency, size1, size2, bad, root1, root2)
                dropped = proof[:position] + proof[position + 1 :]
                assert _rejects(verify_consistency, size1, size2, dropped, root1, root2)
            for extra in (root1, root2, LEAF_HASHES[0]):
                assert _rejects(verify_consistency, size1, size2, [*proof, extra], root1, root2)
                assert _rejects(verify_consistency, size1, size2, [extra, *proof], root1, root2)
            assert _rejects(verify_consistency, size1, size2, proof, _flip(root1, 9), root2)
            assert _rejects(verify_consistency, size1, size2, proof, root1, _flip(root2, 9))
            if size1 != size2:
                assert _rejects(verify_consistency, size1, size2, proof, root2, root1)

            want = ref_proof_shape(size1, size2)
            others = {
                (size1 - 1, size2),
                (size1 + 1, size2),
                (size1 * 2, size2),
                (size1, size2 - 1),
                (size1, size2 + 1),
                (size1, size2 * 2),
                (size1, size2 // 2),
                (0, size2),
                (size2, size1),
            }
            for other1, other2 in others - {(size1, size2)}:
                accepted = not _rejects(verify_consistency, other1, other2, proof, root1, root2)
                assert accepted == (ref_proof_shape(other1, other2) == want), (other1, other2)


def test_proof_ranges_are_complete_subtrees_or_suffixes() -> None:
    def assert_kind(start: int, end: int, size: int) -> None:
        length = end - start
        complete = length & (length - 1) == 0 and start % length == 0
        suffix = end == size and is_valid_subtree(start, end)
        assert 0 <= start < end <= size
        assert complete or suffix, (start, end, size)

    for size in range(1, 2 * SMALL + 1):
        for index in range(size):
            for start, end in inclusion_proof_ranges(index, size):
                assert_kind(start, end, size)
        for size1 in range(1, size + 1):
            for start, end in consistency_proof_ranges(size1, size):
                assert_kind(start, end, size)
        for first, last in _valid_subtrees(size):
            for start, end in subtree_consistency_proof_ranges(first, last, size):
                assert_kind(start, end, size)


def test_lengths_are_arithmetic_and_match_the_shapes() -> None:
    for size in range(1, 4 * SMALL + 1):
        for index in range(size):
            assert inclusion_proof_length(index, size) == len(inclusion_proof_ranges(index, size))
        for size1 in range(1, size + 1):
            want = len(consistency_proof_ranges(size1, size))
            assert consistency_proof_length(size1, size) == want


def test_complete_subtrees_decomposition() -> None:
    assert complete_subtrees(0, 0) == []
    assert complete_subtrees(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert complete_subtrees(3, 13) == [(0, 3), (2, 1), (2, 2), (0, 12)]
    for start in range(70):
        for end in range(start, 70):
            subtrees = complete_subtrees(start, end)
            covered = start
            for level, index in subtrees:
                assert index << level == covered
                covered += 1 << level
            assert covered == end
            if start == 0:
                assert [level for level, _ in subtrees] == [
                    bit for bit in reversed(range(end.bit_length())) if end >> bit & 1
                ]


def test_range_hash_is_the_mth_of_the_range() -> None:
    for start in range(40):
        for end in range(start + 1, 80):
            if is_valid_subtree(start, end):
                assert range_hash(start, end, node) == ref_mth(LEAF_DATA[start:end])
            else:
                with pytest.raises(ValueError):
                    range_hash(start, end, node)


# ---------------------------------------------------------------------------------------------
# Subtrees (MTC draft §4): generation against the reference, verification, tampering.
# ---------------------------------------------------------------------------------------------


def test_subtree_examples_from_the_draft() -> None:
    # §4.3.1: entry 10 of [8, 13) is proven by d[11], [8, 10) and d[12].
    ranges = [(8 + lo, 8 + hi) for lo, hi in inclusion_proof_ranges(10 - 8, 13 - 8)]
    assert ranges == [(11, 12), (8, 10), (12, 13)]
    # §4.4.2: [4, 8) in 14 needs [0, 4) and [8, 14); [8, 13) in 14 needs 12, 13, [8, 12), [0, 8).
    assert subtree_consistency_proof_ranges(4, 8, 14) == [(0, 4), (8, 14)]
    assert subtree_consistency_proof_ranges(8, 13, 14) == [(12, 13), (13, 14), (8, 12), (0, 8)]
    assert is_valid_subtree(8, 13) and is_valid_subtree(3, 3) and is_valid_subtree(0, 7)
    assert not is_valid_subtree(1, 5) and not is_valid_subtree(2, 6) and not is_valid_subtree(3, 2)


def _valid_subtrees(size: int) -> list[tuple[int, int]]:
    return [(s, e) for s in range(size + 1) for e in range(s, size + 1) if is_valid_subtree(s, e)]


def test_subtree_consistency_proofs_match_reference_verify_and_resist_tampering() -> None:
    for size in range(1, 33):
        root = ROOTS[size]
        for start, end in _valid_subtrees(size):
            subtree = ref_mth(LEAF_DATA[start:end])
            proof = subtree_consistency_proof(start, end, size, node)

            assert proof == ref_subtree_proof(start, end, LEAF_DATA[:size])
            assert subtree_consistency_proof_length(start, end, size) == len(proof)
            if start == 0 and end > 0:
                assert proof == consistency_proof(end, size, node)
            if end == start + 1:
                assert proof == inclusion_proof(start, size, node)
            verify_subtree_consistency(start, end, size, proof, subtree, root)

            for position in range(len(proof)):
                bad = [*proof]
                bad[position] = _flip(bad[position], 100)
                assert _rejects(verify_subtree_consistency, start, end, size, bad, subtree, root)
                dropped = proof[:position] + proof[position + 1 :]
                assert _rejects(
                    verify_subtree_consistency, start, end, size, dropped, subtree, root
                )
            assert _rejects(
                verify_subtree_consistency, start, end, size, [*proof, root], subtree, root
            )
            assert _rejects(
                verify_subtree_consistency, start, end, size, proof, _flip(subtree, 1), root
            )
            if start < end:
                assert _rejects(
                    verify_subtree_consistency, start, end, size, proof, subtree, _flip(root, 1)
                )


def test_subtree_inclusion_proofs_verify_and_resist_tampering() -> None:
    for start, end in _valid_subtrees(40):
        if start == end:
            continue
        subtree = ref_mth(LEAF_DATA[start:end])
        for index in range(start, end):
            proof = subtree_inclusion_proof(index, start, end, node)

            assert proof == ref_path(index - start, LEAF_DATA[start:end])
            verify_subtree_inclusion(LEAF_HASHES[index], index, start, end, proof, subtree)
            for position in range(len(proof)):
                bad = [*proof]
                bad[position] = _flip(bad[position], 31)
                assert _rejects(
                    verify_subtree_inclusion, LEAF_HASHES[index], index, start, end, bad, subtree
                )
            assert _rejects(
                verify_subtree_inclusion, LEAF_HASHES[index], index, start, end, proof, EMPTY_ROOT
            )


def test_empty_subtree_follows_the_draft() -> None:
    # §4.4.3 step 2: an empty subtree is consistent with any tree, given an empty proof and the
    # empty hash; the root is not compared (but must still be a well-formed hash).
    verify_subtree_consistency(5, 5, 9, [], EMPTY_ROOT, ROOTS[9])
    verify_subtree_consistency(0, 0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError, match="empty subtree has hash"):
        verify_subtree_consistency(5, 5, 9, [], ROOTS[9], ROOTS[9])
    with pytest.raises(ProofError, match="proof has 1 hashes, want 0"):
        verify_subtree_consistency(5, 5, 9, [EMPTY_ROOT], EMPTY_ROOT, ROOTS[9])
    with pytest.raises(ProofError, match="outside subtree"):
        verify_subtree_inclusion(EMPTY_ROOT, 5, 5, 5, [], EMPTY_ROOT)


# ---------------------------------------------------------------------------------------------
# 4. The transparency-dev/merkle corpus
#
# Where casetrail's verifier is deliberately stricter than the corpus, the probe is listed here
# with the reason and must be rejected.
# ---------------------------------------------------------------------------------------------

NOT_A_HASH = "a 'root' of 12 ASCII bytes (\"don't care\"); casetrail requires 32-byte hashes"

CORPUS_DEVIATIONS = {
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json": NOT_A_HASH,
    "subtreeconsistency/additional/sizes-are-equal-one-and-proof-is-empty.json": NOT_A_HASH,
    "subtreeconsistency/additional/subtree-is-empty-sizes-are-equal-one-subtree-root-"
    "valid-tree-root-random-proof-is-empty.json": NOT_A_HASH,
    "subtreeconsistency/additional/subtree-is-empty-sizes-are-equal-zero-subtree-root-"
    "valid-tree-root-random-proof-is-empty.json": NOT_A_HASH,
}


def _probes(kind: str) -> list[Any]:
    return [
        pytest.param(path, id=str(path.relative_to(VECTORS)))
        for path in sorted((VECTORS / kind).rglob("*.json"))
    ]


def _b64(value: str | None) -> Any:
    return None if value is None else base64.b64decode(value)


def _load(path: Path) -> tuple[dict[str, Any], list[Any]]:
    probe = json.loads(path.read_text())
    proof = [_b64(element) for element in probe["proof"] or []]
    return probe, proof


def _expect(path: Path, probe: dict[str, Any], check: Callable[[], None]) -> None:
    name = str(path.relative_to(VECTORS))
    want_error = probe["wantErr"] or name in CORPUS_DEVIATIONS
    if want_error:
        with pytest.raises(ProofError):
            check()
    else:
        check()


def test_corpus_is_present() -> None:
    counts = {
        kind: len(_probes(kind))
        for kind in ("inclusion", "consistency", "subtreeinclusion", "subtreeconsistency")
    }
    assert all(count > 50 for count in counts.values()), counts
    for name in CORPUS_DEVIATIONS:
        assert json.loads((VECTORS / name).read_text())["wantErr"] is False


@pytest.mark.parametrize("path", _probes("inclusion"))
def test_corpus_inclusion(path: Path) -> None:
    probe, proof = _load(path)
    _expect(
        path,
        probe,
        lambda: verify_inclusion(
            _b64(probe["leafHash"]), probe["leafIdx"], probe["treeSize"], proof, _b64(probe["root"])
        ),
    )


@pytest.mark.parametrize("path", _probes("consistency"))
def test_corpus_consistency(path: Path) -> None:
    probe, proof = _load(path)
    _expect(
        path,
        probe,
        lambda: verify_consistency(
            probe["size1"], probe["size2"], proof, _b64(probe["root1"]), _b64(probe["root2"])
        ),
    )


@pytest.mark.parametrize("path", _probes("subtreeinclusion"))
def test_corpus_subtree_inclusion(path: Path) -> None:
    probe, proof = _load(path)
    _expect(
        path,
        probe,
        lambda: verify_subtree_inclusion(
            _b64(probe["leafHash"]),
            probe["leafIdx"],
            probe["start"],
            probe["end"],
            proof,
            _b64(probe["root"]),
        ),
    )


@pytest.mark.parametrize("path", _probes("subtreeconsistency"))
def test_corpus_subtree_consistency(path: Path) -> None:
    probe, proof = _load(path)
    _expect(
        path,
        probe,
        lambda: verify_subtree_consistency(
            probe["start"],
            probe["end"],
            probe["size"],
            proof,
            _b64(probe["root1"]),
            _b64(probe["root2"]),
        ),
    )


# ---------------------------------------------------------------------------------------------
# 5. Issue cases
# ---------------------------------------------------------------------------------------------


def test_inclusion_in_a_tree_of_size_one() -> None:
    leaf = LEAF_HASHES[0]

    verify_inclusion(leaf, 0, 1, [], leaf)
    assert inclusion_proof(0, 1, node) == []
    assert root_from_inclusion_proof(leaf, 0, 1, []) == leaf == ROOTS[1]
    with pytest.raises(ProofError, match="proof has 1 hashes, want 0 for index 0"):
        verify_inclusion(leaf, 0, 1, [leaf], leaf)


def test_leaf_index_equal_to_tree_size_is_rejected() -> None:
    proof = inclusion_proof(3, 4, node)

    with pytest.raises(ProofError, match="leaf index 4 is not in a tree of size 4"):
        verify_inclusion(LEAF_HASHES[3], 4, 4, proof, ROOTS[4])


def test_proof_for_index_5_of_7_presented_for_size_4_is_rejected() -> None:
    proof = inclusion_proof(5, 7, node)
    verify_inclusion(LEAF_HASHES[5], 5, 7, proof, ROOTS[7])

    with pytest.raises(ProofError, match="leaf index 5 is not in a tree of size 4"):
        verify_inclusion(LEAF_HASHES[5], 5, 4, proof, ROOTS[7])
    with pytest.raises(ProofError):
        verify_inclusion(LEAF_HASHES[5], 5, 4, proof, ROOTS[4])


def test_consistency_proof_3_to_7_presented_as_3_to_9_is_rejected() -> None:
    proof = consistency_proof(3, 7, node)
    verify_consistency(3, 7, proof, ROOTS[3], ROOTS[7])

    with pytest.raises(ProofError, match="proof has 4 hashes, want 5 for sizes 3 to 9"):
        verify_consistency(3, 9, proof, ROOTS[3], ROOTS[7])
    with pytest.raises(ProofError):
        verify_consistency(3, 9, proof, ROOTS[3], ROOTS[9])


def test_consistency_proof_1_to_2_presented_as_1_to_3_is_rejected() -> None:
    proof = consistency_proof(1, 2, node)
    verify_consistency(1, 2, proof, ROOTS[1], ROOTS[2])

    with pytest.raises(ProofError, match="proof has 1 hashes, want 2 for sizes 1 to 3"):
        verify_consistency(1, 3, proof, ROOTS[1], ROOTS[2])
    with pytest.raises(ProofError):
        verify_consistency(1, 3, proof, ROOTS[1], ROOTS[3])


def test_size_zero_is_rejected() -> None:
    with pytest.raises(ProofError, match="tree size is 0, want a positive size"):
        verify_inclusion(EMPTY_ROOT, 0, 0, [], EMPTY_ROOT)
    with pytest.raises(ProofError, match="old tree size is 0, want a positive size"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError, match="old tree size is 0, want a positive size"):
        verify_consistency(0, 5, [], EMPTY_ROOT, ROOTS[5])
    with pytest.raises(ProofError, match="old tree size 5 exceeds new tree size 0"):
        verify_consistency(5, 0, [], ROOTS[5], EMPTY_ROOT)
    with pytest.raises(ValueError):
        consistency_proof_ranges(0, 5)
    with pytest.raises(ValueError):
        inclusion_proof_ranges(0, 0)


def test_equal_sizes_with_empty_proof_and_equal_roots_are_accepted() -> None:
    for size in (1, 2, 7, 64):
        verify_consistency(size, size, [], ROOTS[size], ROOTS[size])
        assert consistency_proof(size, size, node) == []

    with pytest.raises(ProofError, match="root2 .* does not match root1 .* both trees have size 7"):
        verify_consistency(7, 7, [], ROOTS[7], ROOTS[6])
    with pytest.raises(ProofError, match="proof has 1 hashes, want 0 for sizes 7 to 7"):
        verify_consistency(7, 7, [ROOTS[7]], ROOTS[7], ROOTS[7])


def test_interior_node_presented_as_a_leaf_is_rejected() -> None:
    # [0, 2)'s hash claimed to be leaf 0, with [2, 4) as its one-element path to the size-4
    # head: the hashes do combine to that head, but a leaf of a 4-leaf tree has a 2-hash path.
    interior = node(1, 0)
    sibling = node(1, 1)
    assert node_hash(interior, sibling) == ROOTS[4]

    want = "proof has 1 hashes, want 2 for index 0 in a tree of size 4$"
    with pytest.raises(ProofError, match=want):
        verify_inclusion(interior, 0, 4, [sibling], ROOTS[4])


def test_messages_name_what_failed() -> None:
    proof = inclusion_proof(5, 7, node)

    want = "^proof has 2 hashes, want 3 for index 5 in a tree of size 7$"
    with pytest.raises(ProofError, match=want):
        verify_inclusion(LEAF_HASHES[5], 5, 7, proof[:2], ROOTS[7])
    want = "^calculated root [0-9a-f]{16}… does not match the given root [0-9a-f]{16}…$"
    with pytest.raises(ProofError, match=want):
        verify_inclusion(LEAF_HASHES[4], 5, 7, proof, ROOTS[7])
    with pytest.raises(ProofError, match="^calculated root1 .* does not match the given root1"):
        verify_consistency(3, 7, consistency_proof(3, 7, node), ROOTS[2], ROOTS[7])
    with pytest.raises(ProofError, match="^calculated root2 .* does not match the given root2"):
        verify_consistency(3, 7, consistency_proof(3, 7, node), ROOTS[3], ROOTS[6])


@pytest.mark.parametrize(
    "bad",
    [
        LEAF_HASHES[0][:31],
        LEAF_HASHES[0] + b"\x00",
        b"",
        bytearray(LEAF_HASHES[0]),
        LEAF_HASHES[0].hex(),
        None,
    ],
    ids=["31-bytes", "33-bytes", "empty", "bytearray", "hex-str", "none"],
)
def test_malformed_hashes_are_rejected_before_hashing(bad: Any) -> None:
    proof = inclusion_proof(2, 5, node)
    leaf, root = LEAF_HASHES[2], ROOTS[5]

    for args in (
        (bad, 2, 5, proof, root),
        (leaf, 2, 5, proof, bad),
        (leaf, 2, 5, [proof[0], bad, proof[2]], root),
    ):
        with pytest.raises(ProofError, match="want 32 bytes"):
            verify_inclusion(*args)
    cons = consistency_proof(2, 5, node)
    with pytest.raises(ProofError, match="want 32 bytes"):
        verify_consistency(2, 5, [bad, *cons[1:]], ROOTS[2], root)
    with pytest.raises(ProofError, match="want 32 bytes"):
        verify_consistency(2, 5, cons, bad, root)
    with pytest.raises(ValueError):
        CompactRange().append(bad)


def test_malformed_arguments_are_rejected() -> None:
    proof = inclusion_proof(2, 5, node)

    with pytest.raises(ProofError, match="want a sequence of hashes"):
        verify_inclusion(LEAF_HASHES[2], 2, 5, b"".join(proof), ROOTS[5])  # type: ignore[arg-type]
    with pytest.raises(ProofError, match="want an int"):
        verify_inclusion(LEAF_HASHES[0], False, 1, [], LEAF_HASHES[0])
    with pytest.raises(ProofError, match="want an int"):
        verify_consistency(2.0, 5, [], ROOTS[2], ROOTS[5])  # type: ignore[arg-type]
    with pytest.raises(ProofError, match="not in a tree"):
        verify_inclusion(LEAF_HASHES[0], -1, 5, proof, ROOTS[5])
    assert issubclass(ProofError, LedgerIntegrityError)


# ---------------------------------------------------------------------------------------------
# 6. Properties
# ---------------------------------------------------------------------------------------------

hashes = st.binary(min_size=32, max_size=32)


@settings(max_examples=60, deadline=None)
@given(st.lists(hashes, max_size=200))
def test_compact_range_matches_root_of_and_reports_every_completed_node(
    leaves: list[bytes],
) -> None:
    compact = CompactRange()
    seen: dict[tuple[int, int], bytes] = {}

    for position, value in enumerate(leaves):
        completed = compact.append(value)

        assert completed[0] == (0, position, value)
        assert [level for level, _, _ in completed] == list(range(len(completed)))
        for level, index, node_value in completed:
            assert (index + 1) << level == position + 1
            assert node_value == root_of(leaves[index << level : (index + 1) << level])
            seen[(level, index)] = node_value
        assert compact.size == position + 1

    assert compact.root() == root_of(leaves)
    assert compact.border() == [seen[subtree] for subtree in complete_subtrees(0, len(leaves))]


@settings(max_examples=60, deadline=None)
@given(st.lists(hashes, min_size=1, max_size=150), st.data())
def test_proofs_built_from_ranges_verify(leaves: list[bytes], data: st.DataObject) -> None:
    store = _build_store(leaves)

    def fetch(level: int, index: int) -> bytes:
        return store[(level, index)]

    size = data.draw(st.integers(1, len(leaves)), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    size1 = data.draw(st.integers(1, size), label="size1")
    root, root1 = root_of(leaves[:size]), root_of(leaves[:size1])

    path = inclusion_proof(index, size, fetch)
    verify_inclusion(leaves[index], index, size, path, root)
    assert len(path) == inclusion_proof_length(index, size)

    proof = consistency_proof(size1, size, fetch)
    verify_consistency(size1, size, proof, root1, root)
    assert len(proof) == consistency_proof_length(size1, size)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2**64 - 1), st.data())
def test_lengths_match_shapes_for_large_trees(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    size1 = data.draw(st.integers(1, size), label="size1")

    assert inclusion_proof_length(index, size) == len(inclusion_proof_ranges(index, size))
    assert consistency_proof_length(size1, size) == len(consistency_proof_ranges(size1, size))


@settings(max_examples=60, deadline=None)
@given(st.lists(hashes, max_size=200), st.data())
def test_from_border_resumes(leaves: list[bytes], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(leaves)), label="cut")
    before = CompactRange()
    for value in leaves[:cut]:
        before.append(value)

    resumed = CompactRange.from_border(before.size, before.border())
    uninterrupted = CompactRange()
    for value in leaves[:cut]:
        uninterrupted.append(value)
    for value in leaves[cut:]:
        assert resumed.append(value) == uninterrupted.append(value)

    assert resumed.size == len(leaves)
    assert resumed.root() == uninterrupted.root() == root_of(leaves)


def test_from_border_rejects_a_wrong_border() -> None:
    compact = CompactRange()
    for value in LEAF_HASHES[:7]:
        compact.append(value)

    with pytest.raises(ValueError, match="border has 2 hashes, want 3 for a tree of size 7"):
        CompactRange.from_border(7, compact.border()[:2])
    with pytest.raises(ValueError, match="want 32 bytes"):
        CompactRange.from_border(7, [*compact.border()[:2], b"short"])
    assert CompactRange.from_border(7, compact.border()).root() == ROOTS[7]


def test_root_of_handles_a_million_leaves() -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(1_000_000)]
    compact = CompactRange()
    for value in leaves:
        compact.append(value)

    assert root_of(leaves) == compact.root()


def test_module_uses_only_the_stdlib_and_domain_errors() -> None:
    source = Path(merkle.__file__).read_text()
    imports = {
        line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))
    }
    assert imports == {"__future__", "hashlib", "hmac", "collections.abc", "domain.errors"}


def test_the_memoising_verifier_agrees_with_verify_inclusion_on_every_proof() -> None:
    """InclusionVerifier accepts and refuses exactly what verify_inclusion does."""
    import random

    from domain.merkle import InclusionVerifier

    rng = random.Random(7)
    for size in (1, 2, 3, 5, 8, 13, 33, 100):
        leaves = [leaf_hash(bytes([n % 256, n // 256])) for n in range(size)]
        root = root_of(leaves)

        def node(level: int, index: int, leaves: list[bytes] = leaves) -> bytes:
            return root_of(leaves[index << level : (index + 1) << level])

        verifier = InclusionVerifier(size, root)
        for index in list(range(size)) * 2:
            proof = inclusion_proof(index, size, node)
            candidates = [(leaves[index], index, proof)]
            if proof:
                flipped = list(proof)
                position = rng.randrange(len(proof))
                flipped[position] = bytes([proof[position][0] ^ 1]) + proof[position][1:]
                candidates += [(leaves[index], index, flipped), (leaves[index], index, proof[:-1])]
            candidates.append((leaves[(index + 1) % size], index, proof))
            for leaf, at, path in candidates:
                try:
                    verify_inclusion(leaf, at, size, path, root)
                    expected = True
                except ProofError:
                    expected = False
                try:
                    verifier.verify(leaf, at, path)
                    got = True
                except ProofError:
                    got = False
                assert got == expected, (size, at)


@pytest.mark.parametrize(
    "huge", [2**64, 10**5000, -(10**5000)], ids=["2^64", "+10^5000", "-10^5000"]
)
def test_sizes_and_indices_beyond_uint64_are_refused_by_name(huge: int) -> None:
    """RFC 9162 sizes are uint64; a 5,000-digit int once crashed the message naming it."""
    leaf = bytes(32)

    with pytest.raises(ProofError, match="leaf index is an int of .* bits, want at most 64"):
        verify_inclusion(leaf, huge, 4, [leaf, leaf], leaf)
    with pytest.raises(ProofError, match="tree size is an int of .* bits, want at most 64"):
        verify_inclusion(leaf, 0, huge, [leaf, leaf], leaf)
    with pytest.raises(ProofError, match="size2 is an int of .* bits"):
        verify_consistency(1, huge, [leaf], leaf, leaf)
