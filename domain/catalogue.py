"""The event catalogue: which event types exist, what their payloads hold, which phase
of a brokerage case each belongs to, and which payload fields are personal data.

The catalogue is data (`catalogue/v1.yaml`) compiled here into JSON Schemas, so the
ledger validates with exactly the schemas it publishes at `GET /v1/catalogue`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import yaml
from jsonschema import Draft202012Validator

from domain.canonical import MAX_EXACT_INTEGER

CATALOGUE_DIR = Path(__file__).parent / "catalogue"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

CASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
"""Every other identifier a client sends: actor ids and agencies, party, agent, offer and
complaint ids, and every payload field of the catalogue's `id` kind. ASCII only, so that no
id can pass for another (a Cyrillic letter, a zero-width space, a right-to-left override)
and none can start a spreadsheet formula or carry markup; the case-id rule, widened to the
200 characters an agency id of an API key may have."""
ID_RULE = "1–200 characters of A–Z a–z 0–9 . _ -, starting with a letter or digit"
RFC3339_WITH_OFFSET = re.compile(
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    "T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?"
    "(Z|[+-][0-9]{2}:[0-9]{2})$"
)

_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": ID_PATTERN.pattern,
    "description": ID_RULE,
}
_TEXT = {"type": "string", "maxLength": 20000}
_FIELD_KINDS: dict[str, dict[str, Any]] = {
    "id": _ID,
    "text": _TEXT,
    "personal": {"type": "string", "minLength": 1, "maxLength": 2000},
    "bool": {"type": "boolean"},
    "int": {"type": "integer", "minimum": -MAX_EXACT_INTEGER, "maximum": MAX_EXACT_INTEGER},
    "money": {"type": "integer", "minimum": 0, "maximum": MAX_EXACT_INTEGER},
    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "format": "date"},
    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    "list": {"type": "array"},
    "object": {"type": "object"},
    "any": {},
}


@dataclass(frozen=True)
class EventType:
    """One event type of the catalogue."""

    name: str
    schema_version: int
    phase: str | None
    labels: dict[str, str]
    required: tuple[str, ...]
    personal: tuple[str, ...]
    dates: tuple[str, ...]
    subject: str | None
    payload_schema: dict[str, Any]
    system: bool
    """Recorded by the ledger itself (erasure outcomes): never accepted from a client."""
    system_fields: tuple[str, ...]
    """Payload fields only the ledger sets (the API key of a reveal it records)."""
    validator: Draft202012Validator = field(repr=False, compare=False)
    quick_check: Callable[[Any], Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Catalogue:
    version: int
    types: dict[str, EventType]
    phases: tuple[dict[str, str], ...]
    actor_roles: dict[str, dict[str, str]]
    party_roles: tuple[str, ...]

    def phase_rank(self, phase: str) -> int:
        return [entry["id"] for entry in self.phases].index(phase)

    def event_type(self, name: str) -> EventType | None:
        return self.types.get(name)

    def document(self) -> dict[str, Any]:
        """The catalogue as served to integrators: every type with its JSON Schema."""
        return {
            "version": self.version,
            "envelope_schema": event_request_schema(self),
            "phases": list(self.phases),
            "actor_roles": self.actor_roles,
            "party_roles": list(self.party_roles),
            "types": {
                name: {
                    "schema_version": kind.schema_version,
                    "phase": kind.phase,
                    "labels": kind.labels,
                    "personal_fields": list(kind.personal),
                    "subject_field": kind.subject,
                    "recorded_by_ledger": kind.system,
                    "ledger_fields": list(kind.system_fields),
                    "payload_schema": kind.payload_schema,
                }
                for name, kind in sorted(self.types.items())
            },
        }


def parse_occurred_at(value: str) -> datetime | None:
    """Parse an RFC 3339 timestamp that carries an offset; None if it is not one."""
    if not RFC3339_WITH_OFFSET.fullmatch(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@cache
def load_catalogue(version: int = 1) -> Catalogue:
    path = CATALOGUE_DIR / f"v{version}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))

    types = {
        name: _compile_type(name, spec, data["version"]) for name, spec in data["types"].items()
    }
    return Catalogue(
        version=data["version"],
        types=types,
        phases=tuple(data["phases"]),
        actor_roles=data["actor_roles"],
        party_roles=tuple(data["party_roles"]),
    )


def event_request_schema(catalogue: Catalogue) -> dict[str, Any]:
    """JSON Schema of one event as an integrator sends it (the payload checked per type)."""
    return {
        "$schema": SCHEMA_DIALECT,
        "type": "object",
        "additionalProperties": False,
        "required": ["type", "occurred_at", "actor", "payload"],
        "properties": {
            "type": {"type": "string", "enum": sorted(catalogue.types)},
            "schema_version": {"type": "integer", "enum": [catalogue.version]},
            "occurred_at": {
                "type": "string",
                "pattern": RFC3339_WITH_OFFSET.pattern,
                "description": "RFC 3339 with an offset; hashed exactly as sent",
            },
            "actor": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "role", "agency"],
                "properties": {
                    "id": _ID,
                    "role": {"type": "string", "enum": sorted(catalogue.actor_roles)},
                    "agency": _ID,
                },
            },
            "payload": {"type": "object"},
            "evidence": {
                "type": "array",
                "maxItems": 100,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "sha256", "media_type"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 500},
                        "sha256": _FIELD_KINDS["sha256"],
                        "media_type": {"type": "string", "minLength": 1, "maxLength": 200},
                    },
                },
            },
        },
    }


def compile_quick_check(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """A compiled validator for the common case, where the input is valid.

    fastjsonschema checks a valid event in a few microseconds; when it objects, the
    caller asks the reference `jsonschema` validator for the exact error and pointer, so
    the two must agree (a test holds them to the same verdicts).
    """
    draft7 = {key: value for key, value in schema.items() if key != "$schema"}
    check: Callable[[Any], Any] = fastjsonschema.compile(draft7)
    return check


def _compile_type(name: str, spec: dict[str, Any], version: int) -> EventType:
    required = spec.get("required", {}) or {}
    optional = spec.get("optional", {}) or {}

    properties: dict[str, Any] = {}
    personal: list[str] = []
    dates: list[str] = []
    for field_name, kind in {**required, **optional}.items():
        properties[field_name] = _field_schema(name, field_name, kind)
        if kind == "personal":
            personal.append(field_name)
        if isinstance(kind, str) and kind.rstrip("?") == "date":
            dates.append(field_name)

    payload_schema = {
        "$schema": SCHEMA_DIALECT,
        "type": "object",
        "required": list(required),
        "properties": properties,
        "additionalProperties": False,
    }
    Draft202012Validator.check_schema(payload_schema)

    return EventType(
        name=name,
        schema_version=version,
        phase=spec.get("phase"),
        labels={"en": spec["en"], "zh": spec["zh"]},
        required=tuple(required),
        personal=tuple(personal),
        dates=tuple(dates),
        subject=spec.get("subject"),
        payload_schema=payload_schema,
        system=_system(name, spec, properties),
        system_fields=tuple(spec.get("system_fields", ())),
        validator=Draft202012Validator(payload_schema),
        quick_check=compile_quick_check(payload_schema),
    )


def _system(name: str, spec: dict[str, Any], properties: dict[str, Any]) -> bool:
    system = spec.get("system", False)
    if not isinstance(system, bool):
        raise ValueError(f"catalogue: {name}.system must be true or false")
    unknown = set(spec.get("system_fields", ())) - set(properties)
    if unknown:
        raise ValueError(f"catalogue: {name}.system_fields names no field {sorted(unknown)}")
    return system


def _field_schema(type_name: str, field_name: str, kind: Any) -> dict[str, Any]:
    if isinstance(kind, list):
        return {"enum": kind}
    if isinstance(kind, dict) and "each" in kind:
        return {"type": "array", "items": {"enum": kind["each"]}}
    if isinstance(kind, dict) and "range" in kind:
        low, high = kind["range"]
        return {"type": "integer", "minimum": low, "maximum": high}
    if not isinstance(kind, str):
        raise ValueError(f"catalogue: {type_name}.{field_name} has an unknown kind {kind!r}")

    nullable = kind.endswith("?")
    base = kind.rstrip("?")
    if base.startswith("[") and base.endswith("]"):
        schema = {"type": "array", "items": _field_schema(type_name, field_name, base[1:-1])}
    elif base in _FIELD_KINDS:
        schema = dict(_FIELD_KINDS[base])
    else:
        raise ValueError(f"catalogue: {type_name}.{field_name} has an unknown kind {kind!r}")

    if nullable:
        return {"anyOf": [schema, {"type": "null"}]}
    return schema
