"""A running ledger: the store, its writer and the followers that keep the views current.

The HTTP app and the command line both work through a `Runtime`, so an event appended by
`casetrail demo` takes exactly the same path as one posted over HTTP.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from domain.case import Case, case_stream_id
from domain.catalogue import Catalogue, load_catalogue
from domain.envelope import ChainReport, ChainVerifier, Record, parse_stored
from domain.errors import ChainBroken, UnknownCase
from domain.settings import Settings
from domain.state import State, fold
from domain.validation import EventValidator
from domain.vault import field_context, load_master_key, seal
from projections.apikeys import ApiKeys, Principal
from projections.case_state import CaseStateProjection
from projections.follower import Follower
from projections.keystore import KeyStore
from projections.store import Ledger
from projections.writer import AppendCommand, AppendResult, Writer

log = logging.getLogger("casetrail.runtime")


@dataclass(frozen=True)
class EventPage:
    case_id: str
    stored: list[bytes]
    records: list[Record]
    last_seq: int | None


class Runtime:
    def __init__(self, settings: Settings, *, start_followers: bool = True) -> None:
        self.settings = settings
        settings.ensure_var_dir()
        self.catalogue: Catalogue = load_catalogue()
        self.validator = EventValidator(self.catalogue)
        self.ledger = Ledger(settings.database)
        self.master_key = load_master_key(value=settings.master_key, path=settings.master_key_path)
        self.keystore = KeyStore(self.ledger.db, self.master_key)
        self.api_keys = ApiKeys(self.ledger.db)
        self.request_secret = self.keystore.secret("request-fingerprint")
        self.writer = Writer(self.ledger, seal_personal=self.seal_personal)
        self.case_state = CaseStateProjection(self.ledger)
        self._agencies: dict[str, str] = {}
        self.followers: dict[str, Follower] = {
            "case_state": Follower(self.ledger, self.case_state),
        }
        if start_followers:
            for follower in self.followers.values():
                follower.start()

    def close(self) -> None:
        self.writer.close()
        for follower in self.followers.values():
            follower.stop()
        self.ledger.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------

    def append(self, command: AppendCommand, timeout: float = 60.0) -> AppendResult:
        return self.writer.append(command, timeout=timeout)

    def seal_personal(
        self, case_id: str, seq: int, event_type: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Seal the personal fields of a payload under its subject's data key."""
        spec = self.catalogue.types[event_type]
        present = [name for name in spec.personal if isinstance(payload.get(name), str)]
        if not present:
            return payload

        party_id = str(payload.get(spec.subject or "party_id"))
        key_id, key = self.keystore.active_key(party_id)
        sealed = dict(payload)
        for name in present:
            sealed[name] = seal(
                key, key_id, payload[name], field_context(case_id, seq, party_id, name)
            )
        return sealed

    # -- keeping views current --------------------------------------------------------

    def head_position(self) -> int:
        return self.ledger.recorder.max_notification_id() or 0

    def settle(self, timeout: float = 2.0) -> bool:
        """Wait until every view has processed everything recorded so far."""
        target = self.head_position()
        deadline = time.monotonic() + timeout
        for follower in self.followers.values():
            remaining = max(0.0, deadline - time.monotonic())
            if not follower.wait_for(target, timeout=remaining):
                return False
        return True

    def catch_up(self) -> None:
        """Bring every view up to date on the calling thread (command-line use)."""
        for follower in self.followers.values():
            follower.catch_up()

    # -- reading ----------------------------------------------------------------------

    def case_exists(self, case_id: str) -> bool:
        return self.case_agency(case_id) is not None

    def case_agency(self, case_id: str) -> str | None:
        """The agency that opened a case (which never changes), or None if there is no case."""
        agency = self._agencies.get(case_id)
        if agency is not None:
            return agency
        first = self.ledger.recorder.select_events(case_stream_id(case_id), limit=1)
        if not first:
            return None
        record = parse_stored(first[0].state, seq=first[0].originator_version)
        if not isinstance(record, dict):
            raise ChainBroken(record.reason, case_id=case_id, seq=record.seq)
        agency = str(record["actor"]["agency"])
        if len(self._agencies) > 100_000:
            self._agencies.clear()
        self._agencies[case_id] = agency
        return agency

    def visible_case(self, case_id: str, viewer: Principal) -> str:
        """The case's agency if `viewer` may see the case; otherwise 404, as for no case."""
        agency = self.case_agency(case_id)
        if agency is None or not viewer.may_see_agency(agency):
            raise UnknownCase(f"no case {case_id!r}", pointer="/path/case_id")
        return agency

    def read_events(self, case_id: str, *, after_seq: int, limit: int) -> EventPage:
        """A page of a case's records, each verified against its predecessor before serving."""
        stream = case_stream_id(case_id)
        start = max(after_seq - 1, 0)
        stored = self.ledger.recorder.select_events(stream, gt=start, limit=limit + 1)
        if not stored and after_seq == 0:
            raise UnknownCase(f"no case {case_id!r}", pointer="/path/case_id")
        if after_seq > 0 and (not stored or stored[0].originator_version != after_seq):
            if not self.case_exists(case_id):
                raise UnknownCase(f"no case {case_id!r}", pointer="/path/case_id")
            if not stored:
                return EventPage(case_id, [], [], None)
            raise ChainBroken(
                f"seq {after_seq} of case {case_id!r} is missing from the store",
                case_id=case_id,
                seq=after_seq,
            )

        verifier = ChainVerifier(case_id)
        if after_seq > 0:
            link = parse_stored(stored[0].state, seq=after_seq)
            if not isinstance(link, dict):
                raise ChainBroken(link.reason, case_id=case_id, seq=link.seq)
            verifier = ChainVerifier(case_id, after_seq=after_seq, prev_hash=str(link["hash"]))
            stored = stored[1:]
        stored = stored[:limit]

        pages: list[bytes] = []
        records: list[Record] = []
        for event in stored:
            fault = verifier.add(event.originator_version, event.state)
            if fault is not None:
                raise ChainBroken(
                    f"case {case_id!r} does not verify at seq {fault.seq}: {fault.reason}",
                    case_id=case_id,
                    seq=fault.seq,
                )
            pages.append(event.state)
            records.append(parse_stored(event.state, seq=event.originator_version))  # type: ignore[arg-type]
        last = records[-1]["seq"] if records else None
        return EventPage(case_id, pages, records, last)

    def feed(self, *, after: int, limit: int, viewer: Principal) -> dict[str, Any]:
        """The global feed after a position, in feed order, filtered to what `viewer` sees.

        `next_after` is the last position read (seen or filtered out), so an agency-scoped
        reader pages through the whole log without skipping anything it may see.
        """
        notifications = self.ledger.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        events = []
        for notification in notifications:
            record = parse_stored(notification.state, seq=notification.originator_version)
            if not isinstance(record, dict):
                events.append(
                    {"position": notification.id, "error": record.reason, "case_id": None}
                )
                continue
            case_id = str(record["case_id"])
            if viewer.agency is not None and self.case_agency(case_id) != viewer.agency:
                continue
            events.append(
                {
                    "position": notification.id,
                    "case_id": case_id,
                    "seq": record["seq"],
                    "type": record["type"],
                    "hash": record["hash"],
                    "recorded_at": record["recorded_at"],
                }
            )
        next_after = notifications[-1].id if notifications else after
        return {"events": events, "next_after": next_after}

    def iter_records(self, case_id: str) -> Iterator[tuple[int, bytes]]:
        stream = case_stream_id(case_id)
        after = 0
        while True:
            page = self.ledger.recorder.select_events(stream, gt=after, limit=1000)
            if not page:
                return
            for event in page:
                yield event.originator_version, event.state
            after = page[-1].originator_version

    def verify_case(self, case_id: str) -> ChainReport:
        verifier = ChainVerifier(case_id)
        found = False
        for seq, state in self.iter_records(case_id):
            found = True
            if verifier.add(seq, state) is not None:
                break
        if not found:
            raise UnknownCase(f"no case {case_id!r}", pointer="/path/case_id")
        return verifier.report()

    def all_case_ids(self) -> list[str]:
        """Every case in the store, from the notification log (not from a view)."""
        seen: dict[str, None] = {}
        position = 0
        while True:
            page = self.ledger.recorder.select_notifications(
                start=position, limit=1000, topics=[Case.Opened.TOPIC], inclusive_of_start=False
            )
            if not page:
                return list(seen)
            for notification in page:
                record = parse_stored(notification.state, seq=1)
                if isinstance(record, dict):
                    seen[str(record["case_id"])] = None
            position = page[-1].id

    def state_as_of(
        self, case_id: str, *, seq: int | None = None, recorded: str | None = None
    ) -> State | None:
        records: list[Record] = []
        for stored_seq, state in self.iter_records(case_id):
            record = parse_stored(state, seq=stored_seq)
            if not isinstance(record, dict):
                raise ChainBroken(record.reason, case_id=case_id, seq=record.seq)
            if seq is not None and stored_seq > seq:
                break
            if recorded is not None and record["recorded_at"] > recorded:
                break
            records.append(record)
        if not records:
            return None
        return fold(records, self.catalogue)
