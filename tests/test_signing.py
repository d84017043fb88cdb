"""Outside Ed25519 keys: small-order points are refused before any signature is checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain.errors import SignatureError
from domain.signing import (
    LedgerKey,
    TreeHead,
    load_public_key,
    log_id_of,
    public_key_from_text,
    verify_tree_head,
)

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


def key_document(ledger_key: LedgerKey, /, **changes: object) -> str:
    """A key file as GET /v1/log/public-key serves it, with `changes` (None drops a member)."""
    document: dict[str, object] = {
        "algorithm": "Ed25519",
        "key": ledger_key.public_key_b64(),
        "log_id": ledger_key.log_id,
        "pem": ledger_key.public_key_pem(),
        "signed_message": "…",
    }
    document.update(changes)
    return json.dumps({name: value for name, value in document.items() if value is not None})


@pytest.fixture
def keys(tmp_path: Path) -> tuple[LedgerKey, LedgerKey]:
    return LedgerKey.create(str(tmp_path / "a.pem")), LedgerKey.create(str(tmp_path / "b.pem"))


def test_every_form_the_log_serves_its_key_in_reads_as_that_key(
    keys: tuple[LedgerKey, LedgerKey],
) -> None:
    key = keys[0]
    forms = [
        key_document(key),
        "\n  " + json.dumps(json.loads(key_document(key)), indent=2) + "\n",
        key_document(key, pem=None),
        key_document(key, key=None, log_id=None, algorithm=None, signed_message=None),
        key.public_key_pem(),
        key.public_key_b64() + "\n",
    ]

    assert [public_key_from_text(form) for form in forms] == [key.public_key] * len(forms)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"pem": "other"}, "two different keys"),
        ({"key": "other"}, "two different keys"),
        ({"log_id": "other"}, "log_id is not the SHA-256 of its key"),
        ({"key": None, "pem": None}, "neither key nor pem"),
        ({"algorithm": "RSA"}, "algorithm must be Ed25519"),
        ({"key": 7}, "key must be a string"),
        ({"keys": ["a", "b"]}, "members 'keys'"),
        ({"key": "not base64!"}, "key is not base64"),
        ({"pem": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"}, "pem cannot"),
    ],
)
def test_a_key_document_that_could_name_two_keys_or_none_is_refused(
    keys: tuple[LedgerKey, LedgerKey], changes: dict[str, object], reason: str
) -> None:
    key, other = keys
    others = {"pem": other.public_key_pem(), "key": other.public_key_b64(), "log_id": "0" * 64}
    made = {name: others[name] if value == "other" else value for name, value in changes.items()}

    with pytest.raises(SignatureError, match=reason):
        public_key_from_text(key_document(key, **made))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"key": "a", "key": "b"}', "appears twice"),
        ('{"key": ', "not valid JSON"),
        ('{"a": ' + "[" * 100_000, "nested too deeply"),
        ("[1]", "neither JSON, PEM nor base64"),
    ],
)
def test_a_key_file_that_is_not_one_document_is_refused(text: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        public_key_from_text(text)
