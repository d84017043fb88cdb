"""Appending to the ledger: one writer that commits concurrent requests together.

Every append request — from HTTP, the demo or a test — becomes an `AppendCommand` and
waits for the writer. The writer takes whatever has queued up (up to a few hundred
requests), chains each command's events onto its case, and commits them all in one
transaction: on SQLite one fsync then serves many requests, which is what lets durable
appends outrun one-commit-per-request by a wide margin (see scripts/bench_append.py).

Each request still succeeds or fails on its own: a stale `expected_seq`, a reused
idempotency key, an invalid correction or anything else wrong with one request is
answered without touching the others. If the shared transaction itself fails (another
process appended to the same case, or recorded the same idempotency key first), the
writer replays the batch one request at a time against fresh state, so only the requests
that truly conflict are refused.

Nothing is chained onto history the writer has not verified: the first time a process
appends to a case, it checks the case's whole chain and compares the sealed events with
their leaves in the transparency log.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from eventsourcing.persistence import IntegrityError as StoreConflict

from domain.case import Case, case_stream_id
from domain.catalogue import parse_occurred_at
from domain.envelope import (
    GENESIS_HASH,
    ChainVerifier,
    Record,
    RecordFault,
    format_recorded_at,
    make_record,
    parse_recorded_at,
    parse_stored,
)
from domain.errors import (
    CaseIdTaken,
    CasetrailError,
    ConcurrencyConflict,
    IdempotencyKeyReused,
    InternalFault,
    InvalidEvent,
    LedgerIntegrityError,
    NotPermitted,
    UnknownCase,
)
from domain.validation import Draft
from projections.store import Ledger, Receipt

log = logging.getLogger("casetrail.writer")

MAX_COMMANDS_PER_COMMIT = 256
MAX_EVENTS_PER_COMMIT = 4000
CLOCK_SKEW = timedelta(minutes=10)
"""How far ahead of the ledger's clock an occurred_at may be: the sender's clock may run a
little fast, but nothing is recorded before it happens."""
EARLIEST_OCCURRED_AT = datetime(1900, 1, 1, tzinfo=UTC)


@dataclass
class AppendCommand:
    case_id: str
    events: list[Draft]
    recorded_by: str
    expected_seq: int | None = None
    idempotency_scope: str = ""
    idempotency_key: str | None = None
    fingerprint: str | None = None
    agency_scope: str | None = None
    single_event_body: bool = False
    future: Future[AppendResult] = field(default_factory=Future)
    waiter: asyncio.Future[AppendResult] | None = None

    def pointer(self, index: int, member: str) -> str:
        """Where event `index`'s member sits in the request body, as a JSON Pointer."""
        base = "" if self.single_event_body else f"/events/{index}"
        return f"{base}/{member}"


@dataclass(frozen=True)
class AppendResult:
    case_id: str
    first_seq: int
    records: list[Record]
    positions: list[int]
    body: bytes
    replayed: bool = False


SealPersonal = Callable[[str, str, int, str, dict[str, Any]], dict[str, Any]]
"""(case_id, agency of the case, seq, type, payload) -> payload with its personal fields
sealed under the data key of the agency's party."""

LedgerMade = Callable[[str, dict[str, Any]], bool]
"""(type, payload) -> whether only the ledger makes such a record (an erasure outcome, a
reveal it recorded): no correction may retract or replace one, or forge one."""

CaseGuard = Callable[[str, dict[int, str]], None]
"""(case_id, {seq: stored hash}) -> raise LedgerIntegrityError if the store disagrees with
the transparency log (events rewritten or removed after they were sealed)."""

CheckPayload = Callable[[str, dict[str, Any], str], None]
"""(type, payload, pointer) -> raise InvalidEvent if the payload is not valid for the type."""


def render_append_body(case_id: str, records: Sequence[Record], positions: Sequence[int]) -> bytes:
    events = [
        {
            "seq": record["seq"],
            "hash": record["hash"],
            "prev_hash": record["prev_hash"],
            "recorded_at": record["recorded_at"],
            "position": position,
            "leaf_index": None,
        }
        for record, position in zip(records, positions, strict=True)
    ]
    return orjson.dumps(
        {
            "case_id": case_id,
            "events": events,
            "transparency_log": {
                "status": "pending",
                "detail": "the sealer adds each event to the log within seconds; "
                "GET /v1/log/inclusion?position=P then gives its leaf index and proof",
            },
        }
    )


