"""Loading scenario files (the format of examples/cases/README.md) into a ledger."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.errors import CasetrailError
from domain.validation import check_json_safe, request_fingerprint
from projections.runtime import Runtime
from projections.writer import AppendCommand, AppendResult

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "cases"
LOADER_KEY_ID = "demo-loader"


@dataclass(frozen=True)
class Scenario:
    path: Path
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.data.get("id", self.path.stem))

    @property
    def cases(self) -> dict[str, list[dict[str, Any]]]:
        cases: dict[str, list[dict[str, Any]]] = self.data["cases"]
        return cases


def read_scenarios(paths: list[Path] | None = None) -> list[Scenario]:
    files = paths if paths is not None else sorted(EXAMPLES.glob("*.json"))
    return [Scenario(path, json.loads(path.read_text(encoding="utf-8"))) for path in files]


def load_scenario(
    runtime: Runtime, scenario: Scenario, *, recorded_by: str = LOADER_KEY_ID
) -> dict[str, list[AppendResult]]:
    """Append every event of a scenario, one request per event, each with its own
    idempotency key: loading twice appends nothing the second time, and every event gets
    its own moment of ledger time (so an as-of view can stop between any two events).
    """
    results: dict[str, list[AppendResult]] = {}
    for case_id, events in scenario.cases.items():
        results[case_id] = []
        for index, event in enumerate(events):
            pointer = f"/cases/{case_id}/{index}"
            check_json_safe(event, pointer)
            draft = runtime.validator.event(event, pointer)
            command = AppendCommand(
                case_id=case_id,
                events=[draft],
                recorded_by=recorded_by,
                idempotency_scope=recorded_by,
                idempotency_key=f"scenario:{scenario.id}:{case_id}:{index}",
                fingerprint=request_fingerprint(
                    runtime.request_secret, "POST", f"/v1/cases/{case_id}/events", [draft]
                ),
                single_event_body=True,
            )
            try:
                results[case_id].append(runtime.append(command))
            except CasetrailError as error:
                raise CasetrailError(
                    f"{scenario.path.name}: case {case_id} event {index} ({event.get('type')}) "
                    f"was refused: {error.message}"
                ) from error
    return results


@dataclass(frozen=True)
class Outcome:
    """One expectation of a scenario, and whether the verdicts bear it out."""

    scenario: str
    kind: str  # "expect" or "expect_not"
    expectation: dict[str, Any]
    passed: bool
    found: list[dict[str, Any]]

    def line(self) -> str:
        fields = " ".join(
            f"{key}={value}" for key, value in self.expectation.items() if key != "case_id"
        )
        verb = "present" if self.kind == "expect" else "absent"
        mark = "PASS" if self.passed else "FAIL"
        text = f"{mark} {self.scenario} {self.expectation['case_id']}: {fields} ({verb})"
        if not self.passed:
            if self.kind == "expect":
                statuses = (
                    ", ".join(f"{v['status']} (performer {v['performer']})" for v in self.found)
                    or "no verdict"
                )
                text += f"; found {statuses}"
            else:
                text += f"; found: {self.found[0].get('reason', '')}"
        return text


def matches(verdict: dict[str, Any], expectation: dict[str, Any]) -> bool:
    """An expectation holds of a verdict when every field it names has that value."""
    return all(verdict.get(key) == value for key, value in expectation.items() if key != "case_id")


def check_expectations(
    scenario: Scenario, verdicts: dict[str, list[dict[str, Any]]]
) -> list[Outcome]:
    outcomes = []
    for kind in ("expect", "expect_not"):
        for expectation in scenario.data.get(kind, []):
            case_verdicts = verdicts.get(expectation["case_id"], [])
            hits = [v for v in case_verdicts if matches(v, expectation)]
            same_obligation = [
                v for v in case_verdicts if v["obligation"] == expectation.get("obligation")
            ]
            passed = bool(hits) if kind == "expect" else not hits
            found = same_obligation if kind == "expect" else hits
            outcomes.append(Outcome(scenario.id, kind, expectation, passed, found))
    return outcomes
