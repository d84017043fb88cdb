"""Responsibility attribution over HTTP: a case's verdicts as of any moment, and reports."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api import params
from api.auth import READERS, REPORT_READERS, require
from api.ledger_routes import json_response, runtime_of
from domain.envelope import format_recorded_at
from domain.errors import InvalidParameter
from domain.policy import available_policies, load_policy
from projections.attribution import (
    ReportFilter,
    attribution_report,
    report_breaches_csv,
    report_counts_csv,
)

STATUSES = ("met", "breached", "pending", "not_applicable", "waived")
SEVERITIES = ("low", "medium", "high", "critical")


async def case_attribution(request: Request) -> Response:
    runtime = runtime_of(request)
    caller = require(request, READERS, "read attribution")
    case_id = params.case_id(request)
    as_of = params.moment(request, "as_of")
    policy_id = params.choice(request, "policy", available_policies())

    def evaluate() -> dict[str, Any]:
        runtime.visible_case(case_id, caller)
        return runtime.attribution_of(case_id, as_of=as_of, policy_id=policy_id)

    return json_response(await run_in_threadpool(evaluate))


def report_filter(request: Request, caller_agency: str | None) -> ReportFilter:
    agency = params.text(request, "agency")
    if caller_agency is not None:
        if agency is not None and agency != caller_agency:
            raise InvalidParameter(
                "this key reports on its own agency only", pointer="/query/agency"
            )
        agency = caller_agency
    start, end = params.moment(request, "from"), params.moment(request, "to")
    if start is not None and end is not None and start >= end:
        raise InvalidParameter("from must be before to", pointer="/query/from")
    return ReportFilter(
        agency=agency,
        agent=params.text(request, "agent"),
        start=format_recorded_at(start) if start else None,
        end=format_recorded_at(end) if end else None,
        status=params.choice(request, "status", ("met", "breached")),
        severity=params.choice(request, "severity", SEVERITIES),
    )


async def attribution_report_route(request: Request) -> Response:
    runtime = runtime_of(request)
    caller = require(request, REPORT_READERS, "read reports")
    selection = report_filter(request, caller.agency)
    output = params.choice(request, "format", ("json", "csv"), default="json")
    part = params.choice(request, "part", ("counts", "breaches"), default="counts")

    def build() -> dict[str, Any]:
        runtime.settle(timeout=5.0)
        return attribution_report(runtime.ledger, runtime.policy, selection)

    report = await run_in_threadpool(build)
    if output == "csv":
        text = report_counts_csv(report) if part == "counts" else report_breaches_csv(report)
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="attribution-{part}.csv"'},
        )
    return json_response(report)


async def policies(request: Request) -> Response:
    require(request, READERS, "read policies")
    active = runtime_of(request).policy.id

    def describe() -> list[dict[str, Any]]:
        described = []
        for policy_id in available_policies():
            policy = load_policy(policy_id)
            described.append(
                {
                    **policy.ref(),
                    "title": {"en": policy.title.en, "zh": policy.title.zh},
                    "jurisdiction": policy.jurisdiction,
                    "active": policy_id == active,
                    "obligations": [
                        {
                            "id": obligation.id,
                            "severity": obligation.severity,
                            "basis": obligation.basis,
                            "source": obligation.source,
                            "description": {
                                "en": obligation.description.en,
                                "zh": obligation.description.zh,
                            },
                        }
                        for obligation in policy.obligations
                    ],
                }
            )
        return described

    return json_response({"policies": await run_in_threadpool(describe)})
