"""Sealed personal data: reveals on the record, erasure by crypto-shredding, key rotation."""

from __future__ import annotations

import base64
import os
import socket
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from domain.bundle import verify_bundle
from domain.envelope import parse_recorded_at
from domain.errors import MasterKeyRotated
from domain.policy import parse_duration
from domain.settings import Settings
from domain.validation import Draft
from domain.vault import MasterKey, VaultError, field_context, open_sealed
from projections.apikeys import SYSTEM
from projections.keystore import KeyStore
from projections.runtime import Runtime
from projections.writer import AppendCommand, Writer
from scripts.cli import main as casetrail
from tests.conftest import LiveServer, event, opened
from tests.test_tamper import use_settings

NAME, PHONE, ID_NUMBER = "Sun Xiaomei", "13522223333", "440301198812120021"


def registered(party: str = "p-1", name: str = NAME) -> dict[str, Any]:
    return event(
        "party.registered",
        {
            "party_id": party,
            "party_role": "seller",
            "name": name,
            "phone": PHONE,
            "id_number": ID_NUMBER,
        },
    )


def brokerage_contract(when: str) -> dict[str, Any]:
    return event(
        "contract.brokerage_signed",
        {
            "party_id": "p-1",
            "signatories": [{"agent_id": "agent-a1", "licence": "broker"}],
            "agency_seal": True,
            "contents": ["parties_and_agents"],
        },
        occurred_at=when,
    )


@pytest.fixture
def compliance(runtime: Runtime) -> dict[str, str]:
    token, _ = runtime.api_keys.create("compliance", name="dpo")
    return {"Authorization": f"Bearer {token}", "X-Purpose": "complaint cmp-3 review"}


def reveal(client: TestClient, headers: dict[str, str], case_id: str = "c-1") -> dict[str, Any]:
    response = client.get(f"/v1/cases/{case_id}/events?reveal=personal", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def values(body: dict[str, Any]) -> dict[str, Any]:
    return {
        (item["seq"], item["field"]): (item["value"], item["status"]) for item in body["revealed"]
    }


def database_bytes(runtime: Runtime, settings: Settings) -> bytes:
    """Every byte the database holds: the SQLite file and its WAL, or every PostgreSQL row."""
    if runtime.ledger.target.is_sqlite:
        folder = Path(settings.database.path).parent
        return b"".join(path.read_bytes() for path in folder.glob("casetrail.sqlite*"))
    tables = runtime.ledger.db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    dump: list[str] = []
    for table in tables:
        rows = runtime.ledger.db.query(f'SELECT t::text AS row FROM "{table["tablename"]}" t')
        dump.extend(row["row"] for row in rows)
    return "\n".join(dump).encode()


def test_a_reveal_returns_plaintext_and_records_the_access(
    client: TestClient, compliance: dict[str, str]
) -> None:
    client.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})

    body = reveal(client, compliance)

    assert values(body)[(2, "name")] == (NAME, "revealed")
    assert values(body)[(2, "id_number")] == (ID_NUMBER, "revealed")
    assert set(body["events"][1]["payload"]["name"]) == {"sealed", "key_id"}
    access = client.get("/v1/cases/c-1/events?after_seq=2").json()["events"]
    assert [record["type"] for record in access] == ["pi.accessed"]
    payload = access[0]["payload"]
    key_id = "key_" + compliance["Authorization"].split("_")[1]
    assert payload == {
        "party_id": "p-1",
        "purpose": "complaint cmp-3 review",
        "fields": ["id_number", "name", "phone"],
        "count": 3,
        "key_id": key_id,
    }
    assert access[0]["actor"]["id"] == key_id and access[0]["recorded_by"] == key_id


def test_a_reveal_needs_a_purpose(client: TestClient, compliance: dict[str, str]) -> None:
    client.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})
    headers = {"Authorization": compliance["Authorization"]}

    response = client.get("/v1/cases/c-1/events?reveal=personal", headers=headers)

    assert response.status_code == 400
    assert response.json()["type"] == "/problems/missing-purpose"
    assert response.json()["pointer"] == "/headers/X-Purpose"
    assert len(client.get("/v1/cases/c-1/events").json()["events"]) == 2