@dataclass
class _Plan:
    command: AppendCommand
    case: Case
    records: list[Record]
    events: list[Any]


class Writer:
    """The single writer of a process.

    Two doors lead to the same commit: `append` (blocking, from any thread: the command
    line, the demo loader, tests) queues for the writer thread; `append_async` (from the
    event loop serving HTTP) queues on the loop, and one drain task hands whole batches
    to a commit thread, so a request costs no thread hand-off of its own. A lock keeps
    the two from ever committing at the same time.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        seal_personal: SealPersonal | None = None,
        guard_case: CaseGuard | None = None,
        check_payload: CheckPayload | None = None,
        ledger_made: LedgerMade | None = None,
        mark: Callable[[str], str] | None = None,
        cache_size: int = 50_000,
    ) -> None:
        self.ledger = ledger
        self.mark = mark
        self.seal_personal = seal_personal
        self.guard_case = guard_case
        self.check_payload = check_payload
        self.ledger_made = ledger_made
        self._heads: OrderedDict[str, Case] = OrderedDict()
        self._cache_size = cache_size
        self._queue: deque[AppendCommand] = deque()
        self._deferred: list[AppendCommand] = []
        self._moment = datetime.now(UTC)
        self._wakeup = threading.Condition()
        self._commit_lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="casetrail-writer", daemon=True)
        self._thread.start()
        self._async_pending: deque[AppendCommand] = deque()
        self._drainer: asyncio.Task[None] | None = None
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="casetrail-commit")

    # -- the public side --------------------------------------------------------------

    def submit(self, command: AppendCommand) -> Future[AppendResult]:
        with self._wakeup:
            if self._stopping:
                raise RuntimeError("the ledger writer has stopped")
            self._queue.append(command)
            self._wakeup.notify()
        return command.future

    def append(self, command: AppendCommand, timeout: float | None = 60.0) -> AppendResult:
        return self.submit(command).result(timeout=timeout)

    async def append_async(self, command: AppendCommand) -> AppendResult:
        if self._stopping:
            raise RuntimeError("the ledger writer has stopped")
        loop = asyncio.get_running_loop()
        command.waiter = loop.create_future()
        self._async_pending.append(command)
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await command.waiter

    def close(self) -> None:
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        self._thread.join(timeout=30)
        self._committer.shutdown(wait=True)

    def forget(self, case_id: str | None = None) -> None:
        """Drop cached case heads (after the store was changed behind the writer's back)."""
        with self._commit_lock:
            if case_id is None:
                self._heads.clear()
            else:
                self._heads.pop(case_id, None)

    # -- the two drivers ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._queue and not self._stopping:
                    self._wakeup.wait()
                if not self._queue:
                    return
                batch = _take_batch(self._queue)
            deferred = self._commit_guarded(batch)
            if deferred:
                with self._wakeup:
                    self._queue.extendleft(reversed(deferred))

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._async_pending:
            batch = _take_batch(self._async_pending)
            deferred = await loop.run_in_executor(self._committer, self._commit_guarded, batch)
            self._async_pending.extendleft(reversed(deferred))
            for command in batch:
                if command.future.done() and command.waiter is not None:
                    _settle(command.waiter, command.future)

    def _commit_guarded(self, batch: list[AppendCommand]) -> list[AppendCommand]:
        """Commit a batch; returns the commands to try again after it (same key twice)."""
        with self._commit_lock:
            self._deferred = []
            try:
                self._commit(batch)
            except Exception as error:  # the store failed: every waiting request learns it
                log.exception("append batch of %d requests failed", len(batch))
                self._heads.clear()
                for command in batch:
                    if not command.future.done():
                        command.future.set_exception(error)
            return self._deferred

    # -- one batch ----------------------------------------------------------------------

    def _commit(self, batch: list[AppendCommand]) -> None:
        pending = self._answer_replays(batch)
        plans = [plan for plan in map(self._plan, pending) if plan is not None]
        if not plans:
            return

        try:
            positions = self._save(plans)
        except StoreConflict:
            # Someone else wrote first (another process, or a duplicate key): retry each
            # request alone against fresh state so only the true conflicts are refused.
            for plan in plans:
                self._heads.pop(plan.command.case_id, None)
            for plan in plans:
                self._retry_alone(plan.command)
            return

        for plan, own in zip(plans, positions, strict=True):
            self._remember(plan.case)
            plan.command.future.set_result(_result(plan.command.case_id, plan.records, own))

    def _retry_alone(self, command: AppendCommand) -> None:
        if command.idempotency_key is not None:
            receipt = self._find_receipts([command]).get(
                (command.idempotency_scope, command.idempotency_key)
            )
            if receipt is not None:
                self._answer_from_receipt(command, receipt)
                return

        plan = self._plan(command)
        if plan is None:
            return
        try:
            (positions,) = self._save([plan])
        except StoreConflict:
            self._heads.pop(command.case_id, None)
            current = self._head_for(command.case_id)
            command.future.set_exception(
                ConcurrencyConflict(
                    "another writer appended to this case at the same moment; "
                    "read the case and retry with its current seq",
                    current_seq=current.seq if current else 0,
                    pointer="/expected_seq",
                )
            )
            return

        self._remember(plan.case)
        command.future.set_result(_result(command.case_id, plan.records, positions))

    # -- idempotency ------------------------------------------------------------------

    def _answer_replays(self, batch: list[AppendCommand]) -> list[AppendCommand]:
        """Answer requests whose idempotency key was already used; return the rest."""
        keyed = [command for command in batch if command.idempotency_key is not None]
        if not keyed:
            return batch

        receipts = self._find_receipts(keyed)
        pending: list[AppendCommand] = []
        seen: set[tuple[str, str]] = set()
        for command in batch:
            key = command.idempotency_key
            if key is None:
                pending.append(command)
                continue
            receipt = receipts.get((command.idempotency_scope, key))
            if receipt is not None:
                self._answer_from_receipt(command, receipt)
            elif (command.idempotency_scope, key) in seen:
                # The same key twice in one batch: let the first commit, then answer this
                # one from its receipt in the next round.
                self._deferred.append(command)
            else:
                seen.add((command.idempotency_scope, key))
                pending.append(command)
        return pending

    def _find_receipts(
        self, commands: Sequence[AppendCommand]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        by_scope: dict[str, list[str]] = {}
        for command in commands:
            if command.idempotency_key is not None:
                by_scope.setdefault(command.idempotency_scope, []).append(command.idempotency_key)
        for scope, keys in by_scope.items():
            marks = ",".join("?" * len(keys))
            rows = self.ledger.db.query(
                "SELECT scope, idempotency_key, fingerprint, case_id, first_seq, last_seq "
                f"FROM idempotency_receipts WHERE scope = ? AND idempotency_key IN ({marks})",
                [scope, *keys],
            )
            for row in rows:
                found[(scope, row["idempotency_key"])] = row
        return found

    def _answer_from_receipt(self, command: AppendCommand, receipt: dict[str, Any]) -> None:
        if receipt["fingerprint"] != command.fingerprint:
            command.future.set_exception(
                IdempotencyKeyReused(
                    "this Idempotency-Key was already used for a different request "
                    f"(to case {receipt['case_id']!r} or with other events); "
                    "use a fresh key for a new request",
                    pointer="/headers/Idempotency-Key",
                )
            )
            return

        # The original answer, rebuilt from the events it recorded: the same bytes.
        case_id = str(receipt["case_id"])
        rows = self.ledger.recorder.events_with_positions(  # type: ignore[attr-defined]
            case_stream_id(case_id), int(receipt["first_seq"]), int(receipt["last_seq"])
        )
        records = [parse_stored(state, seq=seq, verify=False) for seq, state, _ in rows]
        positions = [position for _, _, position in rows]
        if len(records) != int(receipt["last_seq"]) - int(receipt["first_seq"]) + 1 or not all(
            isinstance(record, dict) for record in records
        ):
            command.future.set_exception(
                LedgerIntegrityError(
                    f"the events this Idempotency-Key recorded in case {case_id!r} are no "
                    "longer intact in the store (see GET /v1/cases/{case_id}/verify)"
                )
            )
            return
        result = _result(case_id, records, positions)  # type: ignore[arg-type]
        command.future.set_result(
            AppendResult(result.case_id, result.first_seq, [], positions, result.body, True)
        )

    # -- chaining ---------------------------------------------------------------------

    def _plan(self, command: AppendCommand) -> _Plan | None:
        """Chain a command's events onto its case, or answer it with the reason it cannot be.

        Whatever goes wrong with one command, it is answered alone; the batch goes on.
        """
        try:
            case = self._head_for(command.case_id)
            self._check_expectations(command, case)
            records, stored = self._make_records(command, case)
        except CasetrailError as error:
            command.future.set_exception(error)
            return None
        except Exception as error:
            log.exception("append to case %s could not be prepared", command.case_id)
            command.future.set_exception(
                InternalFault(
                    f"the events could not be prepared ({type(error).__name__}); nothing was "
                    "recorded, and no other request was affected"
                )
            )
            return None

        start = 0
        if case is None:
            case = Case.open(records[0], stored[0], self._moment)
            start = 1
        for record, stored_bytes in zip(records[start:], stored[start:], strict=True):
            case.record_event(record, stored_bytes, self._moment)
        # Take this command's events now: a later command of the same batch may extend the
        # same case object, and its events must not be counted as this command's.
        return _Plan(command, case, records, list(case.collect_events()))

    def _check_expectations(self, command: AppendCommand, case: Case | None) -> None:
        # Whether the case exists and whose it is is settled first, and answered alike
        # (404) for a missing case and another agency's, so nothing else can tell them apart.
        scope = command.agency_scope
        first_type = command.events[0].type
        foreign = scope is not None and case is not None and case.agency != scope
        if first_type == "case.opened" and case is not None:
            # Ids are one namespace: opening a taken id fails alike whoever holds it.
            raise CaseIdTaken(
                f"case id {command.case_id!r} is already in use; open the case under "
                "another id (prefix it with your agency's id)",
                pointer="/path/case_id",
            )
        if foreign or (case is None and first_type != "case.opened"):
            raise UnknownCase(
                f"no case {command.case_id!r}: a case comes into existence with its "
                f"case.opened event (this request starts with {first_type})",
                pointer="/path/case_id",
            )

        if scope is not None:
            for index, draft in enumerate(command.events):
                if draft.actor["agency"] != scope:
                    raise NotPermitted(
                        f"this key records for agency {scope!r} only, so an event's actor "
                        "must belong to that agency",
                        pointer=command.pointer(index, "actor/agency"),
                    )

        current_seq = case.seq if case is not None else 0
        if command.expected_seq is not None and command.expected_seq != current_seq:
            raise ConcurrencyConflict(
                f"expected_seq is {command.expected_seq} but the case is at seq "
                f"{current_seq}; read the new events and retry with expected_seq "
                f"{current_seq}",
                current_seq=current_seq,
                pointer="/expected_seq",
            )
        for index, draft in enumerate(command.events):
            if draft.type == "case.opened" and (case is not None or index > 0):
                raise InvalidEvent(
                    f"case {command.case_id!r} is already open; case.opened can only be its "
                    "first event",
                    pointer=command.pointer(index, "type"),
                )

    def _make_records(
        self, command: AppendCommand, case: Case | None
    ) -> tuple[list[Record], list[bytes]]:
        seq = case.seq if case is not None else 0
        prev_hash = case.head_hash if case is not None else GENESIS_HASH
        self._moment = datetime.now(UTC)
        recorded_at = format_recorded_at(self._moment)
        if case is not None and case.last_recorded_at > recorded_at:
            # Ledger time never runs backwards within a case (clocks of several processes).
            recorded_at = case.last_recorded_at
            self._moment = parse_recorded_at(recorded_at)

        # A new case is opened by its first event (checked above), whose actor names the agency.
        agency = case.agency if case is not None else command.events[0].actor["agency"]
        records: list[Record] = []
        stored: list[bytes] = []
        for index, draft in enumerate(command.events):
            seq += 1
            self._check_occurred_at(command, index, draft)
            payload = self._payload(command, index, draft, seq, agency, records)
            envelope = {
                "case_id": command.case_id,
                "seq": seq,
                "type": draft.type,
                "schema_version": draft.schema_version,
                "occurred_at": draft.occurred_at,
                "recorded_at": recorded_at,
                "recorded_by": command.recorded_by,
                "actor": draft.actor,
                "payload": payload,
                "evidence": draft.evidence,
                "prev_hash": prev_hash,
            }
            # Drafts passed the strict JSON checks, so the canonical fast path is exact.
            record, stored_bytes = make_record(envelope, json_safe=True)
            records.append(record)
            stored.append(stored_bytes)
            prev_hash = record["hash"]
        return records, stored

    def _check_occurred_at(self, command: AppendCommand, index: int, draft: Draft) -> None:
        """Business time within what the ledger can vouch for: not after the moment it is
        recorded (give or take clock skew), and not before 1900. Retention and deadlines run
        from it, so a date far off either way would bend them."""
        moment = parse_occurred_at(draft.occurred_at)
        pointer = command.pointer(index, "occurred_at")
        if moment is None:
            raise InvalidEvent(
                "occurred_at is not an RFC 3339 date-time with an offset", pointer=pointer
            )
        if moment > self._moment + CLOCK_SKEW:
            raise InvalidEvent(
                "occurred_at is later than the moment the ledger records the event (more than "
                f"{CLOCK_SKEW.seconds // 60} minutes of clock skew): record an event once it "
                "has happened, with the time it happened, and check the sender's clock",
                pointer=pointer,
            )
        if moment < EARLIEST_OCCURRED_AT:
            raise InvalidEvent(
                "occurred_at is before 1900-01-01; send the time the event happened",
                pointer=pointer,
            )

    def _payload(
        self,
        command: AppendCommand,
        index: int,
        draft: Draft,
        seq: int,
        agency: str,
        earlier: list[Record],
    ) -> dict[str, Any]:
        """The payload to record: a correction's replacement checked and sealed like the
        event it replaces, personal fields sealed."""
        payload = draft.payload
        if draft.type == "event.corrected" and payload.get("replacement") is None:
            self._refuse_ledger_made(command, index, payload, seq, earlier)
        if draft.type == "event.corrected" and payload.get("replacement") is not None:
            target = self._correction_target(
                command, index, int(payload["corrects_seq"]), seq, earlier
            )
            pointer = command.pointer(index, "payload/replacement")
            if self.check_payload is not None:
                self.check_payload(target["type"], payload["replacement"], pointer)
            if self.ledger_made is not None and self.ledger_made(
                target["type"], payload["replacement"]
            ):
                raise InvalidEvent(
                    f"the replacement would be a record only the ledger makes ({target['type']} "
                    "with fields the ledger sets); leave those fields out",
                    pointer=pointer,
                )
            replacement = payload["replacement"]
            if self.seal_personal is not None:
                replacement = self.seal_personal(
                    command.case_id, agency, seq, target["type"], replacement
                )
            payload = {**payload, "replacement": replacement}
        if self.seal_personal is not None:
            payload = self.seal_personal(command.case_id, agency, seq, draft.type, payload)
        return payload

    def _refuse_ledger_made(
        self,
        command: AppendCommand,
        index: int,
        payload: dict[str, Any],
        seq: int,
        earlier: list[Record],
    ) -> None:
        """A retraction may not strike out a record the ledger made itself."""
        target_seq = int(payload["corrects_seq"])
        if self.ledger_made is None or not 1 <= target_seq < seq:
            return
        target = self._find_target(command, target_seq, earlier)
        if isinstance(target, dict) and self.ledger_made(target["type"], target["payload"]):
            raise InvalidEvent(
                f"seq {target_seq} is a {target['type']} the ledger recorded itself; it "
                "cannot be retracted or replaced",
                pointer=command.pointer(index, "payload/corrects_seq"),
            )

    def _find_target(
        self, command: AppendCommand, target_seq: int, earlier: list[Record]
    ) -> Record | RecordFault | None:
        found: Record | RecordFault | None = next(
            (record for record in earlier if record["seq"] == target_seq), None
        )
        if found is None:
            stored = self.ledger.recorder.select_events(
                case_stream_id(command.case_id), gt=target_seq - 1, lte=target_seq
            )
            found = parse_stored(stored[0].state, seq=target_seq) if stored else None
        return found

    def _correction_target(
        self, command: AppendCommand, index: int, target_seq: int, seq: int, earlier: list[Record]
    ) -> Record:
        pointer = command.pointer(index, "payload/corrects_seq")
        if not 1 <= target_seq < seq:
            raise InvalidEvent(
                f"corrects_seq must name an earlier event of the case (1 to {seq - 1})",
                pointer=pointer,
            )
        found = self._find_target(command, target_seq, earlier)
        if not isinstance(found, dict):
            raise InvalidEvent(f"the case has no readable event {target_seq}", pointer=pointer)
        record: Record = found
        if record["type"] in ("case.opened", "event.corrected"):
            raise InvalidEvent(
                f"a {record['type']} event cannot be corrected with a replacement",
                pointer=pointer,
            )
        if self.ledger_made is not None and self.ledger_made(record["type"], record["payload"]):
            raise InvalidEvent(
                f"seq {target_seq} is a {record['type']} the ledger recorded itself; it "
                "cannot be retracted or replaced",
                pointer=pointer,
            )
        return record

    def _save(self, plans: list[_Plan]) -> list[list[int]]:
        events: list[Any] = []
        receipts: list[Receipt] = []
        created_at = format_recorded_at(datetime.now(UTC))
        for plan in plans:
            command = plan.command
            if command.idempotency_key is not None and command.fingerprint is not None:
                receipts.append(
                    Receipt(
                        scope=command.idempotency_scope,
                        key=command.idempotency_key,
                        fingerprint=command.fingerprint,
                        case_id=command.case_id,
                        first_seq=plan.records[0]["seq"],
                        last_seq=plan.records[-1]["seq"],
                        created_at=created_at,
                    )
                )
            events.extend(plan.events)

        marks = (
            [
                (record["hash"], self.mark(record["hash"]))
                for plan in plans
                for record in plan.records
            ]
            if self.mark is not None
            else []
        )
        positions = self.ledger.record(events, receipts=receipts, marks=marks)

        split: list[list[int]] = []
        offset = 0
        for plan in plans:
            split.append(positions[offset : offset + len(plan.records)])
            offset += len(plan.records)
        return split

    # -- case heads -------------------------------------------------------------------

    def _head_for(self, case_id: str) -> Case | None:
        case = self._heads.get(case_id)
        if case is not None:
            self._heads.move_to_end(case_id)
            return case
        case = self._load_head(case_id)
        if case is not None:
            self._remember(case)
        return case

    def _remember(self, case: Case) -> None:
        self._heads[case.case_id] = case
        self._heads.move_to_end(case.case_id)
        while len(self._heads) > self._cache_size:
            self._heads.popitem(last=False)

    def _load_head(self, case_id: str) -> Case | None:
        """Where a case's chain ends, after verifying the whole chain and its leaves."""
        stream = case_stream_id(case_id)
        verifier = ChainVerifier(case_id)
        hashes: dict[int, str] = {}
        first: Record | None = None
        last: Record | None = None
        for event in self.ledger.recorder.select_events(stream):
            fault = verifier.add(event.originator_version, event.state)
            if fault is not None:
                raise LedgerIntegrityError(
                    f"case {case_id!r} cannot be appended to: seq {fault.seq} does not verify "
                    f"({fault.reason}); see GET /v1/cases/{case_id}/verify"
                )
            record = parse_stored(event.state, seq=event.originator_version, verify=False)
            assert isinstance(record, dict)
            first = first or record
            last = record
            hashes[record["seq"]] = record["hash"]

        if self.guard_case is not None:
            self.guard_case(case_id, hashes)
        if first is None or last is None:
            return None
        return Case.resume(stream, first, last)


def _result(case_id: str, records: list[Record], positions: list[int]) -> AppendResult:
    return AppendResult(
        case_id=case_id,
        first_seq=records[0]["seq"],
        records=records,
        positions=positions,
        body=render_append_body(case_id, records, positions),
    )


def _take_batch(queue: deque[AppendCommand]) -> list[AppendCommand]:
    """As many queued commands as one transaction should carry."""
    batch: list[AppendCommand] = []
    events = 0
    while queue and len(batch) < MAX_COMMANDS_PER_COMMIT:
        size = len(queue[0].events)
        if batch and events + size > MAX_EVENTS_PER_COMMIT:
            break
        batch.append(queue.popleft())
        events += size
    return batch


def _settle(waiter: asyncio.Future[AppendResult], outcome: Future[AppendResult]) -> None:
    if waiter.done():
        return  # the request gave up (client went away); its events stand regardless
    error = outcome.exception()
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(outcome.result())
