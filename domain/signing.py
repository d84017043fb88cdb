"""The ledger's signing key, its signed tree heads and its signed case heads.

A tree head commits the ledger to the first `tree_size` events of its global log:

    {"log_id": hex SHA-256 of the raw Ed25519 public key,
     "tree_size": n, "root_hash": hex RFC 9162 root, "timestamp": ledger time}

The signature is Ed25519 over `b"casetrail.tree-head.v1\\n" || JCS(head)`; the prefix
keeps a tree-head signature from ever being mistaken for a signature over anything else.

A case head is the ledger's signed word, given when it exports a dispute bundle, that a
case ended at a given seq in a given tree:

    {"log_id", "case_id", "seq": last seq, "head_hash": hash of that record,
     "tree_size", "root_hash": of the tree head the bundle uses, "timestamp"}

signed the same way under its own prefix, `b"casetrail.case-head.v1\\n"`. Without it a
bundle cut short at its end would still verify: every remaining event is genuine.

Public keys from outside (a bundle, a witness) are refused when they are not a valid
point of prime order, before any signature is checked: the identity point and the other
small-order points would let a forger "verify" chosen messages.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_core_ed25519_is_valid_point

from domain.canonical import MAX_EXACT_INTEGER, NotCanonicalizable, canonical_bytes
from domain.errors import SignatureError
from domain.keyfiles import write_key_file

TREE_HEAD_DOMAIN = b"casetrail.tree-head.v1\n"
HEAD_FIELDS = ("log_id", "tree_size", "root_hash", "timestamp")
CASE_HEAD_DOMAIN = b"casetrail.case-head.v1\n"
CASE_HEAD_FIELDS = ("log_id", "case_id", "seq", "head_hash", "tree_size", "root_hash", "timestamp")

# Ledger time exactly as `format_recorded_at` writes it; ASCII digits only, so a signed
# statement never holds a value that has no canonical form.
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
# The case-id rule of docs/design.md (also `catalogue.CASE_ID_PATTERN`, which this module
# cannot import: it must ship without the catalogue's YAML and JSON Schema dependencies).
_CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class _SignedStatement:
    """What a tree head and a case head share: the fields signed, under a prefix of their
    own, and the JSON form with the signature beside them."""

    DOMAIN: ClassVar[bytes]
    FIELDS: ClassVar[tuple[str, ...]]
    signature: str

    def message(self) -> bytes:
        return self.DOMAIN + canonical_bytes(self.unsigned())

    def unsigned(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    def as_json(self) -> dict[str, Any]:
        return {**self.unsigned(), "signature": self.signature}


@dataclass(frozen=True)
class TreeHead(_SignedStatement):
    DOMAIN: ClassVar[bytes] = TREE_HEAD_DOMAIN
    FIELDS: ClassVar[tuple[str, ...]] = HEAD_FIELDS

    log_id: str
    tree_size: int
    root_hash: str
    timestamp: str
    signature: str = ""

    @classmethod
    def from_json(cls, data: Any) -> TreeHead:
        """Read a signed tree head, checking every field's type and shape."""
        fields = _signed_fields(data, "the tree head", HEAD_FIELDS)
        return cls(
            _hex_hash("the tree head", "log_id", fields["log_id"]),
            _whole_number("the tree head", "tree_size", fields["tree_size"], minimum=0),
            _hex_hash("the tree head", "root_hash", fields["root_hash"]),
            _timestamp("the tree head", fields["timestamp"]),
            fields["signature"],
        )


@dataclass(frozen=True)
class CaseHead(_SignedStatement):
    """The ledger's signed word that `case_id` ended at `seq` in the tree of `tree_size`."""

    DOMAIN: ClassVar[bytes] = CASE_HEAD_DOMAIN
    FIELDS: ClassVar[tuple[str, ...]] = CASE_HEAD_FIELDS

    log_id: str
    case_id: str
    seq: int
    head_hash: str
    tree_size: int
    root_hash: str
    timestamp: str
    signature: str = ""

    @classmethod
    def from_json(cls, data: Any) -> CaseHead:
        """Read a signed case head, checking every field's type and shape."""
        what = "the case head"
        fields = _signed_fields(data, what, CASE_HEAD_FIELDS)
        case_id = fields["case_id"]
        if not isinstance(case_id, str) or not _CASE_ID.fullmatch(case_id):
            raise SignatureError(
                f"{what}'s case_id must be 1-64 characters of A-Z a-z 0-9 . _ -, "
                "starting with a letter or digit"
            )
        return cls(
            _hex_hash(what, "log_id", fields["log_id"]),
            case_id,
            _whole_number(what, "seq", fields["seq"], minimum=1),
            _hex_hash(what, "head_hash", fields["head_hash"]),
            _whole_number(what, "tree_size", fields["tree_size"], minimum=1),
            _hex_hash(what, "root_hash", fields["root_hash"]),
            _timestamp(what, fields["timestamp"]),
            fields["signature"],
        )


