"""Sealing personal data before it is hashed, so erasure can destroy it without touching
the chain (crypto-shredding).

Each data subject (a party of an agency) has a random 256-bit data key. A personal field
is sealed as

    {"sealed": base64(nonce || AES-256-GCM ciphertext), "key_id": "<data key id>"}

with a fresh 96-bit nonce per field, and associated data that binds the case, the seq,
the party and the field name: a sealed value copied into another event, case or field
fails to open. Plaintext is framed with its length and padded to a multiple of 32 bytes
first, so the ciphertext shows only which 32-byte bucket a value's length falls in.

Data keys are stored wrapped (AES-256-GCM) by a master key that never enters the
database. Erasure destroys a party's wrapped keys in the live database (and asks it to
drop the old row versions: see projections/keystore.py). From then on the party's sealed
values open only for someone holding both a copy of a wrapped key taken before the
erasure (a backup, PostgreSQL's WAL or archives, disk blocks the file system freed) and
the master key it was wrapped under. Once every master key that ever wrapped them is
destroyed (rotate after the erasure, then destroy the old key), nobody can open them.
Every hash, chain and proof still verifies over the ciphertext either way.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.canonical import canonical_bytes
from domain.keyfiles import write_key_file

KEY_BYTES = 32
NONCE_BYTES = 12
PAD_BLOCK = 32
FIELD_DOMAIN = b"casetrail.pii.v1\n"
WRAP_DOMAIN = b"casetrail.data-key.v1\n"
ERASED = "erased"


class VaultError(Exception):
    """A key is missing or unusable, or a sealed value does not open."""


class MasterKeyMissing(VaultError):
    pass


@dataclass(frozen=True)
class MasterKey:
    """The key-encryption key. `key_id` names it without revealing it."""

    key: bytes
    key_id: str

    @classmethod
    def from_bytes(cls, key: bytes) -> MasterKey:
        if len(key) != KEY_BYTES:
            raise VaultError(f"a master key is {KEY_BYTES} bytes, got {len(key)}")
        return cls(key, hashlib.sha256(b"casetrail.master-key-id\n" + key).hexdigest()[:16])

    def wrap(self, data_key: bytes, *, label: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(nonce, data_key, WRAP_DOMAIN + label.encode())

    def unwrap(self, wrapped: bytes, *, label: str) -> bytes:
        try:
            return AESGCM(self.key).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], WRAP_DOMAIN + label.encode()
            )
        except InvalidTag:
            raise VaultError(
                f"the wrapped key {label!r} does not open with master key {self.key_id}; "
                "is this the master key the ledger was created with?"
            ) from None


def load_master_key(*, value: str, path: str) -> MasterKey:
    """Read the master key from CASETRAIL_MASTER_KEY (base64) or from the key file."""
    if value:
        try:
            return MasterKey.from_bytes(base64.b64decode(value, validate=True))
        except (ValueError, VaultError) as error:
            raise VaultError(
                f"CASETRAIL_MASTER_KEY must be {KEY_BYTES} bytes in base64: {error}"
            ) from None

    key_file = Path(path)
    if not key_file.exists():
        raise MasterKeyMissing(
            f"no master key at {path}: run `casetrail keys init` (or set CASETRAIL_MASTER_KEY)"
        )
    return MasterKey.from_bytes(base64.b64decode(key_file.read_text().strip(), validate=True))


def new_master_key_file(path: str) -> MasterKey:
    key = os.urandom(KEY_BYTES)
    write_key_file(path, base64.b64encode(key) + b"\n")
    return MasterKey.from_bytes(key)


def new_data_key() -> bytes:
    return os.urandom(KEY_BYTES)


def new_key_id() -> str:
    return "dk_" + os.urandom(16).hex()


def field_context(case_id: str, seq: int, party_id: str, field: str) -> bytes:
    """The associated data that pins a sealed value to its place in the ledger."""
    return FIELD_DOMAIN + canonical_bytes([case_id, seq, party_id, field])


def seal(data_key: bytes, key_id: str, plaintext: str, context: bytes) -> dict[str, str]:
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, _pad(plaintext.encode("utf-8")), context)
    return {"sealed": base64.b64encode(nonce + ciphertext).decode("ascii"), "key_id": key_id}


def open_sealed(data_key: bytes, sealed: dict[str, str], context: bytes) -> str:
    try:
        blob = base64.b64decode(sealed["sealed"], validate=True)
        padded = AESGCM(data_key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context)
    except (KeyError, ValueError, InvalidTag):
        raise VaultError(
            "the sealed value does not open here: it was sealed for another case, event, "
            "party or field, or it was altered"
        ) from None
    return _unpad(padded).decode("utf-8")


def is_sealed(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"sealed", "key_id"}


def _pad(data: bytes) -> bytes:
    framed = len(data).to_bytes(4, "big") + data
    return framed + b"\x00" * (-len(framed) % PAD_BLOCK)


def _unpad(padded: bytes) -> bytes:
    length = int.from_bytes(padded[:4], "big")
    return padded[4 : 4 + length]
