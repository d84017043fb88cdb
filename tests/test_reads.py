"""Reading the ledger: case state from the projection, lists, the feed, replay and rebuild."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from domain.settings import Settings
from projections.case_state import read_case
from projections.runtime import Runtime
from scripts.cli import main as casetrail
from tests.conftest import event, note, opened
from tests.test_tamper import use_settings

SALE = [
    opened(),
    event(
        "agent.assigned",
        {
            "agent_id": "agent-a1",
            "case_role": "agent_of_record",
            "licence_no": "L-1",
            "supervisor_id": "mgr-a1",
        },
        actor={"id": "mgr-a1", "role": "branch_manager", "agency": "agency-a"},
    ),
    event(
        "party.registered",
        {
            "party_id": "p-1",
            "party_role": "seller",
            "name": "Wang Fang",
            "phone": "13800000000",
            "id_number": "110101199001011234",
        },
    ),
    event(
        "mandate.signed",
        {"party_id": "p-1", "kind": "sell", "exclusive": True, "expires_on": "2024-06-01"},
    ),
    event("listing.published", {"channel": "app", "listing_code": "L-9"}),
    event(
        "funds.received",
        {
            "amount_minor": 1000000,
            "currency": "CNY",
            "payer_party_id": "p-2",
            "account_type": "settlement",
        },
        actor={"id": "fin-a1", "role": "finance", "agency": "agency-a"},
    ),
    event(
        "complaint.received",
        {"complaint_id": "cmp-1", "party_id": "p-1", "channel": "phone", "summary": "no call back"},
    ),
]


def test_case_state_from_the_projection(client: TestClient) -> None:
    client.post("/v1/cases/sale-1/events", json={"events": SALE})

    state = client.get("/v1/cases/sale-1").json()

    assert state["kind"] == "sale"
    assert state["phase"] == "settlement"
    assert state["parties"] == [{"party_id": "p-1", "role": "seller", "registered_seq": 3}]
    assert state["agents"][0]["agent_id"] == "agent-a1"
    assert state["agents"][0]["supervisor_id"] == "mgr-a1"
    assert state["mandates"][0]["kind"] == "sell"
    assert state["funds"]["received"] == {"CNY": 1000000}
    assert state["funds"]["received_by_account"] == {"settlement": {"CNY": 1000000}}
    assert state["complaints"][0]["status"] == "open"
    assert state["open_complaints"] == 1
    assert state["last_seq"] == 7
    assert state["head_hash"] == client.get("/v1/cases/sale-1/events").json()["events"][-1]["hash"]
    assert state["updated_at"].endswith("Z")


def test_case_state_never_holds_personal_data(client: TestClient) -> None:
    client.post("/v1/cases/sale-1/events", json={"events": SALE})

    text = client.get("/v1/cases/sale-1").text

    for secret in ("Wang Fang", "13800000000", "110101199001011234"):
        assert secret not in text


def test_personal_fields_are_sealed_in_the_record(client: TestClient) -> None:
    client.post("/v1/cases/sale-1/events", json={"events": SALE})

    payload = client.get("/v1/cases/sale-1/events").json()["events"][2]["payload"]

    assert set(payload["name"]) == {"sealed", "key_id"}
    assert payload["name"]["key_id"] == payload["phone"]["key_id"]
    assert "Wang" not in str(payload)


def test_reading_an_unknown_case_is_404(client: TestClient) -> None:
    for path in ("/v1/cases/nope", "/v1/cases/nope/events", "/v1/cases/nope/verify"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["type"] == "/problems/case-not-found"


def test_events_page_through_with_after_seq(client: TestClient) -> None:
    client.post("/v1/cases/sale-1/events", json={"events": SALE})

    first = client.get("/v1/cases/sale-1/events?limit=3").json()
    second = client.get(
        f"/v1/cases/sale-1/events?after_seq={first['next_after_seq']}&limit=3"
    ).json()
    last = client.get("/v1/cases/sale-1/events?after_seq=6&limit=3").json()
    beyond = client.get("/v1/cases/sale-1/events?after_seq=7").json()

    assert [e["seq"] for e in first["events"]] == [1, 2, 3]
    assert [e["seq"] for e in second["events"]] == [4, 5, 6]
    assert [e["seq"] for e in last["events"]] == [7]
    assert last["next_after_seq"] is None
    assert beyond["events"] == []


def test_case_list_filters_and_pages(client: TestClient) -> None:
    client.post("/v1/cases/a-1/events", json={"events": SALE})
    client.post("/v1/cases/a-2/events", json=opened())
    client.post("/v1/cases/b-1/events", json=opened(agency="agency-b"))

    everything = client.get("/v1/cases").json()["cases"]
    agency_b = client.get("/v1/cases?agency=agency-b").json()["cases"]
    settlement = client.get("/v1/cases?phase=settlement").json()["cases"]
    page = client.get("/v1/cases?limit=2").json()
    rest = client.get(f"/v1/cases?after={page['next_after']}").json()

    assert [c["case_id"] for c in everything] == ["a-1", "a-2", "b-1"]
    assert [c["case_id"] for c in agency_b] == ["b-1"]
    assert [c["case_id"] for c in settlement] == ["a-1"]
    assert [c["case_id"] for c in page["cases"]] + [c["case_id"] for c in rest["cases"]] == [
        "a-1",
        "a-2",
        "b-1",
    ]
    assert client.get("/v1/cases?phase=nonsense").status_code == 400


def test_feed_lists_every_event_in_order(client: TestClient) -> None:
    client.post("/v1/cases/a-1/events", json=opened())
    client.post("/v1/cases/b-1/events", json=opened())
    client.post("/v1/cases/a-1/events", json=note())

    feed = client.get("/v1/feed?limit=2").json()
    rest = client.get(f"/v1/feed?after={feed['next_after']}").json()
    events = feed["events"] + rest["events"]

    assert [(e["case_id"], e["seq"]) for e in events] == [("a-1", 1), ("b-1", 1), ("a-1", 2)]
    assert [e["position"] for e in events] == sorted(e["position"] for e in events)
    assert events[2]["type"] == "note.added"
    assert client.get(f"/v1/feed?after={rest['next_after']}").json() == {
        "events": [],
        "next_after": rest["next_after"],
    }


def test_correction_changes_state_and_history_keeps_both(client: TestClient) -> None:
    client.post("/v1/cases/sale-1/events", json={"events": SALE})
    client.post(
        "/v1/cases/sale-1/events",
        json=event(
            "event.corrected",
            {
                "corrects_seq": 6,
                "reason": "wrong amount",
                "replacement": {
                    "amount_minor": 900000,
                    "currency": "CNY",
                    "payer_party_id": "p-2",
                    "account_type": "settlement",
                },
            },
        ),
    )

    state = client.get("/v1/cases/sale-1").json()
    records = client.get("/v1/cases/sale-1/events").json()["events"]

    assert state["funds"]["received"] == {"CNY": 900000}
    assert state["corrections"] == [
        {"seq": 8, "corrects_seq": 6, "reason": "wrong amount", "replaced": True}
    ]
    assert records[5]["payload"]["amount_minor"] == 1000000


def test_replay_shows_the_case_as_it_stood(
    settings: Settings,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import orjson

    client.post("/v1/cases/sale-1/events", json={"events": SALE[:4]})
    cutoff = client.get("/v1/cases/sale-1/events").json()["events"][-1]["recorded_at"]
    client.post("/v1/cases/sale-1/events", json={"events": SALE[4:]})
    use_settings(monkeypatch, settings)

    assert casetrail(["replay", "sale-1", "--as-of-seq", "3"]) == 0
    by_seq = orjson.loads(capsys.readouterr().out)
    assert casetrail(["replay", "sale-1", "--as-of-recorded", cutoff]) == 0
    by_time = orjson.loads(capsys.readouterr().out)
    assert casetrail(["replay", "sale-1"]) == 0
    now = orjson.loads(capsys.readouterr().out)

    assert by_seq["last_seq"] == 3 and by_seq["phase"] == "intake"
    assert by_time["last_seq"] == 4 and by_time["phase"] == "mandate"
    assert now["last_seq"] == 7
    assert casetrail(["replay", "nope"]) == 1


def test_rebuild_gives_identical_state(
    settings: Settings,
    runtime: Runtime,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client.post("/v1/cases/sale-1/events", json={"events": SALE})
    client.post("/v1/cases/b-1/events", json={"events": [opened(agency="agency-b"), note()]})
    runtime.settle()
    before = {case: read_case(runtime.ledger, case) for case in ("sale-1", "b-1")}
    for follower in runtime.followers.values():
        follower.stop()
    use_settings(monkeypatch, settings)

    assert casetrail(["rebuild"]) == 0

    after = {case: read_case(runtime.ledger, case) for case in ("sale-1", "b-1")}
    assert after == before
    assert "rebuilt case_state" in capsys.readouterr().out