def log_id_of(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from its 32 raw bytes, refusing small-order and invalid points."""
    if len(raw) != 32:
        raise SignatureError(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    if not crypto_core_ed25519_is_valid_point(raw):
        raise SignatureError(
            "the public key is not a valid Ed25519 point of prime order (the identity and "
            "other small-order points are refused before any signature is checked)"
        )
    return Ed25519PublicKey.from_public_bytes(raw)


PUBLIC_KEY_DOCUMENT = ("algorithm", "key", "log_id", "pem", "signed_message")
"""The members of GET /v1/log/public-key's answer, which a key file may hold as saved."""
_KEY_HINT = (
    "give the ledger's key as GET /v1/log/public-key serves it: the whole response as "
    "saved, its pem, or its base64 key"
)


def public_key_from_text(text: str) -> bytes:
    """Raw public key bytes from what GET /v1/log/public-key serves: the JSON document as
    saved, the PEM document of its `pem`, or the base64 of its `key`."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return _key_from_document(stripped)
    if stripped.startswith("-----BEGIN"):
        return _key_from_pem(stripped, "the PEM document")
    try:
        return strict_base64(stripped, "the public key")
    except SignatureError:
        raise SignatureError(
            f"the public key is neither JSON, PEM nor base64; {_KEY_HINT}"
        ) from None


def _key_from_pem(text: str, what: str) -> bytes:
    try:
        key = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SignatureError(f"{what} cannot be read as a public key; {_KEY_HINT}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{what} does not hold an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _key_from_document(text: str) -> bytes:
    """The key of a saved GET /v1/log/public-key answer, when everything in it agrees.

    A file that could be read as two keys is refused rather than resolved: the key it
    names is the one every signature of a bundle is trusted by.
    """
    what = "the key document"
    try:
        document = json.loads(text, object_pairs_hook=_members_once)
    except ValueError as error:
        raise SignatureError(f"{what} is not valid JSON ({error}); {_KEY_HINT}") from None
    except RecursionError:  # nesting no key document has, sent to exhaust the parser
        raise SignatureError(f"{what} is nested too deeply to be one; {_KEY_HINT}") from None
    if not isinstance(document, dict):
        raise SignatureError(f"{what} must be a JSON object; {_KEY_HINT}")
    unknown = [name for name in document if name not in PUBLIC_KEY_DOCUMENT]
    if unknown:
        shown = ", ".join(repr(name)[:40] for name in unknown[:5])
        raise SignatureError(
            f"{what} has members {shown} that GET /v1/log/public-key does not serve; it holds "
            f"{', '.join(PUBLIC_KEY_DOCUMENT)}: save the response unchanged"
        )
    for name in PUBLIC_KEY_DOCUMENT:
        if name in document and not isinstance(document[name], str):
            raise SignatureError(f"{what}'s {name} must be a string")
    if document.get("algorithm", "Ed25519") != "Ed25519":
        raise SignatureError(
            f"{what}'s algorithm must be Ed25519, the only one casetrail signs with"
        )

    keys = []
    if "key" in document:
        keys.append(strict_base64(document["key"], f"{what}'s key"))
    if "pem" in document:
        keys.append(_key_from_pem(document["pem"].strip(), f"{what}'s pem"))
    if not keys:
        raise SignatureError(f"{what} holds neither key nor pem; {_KEY_HINT}")
    if len(keys) == 2 and keys[0] != keys[1]:
        raise SignatureError(
            f"{what}'s key and pem are two different keys, so which one to trust cannot be "
            "told; fetch GET /v1/log/public-key again and save it unchanged"
        )
    if "log_id" in document and document["log_id"] != log_id_of(keys[0]):
        raise SignatureError(
            f"{what}'s log_id is not the SHA-256 of its key, so it names another log; fetch "
            "GET /v1/log/public-key again and save it unchanged"
        )
    return keys[0]


def _members_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal names; a key file must not say two things.
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise ValueError(f"the member {name[:40]!r} appears twice")
        members[name] = value
    return members


def strict_base64(text: Any, what: str) -> bytes:
    """Bytes from standard, padded base64, refusing any other spelling of the same bytes.

    `b64decode` alone accepts non-zero unused bits, so one signature or key would have
    several spellings; a verifier should accept exactly one.
    """
    if not isinstance(text, str):
        raise SignatureError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise SignatureError(f"{what} is not base64") from None
    if base64.b64encode(raw).decode() != text:
        raise SignatureError(f"{what} is not in canonical base64 (its unused bits are set)")
    return raw


def verify_tree_head(head: TreeHead, public_key: bytes) -> None:
    """Check a signed tree head against a public key; raises SignatureError naming the fault."""
    _verify_signed(head, public_key, "the tree head", f"the tree head of size {head.tree_size}")


def verify_case_head(head: CaseHead, public_key: bytes) -> None:
    """Check a signed case head against a public key; raises SignatureError naming the fault."""
    _verify_signed(
        head, public_key, "the case head", f"the case head of {head.case_id!r} at seq {head.seq}"
    )


class _Signed(Protocol):
    @property
    def log_id(self) -> str: ...

    @property
    def signature(self) -> str: ...

    def message(self) -> bytes: ...


def _verify_signed(statement: _Signed, public_key: bytes, what: str, which: str) -> None:
    key = load_public_key(public_key)
    if statement.log_id != log_id_of(public_key):
        raise SignatureError(
            f"{what}'s log_id {statement.log_id[:16]}… is not the id of this public key "
            f"({log_id_of(public_key)[:16]}…)"
        )
    signature = strict_base64(statement.signature, f"{what}'s signature")
    if len(signature) != 64:
        raise SignatureError(f"an Ed25519 signature is 64 bytes, got {len(signature)}")
    try:
        message = statement.message()
    except NotCanonicalizable as error:
        raise SignatureError(f"{which} has no canonical form: {error}") from None
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise SignatureError(f"the signature over {which} does not verify") from None


class LedgerKey:
    """The ledger's Ed25519 signing key, read from an owner-only PEM file."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.log_id = log_id_of(self.public_key)

    @classmethod
    def load(cls, path: str) -> LedgerKey:
        key_file = Path(path)
        if not key_file.exists():
            raise FileNotFoundError(
                f"no signing key at {path}: run `casetrail keys init` "
                "(or set CASETRAIL_SIGNING_KEY_PATH)"
            )
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise SignatureError(f"{path} does not hold an Ed25519 private key")
        return cls(key)

    @classmethod
    def create(cls, path: str) -> LedgerKey:
        """Generate the ledger's key pair into a new owner-only PEM file."""
        private_key = Ed25519PrivateKey.generate()
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_key_file(path, pem)
        return cls(private_key)

    def sign(self, tree_size: int, root_hash: str, timestamp: str) -> TreeHead:
        head = TreeHead(self.log_id, tree_size, root_hash, timestamp)
        return replace(head, signature=self._sign(head.message()))

    def sign_case_head(
        self, case_id: str, seq: int, head_hash: str, tree_head: TreeHead, timestamp: str
    ) -> CaseHead:
        """Sign that `case_id` ends at `seq`, whose hash is `head_hash`, in `tree_head`'s tree."""
        if tree_head.log_id != self.log_id:
            raise SignatureError("a case head can only name a tree head signed by this key")
        head = CaseHead(
            self.log_id,
            case_id,
            seq,
            head_hash,
            tree_head.tree_size,
            tree_head.root_hash,
            timestamp,
        )
        return replace(head, signature=self._sign(head.message()))

    def _sign(self, message: bytes) -> str:
        return base64.b64encode(self._private.sign(message)).decode()

    def public_key_pem(self) -> str:
        public = Ed25519PublicKey.from_public_bytes(self.public_key)
        return public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key).decode()

    def __repr__(self) -> str:
        return f"LedgerKey(log_id={self.log_id[:16]}…)"  # never the private key


