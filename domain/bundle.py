"""Dispute bundles: one case, exported so that anyone can verify it offline.

A bundle is one JSON document:

    {"format": "casetrail.bundle.v1",
     "case_id": "...", "catalogue_version": 1,
     "public_key": {"algorithm": "Ed25519", "key": base64 raw 32 bytes},
     "tree_head": {"log_id", "tree_size", "root_hash", "timestamp", "signature"},
     "events": [{"record": {envelope + hash}, "leaf_index": n, "inclusion_proof": [hex, ...]}]}

`verify_bundle` checks, with no database and no network: the bundle's shape; that the
public key is a valid Ed25519 point (and equals the trusted key, if one is given); that
its log id is the tree head's; the tree head's signature; each event's hash; the case's
chain from seq 1 with no gaps; each event's inclusion in the signed tree (the tree size
comes from the signed head, never from the caller); and, optionally, that a later signed
tree head is consistent with this one. It stops at the first failure and names it.

This module imports neither starlette nor the database layer, so it ships on its own
with `canonical`, `envelope`, `merkle`, `signing` and `errors`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain import merkle
from domain.envelope import ChainVerifier, Record
from domain.errors import BundleError, ProofError, SignatureError
from domain.signing import TreeHead, load_public_key, log_id_of, verify_tree_head

BUNDLE_FORMAT = "casetrail.bundle.v1"


class BundleCheckFailed(BundleError):
    """A named check of a bundle failed."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


@dataclass(frozen=True)
class BundleReport:
    case_id: str
    events: int
    tree_size: int
    root_hash: str
    log_id: str
    later_tree_size: int | None = None

    def summary(self) -> str:
        text = (
            f"bundle sound: case {self.case_id}, {self.events} events, chain intact, all "
            f"included in the signed tree head of size {self.tree_size} "
            f"(root {self.root_hash[:16]}…, log {self.log_id[:16]}…)"
        )
        if self.later_tree_size is not None:
            text += f"; consistent with the later tree head of size {self.later_tree_size}"
        return text


def build_bundle(
    case_id: str,
    catalogue_version: int,
    public_key: bytes,
    tree_head: TreeHead,
    events: Sequence[tuple[Record, int, Sequence[bytes]]],
) -> dict[str, Any]:
    return {
        "format": BUNDLE_FORMAT,
        "case_id": case_id,
        "catalogue_version": catalogue_version,
        "public_key": {"algorithm": "Ed25519", "key": base64.b64encode(public_key).decode()},
        "tree_head": tree_head.as_json(),
        "events": [
            {
                "record": record,
                "leaf_index": leaf_index,
                "inclusion_proof": [element.hex() for element in proof],
            }
            for record, leaf_index, proof in events
        ],
    }


