"""What the desk's pages show, assembled from the ledger: lists from the read models,
a case from its verified records, reports from the attribution and service tables.

Every function takes the caller's principal and sees exactly what that key may read over
the API; nothing here replays cases to build a list.
"""

from __future__ import annotations

import base64
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from domain.envelope import Record, format_recorded_at, parse_recorded_at, parse_stored
from domain.errors import ChainBroken
from domain.evaluator import evaluate, verdicts_as_json
from domain.policy import Duration
from domain.state import fold
from domain.vault import is_sealed
from projections.apikeys import Principal
from projections.attribution import ReportFilter, attribution_report, monthly_counts
from projections.runtime import Runtime

PAGE_SIZE = 50
# Each order: its key expression and direction, then case_id ascending to break ties.
SORTS = {
    "case_id": ("s.case_id", "ASC"),
    "updated": ("s.updated_at", "DESC"),
    "opened": ("s.opened_utc", "DESC"),
    "breaches": ("COALESCE(a.breaches, 0)", "DESC"),
}
SEVERITIES = ("low", "medium", "high", "critical")


# -- the list ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseFilter:
    agency: str | None = None
    agent: str | None = None
    phase: str | None = None
    with_breaches: bool = False
    severity: str | None = None
    opened_from: str | None = None  # ledger-time text
    opened_to: str | None = None
    sort: str = "updated"
    after: tuple[Any, str] | None = None  # the last row of the previous page
    before: tuple[Any, str] | None = None  # the first row of the next page


def list_cases(runtime: Runtime, viewer: Principal, chosen: CaseFilter) -> dict[str, Any]:
    agency = viewer.agency or chosen.agency
    if viewer.agency is not None and chosen.agency not in (None, viewer.agency):
        agency = "\x00"  # another agency's cases: none, as over the API

    clauses, values = [], []
    for column, value in (("s.agency", agency), ("s.phase", chosen.phase)):
        if value is not None:
            clauses.append(f"{column} = ?")
            values.append(value)
    if chosen.agent:
        # IN, not a correlated EXISTS: the agent's index yields their few cases up front.
        clauses.append("s.case_id IN (SELECT g.case_id FROM case_agents g WHERE g.agent_id = ?)")
        values.append(chosen.agent)
    if chosen.with_breaches:
        clauses.append("a.breaches > 0")
    if chosen.severity in SEVERITIES:
        allowed = SEVERITIES[SEVERITIES.index(chosen.severity) :]
        clauses.append(f"a.worst_severity IN ({','.join('?' * len(allowed))})")
        values.extend(allowed)
    if chosen.opened_from:
        clauses.append("s.opened_utc >= ?")
        values.append(chosen.opened_from)
    if chosen.opened_to:
        clauses.append("s.opened_utc < ?")
        values.append(chosen.opened_to)
    where = " AND ".join(clauses) or "1 = 1"
    tables = "case_state s LEFT JOIN attribution_cases a ON a.case_id = s.case_id"

    runtime.settle(timeout=2.0)
    totals = (
        runtime.ledger.db.query_one(
            "SELECT COUNT(*) AS cases, "
            "SUM(CASE WHEN a.breaches > 0 THEN 1 ELSE 0 END) AS breached, "
            f"SUM(s.open_complaints) AS complaints FROM {tables} WHERE {where}",
            values,
        )
        or {}
    )
    rows = _page_of_cases(runtime, tables, where, values, chosen)

    for row in rows:
        row["sound"], row["first_bad_seq"] = _checked(runtime, row["case_id"], row["last_seq"])
    return {
        "rows": rows,
        "total": int(totals.get("cases") or 0),
        "breached": int(totals.get("breached") or 0),
        "complaints": int(totals.get("complaints") or 0),
        "first_page": chosen.after is None and chosen.before is None,
        "next": _cursor(rows[-1], chosen.sort) if rows and rows[-1].get("more_after") else None,
        "previous": _cursor(rows[0], chosen.sort) if rows and rows[0].get("more_before") else None,
    }


CHECK_FRESH_FOR = 60.0
_checks: dict[tuple[int, str, int], tuple[float, bool, int | None]] = {}
_checks_lock = threading.Lock()