def _signed_fields(data: Any, what: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The members of a signed statement: exactly `names` and a string `signature`."""
    if not isinstance(data, dict):
        raise SignatureError(f"{what} must be a JSON object")
    expected = (*names, "signature")
    missing = [name for name in expected if name not in data]
    if missing:
        raise SignatureError(f"{what} lacks {', '.join(missing)}")
    unknown = [name for name in data if name not in expected]
    if unknown:
        # A field nobody signed must not ride along looking signed.
        shown = ", ".join(
            repr(name)[:40] if isinstance(name, str) else type(name).__name__
            for name in unknown[:5]
        )
        raise SignatureError(
            f"{what} has unknown fields {shown}; it holds exactly {', '.join(expected)}"
        )
    if not isinstance(data["signature"], str):
        raise SignatureError(f"{what}'s signature must be a base64 string")
    return data


def is_count(value: Any, *, minimum: int) -> bool:
    """A whole number a signed document may hold: bool (an int subclass), 3.0 and anything
    a double cannot hold exactly are refused, whether parsed from text or handed over."""
    return type(value) is int and minimum <= value <= MAX_EXACT_INTEGER


def _whole_number(what: str, name: str, value: Any, *, minimum: int) -> int:
    if not is_count(value, minimum=minimum):
        raise SignatureError(f"{what}'s {name} must be a whole number from {minimum} to 2^53 - 1")
    return int(value)


def _hex_hash(what: str, name: str, value: Any) -> str:
    if not _is_hex_hash(value):
        raise SignatureError(f"{what}'s {name} must be 64 lower-case hex digits")
    return str(value)


def _timestamp(what: str, value: Any) -> str:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise SignatureError(f"{what}'s timestamp must be ledger time, YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return value


def _is_hex_hash(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 64
        and all(char in "0123456789abcdef" for char in value)
    )
