"""The case-state read model: one row per case with its folded state, for reads and lists."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import Notification

from domain.case import case_stream_id
from domain.catalogue import load_catalogue
from domain.envelope import (
    GENESIS_HASH,
    ChainVerifier,
    Record,
    RecordFault,
    check_record,
    format_recorded_at,
)
from domain.state import State, apply, fold, new_state
from projections.follower import LedgerProjection, View
from projections.store import Cursor, Ledger

log = logging.getLogger("casetrail.case_state")

VIEW_NAME = "case_state"
DDL = [
    """
    CREATE TABLE IF NOT EXISTS case_state (
        case_id TEXT PRIMARY KEY,
        agency TEXT NOT NULL,
        kind TEXT,
        phase TEXT NOT NULL,
        closed INTEGER NOT NULL,
        sound INTEGER NOT NULL,
        open_complaints INTEGER NOT NULL,
        last_seq {bigint} NOT NULL,
        head_hash TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        opened_utc TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        state TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS case_state_opened ON case_state (opened_utc, case_id)",
    "CREATE INDEX IF NOT EXISTS case_state_agency ON case_state (agency, case_id)",
    "CREATE INDEX IF NOT EXISTS case_state_phase ON case_state (phase, case_id)",
    "CREATE INDEX IF NOT EXISTS case_state_updated ON case_state (updated_at, case_id)",
    """
    CREATE TABLE IF NOT EXISTS case_agents (
        case_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        PRIMARY KEY (case_id, agent_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS case_agents_agent ON case_agents (agent_id, case_id)",
    """
    CREATE TABLE IF NOT EXISTS case_parties (
        case_id TEXT NOT NULL,
        party_id TEXT NOT NULL,
        PRIMARY KEY (case_id, party_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS case_parties_party ON case_parties (party_id, case_id)",
    """
    CREATE TABLE IF NOT EXISTS case_complaints (
        case_id TEXT NOT NULL,
        complaint_id TEXT NOT NULL,
        agency TEXT NOT NULL,
        received_at TEXT,
        acknowledged_at TEXT,
        solution_at TEXT,
        closed_at TEXT,
        PRIMARY KEY (case_id, complaint_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS case_complaints_agency ON case_complaints (agency, received_at)",
    """
    CREATE TABLE IF NOT EXISTS case_aftercare (
        case_id TEXT PRIMARY KEY,
        agency TEXT NOT NULL,
        handover_at TEXT,
        followups INTEGER NOT NULL,
        first_followup_at TEXT,
        survey_score INTEGER,
        survey_declined INTEGER NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS case_aftercare_agency ON case_aftercare (agency, handover_at)",
]


def case_state_view(ledger: Ledger) -> View:
    return View(
        ledger,
        VIEW_NAME,
        DDL,
        tables=["case_state", "case_agents", "case_parties", "case_complaints", "case_aftercare"],
    )


class CaseStateProjection(LedgerProjection):
    name = VIEW_NAME

    def __init__(self, ledger: Ledger, view: View | None = None) -> None:
        super().__init__(view or case_state_view(ledger))
        self.ledger = ledger
        self.catalogue = load_catalogue()

    def process_page(self, page: Sequence[tuple[Notification, Record]], position: int) -> None:
        by_case: dict[str, list[Record]] = {}
        for _, record in page:
            by_case.setdefault(record["case_id"], []).append(record)

        with self.ledger_view.update(position) as cursor:
            for case_id, records in by_case.items():
                state = self._next_state(cursor, case_id, records)
                if state is not None:
                    _write(cursor, state)

    def _next_state(self, cursor: Cursor, case_id: str, records: list[Record]) -> State | None:
        """The case's state after these records, or the sound part of it and why it stops.

        Records are checked as they are applied (hash, seq, link to the last one), so the
        view never presents tampered history as the case's state. Anything that cannot be
        projected marks this case alone; the view goes on for every other case.
        """
        try:
            return self._apply_records(cursor, case_id, records)
        except Exception as error:
            log.exception("case %s cannot be projected", case_id)
            cursor.execute("SELECT state FROM case_state WHERE case_id = ?", [case_id])
            row = cursor.fetchone()
            if row is None:
                return None
            state: State = orjson.loads(row["state"])
            state["integrity"] = {
                "ok": False,
                "first_bad_seq": records[0]["seq"],
                "reason": f"the event could not be projected ({type(error).__name__})",
            }
            return state

    def _apply_records(self, cursor: Cursor, case_id: str, records: list[Record]) -> State | None:
        if any(record["type"] == "event.corrected" for record in records):
            # A correction changes how earlier events count: fold the case again.
            return self._refold(case_id, upto=records[-1]["seq"])

        cursor.execute("SELECT state FROM case_state WHERE case_id = ?", [case_id])
        row = cursor.fetchone()
        if row is not None:
            state: State = orjson.loads(row["state"])
        elif records[0]["seq"] == 1:
            state = new_state(records[0])
        else:
            return self._refold(case_id, upto=records[-1]["seq"])

        for record in records:
            if "integrity" in state:
                break  # nothing after a bad record is presented as the case's state
            if record["seq"] <= state["last_seq"]:
                continue
            fault = _link_fault(state, record)
            if fault is not None:
                state["integrity"] = {
                    "ok": False,
                    "first_bad_seq": fault.seq,
                    "reason": fault.reason,
                }
                break
            apply(state, record, self.catalogue)
        return state

    def _refold(self, case_id: str, *, upto: int) -> State | None:
        verifier = ChainVerifier(case_id)
        records: list[Record] = []
        for event in self.ledger.recorder.select_events(case_stream_id(case_id), lte=upto):
            if verifier.add(event.originator_version, event.state) is not None:
                break
            assert verifier.record is not None  # set by every add that verifies
            records.append(verifier.record)
        state = fold(records, self.catalogue)
        if state is not None and verifier.fault is not None:
            state["integrity"] = {
                "ok": False,
                "first_bad_seq": verifier.fault.seq,
                "reason": verifier.fault.reason,
            }
        return state


def _link_fault(state: State, record: Record) -> RecordFault | None:
    seq = int(record["seq"])
    if seq != state["last_seq"] + 1:
        return RecordFault(
            state["last_seq"] + 1, f"seq {state['last_seq'] + 1} is missing", "place"
        )
    fault = check_record(record, case_id=state["case_id"], seq=seq)
    if fault is not None:
        return fault
    if record["prev_hash"] != (state["head_hash"] or GENESIS_HASH):
        return RecordFault(seq, f"prev_hash does not match the hash of seq {seq - 1}", "link")
    return None


def _write(cursor: Cursor, state: State) -> None:
    cursor.execute(
        """
        INSERT INTO case_state (case_id, agency, kind, phase, closed, sound, open_complaints,
                                last_seq, head_hash, opened_at, opened_utc, updated_at, state)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (case_id) DO UPDATE SET
            agency = excluded.agency, kind = excluded.kind, phase = excluded.phase,
            closed = excluded.closed, sound = excluded.sound,
            open_complaints = excluded.open_complaints,
            last_seq = excluded.last_seq, head_hash = excluded.head_hash,
            opened_at = excluded.opened_at, opened_utc = excluded.opened_utc,
            updated_at = excluded.updated_at,
            state = excluded.state
        """,
        [
            state["case_id"],
            state["agency"],
            state["kind"],
            state["phase"],
            int(state["closed"]),
            int("integrity" not in state),
            state["open_complaints"],
            state["last_seq"],
            state["head_hash"],
            state["opened_at"],
            _utc(state["opened_at"]),
            state["updated_at"],
            orjson.dumps(state).decode(),
        ],
    )
    _write_service(cursor, state)
    cursor.execute("DELETE FROM case_parties WHERE case_id = ?", [state["case_id"]])
    parties = sorted({party["party_id"] for party in state["parties"] if party["party_id"]})
    cursor.executemany(
        "INSERT INTO case_parties (case_id, party_id) VALUES (?, ?)",
        [(state["case_id"], party_id) for party_id in parties],
    )
    cursor.execute("DELETE FROM case_agents WHERE case_id = ?", [state["case_id"]])
    agents = sorted({agent["agent_id"] for agent in state["agents"] if agent["agent_id"]})
    cursor.executemany(
        "INSERT INTO case_agents (case_id, agent_id) VALUES (?, ?)",
        [(state["case_id"], agent_id) for agent_id in agents],
    )


def _utc(moment: str) -> str:
    return format_recorded_at(datetime.fromisoformat(moment.replace("Z", "+00:00")))


def _utc_or_none(moment: str | None) -> str | None:
    return _utc(moment) if moment else None


def _write_service(cursor: Cursor, state: State) -> None:
    """Complaint timings and aftercare, for the service reports of the desk; moments in
    UTC ledger-time text, so a period is a range query."""
    case_id, agency = state["case_id"], state["agency"]
    cursor.execute("DELETE FROM case_complaints WHERE case_id = ?", [case_id])
    cursor.executemany(
        "INSERT INTO case_complaints (case_id, complaint_id, agency, received_at, "
        "acknowledged_at, solution_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                case_id,
                str(complaint["complaint_id"]),
                agency,
                _utc_or_none(complaint["received_at"]),
                _utc_or_none(complaint["acknowledged_at"]),
                _utc_or_none(complaint["solution_proposed_at"]),
                _utc_or_none(complaint["closed_at"]),
            )
            for complaint in state["complaints"]
        ],
    )
    aftercare = state.get("aftercare") or {}
    cursor.execute("DELETE FROM case_aftercare WHERE case_id = ?", [case_id])
    if aftercare.get("handover_at") or aftercare.get("followups") or aftercare.get("survey_score"):
        cursor.execute(
            "INSERT INTO case_aftercare (case_id, agency, handover_at, followups, "
            "first_followup_at, survey_score, survey_declined) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                case_id,
                agency,
                _utc_or_none(aftercare.get("handover_at")),
                aftercare.get("followups", 0),
                _utc_or_none(aftercare.get("first_followup_at")),
                aftercare.get("survey_score"),
                int(bool(aftercare.get("survey_declined"))),
            ],
        )


def read_case(ledger: Ledger, case_id: str) -> dict[str, Any] | None:
    row = ledger.db.query_one("SELECT state FROM case_state WHERE case_id = ?", [case_id])
    return orjson.loads(row["state"]) if row is not None else None
