"""The OpenAPI 3.1 document: every route, parameter, body and error the API has.

Written as data next to the code it describes, with the catalogue's own JSON Schemas, so
an integrator can build a client from `/openapi.json` alone. A test checks that every
route of the app appears here and that the document is valid OpenAPI 3.1.
"""

from __future__ import annotations

from typing import Any

from api.problems import KINDS, problem_schema
from domain.bundle import BUNDLE_FIELDS
from domain.catalogue import ID_PATTERN, ID_RULE, event_request_schema, load_catalogue
from domain.envelope import ENVELOPE_FIELDS
from domain.evaluator import STATUSES

HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256, lower-case hex"}
CASE_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
PARTY_ID = {"type": "string", "pattern": ID_PATTERN.pattern, "description": ID_RULE}


EVENT_REF = {
    "type": "object",
    "description": "One event of the case, by seq and hash",
    "required": ["seq", "hash"],
    "additionalProperties": False,
    "properties": {"seq": {"type": "integer", "minimum": 1}, "hash": HASH},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problems(*statuses: int) -> dict[str, Any]:
    responses = {}
    for status in sorted(set(statuses) | {401, 500}):
        kinds = sorted(kind.kind for kind in KINDS.values() if kind.status == status)
        responses[str(status)] = {
            "description": "; ".join(f"`/problems/{kind}`" for kind in kinds) or "problem",
            "content": {"application/problem+json": {"schema": _ref("Problem")}},
        }
    return responses


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


CASE_PATH = {"name": "case_id", "in": "path", "required": True, "schema": CASE_ID}
BEARER: list[dict[str, list[str]]] = [{"apiKey": []}]


def _paths() -> dict[str, Any]:
    return {
        "/healthz": {
            "get": {
                "summary": "Liveness and how far each read model lags the log",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "healthy"), **_problems(503)},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
            }
        },
        "/problems/{kind}": {
            "get": {
                "summary": "What a problem type means",
                "security": [],
                "parameters": [
                    {"name": "kind", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": _json({"type": "object"}, "explanation"), **_problems(404)},
            }
        },
        "/v1/catalogue": {
            "get": {
                "summary": "Event types, their phases, personal fields and JSON Schemas",
                "responses": {"200": _json(_ref("Catalogue"), "the catalogue"), **_problems()},
            }
        },
        "/v1/cases": {
            "get": {
                "summary": "Cases from the case-state view, in case-id order",
                "parameters": [
                    _query("phase", {"type": "string"}, "only cases in this phase"),
                    _query("agency", {"type": "string"}, "only cases of this agency"),
                    _query("after", CASE_ID, "the `next_after` of the previous page"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
                ],
                "responses": {"200": _json(_ref("CaseList"), "a page of cases"), **_problems(400)},
            }
        },
        "/v1/cases/{case_id}": {
            "get": {
                "summary": "A case's current state (kind, phase, parties, funds, complaints…)",
                "parameters": [CASE_PATH],
                "responses": {"200": _json(_ref("CaseState"), "the state"), **_problems(404)},
            }
        },
        "/v1/cases/{case_id}/events": {
            "get": {
                "summary": "A case's events exactly as hashed, each with its hash",
                "description": "Each record is verified against its predecessor before it is "
                "served; a record that does not verify is refused with `/problems/chain-broken`.",
                "parameters": [
                    CASE_PATH,
                    _query(
                        "after_seq",
                        {"type": "integer", "minimum": 0},
                        "return events after this seq",
                    ),
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"
                    ),
                    _query(
                        "reveal",
                        {"enum": ["personal"]},
                        "also return personal fields in plain text (roles allowed by "
                        "CASETRAIL_REVEAL_ROLES, and admin); every reveal is recorded on the "
                        "case as pi.accessed before anything is returned",
                    ),
                    {
                        "name": "X-Purpose",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 500},
                        "description": "why the personal data is needed (required with "
                        "reveal). It is recorded unsealed in the pi.accessed event, readable "
                        "by everyone who reads the case, so it must not contain personal data: "
                        "name the task or the complaint id, not the person.",
                    },
                ],
                "responses": {
                    "200": _json(_ref("EventPage"), "records"),
                    **_problems(400, 403, 404, 503),
                },
            },
            "post": {
                "summary": "Append one event, or an atomic batch with optimistic concurrency",
                "description": "The first event of a case must be `case.opened`. With an "
                "`Idempotency-Key`, a retry of the same method, path and events returns the "
                "original 201 body (header `Idempotent-Replayed: true`) and appends nothing; "
                "the same key with another path or other events is refused with 422. "
                "`occurred_at` may not be later than the moment the ledger records the event "
                "(10 minutes are allowed for clock skew) nor before 1900. Types the catalogue "
                "marks `recorded_by_ledger` (erasure outcomes) and fields it lists as "
                "`ledger_fields` (the key_id of a reveal) are refused from every key, admin "
                "included, and so is an actor id of the form `key_<12 hex>` other than the "
                "sending key's own id. `actor.id`, `actor.agency` and every payload field of "
                f"the catalogue's `id` kind are {ID_RULE}: look-alike letters, invisible or "
                "direction-changing characters and formulas are refused.",
                "parameters": [
                    CASE_PATH,
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"oneOf": [_ref("Event"), _ref("EventBatch")]}
                        }
                    },
                },
                "responses": {
                    "201": _json(_ref("AppendResult"), "recorded"),
                    **_problems(400, 403, 404, 408, 409, 413, 415, 422, 503),
                },
            },
        },
        "/v1/cases/{case_id}/verify": {
            "get": {
                "summary": "Verify a case's hash chain from its first event",
                "parameters": [CASE_PATH],
                "responses": {"200": _json(_ref("ChainReport"), "the verdict"), **_problems(404)},
            }
        },
        "/v1/cases/{case_id}/bundle": {
            "get": {
                "summary": "The case's dispute bundle, for offline verification",
                "description": "Every event exactly as hashed, each with its leaf index and "
                "inclusion proof against one signed tree head, that tree head and the "
                "ledger's public key. Check it with `casetrail verify-bundle` or "
                "`domain.bundle.verify_bundle` — no server or database needed.",
                "parameters": [CASE_PATH],
                "responses": {"200": _json(_ref("Bundle"), "the bundle"), **_problems(404)},
            }
        },
        "/v1/cases/{case_id}/attribution": {
            "get": {
                "summary": "The case's verdicts under a policy, as the ledger stood at a moment",
                "description": "Evaluated directly from the verified records. `as_of` is "
                "ledger (recorded) time: events recorded later do not exist for the evaluation, "
                "and deadlines are judged at it. Same input, same output.",
                "parameters": [
                    CASE_PATH,
                    _query("as_of", {"type": "string"}, "RFC 3339 date-time; default now"),
                    _query("policy", {"type": "string"}, "a policy id from /v1/policies"),
                ],
                "responses": {"200": _json(_ref("Attribution"), "verdicts"), **_problems(400, 404)},
            }
        },
        "/v1/reports/attribution": {
            "get": {
                "summary": "Met and breached counts per agency and agent, and every breach",
                "description": "From the attribution view, re-evaluated on every new event "
                "and whenever a pending deadline passes. Periods filter on each verdict's due "
                "time (or when it was settled). `format=csv` gives the counts, or with "
                "`part=breaches` the breaches.",
                "parameters": [
                    _query("agency", {"type": "string"}, "one agency"),
                    _query("agent", {"type": "string"}, "one performer"),
                    _query("from", {"type": "string"}, "date or date-time, inclusive"),
                    _query("to", {"type": "string"}, "date or date-time, exclusive"),
                    _query("status", {"enum": ["met", "breached"]}, "one status"),
                    _query(
                        "severity", {"enum": ["low", "medium", "high", "critical"]}, "one severity"
                    ),
                    _query("format", {"enum": ["json", "csv"]}, "json (default) or csv"),
                    _query("part", {"enum": ["counts", "breaches"]}, "for csv"),
                ],
                "responses": {
                    "200": {
                        "description": "the report",
                        "content": {
                            "application/json": {"schema": _ref("Report")},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    **_problems(400),
                },
            }
        },
        "/v1/policies": {
            "get": {
                "summary": "The policies this ledger ships, their obligations and content hashes",
                "responses": {"200": _json({"type": "object"}, "policies"), **_problems()},
            }
        },
        "/v1/parties/{party_id}/erasure": {
            "post": {
                "summary": "Answer a data subject's erasure request (admin only)",
                "description": "A party id names one person across the platform; each agency "
                "that registers them seals their data under a key of its own. Without `agency` "
                "the person is erased in every agency; with it, only that agency's cases, data "
                "keys and restrictions take part. While a retention clock of the active policy "
                "runs for any of those cases (from the later of the event's occurred_at and "
                "recorded_at), the party is restricted (erasure.restricted, with the date "
                "erasure becomes possible; reveals refused except to admin). Otherwise the "
                "party's data keys are destroyed (erasure.executed): its sealed values read as "
                "erased while every "
                "chain, proof and bundle still verifies. A party no case registered is 404 "
                "`/problems/party-not-found`. The `reason` is recorded unsealed on every case of "
                "the party, for the audit trail: it must not contain personal data (cite the "
                "request's reference, not the person).",
                "parameters": [
                    {
                        "name": "party_id",
                        "in": "path",
                        "required": True,
                        "schema": PARTY_ID,
                    },
                    {
                        "name": "agency",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                        "description": "erase the person only where this agency (the "
                        "`actor.agency` of the cases that registered them) holds their data; "
                        "omit it to erase them everywhere",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["reason"],
                                "additionalProperties": False,
                                "properties": {
                                    "reason": {
                                        "type": "string",
                                        "minLength": 1,
                                        "maxLength": 500,
                                        "description": "why erasure was requested; recorded "
                                        "unsealed, so no personal data",
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json({"type": "object"}, "the outcome"),
                    **_problems(400, 403, 404, 415, 422, 503),
                },
            }
        },
        "/v1/log/tree-head": {
            "get": {
                "summary": "The latest signed tree head",
                "security": [],
                "responses": {"200": _json(_ref("TreeHead"), "signed tree head"), **_problems(404)},
            }
        },
        "/v1/log/tree-heads": {
            "get": {
                "summary": "Every signed tree head, by size",
                "security": [],
                "parameters": [
                    _query(
                        "after",
                        {"type": "integer", "minimum": 0},
                        "tree heads larger than this size",
                    ),
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"
                    ),
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "tree_heads": {"type": "array", "items": _ref("TreeHead")},
                                "next_after": {"type": ["integer", "null"]},
                            },
                        },
                        "tree heads",
                    ),
                    **_problems(400),
                },
            }
        },
        "/v1/log/public-key": {
            "get": {
                "summary": "The ledger's Ed25519 public key and log id",
                "security": [],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "algorithm": {"const": "Ed25519"},
                                "key": {
                                    "type": "string",
                                    "description": "base64 of the 32 raw bytes",
                                },
                                "log_id": HASH,
                                "pem": {"type": "string"},
                            },
                        },
                        "public key",
                    ),
                    **_problems(404),
                },
            }
        },
        "/v1/log/inclusion": {
            "get": {
                "summary": "An event's inclusion proof against a signed tree head",
                "description": "Name the event by feed `position` or by `event` hash. Without "
                "`tree_size`, the latest signed tree head is used; a `tree_size` with no signed "
                "tree head is 404.",
                "security": [],
                "parameters": [
                    _query("position", {"type": "integer", "minimum": 0}, "feed position"),
                    _query("event", HASH, "event hash"),
                    _query("tree_size", {"type": "integer", "minimum": 1}, "a signed tree size"),
                ],
                "responses": {
                    "200": _json(_ref("InclusionProof"), "the proof"),
                    **_problems(400, 404),
                },
            }
        },
        "/v1/log/consistency": {
            "get": {
                "summary": "A consistency proof between two signed tree heads",
                "security": [],
                "parameters": [
                    _query("first", {"type": "integer", "minimum": 1}, "older signed tree size"),
                    _query("second", {"type": "integer", "minimum": 1}, "newer signed tree size"),
                ],
                "responses": {
                    "200": _json(_ref("ConsistencyProof"), "the proof"),
                    **_problems(400, 404),
                },
            }
        },
        "/v1/feed": {
            "get": {
                "summary": "Every event of the ledger in feed order (positions may have gaps)",
                "parameters": [
                    _query(
                        "after",
                        {"type": "integer", "minimum": 0},
                        "the `next_after` of the previous page",
                    ),
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"
                    ),
                ],
                "responses": {"200": _json(_ref("Feed"), "a page of the feed"), **_problems(400)},
            }
        },
    }


