"""Dispute bundles: one case, exported so that anyone can verify it offline.

A bundle is one JSON document. Every object outside the records holds exactly these
members, no more, so that nothing unchecked can ride along looking verified:

    {"format": "casetrail.bundle.v2",
     "case_id": "...", "catalogue_version": 1,
     "public_key": {"algorithm": "Ed25519", "key": base64 raw 32 bytes},
     "tree_head": {"log_id", "tree_size", "root_hash", "timestamp", "signature"},
     "case_head": {"log_id", "case_id", "seq", "head_hash", "tree_size", "root_hash",
                   "timestamp", "signature"},
     "events": [{"record": {envelope + hash}, "leaf_index": n, "inclusion_proof": [hex, ...]}]}

`case_head` is the ledger's signature, made when it exported the bundle, that the case
ended at `seq` (hash `head_hash`) in the tree of the bundle's tree head (see
`domain/signing.py`). Version 1 bundles lack it, so one cut short at its end still
verified; they are refused.

`parse_bundle` reads bytes strictly: UTF-8, one JSON object and nothing after it, no key
twice in one object, no NaN or Infinity, no fraction or exponent (the ledger records
integers only, and 1.0 has the same canonical form as 1), integers within ±(2^53 − 1).
`verify_bundle` then checks, with no database and no network, and stops at the first
failure, which `BundleCheckFailed.check` names:

    format       the shape and exact types of everything outside the records; hashes
                 are 64 lower-case hex digits, base64 is canonical; records hold JSON
                 values only, nested no deeper than the ledger accepts
    public-key   the key is an Ed25519 point of prime order and equals the trusted key
                 (unless the caller chose to trust the bundle's own key)
    log-id, tree-head, signature
                 the tree head belongs to that key and its signature verifies
    case-head    the case head is signed by the same key, for this case and this tree
                 head, and the records end exactly at its seq and hash
    event-hash, chain
                 each record's hash; the chain runs from seq 1 with no gap
    inclusion    each record is a leaf of the signed tree (its size comes from the signed
                 head, never from the caller)
    consistency  optionally, a later signed tree head extends this one

This module imports neither starlette nor the database layer: it ships on its own with
`canonical`, `envelope`, `merkle`, `signing`, `keyfiles` (which `signing` imports) and
`errors`, and the packages orjson, cryptography and PyNaCl.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain import merkle
from domain.canonical import MAX_EXACT_INTEGER
from domain.envelope import ChainVerifier, Record
from domain.errors import BundleError, ProofError, SignatureError
from domain.signing import (
    CaseHead,
    TreeHead,
    is_count,
    load_public_key,
    log_id_of,
    strict_base64,
    verify_case_head,
    verify_tree_head,
)

BUNDLE_FORMAT = "casetrail.bundle.v2"
OLD_FORMATS = ("casetrail.bundle.v1",)
CATALOGUE_VERSIONS = (1,)
"""The event catalogue versions whose records this verifier knows how to read."""

RECORD_MAX_DEPTH = 32
"""Deepest nesting inside a record (the record itself at depth 0). The API refuses
bodies nested deeper (`domain.validation.MAX_DEPTH`), and a record nests exactly as the
event it was made from, so anything deeper was never recorded; refusing it also keeps
the canonicalizer, which recurses, far from Python's recursion limit."""

BUNDLE_FIELDS = (
    "format",
    "case_id",
    "catalogue_version",
    "public_key",
    "tree_head",
    "case_head",
    "events",
)
_KEY_FIELDS = ("algorithm", "key")
_ENTRY_FIELDS = ("record", "leaf_index", "inclusion_proof")
_ENTRY_KEYS = frozenset(_ENTRY_FIELDS)
_PROOF_FIELDS = ("first", "second", "proof")
_RESPONSE_FIELDS = (*_PROOF_FIELDS, "first_tree_head", "second_tree_head")
_HASH_HEX = 2 * merkle.HASH_SIZE
_MAX_REASON = 600


class BundleCheckFailed(BundleError):
    """A named check of a bundle failed."""

    def __init__(self, check: str, message: str) -> None:
        # Messages quote values from the document, which may hold line breaks or be huge;
        # a reason is one line, short enough to read.
        if not message.isprintable():
            message = "".join(char if char.isprintable() else ascii(char)[1:-1] for char in message)
        if len(message) > _MAX_REASON:
            message = message[: _MAX_REASON - 1] + "…"
        super().__init__(f"{check}: {message}")
        self.check = check


