"""The service's own documents: OpenAPI, catalogue, health, problem types."""

from __future__ import annotations

import re
from types import SimpleNamespace

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.routing import Route
from starlette.testclient import TestClient

from api.app import routes
from api.problems import KINDS
from projections.runtime import Runtime
from tests.test_scenario_verdicts import SCENARIOS, read_scenario, scenario_verdicts


def test_openapi_document_is_valid_openapi_3_1(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_and_method_is_documented(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    for route in routes():
        if not isinstance(route, Route) or route.path.startswith("/desk"):
            continue
        path = route.path
        assert path in document["paths"] or path == "/", f"{path} is not documented"
        if path == "/":
            continue
        for method in route.methods or ():
            if method == "HEAD":
                continue
            assert method.lower() in document["paths"][path], f"{method} {path} undocumented"


def test_every_documented_problem_status_has_a_problem_kind(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    statuses = {kind.status for kind in KINDS.values()}

    for operations in document["paths"].values():
        for operation in operations.values():
            for status in operation["responses"]:
                if status.startswith(("4", "5")):
                    assert int(status) in statuses


def test_problem_types_explain_themselves(client: TestClient) -> None:
    for kind in KINDS:
        page = client.get(f"/problems/{kind}").json()
        assert page["type"] == f"/problems/{kind}"
        assert page["explanation"]


def test_catalogue_lists_types_with_schemas_and_personal_fields(client: TestClient) -> None:
    catalogue = client.get("/v1/catalogue").json()

    registered = catalogue["types"]["party.registered"]
    assert set(registered["personal_fields"]) >= {"name", "phone", "id_number"}
    assert registered["payload_schema"]["required"][:2] == ["party_id", "party_role"]
    assert catalogue["types"]["case.opened"]["labels"]["zh"]
    assert len(catalogue["types"]) >= 60


def test_healthz_needs_no_key_and_reports_views(client: TestClient) -> None:
    response = client.get("/healthz", headers={"Authorization": ""})

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert "case_state" in response.json()["views"]


def test_healthz_says_why_a_view_fails_only_to_an_unscoped_key(
    client: TestClient, runtime: Runtime
) -> None:
    real = runtime.followers["transparency_log"]
    # A stand-in that keeps failing (the real follower clears its error on its next step).
    runtime.followers["transparency_log"] = SimpleNamespace(  # type: ignore[assignment]
        view=real.view, last_error="SealerStopped: case 'secret-case' …"
    )
    agent, _ = runtime.api_keys.create("agent", agency="agency-b")
    try:
        public = client.get("/healthz", headers={"Authorization": ""}).json()
        scoped = client.get("/healthz", headers={"Authorization": f"Bearer {agent}"}).json()
        admin = client.get("/healthz").json()
    finally:
        runtime.followers["transparency_log"] = real

    assert public["status"] == scoped["status"] == "degraded"
    assert public["views"]["transparency_log"]["failing"] is True
    assert "secret-case" not in str(public) and "secret-case" not in str(scoped)
    assert "secret-case" in admin["views"]["transparency_log"]["last_error"]


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", client.get("/healthz").headers["x-request-id"])
    assert client.get("/v1/nowhere").headers["x-request-id"]


def test_every_scenario_verdict_is_exactly_what_the_openapi_document_says(
    client: TestClient,
) -> None:
    """The Verdict schema forbids fields it does not name, so a field added to verdicts
    without documenting it (as rule, trigger and policy once were) fails here."""
    document = client.get("/openapi.json").json()
    schema = {"$ref": "#/components/schemas/Verdict", "components": document["components"]}
    validator = Draft202012Validator(schema)

    checked = 0
    for path in SCENARIOS:
        for verdicts in scenario_verdicts(read_scenario(path)).values():
            for verdict in verdicts:
                errors = [error.message for error in validator.iter_errors(verdict.as_json())]
                assert not errors, (path.name, verdict.obligation, errors)
                checked += 1
    assert checked > 300