def _checked(runtime: Runtime, case_id: str, last_seq: int) -> tuple[bool, int | None]:
    """The list's chain column: verified, not read from the view (a record altered after
    it was projected must show here too), and remembered for a minute per case length,
    so a page of long cases stays quick. The case page always verifies afresh."""
    key, now = (id(runtime), case_id, int(last_seq)), time.monotonic()
    with _checks_lock:
        cached = _checks.get(key)
    if cached is not None and now - cached[0] < CHECK_FRESH_FOR:
        return cached[1], cached[2]
    report = runtime.verify_case(case_id)
    answer = (report.ok, report.fault.seq if report.fault is not None else None)
    with _checks_lock:
        if len(_checks) > 20_000:
            _checks.clear()
        _checks[key] = (now, *answer)
    return answer


def _page_of_cases(
    runtime: Runtime, tables: str, where: str, values: list[Any], chosen: CaseFilter
) -> list[dict[str, Any]]:
    """One page by keyset (seek) pagination: the cost of page 2,000 is that of page 1,
    where an OFFSET would walk every row before it."""
    key, direction = SORTS.get(chosen.sort, SORTS["updated"])
    backwards = chosen.before is not None
    order = direction if not backwards else ("ASC" if direction == "DESC" else "DESC")
    tie = "ASC" if not backwards else "DESC"
    seek, seek_values = "1 = 1", []
    cursor = chosen.before if backwards else chosen.after
    if cursor is not None:
        beyond = "<" if order == "DESC" else ">"
        seek = f"({key} {beyond} ? OR ({key} = ? AND s.case_id {'>' if tie == 'ASC' else '<'} ?))"
        seek_values = [cursor[0], cursor[0], cursor[1]]

    rows = runtime.ledger.db.query(
        "SELECT s.case_id, s.agency, s.kind, s.phase, s.closed, s.sound, s.open_complaints, "
        "s.last_seq, s.updated_at, s.opened_at, s.opened_utc, "
        "COALESCE(a.breaches, 0) AS breaches, a.worst_severity "
        f"FROM {tables} WHERE {where} AND {seek} "
        f"ORDER BY {key} {order}, s.case_id {tie} LIMIT ?",
        [*values, *seek_values, PAGE_SIZE + 1],
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if backwards:
        rows.reverse()
    if rows:
        rows[-1]["more_after"] = more if not backwards else True
        rows[0]["more_before"] = more if backwards else cursor is not None
    return rows


SORT_COLUMNS = {
    "case_id": "case_id",
    "updated": "updated_at",
    "opened": "opened_utc",
    "breaches": "breaches",
}


def _cursor(row: dict[str, Any], sort: str) -> str:
    value = row[SORT_COLUMNS.get(sort, "updated_at")]
    return base64.urlsafe_b64encode(orjson.dumps([value, row["case_id"]])).decode().rstrip("=")


def parse_cursor(text: str | None, sort: str) -> tuple[Any, str] | None:
    """A cursor from a page link; anything malformed reads as the first page. Its value
    must have the type of the sort's column (PostgreSQL will not compare text with a
    number), and no text may hold a NUL."""
    if not text or len(text) > 400:
        return None
    try:
        value, case_id = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        return None
    wanted = int if sort == "breaches" else str
    if type(value) is not wanted or not isinstance(case_id, str):
        return None
    if "\x00" in case_id or (isinstance(value, str) and "\x00" in value):
        return None
    return value, case_id


def filter_choices(runtime: Runtime, viewer: Principal) -> dict[str, list[str]]:
    """Agencies and agents to offer in the filters (only those the viewer may see)."""
    if viewer.agency is not None:
        agencies = [viewer.agency]
        agents = runtime.ledger.db.query(
            "SELECT DISTINCT g.agent_id FROM case_agents g JOIN case_state s "
            "ON s.case_id = g.case_id WHERE s.agency = ? ORDER BY g.agent_id LIMIT 500",
            [viewer.agency],
        )
    else:
        agencies = [
            row["agency"]
            for row in runtime.ledger.db.query(
                "SELECT DISTINCT agency FROM case_state ORDER BY agency LIMIT 500"
            )
        ]
        agents = runtime.ledger.db.query(
            "SELECT DISTINCT agent_id FROM case_agents ORDER BY agent_id LIMIT 500"
        )
    return {"agencies": agencies, "agents": [row["agent_id"] for row in agents]}


# -- one case ----------------------------------------------------------------------------


@dataclass
class Badge:
    sound: bool
    first_bad_seq: int | None = None
    reason: str | None = None
    tree_size: int | None = None
    signed_at: str | None = None
    proof_url: str | None = None


@dataclass
class CaseView:
    case_id: str
    state: dict[str, Any] | None
    timeline: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]
    policy: dict[str, Any]
    badge: Badge
    moments: list[dict[str, Any]]
    as_of: str | None
    as_of_seq: int | None = None
    events: int = 0
    late_entries: int = 0
    timeline_page: int = 1
    timeline_pages: int = 1
    hidden_after_fault: bool = False

    def page_of(self, seq: int) -> int:
        """The timeline page that holds event `seq`."""
        return (seq - 1) // TIMELINE_PAGE + 1