@dataclass(frozen=True)
class BundleReport:
    """What a sound bundle showed.

    `log_id` identifies the key every signature was checked against (the SHA-256 of the
    raw key). `own_key` is True when that key was the one inside the bundle, because the
    caller chose `trust_bundle_key`: then the bundle is consistent, but who made it was
    not checked, since anyone can sign a bundle with a key of their own.
    """

    case_id: str
    events: int
    tree_size: int
    root_hash: str
    log_id: str
    signed_at: str
    own_key: bool
    later_tree_size: int | None = None

    def summary(self) -> str:
        text = (
            f"bundle sound: case {self.case_id}, {self.events} events (seq 1-{self.events}, "
            f"the whole case as the ledger signed it at {self.signed_at}), chain intact, all "
            f"included in the signed tree head of size {self.tree_size} "
            f"(root {self.root_hash[:16]}…, log {self.log_id[:16]}…)"
        )
        if self.later_tree_size is not None:
            text += f"; consistent with the later tree head of size {self.later_tree_size}"
        if self.own_key:
            return (
                "ORIGIN NOT CHECKED: the bundle was checked only against the public key "
                "inside it, which anyone can put there; check it against the ledger's "
                "published key to know who made it. " + text
            )
        return text + "; signed by the trusted key"


def build_bundle(
    case_id: str,
    catalogue_version: int,
    public_key: bytes,
    tree_head: TreeHead,
    case_head: CaseHead,
    events: Sequence[tuple[Record, int, Sequence[bytes]]],
) -> dict[str, Any]:
    return {
        "format": BUNDLE_FORMAT,
        "case_id": case_id,
        "catalogue_version": catalogue_version,
        "public_key": {"algorithm": "Ed25519", "key": base64.b64encode(public_key).decode()},
        "tree_head": tree_head.as_json(),
        "case_head": case_head.as_json(),
        "events": [
            {
                "record": record,
                "leaf_index": leaf_index,
                "inclusion_proof": [element.hex() for element in proof],
            }
            for record, leaf_index, proof in events
        ],
    }


# -- reading ---------------------------------------------------------------------------


class _Refused(Exception):
    """A value strict JSON parsing refuses; its message says which and why."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(
                    f"the key {key[:40]!r} appears twice in one object; JSON parsers "
                    "disagree about which one counts, so neither is accepted"
                )
            seen.add(key)
    return result


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _fraction(text: str) -> Any:
    raise _Refused(
        f"the number {text[:40]} has a fraction or an exponent; a casetrail bundle holds "
        "integers only"
    )


def _integer(text: str) -> int:
    # Checked on the text first: int() of thousands of digits is slow, and refused anyway.
    if len(text) <= 17:
        value = int(text)
        if -MAX_EXACT_INTEGER <= value <= MAX_EXACT_INTEGER:
            return value
    shown = text if len(text) <= 24 else text[:24] + "…"
    raise _Refused(f"the integer {shown} is beyond ±(2^53 − 1), which a double cannot hold")


_STRICT_JSON = json.JSONDecoder(
    object_pairs_hook=_object, parse_constant=_constant, parse_float=_fraction, parse_int=_integer
)


def parse_bundle(text: bytes | str, *, name: str = "the bundle") -> dict[str, Any]:
    """Parse one JSON object strictly (see the module docstring).

    Also reads the other documents a verifier is handed (a later tree head, a consistency
    proof); `name` says which, so that a message names the document at fault.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BundleCheckFailed("format", f"{name} is not UTF-8 (byte {error.start})") from None
    try:
        value = _STRICT_JSON.decode(text)
    except _Refused as refused:
        raise BundleCheckFailed("format", f"{name}: {refused}") from None
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            raise BundleCheckFailed(
                "format",
                f"there are bytes after the JSON document of {name} "
                f"(line {error.lineno} column {error.colno})",
            ) from None
        raise BundleCheckFailed(
            "format",
            f"{name} is not JSON: {error.msg} at line {error.lineno} column {error.colno}",
        ) from None
    except RecursionError:
        raise BundleCheckFailed("format", f"{name} is nested too deeply to be read") from None
    if not isinstance(value, dict):
        raise BundleCheckFailed("format", f"{name} is not a JSON object")
    return value


# -- verifying -------------------------------------------------------------------------


