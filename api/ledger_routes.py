"""The ledger over HTTP: appending events, reading them back, case state, verification, feed."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api import params
from api.auth import APPENDERS, READERS, principal, require, require_admin
from api.body import check_content_type, parse_strict, read_body
from domain.catalogue import ID_PATTERN, ID_RULE
from domain.errors import (
    ChainBroken,
    InvalidEvent,
    InvalidParameter,
    MissingPurpose,
    UnknownCase,
    UnknownParty,
)
from domain.validation import request_fingerprint
from projections.case_state import read_case
from projections.runtime import Runtime
from projections.writer import AppendCommand

JSON = "application/json"
IDEMPOTENCY_KEY_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:~+/="
)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


async def events(request: Request) -> Response:
    """One address, two methods: starlette lists only one route's methods in Allow."""
    if request.method == "POST":
        return await append_events(request)
    return await read_events(request)


async def append_events(request: Request) -> Response:
    runtime = runtime_of(request)
    caller = require(request, APPENDERS, "append events")
    case_id = params.case_id(request, for_write=True)
    key = _idempotency_key(request)

    check_content_type(request)
    settings = runtime.settings
    raw = await read_body(
        request, limit=settings.max_body_bytes, timeout=settings.body_timeout_seconds
    )
    body = parse_strict(raw)
    append = runtime.validator.append_request(body, caller_key_id=caller.key_id)

    command = AppendCommand(
        case_id=case_id,
        events=append.drafts,
        recorded_by=caller.key_id,
        expected_seq=append.expected_seq,
        idempotency_scope=caller.key_id,
        idempotency_key=key,
        fingerprint=(
            request_fingerprint(
                runtime.request_secret, request.method, request.url.path, append.drafts
            )
            if key
            else None
        ),
        agency_scope=caller.agency,
        single_event_body=isinstance(body, dict) and "events" not in body,
    )
    result = await runtime.writer.append_async(command)

    headers = {"Location": f"/v1/cases/{case_id}/events?after_seq={result.first_seq - 1}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(result.body, status_code=201, media_type=JSON, headers=headers)


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 200 or not set(key) <= IDEMPOTENCY_KEY_CHARS:
        raise InvalidParameter(
            "Idempotency-Key must be 1–200 characters of letters, digits and -_.:~+/= "
            "(a UUID is a good choice)",
            pointer="/headers/Idempotency-Key",
        )
    return key


async def read_events(request: Request) -> Response:
    runtime = runtime_of(request)
    caller = require(request, READERS, "read events")
    case_id = params.case_id(request)
    after_seq = params.integer(request, "after_seq", default=0)
    limit = params.integer(request, "limit", default=100, minimum=1, maximum=1000)
    reveal = params.choice(request, "reveal", ("personal",))
    purpose = _purpose(request) if reveal else None

    def read() -> tuple[Any, list[dict[str, Any]] | None]:
        runtime.visible_case(case_id, caller)
        page = runtime.read_events(case_id, after_seq=after_seq, limit=limit)
        if purpose is None:
            return page, None
        revealed = runtime.personal_data.reveal(case_id, page.records, caller, purpose)
        return page, [item.as_json() for item in revealed]

    page, revealed = await run_in_threadpool(read)
    next_after = page.last_seq if page.last_seq is not None and len(page.stored) == limit else None
    parts = [
        b'{"case_id":',
        orjson.dumps(case_id),
        b',"events":[',
        b",".join(page.stored),
        b'],"next_after_seq":',
        orjson.dumps(next_after),
    ]
    if revealed is not None:
        parts += [b',"revealed":', orjson.dumps(revealed)]
    return Response(
        b"".join([*parts, b"}"]), media_type=JSON, headers=NO_STORE if revealed else None
    )


NO_STORE = {"Cache-Control": "no-store"}
MAX_PURPOSE_CHARS = 500
MAX_REASON_CHARS = 500
"""The purpose of a reveal and the reason for an erasure are recorded in plain text on the
case, for the audit trail: short statements that must not hold personal data."""


def _purpose(request: Request) -> str:
    purpose = request.headers.get("x-purpose", "").strip()
    if not purpose:
        raise MissingPurpose(
            "say why you need the personal data in the X-Purpose header; the purpose is "
            "recorded on the case with every reveal",
            pointer="/headers/X-Purpose",
        )
    if len(purpose) > MAX_PURPOSE_CHARS:
        raise InvalidParameter(
            f"X-Purpose is longer than {MAX_PURPOSE_CHARS} characters; state the purpose "
            "briefly, without personal data (it is recorded unsealed)",
            pointer="/headers/X-Purpose",
        )
    return purpose


async def read_case_state(request: Request) -> Response:
    runtime = runtime_of(request)
    caller = require(request, READERS, "read cases")
    case_id = params.case_id(request)

    def read() -> Any:
        runtime.visible_case(case_id, caller)
        runtime.settle(timeout=2.0, views=("case_state",))
        state = read_case(runtime.ledger, case_id)
        if state is None:
            raise UnknownCase(f"no case {case_id!r} (not yet projected)", pointer="/path/case_id")
        integrity = state.get("integrity")
        if integrity is not None:
            raise ChainBroken(
                f"case {case_id!r} does not verify at seq {integrity['first_bad_seq']}: "
                f"{integrity['reason']}; its state is not served",
                case_id=case_id,
                seq=integrity["first_bad_seq"],
            )
        return state

    return json_response(await run_in_threadpool(read))


async def list_cases(request: Request) -> Response:
    runtime = runtime_of(request)
    caller = require(request, READERS, "list cases")
    phase = params.choice(request, "phase", tuple(p["id"] for p in runtime.catalogue.phases))
    agency = params.text(request, "agency")
    after = params.text(request, "after", max_length=64)
    limit = params.integer(request, "limit", default=50, minimum=1, maximum=500)

    if caller.agency is not None:
        if agency is not None and agency != caller.agency:
            return json_response({"cases": [], "next_after": None})
        agency = caller.agency

    def read() -> list[dict[str, Any]]:
        runtime.settle(timeout=2.0, views=("case_state",))
        clauses, values = [], []
        for column, value in (("phase", phase), ("agency", agency)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        if after is not None:
            clauses.append("case_id > ?")
            values.append(after)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return runtime.ledger.db.query(
            "SELECT case_id, agency, kind, phase, closed, sound, open_complaints, last_seq, "
            "head_hash, "
            f"opened_at, updated_at FROM case_state {where} ORDER BY case_id LIMIT ?",
            [*values, limit],
        )

    rows = await run_in_threadpool(read)
    for row in rows:
        row["closed"] = bool(row["closed"])
        row["sound"] = bool(row["sound"])
    next_after = rows[-1]["case_id"] if len(rows) == limit else None
    return json_response({"cases": rows, "next_after": next_after})


async def verify_case(request: Request) -> Response:
    runtime = runtime_of(request)
    caller = require(request, READERS, "verify cases")
    case_id = params.case_id(request)

    def verify() -> dict[str, Any]:
        try:
            runtime.visible_case(case_id, caller)
        except ChainBroken:
            if caller.agency is not None:
                raise  # whose case it is cannot be told, so a scoped key learns nothing more
        return runtime.verify_case(case_id).as_json()

    return json_response(await run_in_threadpool(verify))


async def erase_party(request: Request) -> Response:
    runtime = runtime_of(request)
    caller = require_admin(request, "erase a party's personal data")
    party_id = str(request.path_params["party_id"])
    # The rule party ids are appended under, so that every party registered can be erased.
    if not ID_PATTERN.fullmatch(party_id):
        raise InvalidParameter(f"a party id is {ID_RULE}", pointer="/path/party_id")
    # A party id names one person across the platform: without ?agency= the person is
    # erased wherever registered; with it, only in that agency.
    agency = params.text(request, "agency")
    if caller.agency is not None and agency != caller.agency:
        raise UnknownParty(
            f"agency {agency!r} has no party {party_id!r} that this key may erase",
            pointer="/path/party_id",
        )

    check_content_type(request)
    raw = await read_body(request, limit=64 * 1024, timeout=runtime.settings.body_timeout_seconds)
    body = parse_strict(raw)
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str) or not reason.strip() or set(body) != {"reason"}:
        raise InvalidEvent(
            'send {"reason": "..."}: why the erasure was requested (it is recorded)',
            pointer="/reason",
        )
    if len(reason.strip()) > MAX_REASON_CHARS:
        raise InvalidEvent(
            f"reason is longer than {MAX_REASON_CHARS} characters; state it briefly, without "
            "personal data (it is recorded unsealed on every case of the party)",
            pointer="/reason",
        )

    answer = await run_in_threadpool(
        runtime.personal_data.erase, agency, party_id, reason.strip(), caller
    )
    return json_response(answer)


async def read_feed(request: Request) -> Response:
    runtime = runtime_of(request)
    caller = principal(request)
    after = params.integer(request, "after", default=0)
    limit = params.integer(request, "limit", default=100, minimum=1, maximum=1000)

    def read() -> dict[str, Any]:
        return runtime.feed(after=after, limit=limit, viewer=caller)

    return json_response(await run_in_threadpool(read))
