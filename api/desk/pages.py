"""The compliance desk: server-rendered pages under /desk/, for reading without
JavaScript, signed in with an API key.

A signed-in browser holds a signed, HttpOnly, SameSite=Strict session cookie that names a
server-side session; the API key itself never goes back to the browser. Every form
carries the session's CSRF token. What a key may see here is exactly what it may read
over the API: the pages call the same runtime functions with the same principal.
"""

from __future__ import annotations

import hmac
import posixpath
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from api.desk import charts, i18n, views
from api.desk.guard import DeskGuard
from domain.bundle import BundleCheckFailed, parse_bundle, verify_bundle
from domain.catalogue import CASE_ID_PATTERN
from domain.errors import CasetrailError, SignatureError
from domain.signing import public_key_from_text
from domain.spreadsheet import spreadsheet_safe_csv
from projections.apikeys import Principal
from projections.attribution import report_breaches_csv
from projections.runtime import Runtime

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
MAX_UPLOAD = 20 * 1024 * 1024
MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")


class SignInRequired(Exception):
    pass


def desk_routes() -> list[BaseRoute]:
    return [
        Route("/", home),
        Route("/sign-in", sign_in, methods=["GET", "POST"]),
        Route("/sign-out", sign_out, methods=["POST"]),
        Route("/settings", preferences),
        Route("/cases", case_list),
        Route("/cases/{case_id}", case_page),
        Route("/cases/{case_id}/verdicts.csv", case_verdicts_csv),
        Route("/cases/{case_id}/bundle.json", case_bundle),
        Route("/reports", reports_page),
        Route("/reports/breaches.csv", reports_csv),
        Route("/verify", verify_page, methods=["GET", "POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]


def desk_app(runtime: Runtime) -> Starlette:
    # The session cookie is signed with a random secret the ledger keeps wrapped under its
    # master key, so sessions survive a restart and no extra secret file needs keeping.
    secret = runtime.keystore.secret("desk-session").hex()
    app = Starlette(
        routes=desk_routes(),
        middleware=[
            Middleware(DeskGuard),
            Middleware(
                SessionMiddleware,
                secret_key=secret,
                session_cookie="casetrail_desk",
                max_age=12 * 3600,
                path="/desk",
                same_site="strict",
                https_only=runtime.settings.desk_secure_cookie,
            ),
        ],
        exception_handlers={
            SignInRequired: _to_sign_in,
            CasetrailError: _desk_error,
            HTTPException: _desk_http_error,
        },
    )
    app.router.redirect_slashes = False
    app.state.runtime = runtime
    return app


class Desk:
    """The desk as mounted in the main app: built on first use from the app's runtime,
    which a server started from the environment opens only in its lifespan."""

    def __init__(self) -> None:
        self._app: Starlette | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = desk_app(scope["app"].state.runtime)
        await self._app(scope, receive, send)


# -- plumbing ----------------------------------------------------------------------------


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _viewer(request: Request) -> Principal:
    session_id = request.session.get("sid")
    principal = _runtime(request).api_keys.session_principal(session_id) if session_id else None
    if principal is None:
        raise SignInRequired()
    request.scope["casetrail.principal"] = principal
    return principal


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


def _csrf_ok(request: Request, form: Any) -> bool:
    expected = request.session.get("csrf", "")
    given = str(form.get("csrf", ""))
    return bool(expected) and hmac.compare_digest(expected, given)


async def _render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """Render in a worker thread: a page of thousands of events takes a while, and the
    event loop must keep answering everyone else meanwhile."""
    return await run_in_threadpool(_render_now, request, template, status, **context)


def _render_now(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    lang = i18n.choose_language(request)
    zone_name, zone = i18n.choose_zone(request)
    principal = request.scope.get("casetrail.principal")

    def t(key: str) -> str:
        return i18n.text(key, lang)

    def when(value: str | None) -> str:
        return i18n.show_moment(value, zone)

    def value(group: str, raw: Any) -> str:
        return i18n.value(group, raw, lang)

    def here(**changes: Any) -> str:
        query = dict(request.query_params)
        for name, value in changes.items():
            if value == "":
                query.pop(name, None)
            elif value is not None:
                query[name] = value
        return f"{request.url.path}?{urlencode(query)}"

    response = templates.TemplateResponse(
        request,
        template,
        {
            "t": t,
            "when": when,
            "value": value,
            "here": here,
            "lang": lang,
            "languages": i18n.LANGUAGE_NAMES,
            "zone": zone_name,
            "zones": i18n.SUGGESTED_ZONES,
            "principal": principal,
            "csrf": _csrf(request),
            "catalogue": _runtime(request).catalogue,
            "obligations": {o.id: o for o in _runtime(request).policy.obligations},
            "check_names": i18n.CHECK_NAMES,
            **context,
        },
        status_code=status,
    )
    return response  # DeskGuard adds the security headers


async def _to_sign_in(request: Request, error: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/desk/sign-in?{urlencode({'next': target})}", status_code=303)


async def _desk_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = "There is no such page." if error.status_code == 404 else str(error.detail)
    return await _render(request, "error.html", status=error.status_code, message=message)


async def _desk_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, CasetrailError)
    from api.problems import KINDS

    status = KINDS[error.kind].status if error.kind in KINDS else 500
    return await _render(request, "error.html", status=status, message=error.message)


def _safe_next(target: str | None) -> str:
    """Only a path on the desk itself, as written: never an open redirect, never a path
    that a browser would resolve somewhere else (dot segments, backslashes, controls)."""
    fallback = "/desk/cases"
    if not target or not target.isprintable() or "\\" in target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.fragment:
        return fallback
    if posixpath.normpath(parts.path) != parts.path.rstrip("/") or "%" in parts.path:
        return fallback
    if not parts.path.startswith("/desk/"):
        return fallback
    return target


# -- signing in and preferences --------------------------------------------------------


async def home(request: Request) -> Response:
    return RedirectResponse("/desk/cases", status_code=303)


async def sign_in(request: Request) -> Response:
    runtime = _runtime(request)
    next_page = _safe_next(request.query_params.get("next"))
    if request.method == "GET":
        return await _render(request, "sign_in.html", next=next_page, failed=None)

    form = await request.form()
    if not _csrf_ok(request, form):
        return await _render(
            request, "sign_in.html", status=400, next=next_page, failed="csrf.failed"
        )
    token = str(form.get("key", "")).strip()
    principal = await run_in_threadpool(runtime.api_keys.authenticate, token)
    if principal is None:
        return await _render(
            request, "sign_in.html", status=401, next=next_page, failed="sign_in.failed"
        )

    # Signing in as someone else ends the session this browser had: one live session each.
    previous = request.session.get("sid")
    if previous:
        await run_in_threadpool(runtime.api_keys.end_session, previous)
    session_id = await run_in_threadpool(runtime.api_keys.start_session, principal)
    request.session.clear()
    request.session["sid"] = session_id
    request.session["csrf"] = secrets.token_urlsafe(24)
    return RedirectResponse(_safe_next(str(form.get("next", ""))), status_code=303)


async def sign_out(request: Request) -> Response:
    """Ends the session on the server and in the browser, or, without the session's CSRF
    token, does nothing at all: half an ending would leave a copied cookie working."""
    form = await request.form()
    if not _csrf_ok(request, form):
        return RedirectResponse("/desk/cases", status_code=303)
    if request.session.get("sid"):
        await run_in_threadpool(_runtime(request).api_keys.end_session, request.session["sid"])
    request.session.clear()
    return RedirectResponse("/desk/sign-in", status_code=303)


async def preferences(request: Request) -> Response:
    """The language switch and time-zone choice: cookies, then back to the page."""
    response = RedirectResponse(_safe_next(request.query_params.get("back")), status_code=303)
    lang = request.query_params.get("lang")
    if lang in i18n.LANGUAGES:
        response.set_cookie("desk_lang", lang, max_age=365 * 86400, path="/desk", samesite="strict")
    zone = request.query_params.get("tz")
    if zone and zone in i18n.known_zones():
        response.set_cookie("desk_tz", zone, max_age=365 * 86400, path="/desk", samesite="strict")
    return response


# -- the pages ---------------------------------------------------------------------------


async def case_list(request: Request) -> Response:
    viewer = _viewer(request)
    runtime = _runtime(request)
    query = request.query_params
    sort = str(query.get("sort")) if query.get("sort") in views.SORTS else "updated"
    chosen = views.CaseFilter(
        agency=_text(query.get("agency")),
        agent=_text(query.get("agent")),
        phase=_text(query.get("phase")),
        with_breaches=query.get("breaches") == "1",
        severity=_text(query.get("severity")),
        opened_from=_date_bound(query.get("from")),
        opened_to=_date_bound(query.get("to")),
        sort=sort,
        after=views.parse_cursor(query.get("after"), sort),
        before=views.parse_cursor(query.get("before"), sort) if not query.get("after") else None,
    )
    listing, choices = await run_in_threadpool(
        lambda: (views.list_cases(runtime, viewer, chosen), views.filter_choices(runtime, viewer))
    )
    return await _render(
        request,
        "cases.html",
        listing=listing,
        choices=choices,
        chosen=chosen,
        query=query,
        severities=views.SEVERITIES,
    )


async def case_page(request: Request) -> Response:
    viewer = _viewer(request)
    runtime = _runtime(request)
    case_id = _case_id(request)
    as_of = _as_of(request.query_params.get("as_of"))
    page = request.query_params.get("tl", "1")
    timeline_page = int(page) if page.isascii() and page.isdigit() and len(page) < 7 else 1
    view = await run_in_threadpool(views.case_view, runtime, case_id, viewer, as_of, timeline_page)
    show_all = request.query_params.get("all") == "1"
    return await _render(
        request,
        "case.html",
        view=view,
        show_all=show_all,
        timeline_size=views.TIMELINE_PAGE,
        late_after=i18n.duration(
            runtime.policy.settings.late_entry_after.text, i18n.choose_language(request)
        ),
        roles=runtime.catalogue.actor_roles,
        phases={p["id"]: p for p in runtime.catalogue.phases},
    )


async def case_verdicts_csv(request: Request) -> Response:
    viewer = _viewer(request)
    case_id = _case_id(request)
    as_of = _as_of(request.query_params.get("as_of"))
    view = await run_in_threadpool(views.case_view, _runtime(request), case_id, viewer, as_of)
    views.ensure_sound(view)  # verdicts on a broken case would rest on forged evidence
    return Response(
        spreadsheet_safe_csv(views.verdicts_csv_rows(view)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{case_id}-verdicts.csv"'},
    )


async def case_bundle(request: Request) -> Response:
    viewer = _viewer(request)
    runtime = _runtime(request)
    case_id = _case_id(request)

    def build() -> dict[str, Any]:
        runtime.visible_case(case_id, viewer)
        return runtime.bundle(case_id)

    bundle = await run_in_threadpool(build)
    return Response(
        orjson.dumps(bundle, option=orjson.OPT_INDENT_2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{case_id}.bundle.json"'},
    )


def _period(request: Request) -> views.Period:
    def month(name: str) -> str | None:
        raw = request.query_params.get(name, "")
        fits = MONTH.fullmatch(raw) and "1900" <= raw[:4] <= "9998" and "01" <= raw[5:] <= "12"
        return raw if fits else None

    return views.Period(first=month("from"), last=month("to"))


async def reports_page(request: Request) -> Response:
    viewer = _viewer(request)
    runtime = _runtime(request)
    query = request.query_params
    period = _period(request)
    data = await run_in_threadpool(
        views.report_view,
        runtime,
        viewer,
        _text(query.get("agency")),
        _text(query.get("agent")),
        period,
    )
    choices = await run_in_threadpool(views.filter_choices, runtime, viewer)
    lang = i18n.choose_language(request)
    top = data["by_obligation"][:12]
    chart = charts.bar_chart(
        i18n.text("reports.breaches", lang),
        [f"{row['obligation']} ({i18n.text('severity.' + row['severity'], lang)})" for row in top],
        [
            (i18n.text("reports.breached", lang), [row["breached"] for row in top]),
            (i18n.text("reports.met", lang), [row["met"] for row in top]),
        ],
        chart_id="breaches",
    )
    scores = data["aftercare"]["scores"]
    score_chart = (
        charts.bar_chart(
            i18n.text("reports.satisfaction", lang),
            [str(score) for score in scores],
            [(i18n.text("reports.responses", lang), [scores[score] for score in scores])],
            chart_id="scores",
        )
        if data["aftercare"]["responses"]
        else ""
    )
    return await _render(
        request,
        "reports.html",
        data=data,
        chart=chart,
        score_chart=score_chart,
        choices=choices,
        query=query,
        period=period,
    )


async def reports_csv(request: Request) -> Response:
    viewer = _viewer(request)
    query = request.query_params
    report = await run_in_threadpool(
        views.breaches_report,
        _runtime(request),
        viewer,
        _text(query.get("agency")),
        _text(query.get("agent")),
        _period(request),
    )
    return Response(
        report_breaches_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="breaches.csv"'},
    )


async def verify_page(request: Request) -> Response:
    _viewer(request)
    if request.method == "GET":
        return await _render(request, "verify.html", result=None, ledger_key=_ledger_key(request))

    # Browsers always send the length of a form; refuse a body too large before reading it.
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > 3 * MAX_UPLOAD + 65536:
        return await _render(
            request,
            "verify.html",
            status=413,
            result={"ok": False, "check": "format", "detail": "the upload is larger than 20 MiB"},
        )
    async with request.form(max_files=3, max_fields=10) as form:
        if not _csrf_ok(request, form):
            return await _render(
                request, "verify.html", status=400, result={"error": "csrf.failed"}
            )
        result = await _verify_upload(form)
    return await _render(request, "verify.html", result=result, ledger_key=_ledger_key(request))


def _ledger_key(request: Request) -> str:
    """This ledger's published public key, offered as the key to trust."""
    key = _runtime(request).signing_key
    return key.public_key_pem() if key is not None else ""


async def _verify_upload(form: Any) -> dict[str, Any]:
    """Run the offline verifier on what was uploaded; nothing touches the ledger."""

    async def read(name: str) -> bytes | None:
        item = form.get(name)
        if isinstance(item, UploadFile):
            data = await item.read(MAX_UPLOAD + 1)
            return data or None
        if isinstance(item, str) and item.strip():
            return item.encode()
        return None

    bundle_bytes = await read("bundle")
    if bundle_bytes is None:
        return {"ok": False, "check": "format", "detail": "no bundle file was given"}
    if len(bundle_bytes) > MAX_UPLOAD:
        return {"ok": False, "check": "format", "detail": "the file is larger than 20 MiB"}
    key_bytes, later_bytes, proof_bytes = (
        await read("public_key"),
        await read("later"),
        await read("consistency"),
    )
    try:
        bundle = parse_bundle(bundle_bytes)
        trusted = public_key_from_text(key_bytes.decode()) if key_bytes else None
        later = parse_bundle(later_bytes, name="the later tree head") if later_bytes else None
        proof = parse_bundle(proof_bytes, name="the consistency proof") if proof_bytes else None
        report = await run_in_threadpool(
            verify_bundle,
            bundle,
            trusted_public_key=trusted,
            # Without a key the page shows the bundle's own key was used (own_key); the
            # verifier wants that choice made explicitly.
            trust_bundle_key=trusted is None,
            later_tree_head=later,
            consistency_proof=proof,
        )
    except BundleCheckFailed as failure:
        return {"ok": False, "check": failure.check, "detail": str(failure)}
    except (SignatureError, UnicodeDecodeError) as failure:
        return {"ok": False, "check": "public-key", "detail": str(failure)}
    return {"ok": True, "summary": report.summary(), "own_key": trusted is None, "report": report}


# -- parameters ----------------------------------------------------------------------


def _case_id(request: Request) -> str:
    case_id = str(request.path_params["case_id"])
    if not CASE_ID_PATTERN.fullmatch(case_id):
        from domain.errors import UnknownCase

        raise UnknownCase("no such case")
    return case_id


def _text(raw: str | None) -> str | None:
    """A filter value as the database can take it: printable and bounded, or else a value
    that matches nothing (a NUL byte, say, is in no agency's id, and PostgreSQL refuses
    it outright)."""
    if not raw:
        return None
    return raw if len(raw) <= 200 and raw.isprintable() else "\u2400"


def _as_of(raw: str | None) -> datetime | None:
    """A moment from the as-of picker: RFC 3339, or a datetime-local value taken as UTC."""
    if not raw or len(raw) > 64:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        moment.astimezone(UTC)  # an offset that runs off either end of the calendar
    except (ValueError, OverflowError):
        return None
    return moment if 1900 <= moment.year <= 9998 else None


def _date_bound(raw: str | None) -> str | None:
    moment = _as_of(raw)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else None
