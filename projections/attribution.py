"""The attribution read model: every case's verdicts under the active policy, kept current.

A case is re-evaluated whenever its events change and whenever one of its pending
deadlines passes, so a complaint left unanswered turns into a breach in the reports
without anyone appending anything. The verdicts themselves come from the pure evaluator
(`domain.evaluator`); this module only decides when to ask it, and stores the answer in a
shape that reports over a hundred thousand cases can aggregate quickly.

The table holds one row per verdict, with the columns reports filter and group on, and
the whole verdict document. A policy change (its content hash) empties the view so it is
rebuilt under the new policy.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from eventsourcing.persistence import Notification

from domain.case import case_stream_id
from domain.envelope import ChainVerifier, Record, RecordFault, format_recorded_at
from domain.evaluator import EVALUATOR_VERSION, Verdict, evaluate
from domain.policy import Policy
from domain.spreadsheet import spreadsheet_safe_csv
from projections.follower import LedgerProjection, View
from projections.store import Cursor, Ledger

log = logging.getLogger("casetrail.attribution")

VIEW_NAME = "attribution"
DDL = [
    """
    CREATE TABLE IF NOT EXISTS verdicts (
        case_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        obligation TEXT NOT NULL,
        status TEXT NOT NULL,
        severity TEXT NOT NULL,
        agency TEXT NOT NULL,
        accountable TEXT,
        performer TEXT,
        supervisor TEXT,
        due TEXT,
        moment TEXT,
        verdict TEXT NOT NULL,
        PRIMARY KEY (case_id, position)
    )
    """,
    "CREATE INDEX IF NOT EXISTS verdicts_agency ON verdicts (agency, status, moment)",
    "CREATE INDEX IF NOT EXISTS verdicts_performer ON verdicts (performer, status, moment)",
    "CREATE INDEX IF NOT EXISTS verdicts_status ON verdicts (status, moment)",
    """
    CREATE TABLE IF NOT EXISTS attribution_cases (
        case_id TEXT PRIMARY KEY,
        agency TEXT NOT NULL,
        evaluated_at TEXT NOT NULL,
        next_due TEXT,
        breaches INTEGER NOT NULL,
        open_breaches INTEGER NOT NULL,
        worst_severity TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS attribution_cases_due ON attribution_cases (next_due)",
    # Met and breached verdicts counted per month of their moment, kept as verdicts are
    # replaced, so a report over every agency reads thousands of rows, not millions. (A
    # view built before this table existed has another shape, so it is rebuilt whole.)
    """
    CREATE TABLE IF NOT EXISTS verdict_counts (
        month TEXT NOT NULL,
        agency TEXT NOT NULL,
        performer TEXT NOT NULL,
        obligation TEXT NOT NULL,
        severity TEXT NOT NULL,
        met INTEGER NOT NULL,
        breached INTEGER NOT NULL,
        PRIMARY KEY (month, agency, performer, obligation, severity)
    )
    """,
    "CREATE INDEX IF NOT EXISTS verdict_counts_agency ON verdict_counts (agency, month)",
    """
    CREATE TABLE IF NOT EXISTS attribution_policy (
        name TEXT PRIMARY KEY,
        policy_id TEXT NOT NULL,
        sha256 TEXT NOT NULL
    )
    """,
]
SEVERITY_ORDER = ("low", "medium", "high", "critical")


def now_utc() -> datetime:
    return datetime.now(UTC)


class CaseHistories:
    """The verified records of recently evaluated cases, so that the next evaluation of a
    case reads and verifies only the events recorded since. Without it, a note appended to
    a case of thousands of events would have every one of them read again, on every page
    of the feed, and appends would slow as cases grow.

    It holds at most `max_events` records (about 2 KB each: 100 MB at the default), the
    cases evaluated longest ago dropped first. Records already verified are not verified
    again here; whether stored history was altered later is what `verify` and the desk's
    badge check, every time.
    """

    def __init__(self, ledger: Ledger, *, max_events: int = 50_000) -> None:
        self.ledger = ledger
        self.max_events = max_events
        self._cases: OrderedDict[str, tuple[list[Record], ChainVerifier]] = OrderedDict()
        self._held = 0

    def read(self, case_id: str) -> tuple[list[Record], RecordFault | None]:
        """The case's records in seq order, and the first fault if one stops them (the
        records before it are returned, and the case is forgotten)."""
        held = self._cases.pop(case_id) if case_id in self._cases else None
        records, verifier = held or ([], ChainVerifier(case_id))
        self._held -= len(records)
        stream = case_stream_id(case_id)
        for event in self.ledger.recorder.select_events(stream, gt=verifier.seq or None):
            fault = verifier.add(event.originator_version, event.state)
            if fault is not None:
                return records, fault
            assert verifier.record is not None
            records.append(verifier.record)

        self._cases[case_id] = (records, verifier)
        self._held += len(records)
        while self._held > self.max_events and len(self._cases) > 1:
            _, (dropped, _) = self._cases.popitem(last=False)
            self._held -= len(dropped)
        return records, None

    def clear(self) -> None:
        self._cases.clear()
        self._held = 0


