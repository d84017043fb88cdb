"""Query and path parameters, checked with the same care as bodies."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request

from domain.catalogue import CASE_ID_PATTERN
from domain.errors import InvalidParameter, UnknownCase


def case_id(request: Request, *, for_write: bool = False) -> str:
    value = str(request.path_params["case_id"])
    if CASE_ID_PATTERN.fullmatch(value):
        return value
    if for_write:
        raise InvalidParameter(
            "a case id is 1–64 characters of A–Z, a–z, 0–9, '.', '_' and '-', starting with a "
            "letter or digit",
            pointer="/path/case_id",
        )
    raise UnknownCase(
        "no such case (case ids are 1–64 of A–Z a–z 0–9 . _ -, starting with a letter or digit)",
        pointer="/path/case_id",
    )


def integer(
    request: Request, name: str, *, default: int, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise InvalidParameter(
            f"{name} must be a whole number ≥ {minimum}", pointer=f"/query/{name}"
        )
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"≥ {minimum}"
        raise InvalidParameter(f"{name} must be {bounds}, got {value}", pointer=f"/query/{name}")
    return value


def text(request: Request, name: str, *, max_length: int = 200) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_length:
        raise InvalidParameter(
            f"{name} is longer than {max_length} characters", pointer=f"/query/{name}"
        )
    return raw


def choice(
    request: Request, name: str, allowed: tuple[str, ...], *, default: str | None = None
) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise InvalidParameter(
            f"{name} must be one of {', '.join(allowed)} (got {raw[:40]!r})",
            pointer=f"/query/{name}",
        )
    return raw


def moment(request: Request, name: str) -> datetime | None:
    """An RFC 3339 date-time with an offset, or a plain date (midnight UTC)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        if len(raw) == 10:
            return datetime.fromisoformat(raw).replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidParameter(
            f"{name} must be a date (2024-03-01) or an RFC 3339 date-time with an offset "
            "(2024-03-01T10:00:00+08:00)",
            pointer=f"/query/{name}",
        )
    return parsed
