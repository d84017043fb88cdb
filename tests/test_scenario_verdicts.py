"""Every scenario of examples/cases/ evaluated purely: expected verdicts present, the rest absent.

The records are built here the way the ledger would build them (seq from 1, a hash chain, ledger
time a few seconds apart, one recorded_by), with personal fields left in plain text: the
evaluator never reads them. Each case is read as of a moment after its last record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from domain.catalogue import event_request_schema, load_catalogue
from domain.envelope import GENESIS_HASH, Record, format_recorded_at, make_record, verify_chain
from domain.evaluator import Verdict, evaluate
from domain.policy import load_policy

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "cases"
SCENARIOS = sorted(EXAMPLES.glob("*.json"))
LEDGER_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
STEP = timedelta(seconds=3)
RECORDED_BY = "scenario-loader"


def build_records(
    case_id: str,
    events: Sequence[Mapping[str, Any]],
    *,
    start: datetime = LEDGER_START,
    step: timedelta = STEP,
    recorded_at: Sequence[datetime | None] | None = None,
) -> list[Record]:
    """The records a ledger would hold for ``events``: seq from 1, chained, ``step`` apart.

    ``recorded_at`` may give some records their own ledger time (None keeps the default).
    """
    records: list[Record] = []
    prev_hash = GENESIS_HASH
    for index, event in enumerate(events):
        chosen = recorded_at[index] if recorded_at is not None else None
        moment = chosen if chosen is not None else start + step * index
        envelope = {
            "case_id": case_id,
            "seq": index + 1,
            "type": event["type"],
            "schema_version": 1,
            "occurred_at": event["occurred_at"],
            "recorded_at": format_recorded_at(moment),
            "recorded_by": RECORDED_BY,
            "actor": dict(event["actor"]),
            "payload": dict(event["payload"]),
            "evidence": list(event.get("evidence", [])),
            "prev_hash": prev_hash,
        }
        record, _ = make_record(envelope)
        records.append(record)
        prev_hash = record["hash"]
    return records


def read_scenario(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def scenario_verdicts(
    data: Mapping[str, Any], policy_id: str | None = None
) -> dict[str, list[Verdict]]:
    """Each case of a scenario evaluated under its policy, as of just after its last record."""
    policy = load_policy(policy_id or data["policy"])
    verdicts = {}
    for case_id, events in data["cases"].items():
        records = build_records(case_id, events)
        as_of = LEDGER_START + STEP * (len(events) + 1)
        verdicts[case_id] = evaluate(records, policy, as_of)
    return verdicts


def matches(verdict: Verdict, expectation: Mapping[str, Any]) -> bool:
    document = verdict.as_json()
    return all(document.get(key) == value for key, value in expectation.items() if key != "case_id")


@pytest.fixture(scope="module", params=SCENARIOS, ids=[path.stem for path in SCENARIOS])
def scenario(request: pytest.FixtureRequest) -> dict[str, Any]:
    return read_scenario(request.param)


def test_there_are_scenarios_including_the_two_constructed_ones() -> None:
    """The corpus holds the dispute scenarios and C-01, C-02."""
    names = {path.stem for path in SCENARIOS}

    assert {"C-01-compliant-sale", "C-02-lease-late-complaint", "D-02", "D-15"} <= names


def test_scenario_events_validate_against_the_catalogue(scenario: dict[str, Any]) -> None:
    """Every event is a valid request and its payload a valid payload of its type."""
    catalogue = load_catalogue()
    envelope = Draft202012Validator(event_request_schema(catalogue))

    problems = []
    for case_id, events in scenario["cases"].items():
        for index, event in enumerate(events):
            problems += [f"{case_id}/{index}: {e.message}" for e in envelope.iter_errors(event)]
            validator = catalogue.types[event["type"]].validator
            problems += [
                f"{case_id}/{index}: {e.message}" for e in validator.iter_errors(event["payload"])
            ]

    assert problems == []


def test_built_records_form_a_valid_chain(scenario: dict[str, Any]) -> None:
    """The helper builds what the ledger would: a chain any verifier accepts."""
    for case_id, events in scenario["cases"].items():
        records = build_records(case_id, events)

        report = verify_chain(case_id, ((record["seq"], record) for record in records))

        assert report.ok, report.as_json()


def test_expected_verdicts_are_present(scenario: dict[str, Any]) -> None:
    """Every `expect` entry matches at least one verdict of its case."""
    verdicts = scenario_verdicts(scenario)

    missing = [
        expectation
        for expectation in scenario["expect"]
        if not any(matches(v, expectation) for v in verdicts[expectation["case_id"]])
    ]

    assert missing == []


def test_excluded_verdicts_are_absent(scenario: dict[str, Any]) -> None:
    """No verdict matches an `expect_not` entry."""
    verdicts = scenario_verdicts(scenario)

    present = [
        (expectation, verdict.reason)
        for expectation in scenario["expect_not"]
        for verdict in verdicts[expectation["case_id"]]
        if matches(verdict, expectation)
    ]

    assert present == []


def test_evidence_recorded_years_later_is_flagged(scenario: dict[str, Any]) -> None:
    """Scenario events from 2008-2024 recorded in 2026 are late entries wherever they are cited."""
    verdicts = scenario_verdicts(scenario)

    cited = [v for case in verdicts.values() for v in case if v.evidence]

    assert cited
    assert all("late_entry" in v.flags for v in cited)
    assert all(entry.late_entry for v in cited for entry in v.evidence)


def test_the_compliant_sale_owes_nothing() -> None:
    """C-01 ends with every triggered obligation met: nothing breached, pending or waived."""
    data = read_scenario(EXAMPLES / "C-01-compliant-sale.json")

    verdicts = scenario_verdicts(data)["c01-sale"]

    assert {v.status for v in verdicts} == {"met", "not_applicable"}
    assert {v.obligation for v in verdicts if v.status == "met"} >= {
        "CN-INT-01",
        "CN-DIS-05",
        "CN-TTL-01",
        "CN-FND-01",
        "CN-FUP-01",
    }


def test_the_late_complaint_is_the_lease_s_only_breach() -> None:
    """C-02 breaches the acknowledgement target and nothing else; the branch manager answers."""
    data = read_scenario(EXAMPLES / "C-02-lease-late-complaint.json")

    verdicts = scenario_verdicts(data)["c02-lease"]

    breached = [(v.obligation, v.rule, v.performer) for v in verdicts if v.status == "breached"]
    assert breached == [("CN-CMP-01", "acknowledge", "mgr-l1")]
    assert not [v for v in verdicts if v.status == "pending"]


def test_d15_under_the_uk_overlay_reaches_the_same_result() -> None:
    """D-15's note says the UK-CMP-01 overlay also finds the complaint unanswered."""
    data = read_scenario(EXAMPLES / "D-15.json")

    verdicts = scenario_verdicts(data, "uk-overlay")["d15-sale"]

    uk = [v for v in verdicts if v.obligation == "UK-CMP-01" and v.rule == "acknowledge"]
    assert [(v.status, v.accountable, v.performer) for v in uk] == [
        ("breached", "agency-a", "mgr-a1")
    ]
    assert "calendar_not_covered:uk-overlay-weekends:2023" in uk[0].flags


