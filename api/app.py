"""The casetrail HTTP application: routes, error handling and request logging.

`create_app(runtime)` serves an existing runtime (tests, the demo); `create_app()` with
no runtime opens one from the environment when the server starts and closes it on exit.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import attribution_routes, ledger_routes, log_routes, meta_routes
from api.access_log import AccessLog
from api.desk.pages import Desk, desk_routes
from api.problems import problem_response, response_for_error
from domain.errors import CasetrailError
from domain.settings import Settings
from projections.runtime import Runtime

error_log = logging.getLogger("casetrail.errors")


def routes() -> list[BaseRoute]:
    # The router tries routes in order: the append path, the hottest, comes first.
    return [
        Route("/v1/cases/{case_id}/events", ledger_routes.events, methods=["GET", "POST"]),
        Route("/v1/cases/{case_id}", ledger_routes.read_case_state, methods=["GET"]),
        Route("/v1/cases/{case_id}/verify", ledger_routes.verify_case, methods=["GET"]),
        Route("/v1/cases/{case_id}/bundle", log_routes.case_bundle, methods=["GET"]),
        Route(
            "/v1/cases/{case_id}/attribution",
            attribution_routes.case_attribution,
            methods=["GET"],
        ),
        Route(
            "/v1/reports/attribution",
            attribution_routes.attribution_report_route,
            methods=["GET"],
        ),
        Route("/v1/policies", attribution_routes.policies, methods=["GET"]),
        Route("/v1/parties/{party_id}/erasure", ledger_routes.erase_party, methods=["POST"]),
        Route("/v1/cases", ledger_routes.list_cases, methods=["GET"]),
        Route("/v1/feed", ledger_routes.read_feed, methods=["GET"]),
        Route("/v1/log/tree-head", log_routes.tree_head, methods=["GET"]),
        Route("/v1/log/tree-heads", log_routes.tree_heads, methods=["GET"]),
        Route("/v1/log/public-key", log_routes.public_key, methods=["GET"]),
        Route("/v1/log/inclusion", log_routes.inclusion, methods=["GET"]),
        Route("/v1/log/consistency", log_routes.consistency, methods=["GET"]),
        Route("/v1/catalogue", meta_routes.catalogue, methods=["GET"]),
        Route("/healthz", meta_routes.healthz, methods=["GET"]),
        Route("/openapi.json", meta_routes.openapi_document, methods=["GET"]),
        Route("/problems/{kind}", meta_routes.problem_page, methods=["GET"]),
        Route("/", meta_routes.index, methods=["GET"]),
        Mount("/desk", Desk()),
    ]


def create_app(runtime: Runtime | None = None, settings: Settings | None = None) -> Starlette:
    owns_runtime = runtime is None

    access_log = AccessLog()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if owns_runtime:
            app.state.runtime = Runtime(settings or Settings.from_env())
        access_log.start()
        yield
        access_log.stop()
        if owns_runtime:
            app.state.runtime.close()

    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={
            CasetrailError: _casetrail_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )
    # No redirect from /path/ to /path: it would be built from the client's Host header.
    app.router.redirect_slashes = False
    if runtime is not None:
        app.state.runtime = runtime
    app.state.access_log = access_log
    app.add_middleware(RequestLog, templates=_route_templates(app.routes), access_log=access_log)
    return app


async def _casetrail_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, CasetrailError)
    return response_for_error(error)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        return problem_response(
            "method-not-allowed",
            f"{request.method} is not allowed here; use {allowed or 'another method'}",
            headers=dict(error.headers or {}),
        )
    if error.status_code == 404:
        return problem_response("not-found", f"nothing at {request.url.path}; see /openapi.json")
    return problem_response("invalid-parameter", str(error.detail), status=error.status_code)


async def _unexpected_error(request: Request, error: Exception) -> Response:
    request_id = request.scope.get("casetrail.request_id", "")
    error_log.exception("unexpected error in request %s", request_id)
    return problem_response(
        "internal-error",
        "the ledger hit an unexpected error; nothing was recorded by this request",
        request_id=request_id,
    )


def _route_templates(app_routes: list[BaseRoute]) -> dict[Any, str]:
    templates = {}
    desk = [(f"/desk{route.path}", route) for route in desk_routes() if isinstance(route, Route)]
    for path, route in [(getattr(r, "path", None), r) for r in app_routes] + desk:
        endpoint = getattr(route, "endpoint", None)
        if endpoint is not None and path is not None:
            templates[endpoint] = path
    return templates


class RequestLog:
    """One structured line per request: id, key id, method, route template, status, time.

    Never the query string, a header value, a body or an API key: those can hold personal
    data or secrets. The route template (`/v1/cases/{case_id}/events`) is logged instead
    of the path.
    """

    def __init__(self, app: ASGIApp, templates: dict[Any, str], access_log: AccessLog) -> None:
        self.app = app
        self.templates = templates
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = f"{random.getrandbits(64):016x}"
        scope["casetrail.request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            principal = scope.get("casetrail.principal")
            self.access_log.add(
                {
                    "request_id": request_id,
                    "key_id": principal.key_id if principal is not None else None,
                    "method": scope["method"],
                    "route": self.templates.get(scope.get("endpoint"), "(unmatched)"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                }
            )
