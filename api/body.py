"""Reading a request body as strict JSON, within limits of size, time and type.

What reaches the ledger must mean one thing to every parser, because its bytes are
hashed and re-parsed by verifiers for years. So the body is refused when:

- it is not `application/json` (415), larger than the limit (413, decided from
  Content-Length or as soon as the stream passes the limit, never after reading it all),
  or arrives slower than the body timeout (408);
- it is not UTF-8 JSON, holds `NaN`/`Infinity`, a number too large for a double, or the
  same key twice in one object (400: parsers disagree about all of these);
- it holds a fraction or exponent anywhere, an integer beyond ±(2^53 − 1), or a string
  with a lone surrogate (422, with the JSON Pointer of the value: these parse, but
  would not survive a round trip through a double or UTF-8 unchanged).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request

from domain.canonical import MAX_EXACT_INTEGER
from domain.errors import MalformedInput
from domain.validation import OutOfRange, check_json_safe


class BodyTooLarge(MalformedInput):
    kind = "body-too-large"


class UnsupportedMediaType(MalformedInput):
    kind = "unsupported-media-type"


class BodyTimeout(MalformedInput):
    kind = "body-timeout"


class _Rejected(Exception):
    pass


def check_content_type(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media_type, _, parameters = content_type.partition(";")
    if media_type.strip().lower() != "application/json":
        raise UnsupportedMediaType(
            "send the body as application/json (got "
            f"{media_type.strip() or 'no content type'}); other types are refused so that "
            "no browser form can post into the ledger",
            pointer="/headers/Content-Type",
        )
    charset = parameters.strip().lower()
    if charset and charset.replace(" ", "") not in ("charset=utf-8", 'charset="utf-8"'):
        raise UnsupportedMediaType(
            f"the body must be UTF-8 (got {parameters.strip()})", pointer="/headers/Content-Type"
        )


async def read_body(request: Request, *, limit: int, timeout: float) -> bytes:
    """Read the raw body, refusing it as soon as it is known to be too large or too slow."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedInput(
                "Content-Length is not a number", pointer="/headers/Content-Length"
            )
        if int(declared) > limit:
            raise BodyTooLarge(
                f"the body is {int(declared)} bytes; the limit is {limit} bytes "
                "(split large batches into several requests)",
                pointer="/headers/Content-Length",
            )

    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(
                    f"the body exceeds the limit of {limit} bytes "
                    "(split large batches into several requests)",
                    pointer="",
                )
            chunks.append(chunk)

    try:
        async with asyncio.timeout(timeout):
            await collect()
    except TimeoutError:
        raise BodyTimeout(
            f"the body did not arrive within {timeout:g} seconds", pointer=""
        ) from None
    return b"".join(chunks)


def parse_strict(raw: bytes) -> Any:
    """Parse JSON strictly (see the module docstring) and check the values that parse."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedInput(
            f"the body is not valid UTF-8 (byte {error.start})", pointer=""
        ) from None

    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except _Rejected as rejected:
        raise MalformedInput(str(rejected), pointer="") from None
    except json.JSONDecodeError as error:
        raise MalformedInput(
            f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}",
            pointer="",
        ) from None
    except RecursionError:
        raise MalformedInput("the body is nested too deeply", pointer="") from None

    check_json_safe(value)
    return value


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Rejected(
                f"the key {key!r} appears twice in one object; JSON parsers disagree about "
                "which one counts, so the ledger accepts neither"
            )
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise _Rejected(f"{name} is not a JSON number")


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        # Described, not repeated: a problem never echoes a submitted value.
        raise _Rejected(f"a number of {len(text)} characters overflows a double")
    return value


def _parse_int(text: str) -> int | OutOfRange:
    if len(text) > 17:
        return OutOfRange(text)
    value = int(text)
    if not -MAX_EXACT_INTEGER <= value <= MAX_EXACT_INTEGER:
        return OutOfRange(text)
    return value
