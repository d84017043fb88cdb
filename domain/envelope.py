"""The envelope of an event, its hash, and the per-case hash chain.

An event is recorded as a *record*: the envelope (every field below) plus its `hash`.

    case_id, seq, type, schema_version, occurred_at, recorded_at, recorded_by,
    actor {id, role, agency}, payload, evidence [{name, sha256, media_type}], prev_hash

    hash = SHA-256(b"casetrail.event.v1\\n" + RFC 8785 bytes of the envelope), lower-case hex
    prev_hash of seq 1 = 64 zeros; of seq n = hash of seq n−1

The stored bytes of an event are the RFC 8785 bytes of the record (envelope and hash
together), so a verifier can parse a stored row, drop `hash`, re-canonicalize, hash, and
compare, with no knowledge of casetrail's code. `docs/design.md` says the same for
someone writing an independent verifier.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from domain.canonical import NotCanonicalizable, canonical_bytes

HASH_DOMAIN = b"casetrail.event.v1\n"
GENESIS_HASH = "0" * 64
ENVELOPE_FIELDS = frozenset(
    {
        "case_id",
        "seq",
        "type",
        "schema_version",
        "occurred_at",
        "recorded_at",
        "recorded_by",
        "actor",
        "payload",
        "evidence",
        "prev_hash",
    }
)

Record = dict[str, Any]


def envelope_hash(envelope: Mapping[str, Any], *, json_safe: bool = False) -> str:
    """The hash of an envelope (a record minus its `hash` field)."""
    canonical = canonical_bytes(envelope, json_safe=json_safe)
    return hashlib.sha256(HASH_DOMAIN + canonical).hexdigest()


def make_record(envelope: Mapping[str, Any], *, json_safe: bool = False) -> tuple[Record, bytes]:
    """Hash an envelope; return the record and the exact bytes to store.

    `json_safe` as in `canonical_bytes`: the envelope was built from strictly parsed input.
    """
    record = dict(envelope)
    record["hash"] = envelope_hash(envelope, json_safe=json_safe)
    return record, canonical_bytes(record, json_safe=json_safe)


def format_recorded_at(moment: datetime) -> str:
    """Ledger time as stored: UTC, microseconds, fixed width, so text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_recorded_at(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class RecordFault:
    """Why one stored record cannot be trusted.

    `kind` says which check failed: "format" (not a canonical record), "hash" (the record
    does not hash to its `hash`), "place" (wrong case or seq, or a seq missing), "link"
    (its `prev_hash` is not the hash of the record before), "time" (its `recorded_at` is
    earlier than the record before's).
    """

    seq: int
    reason: str
    kind: str = "format"


def parse_stored(state: bytes, *, seq: int, verify: bool = True) -> Record | RecordFault:
    """Parse stored record bytes, refusing anything that is not exactly canonical.

    Read models pass `verify=False`: they only need the values, and verification is the
    business of the chain verifier and of every read that serves records.
    """
    if not isinstance(state, bytes):
        return RecordFault(
            seq, "stored record is not bytes (the column holds text or another type)"
        )
    try:
        record = orjson.loads(state)
    except orjson.JSONDecodeError:
        return RecordFault(seq, "stored record is not valid JSON")
    if not isinstance(record, dict):
        return RecordFault(seq, "stored record is not a JSON object")
    if not verify:
        return record

    try:
        canonical = canonical_bytes(record)
    except NotCanonicalizable as error:
        return RecordFault(seq, f"stored record cannot be canonicalized: {error}")
    if canonical != state:
        return RecordFault(seq, "stored record bytes are not in canonical form")
    return record


def check_record(record: Record, *, case_id: str, seq: int) -> RecordFault | None:
    """Check one record on its own: its fields, its place, and its hash."""
    missing = ENVELOPE_FIELDS - record.keys()
    if missing or "hash" not in record:
        absent = ", ".join(sorted(missing | ({"hash"} - record.keys())))
        return RecordFault(seq, f"record lacks {absent}")
    unexpected = record.keys() - ENVELOPE_FIELDS - {"hash"}
    if unexpected:
        return RecordFault(seq, f"record has unexpected fields {', '.join(sorted(unexpected))}")
    if record["case_id"] != case_id:
        return RecordFault(
            seq, f"record belongs to case {record['case_id']!r}, not {case_id!r}", "place"
        )
    if record["seq"] != seq:
        return RecordFault(
            seq, f"record claims seq {record['seq']} but is stored at seq {seq}", "place"
        )

    envelope = {name: value for name, value in record.items() if name != "hash"}
    try:
        recomputed = envelope_hash(envelope)
    except NotCanonicalizable as error:
        return RecordFault(seq, f"record cannot be canonicalized: {error}")
    if recomputed != record["hash"]:
        return RecordFault(
            seq,
            f"stored hash {str(record['hash'])[:16]}… does not match the record's content, "
            f"which hashes to {recomputed[:16]}…",
            "hash",
        )
    return None


@dataclass(frozen=True)
class ChainReport:
    """The outcome of verifying one case's chain."""

    case_id: str
    length: int
    head_hash: str
    fault: RecordFault | None = None

    @property
    def ok(self) -> bool:
        return self.fault is None

    def as_json(self) -> dict[str, Any]:
        if self.fault is None:
            return {"ok": True, "length": self.length, "head_hash": self.head_hash}
        return {"ok": False, "first_bad_seq": self.fault.seq, "reason": self.fault.reason}


class ChainVerifier:
    """Verifies a case's records one at a time, in seq order, from seq 1 or a known link."""

    def __init__(
        self,
        case_id: str,
        *,
        after_seq: int = 0,
        prev_hash: str = GENESIS_HASH,
        recorded_at: str = "",
    ):
        self.case_id = case_id
        self.seq = after_seq
        self.head_hash = prev_hash
        self.recorded_at = recorded_at  # ledger time never goes back within a case
        self.record: Record | None = None  # the last record that verified
        self.fault: RecordFault | None = None

    def add(self, stored_seq: int, state: bytes | Record) -> RecordFault | None:
        """Check the next stored record; returns (and keeps) the first fault found."""
        if self.fault is not None:
            return self.fault

        expected_seq = self.seq + 1
        if stored_seq != expected_seq:
            return self._fail(
                RecordFault(expected_seq, f"seq {expected_seq} is missing from the store", "place")
            )

        record = state if isinstance(state, dict) else parse_stored(state, seq=stored_seq)
        if isinstance(record, RecordFault):
            return self._fail(record)
        fault = check_record(record, case_id=self.case_id, seq=stored_seq)
        if fault is not None:
            return self._fail(fault)
        if record["prev_hash"] != self.head_hash:
            return self._fail(
                RecordFault(
                    stored_seq,
                    f"prev_hash does not match the hash of seq {stored_seq - 1}",
                    "link",
                )
            )

        if record["recorded_at"] < self.recorded_at:
            return self._fail(
                RecordFault(
                    stored_seq,
                    f"recorded_at goes back in time from seq {stored_seq - 1} (the ledger "
                    "never records a case's events out of time order)",
                    "time",
                )
            )

        self.seq = stored_seq
        self.head_hash = record["hash"]
        self.recorded_at = record["recorded_at"]
        self.record = record
        return None

    def report(self) -> ChainReport:
        return ChainReport(self.case_id, self.seq, self.head_hash, self.fault)

    def _fail(self, fault: RecordFault) -> RecordFault:
        self.fault = fault
        return self.fault


def verify_chain(case_id: str, stored: Iterable[tuple[int, bytes | Record]]) -> ChainReport:
    """Verify a whole case from seq 1: every record, every link, no gaps."""
    verifier = ChainVerifier(case_id)
    for seq, state in stored:
        if verifier.add(seq, state) is not None:
            break
    return verifier.report()