class AttributionProjection(LedgerProjection):
    name = VIEW_NAME

    def __init__(self, ledger: Ledger, policy: Policy, *, clock: Any = now_utc) -> None:
        view = View(
            ledger,
            VIEW_NAME,
            DDL,
            tables=["verdicts", "attribution_cases", "attribution_policy", "verdict_counts"],
        )
        super().__init__(view)
        self.ledger = ledger
        self.policy = policy
        self.clock = clock
        self.histories = CaseHistories(ledger)
        self._reset_if_policy_changed()

    def _reset_if_policy_changed(self) -> None:
        row = self.ledger.db.query_one(
            "SELECT policy_id, sha256 FROM attribution_policy WHERE name = 'active'"
        )
        if row is not None and (row["policy_id"], row["sha256"]) == (
            self.policy.id,
            self._judged_by(),
        ):
            return
        if row is not None:
            log.warning(
                "policy or evaluator changed (%s %s -> %s %s): rebuilding the attribution view",
                row["policy_id"],
                row["sha256"],
                self.policy.id,
                self._judged_by(),
            )
        self.reset()

    def reset(self) -> None:
        """Empty the view and remember which policy it will be rebuilt under."""
        self.histories.clear()
        self.ledger_view.reset()
        with self.ledger.db.transaction() as cursor:
            cursor.execute(
                "INSERT INTO attribution_policy (name, policy_id, sha256) VALUES ('active', ?, ?)",
                [self.policy.id, self._judged_by()],
            )

    def _judged_by(self) -> str:
        """The policy's content and the evaluator's version: verdicts stored under another
        pair are judged again."""
        return f"{self.policy.content_hash} evaluator {EVALUATOR_VERSION}"

    # -- following the feed -------------------------------------------------------------

    def process_page(self, page: Sequence[tuple[Notification, Record]], position: int) -> None:
        cases = sorted({str(record["case_id"]) for _, record in page})
        evaluated = [(case_id, *self._evaluate(case_id)) for case_id in cases]
        with self.ledger_view.update(position) as cursor:
            for case_id, agency, verdicts in evaluated:
                _store(cursor, case_id, agency, verdicts, self.clock())

    def after_step(self, processed: int) -> None:
        """Re-evaluate the cases whose next deadline has passed."""
        now = format_recorded_at(self.clock())
        rows = self.ledger.db.query(
            "SELECT case_id FROM attribution_cases WHERE next_due IS NOT NULL AND next_due <= ? "
            "ORDER BY next_due LIMIT 200",
            [now],
        )
        if not rows:
            return
        evaluated = [(row["case_id"], *self._evaluate(row["case_id"])) for row in rows]
        with self.ledger.db.transaction() as cursor:
            for case_id, agency, verdicts in evaluated:
                _store(cursor, case_id, agency, verdicts, self.clock())

    def _evaluate(self, case_id: str) -> tuple[str, list[Verdict]]:
        """The case's agency and its verdicts now; none for a case whose chain is broken.

        A verdict resting on tampered history would attribute responsibility on forged
        evidence, so such a case gets no verdicts (the case-state view and `verify` say
        why). One case that cannot be evaluated never stops the others.
        """
        records, fault = self.histories.read(case_id)
        if fault is not None:
            log.warning("case %s is not evaluated: %s", case_id, fault)
            return (str(records[0]["actor"]["agency"]) if records else ""), []
        if not records:
            return "", []
        agency = str(records[0]["actor"]["agency"])
        try:
            return agency, evaluate(records, self.policy, self.clock())
        except Exception:
            log.exception("case %s could not be evaluated", case_id)
            return agency, []


