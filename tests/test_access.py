"""Who may read and write what: keys, roles, agency scope, and what the log never holds."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from api.app import routes
from domain.settings import Settings
from projections.runtime import Runtime
from scripts.cli import main as casetrail
from tests.conftest import event, note, opened
from tests.test_tamper import use_settings

PUBLIC = {
    "/",
    "/healthz",
    "/openapi.json",
    "/problems/{kind}",
    "/v1/log/tree-head",
    "/v1/log/tree-heads",
    "/v1/log/public-key",
    "/v1/log/inclusion",
    "/v1/log/consistency",
}


def concrete(path: str) -> str:
    return path.replace("{case_id}", "a-1").replace("{party_id}", "p-1").replace("{kind}", "x")


@pytest.fixture
def keys(runtime: Runtime, client: TestClient) -> dict[str, str]:
    client.post("/v1/cases/a-1/events", json={"events": [opened(), note()]})
    client.post(
        "/v1/cases/b-1/events",
        json={
            "events": [
                opened(agency="agency-b"),
                event(
                    "note.added",
                    {"text": "b's own"},
                    actor={"id": "agent-b1", "role": "agent_of_record", "agency": "agency-b"},
                ),
            ]
        },
    )
    runtime.seal_now()
    made = {}
    for name, role, agency in [
        ("integrator_b", "integrator", "agency-b"),
        ("agent_b", "agent", "agency-b"),
        ("compliance", "compliance", None),
        ("auditor", "auditor", None),
        ("platform", "integrator", None),
    ]:
        made[name], _ = runtime.api_keys.create(role, agency=agency)
    return made


def as_key(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_route_but_the_public_ones_needs_a_key(client: TestClient, keys: Any) -> None:
    for route in routes():
        if not isinstance(route, Route) or route.path.startswith("/desk"):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            response = client.request(method, concrete(route.path), headers={"Authorization": ""})
            if route.path in PUBLIC:
                assert response.status_code != 401, f"{method} {route.path}"
            else:
                assert response.status_code == 401, f"{method} {route.path}"
                assert response.json()["type"] == "/problems/unauthorized"


@pytest.mark.parametrize(
    "header", ["Bearer nope", "Bearer ctk_000000000000_secret", "Basic abc", "Bearer", "ctk_x"]
)
def test_a_bad_key_is_401(client: TestClient, header: str) -> None:
    response = client.get("/v1/cases", headers={"Authorization": header})

    assert response.status_code == 401
    assert response.json()["pointer"] == "/headers/Authorization"


def test_a_known_key_without_the_right_is_403(client: TestClient, keys: dict[str, str]) -> None:
    auditor, integrator = as_key(keys["auditor"]), as_key(keys["platform"])

    assert client.post("/v1/cases/a-1/events", json=note(), headers=auditor).status_code == 403
    assert (
        client.post(
            "/v1/parties/p-1/erasure?agency=agency-a", json={"reason": "x"}, headers=integrator
        ).status_code
        == 403
    )
    reveal = client.get(
        "/v1/cases/a-1/events?reveal=personal", headers={**auditor, "X-Purpose": "audit"}
    )
    assert reveal.status_code == 403
    assert reveal.json()["type"] == "/problems/forbidden"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/cases/a-1",
        "/v1/cases/a-1/events",
        "/v1/cases/a-1/verify",
        "/v1/cases/a-1/bundle",
        "/v1/cases/a-1/attribution",
        "/v1/cases/a-1/events?reveal=personal",
    ],
)
def test_another_agencys_case_answers_exactly_as_a_missing_one(
    client: TestClient, keys: dict[str, str], path: str
) -> None:
    headers = {**as_key(keys["agent_b"]), "X-Purpose": "checking"}

    foreign = client.get(path, headers=headers)
    missing = client.get(path.replace("a-1", "zz-none"), headers=headers)

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["type"] == missing.json()["type"] == "/problems/case-not-found"
    assert foreign.json()["detail"].replace("a-1", "?") == missing.json()["detail"].replace(
        "zz-none", "?"
    )


def test_an_agency_key_sees_its_own_agency_only(client: TestClient, keys: dict[str, str]) -> None:
    headers = as_key(keys["integrator_b"])

    cases = client.get("/v1/cases", headers=headers).json()["cases"]
    feed = client.get("/v1/feed", headers=headers).json()["events"]
    appended = client.post("/v1/cases/a-1/events", json=note(), headers=headers)

    assert [c["case_id"] for c in cases] == ["b-1"]
    assert {e["case_id"] for e in feed} == {"b-1"}
    assert appended.status_code == 404


def test_compliance_and_auditors_read_every_agency(
    client: TestClient, keys: dict[str, str]
) -> None:
    for name in ("compliance", "auditor"):
        cases = client.get("/v1/cases", headers=as_key(keys[name])).json()["cases"]
        assert {c["case_id"] for c in cases} == {"a-1", "b-1"}


def test_an_unscoped_integrator_appends_for_many_agencies(
    client: TestClient, keys: dict[str, str]
) -> None:
    headers = as_key(keys["platform"])

    a = client.post("/v1/cases/a-1/events", json=note("via platform"), headers=headers)
    c = client.post("/v1/cases/c-1/events", json=opened(agency="agency-c"), headers=headers)

    assert a.status_code == c.status_code == 201


def test_recorded_by_is_the_key_id(
    runtime: Runtime, client: TestClient, keys: dict[str, str]
) -> None:
    key_id = "key_" + keys["integrator_b"].split("_")[1]
    client.post(
        "/v1/cases/b-1/events",
        json=event(
            "note.added",
            {"text": "x"},
            actor={"id": "b1", "role": "agent_of_record", "agency": "agency-b"},
        ),
        headers=as_key(keys["integrator_b"]),
    )

    last = client.get("/v1/cases/b-1/events").json()["events"][-1]

    assert last["recorded_by"] == key_id


def test_keys_are_printed_once_listed_without_secrets_and_revocable(
    settings: Settings,
    runtime: Runtime,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_settings(monkeypatch, settings)

    assert casetrail(["keys", "create", "--role", "compliance", "--name", "dpo"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    key_id = "key_" + token.split("_")[1]
    assert client.get("/v1/cases", headers=as_key(token)).status_code == 200

    assert casetrail(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and token.split("_", 2)[2] not in listing

    assert casetrail(["keys", "revoke", key_id]) == 0
    runtime.api_keys._cache.clear()  # another process sees it within ApiKeys.CACHE_SECONDS
    assert client.get("/v1/cases", headers=as_key(token)).status_code == 401
    stored = runtime.ledger.db.query_one(
        "SELECT secret_sha256 FROM api_keys WHERE key_id = ?", [key_id]
    )
    assert stored is not None and token.split("_", 2)[2] not in str(stored)


def test_the_access_log_holds_no_key_body_query_or_personal_data(
    runtime: Runtime,
    client: TestClient,
    keys: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_name, secret_phone = "Qian Duoduo", "13712345678"
    compliance = {**as_key(keys["compliance"]), "X-Purpose": "complaint review 17"}

    with caplog.at_level(logging.INFO, logger="casetrail.access"):
        client.post(
            "/v1/cases/a-1/events",
            json=event(
                "party.registered",
                {
                    "party_id": "p-9",
                    "party_role": "buyer",
                    "name": secret_name,
                    "phone": secret_phone,
                    "id_number": "310101199001012345",
                },
            ),
        )
        revealed = client.get(
            "/v1/cases/a-1/events?reveal=personal&after_seq=0", headers=compliance
        )
        client.get("/v1/cases?agency=agency-a&limit=5")
        client.app.state.access_log.flush()  # type: ignore[attr-defined]

    assert secret_name in revealed.text
    lines = [
        line
        for record in caplog.records
        if record.name == "casetrail.access"
        for line in record.getMessage().splitlines()
    ]
    assert len(lines) >= 3
    text = "\n".join(lines)
    for forbidden in (
        secret_name,
        secret_phone,
        "310101199001012345",
        "complaint review",
        keys["compliance"],
        keys["compliance"].split("_", 2)[2],
        "agency=agency-a",
        "reveal=personal",
        "p-9",
    ):
        assert forbidden not in text
    for line in lines:
        assert re.fullmatch(
            r'\{"request_id":"[0-9a-f]{16}","key_id":("key_[0-9a-f]{12}"|null),'
            r'"method":"[A-Z]+","route":"[^"]+","status":\d{3},"duration_ms":[0-9.]+\}',
            line,
        ), line


def reveal_record(**fields: Any) -> dict[str, Any]:
    payload = {"party_id": "p-1", "purpose": "loan file", "fields": ["name"], "count": 1}
    return {**payload, **fields}


def test_no_key_may_append_what_only_the_ledger_records(
    runtime: Runtime, client: TestClient, keys: dict[str, str]
) -> None:
    agent_a, _ = runtime.api_keys.create("agent", agency="agency-a")
    compliance_id = "key_" + keys["compliance"].split("_")[1]
    as_compliance = {"id": compliance_id, "role": "compliance", "agency": "agency-a"}
    forgeries = [
        (event("erasure.executed", {"party_id": "p-1", "key_ids": ["dk_fake"]}), "/type"),
        (
            event("erasure.restricted", {"party_id": "p-1", "reason": "x", "until": "2030-01-01"}),
            "/type",
        ),
        (event("pi.accessed", reveal_record(key_id=compliance_id)), "/payload/key_id"),
        (event("pi.accessed", reveal_record(), actor=as_compliance), "/actor/id"),
    ]

    for headers in (as_key(agent_a), {}):  # an agency's agent, then the admin
        for forged, member in forgeries:
            response = client.post(
                "/v1/cases/a-1/events", json={"events": [note(), forged]}, headers=headers
            )
            assert response.status_code == 422, response.text
            assert response.json()["pointer"] == f"/events/1{member}"
    own_systems = event("pi.accessed", reveal_record(device_id="crm-7"))
    recorded = client.post("/v1/cases/a-1/events", json=own_systems, headers=as_key(agent_a))

    assert recorded.status_code == 201, recorded.text
    types = [e["type"] for e in client.get("/v1/cases/a-1/events").json()["events"]]
    assert types == ["case.opened", "note.added", "pi.accessed"]
    catalogue = client.get("/v1/catalogue").json()["types"]
    assert catalogue["erasure.executed"]["recorded_by_ledger"] is True
    assert catalogue["pi.accessed"]["ledger_fields"] == ["key_id"]


def test_a_record_the_ledger_made_cannot_be_corrected_away(
    client: TestClient, keys: dict[str, str]
) -> None:
    client.post(
        "/v1/cases/a-1/events",
        json=event(
            "party.registered",
            {"party_id": "p-1", "party_role": "buyer", "name": "N", "phone": "1", "id_number": "2"},
        ),
    )
    client.get(
        "/v1/cases/a-1/events?reveal=personal",
        headers={**as_key(keys["compliance"]), "X-Purpose": "complaint review"},
    )
    client.post("/v1/cases/a-1/events", json=event("pi.accessed", reveal_record()))
    records = client.get("/v1/cases/a-1/events").json()["events"]
    ledger_reveal, client_access = records[3]["seq"], records[4]["seq"]
    assert records[3]["payload"].get("key_id") and "key_id" not in records[4]["payload"]

    retracted = client.post(
        "/v1/cases/a-1/events",
        json=event("event.corrected", {"corrects_seq": ledger_reveal, "reason": "oops"}),
    )
    replaced = client.post(
        "/v1/cases/a-1/events",
        json=event(
            "event.corrected",
            {"corrects_seq": ledger_reveal, "reason": "x", "replacement": reveal_record()},
        ),
    )
    forged = client.post(
        "/v1/cases/a-1/events",
        json=event(
            "event.corrected",
            {
                "corrects_seq": client_access,
                "reason": "x",
                "replacement": reveal_record(key_id="key_" + keys["compliance"].split("_")[1]),
            },
        ),
    )

    assert retracted.status_code == replaced.status_code == forged.status_code == 422
    assert retracted.json()["pointer"] == replaced.json()["pointer"] == "/payload/corrects_seq"
    assert forged.json()["pointer"] == "/payload/replacement"
    assert len(client.get("/v1/cases/a-1/events").json()["events"]) == 5