def verify_bundle(
    bundle: dict[str, Any],
    *,
    trusted_public_key: bytes | None = None,
    trust_bundle_key: bool = False,
    later_tree_head: dict[str, Any] | None = None,
    consistency_proof: dict[str, Any] | None = None,
) -> BundleReport:
    """Verify a parsed bundle; returns a report or raises BundleCheckFailed naming the check.

    Signatures show who made a bundle only when checked against a key trusted for other
    reasons: pass the ledger's published key (GET /v1/log/public-key) as
    `trusted_public_key`. `trust_bundle_key=True` checks them against the key inside the
    bundle instead, and the report says so (`own_key`). Exactly one of the two is needed.

    `consistency_proof` is the response of GET /v1/log/consistency as served, which holds
    the later tree head; or `{first, second, proof}` with the head as `later_tree_head`.
    """
    if (trusted_public_key is None) == (not trust_bundle_key):
        raise BundleCheckFailed(
            "public-key",
            "give the ledger's published public key to check the bundle against, or choose "
            "to trust the bundle's own key (which proves nothing about who made it); "
            + ("not both" if trust_bundle_key else "neither was given"),
        )
    _check_shape(bundle)
    public_key = _check_public_key(bundle["public_key"], trusted_public_key)
    head = _check_tree_head(bundle["tree_head"], public_key, "the tree head")
    case_head = _check_case_head(bundle, head, public_key)
    _check_events(bundle["events"], bundle["case_id"], head, case_head)

    later_size = None
    if later_tree_head is not None or consistency_proof is not None:
        later_size = _check_later_head(head, later_tree_head, consistency_proof, public_key)
    return BundleReport(
        case_id=bundle["case_id"],
        events=len(bundle["events"]),
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        log_id=head.log_id,
        signed_at=case_head.timestamp,
        own_key=trust_bundle_key,
        later_tree_size=later_size,
    )


def _check_shape(bundle: Any) -> None:
    if not isinstance(bundle, dict):
        raise BundleCheckFailed("format", "the bundle is not a JSON object")
    form = bundle.get("format")
    if form in OLD_FORMATS:
        raise BundleCheckFailed(
            "format",
            f"this is a {form} bundle, which cannot show that no events were cut from its "
            "end; export the case again (GET /v1/cases/{case_id}/bundle or `casetrail "
            f"export`) to get a {BUNDLE_FORMAT} bundle",
        )
    if form != BUNDLE_FORMAT:
        raise BundleCheckFailed(
            "format",
            f"format must be {BUNDLE_FORMAT!r}, not {_shown(form)}: this is not a casetrail "
            "dispute bundle this verifier reads",
        )
    _closed(bundle, BUNDLE_FIELDS, "the bundle", "format")
    if not isinstance(bundle["case_id"], str):
        raise BundleCheckFailed("format", "case_id must be a string")
    version = bundle["catalogue_version"]
    if type(version) is not int or version not in CATALOGUE_VERSIONS:
        known = ", ".join(str(known) for known in CATALOGUE_VERSIONS)
        raise BundleCheckFailed(
            "format",
            f"catalogue_version must be one this verifier knows ({known}), not "
            f"{_shown(version)}; a newer casetrail may know it",
        )
    if not isinstance(bundle["events"], list) or not bundle["events"]:
        raise BundleCheckFailed("format", "events must be a non-empty list")


def _check_public_key(described: Any, trusted: bytes | None) -> bytes:
    _closed(described, _KEY_FIELDS, "public_key", "public-key")
    if described["algorithm"] != "Ed25519":
        raise BundleCheckFailed("public-key", "public_key.algorithm must be 'Ed25519'")
    try:
        embedded = strict_base64(described["key"], "public_key.key")
        load_public_key(embedded)
    except SignatureError as error:
        raise BundleCheckFailed("public-key", str(error)) from None
    if trusted is not None:
        if not isinstance(trusted, bytes):
            raise BundleCheckFailed("public-key", "the trusted key must be its 32 raw bytes")
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


def _check_tree_head(data: Any, public_key: bytes, label: str) -> TreeHead:
    if isinstance(data, dict) and "second_tree_head" in data:
        raise BundleCheckFailed(
            "tree-head",
            f"{label} is a response of GET /v1/log/consistency, not a tree head; give it as "
            "the consistency proof instead",
        )
    # signing's messages already say "the tree head"; only another head needs naming.
    prefix = "" if label == "the tree head" else f"{label}: "
    try:
        head = TreeHead.from_json(data)
    except SignatureError as error:
        raise BundleCheckFailed("tree-head", f"{prefix}{error}") from None
    if head.log_id != log_id_of(public_key):
        raise BundleCheckFailed(
            "log-id",
            f"{label}'s log_id {head.log_id[:16]}… is not the id of the public key "
            f"({log_id_of(public_key)[:16]}…)",
        )
    try:
        verify_tree_head(head, public_key)
    except SignatureError as error:
        raise BundleCheckFailed("signature", f"{prefix}{error}") from None
    return head


