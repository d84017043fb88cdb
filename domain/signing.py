"""The ledger's signing key and its signed tree heads.

A tree head commits the ledger to the first `tree_size` events of its global log:

    {"log_id": hex SHA-256 of the raw Ed25519 public key,
     "tree_size": n, "root_hash": hex RFC 9162 root, "timestamp": ledger time}

The signature is Ed25519 over `b"casetrail.tree-head.v1\\n" || JCS(head)`; the prefix
keeps a tree-head signature from ever being mistaken for a signature over anything else.
Public keys from outside (a bundle, a witness) are refused when they are not a valid
point of prime order, before any signature is checked: the identity point and the other
small-order points would let a forger "verify" chosen messages.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_core_ed25519_is_valid_point

from domain.canonical import canonical_bytes
from domain.errors import SignatureError
from domain.keyfiles import write_key_file

TREE_HEAD_DOMAIN = b"casetrail.tree-head.v1\n"
HEAD_FIELDS = ("log_id", "tree_size", "root_hash", "timestamp")


@dataclass(frozen=True)
class TreeHead:
    log_id: str
    tree_size: int
    root_hash: str
    timestamp: str
    signature: str = ""

    def message(self) -> bytes:
        return TREE_HEAD_DOMAIN + canonical_bytes(self.unsigned())

    def unsigned(self) -> dict[str, Any]:
        return {
            "log_id": self.log_id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "timestamp": self.timestamp,
        }

    def as_json(self) -> dict[str, Any]:
        return {**self.unsigned(), "signature": self.signature}

    @classmethod
    def from_json(cls, data: Any) -> TreeHead:
        """Read a signed tree head, checking every field's type and shape."""
        if not isinstance(data, dict):
            raise SignatureError("a tree head must be a JSON object")
        missing = [name for name in (*HEAD_FIELDS, "signature") if name not in data]
        if missing:
            raise SignatureError(f"the tree head lacks {', '.join(missing)}")
        size = data["tree_size"]
        if type(size) is not int or size < 0:
            raise SignatureError("tree_size must be a whole number")
        for name in ("log_id", "root_hash"):
            if not _is_hex_hash(data[name]):
                raise SignatureError(f"{name} must be 64 lower-case hex digits")
        if not isinstance(data["timestamp"], str) or not isinstance(data["signature"], str):
            raise SignatureError("timestamp and signature must be strings")
        return cls(data["log_id"], size, data["root_hash"], data["timestamp"], data["signature"])


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


def public_key_from_text(text: str) -> bytes:
    """Raw public key bytes from base64 of the 32 bytes, or from a PEM document."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(stripped.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise SignatureError("the PEM document does not hold an Ed25519 public key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        return base64.b64decode(stripped, validate=True)
    except ValueError:
        raise SignatureError("the public key is neither PEM nor base64") from None


def verify_tree_head(head: TreeHead, public_key: bytes) -> None:
    """Check a signed tree head against a public key; raises SignatureError naming the fault."""
    key = load_public_key(public_key)
    if head.log_id != log_id_of(public_key):
        raise SignatureError(
            f"the tree head's log_id {head.log_id[:16]}… is not the id of this public key "
            f"({log_id_of(public_key)[:16]}…)"
        )
    try:
        signature = base64.b64decode(head.signature, validate=True)
    except ValueError:
        raise SignatureError("the tree head's signature is not base64") from None
    if len(signature) != 64:
        raise SignatureError(f"an Ed25519 signature is 64 bytes, got {len(signature)}")
    try:
        key.verify(signature, head.message())
    except InvalidSignature:
        raise SignatureError(
            f"the signature over the tree head of size {head.tree_size} does not verify"
        ) from None


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
        signature = self._private.sign(head.message())
        return TreeHead(
            self.log_id, tree_size, root_hash, timestamp, base64.b64encode(signature).decode()
        )

    def public_key_pem(self) -> str:
        public = Ed25519PublicKey.from_public_bytes(self.public_key)
        return public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key).decode()

    def __repr__(self) -> str:
        return f"LedgerKey(log_id={self.log_id[:16]}…)"  # never the private key


def _is_hex_hash(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 64
        and all(char in "0123456789abcdef" for char in value)
    )
