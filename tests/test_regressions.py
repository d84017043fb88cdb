"""Faults a fresh tester found in the ledger core, one test per kind of fault."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from domain.settings import Settings
from projections.runtime import Runtime
from scripts.cli import main as casetrail
from tests.conftest import event, note, opened
from tests.test_tamper import rewrite, stored_state, use_settings


def registered(party: str = "p-1", name: str = "Zhao Lei") -> dict[str, Any]:
    return event(
        "party.registered",
        {
            "party_id": party,
            "party_role": "seller",
            "name": name,
            "phone": "13911112222",
            "id_number": "110105198001010011",
        },
    )


# -- the writer: one request's trouble stays its own --------------------------------


def test_parallel_keyed_appends_to_one_case_each_land_exactly_once(http: httpx.Client) -> None:
    http.post("/v1/cases/busy/events", json=opened())

    def append(index: int) -> httpx.Response:
        return http.post(
            "/v1/cases/busy/events",
            json=note(f"once {index}"),
            headers={"Idempotency-Key": f"busy-{index}"},
        )

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        first = list(pool.map(append, range(20)))
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        again = list(pool.map(append, range(20)))

    assert [r.status_code for r in first] == [201] * 20
    assert [r.content for r in again] == [r.content for r in first]
    assert all(r.headers.get("idempotent-replayed") == "true" for r in again)
    assert len(http.get("/v1/cases/busy/events?limit=1000").json()["events"]) == 21


def test_a_deeply_nested_body_fails_alone(http: httpx.Client) -> None:
    for number in range(8):
        http.post(f"/v1/cases/n{number}/events", json=opened())
    deep: Any = "bottom"
    for _ in range(300):
        deep = [deep]
    nested = event("note.added", {"text": "x"})
    nested["payload"]["text"] = deep

    def append(number: int) -> httpx.Response:
        if number == 0:
            return http.post(
                "/v1/cases/n0/events",
                content=json.dumps(nested),
                headers={"Content-Type": "application/json"},
            )
        return http.post(f"/v1/cases/n{number}/events", json=note())

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(append, range(8)))

    assert responses[0].status_code == 422
    assert [r.status_code for r in responses[1:]] == [201] * 7


# -- corrections are held to the schema of what they correct --------------------------


FUNDS = event(
    "funds.received",
    {"amount_minor": 500, "currency": "CNY", "payer_party_id": "p-2", "account_type": "settlement"},
)


def test_a_correction_replacement_must_be_valid_for_the_corrected_event(client: TestClient) -> None:
    client.post("/v1/cases/c/events", json={"events": [opened(), FUNDS]})
    bad = event(
        "event.corrected",
        {
            "corrects_seq": 2,
            "reason": "typo",
            "replacement": {**FUNDS["payload"], "currency": {"a": 1}},
        },
    )
    good = event(
        "event.corrected",
        {
            "corrects_seq": 2,
            "reason": "typo",
            "replacement": {**FUNDS["payload"], "amount_minor": 700},
        },
    )

    refused = client.post("/v1/cases/c/events", json=bad)
    accepted = client.post("/v1/cases/c/events", json=good)

    assert refused.status_code == 422
    assert refused.json()["pointer"] == "/payload/replacement/currency"
    assert accepted.status_code == 201
    assert client.get("/v1/cases/c").json()["funds"]["received"] == {"CNY": 700}


@pytest.mark.parametrize("corrects", [0, 1, 9])
def test_a_correction_must_name_an_earlier_correctable_event(
    client: TestClient, corrects: int
) -> None:
    client.post("/v1/cases/c/events", json={"events": [opened(), FUNDS]})
    body = event(
        "event.corrected", {"corrects_seq": corrects, "reason": "x", "replacement": {"text": "y"}}
    )

    response = client.post("/v1/cases/c/events", json=body)

    assert response.status_code == 422
    assert response.json()["pointer"] == "/payload/corrects_seq"


def test_a_correction_seals_personal_data_like_the_original(
    client: TestClient, runtime: Runtime, settings: Settings
) -> None:
    client.post("/v1/cases/c/events", json={"events": [opened(), registered()]})
    replacement = {**registered(name="Zhao Leiming")["payload"]}
    client.post(
        "/v1/cases/c/events",
        json=event(
            "event.corrected",
            {"corrects_seq": 2, "reason": "name misspelt", "replacement": replacement},
        ),
    )

    stored = client.get("/v1/cases/c/events").json()["events"][2]["payload"]["replacement"]

    assert set(stored["name"]) == {"sealed", "key_id"}
    raw = (
        b"".join(
            path.read_bytes()
            for path in Path(settings.database.path).parent.glob("casetrail.sqlite*")
        )
        if runtime.ledger.target.is_sqlite
        else b""
    )
    assert b"Zhao Leiming" not in raw and b"13911112222" not in raw


def test_unknown_payload_fields_are_refused(client: TestClient) -> None:
    body = registered()
    body["payload"]["notes"] = "ID card ZZPLAINID-77"

    response = client.post("/v1/cases/c/events", json={"events": [opened(), body]})

    assert response.status_code == 422
    assert response.json()["pointer"] == "/events/1/payload/notes"


# -- formats mean what JSON Schema says ---------------------------------------------


@pytest.mark.parametrize(
    ("payload", "pointer"),
    [
        ({"currency": "CNY\n"}, "/events/1/payload/currency"),
        ({"currency": "ＣＮＹ"}, "/events/1/payload/currency"),
    ],
)
def test_patterned_fields_refuse_look_alikes(
    client: TestClient, payload: dict[str, Any], pointer: str
) -> None:
    funds = {**FUNDS, "payload": {**FUNDS["payload"], **payload}}

    response = client.post("/v1/cases/c/events", json={"events": [opened(), funds]})

    assert response.status_code == 422
    assert response.json()["pointer"] == pointer


@pytest.mark.parametrize("expires", ["2024-99-99", "2024-02-30", "٢٠٢٤-٠١-٠١", "2024-01-01\n"])
def test_dates_must_be_calendar_dates(client: TestClient, expires: str) -> None:
    mandate = event(
        "mandate.signed",
        {"party_id": "p-1", "kind": "sell", "exclusive": True, "expires_on": expires},
    )

    response = client.post("/v1/cases/c/events", json={"events": [opened(), mandate]})

    assert response.status_code == 422
    assert response.json()["pointer"] == "/events/1/payload/expires_on"


def test_evidence_hashes_refuse_a_trailing_newline(client: TestClient) -> None:
    body = {
        **opened(),
        "evidence": [{"name": "a.pdf", "sha256": "a" * 64 + "\n", "media_type": "application/pdf"}],
    }

    response = client.post("/v1/cases/c/events", json=body)

    assert response.status_code == 422
    assert response.json()["pointer"] == "/evidence/0/sha256"


@pytest.mark.parametrize("case_id", ["d02-sale%0A", "d02-sale%0D", "x%00"])
def test_case_ids_with_control_characters_are_refused(client: TestClient, case_id: str) -> None:
    response = client.post(f"/v1/cases/{case_id}/events", json=opened())

    assert response.status_code == 400
    assert response.json()["pointer"] == "/path/case_id"


@pytest.mark.parametrize("query", ["limit=%C2%B2", "after=%D9%A3", "limit=٣"])
def test_query_numbers_are_ascii_digits(client: TestClient, query: str) -> None:
    assert client.get(f"/v1/feed?{query}").status_code == 400


def test_no_redirect_is_built_from_the_host_header(client: TestClient) -> None:
    response = client.get("/v1/cases/", headers={"Host": "evil.example"}, follow_redirects=False)

    assert response.status_code == 404
    assert "location" not in response.headers


# -- agencies ---------------------------------------------------------------------------


def test_an_agency_key_records_only_its_own_agency_as_actor(
    runtime: Runtime, client: TestClient
) -> None:
    token, _ = runtime.api_keys.create("integrator", agency="agency-b")
    headers = {"Authorization": f"Bearer {token}"}
    client.post("/v1/cases/b-1/events", json=opened(agency="agency-b"), headers=headers)

    forged = event(
        "note.added",
        {"text": "x"},
        actor={"id": "agent-a1", "role": "agent_of_record", "agency": "agency-a"},
    )
    response = client.post("/v1/cases/b-1/events", json=forged, headers=headers)

    assert response.status_code == 403
    assert response.json()["pointer"] == "/actor/agency"


def test_a_missing_case_and_another_agencys_case_look_the_same(
    runtime: Runtime, client: TestClient
) -> None:
    client.post("/v1/cases/a-1/events", json=opened())
    token, _ = runtime.api_keys.create("integrator", agency="agency-b")
    headers = {"Authorization": f"Bearer {token}"}

    foreign = client.post("/v1/cases/a-1/events", json=note(), headers=headers)
    missing = client.post("/v1/cases/zz-none/events", json=note(), headers=headers)

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["type"] == missing.json()["type"] == "/problems/case-not-found"
    # Word for word too: the trial told them apart by the explanation only one carried.
    assert foreign.json()["detail"].replace("a-1", "?") == missing.json()["detail"].replace(
        "zz-none", "?"
    )


def test_opening_a_taken_case_id_says_so_alike_for_every_agency(
    runtime: Runtime, client: TestClient
) -> None:
    client.post("/v1/cases/a-1/events", json=opened())
    token, _ = runtime.api_keys.create("integrator", agency="agency-b")

    own = client.post("/v1/cases/a-1/events", json=opened())
    rival = client.post(
        "/v1/cases/a-1/events",
        json=opened(agency="agency-b"),
        headers={"Authorization": f"Bearer {token}"},
    )

    assert own.status_code == rival.status_code == 409
    assert own.json() == rival.json()
    assert own.json()["type"] == "/problems/case-id-taken"
    assert own.json()["pointer"] == "/path/case_id"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "agent"], "give --agency"),
        (["--role", "integrator", "--agency", ""], "agency id"),
        (["--role", "admin", "--agency", "agency-b"], "not bound to an agency"),
    ],
)
def test_keys_create_refuses_ambiguous_scopes(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_settings(monkeypatch, settings)

    assert casetrail(["keys", "create", *args]) == 2
    assert message in capsys.readouterr().err


# -- tampered history is never believed ------------------------------------------------


def flip_agency(runtime: Runtime, case_id: str) -> None:
    state = stored_state(runtime, case_id, 1)
    rewrite(runtime, case_id, 1, state.replace(b'"agency":"agency-a"', b'"agency":"agency-b"', 1))
    runtime._agencies.clear()


def test_a_forged_opening_record_grants_no_access(runtime: Runtime, client: TestClient) -> None:
    client.post("/v1/cases/a-1/events", json={"events": [opened(), note()]})
    flip_agency(runtime, "a-1")
    token, _ = runtime.api_keys.create("integrator", agency="agency-b")
    headers = {"Authorization": f"Bearer {token}"}

    read = client.get("/v1/cases/a-1/events?after_seq=1", headers=headers)
    append = client.post(
        "/v1/cases/a-1/events",
        json=event(
            "note.added",
            {"text": "mine now"},
            actor={"id": "b1", "role": "agent_of_record", "agency": "agency-b"},
        ),
        headers=headers,
    )

    # No access, and no news either: to agency-b this is a case it cannot see.
    assert read.status_code == 404 and read.json()["type"] == "/problems/case-not-found"
    assert append.status_code in (404, 500)
    assert len(list(runtime.iter_records("a-1"))) == 2


def test_nothing_is_appended_onto_a_chain_broken_in_the_middle(
    runtime: Runtime, client: TestClient
) -> None:
    client.post("/v1/cases/a-1/events", json={"events": [opened(), note("one"), note("two")]})
    state = stored_state(runtime, "a-1", 2)
    rewrite(runtime, "a-1", 2, state.replace(b"one", b"ONE"))

    response = client.post("/v1/cases/a-1/events", json=note("three"))

    assert response.status_code == 500
    assert "seq 2" in response.json()["detail"]
    assert len(list(runtime.iter_records("a-1"))) == 3


def test_replay_and_rebuild_refuse_tampered_history(
    settings: Settings,
    runtime: Runtime,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client.post("/v1/cases/a-1/events", json={"events": [opened(), FUNDS]})
    runtime.settle()
    for follower in runtime.followers.values():
        follower.stop()
    state = stored_state(runtime, "a-1", 2)
    rewrite(runtime, "a-1", 2, state.replace(b'"amount_minor":500', b'"amount_minor":50'))
    use_settings(monkeypatch, settings)

    assert casetrail(["replay", "a-1"]) != 0
    assert casetrail(["rebuild"]) == 1  # the log refuses to re-seal a tampered event
    assert "transparency_log stopped" in capsys.readouterr().err
    with Runtime(settings) as again:
        token, _ = again.api_keys.create("admin")
        from api.app import create_app

        with TestClient(create_app(again), headers={"Authorization": f"Bearer {token}"}) as c:
            again.settle()
            response = c.get("/v1/cases/a-1")
            listed = c.get("/v1/cases").json()["cases"]
    assert response.status_code == 500
    assert response.json()["seq"] == 2
    assert listed[0]["sound"] is False


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_record_stored_as_text_is_reported_not_crashed_on(
    settings: Settings,
    runtime: Runtime,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client.post("/v1/cases/a-1/events", json={"events": [opened(), note()]})
    for follower in runtime.followers.values():
        follower.stop()
    state = stored_state(runtime, "a-1", 2)
    rewrite(runtime, "a-1", 2, state.decode())  # type: ignore[arg-type]
    use_settings(monkeypatch, settings)

    assert casetrail(["verify"]) == 1
    assert "FAIL a-1 seq 2: stored record is not bytes" in capsys.readouterr().out
    assert client.get("/v1/cases/a-1/verify").json()["first_bad_seq"] == 2


def test_serve_refuses_an_impossible_port() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "serve", "--port", "99999"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )

    assert result.returncode == 2
    assert "between 1 and 65535" in result.stderr