def _check_case_head(bundle: dict[str, Any], head: TreeHead, public_key: bytes) -> CaseHead:
    try:
        case_head = CaseHead.from_json(bundle["case_head"])
        verify_case_head(case_head, public_key)
    except SignatureError as error:
        raise BundleCheckFailed("case-head", str(error)) from None
    if case_head.case_id != bundle["case_id"]:
        raise BundleCheckFailed(
            "case-head",
            f"the case head is for case {case_head.case_id!r}, but the bundle is of case "
            f"{_shown(bundle['case_id'])}",
        )
    if (case_head.tree_size, case_head.root_hash) != (head.tree_size, head.root_hash):
        raise BundleCheckFailed(
            "case-head",
            f"the case head names the tree of size {case_head.tree_size} (root "
            f"{case_head.root_hash[:16]}…), but the bundle's tree head is of size "
            f"{head.tree_size} (root {head.root_hash[:16]}…)",
        )
    return case_head


def _check_events(events: list[Any], case_id: str, head: TreeHead, case_head: CaseHead) -> None:
    chain = ChainVerifier(case_id)
    included = merkle.InclusionVerifier(head.tree_size, bytes.fromhex(head.root_hash))

    for index, entry in enumerate(events):
        if not isinstance(entry, dict) or entry.keys() != _ENTRY_KEYS:
            _closed(entry, _ENTRY_FIELDS, f"events[{index}]", "format")
        record, leaf_index = entry["record"], entry["leaf_index"]
        if type(record) is not dict:
            raise BundleCheckFailed("format", f"events[{index}].record must be a JSON object")
        if not is_count(leaf_index, minimum=0):
            raise BundleCheckFailed(
                "format", f"events[{index}].leaf_index must be a whole number from 0 to 2^53 − 1"
            )
        if not is_count(record.get("seq"), minimum=1):
            raise BundleCheckFailed(
                "format", f"events[{index}].record's seq must be a whole number from 1 to 2^53 − 1"
            )
        fault = _record_value_fault(record)
        if fault is not None:
            raise BundleCheckFailed("format", f"events[{index}].record {fault}")

        chain_fault = chain.add(chain.seq + 1, record)
        if chain_fault is not None:
            check = {"hash": "event-hash", "format": "format"}.get(chain_fault.kind, "chain")
            raise BundleCheckFailed(check, f"seq {chain_fault.seq}: {chain_fault.reason}")

        seq = chain.seq
        proof = _hashes(entry["inclusion_proof"], f"seq {seq}: the inclusion proof", "inclusion")
        leaf = merkle.leaf_hash(bytes.fromhex(record["hash"]))
        try:
            included.verify(leaf, leaf_index, proof)
        except ProofError as error:
            raise BundleCheckFailed(
                "inclusion",
                f"seq {seq} (leaf {leaf_index}) is not included in the signed tree "
                f"of size {head.tree_size}: {error}",
            ) from None

    # Every record so far is genuine; only the signed case head shows none is missing at
    # the end, where the chain has nothing after it to break.
    if (chain.seq, chain.head_hash) != (case_head.seq, case_head.head_hash):
        raise BundleCheckFailed(
            "case-head",
            f"the bundle ends at seq {chain.seq} (hash {chain.head_hash[:16]}…), but the "
            f"ledger signed that case {case_id!r} ended at seq {case_head.seq} (hash "
            f"{case_head.head_hash[:16]}…) when it made the bundle: events are missing from "
            "its end",
        )


