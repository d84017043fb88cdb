"""The transparency log over HTTP: signed tree heads, the public key, proofs, bundles.

Tree heads, the public key and proofs are public (no API key): anyone holding a bundle or
a receipt must be able to check it. They reveal event hashes, leaf positions and the log's
growth, never which case an event belongs to: an inclusion proof names the case and seq
only to a key that may read that case, so walking the positions enumerates nothing.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api import params
from api.auth import READERS, optional_principal, require
from api.ledger_routes import json_response, runtime_of
from api.problems import problem_response
from domain.errors import InvalidParameter
from domain.signing import TreeHead
from projections.apikeys import Principal

HEX_HASH = re.compile(r"^[0-9a-f]{64}$")


async def tree_head(request: Request) -> Response:
    runtime = runtime_of(request)
    head = await run_in_threadpool(runtime.log.tree_head)
    if head is None:
        return problem_response(
            "tree-head-not-found", "no tree head has been signed yet; the log is empty"
        )
    return json_response(head.as_json())


async def tree_heads(request: Request) -> Response:
    runtime = runtime_of(request)
    after = params.integer(request, "after", default=0)
    limit = params.integer(request, "limit", default=100, minimum=1, maximum=1000)
    heads = await run_in_threadpool(runtime.log.tree_heads, after=after, limit=limit)
    next_after = heads[-1].tree_size if len(heads) == limit else None
    return json_response(
        {"tree_heads": [head.as_json() for head in heads], "next_after": next_after}
    )


async def public_key(request: Request) -> Response:
    key = runtime_of(request).signing_key
    if key is None:
        return problem_response("not-found", "this ledger has no signing key yet")
    return json_response(
        {
            "algorithm": "Ed25519",
            "key": key.public_key_b64(),
            "log_id": key.log_id,
            "pem": key.public_key_pem(),
            "signed_message": 'b"casetrail.tree-head.v1\\n" || RFC 8785 bytes of '
            "{log_id, tree_size, root_hash, timestamp}",
        }
    )


async def inclusion(request: Request) -> Response:
    runtime = runtime_of(request)
    position = params.integer(request, "position", default=-1, minimum=0)
    event = params.text(request, "event", max_length=64)
    size = params.integer(request, "tree_size", default=0, minimum=0)
    if (position >= 0) == (event is not None):
        raise InvalidParameter(
            "give exactly one of position (a feed position) or event (an event hash)",
            pointer="/query/position",
        )
    if event is not None and not HEX_HASH.fullmatch(event):
        raise InvalidParameter("event must be 64 lower-case hex digits", pointer="/query/event")
    if "tree_size" in request.query_params and size == 0:
        raise InvalidParameter("tree_size must be at least 1", pointer="/query/tree_size")

    def prove() -> Response:
        log = runtime.log
        leaf = log.leaf_by_position(position) if event is None else log.leaf_by_event(event)
        if leaf is None:
            return problem_response(
                "not-found",
                "that event is not in the log yet (it is sealed within seconds of being "
                "appended) or does not exist",
            )
        head = _signed_head(runtime, size or None)
        if head is None:
            return problem_response(
                "tree-head-not-found",
                f"no tree head of size {size} was signed; see /v1/log/tree-heads"
                if size
                else "no tree head has been signed yet",
            )
        if int(leaf["leaf_index"]) >= head.tree_size:
            if size:
                raise InvalidParameter(
                    f"leaf {leaf['leaf_index']} is not in the tree of size {head.tree_size} "
                    "(index ≥ size); ask for a later tree head",
                    pointer="/query/tree_size",
                )
            return problem_response(
                "tree-head-not-found",
                "the event is sealed but no signed tree head covers it yet; retry shortly",
            )
        answer = log.inclusion(leaf, head).as_json()
        if not _may_read(runtime, caller, str(leaf["case_id"])):
            del answer["case_id"], answer["seq"]
        return json_response(answer)

    caller = optional_principal(request)
    return await run_in_threadpool(prove)


async def consistency(request: Request) -> Response:
    runtime = runtime_of(request)
    first = params.integer(request, "first", default=-1, minimum=0)
    second = params.integer(request, "second", default=-1, minimum=0)
    if first < 0 or second < 0:
        raise InvalidParameter("give first and second tree sizes", pointer="/query/first")
    if first == 0:
        raise InvalidParameter(
            "first must be at least 1: every tree is consistent with the empty one",
            pointer="/query/first",
        )
    if first > second:
        raise InvalidParameter("first must not exceed second", pointer="/query/first")

    def prove() -> Response:
        heads = {size: _signed_head(runtime, size) for size in (first, second)}
        for name, size in (("first", first), ("second", second)):
            if heads[size] is None:
                return problem_response(
                    "tree-head-not-found",
                    f"no tree head of size {size} was signed ({name}); see /v1/log/tree-heads",
                    pointer=f"/query/{name}",
                )
        proof = runtime.log.consistency_proof(first, second) if first != second else []
        return json_response(
            {
                "first": first,
                "second": second,
                "proof": [element.hex() for element in proof],
                "first_tree_head": heads[first].as_json(),  # type: ignore[union-attr]
                "second_tree_head": heads[second].as_json(),  # type: ignore[union-attr]
            }
        )

    return await run_in_threadpool(prove)


async def case_bundle(request: Request) -> Response:
    runtime = runtime_of(request)
    caller = require(request, READERS, "export dispute bundles")
    case_id = params.case_id(request)

    def build() -> dict[str, Any]:
        runtime.visible_case(case_id, caller)
        return runtime.bundle(case_id)

    bundle = await run_in_threadpool(build)
    return json_response(
        bundle,
        headers={"Content-Disposition": f'attachment; filename="{case_id}.bundle.json"'},
    )


def _may_read(runtime: Any, caller: Principal | None, case_id: str) -> bool:
    if caller is None or caller.role not in READERS:
        return False
    agency = runtime.case_agency(case_id)
    return agency is not None and caller.may_see_agency(agency)


def _signed_head(runtime: Any, size: int | None) -> TreeHead | None:
    head: TreeHead | None = runtime.log.tree_head(size)
    return head
