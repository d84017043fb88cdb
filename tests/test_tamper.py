"""Tampering with stored events directly in the database is found and named, never served."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from domain.case import case_stream_id
from domain.errors import ChainBroken
from domain.settings import Settings
from projections.runtime import Runtime
from scripts.cli import main as casetrail
from tests.conftest import note, opened


def stored_table(runtime: Runtime) -> str:
    return str(runtime.ledger.recorder.events_table_name)  # type: ignore[attr-defined]


def stream_key(runtime: Runtime, case_id: str) -> object:
    stream = case_stream_id(case_id)
    return stream.hex if runtime.ledger.target.is_sqlite else stream


def stored_state(runtime: Runtime, case_id: str, seq: int) -> bytes:
    row = runtime.ledger.db.query_one(
        f"SELECT state FROM {stored_table(runtime)} WHERE originator_id = ? "
        "AND originator_version = ?",
        [stream_key(runtime, case_id), seq],
    )
    assert row is not None
    return bytes(row["state"])


def rewrite(runtime: Runtime, case_id: str, seq: int, state: bytes) -> None:
    with runtime.ledger.db.transaction() as cursor:
        cursor.execute(
            f"UPDATE {stored_table(runtime)} SET state = ? WHERE originator_id = ? "
            "AND originator_version = ?",
            [state, stream_key(runtime, case_id), seq],
        )
    runtime.writer.forget()


def delete(runtime: Runtime, case_id: str, seq: int) -> None:
    with runtime.ledger.db.transaction() as cursor:
        cursor.execute(
            f"DELETE FROM {stored_table(runtime)} WHERE originator_id = ? "
            "AND originator_version = ?",
            [stream_key(runtime, case_id), seq],
        )
    runtime.writer.forget()


def flip_one_byte(runtime: Runtime, case_id: str, seq: int) -> None:
    state = stored_state(runtime, case_id, seq)
    index = state.index(b"seller") + 2
    rewrite(runtime, case_id, seq, state[:index] + b"X" + state[index + 1 :])


def swap(runtime: Runtime, case_id: str, first: int, second: int) -> None:
    a, b = stored_state(runtime, case_id, first), stored_state(runtime, case_id, second)
    rewrite(runtime, case_id, first, b)
    rewrite(runtime, case_id, second, a)


TAMPERINGS: dict[str, tuple[Callable[[Runtime, str], None], int, str]] = {
    "one byte of a payload": (lambda r, c: flip_one_byte(r, c, 3), 3, "does not match"),
    "one byte of the stored hash": (
        lambda r, c: rewrite(
            r, c, 2, stored_state(r, c, 2).replace(b'"hash":"', b'"hash":"f', 1)[:-1]
        ),
        2,
        "",
    ),
    "bytes that are no longer JSON": (
        lambda r, c: rewrite(r, c, 4, stored_state(r, c, 4)[:-3]),
        4,
        "not valid JSON",
    ),
    "an escape rewritten to an equivalent one": (
        lambda r, c: rewrite(r, c, 3, stored_state(r, c, 3).replace(b"called", b"c\\u0061lled", 1)),
        3,
        "canonical",
    ),
    "a deleted row": (lambda r, c: delete(r, c, 3), 3, "missing"),
    "two rows swapped": (lambda r, c: swap(r, c, 2, 3), 2, "claims seq 3"),
}


@pytest.fixture
def case_of_five(client: TestClient) -> str:
    body = {
        "events": [
            opened(),
            note("called the seller"),
            note("called the seller again"),
            note("met the seller"),
            note("sent the notice"),
        ]
    }
    assert client.post("/v1/cases/tampered/events", json=body).status_code == 201
    assert client.post("/v1/cases/untouched/events", json=opened()).status_code == 201
    return "tampered"


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_verify_endpoint_names_the_first_bad_seq(
    client: TestClient, runtime: Runtime, case_of_five: str, name: str
) -> None:
    tamper, bad_seq, reason = TAMPERINGS[name]
    tamper(runtime, case_of_five)

    verdict = client.get(f"/v1/cases/{case_of_five}/verify").json()

    assert verdict["ok"] is False
    assert verdict["first_bad_seq"] == bad_seq
    assert reason in verdict["reason"]
    assert client.get("/v1/cases/untouched/verify").json()["ok"] is True


def test_a_corrupt_opening_record_tells_other_agencies_nothing_and_stops_no_feed(
    client: TestClient, runtime: Runtime, case_of_five: str
) -> None:
    runtime.settle(timeout=10)
    rewrite(
        runtime,
        case_of_five,
        1,
        stored_state(runtime, case_of_five, 1).replace(b"prop-1", b"prop-X"),
    )
    runtime._agencies.clear()  # as after a restart: the opening record is read afresh
    rival, _ = runtime.api_keys.create("agent", name="b", agency="agency-b")
    as_rival = {"Authorization": f"Bearer {rival}"}

    foreign = client.get(f"/v1/cases/{case_of_five}", headers=as_rival)
    missing = client.get("/v1/cases/zz-none", headers=as_rival)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["detail"].replace(case_of_five, "?") == missing.json()["detail"].replace(
        "zz-none", "?"
    )

    assert client.get("/v1/feed", headers=as_rival).status_code == 200
    owner = client.get(f"/v1/cases/{case_of_five}/events")  # the admin: told it is broken
    assert owner.status_code == 500
    assert owner.json()["type"] == "/problems/chain-broken"


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_tampered_events_are_never_served_as_sound(
    client: TestClient, runtime: Runtime, case_of_five: str, name: str
) -> None:
    tamper, bad_seq, _ = TAMPERINGS[name]
    tamper(runtime, case_of_five)

    response = client.get(f"/v1/cases/{case_of_five}/events")

    assert response.status_code == 500
    problem = response.json()
    assert problem["type"] == "/problems/chain-broken"
    assert problem["case_id"] == case_of_five
    assert problem["seq"] == bad_seq


def test_events_before_the_damage_are_still_served(
    client: TestClient, runtime: Runtime, case_of_five: str
) -> None:
    flip_one_byte(runtime, case_of_five, 3)

    response = client.get(f"/v1/cases/{case_of_five}/events?limit=2")

    assert response.status_code == 200
    assert [e["seq"] for e in response.json()["events"]] == [1, 2]


def test_nothing_is_chained_onto_a_tampered_head(
    client: TestClient, runtime: Runtime, case_of_five: str
) -> None:
    state = stored_state(runtime, case_of_five, 5)
    rewrite(runtime, case_of_five, 5, state.replace(b"sent the notice", b"sent the letter"))

    response = client.post(f"/v1/cases/{case_of_five}/events", json=note("more"))

    assert response.status_code == 500
    assert response.json()["type"] == "/problems/integrity-failure"
    assert stored_state(runtime, case_of_five, 5).count(b"sent the letter") == 1


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_casetrail_verify_names_case_and_seq(
    settings: Settings,
    runtime: Runtime,
    client: TestClient,
    case_of_five: str,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tamper, bad_seq, _ = TAMPERINGS[name]
    tamper(runtime, case_of_five)
    use_settings(monkeypatch, settings)

    exit_code = casetrail(["verify"])

    out = capsys.readouterr()
    assert exit_code == 1
    assert f"FAIL {case_of_five} seq {bad_seq}:" in out.out
    assert "untouched" not in out.out


def test_casetrail_verify_passes_a_sound_ledger(
    settings: Settings,
    client: TestClient,
    case_of_five: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_settings(monkeypatch, settings)

    assert casetrail(["verify"]) == 0
    assert "all 2 cases verify" in capsys.readouterr().out


def use_settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("CASETRAIL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CASETRAIL_MASTER_KEY_PATH", settings.master_key_path)
    monkeypatch.setenv("CASETRAIL_SIGNING_KEY_PATH", settings.signing_key_path)
    assert Path(settings.master_key_path).exists()


# -- tampering that keeps every hash right: only the log and the writer's marks see it --


def forge_next(runtime: Runtime, case_id: str, **changes: object) -> None:
    """Insert a well-formed next record straight into the event table, as someone with
    write access to the database (but not the ledger's keys) could."""
    from domain.canonical import canonical_bytes
    from domain.envelope import envelope_hash, parse_stored

    last_seq = max(seq for seq, _ in runtime.iter_records(case_id))
    last = parse_stored(stored_state(runtime, case_id, last_seq), seq=last_seq)
    assert isinstance(last, dict)
    record = {key: value for key, value in last.items() if key != "hash"}
    record.update(
        seq=last_seq + 1,
        prev_hash=last["hash"],
        type="note.added",
        payload={"text": "nothing happened"},
        evidence=[],
    )
    record.update(changes)
    record["hash"] = envelope_hash(record)
    with runtime.ledger.db.transaction() as cursor:
        cursor.execute(
            f"INSERT INTO {stored_table(runtime)} (originator_id, originator_version, topic, "
            "state) VALUES (?, ?, ?, ?)",
            [
                stream_key(runtime, case_id),
                last_seq + 1,
                "casetrail.case.recorded.v1",
                canonical_bytes(record),
            ],
        )
    runtime.writer.forget()


def test_a_well_formed_event_written_into_the_database_is_refused_by_the_log(
    client: TestClient, runtime: Runtime, case_of_five: str
) -> None:
    runtime.seal_now()
    forge_next(runtime, case_of_five)

    verdict = client.get(f"/v1/cases/{case_of_five}/verify").json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] == 6
    assert "not recorded by this ledger's writer" in verdict["reason"]

    runtime.followers["transparency_log"].wait_for(runtime.head_position(), timeout=2)
    assert 6 not in {int(leaf["seq"]) for leaf in runtime.log.leaves_of_case(case_of_five)}

    from projections.audit import audit_ledger

    findings = audit_ledger(runtime).findings
    assert any(f.case_id == case_of_five and f.seq == 6 for f in findings), findings