def test_agents_reveal_only_for_their_own_agency(runtime: Runtime, client: TestClient) -> None:
    client.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})
    own, _ = runtime.api_keys.create("agent", agency="agency-a")
    other, _ = runtime.api_keys.create("agent", agency="agency-b")

    mine = client.get(
        "/v1/cases/c-1/events?reveal=personal",
        headers={"Authorization": f"Bearer {own}", "X-Purpose": "call back"},
    )
    theirs = client.get(
        "/v1/cases/c-1/events?reveal=personal",
        headers={"Authorization": f"Bearer {other}", "X-Purpose": "curious"},
    )

    assert mine.status_code == 200 and NAME in mine.text
    assert theirs.status_code == 404 and NAME not in theirs.text


def test_reveal_roles_are_configurable(settings: Settings) -> None:
    with Runtime(replace(settings, reveal_roles=("compliance",))) as runtime:
        token, _ = runtime.api_keys.create("agent", agency="agency-a")
        from api.app import create_app

        admin, _ = runtime.api_keys.create("admin")
        with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {admin}"}) as c:
            c.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})
            refused = c.get(
                "/v1/cases/c-1/events?reveal=personal",
                headers={"Authorization": f"Bearer {token}", "X-Purpose": "x"},
            )
    assert refused.status_code == 403


def test_a_sealed_value_copied_elsewhere_does_not_open(
    runtime: Runtime, client: TestClient, compliance: dict[str, str]
) -> None:
    client.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})
    client.post("/v1/cases/c-2/events", json=opened())
    copied = client.get("/v1/cases/c-1/events").json()["events"][1]["payload"]["name"]
    # A compromised integrator bypassing validation copies the sealed name into c-2.
    forged = Draft(
        "party.registered",
        1,
        "2024-03-01T10:00:00+08:00",
        {"id": "x", "role": "agent_of_record", "agency": "agency-a"},
        {"party_id": "p-1", "party_role": "seller", "name": copied},
        [],
    )
    runtime.append(AppendCommand(case_id="c-2", events=[forged], recorded_by=SYSTEM.key_id))

    body = reveal(client, compliance, "c-2")

    assert values(body)[(2, "name")] == (None, "unreadable")
    assert NAME not in str(body)


def test_erasure_without_a_retention_clock_shreds_the_party(
    runtime: Runtime,
    settings: Settings,
    client: TestClient,
    compliance: dict[str, str],
) -> None:
    client.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})
    reveal(client, compliance)
    before = runtime.seal_now()
    old_key = client.get("/v1/cases/c-1/events").json()["events"][1]["payload"]["name"]["key_id"]

    answer = client.post(
        "/v1/parties/p-1/erasure?agency=agency-a", json={"reason": "data subject request 88"}
    )

    assert answer.status_code == 200
    assert answer.json()["outcome"] == "executed"
    assert answer.json()["destroyed_key_ids"] == [old_key]
    assert values(reveal(client, compliance))[(2, "name")] == ("erased", "erased")
    types = [r["type"] for r in client.get("/v1/cases/c-1/events").json()["events"]]
    # ...then the reveal that found only erased values, itself on the record (count 0).
    assert types[-3:] == ["erasure.requested", "erasure.executed", "pi.accessed"]
    assert client.get("/v1/cases/c-1/verify").json()["ok"] is True
    bundle = client.get("/v1/cases/c-1/bundle").json()
    assert runtime.signing_key is not None
    assert verify_bundle(bundle, trusted_public_key=runtime.signing_key.public_key).events >= 5
    assert before is not None
    raw = database_bytes(runtime, settings)
    for secret in (NAME, PHONE, ID_NUMBER):
        assert secret.encode() not in raw


