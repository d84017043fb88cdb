"""A brokerage case as an event-sourced aggregate, and how its events are stored.

One case is one event stream. Its events carry the hashed record (see `envelope`), and
the aggregate itself keeps only what appending needs: where the chain ends and which
agency opened the case. The full picture of a case is a projection (`state`).

Topics are explicit and versioned because the stored topic is part of the record's
identity: moving a class must never orphan an event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic

from domain.envelope import GENESIS_HASH, Record, parse_recorded_at, parse_stored

CASE_NAMESPACE = UUID("6b0c3f1e-52a8-4d4e-9a57-0c0a2f8e7d11")
"""uuid5 namespace for stream ids; case ids are integrator references, never personal data."""


def case_stream_id(case_id: str) -> UUID:
    return uuid5(CASE_NAMESPACE, case_id)


class Case(Aggregate):
    TOPIC = "casetrail.case"

    class Event(Aggregate.Event):
        record: Record
        stored_bytes: bytes

        def apply(self, aggregate: Any) -> None:
            case = cast(Case, aggregate)
            case.head_hash = self.record["hash"]
            case.last_recorded_at = self.record["recorded_at"]

    class Created(Event, Aggregate.Created):
        TOPIC = "casetrail.case.created"

    class Opened(Created):
        TOPIC = "casetrail.case.opened.v1"

        def apply(self, aggregate: Any) -> None:
            case = cast(Case, aggregate)
            case.case_id = self.record["case_id"]
            case.agency = self.record["actor"]["agency"]
            super().apply(case)

    class Recorded(Event):
        TOPIC = "casetrail.case.recorded.v1"

    def __init__(self, record: Record, stored_bytes: bytes) -> None:
        # Only the Opened event calls this; its apply() sets the state.
        self.case_id: str = record["case_id"]
        self.agency: str = record["actor"]["agency"]
        self.head_hash: str = GENESIS_HASH
        self.last_recorded_at: str = ""

    @classmethod
    def open(cls, record: Record, stored_bytes: bytes, timestamp: datetime) -> Case:
        return cls._create(
            cls.Opened,
            id=case_stream_id(record["case_id"]),
            record=record,
            stored_bytes=stored_bytes,
            timestamp=timestamp,
        )

    @classmethod
    def resume(cls, stream_id: UUID, opened: Record, head: Record) -> Case:
        """The aggregate as it stands after `head`, from its first and last records alone.

        Appending needs only where the chain ends and who opened the case, so the writer
        need not replay a long case to add one event to it.
        """
        case = cls.__new__(cls)
        case.__base_init__(
            originator_id=stream_id,
            originator_version=head["seq"],
            timestamp=parse_recorded_at(opened["recorded_at"]),
        )
        case.case_id = opened["case_id"]
        case.agency = opened["actor"]["agency"]
        case.head_hash = head["hash"]
        case.last_recorded_at = head["recorded_at"]
        return case

    def record_event(self, record: Record, stored_bytes: bytes, timestamp: datetime) -> None:
        self.trigger_event(
            self.Recorded, record=record, stored_bytes=stored_bytes, timestamp=timestamp
        )

    @property
    def seq(self) -> int:
        return self.version


class RecordMapper(Mapper[UUID]):
    """Stores an event as exactly its canonical record bytes, and reads them back.

    The library's transcoder is bypassed: the record bytes are what is hashed, so they
    must be stored untouched, with no second encoding that a library upgrade could
    change (see EVENTSOURCING.md §3).
    """

    def __init__(self, transcoder: Transcoder) -> None:
        super().__init__(transcoder=transcoder)

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(type(domain_event)),
            state=domain_event.stored_bytes,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        record = parse_stored(stored_event.state, seq=stored_event.originator_version)
        if not isinstance(record, dict):
            raise ValueError(f"stored event cannot be read: {record.reason}")

        event_class: type[Case.Event] = (
            Case.Opened if stored_event.topic == Case.Opened.TOPIC else Case.Recorded
        )
        event_state: dict[str, Any] = {
            "originator_id": stored_event.originator_id,
            "originator_version": stored_event.originator_version,
            "timestamp": parse_recorded_at(record["recorded_at"]),
            "record": record,
            "stored_bytes": stored_event.state,
        }
        if event_class is Case.Opened:
            event_state["originator_topic"] = get_topic(Case)

        domain_event = object.__new__(event_class)
        object.__setattr__(domain_event, "__dict__", event_state)
        return domain_event
