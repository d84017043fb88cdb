"""Turning a parsed append body into validated event drafts, or saying exactly what is wrong.

The body is either one event object or `{"events": [...], "expected_seq": N}`. Every
complaint names the JSON Pointer of the field at fault, so an integrator can fix its
request without guessing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastjsonschema import JsonSchemaValueException
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from domain.canonical import MAX_EXACT_INTEGER, canonical_bytes
from domain.catalogue import (
    Catalogue,
    compile_quick_check,
    event_request_schema,
    parse_occurred_at,
)
from domain.errors import InvalidEvent

MAX_EVENTS_PER_REQUEST = 1000
MAX_DEPTH = 32
"""Deepest nesting of objects and arrays accepted anywhere in a body (an event's payload
sits at depth 3 of a batch); deeper input is refused before anything tries to encode it."""


@dataclass(frozen=True)
class Draft:
    """An event as the caller sent it, checked against the catalogue."""

    type: str
    schema_version: int
    occurred_at: str
    actor: dict[str, str]
    payload: dict[str, Any]
    evidence: list[dict[str, str]]

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "schema_version": self.schema_version,
            "occurred_at": self.occurred_at,
            "actor": self.actor,
            "payload": self.payload,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class AppendRequest:
    drafts: list[Draft]
    expected_seq: int | None


class OutOfRange:
    """An integer literal beyond what a double holds exactly; reported with its pointer."""

    def __init__(self, text: str) -> None:
        self.text = text


def check_json_safe(value: Any, pointer_prefix: str = "") -> None:
    """Refuse floats, out-of-range integers and lone surrogates, naming where they are.

    The first pass only asks whether anything is wrong, which keeps a valid body cheap;
    the second, rare pass builds JSON Pointers to name the value at fault.
    """
    if _all_values_safe(value):
        return

    stack: list[tuple[Any, str, int]] = [(value, pointer_prefix, 0)]
    while stack:
        item, pointer, depth = stack.pop()
        kind = type(item)
        if kind in (dict, list) and depth >= MAX_DEPTH:
            raise InvalidEvent(
                f"values are nested more than {MAX_DEPTH} levels deep here", pointer=pointer
            )
        if kind is dict:
            for key, child in item.items():
                _check_string(key, pointer)
                stack.append((child, f"{pointer}/{_escape(key)}", depth + 1))
        elif kind is list:
            stack.extend(
                (child, f"{pointer}/{index}", depth + 1) for index, child in enumerate(item)
            )
        elif kind is str:
            _check_string(item, pointer)
        elif kind is float:
            raise InvalidEvent(
                "numbers with a fraction or an exponent are not accepted anywhere: send money "
                "as an integer of minor units (amount_minor) and other quantities as integers "
                "or strings",
                pointer=pointer,
            )
        elif kind is OutOfRange:
            raise InvalidEvent(
                f"the integer {item.text[:40]} is beyond ±(2^53 − 1), which a double cannot "
                "hold exactly; send it as a string",
                pointer=pointer,
            )


def _all_values_safe(value: Any) -> bool:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is dict:
            if depth >= MAX_DEPTH:
                return False
            for key in item:
                if not key.isascii() and not _valid_unicode(key):
                    return False
            stack.extend((child, depth + 1) for child in item.values())
        elif kind is list:
            if depth >= MAX_DEPTH:
                return False
            stack.extend((child, depth + 1) for child in item)
        elif kind is str:
            if not item.isascii() and not _valid_unicode(item):
                return False
        elif kind is float or kind is OutOfRange:
            return False
    return True


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_string(text: str, pointer: str) -> None:
    if text.isascii():
        return
    if not _valid_unicode(text):
        raise InvalidEvent(
            "a string holds a lone surrogate (\\ud800–\\udfff without its pair), which is "
            "not valid Unicode",
            pointer=pointer,
        )


def request_fingerprint(secret: bytes, method: str, path: str, drafts: Sequence[Draft]) -> str:
    """What an idempotent retry must repeat: method, path and events (not expected_seq).

    Keyed with a ledger secret, so a stored fingerprint cannot be used to confirm a guess
    at the personal data a request carried.
    """
    material = canonical_bytes(
        {"method": method, "path": path, "events": [draft.as_json() for draft in drafts]}
    )
    return hmac.new(secret, material, hashlib.sha256).hexdigest()


class EventValidator:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        schema = event_request_schema(catalogue)
        self.envelope = Draft202012Validator(schema)
        self.envelope_quick_check = compile_quick_check(schema)

    def append_request(self, body: Any) -> AppendRequest:
        """Validate a whole append body (already parsed as strict JSON)."""
        if not isinstance(body, dict):
            raise InvalidEvent(
                'the body must be one event object or {"events": [...], "expected_seq": N}',
                pointer="",
            )

        if "events" not in body:
            return AppendRequest([self.event(body, "")], expected_seq=None)

        unexpected = sorted(set(body) - {"events", "expected_seq"})
        if unexpected:
            raise InvalidEvent(
                f"unexpected member {unexpected[0]!r}; a batch holds only events and expected_seq",
                pointer=f"/{_escape(unexpected[0])}",
            )
        events = body["events"]
        if not isinstance(events, list) or not events:
            raise InvalidEvent("events must be a non-empty array of events", pointer="/events")
        if len(events) > MAX_EVENTS_PER_REQUEST:
            raise InvalidEvent(
                f"a batch holds at most {MAX_EVENTS_PER_REQUEST} events, got {len(events)}",
                pointer="/events",
            )

        expected_seq = body.get("expected_seq")
        if expected_seq is not None and (
            type(expected_seq) is not int or not 0 <= expected_seq <= MAX_EXACT_INTEGER
        ):
            raise InvalidEvent(
                "expected_seq must be a whole number ≥ 0 (0 means the case must not exist yet)",
                pointer="/expected_seq",
            )

        drafts = [self.event(event, f"/events/{index}") for index, event in enumerate(events)]
        return AppendRequest(drafts, expected_seq)

    def event(self, event: Any, pointer: str) -> Draft:
        """Validate one event at `pointer` in the body."""
        if not isinstance(event, dict):
            raise InvalidEvent("an event must be a JSON object", pointer=pointer)

        error = _first_error(self.envelope_quick_check, self.envelope, event)
        if error is not None:
            raise InvalidEvent(_describe(error), pointer=pointer + _pointer(error))

        event_type = self.catalogue.types[event["type"]]
        payload_error = _first_error(event_type.quick_check, event_type.validator, event["payload"])
        if payload_error is not None:
            raise InvalidEvent(
                f"{event_type.name}: {_describe(payload_error)}",
                pointer=f"{pointer}/payload{_pointer(payload_error)}",
            )

        if parse_occurred_at(event["occurred_at"]) is None:
            raise InvalidEvent(
                "occurred_at must be an RFC 3339 date-time with an offset, such as "
                f"2024-03-01T10:00:00+08:00 or 2024-03-01T02:00:00Z (got {event['occurred_at']!r})",
                pointer=f"{pointer}/occurred_at",
            )

        return Draft(
            type=event["type"],
            schema_version=event.get("schema_version", self.catalogue.version),
            occurred_at=event["occurred_at"],
            actor=event["actor"],
            payload=event["payload"],
            evidence=event.get("evidence", []),
        )

    def payload(self, event_type: str, payload: Any, pointer: str) -> None:
        """Check a payload (or a correction's replacement) against its type's schema."""
        kind = self.catalogue.types[event_type]
        error = _first_error(kind.quick_check, kind.validator, payload)
        if error is not None:
            raise InvalidEvent(
                f"{kind.name}: {_describe(error)}", pointer=pointer + _pointer(error)
            )
        for name in kind.dates:
            value = payload.get(name)
            if isinstance(value, str) and not _is_calendar_date(value):
                raise InvalidEvent(
                    f"{kind.name}: {name} {value!r} is not a calendar date (YYYY-MM-DD)",
                    pointer=f"{pointer}/{_escape(name)}",
                )


def _first_error(
    quick_check: Any, validator: Draft202012Validator, instance: Any
) -> ValidationError | None:
    try:
        quick_check(instance)
        return None
    except JsonSchemaValueException as quick:
        objection = quick  # the reference validator usually names the error more precisely

    errors = sorted(
        validator.iter_errors(instance), key=lambda e: (list(e.absolute_path), e.message)
    )
    if errors:
        return errors[0]
    # The reference validator reads "$" in a pattern as Python does (a trailing newline
    # passes); the compiled one as JSON Schema means it. The stricter verdict stands.
    path = [part for part in objection.path[1:]]
    return ValidationError(
        f"{objection.value!r} does not match the required format",
        path=path,
        validator="pattern",
        instance=objection.value,
    )


def _is_calendar_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return value.isascii() and len(value) == 10


def _describe(error: ValidationError) -> str:
    if error.validator == "required":
        return str(error.message).replace("is a required property", "is required")
    if error.validator == "additionalProperties":
        return f"{error.message} (the ledger sets seq, recorded_at, hash and the rest itself)"
    if error.validator == "enum" and len(list(error.validator_value)) > 12:
        return f"{error.instance!r} is not one of the catalogue's values"
    if error.validator == "pattern":
        schema = error.schema if isinstance(error.schema, dict) else {}
        hint = schema.get("description", "see the schemas at /v1/catalogue")
        return f"{error.instance!r} is not in the required format ({hint})"
    return str(error.message)


def _pointer(error: ValidationError) -> str:
    path = "".join(f"/{_escape(str(part))}" for part in error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - allowed)
        return f"{path}/{_escape(extra[0])}" if extra else path
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        return f"{path}/{_escape(missing)}" if missing else path
    return path


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
