"""Appending over HTTP: the chain, batches, optimistic concurrency and idempotency."""

from __future__ import annotations

import concurrent.futures

import httpx
from starlette.testclient import TestClient

from api.app import create_app
from domain.envelope import GENESIS_HASH, envelope_hash
from domain.settings import Settings
from projections.runtime import Runtime
from tests.conftest import event, note, opened


def test_first_event_opens_the_case_and_chains_from_zeros(client: TestClient) -> None:
    response = client.post("/v1/cases/case-1/events", json=opened())

    assert response.status_code == 201
    body = response.json()
    assert body["case_id"] == "case-1"
    (first,) = body["events"]
    assert first["seq"] == 1
    assert first["prev_hash"] == GENESIS_HASH
    assert first["position"] >= 1
    assert first["leaf_index"] is None
    assert response.headers["location"] == "/v1/cases/case-1/events?after_seq=0"


def test_each_event_links_to_the_hash_of_the_one_before(client: TestClient) -> None:
    first = client.post("/v1/cases/case-1/events", json=opened()).json()["events"][0]
    second = client.post("/v1/cases/case-1/events", json=note()).json()["events"][0]

    assert second["seq"] == 2
    assert second["prev_hash"] == first["hash"]
    assert second["position"] > first["position"]


def test_hash_is_recomputable_from_the_served_record(client: TestClient) -> None:
    client.post("/v1/cases/case-1/events", json=opened())
    client.post("/v1/cases/case-1/events", json=note())

    records = client.get("/v1/cases/case-1/events").json()["events"]

    for record in records:
        envelope = {name: value for name, value in record.items() if name != "hash"}
        assert envelope_hash(envelope) == record["hash"]
    assert records[1]["prev_hash"] == records[0]["hash"]


def test_a_batch_is_atomic_and_in_order(client: TestClient) -> None:
    body = {"events": [opened(), note("one"), note("two")], "expected_seq": 0}

    response = client.post("/v1/cases/case-1/events", json=body)

    assert response.status_code == 201
    assert [e["seq"] for e in response.json()["events"]] == [1, 2, 3]


def test_an_invalid_event_in_a_batch_records_none_of_it(client: TestClient) -> None:
    body = {"events": [opened(), note("one"), event("note.added", {})]}

    response = client.post("/v1/cases/case-1/events", json=body)

    assert response.status_code == 422
    assert response.json()["pointer"] == "/events/2/payload/text"
    assert client.get("/v1/cases/case-1/events").status_code == 404


def test_a_case_comes_into_existence_only_with_case_opened(client: TestClient) -> None:
    response = client.post("/v1/cases/case-1/events", json=note())

    # The same answer as for another agency's case: no way to probe which ids exist.
    assert response.status_code == 404
    assert response.json()["type"] == "/problems/case-not-found"
    assert response.json()["pointer"] == "/path/case_id"
    assert "case.opened" in response.json()["detail"]


def test_a_case_cannot_be_opened_twice(client: TestClient) -> None:
    client.post("/v1/cases/case-1/events", json=opened())

    response = client.post("/v1/cases/case-1/events", json={"events": [note(), opened()]})

    assert response.status_code == 422
    assert response.json()["pointer"] == "/events/1/type"


def test_stale_expected_seq_is_a_conflict_with_the_current_seq(client: TestClient) -> None:
    client.post("/v1/cases/case-1/events", json={"events": [opened(), note()]})

    response = client.post("/v1/cases/case-1/events", json={"events": [note()], "expected_seq": 1})

    assert response.status_code == 409
    problem = response.json()
    assert problem["type"] == "/problems/seq-conflict"
    assert problem["current_seq"] == 2
    assert response.headers["content-type"] == "application/problem+json"


def test_expected_seq_zero_means_the_case_must_not_exist(client: TestClient) -> None:
    client.post("/v1/cases/case-1/events", json=opened())

    response = client.post("/v1/cases/case-1/events", json={"events": [note()], "expected_seq": 0})

    assert response.status_code == 409
    assert response.json()["current_seq"] == 1


