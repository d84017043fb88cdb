"""Turning a parsed append body into validated event drafts, or saying exactly what is wrong.

The body is either one event object or `{"events": [...], "expected_seq": N}`. Every
complaint names the JSON Pointer of the field at fault and the constraint it breaks, so an
integrator can fix its request without guessing. A complaint never repeats the value that
was sent (at most its type and length): a field at fault may hold personal data, and
problem documents end up in client logs and support tickets.
"""

from __future__ import annotations

import hashlib
import hmac
import re
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
API_KEY_ID = re.compile(r"^key_[0-9a-f]{12}$")
"""The shape of the ledger's API key ids, which the ledger writes as the actor of the
records it makes for a key (a reveal's pi.accessed)."""
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
                f"an integer of {len(item.text)} digits is beyond ±(2^53 − 1), which a double "
                "cannot hold exactly; send it as a string",
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

    def append_request(self, body: Any, *, caller_key_id: str) -> AppendRequest:
        """Validate a whole append body (already parsed as strict JSON) sent by a client
        with the API key `caller_key_id`."""
        if not isinstance(body, dict):
            raise InvalidEvent(
                'the body must be one event object or {"events": [...], "expected_seq": N}',
                pointer="",
            )

        if "events" not in body:
            draft = self.event(body, "")
            self.client_may_record(draft, "", caller_key_id)
            return AppendRequest([draft], expected_seq=None)

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
        for index, draft in enumerate(drafts):
            self.client_may_record(draft, f"/events/{index}", caller_key_id)
        return AppendRequest(drafts, expected_seq)

    def client_may_record(self, draft: Draft, pointer: str, caller_key_id: str) -> None:
        """Refuse what only the ledger records: its own event types and fields, and records
        made in the name of another API key. Whatever a client key may do (admin included),
        it cannot forge the trail of erasures and reveals the ledger keeps itself."""
        kind = self.catalogue.types[draft.type]
        if kind.system:
            raise InvalidEvent(
                f"{kind.name} is recorded by the ledger itself, when it performs the act "
                "(erasure: POST /v1/parties/{party_id}/erasure); it cannot be appended",
                pointer=f"{pointer}/type",
            )
        for name in kind.system_fields:
            if name in draft.payload:
                raise InvalidEvent(
                    f"{kind.name}: {name} is set by the ledger on the records it makes itself; "
                    "leave it out",
                    pointer=f"{pointer}/payload/{_escape(name)}",
                )
        actor_id = draft.actor["id"]
        if API_KEY_ID.fullmatch(actor_id) and actor_id != caller_key_id:
            raise InvalidEvent(
                "an actor id of the form key_<12 hex digits> names one of the ledger's API "
                "keys, and only that key may act under it; name the person or system instead",
                pointer=f"{pointer}/actor/id",
            )

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
                "2024-03-01T10:00:00+08:00 or 2024-03-01T02:00:00Z, on a real calendar day",
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
                    f"{kind.name}: {name} is not a calendar date (YYYY-MM-DD)",
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
    # The schema the value broke (a pattern, or a nullable field's anyOf around one) goes
    # along, so that the caller is told the rule and not only that there is one.
    definition = objection.definition if isinstance(objection.definition, dict) else {}
    keyword = "anyOf" if "anyOf" in definition else "pattern"
    return ValidationError(
        "does not match the required format",
        path=path,
        validator=keyword,
        validator_value=definition.get(keyword),
        instance=objection.value,
        schema=definition,
    )


def _is_calendar_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return value.isascii() and len(value) == 10


def _describe(error: ValidationError) -> str:
    """The constraint a value breaks, in words, with the value's shape but never the value.

    Only messages that name members (required, unexpected) come from jsonschema: the rest
    of its messages start with the offending value itself.
    """
    keyword, limit, got = error.validator, error.validator_value, _shape(error.instance)
    if keyword == "required":
        return str(error.message).replace("is a required property", "is required")
    if keyword == "additionalProperties":
        return f"{error.message} (the ledger sets seq, recorded_at, hash and the rest itself)"
    if keyword == "type":
        return f"must be {_kinds(limit)}, got {got}"
    if keyword == "enum":
        options = list(limit)
        if len(options) > 12:
            return f"is not one of the catalogue's values (see /v1/catalogue), got {got}"
        return f"must be one of {', '.join(str(option) for option in options)}, got {got}"
    if keyword == "const":
        return f"must be {limit}, got {got}"
    if keyword in ("minLength", "maxLength"):
        bound = "at least" if keyword == "minLength" else "at most"
        return f"must be {bound} {limit} characters long, got {got}"
    if keyword in ("minItems", "maxItems"):
        bound = "at least" if keyword == "minItems" else "at most"
        return f"must hold {bound} {limit} items, got {got}"
    if keyword in ("minimum", "maximum"):
        return f"must be {'≥' if keyword == 'minimum' else '≤'} {limit}"
    if keyword == "pattern":
        schema = error.schema if isinstance(error.schema, dict) else {}
        hint = schema.get("description", "see the schemas at /v1/catalogue")
        return f"is not in the required format ({hint}), got {got}"
    if keyword == "anyOf":
        alternatives = " or ".join(_summary(option) for option in limit)
        return f"must be {alternatives}, got {got}"
    if keyword == "format":
        return f"is not a valid {limit}"
    return f"does not meet the schema's {keyword} constraint (see /v1/catalogue), got {got}"


def _shape(value: Any) -> str:
    """What was sent, without what it says: its JSON type and size."""
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | OutOfRange):
        return "an integer"
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    if isinstance(value, dict):
        return f"an object of {len(value)} members"
    if value is None:
        return "null"
    return "a number"


def _kinds(expected: Any) -> str:
    names = {"string": "a string", "integer": "an integer", "boolean": "true or false"}
    names |= {"array": "an array", "object": "an object", "null": "null", "number": "a number"}
    listed = expected if isinstance(expected, list) else [expected]
    return " or ".join(names.get(str(kind), str(kind)) for kind in listed)


def _summary(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "another shape"
    if "enum" in schema:
        return "one of " + ", ".join(str(option) for option in schema["enum"])
    text = _kinds(schema.get("type", "any value"))
    if "description" in schema:
        text += f" ({schema['description']})"
    elif "maxLength" in schema:
        text += f" of {schema.get('minLength', 0)}–{schema['maxLength']} characters"
    return text


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