def _check_later_head(
    head: TreeHead,
    later: Any,
    consistency: Any,
    public_key: bytes,
) -> int:
    if consistency is None:
        raise BundleCheckFailed(
            "consistency",
            "a later tree head needs its consistency proof: the response of "
            f"GET /v1/log/consistency?first={head.tree_size}&second=<the later size>",
        )
    if isinstance(consistency, dict) and "second_tree_head" in consistency:
        _closed(consistency, _RESPONSE_FIELDS, "the consistency proof", "consistency")
        later_head = _check_tree_head(
            consistency["second_tree_head"], public_key, "the consistency proof's second_tree_head"
        )
        if later is not None and _check_tree_head(later, public_key, "the later tree head") != (
            later_head
        ):
            raise BundleCheckFailed(
                "consistency",
                "the later tree head differs from the consistency proof's second_tree_head; "
                "give the response of GET /v1/log/consistency alone",
            )
        first_head = _check_tree_head(
            consistency["first_tree_head"], public_key, "the consistency proof's first_tree_head"
        )
        if first_head.tree_size != head.tree_size:
            raise BundleCheckFailed(
                "consistency",
                f"the consistency proof starts from the tree of size {first_head.tree_size}, "
                f"but the bundle's tree head is of size {head.tree_size}: ask for "
                f"GET /v1/log/consistency?first={head.tree_size}&second=<the later size>",
            )
        if first_head.root_hash != head.root_hash:
            raise BundleCheckFailed(
                "consistency",
                f"two tree heads of size {head.tree_size} signed by the same key have "
                f"different roots ({head.root_hash[:16]}…, {first_head.root_hash[:16]}…): "
                "the log has forked; keep both documents as evidence",
            )
    else:
        _closed(consistency, _PROOF_FIELDS, "the consistency proof", "consistency")
        if later is None:
            raise BundleCheckFailed(
                "consistency",
                "the consistency proof {first, second, proof} names no later tree head: give "
                "that head too, or the whole response of GET /v1/log/consistency, which "
                "holds it",
            )
        later_head = _check_tree_head(later, public_key, "the later tree head")

    first, second = consistency["first"], consistency["second"]
    if not (is_count(first, minimum=1) and is_count(second, minimum=1)):
        raise BundleCheckFailed(
            "consistency",
            "the consistency proof's first and second must be whole numbers from 1 to 2^53 − 1",
        )
    proof = _hashes(consistency["proof"], "the consistency proof's proof", "consistency")
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


# -- exact shapes ----------------------------------------------------------------------


def _closed(value: Any, fields: tuple[str, ...], what: str, check: str) -> None:
    """Refuse anything but an object with exactly `fields`, naming what is wrong."""
    if not isinstance(value, dict):
        raise BundleCheckFailed(check, f"{what} must be a JSON object")
    if value.keys() == set(fields):
        return
    missing = [name for name in fields if name not in value]
    unknown = [name for name in value if name not in fields]
    faults = []
    if missing:
        faults.append(f"lacks {', '.join(missing)}")
    if unknown:
        faults.append(f"has unknown fields {', '.join(_shown(name) for name in unknown[:5])}")
    raise BundleCheckFailed(
        check, f"{what} {' and '.join(faults)}; it holds exactly {', '.join(fields)}"
    )


def _hashes(elements: Any, what: str, check: str) -> list[bytes]:
    """Bytes from a list of lower-case hex strings, each spelling its bytes exactly.

    The round trip refuses what `bytes.fromhex` lets through (upper case, spaces). That
    each is a 32-byte hash is checked where the hashes are used, by `merkle`'s verifiers,
    which refuse any other length before hashing anything.
    """
    if not isinstance(elements, list):
        raise BundleCheckFailed(check, f"{what} must be a list of hashes")
    try:
        hashes = list(map(bytes.fromhex, elements))
    except (TypeError, ValueError):
        hashes = []
    if list(map(bytes.hex, hashes)) != elements:
        raise BundleCheckFailed(
            check, f"{what} must hold only hashes of {_HASH_HEX} lower-case hex digits"
        )
    return hashes


def _record_value_fault(record: dict[str, Any]) -> str | None:
    """Why a record holds a value no ledger record can, or None.

    1.0 and -0.0 have the canonical forms of 1 and 0, so a record holding them would pass
    its hash check while meaning something else to the program reading it; the ledger
    refuses them on the way in, and the verifier refuses them on the way out.
    """
    stack: list[tuple[Any, int]] = [(record, 0)]
    while stack:
        item, depth = stack.pop()
        if depth >= RECORD_MAX_DEPTH:
            return f"is nested more than {RECORD_MAX_DEPTH} levels deep"
        for child in item.values() if type(item) is dict else item:
            kind = type(child)
            if kind is str or kind is bool or child is None:
                continue
            if kind is int:
                if -MAX_EXACT_INTEGER <= child <= MAX_EXACT_INTEGER:
                    continue
                return "holds an integer beyond ±(2^53 − 1)"
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
                continue
            return f"holds {_shown(child)}, which is not a value the ledger records"
    return None


def _shown(value: Any) -> str:
    """A short, one-line rendering of a value from the document, for a message."""
    if isinstance(value, bool) or value is None or type(value) in (str, float):
        text = json.dumps(value)
    elif type(value) is int:
        text = str(value) if -MAX_EXACT_INTEGER <= value <= MAX_EXACT_INTEGER else "a huge integer"
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:39] + "…"