def test_twenty_parallel_appends_with_the_same_expected_seq(http: httpx.Client) -> None:
    http.post("/v1/cases/race/events", json={"events": [opened(), note()]})
    head = http.get("/v1/cases/race/events").json()["events"][-1]["hash"]

    def append(index: int) -> httpx.Response:
        return http.post(
            "/v1/cases/race/events",
            json={"events": [note(f"writer {index}")], "expected_seq": 2},
            headers={"Idempotency-Key": f"race-{index}"},
        )

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(append, range(20)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 19
    records = http.get("/v1/cases/race/events").json()["events"]
    assert len(records) == 3
    assert records[2]["prev_hash"] == head
    assert all(r.json()["current_seq"] == 3 for r in responses if r.status_code == 409)


def test_ten_parallel_requests_with_one_fresh_key_append_once(http: httpx.Client) -> None:
    http.post("/v1/cases/dup/events", json=opened())

    def append(_: int) -> httpx.Response:
        return http.post(
            "/v1/cases/dup/events", json=note("once"), headers={"Idempotency-Key": "only-once"}
        )

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(append, range(10)))

    assert {response.status_code for response in responses} == {201}
    assert len({response.content for response in responses}) == 1
    assert len(http.get("/v1/cases/dup/events").json()["events"]) == 2


def test_a_retry_with_the_same_key_returns_the_original_and_appends_nothing(
    client: TestClient,
) -> None:
    client.post("/v1/cases/case-1/events", json=opened())
    first = client.post(
        "/v1/cases/case-1/events",
        json={"events": [note()], "expected_seq": 1},
        headers={"Idempotency-Key": "k-1"},
    )

    # The client bumped expected_seq after its first success, then retried.
    retry = client.post(
        "/v1/cases/case-1/events",
        json={"events": [note()], "expected_seq": 2},
        headers={"Idempotency-Key": "k-1"},
    )

    assert retry.status_code == 201
    assert retry.content == first.content
    assert retry.headers["idempotent-replayed"] == "true"
    assert len(client.get("/v1/cases/case-1/events").json()["events"]) == 2


def test_the_same_key_with_another_body_or_case_is_refused(client: TestClient) -> None:
    client.post("/v1/cases/case-1/events", json=opened())
    client.post("/v1/cases/case-2/events", json=opened())
    client.post("/v1/cases/case-1/events", json=note("a"), headers={"Idempotency-Key": "k-2"})

    other_body = client.post(
        "/v1/cases/case-1/events", json=note("b"), headers={"Idempotency-Key": "k-2"}
    )
    other_case = client.post(
        "/v1/cases/case-2/events", json=note("a"), headers={"Idempotency-Key": "k-2"}
    )

    assert other_body.status_code == 422
    assert other_body.json()["type"] == "/problems/idempotency-key-reused"
    assert other_case.status_code == 422
    assert len(client.get("/v1/cases/case-2/events").json()["events"]) == 1


def test_idempotency_survives_a_restart(settings: Settings) -> None:
    with Runtime(settings) as first_run:
        token, _ = first_run.api_keys.create("integrator")
        with TestClient(create_app(first_run), headers={"Authorization": f"Bearer {token}"}) as c:
            c.post("/v1/cases/case-1/events", json=opened())
            original = c.post(
                "/v1/cases/case-1/events", json=note(), headers={"Idempotency-Key": "durable"}
            )

    with (
        Runtime(settings) as second_run,
        TestClient(create_app(second_run), headers={"Authorization": f"Bearer {token}"}) as c,
    ):
        retry = c.post(
            "/v1/cases/case-1/events", json=note(), headers={"Idempotency-Key": "durable"}
        )
        assert retry.status_code == 201
        assert retry.content == original.content
        assert len(c.get("/v1/cases/case-1/events").json()["events"]) == 2


def test_occurred_at_is_hashed_exactly_as_sent(client: TestClient) -> None:
    client.post("/v1/cases/case-1/events", json=opened())
    client.post(
        "/v1/cases/case-1/events",
        json=event("note.added", {"text": "a"}, occurred_at="2024-03-01T10:00:00+08:00"),
    )
    client.post(
        "/v1/cases/case-1/events",
        json=event("note.added", {"text": "a"}, occurred_at="2024-03-01T02:00:00Z"),
    )

    records = client.get("/v1/cases/case-1/events").json()["events"]

    assert records[1]["occurred_at"] == "2024-03-01T10:00:00+08:00"
    assert records[2]["occurred_at"] == "2024-03-01T02:00:00Z"
    for record in records:
        envelope = {name: value for name, value in record.items() if name != "hash"}
        assert envelope_hash(envelope) == record["hash"]