def parse_bundle(text: bytes | str) -> dict[str, Any]:
    """Parse a bundle document strictly: one JSON object, nothing after it."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise BundleCheckFailed("format", "the bundle is not UTF-8") from None
    try:
        decoder = json.JSONDecoder()
        value, end = decoder.raw_decode(text.lstrip())
    except json.JSONDecodeError as error:
        raise BundleCheckFailed("format", f"the bundle is not JSON: {error.msg}") from None
    if text.lstrip()[end:].strip():
        raise BundleCheckFailed("format", "there are bytes after the bundle's JSON document")
    if not isinstance(value, dict):
        raise BundleCheckFailed("format", "the bundle is not a JSON object")
    return value


def verify_bundle(
    bundle: dict[str, Any],
    *,
    trusted_public_key: bytes | None = None,
    later_tree_head: dict[str, Any] | None = None,
    consistency_proof: dict[str, Any] | None = None,
) -> BundleReport:
    """Verify a parsed bundle; returns a report or raises BundleCheckFailed naming the check."""
    _check_shape(bundle)
    public_key = _check_public_key(bundle, trusted_public_key)
    head = _check_tree_head(bundle["tree_head"], public_key)
    _check_events(bundle, head)

    later_size = None
    if later_tree_head is not None:
        later_size = _check_later_head(head, later_tree_head, consistency_proof, public_key)
    return BundleReport(
        case_id=bundle["case_id"],
        events=len(bundle["events"]),
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        log_id=head.log_id,
        later_tree_size=later_size,
    )


def _check_shape(bundle: dict[str, Any]) -> None:
    if bundle.get("format") != BUNDLE_FORMAT:
        raise BundleCheckFailed("format", f"format must be {BUNDLE_FORMAT!r}")
    for name, kind in (
        ("case_id", str),
        ("public_key", dict),
        ("tree_head", dict),
        ("events", list),
    ):
        if not isinstance(bundle.get(name), kind):
            raise BundleCheckFailed("format", f"{name} is missing or has the wrong type")
    if not bundle["events"]:
        raise BundleCheckFailed("format", "the bundle holds no events")
    for index, entry in enumerate(bundle["events"]):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("record"), dict)
            or type(entry.get("leaf_index")) is not int
            or not isinstance(entry.get("inclusion_proof"), list)
        ):
            raise BundleCheckFailed(
                "format", f"events[{index}] needs record, leaf_index and inclusion_proof"
            )


def _check_public_key(bundle: dict[str, Any], trusted: bytes | None) -> bytes:
    described = bundle["public_key"]
    if described.get("algorithm") != "Ed25519" or not isinstance(described.get("key"), str):
        raise BundleCheckFailed("public-key", "the public key must be Ed25519, base64")
    try:
        embedded = base64.b64decode(described["key"], validate=True)
        load_public_key(embedded)
    except (ValueError, SignatureError) as error:
        raise BundleCheckFailed("public-key", str(error)) from None
    if trusted is not None:
        try:
            load_public_key(trusted)
        except SignatureError as error:
            raise BundleCheckFailed("public-key", f"the trusted key: {error}") from None
        if trusted != embedded:
            raise BundleCheckFailed(
                "public-key",
                f"the bundle's key (log {log_id_of(embedded)[:16]}…) is not the trusted key "
                f"(log {log_id_of(trusted)[:16]}…)",
            )
    return embedded


def _check_tree_head(data: dict[str, Any], public_key: bytes) -> TreeHead:
    try:
        head = TreeHead.from_json(data)
    except SignatureError as error:
        raise BundleCheckFailed("tree-head", str(error)) from None
    if head.log_id != log_id_of(public_key):
        raise BundleCheckFailed(
            "log-id",
            f"the tree head's log_id {head.log_id[:16]}… is not the id of the public key "
            f"({log_id_of(public_key)[:16]}…)",
        )
    try:
        verify_tree_head(head, public_key)
    except SignatureError as error:
        raise BundleCheckFailed("signature", str(error)) from None
    return head


def _check_events(bundle: dict[str, Any], head: TreeHead) -> None:
    case_id = bundle["case_id"]
    chain = ChainVerifier(case_id)
    included = merkle.InclusionVerifier(head.tree_size, bytes.fromhex(head.root_hash))

    for entry in bundle["events"]:
        record = entry["record"]
        seq = record.get("seq")
        if type(seq) is not int:
            raise BundleCheckFailed("event-hash", "a record has no integer seq")

        fault = chain.add(chain.seq + 1, record)
        if fault is not None:
            check = {"hash": "event-hash", "format": "format"}.get(fault.kind, "chain")
            raise BundleCheckFailed(check, f"seq {fault.seq}: {fault.reason}")

        try:
            proof = [bytes.fromhex(element) for element in entry["inclusion_proof"]]
        except (TypeError, ValueError):
            raise BundleCheckFailed("inclusion", f"seq {seq}: a proof element is not hex") from None
        leaf = merkle.leaf_hash(bytes.fromhex(record["hash"]))
        try:
            included.verify(leaf, entry["leaf_index"], proof)
        except ProofError as error:
            raise BundleCheckFailed(
                "inclusion",
                f"seq {seq} (leaf {entry['leaf_index']}) is not included in the signed tree "
                f"of size {head.tree_size}: {error}",
            ) from None


def _check_later_head(
    head: TreeHead,
    later: dict[str, Any],
    consistency: dict[str, Any] | None,
    public_key: bytes,
) -> int:
    later_head = _check_tree_head(later, public_key)
    if consistency is None:
        raise BundleCheckFailed("consistency", "a later tree head needs a consistency proof")
    try:
        first, second = consistency["first"], consistency["second"]
        proof = [bytes.fromhex(element) for element in consistency["proof"]]
    except (KeyError, TypeError, ValueError):
        raise BundleCheckFailed(
            "consistency", "the consistency proof must be {first, second, proof: [hex]}"
        ) from None
    if (first, second) != (head.tree_size, later_head.tree_size):
        raise BundleCheckFailed(
            "consistency",
            f"the proof is for sizes {first}→{second}, but the tree heads are "
            f"{head.tree_size}→{later_head.tree_size}",
        )
    try:
        merkle.verify_consistency(
            head.tree_size,
            later_head.tree_size,
            proof,
            bytes.fromhex(head.root_hash),
            bytes.fromhex(later_head.root_hash),
        )
    except ProofError as error:
        raise BundleCheckFailed("consistency", str(error)) from None
    return later_head.tree_size
