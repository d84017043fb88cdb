"""RFC 9162 Merkle tree hashing, proofs and their verification.

Everything here is pure: no storage, no clock, no I/O. Hashing is exactly RFC 9162 §2.1:

    leaf hash      SHA-256(0x00 || leaf data)
    interior node  SHA-256(0x01 || left || right)
    MTH({})        SHA-256("")

and the tree over n > 1 leaves splits at k, the largest power of two smaller than n. In
casetrail a leaf's data is the 32 raw bytes of an event hash, but nothing here depends on that.

Nodes are named two ways:

* `(level, index)`: the aligned complete subtree over leaves [index·2^level, (index+1)·2^level).
  These are the only nodes a growing tree never changes, so they are what storage keeps.
* `(start, end)`: a range of leaves. Every range in a proof shape below is either an aligned
  complete subtree or a suffix [start, size) ending at the tree size whose start is a multiple
  of the power of two at or above its length. `range_hash` turns any such range into its hash
  from stored `(level, index)` nodes.

Verifiers raise `ProofError` with a lower-case, got/want message naming what failed, and return
None when the proof is sound. They check every precondition (types, 32-byte hashes, sizes,
exact proof length) before hashing anything, so a malformed proof is never half-evaluated.

The subtree functions implement the subtrees of the Merkle Tree Certificates draft
(draft-ietf-plants-merkle-tree-certs §4): [start, end) with start a multiple of
BIT_CEIL(end - start). Such a batch of leaves can be hashed and handed over on its own and
later be proven to sit unchanged inside the full tree.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

from domain.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "complete_subtrees",
    "consistency_proof",
    "consistency_proof_length",
    "consistency_proof_ranges",
    "inclusion_proof",
    "inclusion_proof_length",
    "inclusion_proof_ranges",
    "is_valid_subtree",
    "leaf_hash",
    "node_hash",
    "range_hash",
    "root_from_inclusion_proof",
    "root_of",
    "subtree_consistency_proof",
    "subtree_consistency_proof_length",
    "subtree_consistency_proof_ranges",
    "subtree_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
]

HASH_SIZE = 32

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

EMPTY_ROOT: bytes = _sha256(b"").digest()

# How many hex digits of a hash an error message shows: enough to tell two hashes apart by
# eye, short enough to keep the message on one line.
_SHOWN_HEX = 16

_BYTES = frozenset({bytes})
_HASH_LENGTH = frozenset({HASH_SIZE})

# A fetcher of stored complete-subtree nodes: node(level, index) -> hash.
NodeFetcher = Callable[[int, int], bytes]


# ---------------------------------------------------------------------------------------------
# Hashing
# ---------------------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 leaf hash SHA-256(0x00 || data) of any leaf data."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash SHA-256(0x01 || left || right).

    Precondition: `left` and `right` are node hashes (32 bytes); this is not checked here,
    because it sits on every hot path and the verifiers check their inputs once up front.
    """
    return _sha256(_NODE_PREFIX + left + right).digest()


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return MTH over already-hashed leaves; `EMPTY_ROOT` for none.

    Precondition: every element is a 32-byte leaf hash (checked; ValueError otherwise).

    Works level by level instead of recursing: pairing neighbours and carrying an odd last
    node up unchanged builds exactly the RFC's shape, because the RFC's left subtree is always
    the largest power of two, so the unpaired node is always the rightmost one.
    """
    level = list(leaf_hashes)
    for position, value in enumerate(level):
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise ValueError(f"leaf hash {position} is {_describe(value)}, want {HASH_SIZE} bytes")

    if not level:
        return EMPTY_ROOT

    sha256, prefix = _sha256, _NODE_PREFIX
    while len(level) > 1:
        paired = [
            sha256(prefix + left + right).digest()
            for left, right in zip(level[0::2], level[1::2], strict=False)
        ]
        if len(level) & 1:
            paired.append(level[-1])
        level = paired
    return level[0]


# ---------------------------------------------------------------------------------------------
# Tree shape
# ---------------------------------------------------------------------------------------------


def complete_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Decompose leaves [start, end) into aligned complete subtrees, left to right.

    Each subtree is `(level, index)`, meaning leaves [index·2^level, (index+1)·2^level). Each
    step takes the largest subtree that is both aligned at `start` and fits before `end`, so
    for start = 0 this is the popcount decomposition of `end`, largest first.

    Precondition: 0 <= start <= end (ValueError otherwise). An empty range gives [].
    """
    _require_int("start", start)
    _require_int("end", end)
    if not 0 <= start <= end:
        raise ValueError(f"range [{start}, {end}) is not a range of leaves, want 0 <= start <= end")

    subtrees: list[tuple[int, int]] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            # The lowest set bit of start bounds how large an aligned subtree can begin there.
            level = min(level, (start & -start).bit_length() - 1)
        subtrees.append((level, start >> level))
        start += 1 << level
    return subtrees


