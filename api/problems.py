"""RFC 9457 problem details: every error the API returns, one stable type per kind.

A problem's `type` is a relative URI, `/problems/<kind>`, which this server also serves
as a short explanation, so the type both identifies the kind for software and explains it
to the person reading the response. `pointer` is the RFC 6901 JSON Pointer of the field
at fault (`/headers/<Name>` for a header, `/query/<name>` for a query parameter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response

from domain.errors import CasetrailError

PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemKind:
    kind: str
    status: int
    title: str
    explanation: str


KINDS: dict[str, ProblemKind] = {
    kind.kind: kind
    for kind in [
        ProblemKind(
            "malformed-json",
            400,
            "The body is not strict JSON",
            "The body could not be parsed as JSON that every parser reads the same way: "
            "invalid UTF-8 or syntax, NaN or Infinity, a number that overflows a double, "
            "or the same key twice in one object.",
        ),
        ProblemKind(
            "invalid-parameter",
            400,
            "A request parameter is invalid",
            "A path segment, query parameter or header has a value the endpoint cannot use; "
            "`pointer` names it.",
        ),
        ProblemKind(
            "missing-purpose",
            400,
            "Reading personal data needs a purpose",
            "Revealing personal data is recorded on the ledger with the reader's stated "
            "purpose: send it in the X-Purpose header.",
        ),
        ProblemKind(
            "unauthorized",
            401,
            "An API key is required",
            "Send `Authorization: Bearer <key>` with a key created by `casetrail keys "
            "create`. A revoked or unknown key is refused the same way.",
        ),
        ProblemKind(
            "forbidden",
            403,
            "This key may not do that",
            "The key is valid, but its role does not allow this operation.",
        ),
        ProblemKind(
            "not-found",
            404,
            "No such resource",
            "Nothing exists at this address.",
        ),
        ProblemKind(
            "case-not-found",
            404,
            "No such case",
            "No case has this id, or the case belongs to an agency this key cannot see "
            "(the two are answered alike on purpose).",
        ),
        ProblemKind(
            "party-not-found",
            404,
            "No such party",
            "No party with this id was registered in any case of the agency named by the "
            "`agency` parameter. Party ids belong to the agency that registered them.",
        ),
        ProblemKind(
            "tree-head-not-found",
            404,
            "No signed tree head of that size",
            "Proofs are computed only against tree heads the ledger actually signed; list "
            "them at /v1/log/tree-heads.",
        ),
        ProblemKind(
            "method-not-allowed",
            405,
            "Method not allowed",
            "This address exists but does not accept this HTTP method; see the Allow header.",
        ),
        ProblemKind(
            "body-timeout",
            408,
            "The body arrived too slowly",
            "The request body was not received within the body timeout.",
        ),
        ProblemKind(
            "case-id-taken",
            409,
            "That case id is already in use",
            "Case ids are shared by every agency on this ledger, and this one is taken (by "
            "your agency or another; which is not said). Open the case under another id, "
            "best prefixed with your agency's id, e.g. agency-b.2024-0001.",
        ),
        ProblemKind(
            "seq-conflict",
            409,
            "The case has moved on",
            "expected_seq does not match the case's current seq: another event was "
            "appended since you last read the case. Read it, then retry with `current_seq`.",
        ),
        ProblemKind(
            "body-too-large",
            413,
            "The body is too large",
            "The request body is larger than the configured limit; split large batches.",
        ),
        ProblemKind(
            "unsupported-media-type",
            415,
            "Send application/json",
            "Only `application/json` bodies in UTF-8 are accepted.",
        ),
        ProblemKind(
            "invalid-event",
            422,
            "The event is not valid",
            "The body parsed, but an event or a field does not match the catalogue at "
            "/v1/catalogue: `pointer` names the field at fault.",
        ),
        ProblemKind(
            "idempotency-key-reused",
            422,
            "Idempotency-Key reused for a different request",
            "The same Idempotency-Key was used before with another path or other events. "
            "A retry must repeat the original request exactly; a new request needs a new key.",
        ),
        ProblemKind(
            "integrity-failure",
            500,
            "Recorded history does not verify",
            "Stored events, the transparency log or a signature failed verification. The "
            "ledger refuses to serve or extend history it cannot vouch for; see /verify.",
        ),
        ProblemKind(
            "chain-broken",
            500,
            "A case's hash chain is broken",
            "A stored event of this case does not verify; the ledger will not serve it as if "
            "it were sound. GET /v1/cases/{case_id}/verify names the first bad event.",
        ),
        ProblemKind(
            "proof-invalid",
            400,
            "The proof does not verify",
            "A Merkle inclusion or consistency proof failed verification.",
        ),
        ProblemKind(
            "signature-invalid",
            400,
            "The signature or key is not acceptable",
            "A tree head signature did not verify, or a public key was refused.",
        ),
        ProblemKind(
            "bundle-invalid",
            400,
            "The dispute bundle does not verify",
            "The bundle is malformed or one of its checks failed; `detail` names the first.",
        ),
        ProblemKind(
            "unavailable",
            503,
            "The ledger cannot answer right now",
            "The database or a background worker is unavailable; retry later.",
        ),
        ProblemKind(
            "master-key-rotated",
            503,
            "The master key was rotated; restart with the new key",
            "`casetrail keys rotate-master` re-wrapped every data key under a new master key "
            "while this server still held the old one. It refuses to create data keys under "
            "the old key, which nothing could open after a restart: restart it with "
            "CASETRAIL_MASTER_KEY_PATH pointing at the new key file.",
        ),
        ProblemKind(
            "internal-error",
            500,
            "Unexpected error",
            "Something went wrong that the ledger did not anticipate; the request id in the "
            "response lets an operator find it in the log. Nothing was recorded unless the "
            "response said so.",
        ),
    ]
}


def problem_type(kind: str) -> str:
    return f"/problems/{kind}"


def problem_response(
    kind: str,
    detail: str,
    *,
    pointer: str | None = None,
    status: int | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    spec = KINDS.get(kind) or KINDS["internal-error"]
    body: dict[str, Any] = {
        "type": problem_type(spec.kind),
        "title": spec.title,
        "status": status or spec.status,
        "detail": detail,
    }
    if pointer is not None:
        body["pointer"] = pointer
    body.update(extensions)
    return Response(
        orjson.dumps(body),
        status_code=body["status"],
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def response_for_error(error: CasetrailError) -> Response:
    extensions: dict[str, Any] = {}
    current_seq = getattr(error, "current_seq", None)
    if current_seq is not None:
        extensions["current_seq"] = current_seq
    for name in ("case_id", "seq"):
        value = getattr(error, name, None)
        if value is not None:
            extensions[name] = value
    return problem_response(error.kind, error.message, pointer=error.pointer, **extensions)


def problem_schema() -> dict[str, Any]:
    """JSON Schema of a problem document, for the OpenAPI document."""
    return {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "enum": [problem_type(kind) for kind in sorted(KINDS)]},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "pointer": {"type": "string", "description": "RFC 6901 pointer to the field at fault"},
            "current_seq": {"type": "integer"},
            "request_id": {"type": "string"},
        },
    }