def _store(
    cursor: Cursor, case_id: str, agency: str, verdicts: list[Verdict], evaluated_at: datetime
) -> None:
    _count(cursor, case_id, -1)
    cursor.execute("DELETE FROM verdicts WHERE case_id = ?", [case_id])
    if not verdicts:
        cursor.execute("DELETE FROM attribution_cases WHERE case_id = ?", [case_id])
        return

    rows = []
    for position, verdict in enumerate(verdicts):
        document = verdict.as_json()
        rows.append(
            (
                case_id,
                position,
                verdict.obligation,
                verdict.status,
                verdict.severity,
                agency,
                verdict.accountable,
                verdict.performer,
                verdict.supervisor,
                verdict.due,
                verdict_moment(document),
                orjson.dumps(document).decode(),
            )
        )
    cursor.executemany(
        "INSERT INTO verdicts (case_id, position, obligation, status, severity, agency, "
        "accountable, performer, supervisor, due, moment, verdict) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    _count(cursor, case_id, +1)

    breaches = [v for v in verdicts if v.status == "breached"]
    pending_dues = sorted(
        _as_recorded(v.due) for v in verdicts if v.status == "pending" and v.due is not None
    )
    worst = max(
        (v.severity for v in breaches),
        key=lambda s: SEVERITY_ORDER.index(s) if s in SEVERITY_ORDER else -1,
        default=None,
    )
    cursor.execute(
        """
        INSERT INTO attribution_cases (case_id, agency, evaluated_at, next_due, breaches,
                                       open_breaches, worst_severity)
        VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (case_id) DO UPDATE SET
            agency = excluded.agency, evaluated_at = excluded.evaluated_at,
            next_due = excluded.next_due, breaches = excluded.breaches,
            open_breaches = excluded.open_breaches, worst_severity = excluded.worst_severity
        """,
        [
            case_id,
            agency,
            format_recorded_at(evaluated_at),
            pending_dues[0] if pending_dues else None,
            len(breaches),
            sum(1 for v in breaches if v.settled_at is None),
            worst,
        ],
    )


COUNT_KEY = (
    "substr(COALESCE(moment, ''), 1, 7), agency, COALESCE(performer, ''), obligation, severity"
)
COUNT_COLUMNS = (
    "substr(COALESCE(moment, ''), 1, 7) AS month, agency, COALESCE(performer, '') AS who, "
    "obligation, severity"
)
COUNT_NAMES = ("month", "agency", "who", "obligation", "severity")


def _count(cursor: Cursor, case_id: str, sign: int) -> None:
    """Add (+1) or take away (-1) a case's met and breached verdicts in the monthly counts."""
    cursor.execute(
        f"SELECT {COUNT_COLUMNS}, SUM(CASE WHEN status = 'met' THEN 1 ELSE 0 END) AS met, "
        "SUM(CASE WHEN status = 'breached' THEN 1 ELSE 0 END) AS breached FROM verdicts "
        f"WHERE case_id = ? AND status IN ('met', 'breached') GROUP BY {COUNT_KEY}",
        [case_id],
    )
    changes = [
        (*(row[name] for name in COUNT_NAMES), sign * int(row["met"]), sign * int(row["breached"]))
        for row in cursor.fetchall()
    ]
    if changes:
        cursor.executemany(
            "INSERT INTO verdict_counts (month, agency, performer, obligation, severity, met, "
            "breached) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (month, agency, performer, obligation, severity) DO UPDATE SET "
            "met = verdict_counts.met + excluded.met, "
            "breached = verdict_counts.breached + excluded.breached",
            changes,
        )


def verdict_moment(document: dict[str, Any]) -> str | None:
    """When a verdict falls, for reports by period: its due time, else when it was settled,
    else when it was triggered (as ledger-time text, so it sorts)."""
    for name in ("due", "settled_at"):
        if document.get(name):
            return _as_recorded(document[name])
    return None


def _as_recorded(moment: str) -> str:
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return format_recorded_at(parsed)


# -- reports ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFilter:
    agency: str | None = None
    agent: str | None = None
    start: str | None = None  # ledger-time text, inclusive
    end: str | None = None  # exclusive
    status: str | None = None
    severity: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses, values = [], []
        for column, value in (
            ("agency", self.agency),
            ("performer", self.agent),
            ("status", self.status),
            ("severity", self.severity),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        if self.start is not None:
            clauses.append("moment >= ?")
            values.append(self.start)
        if self.end is not None:
            clauses.append("moment < ?")
            values.append(self.end)
        return (" AND ".join(clauses) or "1 = 1"), values


def attribution_report(ledger: Ledger, policy: Policy, selection: ReportFilter) -> dict[str, Any]:
    """Counts of met and breached verdicts per agency and agent, and every breach."""
    where, values = selection.where()
    counted = ledger.db.query(
        f"SELECT agency, performer, obligation, severity, status, COUNT(*) AS n FROM verdicts "
        f"WHERE {where} AND status IN ('met', 'breached') "
        "GROUP BY agency, performer, obligation, severity, status "
        "ORDER BY agency, performer, obligation",
        values,
    )
    breaches = ledger.db.query(
        f"SELECT case_id, verdict FROM verdicts WHERE {where} AND status = 'breached' "
        "ORDER BY moment, case_id, position",
        values,
    )

    tallies = [
        {
            **row,
            "met": int(row["n"]) if row["status"] == "met" else 0,
            "breached": int(row["n"]) if row["status"] == "breached" else 0,
        }
        for row in counted
    ]
    return {
        "policy": policy.ref(),
        "filters": {key: value for key, value in selection.__dict__.items() if value is not None},
        "agencies": _by_agency(tallies),
        "breaches": [_breach_entry(row) for row in breaches],
    }


def monthly_counts(
    ledger: Ledger,
    *,
    agency: str | None = None,
    agent: str | None = None,
    first_month: str | None = None,
    last_month: str | None = None,
) -> list[dict[str, Any]]:
    """Met and breached counts per agency and agent over whole months (`YYYY-MM`,
    inclusive), from the running monthly counts: the shape of a report's `agencies`."""
    clauses, values = ["(met > 0 OR breached > 0)"], []
    for clause, value in (
        ("agency = ?", agency),
        ("performer = ?", agent),
        ("month >= ?", first_month),
        ("month <= ?", last_month),
    ):
        if value is not None:
            clauses.append(clause)
            values.append(value)
    rows = ledger.db.query(
        "SELECT agency, performer, obligation, severity, SUM(met) AS met, "
        f"SUM(breached) AS breached FROM verdict_counts WHERE {' AND '.join(clauses)} "
        "GROUP BY agency, performer, obligation, severity",
        values,
    )
    return _by_agency(rows)


def _by_agency(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of (agency, performer, obligation, severity, met, breached), nested."""
    agencies: dict[str, dict[str, Any]] = {}
    for row in rows:
        agency = agencies.setdefault(
            row["agency"], {"agency": row["agency"], "counts": {}, "agents": {}}
        )
        _tally(agency["counts"], row)
        performer = row["performer"] or "(unattributed)"
        agent = agency["agents"].setdefault(performer, {"agent": performer, "counts": {}})
        _tally(agent["counts"], row)

    return [
        {
            "agency": agency["agency"],
            "counts": _count_rows(agency["counts"]),
            "agents": [
                {"agent": agent["agent"], "counts": _count_rows(agent["counts"])}
                for agent in sorted(agency["agents"].values(), key=lambda a: a["agent"])
            ],
        }
        for agency in sorted(agencies.values(), key=lambda a: a["agency"])
    ]


def _tally(counts: dict[tuple[str, str], dict[str, int]], row: dict[str, Any]) -> None:
    cell = counts.setdefault((row["obligation"], row["severity"]), {"met": 0, "breached": 0})
    cell["met"] += int(row["met"])
    cell["breached"] += int(row["breached"])


def _count_rows(counts: dict[tuple[str, str], dict[str, int]]) -> list[dict[str, Any]]:
    return [
        {"obligation": obligation, "severity": severity, **cell}
        for (obligation, severity), cell in sorted(counts.items())
    ]


def _breach_entry(row: dict[str, Any]) -> dict[str, Any]:
    verdict = orjson.loads(row["verdict"])
    return {
        "case_id": row["case_id"],
        "obligation": verdict["obligation"],
        "severity": verdict["severity"],
        "due": verdict["due"],
        "settled_at": verdict["settled_at"],
        "accountable": verdict["accountable"],
        "performer": verdict["performer"],
        "supervisor": verdict["supervisor"],
        "client_share": verdict.get("client_share"),
        "evidence": verdict["evidence"],
        "flags": verdict["flags"],
        "source": verdict["source"],
        "basis": verdict["basis"],
        "reason": verdict["reason"],
    }


def report_counts_csv(report: dict[str, Any]) -> str:
    """Met and breached counts per agency (agent empty) and per agent, as CSV."""
    # Agency and agent ids come from what clients appended: no cell may run as a formula.
    return spreadsheet_safe_csv(_count_lines(report))


def _count_lines(report: dict[str, Any]) -> Iterator[list[Any]]:
    yield ["agency", "agent", "obligation", "severity", "met", "breached"]
    for agency in report["agencies"]:
        tallies = [("", row) for row in agency["counts"]]
        tallies += [(agent["agent"], row) for agent in agency["agents"] for row in agent["counts"]]
        for agent_id, row in tallies:
            yield [
                agency["agency"],
                agent_id,
                row["obligation"],
                row["severity"],
                row["met"],
                row["breached"],
            ]


def report_breaches_csv(report: dict[str, Any]) -> str:
    """Every breach of the report, one line each, as CSV."""
    # Performers, accountable parties and supervisors are ids clients sent.
    return spreadsheet_safe_csv(_breach_lines(report))


def _breach_lines(report: dict[str, Any]) -> Iterator[list[Any]]:
    yield [
        "case_id",
        "obligation",
        "severity",
        "due",
        "settled_at",
        "accountable",
        "performer",
        "supervisor",
        "evidence",
        "basis",
        "source",
    ]
    for breach in report["breaches"]:
        yield [
            breach["case_id"],
            breach["obligation"],
            breach["severity"],
            breach["due"],
            breach["settled_at"],
            breach["accountable"],
            breach["performer"],
            breach["supervisor"],
            " ".join(f"{e['seq']}:{e['hash']}" for e in breach["evidence"]),
            breach["basis"],
            breach["source"],
        ]