def test_d09_names_the_client_s_share_without_changing_the_agency_s_verdict() -> None:
    """The buyer paid a personal account against the payee clause: a client share; agency liable."""
    data = read_scenario(EXAMPLES / "D-09.json")

    verdicts = scenario_verdicts(data)["d09-sale"]

    payments = [v for v in verdicts if v.obligation == "CN-FND-02" and v.rule == "payment"]
    assert len(payments) == 2
    for verdict in payments:
        assert (verdict.status, verdict.accountable, verdict.performer, verdict.supervisor) == (
            "breached",
            "agency-k",
            "agent-k1",
            "mgr-k2",
        )
        assert verdict.client_share is not None
        assert verdict.client_share["party"] == "d09-party-2"
        assert verdict.client_share["share_percent"] is None


def test_d11_names_the_buyer_s_share_of_the_eligibility_loss() -> None:
    """The court split D-11's loss with the client; the verdict stays the agency's."""
    data = read_scenario(EXAMPLES / "D-11.json")

    verdicts = scenario_verdicts(data)["d11-purchase"]

    warning = [v for v in verdicts if v.obligation == "CN-DIS-06"]
    assert [(v.status, v.accountable, v.performer) for v in warning] == [
        ("breached", "agency-a", "agent-a1")
    ]
    assert warning[0].client_share is not None
    assert warning[0].client_share["party"] == "d11-party-1"


def test_reasons_and_evidence_name_each_event_once_per_part(scenario: dict[str, Any]) -> None:
    """A disclosure answering two mortgages was once named twice, "(#33, #33)"."""
    for verdicts in scenario_verdicts(scenario).values():
        for verdict in verdicts:
            for named in re.findall(r"\((#\d+(?:, #\d+)+)\)", verdict.reason):
                seqs = named.split(", ")
                assert len(seqs) == len(set(seqs)), verdict.reason
            entries = [(entry.seq, entry.role) for entry in verdict.evidence]
            assert len(entries) == len(set(entries)), entries