TIMELINE_PAGE = 500


def case_view(
    runtime: Runtime,
    case_id: str,
    viewer: Principal,
    as_of: datetime | None,
    timeline_page: int = 1,
) -> CaseView:
    """The case as the ledger stood at `as_of` (recorded time; None = now). Verdicts and
    counts cover the whole case; the timeline shows one page of events, so a case of
    twenty thousand events is as quick to open as one of five hundred."""
    runtime.visible_case(case_id, viewer)
    records, badge = _sound_records(runtime, case_id)

    cutoff = format_recorded_at(as_of) if as_of is not None else None
    shown = [r for r in records if cutoff is None or r["recorded_at"] <= cutoff]
    moment = as_of or datetime.now(UTC)
    policy = runtime.policy
    verdicts = verdicts_as_json(evaluate(shown, policy, moment)) if shown else []
    late = policy.settings.late_entry_after

    pages = max(1, -(-len(shown) // TIMELINE_PAGE))
    page = min(max(1, timeline_page), pages)
    window = shown[(page - 1) * TIMELINE_PAGE : page * TIMELINE_PAGE]
    # The picker offers the moment after each event of the page shown (and all of a
    # case that fits on one page).
    offered = records if len(records) <= TIMELINE_PAGE else window
    moments = [
        {"seq": record["seq"], "recorded_at": record["recorded_at"], "type": record["type"]}
        for record in offered
    ]
    timeline = [_entry(runtime, record, late) for record in window]

    return CaseView(
        case_id=case_id,
        state=fold(shown, runtime.catalogue) if shown else None,
        timeline=timeline,
        verdicts=verdicts,
        policy=policy.ref(),
        badge=badge,
        moments=moments,
        as_of=cutoff,
        as_of_seq=shown[-1]["seq"] if cutoff is not None and shown else None,
        events=len(shown),
        late_entries=sum(1 for record in shown if _late(record, late)),
        timeline_page=page,
        timeline_pages=pages,
        hidden_after_fault=not badge.sound,
    )


def _late(record: Record, late: Duration) -> bool:
    occurred = datetime.fromisoformat(record["occurred_at"].replace("Z", "+00:00"))
    return parse_recorded_at(record["recorded_at"]) > late.after(occurred)


def _sound_records(runtime: Runtime, case_id: str) -> tuple[list[Record], Badge]:
    """The records up to the first that does not verify, and the badge to show."""
    report = runtime.verify_case(case_id)
    records: list[Record] = []
    for seq, state in runtime.iter_records(case_id):
        if report.fault is not None and seq >= report.fault.seq:
            break
        record = parse_stored(state, seq=seq, verify=False)
        if isinstance(record, dict):
            records.append(record)
    if report.fault is not None:
        return records, Badge(False, report.fault.seq, report.fault.reason)

    head = runtime.log.tree_head()
    sealed = runtime.log.leaves_of_case(case_id)
    last_leaf = max((int(leaf["leaf_index"]) for leaf in sealed), default=None)
    if (
        head is None
        or last_leaf is None
        or last_leaf >= head.tree_size
        or len(sealed) < len(records)
    ):
        return records, Badge(True)
    proof = f"/v1/log/inclusion?event={records[-1]['hash']}&tree_size={head.tree_size}"
    return records, Badge(True, tree_size=head.tree_size, signed_at=head.timestamp, proof_url=proof)


def _entry(runtime: Runtime, record: Record, late: Duration) -> dict[str, Any]:
    kind = runtime.catalogue.types.get(record["type"])
    return {
        "seq": record["seq"],
        "type": record["type"],
        "labels": kind.labels if kind else {"en": record["type"], "zh": record["type"]},
        "occurred_at": record["occurred_at"],
        "recorded_at": record["recorded_at"],
        "late": _late(record, late),
        "actor": record["actor"],
        "recorded_by": record["recorded_by"],
        "summary": _summary(record["payload"]),
        "evidence": record["evidence"],
        "hash": record["hash"],
    }


def _summary(payload: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Readable name/value lines for a payload; sealed values stay sealed. Amounts in
    minor units read as money in the payload's currency, basis points as percentages."""
    lines: list[tuple[str, str]] = []
    currency = payload.get("currency") if isinstance(payload.get("currency"), str) else None
    for name, value in payload.items():
        label = f"{prefix}{name}".replace("_", " ")
        if isinstance(value, int) and not isinstance(value, bool):
            if name.endswith("_minor"):
                lines.append((label.removesuffix(" minor"), _money(value, currency)))
                continue
            if name.endswith("_bp"):
                lines.append((label.removesuffix(" bp"), f"{value / 100:g}%"))
                continue
        if is_sealed(value):
            lines.append((label, "\U0001f512"))
        elif isinstance(value, dict):
            lines.extend(_summary(value, prefix=f"{prefix}{name}."))
        elif isinstance(value, list):
            shown = ", ".join(_scalar(item) for item in value) if value else "—"
            lines.append((label, shown))
        else:
            lines.append((label, _scalar(value)))
    return lines


def _money(minor: int, currency: str | None) -> str:
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole:,}.{cents:02d}" + (f" {currency}" if currency else "")


def _scalar(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_scalar(v)}" for k, v in value.items())
    if value is None:
        return "—"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def verdicts_csv_rows(view: CaseView) -> list[list[str]]:
    header = [
        "obligation",
        "rule",
        "status",
        "severity",
        "due",
        "settled_at",
        "accountable",
        "performer",
        "supervisor",
        "evidence",
        "source",
        "basis",
        "reason",
    ]
    return [header, *(_verdict_row(verdict) for verdict in view.verdicts)]


def _verdict_row(verdict: dict[str, Any]) -> list[str]:
    return [
        verdict["obligation"],
        verdict.get("rule") or "",
        verdict["status"],
        verdict["severity"],
        verdict["due"] or "",
        verdict["settled_at"] or "",
        verdict["accountable"] or "",
        verdict["performer"] or "",
        verdict["supervisor"] or "",
        " ".join(f"{e['seq']}:{e['hash']}" for e in verdict["evidence"]),
        verdict["source"],
        verdict["basis"],
        verdict["reason"],
    ]


# -- reports -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Whole months, `YYYY-MM`, both inclusive; None leaves that side open."""

    first: str | None = None
    last: str | None = None

    @property
    def start(self) -> datetime | None:
        return _month_start(self.first) if self.first else None

    @property
    def end(self) -> datetime | None:
        if not self.last:
            return None
        start = _month_start(self.last)
        return (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else (start.replace(month=start.month + 1))
        )


def _month_start(month: str) -> datetime:
    return datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)


def report_view(
    runtime: Runtime, viewer: Principal, agency: str | None, agent: str | None, period: Period
) -> dict[str, Any]:
    """Counts from the running monthly tallies (never a scan of every verdict), complaint
    times and aftercare from their tables."""
    if viewer.agency is not None:
        agency = viewer.agency
    runtime.settle(timeout=5.0)
    agencies = monthly_counts(
        runtime.ledger,
        agency=agency,
        agent=agent,
        first_month=period.first,
        last_month=period.last,
    )
    report = {"agencies": agencies}
    return {
        "by_obligation": _by_obligation(report),
        "by_agent": _by_agent(report),
        "complaints": _complaints(runtime, Scope(agency, agent, period)),
        "aftercare": _aftercare(runtime, Scope(agency, agent, period)),
    }


def breaches_report(
    runtime: Runtime, viewer: Principal, agency: str | None, agent: str | None, period: Period
) -> dict[str, Any]:
    """Every breach in the period, for the CSV download: the API's attribution report."""
    if viewer.agency is not None:
        agency = viewer.agency
    runtime.settle(timeout=5.0)
    selection = ReportFilter(
        agency=agency,
        agent=agent,
        start=format_recorded_at(period.start) if period.start else None,
        end=format_recorded_at(period.end) if period.end else None,
    )
    return attribution_report(runtime.ledger, runtime.policy, selection)


def _by_obligation(report: dict[str, Any]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for agency in report["agencies"]:
        for row in agency["counts"]:
            key = (row["obligation"], row["severity"])
            cell = merged.setdefault(
                key, {"obligation": key[0], "severity": key[1], "met": 0, "breached": 0}
            )
            cell["met"] += row["met"]
            cell["breached"] += row["breached"]
    return sorted(merged.values(), key=lambda c: (-c["breached"], c["obligation"]))


def _by_agent(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for agency in report["agencies"]:
        for agent in agency["agents"]:
            breached = sum(row["breached"] for row in agent["counts"])
            met = sum(row["met"] for row in agent["counts"])
            rows.append(
                {
                    "agency": agency["agency"],
                    "agent": agent["agent"],
                    "met": met,
                    "breached": breached,
                }
            )
    return sorted(rows, key=lambda r: (-r["breached"], r["agency"], r["agent"]))


@dataclass(frozen=True)
class Scope:
    """Whose service figures, and when: an agency, an agent, a period."""

    agency: str | None
    agent: str | None
    period: Period

    def where(self, column: str) -> tuple[str, list[Any]]:
        clauses, values = [], []
        start, end = self.period.start, self.period.end
        for clause, value in (
            ("agency = ?", self.agency),
            ("case_id IN (SELECT g.case_id FROM case_agents g WHERE g.agent_id = ?)", self.agent),
            (f"{column} >= ?", format_recorded_at(start) if start else None),
            (f"{column} < ?", format_recorded_at(end) if end else None),
        ):
            if value is not None:
                clauses.append(clause)
                values.append(value)
        return (" AND ".join(clauses) or "1 = 1"), values


def _hours(later: str | None, earlier: str | None) -> float | None:
    if later is None or earlier is None:
        return None
    delta = datetime.fromisoformat(later.replace("Z", "+00:00")) - datetime.fromisoformat(
        earlier.replace("Z", "+00:00")
    )
    return delta.total_seconds() / 3600


def _complaints(runtime: Runtime, scope: Scope) -> dict[str, Any]:
    where, values = scope.where("received_at")
    rows = runtime.ledger.db.query(
        "SELECT received_at, acknowledged_at, solution_at FROM case_complaints "
        f"WHERE received_at IS NOT NULL AND {where}",
        values,
    )
    parameters = runtime.policy.parameters
    ack_target = _target_hours(parameters.get("complaint_acknowledge"), 24)
    solution_target = _target_hours(parameters.get("complaint_first_solution"), 48)
    ack = [_hours(r["acknowledged_at"], r["received_at"]) for r in rows]
    solution = [_hours(r["solution_at"], r["received_at"]) for r in rows]
    return {
        "count": len(rows),
        "ack_target": ack_target,
        "solution_target": solution_target,
        "ack_in_time": sum(1 for h in ack if h is not None and h <= ack_target),
        "solution_in_time": sum(1 for h in solution if h is not None and h <= solution_target),
        "ack_median": _median(ack),
        "solution_median": _median(solution),
        "ack_waiting": sum(1 for h in ack if h is None),
        "solution_waiting": sum(1 for h in solution if h is None),
    }


def _target_hours(duration: Any, default: float) -> float:
    text = str(duration or "")
    if text.startswith("PT") and text.endswith("H") and text[2:-1].isdigit():
        return float(text[2:-1])
    if text.startswith("P") and text.endswith("D") and text[1:-1].isdigit():
        return float(text[1:-1]) * 24
    return default


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known), 1) if known else None


def _aftercare(runtime: Runtime, scope: Scope) -> dict[str, Any]:
    """Handovers in the period, how many were followed up, and their survey answers."""
    where, values = scope.where("handover_at")
    totals = (
        runtime.ledger.db.query_one(
            "SELECT COUNT(*) AS handovers, "
            "SUM(CASE WHEN followups > 0 THEN 1 ELSE 0 END) AS followed_up, "
            "SUM(survey_declined) AS declined FROM case_aftercare "
            f"WHERE handover_at IS NOT NULL AND {where}",
            values,
        )
        or {}
    )
    answers = runtime.ledger.db.query(
        "SELECT survey_score, COUNT(*) AS n FROM case_aftercare "
        f"WHERE handover_at IS NOT NULL AND survey_score IS NOT NULL AND {where} "
        "GROUP BY survey_score",
        values,
    )
    scores = {score: 0 for score in range(1, 6)}
    for row in answers:
        if int(row["survey_score"]) in scores:
            scores[int(row["survey_score"])] = int(row["n"])
    responses = sum(scores.values())
    return {
        "handovers": int(totals.get("handovers") or 0),
        "followed_up": int(totals.get("followed_up") or 0),
        "scores": scores,
        "responses": responses,
        "mean": round(sum(s * n for s, n in scores.items()) / responses, 2) if responses else None,
        "declined": int(totals.get("declined") or 0),
    }


def ensure_sound(view: CaseView) -> None:
    if not view.badge.sound and view.badge.first_bad_seq is not None:
        raise ChainBroken(
            f"case {view.case_id!r} does not verify at seq {view.badge.first_bad_seq}: "
            f"{view.badge.reason or 'unreadable'}; nothing is exported from a broken case",
            case_id=view.case_id,
            seq=view.badge.first_bad_seq,
        )