def _schemas() -> dict[str, Any]:
    catalogue = load_catalogue()
    event = event_request_schema(catalogue)
    event.pop("$schema", None)
    return {
        "Problem": problem_schema(),
        "Event": event,
        "EventBatch": {
            "type": "object",
            "additionalProperties": False,
            "required": ["events"],
            "properties": {
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1000,
                    "items": _ref("Event"),
                },
                "expected_seq": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "the last seq the caller saw; 0 = the case must not exist yet",
                },
            },
        },
        "AppendResult": {
            "type": "object",
            "required": ["case_id", "events"],
            "properties": {
                "case_id": CASE_ID,
                "events": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["seq", "hash", "prev_hash", "recorded_at", "position"],
                        "properties": {
                            "seq": {"type": "integer"},
                            "hash": HASH,
                            "prev_hash": HASH,
                            "recorded_at": {"type": "string"},
                            "position": {
                                "type": "integer",
                                "description": "place in the global feed",
                            },
                            "leaf_index": {
                                "type": ["integer", "null"],
                                "description": "null until sealed",
                            },
                        },
                    },
                },
                "transparency_log": {"type": "object"},
            },
        },
        "Record": {
            "type": "object",
            "description": "An envelope exactly as hashed, plus `hash` (see docs/design.md)",
            "required": [*sorted(ENVELOPE_FIELDS), "hash"],
            "properties": {
                "case_id": CASE_ID,
                "seq": {"type": "integer", "minimum": 1},
                "type": {"type": "string"},
                "schema_version": {"type": "integer"},
                "occurred_at": {"type": "string"},
                "recorded_at": {"type": "string"},
                "recorded_by": {"type": "string"},
                "actor": {"type": "object"},
                "payload": {"type": "object"},
                "evidence": {"type": "array"},
                "prev_hash": HASH,
                "hash": HASH,
            },
        },
        "EventPage": {
            "type": "object",
            "properties": {
                "case_id": CASE_ID,
                "events": {"type": "array", "items": _ref("Record")},
                "next_after_seq": {"type": ["integer", "null"]},
                "revealed": {
                    "type": "array",
                    "description": "with reveal=personal: each sealed value of the page",
                    "items": {
                        "type": "object",
                        "properties": {
                            "seq": {"type": "integer"},
                            "path": {"type": "string"},
                            "party_id": {"type": "string"},
                            "field": {"type": "string"},
                            "value": {"type": ["string", "null"]},
                            "status": {"enum": ["revealed", "erased", "restricted", "unreadable"]},
                        },
                    },
                },
            },
        },
        "CaseState": {"type": "object", "description": "see docs/design.md, section Case state"},
        "CaseList": {
            "type": "object",
            "properties": {
                "cases": {"type": "array", "items": {"type": "object"}},
                "next_after": {"type": ["string", "null"]},
            },
        },
        "ChainReport": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["ok", "length", "head_hash"],
                    "properties": {
                        "ok": {"const": True},
                        "length": {"type": "integer"},
                        "head_hash": HASH,
                    },
                },
                {
                    "type": "object",
                    "required": ["ok", "first_bad_seq", "reason"],
                    "properties": {
                        "ok": {"const": False},
                        "first_bad_seq": {"type": "integer"},
                        "reason": {"type": "string"},
                    },
                },
            ]
        },
        "Feed": {
            "type": "object",
            "properties": {
                "events": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "position": {"type": "integer"},
                            "case_id": CASE_ID,
                            "seq": {"type": "integer"},
                            "type": {"type": "string"},
                            "hash": HASH,
                            "recorded_at": {"type": "string"},
                        },
                    },
                },
                "next_after": {"type": "integer"},
            },
        },
        "Catalogue": {"type": "object"},
        "VerdictEvent": {
            "type": "object",
            "description": "An event a verdict cites, and what it is cited for",
            "required": ["seq", "hash", "type", "role"],
            "additionalProperties": False,
            "properties": {
                "seq": {"type": "integer", "minimum": 1},
                "hash": HASH,
                "type": {"type": "string"},
                "role": {
                    "description": "trigger, activation, satisfies, late, stale, failing, "
                    "subject, context, waiver or lapse (docs/policy.md)",
                    "type": "string",
                },
                "late_entry": {"const": True},
                "corrected_by": {"type": "integer"},
            },
        },
        "Verdict": {
            "type": "object",
            "required": [
                "case_id",
                "obligation",
                "rule",
                "status",
                "severity",
                "basis",
                "source",
                "due",
                "settled_at",
                "accountable",
                "performer",
                "supervisor",
                "trigger",
                "activated_by",
                "evidence",
                "flags",
                "reason",
                "policy",
            ],
            "additionalProperties": False,
            "properties": {
                "case_id": CASE_ID,
                "obligation": {"type": "string"},
                "rule": {"type": ["string", "null"], "description": "null: a one-rule obligation"},
                "status": {"enum": list(STATUSES)},
                "severity": {"type": "string"},
                "basis": {"type": "string"},
                "source": {"type": "string"},
                "due": {"type": ["string", "null"]},
                "settled_at": {"type": ["string", "null"]},
                "accountable": {"type": ["string", "null"]},
                "performer": {"type": ["string", "null"]},
                "supervisor": {"type": ["string", "null"]},
                "trigger": {"oneOf": [EVENT_REF, {"type": "null"}]},
                "activated_by": {"oneOf": [EVENT_REF, {"type": "null"}]},
                "client_share": {"type": "object"},
                "evidence": {"type": "array", "items": _ref("VerdictEvent")},
                "flags": {"type": "array", "items": {"type": "string"}},
                "reason": {"type": "string"},
                "policy": {
                    "type": "object",
                    "required": ["id", "version", "sha256"],
                    "properties": {
                        "id": {"type": "string"},
                        "version": {"type": ["string", "integer"]},
                        "sha256": HASH,
                    },
                },
            },
        },
        "Attribution": {
            "type": "object",
            "properties": {
                "case_id": CASE_ID,
                "as_of": {"type": "string"},
                "policy": {"type": "object"},
                "verdicts": {"type": "array", "items": _ref("Verdict")},
            },
        },
        "Report": {
            "type": "object",
            "properties": {
                "policy": {"type": "object"},
                "filters": {"type": "object"},
                "agencies": {"type": "array", "items": {"type": "object"}},
                "breaches": {"type": "array", "items": {"type": "object"}},
            },
        },
        "TreeHead": {
            "type": "object",
            "required": ["log_id", "tree_size", "root_hash", "timestamp", "signature"],
            "description": 'Ed25519 signature (base64) over b"casetrail.tree-head.v1\\n" '
            "|| RFC 8785 bytes of {log_id, tree_size, root_hash, timestamp}",
            "properties": {
                "log_id": HASH,
                "tree_size": {"type": "integer", "minimum": 1},
                "root_hash": HASH,
                "timestamp": {"type": "string"},
                "signature": {"type": "string"},
            },
        },
        "InclusionProof": {
            "type": "object",
            "properties": {
                "leaf_index": {"type": "integer"},
                "position": {"type": "integer"},
                "case_id": CASE_ID,
                "seq": {"type": "integer"},
                "event_hash": HASH,
                "leaf_hash": HASH,
                "tree_size": {"type": "integer"},
                "proof": {"type": "array", "items": HASH},
                "tree_head": _ref("TreeHead"),
            },
        },
        "ConsistencyProof": {
            "type": "object",
            "properties": {
                "first": {"type": "integer"},
                "second": {"type": "integer"},
                "proof": {"type": "array", "items": HASH},
                "first_tree_head": _ref("TreeHead"),
                "second_tree_head": _ref("TreeHead"),
            },
        },
        "Bundle": {
            "type": "object",
            "required": list(BUNDLE_FIELDS),
            "additionalProperties": False,
            "properties": {
                "format": {"const": "casetrail.bundle.v2"},
                "case_id": CASE_ID,
                "catalogue_version": {"type": "integer"},
                "public_key": {"type": "object"},
                "tree_head": _ref("TreeHead"),
                "case_head": {
                    "type": "object",
                    "description": "the ledger's signature that the case ended at `seq` "
                    "(`head_hash`) in the tree of the bundle's tree head: Ed25519 (base64) "
                    'over b"casetrail.case-head.v1\\n" || RFC 8785 bytes of {log_id, case_id, '
                    "seq, head_hash, tree_size, root_hash, timestamp}",
                },
                "events": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "record": _ref("Record"),
                            "leaf_index": {"type": "integer"},
                            "inclusion_proof": {"type": "array", "items": HASH},
                        },
                    },
                },
            },
        },
    }


def build_openapi() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "casetrail",
            "version": "1.0.0",
            "description": "A tamper-evident ledger of real-estate brokerage cases. Errors are "
            "RFC 9457 problem documents; each `type` is explained at its own URI.",
        },
        "servers": [{"url": "/"}],
        "security": BEARER,
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "a casetrail API key"}
            },
        },
    }