def test_recorded_time_going_backwards_breaks_the_chain(
    client: TestClient, runtime: Runtime, case_of_five: str
) -> None:
    forge_next(runtime, case_of_five, recorded_at="2000-01-01T00:00:00.000000Z")

    verdict = client.get(f"/v1/cases/{case_of_five}/verify").json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] == 6
    assert "goes back in time" in verdict["reason"]


def test_a_rewrite_with_its_log_rows_rewritten_too_fails_against_the_signed_head(
    client: TestClient, runtime: Runtime, case_of_five: str
) -> None:
    from domain.canonical import canonical_bytes
    from domain.envelope import envelope_hash, parse_stored

    runtime.settle(timeout=10)
    runtime.seal_now()
    # Rewrite seq 4, re-chain seq 5, and make the log's leaf rows agree with the forgery.
    previous = None
    for seq in (4, 5):
        record = parse_stored(stored_state(runtime, case_of_five, seq), seq=seq)
        assert isinstance(record, dict)
        record = {key: value for key, value in record.items() if key != "hash"}
        if seq == 4:
            record["payload"] = {"text": "nothing happened"}
        else:
            record["prev_hash"] = previous
        record["hash"] = envelope_hash(record)
        previous = record["hash"]
        rewrite(runtime, case_of_five, seq, canonical_bytes(record))
        with runtime.ledger.db.transaction() as cursor:
            cursor.execute(
                "UPDATE log_leaves SET event_hash = ? WHERE case_id = ? AND seq = ?",
                [record["hash"], case_of_five, seq],
            )

    verdict = client.get(f"/v1/cases/{case_of_five}/verify").json()
    assert verdict["ok"] is False
    # Seq 4 was rewritten; its leaf row also spoils the proof of its sibling leaf, seq 3.
    assert verdict["first_bad_seq"] in (3, 4)
    assert "signed tree head" in verdict["reason"]


def test_deleting_the_last_events_with_their_log_rows_is_still_found(
    client: TestClient, runtime: Runtime, case_of_five: str
) -> None:
    runtime.settle(timeout=10)
    runtime.seal_now()
    delete(runtime, case_of_five, 5)
    with runtime.ledger.db.transaction() as cursor:
        cursor.execute("DELETE FROM log_leaves WHERE case_id = ? AND seq = ?", [case_of_five, 5])

    verdict = client.get(f"/v1/cases/{case_of_five}/verify").json()
    assert verdict["ok"] is False
    assert verdict["first_bad_seq"] in (4, 5)

    # Nor does anything present the shortened case as sound: no bundle (whose signed case
    # head would vouch that nothing was cut from the end), no replay.
    bundle = client.get(f"/v1/cases/{case_of_five}/bundle")
    assert bundle.status_code == 500, bundle.text
    assert bundle.json()["type"].endswith("/chain-broken")
    assert bundle.json()["seq"] in (4, 5)
    with pytest.raises(ChainBroken):
        runtime.verified_records(case_of_five)