def test_a_new_registration_after_erasure_gets_a_new_key(
    runtime: Runtime, client: TestClient, compliance: dict[str, str]
) -> None:
    client.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})
    client.post("/v1/parties/p-1/erasure?agency=agency-a", json={"reason": "request"})
    erased = client.get("/v1/cases/c-1/events").json()["events"][1]["payload"]["name"]

    client.post("/v1/cases/c-9/events", json={"events": [opened(), registered(name="New Name")]})
    fresh = client.get("/v1/cases/c-9/events").json()["events"][1]["payload"]["name"]

    assert fresh["key_id"] != erased["key_id"]
    new_key = runtime.keystore.key(fresh["key_id"])
    with pytest.raises(VaultError):
        open_sealed(new_key, erased, field_context("c-1", 2, "p-1", "name"))
    assert values(reveal(client, compliance, "c-9"))[(2, "name")] == ("New Name", "revealed")


def test_erasure_during_retention_restricts_until_the_clock_runs_out(
    runtime: Runtime, client: TestClient, compliance: dict[str, str]
) -> None:
    client.post(
        "/v1/cases/c-1/events",
        json={"events": [opened(), registered(), brokerage_contract("2024-03-05T10:00:00+08:00")]},
    )

    contract = client.get("/v1/cases/c-1/events").json()["events"][2]
    # The clock runs from the later of occurred_at and recorded_at: here, today.
    recorded = parse_recorded_at(contract["recorded_at"])
    five_years = parse_duration("P5Y")
    assert five_years is not None
    until = five_years.after(recorded).date().isoformat()

    answer = client.post(
        "/v1/parties/p-1/erasure?agency=agency-a", json={"reason": "request"}
    ).json()

    assert answer["outcome"] == "restricted"
    assert answer["until"] == until
    last = client.get("/v1/cases/c-1/events").json()["events"][-1]
    assert last["type"] == "erasure.restricted"
    assert last["payload"]["until"] == until
    assert values(reveal(client, compliance))[(2, "name")] == (None, "restricted")
    admin = client.get(
        "/v1/cases/c-1/events?reveal=personal",
        headers={"X-Purpose": "legal claim: court order 2026-77"},
    ).json()
    assert values(admin)[(2, "name")] == (NAME, "revealed")


def test_a_value_sealed_under_an_unknown_key_is_an_error_not_erased(
    runtime: Runtime, client: TestClient, compliance: dict[str, str]
) -> None:
    client.post("/v1/cases/c-1/events", json=opened())
    unknown = {"sealed": base64.b64encode(os.urandom(60)).decode(), "key_id": "dk_" + "0" * 32}
    forged = Draft(
        "party.registered",
        1,
        "2024-03-01T10:00:00+08:00",
        {"id": "x", "role": "agent_of_record", "agency": "agency-a"},
        {"party_id": "p-5", "party_role": "seller", "name": unknown},
        [],
    )
    runtime.append(AppendCommand(case_id="c-1", events=[forged], recorded_by=SYSTEM.key_id))

    response = client.get("/v1/cases/c-1/events?reveal=personal", headers=compliance)

    assert response.status_code == 500
    assert response.json()["type"] == "/problems/integrity-failure"
    assert "never issued" in response.json()["detail"]


def test_master_key_rotation_rewraps_keys_and_changes_no_hash(
    settings: Settings,
    runtime: Runtime,
    client: TestClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})
    hashes = [r["hash"] for r in client.get("/v1/cases/c-1/events").json()["events"]]
    use_settings(monkeypatch, settings)
    new_file = tmp_path / "new-master.key"
    old_master = runtime.master_key

    assert casetrail(["keys", "rotate-master", "--new-key-file", str(new_file)]) == 0

    rotated = replace(settings, master_key_path=str(new_file))
    with Runtime(rotated) as again:
        token, _ = again.api_keys.create("compliance")
        from api.app import create_app

        with TestClient(create_app(again), headers={"Authorization": f"Bearer {token}"}) as c:
            body = c.get("/v1/cases/c-1/events?reveal=personal", headers={"X-Purpose": "check"})
            after = [r["hash"] for r in body.json()["events"]][:2]
    assert after == hashes
    assert values(body.json())[(2, "name")] == (NAME, "revealed")
    row = runtime.ledger.db.query_one("SELECT key_id, wrapped FROM party_keys")
    assert row is not None
    with pytest.raises(VaultError):
        old_master.unwrap(bytes(row["wrapped"]), label=row["key_id"])
    assert MasterKey.from_bytes(base64.b64decode(new_file.read_text())).unwrap(
        bytes(row["wrapped"]), label=row["key_id"]
    )
    assert oct(new_file.stat().st_mode & 0o777) == "0o600"


