"""Routes about the service itself: health, catalogue, OpenAPI document, problem types."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.auth import READERS, optional_principal, require
from api.ledger_routes import json_response, runtime_of
from api.openapi import build_openapi
from api.problems import KINDS, problem_response, problem_type


async def index(request: Request) -> Response:
    return json_response(
        {
            "service": "casetrail",
            "description": "tamper-evident ledger of real-estate brokerage cases",
            "openapi": "/openapi.json",
            "catalogue": "/v1/catalogue",
            "health": "/healthz",
            "desk": "/desk/",
        }
    )


DEGRADED_BEHIND = 10_000
"""A view more feed positions behind the head than this is reported as degraded."""


async def healthz(request: Request) -> Response:
    runtime = runtime_of(request)
    # Public, so it says whether a view is failing; why (which may name a case) only to a
    # key that may read every agency.
    caller = optional_principal(request)
    detailed = caller is not None and caller.agency is None

    def check() -> dict[str, Any]:
        head = runtime.head_position()
        views: dict[str, dict[str, Any]] = {}
        troubled = []
        for name, follower in runtime.followers.items():
            position = follower.view.position()
            behind = max(0, head - position)
            views[name] = {
                "position": position,
                "behind": behind,
                "failing": follower.last_error is not None,
            }
            if detailed:
                views[name]["last_error"] = follower.last_error
            if follower.last_error is not None or behind > DEGRADED_BEHIND:
                troubled.append(name)
        return {
            "status": "degraded" if troubled else "ok",
            "troubled_views": troubled,
            "signing_key": runtime.signing_key is not None,
            "database": runtime.ledger.target.backend,
            "head": head,
            "views": views,
        }

    try:
        body = await run_in_threadpool(check)
    except Exception:
        return problem_response("unavailable", "the database does not answer")
    return json_response(body)


async def catalogue(request: Request) -> Response:
    require(request, READERS, "read the catalogue")
    return Response(
        _catalogue_bytes(request.app.state.runtime.catalogue.version), media_type="application/json"
    )


@cache
def _catalogue_bytes(version: int) -> bytes:
    from domain.catalogue import load_catalogue

    return orjson.dumps(load_catalogue(version).document())


async def openapi_document(request: Request) -> Response:
    return Response(_openapi_bytes(), media_type="application/json")


@cache
def _openapi_bytes() -> bytes:
    return orjson.dumps(build_openapi())


async def problem_page(request: Request) -> Response:
    kind = KINDS.get(str(request.path_params["kind"]))
    if kind is None:
        return problem_response("not-found", "no such problem type; see /openapi.json")
    return json_response(
        {
            "type": problem_type(kind.kind),
            "title": kind.title,
            "status": kind.status,
            "explanation": kind.explanation,
        }
    )