def is_valid_subtree(start: int, end: int) -> bool:
    """Tell whether [start, end) is a subtree in the MTC draft's sense (§4.1).

    That is 0 <= start <= end and start is a multiple of BIT_CEIL(end - start): the range is
    aligned with the tree built over it, so its hash can be proven consistent with any tree of
    size >= end. [x, x) is valid (BIT_CEIL(0) is 1) and so is [0, x) for every x.
    """
    if not 0 <= start <= end:
        return False

    size = end - start
    bit_ceil = 1 if size <= 1 else 1 << (size - 1).bit_length()
    return start % bit_ceil == 0


def _split(size: int) -> int:
    """Return k, the largest power of two smaller than size. Precondition: size >= 2."""
    return 1 << ((size - 1).bit_length() - 1)


def inclusion_proof_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges of RFC 9162 §2.1.3.1 PATH(index, D[0:size]), leaf end first.

    Every range is an aligned complete subtree, except possibly ranges ending at `size`: a
    right sibling taken before the path first turns left is the suffix [lo + k, size).

    Precondition: 0 <= index < size (ValueError otherwise).
    """
    _require_leaf_index(index, size, ValueError)

    # Walk down from the root, noting each sibling; PATH lists them from the leaf up.
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
    ranges.reverse()
    return ranges


def consistency_proof_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Return the leaf ranges of RFC 9162 §2.1.4.1 PROOF(size1, D[0:size2]), in RFC order.

    The first range is the node where SUBPROOF bottoms out (left out when it is the old tree's
    root itself, i.e. when size1 is a power of two or equals size2), then the siblings from
    the bottom up. Every range is an aligned complete subtree or a suffix ending at `size2`.

    Precondition: 0 < size1 <= size2 (ValueError otherwise). Equal sizes give [].
    """
    _require_sizes(size1, size2, ValueError)

    # Iterative SUBPROOF(m, D[lo:hi], b): m counts the old tree's leaves inside [lo, hi), and
    # `known` is the RFC's b, true while [lo, hi) may still be the old tree's own root.
    ranges: list[tuple[int, int]] = []
    lo, hi, m, known = 0, size2, size1, True
    while m != hi - lo:
        mid = lo + _split(hi - lo)
        if m <= mid - lo:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            m -= mid - lo
            lo = mid
            known = False
    if not known:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def subtree_consistency_proof_ranges(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges of the MTC draft's SUBTREE_PROOF(start, end, D[0:size]) (§4.4.1).

    Same order and same range kinds as `consistency_proof_ranges`, which it equals for
    start = 0. An empty subtree has an empty proof.

    Precondition: [start, end) is a valid subtree and end <= size (ValueError otherwise).
    """
    _require_subtree_in_tree(start, end, size, ValueError)
    if start == end:
        return []

    # Iterative SUBTREE_SUBPROOF: [lo, hi) is the current node of the big tree and [s, end)
    # the part of the subtree under it; `known` is the draft's b.
    ranges: list[tuple[int, int]] = []
    lo, hi, s, known = 0, size, start, True
    while not (s == lo and end == hi):
        mid = lo + _split(hi - lo)
        if end <= mid:
            ranges.append((mid, hi))
            hi = mid
        elif mid <= s:
            ranges.append((lo, mid))
            lo = mid
        else:
            # Straddling mid implies s == lo (the subtree is aligned); what remains is
            # [mid, end), no longer the whole subtree, so its root is not known any more.
            ranges.append((lo, mid))
            lo = s = mid
            known = False
    if not known:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def inclusion_proof_length(index: int, size: int) -> int:
    """Return len(PATH(index, D[0:size])) without building it.

    Below the level where the paths to `index` and to the last leaf meet, every level costs
    one hash; above it the path runs up the right edge, which has a left sibling exactly where
    the (shared) bits are set.

    Precondition: 0 <= index < size (ValueError otherwise).
    """
    _require_leaf_index(index, size, ValueError)

    below = (index ^ (size - 1)).bit_length()
    return below + (index >> below).bit_count()


def consistency_proof_length(size1: int, size2: int) -> int:
    """Return len(PROOF(size1, D[0:size2])) without building it.

    The proof is an inclusion path for the highest node that ends at size1 and exists in both
    trees, plus that node itself unless it is the whole old tree (size1 a power of two).

    Precondition: 0 < size1 <= size2 (ValueError otherwise).
    """
    _require_sizes(size1, size2, ValueError)
    if size1 == size2:
        return 0

    # Climb past the levels where the old tree's last leaf is a right child (RFC step 4).
    last1, last2 = size1 - 1, size2 - 1
    climb = (~last1 & (last1 + 1)).bit_length() - 1
    fn, sn = last1 >> climb, last2 >> climb
    below = (fn ^ sn).bit_length()
    path = below + (fn >> below).bit_count()
    starting_node = 0 if size1 & last1 == 0 else 1
    return starting_node + path


def subtree_consistency_proof_length(start: int, end: int, size: int) -> int:
    """Return len(SUBTREE_PROOF(start, end, D[0:size])) without building it.

    Follows the index arithmetic of the draft's verifier (§4.4.3) without hashing.

    Precondition: [start, end) is a valid subtree and end <= size (ValueError otherwise).
    """
    _require_subtree_in_tree(start, end, size, ValueError)
    if start == end:
        return 0

    fn, sn, tn = _subtree_climb(start, end, size)
    count = 0 if fn == sn else 1
    while tn:
        if sn & 1 or sn == tn:
            while sn and not sn & 1:
                fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
        fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
        count += 1
    return count


def _subtree_climb(start: int, end: int, size: int) -> tuple[int, int, int]:
    """Draft §4.4.3 steps 3-5: climb to the highest node ending at `end` in both trees."""
    fn, sn, tn = start, end - 1, size - 1
    if sn == tn:
        while fn != sn:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    else:
        while fn != sn and sn & 1:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    return fn, sn, tn


# ---------------------------------------------------------------------------------------------
# Building proofs from stored nodes
# ---------------------------------------------------------------------------------------------


def range_hash(start: int, end: int, node: NodeFetcher) -> bytes:
    """Return MTH(D[start:end]) from stored complete-subtree nodes fetched as node(level, index).

    The range's complete subtrees come in decreasing size, and the RFC's tree over them hangs
    each one off the left of the tree over those to its right, so they fold right to left.

    Precondition: start < end and [start, end) is a valid subtree (start a multiple of
    BIT_CEIL(end - start)), as every proof range is; otherwise its aligned pieces would not be
    the RFC's split and the fold would hash a different tree (ValueError).
    """
    _require_int("start", start)
    _require_int("end", end)
    if start >= end or not is_valid_subtree(start, end):
        raise ValueError(
            f"range [{start}, {end}) is not a non-empty aligned subtree, "
            "want start < end with start a multiple of BIT_CEIL(end - start)"
        )

    subtrees = complete_subtrees(start, end)
    result = node(*subtrees[-1])
    for level, index in reversed(subtrees[:-1]):
        result = node_hash(node(level, index), result)
    return result


def inclusion_proof(index: int, size: int, node: NodeFetcher) -> list[bytes]:
    """Return the RFC 9162 inclusion proof for leaf `index` in the tree of `size` leaves.

    Precondition: 0 <= index < size, and `node` serves every complete subtree of that tree.
    """
    return [range_hash(start, end, node) for start, end in inclusion_proof_ranges(index, size)]


def consistency_proof(size1: int, size2: int, node: NodeFetcher) -> list[bytes]:
    """Return the RFC 9162 consistency proof from the tree of `size1` to that of `size2`.

    Precondition: 0 < size1 <= size2, and `node` serves every complete subtree of the tree of
    size2.
    """
    return [range_hash(start, end, node) for start, end in consistency_proof_ranges(size1, size2)]


def subtree_inclusion_proof(index: int, start: int, end: int, node: NodeFetcher) -> list[bytes]:
    """Return the MTC draft's inclusion proof for leaf `index` in subtree [start, end) (§4.3).

    It is the RFC inclusion proof for index - start among the subtree's own leaves; since the
    subtree is aligned, every range in it is again a valid subtree of the big tree.

    Precondition: [start, end) is a valid subtree and start <= index < end.
    """
    _require_subtree_in_tree(start, end, end, ValueError)
    ranges = inclusion_proof_ranges(index - start, end - start)
    return [range_hash(start + lo, start + hi, node) for lo, hi in ranges]


def subtree_consistency_proof(start: int, end: int, size: int, node: NodeFetcher) -> list[bytes]:
    """Return the MTC draft's SUBTREE_PROOF for subtree [start, end) and the tree of `size`.

    Precondition: [start, end) is a valid subtree, end <= size, and `node` serves every
    complete subtree of the tree of `size`.
    """
    ranges = subtree_consistency_proof_ranges(start, end, size)
    return [range_hash(lo, hi, node) for lo, hi in ranges]


# ---------------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------------


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes]
) -> bytes:
    """Return the root that `proof` yields for leaf `index` of a tree of `tree_size` leaves.

    Runs RFC 9162 §2.1.3.2 up to the comparison with the root. Raises ProofError unless
    `leaf_hash` and every proof element are 32-byte `bytes`, 0 <= index < tree_size, and the
    proof has exactly the RFC's length for that index and size.
    """
    _check_hash("leaf hash", leaf_hash)
    _check_proof(proof)
    _require_leaf_index(index, tree_size, ProofError)

    want = inclusion_proof_length(index, tree_size)
    where = f"index {index} in a tree of size {tree_size}"
    _check_proof_length(len(proof), want, where)

    return _climb_inclusion(leaf_hash, index, tree_size - 1, proof, where)


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `proof` shows leaf `index` with `leaf_hash` is in the tree with `root`.

    Returns None when sound; raises ProofError naming what failed otherwise (see
    `root_from_inclusion_proof` for the preconditions, plus `root` being 32-byte bytes).
    """
    _check_hash("root", root)

    calculated = root_from_inclusion_proof(leaf_hash, index, tree_size, proof)

    if not hmac.compare_digest(calculated, root):
        raise ProofError(
            f"calculated root {_short(calculated)} does not match the given root {_short(root)}"
        )


class InclusionVerifier:
    """Checks many inclusion proofs against one tree head, hashing shared paths once.

    Proofs of leaves close together in the tree end in the same upper path. Once a proof
    has verified, every node it computed on the way up is known to lead to the root with
    the rest of that proof. A later proof that computes the same node (same position, same
    value) and carries the same rest of the path is accepted there without re-hashing it:
    exactly the verdict `verify_inclusion` gives, reached with less work. Everything else
    (types, lengths, index bounds, a different path) takes the full check.
    """

    def __init__(self, tree_size: int, root: bytes) -> None:
        _check_hash("root", root)
        _require_int("tree size", tree_size, ProofError)
        self.tree_size = tree_size
        self.root = root
        self._proven: dict[tuple[int, int], tuple[bytes, tuple[bytes, ...], int]] = {}

    def verify(self, leaf_hash: bytes, index: int, proof: Sequence[bytes]) -> None:
        _check_hash("leaf hash", leaf_hash)
        _check_proof(proof)
        _require_leaf_index(index, self.tree_size, ProofError)
        where = f"index {index} in a tree of size {self.tree_size}"
        _check_proof_length(len(proof), inclusion_proof_length(index, self.tree_size), where)

        elements = tuple(proof)
        visited: list[tuple[tuple[int, int], bytes, int]] = []
        result, fn, sn, shifts = leaf_hash, index, self.tree_size - 1, 0
        for position, sibling in enumerate(elements):
            if fn & 1 or fn == sn:
                result = node_hash(sibling, result)
                while fn and not fn & 1:
                    fn, sn, shifts = fn >> 1, sn >> 1, shifts + 1
            else:
                result = node_hash(result, sibling)
            fn, sn, shifts = fn >> 1, sn >> 1, shifts + 1

            # The node now in hand covers the leaves whose index >> shifts == fn.
            node = (shifts, fn)
            proven = self._proven.get(node)
            if proven is not None:
                value, rest, start = proven
                if value == result and rest[start:] == elements[position + 1 :]:
                    self._remember(visited, elements)
                    return
            visited.append((node, result, position + 1))

        if sn != 0:
            raise ProofError(f"proof ends {sn.bit_length()} levels below the root for {where}")
        if not hmac.compare_digest(result, self.root):
            raise ProofError(
                f"calculated root {_short(result)} does not match the given root "
                f"{_short(self.root)}"
            )
        self._remember(visited, elements)

    def _remember(
        self, visited: list[tuple[tuple[int, int], bytes, int]], elements: tuple[bytes, ...]
    ) -> None:
        for node, value, start in visited:
            self._proven.setdefault(node, (value, elements, start))


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that `proof` shows the tree (size1, root1) is a prefix of the tree (size2, root2).

    Runs RFC 9162 §2.1.4.2. Returns None when sound; raises ProofError unless both roots and
    every proof element are 32-byte `bytes`, 0 < size1 <= size2, the proof has exactly the
    RFC's length for those sizes (so equal sizes need an empty proof), every element is used,
    and both recomputed roots match.
    """
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    _check_proof(proof)
    _require_sizes(size1, size2, ProofError)

    want = consistency_proof_length(size1, size2)
    _check_proof_length(len(proof), want, f"sizes {size1} to {size2}")

    if size1 == size2:
        if not hmac.compare_digest(root1, root2):
            raise ProofError(
                f"root2 {_short(root2)} does not match root1 {_short(root1)} "
                f"though both trees have size {size1}"
            )
        return

    # RFC step 2: when the old tree is a complete subtree of the new one, its root is the
    # node the proof starts from, and the proof leaves it out.
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)

    # Steps 3-4: climb past the levels where the old tree's last leaf is a right child.
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1

    # Steps 5-6: fr rebuilds the old root, sr the new one, from the same starting node.
    fr = sr = path[0]
    for position, sibling in enumerate(path[1:], start=1):
        if sn == 0:
            raise ProofError(f"proof element {position} is past the root, want no more hashes")
        if fn & 1 or fn == sn:
            fr = node_hash(sibling, fr)
            sr = node_hash(sibling, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, sibling)
        fn, sn = fn >> 1, sn >> 1

    # Step 7.
    if sn != 0:
        raise ProofError(
            f"proof ends {sn.bit_length()} levels below the root, want it to reach the root"
        )
    if not hmac.compare_digest(fr, root1):
        raise ProofError(
            f"calculated root1 {_short(fr)} does not match the given root1 {_short(root1)}"
        )
    if not hmac.compare_digest(sr, root2):
        raise ProofError(
            f"calculated root2 {_short(sr)} does not match the given root2 {_short(root2)}"
        )


def verify_subtree_inclusion(
    leaf_hash: bytes,
    index: int,
    start: int,
    end: int,
    proof: Sequence[bytes],
    subtree_hash: bytes,
) -> None:
    """Check that `proof` shows leaf `index` is in subtree [start, end) with `subtree_hash`.

    MTC draft §4.3.2-4.3.3: the RFC 9162 check for index - start in a tree of end - start
    leaves. Raises ProofError unless all hashes are 32-byte `bytes`, [start, end) is a valid
    subtree, start <= index < end (so an empty subtree never verifies), the proof has exactly
    the RFC's length, and the recomputed subtree hash matches.
    """
    _check_hash("leaf hash", leaf_hash)
    _check_hash("subtree hash", subtree_hash)
    _check_proof(proof)
    _require_int("index", index, ProofError)
    _require_subtree_in_tree(start, end, end, ProofError)
    if not start <= index < end:
        raise ProofError(
            f"leaf index {index} is outside subtree [{start}, {end}), want start <= index < end"
        )

    where = f"index {index} in subtree [{start}, {end})"
    want = inclusion_proof_length(index - start, end - start)
    _check_proof_length(len(proof), want, where)

    calculated = _climb_inclusion(leaf_hash, index - start, end - start - 1, proof, where)

    if not hmac.compare_digest(calculated, subtree_hash):
        raise ProofError(
            f"calculated subtree hash {_short(calculated)} does not match "
            f"the given subtree hash {_short(subtree_hash)}"
        )


def verify_subtree_consistency(
    start: int,
    end: int,
    size: int,
    proof: Sequence[bytes],
    subtree_hash: bytes,
    root: bytes,
) -> None:
    """Check that `proof` shows subtree [start, end) with `subtree_hash` is in the tree `root`.

    MTC draft §4.4.3. Raises ProofError unless both hashes and every proof element are
    32-byte `bytes`, [start, end) is a valid subtree with end <= size, the proof has exactly
    the draft's length, and both recomputed hashes match. As the draft says, an empty subtree
    is consistent with every tree: it needs an empty proof and `subtree_hash` = `EMPTY_ROOT`,
    and `root` is not compared (it must still be a well-formed hash).
    """
    _check_hash("subtree hash", subtree_hash)
    _check_hash("root", root)
    _check_proof(proof)
    _require_subtree_in_tree(start, end, size, ProofError)

    want = subtree_consistency_proof_length(start, end, size)
    _check_proof_length(len(proof), want, f"subtree [{start}, {end}) in a tree of size {size}")

    if start == end:
        if not hmac.compare_digest(subtree_hash, EMPTY_ROOT):
            raise ProofError(
                f"empty subtree has hash {_short(subtree_hash)}, want {_short(EMPTY_ROOT)}"
            )
        return

    # Steps 3-7: start from the highest node ending at `end` in both trees; when that is the
    # subtree's own root the proof leaves it out.
    fn, sn, tn = _subtree_climb(start, end, size)
    path = list(proof)
    if fn == sn:
        path.insert(0, subtree_hash)
    fr = sr = path[0]

    # Step 8: fr rebuilds the subtree hash, sr the root, from the same starting node.
    for position, sibling in enumerate(path[1:], start=1):
        if tn == 0:
            raise ProofError(f"proof element {position} is past the root, want no more hashes")
        if sn & 1 or sn == tn:
            if fn < sn:
                fr = node_hash(sibling, fr)
            sr = node_hash(sibling, sr)
            while sn and not sn & 1:
                fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
        else:
            sr = node_hash(sr, sibling)
        fn, sn, tn = fn >> 1, sn >> 1, tn >> 1

    # Step 9.
    if tn != 0:
        raise ProofError(
            f"proof ends {tn.bit_length()} levels below the root, want it to reach the root"
        )
    if not hmac.compare_digest(fr, subtree_hash):
        raise ProofError(
            f"calculated subtree hash {_short(fr)} does not match "
            f"the given subtree hash {_short(subtree_hash)}"
        )
    if not hmac.compare_digest(sr, root):
        raise ProofError(
            f"calculated root {_short(sr)} does not match the given root {_short(root)}"
        )


def _climb_inclusion(leaf: bytes, fn: int, sn: int, proof: Sequence[bytes], where: str) -> bytes:
    """RFC 9162 §2.1.3.2 steps 3-5: hash `leaf` up through `proof`; fn, sn as in the RFC."""
    result = leaf
    for position, sibling in enumerate(proof):
        if sn == 0:
            raise ProofError(f"proof element {position} is past the root for {where}")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1

    if sn != 0:
        raise ProofError(f"proof ends {sn.bit_length()} levels below the root for {where}")
    return result


# ---------------------------------------------------------------------------------------------
# Incremental building
# ---------------------------------------------------------------------------------------------


class CompactRange:
    """The tree over leaves [0, size), kept as the hashes of its complete subtrees.

    Those subtrees are `complete_subtrees(0, size)`, one per set bit of size, largest first;
    appending a leaf merges the equal-sized ones at the right end, like a binary counter
    carrying. That is all the state needed for the root and for resuming after a restart.
    """

    __slots__ = ("_border", "_size")

    def __init__(self) -> None:
        """Start an empty tree."""
        self._size = 0
        self._border: list[bytes] = []

    @classmethod
    def from_border(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Resume the tree of `size` leaves from its stored border hashes.

        Precondition: `hashes` are the 32-byte hashes of `complete_subtrees(0, size)` in that
        order, as `border()` returned them (ValueError on a wrong count or a malformed hash;
        the values themselves cannot be checked here).
        """
        _require_int("size", size)
        if size < 0:
            raise ValueError(f"tree size is {size}, want size >= 0")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"border has {len(hashes)} hashes, "
                f"want {size.bit_count()} for a tree of size {size}"
            )
        for position, value in enumerate(hashes):
            if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                raise ValueError(
                    f"border hash {position} is {_describe(value)}, want {HASH_SIZE} bytes"
                )

        compact = cls()
        compact._size = size
        compact._border = list(hashes)
        return compact

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash; return every node the append completed, lowest level first.

        Each node is (level, index, hash) as in `complete_subtrees`; the first is the leaf
        itself at level 0. Precondition: `leaf_hash` is 32-byte bytes (ValueError otherwise).
        """
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash is {_describe(leaf_hash)}, want {HASH_SIZE} bytes")

        # Each trailing one bit of the old size is a complete subtree on the border that the
        # new node now has an equal-sized twin for: merge them, as a binary counter carries.
        index = self._size
        border = self._border
        completed = [(0, index, leaf_hash)]
        value = leaf_hash
        level = 0
        sha256, prefix = _sha256, _NODE_PREFIX
        while index & 1:
            value = sha256(prefix + border.pop() + value).digest()
            index >>= 1
            level += 1
            completed.append((level, index, value))
        border.append(value)
        self._size += 1
        return completed

    def root(self) -> bytes:
        """Return MTH of the leaves so far (`EMPTY_ROOT` for none)."""
        border = self._border
        if not border:
            return EMPTY_ROOT

        # The border subtrees shrink left to right, so the RFC's tree folds them right to left.
        result = border[-1]
        for value in reversed(border[:-1]):
            result = node_hash(value, result)
        return result

    def border(self) -> list[bytes]:
        """Return the hashes of `complete_subtrees(0, size)`, left to right (a copy)."""
        return list(self._border)


# ---------------------------------------------------------------------------------------------
# Precondition checks
# ---------------------------------------------------------------------------------------------


def _describe(value: object) -> str:
    """Say what a would-be hash is, for a got/want message."""
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    return f"a {type(value).__name__}"


def _short(value: bytes) -> str:
    """Abbreviate a hash for a message."""
    return value.hex()[:_SHOWN_HEX] + "…"


def _check_hash(name: str, value: object) -> None:
    """Raise ProofError unless `value` is a 32-byte bytes object."""
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {_describe(value)}, want {HASH_SIZE} bytes")


def _check_proof(proof: object) -> None:
    """Raise ProofError unless `proof` is a sequence of 32-byte bytes objects."""
    # A str or bytes is a Sequence too, and would be read as a list of characters or ints.
    if isinstance(proof, (str, bytes, bytearray)) or not isinstance(proof, Sequence):
        raise ProofError(f"proof is {_describe(proof)}, want a sequence of hashes")
    # Every proof a verifier checks passes through here: settle the usual case (all plain
    # 32-byte bytes) in two passes in C, and leave naming a culprit to the loop below.
    if set(map(type, proof)) <= _BYTES and set(map(len, proof)) <= _HASH_LENGTH:
        return
    for position, value in enumerate(proof):
        _check_hash(f"proof element {position}", value)


def _require_leaf_index(index: int, size: int, error: type[Exception]) -> None:
    """Raise `error` unless index and size are ints with 0 <= index < size."""
    _require_int("leaf index", index, error)
    _require_int("tree size", size, error)
    if size <= 0:
        raise error(f"tree size is {size}, want a positive size")
    if not 0 <= index < size:
        raise error(f"leaf index {index} is not in a tree of size {size}, want 0 <= index < size")


def _require_sizes(size1: int, size2: int, error: type[Exception]) -> None:
    """Raise `error` unless size1 and size2 are ints with 0 < size1 <= size2."""
    _require_int("size1", size1, error)
    _require_int("size2", size2, error)
    if size1 <= 0:
        raise error(f"old tree size is {size1}, want a positive size")
    if size1 > size2:
        raise error(f"old tree size {size1} exceeds new tree size {size2}, want size1 <= size2")


def _check_proof_length(got: int, want: int, where: str) -> None:
    """Raise ProofError unless the proof has exactly the length its sizes require."""
    if got != want:
        raise ProofError(f"proof has {got} hashes, want {want} for {where}")


def _require_int(name: str, value: object, error: type[Exception] = ValueError) -> None:
    """Raise `error` unless `value` is an int of at most 64 bits (bool, though an int
    subclass, is refused). Tree sizes and indices are uint64 in RFC 9162; a larger int
    could not even be written in a message (Python refuses str() past 4,300 digits)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise error(f"{name} is {_describe(value)}, want an int")
    if value.bit_length() > 64:
        raise error(f"{name} is an int of {value.bit_length()} bits, want at most 64 bits")


def _require_subtree_in_tree(start: int, end: int, size: int, error: type[Exception]) -> None:
    """Raise `error` unless [start, end) is a valid subtree (MTC draft §4.1) and end <= size."""
    _require_int("subtree start", start, error)
    _require_int("subtree end", end, error)
    _require_int("tree size", size, error)
    if not 0 <= start <= end:
        raise error(f"subtree [{start}, {end}) is not a range, want 0 <= start <= end")
    if not is_valid_subtree(start, end):
        raise error(
            f"[{start}, {end}) is not an aligned subtree, "
            f"want start a multiple of {1 << (end - start - 1).bit_length()}"
        )
    if end > size:
        raise error(f"subtree [{start}, {end}) ends past the tree size {size}, want end <= size")