def erase(
    client: TestClient, party: str = "p-1", agency: str = "agency-a", reason: str = "request"
) -> Any:
    return client.post(f"/v1/parties/{party}/erasure?agency={agency}", json={"reason": reason})


def case_events(client: TestClient, case_id: str) -> list[dict[str, Any]]:
    return client.get(f"/v1/cases/{case_id}/events").json()["events"]  # type: ignore[no-any-return]


def now_at(offset: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + offset).isoformat(timespec="seconds")


def as_agency_b(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "actor": {"id": "agent-b1", "role": "agent_of_record", "agency": "agency-b"}}


def test_rotating_to_a_key_file_that_cannot_be_written_changes_nothing(
    settings: Settings,
    runtime: Runtime,
    client: TestClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})
    use_settings(monkeypatch, settings)
    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("a file where the key's folder should be\n")

    code = casetrail(["keys", "rotate-master", "--new-key-file", str(not_a_folder / "new.key")])

    assert code == 2
    assert "nothing was changed" in capsys.readouterr().err
    assert {
        row["master_key_id"] for row in runtime.ledger.db.query("SELECT * FROM party_keys")
    } == {runtime.master_key.key_id}
    with Runtime(settings, start_followers=False) as again:  # still opens with the old key
        token, _ = again.api_keys.create("compliance")
        from api.app import create_app

        with TestClient(create_app(again), headers={"Authorization": f"Bearer {token}"}) as c:
            body = reveal(c, {"X-Purpose": "check after a failed rotation"})
    assert values(body)[(2, "name")] == (NAME, "revealed")


def test_a_rotation_whose_transaction_fails_removes_the_new_key_file(
    settings: Settings,
    runtime: Runtime,
    client: TestClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})
    use_settings(monkeypatch, settings)
    new_file = tmp_path / "new-master.key"

    def written_then_failed(keystore: KeyStore, new_master: MasterKey) -> int:
        assert new_file.exists()  # the key is on disk before the database changes
        raise RuntimeError("the database went away")

    monkeypatch.setattr(KeyStore, "rewrap", written_then_failed)

    with pytest.raises(RuntimeError):
        casetrail(["keys", "rotate-master", "--new-key-file", str(new_file)])

    assert not new_file.exists()


def test_a_process_holding_the_old_master_key_refuses_to_wrap_new_keys(
    settings: Settings,
    runtime: Runtime,
    client: TestClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})
    use_settings(monkeypatch, settings)
    new_file = tmp_path / "new-master.key"
    assert casetrail(["keys", "rotate-master", "--new-key-file", str(new_file)]) == 0
    new_master = MasterKey.from_bytes(base64.b64decode(new_file.read_text()))

    # The server that was running all along still holds the old master key.
    refused = client.post(
        "/v1/cases/c-2/events", json={"events": [opened(), registered(party="p-2")]}
    )

    assert refused.status_code == 503
    assert refused.json()["type"] == "/problems/master-key-rotated"
    assert "restart with the new key" in refused.json()["detail"]
    assert client.get("/v1/cases/c-2/events").status_code == 404
    wrapped_under = runtime.ledger.db.query("SELECT DISTINCT master_key_id FROM party_keys")
    assert wrapped_under == [{"master_key_id": new_master.key_id}]
    with pytest.raises(MasterKeyRotated, match="restart with the new key"):
        Runtime(settings, start_followers=False)

    with Runtime(replace(settings, master_key_path=str(new_file))) as again:
        token, _ = again.api_keys.create("admin")
        from api.app import create_app

        with TestClient(create_app(again), headers={"Authorization": f"Bearer {token}"}) as c:
            appended = c.post(
                "/v1/cases/c-2/events", json={"events": [opened(), registered(party="p-2")]}
            )
            old_party = reveal(c, {"X-Purpose": "check after rotation"})
            new_party = reveal(c, {"X-Purpose": "check after rotation"}, "c-2")
    assert appended.status_code == 201
    assert values(old_party)[(2, "name")] == (NAME, "revealed")
    assert values(new_party)[(2, "name")] == (NAME, "revealed")


