"""Outside Ed25519 keys: small-order points are refused before any signature is checked."""

from __future__ import annotations

import pytest

from domain.errors import SignatureError
from domain.signing import LedgerKey, TreeHead, load_public_key, log_id_of, verify_tree_head

# The eight points of small order on edwards25519, in their canonical encodings, and two
# non-canonical encodings of the identity (y = p + 1) and of the order-2 point (y = p − 1).
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]


@pytest.mark.parametrize("encoded", SMALL_ORDER)
def test_small_order_and_non_canonical_points_are_refused(encoded: str) -> None:
    with pytest.raises(SignatureError, match="prime order"):
        load_public_key(bytes.fromhex(encoded))


def test_a_tree_head_is_not_checked_against_an_identity_key() -> None:
    identity = bytes.fromhex(SMALL_ORDER[0])
    head = TreeHead(
        log_id_of(identity), 1, "00" * 32, "2024-01-01T00:00:00.000000Z", "A" * 86 + "=="
    )

    with pytest.raises(SignatureError, match="prime order"):
        verify_tree_head(head, identity)


def test_the_ledger_key_signs_tree_heads_that_verify(tmp_path: object) -> None:
    from pathlib import Path

    key = LedgerKey.create(str(Path(str(tmp_path)) / "k.pem"))
    head = key.sign(3, "ab" * 32, "2024-01-01T00:00:00.000000Z")

    verify_tree_head(head, key.public_key)
    with pytest.raises(SignatureError):
        verify_tree_head(
            TreeHead(head.log_id, 4, head.root_hash, head.timestamp, head.signature), key.public_key
        )
    assert "PRIVATE" not in repr(key)