def test_each_agency_seals_a_party_under_its_own_key_and_erasure_reaches_all(
    client: TestClient, compliance: dict[str, str]
) -> None:
    client.post("/v1/cases/c-a/events", json={"events": [opened(), registered()]})
    # agency-b registers the same person, under a retention clock of its own.
    client.post(
        "/v1/cases/c-b/events",
        json={
            "events": [
                opened(agency="agency-b"),
                as_agency_b(registered(name="Zhou Other")),
                as_agency_b(brokerage_contract(now_at())),
            ]
        },
    )
    a_name = case_events(client, "c-a")[1]["payload"]["name"]
    b_name = case_events(client, "c-b")[1]["payload"]["name"]
    assert a_name["key_id"] != b_name["key_id"]

    # Erasure named to agency-a stays there: agency-b's data, records and clock untouched.
    answer = erase(client, agency="agency-a")
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "executed"
    assert answer.json()["cases"] == ["c-a"]
    assert values(reveal(client, compliance, "c-a"))[(2, "name")] == ("erased", "erased")
    assert values(reveal(client, compliance, "c-b"))[(2, "name")] == ("Zhou Other", "revealed")
    assert not [e for e in case_events(client, "c-b") if e["type"].startswith("erasure.")]

    # Unnamed, the request is the person's, everywhere: agency-b's clock still runs.
    everywhere = client.post("/v1/parties/p-1/erasure", json={"reason": "request"})
    assert everywhere.status_code == 200, everywhere.text
    assert everywhere.json()["outcome"] == "restricted"
    assert everywhere.json()["cases"] == ["c-a", "c-b"]
    assert [e["type"] for e in case_events(client, "c-b")].count("erasure.restricted") == 1


def test_a_backdated_contract_does_not_make_data_erasable_early(client: TestClient) -> None:
    client.post(
        "/v1/cases/c-1/events",
        json={"events": [opened(), registered(), brokerage_contract("2001-03-05T10:00:00+08:00")]},
    )
    recorded = parse_recorded_at(case_events(client, "c-1")[2]["recorded_at"])
    five_years = parse_duration("P5Y")
    assert five_years is not None

    answer = erase(client).json()

    assert answer["outcome"] == "restricted"
    assert answer["until"] == five_years.after(recorded).date().isoformat()


def test_a_record_dated_at_the_end_of_time_neither_overflows_nor_unblocks_erasure(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A ledger written before occurred_at was bounded may hold such a date.
    monkeypatch.setattr(Writer, "_check_occurred_at", lambda *args: None, raising=False)
    client.post(
        "/v1/cases/c-1/events",
        json={"events": [opened(), registered(), brokerage_contract("9999-12-31T23:59:59-05:00")]},
    )
    monkeypatch.undo()

    attribution = client.get("/v1/cases/c-1/attribution")
    answer = erase(client)

    assert attribution.status_code == 200, attribution.text
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "restricted"
    assert answer.json()["until"] == "9999-12-31"


def test_erasing_an_unknown_party_is_404_naming_it(client: TestClient) -> None:
    client.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})

    unknown = erase(client, party="p-404")
    elsewhere = erase(client, agency="agency-z")

    for response, party in ((unknown, "p-404"), (elsewhere, "p-1")):
        assert response.status_code == 404, response.text
        assert response.json()["type"] == "/problems/party-not-found"
        assert response.json()["pointer"] == "/path/party_id"
        assert party in response.json()["detail"]


def test_erasure_reasons_and_purposes_are_bounded_and_documented_as_free_of_personal_data(
    client: TestClient,
) -> None:
    client.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})

    long_reason = erase(client, reason="r" * 501)
    long_purpose = client.get(
        "/v1/cases/c-1/events?reveal=personal", headers={"X-Purpose": "p" * 501}
    )

    assert long_reason.status_code == 422 and long_reason.json()["pointer"] == "/reason"
    assert long_purpose.status_code == 400
    assert long_purpose.json()["pointer"] == "/headers/X-Purpose"
    assert [e["type"] for e in case_events(client, "c-1")] == ["case.opened", "party.registered"]
    paths = client.get("/openapi.json").json()["paths"]
    erasure = paths["/v1/parties/{party_id}/erasure"]["post"]
    reason = erasure["requestBody"]["content"]["application/json"]["schema"]["properties"]
    purpose = [
        p
        for p in paths["/v1/cases/{case_id}/events"]["get"]["parameters"]
        if p["name"] == "X-Purpose"
    ]
    assert (
        reason["reason"]["maxLength"] == 500
        and "no personal data" in reason["reason"]["description"]
    )
    assert "must not contain personal data" in erasure["description"]
    assert "must not contain personal data" in purpose[0]["description"]
    assert [p for p in erasure["parameters"] if p["name"] == "agency"][0]["required"] is False


def test_an_executed_erasure_leaves_no_copy_of_the_wrapped_key_in_the_database(
    runtime: Runtime, settings: Settings, client: TestClient
) -> None:
    client.post("/v1/cases/c-1/events", json={"events": [opened(), registered()]})
    row = runtime.ledger.db.query_one("SELECT wrapped FROM party_keys")
    assert row is not None
    wrapped = bytes(row["wrapped"])

    assert erase(client).json()["outcome"] == "executed"

    stored = database_pages(runtime, settings, "party_keys")
    pieces = [wrapped[start : start + 12] for start in range(0, len(wrapped) - 12, 4)]
    assert not [piece for piece in pieces if piece in stored]


def database_pages(runtime: Runtime, settings: Settings, table: str) -> bytes:
    """The raw bytes the database holds: the SQLite file and its WAL, or the PostgreSQL
    table's heap pages, dead row versions included."""
    if runtime.ledger.target.is_sqlite:
        folder = Path(settings.database.path).parent
        return b"".join(path.read_bytes() for path in folder.glob("casetrail.sqlite*"))
    import psycopg

    try:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
            size = conn.execute(f"SELECT pg_relation_size('{table}') / 8192").fetchone()
            assert size is not None
            pages = [
                conn.execute("SELECT get_raw_page(%s, %s)", [table, page]).fetchone()
                for page in range(int(size[0]))
            ]
            return b"".join(bytes(page[0]) for page in pages if page is not None)
    except psycopg.errors.InsufficientPrivilege:
        pytest.skip("reading raw pages needs pageinspect and a superuser")


# -- the body, at the socket ------------------------------------------------------------


def raw_request(port: int, head: bytes, body_chunks: list[bytes], pause: float = 0.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            try:
                sock.sendall(chunk)
            except OSError:
                break
            time.sleep(pause)
        sock.settimeout(30)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


def head(port: int, token: str, length: int) -> bytes:
    return (
        f"POST /v1/cases/slow/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_ten_mebibyte_body_is_refused_before_it_is_read(
    live_server: LiveServer, admin_token: str
) -> None:
    answer = raw_request(
        live_server.port, head(live_server.port, admin_token, 10 * 1024 * 1024), []
    )

    assert answer.startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_body_sent_a_byte_a_second_times_out_and_frees_the_worker(
    settings: Settings, tmp_path: Path
) -> None:
    with Runtime(replace(settings, body_timeout_seconds=1.5)) as runtime:
        token, _ = runtime.api_keys.create("admin")
        server = LiveServer(runtime)
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
                started = time.monotonic()
                sock.sendall(head(server.port, token, 200) + b"{")  # then nothing more
                answer = sock.recv(65536)
                elapsed = time.monotonic() - started
            import httpx

            health = httpx.get(f"{server.url}/healthz", timeout=5)
        finally:
            server.stop()
    assert answer.startswith(b"HTTP/1.1 408")
    assert elapsed < 6
    assert health.status_code == 200
