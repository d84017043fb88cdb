"""Obligation policies as data: the file format, its loader, and the policies we ship.

A policy is a YAML file in ``domain/policies/<id>.yaml``; ``docs/policy.md`` describes every key
for the compliance engineer who writes one. Loaded, it is a tree of frozen dataclasses:

    Policy ── Obligation ── Rule ── Trigger      which events start an instance
                                 ├─ Check        conditions the trigger itself must meet
                                 ├─ Requirement  evidence events, judged by the rule's Timing
                                 ├─ Selector     activation, waivers, lapses, context
                                 ├─ Responsible  accountable / performer / supervisor
                                 └─ ClientFault  when a client shares or carries the fault

Conditions are a small tree too (Test, AllOf, AnyOf, Not, Exists); ``domain/evaluator.py``
gives them meaning. Loading checks everything a policy author can get wrong and says where:
every error is a PolicyError reading, for example,
``cn-baseline.yaml:214: obligations[12].timing.within: 'P1X' is not an ISO 8601 duration``.

The content hash is SHA-256 of the file bytes, so a report can name the exact text it was
computed under; an overlay names its base policy's hash as well.
"""

from __future__ import annotations

import functools
import hashlib
import re
from calendar import monthrange  # the standard library's, not domain/calendar.py
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from domain.calendar import END_OF_TIME, WorkingDayCalendar, load_calendar
from domain.catalogue import load_catalogue

POLICY_DIR = Path(__file__).resolve().parent / "policies"
FORMAT = "casetrail-policy/1"

BASIS_TAGS = ("V", "V2", "R", "I", "D")
SEVERITIES = ("critical", "high", "medium", "low")
TIMING_KINDS = (
    "before",
    "at_or_before",
    "within",
    "within_working_days",
    "invariant",
    "prohibited",
)
ROLE_RESOLVERS = ("agency", "agent_of_record", "branch_manager", "signing_agent", "trigger_actor")
CASE_FACTS = (
    "id",
    "agency",
    "kind",
    "property_ref",
    "parties",
    "staff_parties",
    "principals",
    "buyers",
    "sellers",
    "team",
)
OPERATORS = (
    "eq",
    "ne",
    "in",
    "not_in",
    "present",
    "empty",
    "contains",
    "includes",
    "intersects",
    "disjoint",
    "gte",
    "gt",
    "lte",
    "lt",
    "some",
)

# The parts of one event a path may name, after an optional scope (trigger., item.).
EVENT_FIELDS = ("payload", "actor", "type", "seq", "hash", "occurred_at", "date", "month")
SCOPES = ("trigger", "item", "case")

_POLICY_NAME = re.compile(r"[a-z][a-z0-9-]*\Z")
_DURATION = re.compile(
    r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?\Z"
)
_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


class PolicyError(ValueError):
    """A policy file is malformed; the message names the file, the line and the field."""

    def __init__(self, file: str, line: int, field_path: str, message: str) -> None:
        super().__init__(f"{file}:{line}: {field_path}: {message}")
        self.file = file
        self.line = line
        self.field = field_path
        self.message = message


# --- the format ---------------------------------------------------------------------------------


START_OF_TIME = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration (PnYnMnWnDTnHnMnS); years and months follow the calendar."""

    text: str
    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0
    _exact: timedelta = field(init=False, repr=False, compare=False)
    _months: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Deadlines are computed for every verdict; do the arithmetic set-up once.
        exact = timedelta(
            weeks=self.weeks,
            days=self.days,
            hours=self.hours,
            minutes=self.minutes,
            seconds=self.seconds,
        )
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_months", 12 * self.years + self.months)

    def after(self, moment: datetime) -> datetime:
        """`moment` plus the duration; past the last representable moment, that moment
        (UTC): a deadline or retention end beyond the calendar is "not before the end of
        time", never an error."""
        try:
            return _shift_months(moment, self._months) + self._exact
        except (OverflowError, ValueError):
            return END_OF_TIME

    def before(self, moment: datetime) -> datetime:
        """`moment` minus the duration, saturating at the first representable moment."""
        try:
            return _shift_months(moment - self._exact, -self._months)
        except (OverflowError, ValueError):
            return START_OF_TIME


@dataclass(frozen=True)
class Text:
    """A text in both languages the compliance desk reads."""

    en: str
    zh: str


@dataclass(frozen=True)
class Ref:
    """A ``$``-reference in a condition or a responsibility: a path from a root.

    ``root`` is ``subject`` (the event being tested), ``element`` (a list element inside
    ``some``), ``trigger``, ``item`` (the current ``for_each`` item) or ``case`` (case facts).
    """

    root: str
    path: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Test:
    """One ``path: test`` entry: the value at ``subject`` compared by ``op`` with ``operand``."""

    subject: Ref
    op: str
    operand: Any


@dataclass(frozen=True)
class Some:
    """The operand of ``some``: at least ``at_least`` list elements meet ``where``."""

    where: Condition
    at_least: int


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    part: Condition


@dataclass(frozen=True)
class Exists:
    """Some recorded event of ``events`` meets ``where``, placed in time against the subject."""

    events: tuple[str, ...]
    where: Condition | None
    when: str
    max_age: Duration | None


Condition = Test | AllOf | AnyOf | Not | Exists


@dataclass(frozen=True)
class Selector:
    """Events of given types meeting ``where``; ``when`` places them against the trigger."""

    events: tuple[str, ...]
    where: Condition | None
    when: str


@dataclass(frozen=True)
class Trigger:
    events: tuple[str, ...]
    where: Condition | None
    once_per: Ref | None
    once_per_case: bool


@dataclass(frozen=True)
class ForEach:
    """Repeat a requirement for every element of a list, or every event a selector finds."""

    items: Ref | None
    events: Selector | None


@dataclass(frozen=True)
class Requirement:
    events: tuple[str, ...]
    label: str
    where: Condition | None
    latest: Condition | None
    for_each: ForEach | None


@dataclass(frozen=True)
class Check:
    label: str
    where: Condition


@dataclass(frozen=True)
class Timing:
    kind: str
    within: Duration | None = None
    working_days: int | None = None
    max_age: Duration | None = None
    accept_earlier: bool = False


Resolver = str | Ref


@dataclass(frozen=True)
class Responsible:
    accountable: Resolver
    performer: Resolver
    supervisor: Resolver | None


@dataclass(frozen=True)
class ClientFault:
    """When ``when`` holds for a breached instance, the client ``party`` shares or carries it."""

    id: str
    label: str
    when: Condition
    party: Ref
    effect: str
    share_percent: int | None
    source: str
    basis: str


@dataclass(frozen=True)
class Rule:
    id: str | None
    trigger: Trigger
    applies_from: tuple[Selector, ...]
    holds: tuple[Check, ...]
    requires: tuple[Requirement, ...]
    timing: Timing
    waived_by: tuple[Selector, ...]
    lapses_on: tuple[Selector, ...]
    context: tuple[Selector, ...]
    responsible: Responsible
    client_fault: tuple[ClientFault, ...]
    basis: str
    label: str | None
    in_force_from: date | None = None


@dataclass(frozen=True)
class Obligation:
    id: str
    description: Text
    severity: str
    basis: str
    basis_note: str | None
    source: str
    scope: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Settings:
    late_entry_after: Duration
    same_session: Duration


@dataclass(frozen=True)
class Retention:
    """How long the records of a case (and the personal data in them) must be kept: `keep`
    after the latest event of one of the `after` types. Erasure waits for it (PIPL art 47)."""

    after: tuple[str, ...]
    keep: Duration
    source: str


@dataclass(frozen=True, eq=False)
class Policy:
    """A loaded policy. Compared and hashed by identity: the evaluator caches per object."""

    id: str
    version: str
    title: Text
    jurisdiction: str
    path: Path
    content_hash: str
    extends: Policy | None
    calendar: WorkingDayCalendar
    settings: Settings
    parameters: Mapping[str, Any]
    obligations: tuple[Obligation, ...]
    retention: tuple[Retention, ...] = ()
    _by_id: dict[str, Obligation] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({obligation.id: obligation for obligation in self.obligations})

    def ref(self) -> dict[str, Any]:
        """What every verdict carries to name the policy it was computed under."""
        ref: dict[str, Any] = {"id": self.id, "version": self.version, "sha256": self.content_hash}
        if self.extends is not None:
            ref["extends"] = self.extends.ref()
        return ref

    def obligation(self, obligation_id: str) -> Obligation:
        try:
            return self._by_id[obligation_id]
        except KeyError:
            raise KeyError(f"policy {self.id} has no obligation {obligation_id!r}") from None


# --- loading ------------------------------------------------------------------------------------


def available_policies() -> tuple[str, ...]:
    """The ids of the policies shipped in ``domain/policies/``."""
    return tuple(sorted(path.stem for path in POLICY_DIR.glob("*.yaml")))


def load_policy(policy_id: str) -> Policy:
    """The shipped policy ``policy_id``, read and checked once per process."""
    if not _POLICY_NAME.fullmatch(policy_id):
        raise ValueError(f"policy id {policy_id!r} is not a plain lowercase name")
    return _load_shipped(policy_id)


@functools.cache
def _load_shipped(policy_id: str) -> Policy:
    path = POLICY_DIR / f"{policy_id}.yaml"
    if not path.is_file():
        known = ", ".join(available_policies())
        raise ValueError(f"no policy named {policy_id!r} (shipped policies: {known})")
    return load_policy_file(path)


def load_policy_file(path: Path) -> Policy:
    """Read and check one policy file (and the file it extends, from the same folder)."""
    return _load(path, parameter_overrides={}, seen=())


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_duration(text: str) -> Duration | None:
    """The duration ``text`` names, or None if it is not ISO 8601 (PnYnMnWnDTnHnMnS)."""
    match = _DURATION.fullmatch(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        return None
    years, months, weeks, days, hours, minutes, seconds = (
        int(part or 0) for part in match.groups()
    )
    return Duration(text, years, months, weeks, days, hours, minutes, seconds)


_TOP_KEYS = {
    "format",
    "id",
    "version",
    "title",
    "jurisdiction",
    "calendar",
    "settings",
    "parameters",
    "extends",
    "keep",
    "drop",
    "obligations",
    "retention",
}


def _load(path: Path, parameter_overrides: Mapping[str, Any], seen: tuple[str, ...]) -> Policy:
    data = path.read_bytes()
    reader = _Reader(path.name, data)
    top = reader.root().mapping(_TOP_KEYS, required={"format", "id", "version", "obligations"})

    if top["format"].string() != FORMAT:
        raise top["format"].error(f"expected {FORMAT!r}")
    policy_id = top["id"].string()
    if policy_id != path.stem:
        raise top["id"].error(f"{policy_id!r} does not match the file name {path.stem!r}")
    if policy_id in seen:
        raise top["id"].error(f"extends itself through {' -> '.join(seen)}")

    own_parameters = _parameters(top.get("parameters"))
    parameters = {**own_parameters, **parameter_overrides}
    base = _base_policy(path, top, parameters, (*seen, policy_id))
    if base is not None:
        parameters = {**base.parameters, **parameters}
    reader.parameters = parameters

    obligations = _merge_obligations(base, top)
    return Policy(
        id=policy_id,
        version=top["version"].text(),
        title=_text(top["title"]) if "title" in top else Text(policy_id, policy_id),
        jurisdiction=top["jurisdiction"].string() if "jurisdiction" in top else "",
        path=path,
        content_hash=content_hash(data),
        extends=base,
        calendar=_calendar(top, policy_id, base),
        settings=_settings(top.get("settings"), base),
        parameters=parameters,
        obligations=obligations,
        retention=_retention(top.get("retention"), base),
    )


def _retention(node: _Node | None, base: Policy | None) -> tuple[Retention, ...]:
    if node is None:
        return base.retention if base is not None else ()
    rules = []
    for item in node.items():
        fields = item.mapping({"after", "keep", "source"}, required={"after", "keep", "source"})
        rules.append(
            Retention(
                after=fields["after"].event_types(),
                keep=fields["keep"].duration(),
                source=fields["source"].string(),
            )
        )
    return tuple(rules)


def _base_policy(
    path: Path, top: dict[str, _Node], parameters: Mapping[str, Any], seen: tuple[str, ...]
) -> Policy | None:
    if "extends" not in top:
        for key in ("keep", "drop"):
            if key in top:
                raise top[key].error("only a policy that extends another can keep or drop")
        return None
    if "keep" in top and "drop" in top:
        raise top["drop"].error("give keep or drop, not both")

    base_id = top["extends"].string()
    base_path = path.parent / f"{base_id}.yaml"
    if not _POLICY_NAME.fullmatch(base_id) or not base_path.is_file():
        raise top["extends"].error(f"no policy {base_id!r} next to this file ({base_path})")
    return _load(base_path, parameters, seen)


def _merge_obligations(base: Policy | None, top: dict[str, _Node]) -> tuple[Obligation, ...]:
    inherited: list[Obligation] = []
    if base is not None:
        inherited = list(base.obligations)
        base_ids = {obligation.id for obligation in inherited}
        for key in ("keep", "drop"):
            if key not in top:
                continue
            named = {node.string(): node for node in top[key].items()}
            for obligation_id, node in named.items():
                if obligation_id not in base_ids:
                    raise node.error(f"{base.id} has no obligation {obligation_id!r}")
            keep = key == "keep"
            inherited = [o for o in inherited if (o.id in named) == keep]

    own_nodes = top["obligations"].items()
    own = [_obligation(node) for node in own_nodes]
    seen: dict[str, _Node] = {}
    for obligation, node in zip(own, own_nodes, strict=True):
        if obligation.id in seen:
            raise node.error(f"obligation id {obligation.id!r} is used twice")
        seen[obligation.id] = node

    # An overlay's obligation with an inherited id replaces the inherited one in place.
    replacements = {obligation.id: obligation for obligation in own}
    merged = [replacements.pop(o.id, o) for o in inherited]
    merged.extend(o for o in own if o.id in replacements)
    return tuple(merged)


def _parameters(node: _Node | None) -> dict[str, Any]:
    if node is None:
        return {}
    parameters: dict[str, Any] = {}
    for name, value in node.mapping().items():
        if not isinstance(value.value, (str, int)) or isinstance(value.value, bool):
            raise value.error("a parameter is a string (such as a duration) or an integer")
        parameters[name] = value.value
    return parameters


def _calendar(top: dict[str, _Node], policy_id: str, base: Policy | None) -> WorkingDayCalendar:
    if "calendar" not in top:
        if base is not None:
            return base.calendar
        return load_calendar("cn")

    node = top["calendar"]
    if isinstance(node.value, str):
        try:
            return load_calendar(node.value)
        except ValueError as error:
            raise node.error(str(error)) from None

    # A weekend-only calendar: no holiday data, so every deadline it sets is flagged.
    fields = node.mapping({"weekend"}, required={"weekend"})
    weekend = set()
    for day in fields["weekend"].items():
        if day.string() not in _WEEKDAYS:
            raise day.error(f"expected one of {', '.join(_WEEKDAYS)}")
        weekend.add(_WEEKDAYS[day.string()])
    if len(weekend) == len(_WEEKDAYS):
        raise fields["weekend"].error("every day of the week is a weekend day")
    return WorkingDayCalendar(f"{policy_id}-weekends", frozenset(weekend), {})


def _settings(node: _Node | None, base: Policy | None) -> Settings:
    inherited = base.settings if base is not None else None
    fields = node.mapping({"late_entry_after", "same_session"}) if node is not None else {}

    def duration(name: str, default: str) -> Duration:
        if name in fields:
            return fields[name].duration()
        if inherited is not None:
            value: Duration = getattr(inherited, name)
            return value
        parsed = parse_duration(default)
        assert parsed is not None
        return parsed

    return Settings(
        late_entry_after=duration("late_entry_after", "P2D"),
        same_session=duration("same_session", "PT2H"),
    )


# --- obligations and rules ----------------------------------------------------------------------

_RULE_KEYS = {
    "trigger",
    "applies_from",
    "holds",
    "requires",
    "timing",
    "waived_by",
    "lapses_on",
    "context",
    "responsible",
    "client_fault",
    "basis",
    "label",
    "in_force_from",
}
_OBLIGATION_KEYS = {
    "id",
    "description",
    "severity",
    "basis",
    "basis_note",
    "source",
    "scope",
    "responsible",
    "client_fault",
    "rules",
    "note",
} | _RULE_KEYS
_OBLIGATION_ID = re.compile(r"[A-Z]{2,4}(-[A-Z0-9]{2,4})+\Z")


def _obligation(node: _Node) -> Obligation:
    fields = node.mapping(
        _OBLIGATION_KEYS, required={"id", "description", "severity", "basis", "source"}
    )
    obligation_id = fields["id"].string()
    if not _OBLIGATION_ID.fullmatch(obligation_id):
        raise fields["id"].error(f"{obligation_id!r} is not an obligation id like CN-INT-01")
    basis = fields["basis"].choice(BASIS_TAGS)
    scope = fields["scope"].choice(("case", "agency")) if "scope" in fields else "case"

    defaults: dict[str, _Node] = {
        key: fields[key]
        for key in ("responsible", "client_fault", "basis", "in_force_from")
        if key in fields
    }
    if scope == "agency":
        rules: tuple[Rule, ...] = ()
        for key in _RULE_KEYS - {"responsible", "basis", "label", "in_force_from"}:
            if key in fields:
                raise fields[key].error("an agency-scope obligation is not judged per case")
    elif "rules" in fields:
        for key in _RULE_KEYS - {"responsible", "client_fault", "basis", "in_force_from"}:
            if key in fields:
                raise fields[key].error("give this inside each of rules, or drop rules")
        rules = tuple(
            _rule(rule_node, defaults, named=True) for rule_node in fields["rules"].items()
        )
        _reject_duplicate_rule_ids(fields["rules"], rules)
    else:
        rules = (_rule(node, defaults, named=False),)

    return Obligation(
        id=obligation_id,
        description=_text(fields["description"]),
        severity=fields["severity"].choice(SEVERITIES),
        basis=basis,
        basis_note=fields["basis_note"].string() if "basis_note" in fields else None,
        source=fields["source"].string(),
        scope=scope,
        rules=rules,
    )


def _reject_duplicate_rule_ids(node: _Node, rules: tuple[Rule, ...]) -> None:
    seen = set()
    for rule, rule_node in zip(rules, node.items(), strict=True):
        if rule.id in seen:
            raise rule_node.error(f"rule id {rule.id!r} is used twice in this obligation")
        seen.add(rule.id)


def _rule(node: _Node, defaults: Mapping[str, _Node], *, named: bool) -> Rule:
    if named:
        fields = node.mapping(_RULE_KEYS | {"id"}, required={"id", "trigger", "timing"})
    else:
        fields = node.mapping(_OBLIGATION_KEYS, required={"trigger", "timing"})
    merged = {**defaults, **fields}

    timing = _timing(fields["timing"])
    holds = tuple(_check(item) for item in fields["holds"].items()) if "holds" in fields else ()
    requires = (
        tuple(_requirement(item) for item in fields["requires"].items())
        if "requires" in fields
        else ()
    )
    if timing.kind in ("invariant", "prohibited") and requires:
        raise fields["requires"].error(
            f"a rule timed {timing.kind} judges its trigger, not evidence"
        )
    if timing.kind not in ("invariant", "prohibited") and not requires:
        raise fields["timing"].error(f"a rule timed {timing.kind} needs requires (the evidence)")
    if timing.kind == "invariant" and not holds:
        raise fields["timing"].error("an invariant rule needs holds (what its trigger must meet)")

    return Rule(
        id=fields["id"].string() if named else None,
        trigger=_trigger(fields["trigger"]),
        applies_from=_selectors(fields.get("applies_from"), allow_when=False),
        holds=holds,
        requires=requires,
        timing=timing,
        waived_by=_selectors(fields.get("waived_by"), allow_when=False),
        lapses_on=_selectors(fields.get("lapses_on"), allow_when=False),
        context=_selectors(fields.get("context"), allow_when=True),
        responsible=_responsible(merged.get("responsible")),
        client_fault=(
            tuple(_client_fault(item) for item in merged["client_fault"].items())
            if "client_fault" in merged
            else ()
        ),
        basis=merged["basis"].choice(BASIS_TAGS),
        label=fields["label"].string() if "label" in fields else None,
        in_force_from=merged["in_force_from"].day() if "in_force_from" in merged else None,
    )


def _trigger(node: _Node) -> Trigger:
    if isinstance(node.value, (str, list)):
        return Trigger(node.event_types(), None, None, False)
    fields = node.mapping({"event", "where", "once_per"}, required={"event"})
    once_per: Ref | None = None
    once_per_case = False
    if "once_per" in fields:
        if fields["once_per"].value == "case":
            once_per_case = True
        else:
            once_per = fields["once_per"].ref()
    return Trigger(
        events=fields["event"].event_types(),
        where=_condition(fields["where"]) if "where" in fields else None,
        once_per=once_per,
        once_per_case=once_per_case,
    )


def _selectors(node: _Node | None, *, allow_when: bool) -> tuple[Selector, ...]:
    if node is None:
        return ()
    items = node.items() if isinstance(node.value, list) else [node]
    return tuple(_selector(item, allow_when=allow_when) for item in items)


def _selector(node: _Node, *, allow_when: bool) -> Selector:
    if isinstance(node.value, str):
        return Selector((node.event_type(),), None, "any")
    keys = {"event", "where", "when"} if allow_when else {"event", "where"}
    fields = node.mapping(keys, required={"event"})
    return Selector(
        events=fields["event"].event_types(),
        where=_condition(fields["where"]) if "where" in fields else None,
        when=fields["when"].choice(("any", "before", "after")) if "when" in fields else "any",
    )


def _check(node: _Node) -> Check:
    fields = node.mapping({"label", "where"}, required={"label", "where"})
    return Check(label=fields["label"].string(), where=_condition(fields["where"]))


def _requirement(node: _Node) -> Requirement:
    fields = node.mapping(
        {"event", "label", "where", "latest", "for_each"}, required={"event", "label"}
    )
    return Requirement(
        events=fields["event"].event_types(),
        label=fields["label"].string(),
        where=_condition(fields["where"]) if "where" in fields else None,
        latest=_condition(fields["latest"]) if "latest" in fields else None,
        for_each=_for_each(fields["for_each"]) if "for_each" in fields else None,
    )


def _for_each(node: _Node) -> ForEach:
    fields = node.mapping({"items", "event", "where", "when"})
    if ("items" in fields) == ("event" in fields):
        raise node.error("give either items (a $-reference to a list) or event")
    if "items" in fields:
        for key in ("where", "when"):
            if key in fields:
                raise fields[key].error("items takes no where or when")
        return ForEach(items=fields["items"].ref(), events=None)
    return ForEach(items=None, events=_selector(node, allow_when=True))


def _timing(node: _Node) -> Timing:
    if isinstance(node.value, str):
        kind = node.choice(("before", "at_or_before", "invariant", "prohibited"))
        return Timing(kind)

    fields = node.mapping({"kind", "within", "within_working_days", "max_age", "accept_earlier"})
    if "within" in fields and "within_working_days" in fields:
        raise fields["within"].error("give within or within_working_days, not both")
    if "within" in fields:
        kind = "within"
    elif "within_working_days" in fields:
        kind = "within_working_days"
    elif "kind" in fields:
        kind = fields["kind"].choice(TIMING_KINDS)
    else:
        raise node.error(f"say which timing: {', '.join(TIMING_KINDS)}")

    if "max_age" in fields and kind != "before":
        raise fields["max_age"].error("max_age applies to a before timing only")
    if "accept_earlier" in fields and kind not in ("within", "within_working_days"):
        raise fields["accept_earlier"].error("accept_earlier applies to within timings only")
    return Timing(
        kind=kind,
        within=fields["within"].duration() if "within" in fields else None,
        working_days=fields["within_working_days"].count()
        if kind == "within_working_days"
        else None,
        max_age=fields["max_age"].duration() if "max_age" in fields else None,
        accept_earlier=fields["accept_earlier"].boolean() if "accept_earlier" in fields else False,
    )


_DEFAULT_RESPONSIBLE = Responsible("agency", "agent_of_record", None)


def _responsible(node: _Node | None) -> Responsible:
    if node is None:
        return _DEFAULT_RESPONSIBLE
    fields = node.mapping({"accountable", "performer", "supervisor"})
    return Responsible(
        accountable=_resolver(fields["accountable"]) if "accountable" in fields else "agency",
        performer=_resolver(fields["performer"]) if "performer" in fields else "agent_of_record",
        supervisor=_resolver(fields["supervisor"]) if "supervisor" in fields else None,
    )


def _resolver(node: _Node) -> Resolver:
    text = node.string()
    if text.startswith("$"):
        return node.ref()
    # Besides the named resolvers, any actor role of the catalogue names its latest holder.
    known = (*ROLE_RESOLVERS, *sorted(load_catalogue().actor_roles))
    if text not in known:
        raise node.error(f"{text!r} is not one of {', '.join(known)} or a $-reference")
    return text


def _client_fault(node: _Node) -> ClientFault:
    fields = node.mapping(
        {"id", "label", "when", "party", "effect", "share_percent", "source", "basis"},
        required={"id", "label", "when", "party", "effect", "source", "basis"},
    )
    share: int | None = None
    if "share_percent" in fields and fields["share_percent"].value is not None:
        share = fields["share_percent"].count()
        if share > 100:
            raise fields["share_percent"].error(f"{share} is more than 100 per cent")
    return ClientFault(
        id=fields["id"].string(),
        label=fields["label"].string(),
        when=_condition(fields["when"]),
        party=fields["party"].ref(),
        effect=fields["effect"].choice(("share", "shift")),
        share_percent=share,
        source=fields["source"].string(),
        basis=fields["basis"].choice(BASIS_TAGS),
    )


def _text(node: _Node) -> Text:
    fields = node.mapping({"en", "zh"}, required={"en", "zh"})
    return Text(en=fields["en"].string(), zh=fields["zh"].string())


# --- the condition language ---------------------------------------------------------------------


def _condition(node: _Node, *, element: bool = False) -> Condition:
    parts: list[Condition] = []
    for key, value in node.mapping().items():
        if key == "any_of":
            parts.append(AnyOf(tuple(_condition(v, element=element) for v in value.items())))
        elif key == "all_of":
            parts.append(AllOf(tuple(_condition(v, element=element) for v in value.items())))
        elif key == "not":
            parts.append(Not(_condition(value, element=element)))
        elif key == "exists":
            parts.append(_exists(value))
        else:
            parts.append(_test(value, value.path_ref(key, element=element), element=element))
    if not parts:
        raise node.error("an empty condition; write at least one test")
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _exists(node: _Node) -> Exists:
    fields = node.mapping({"event", "where", "when", "max_age"}, required={"event"})
    return Exists(
        events=fields["event"].event_types(),
        where=_condition(fields["where"]) if "where" in fields else None,
        when=fields["when"].choice(("any", "before", "after")) if "when" in fields else "any",
        max_age=fields["max_age"].duration() if "max_age" in fields else None,
    )


def _test(node: _Node, subject: Ref, *, element: bool) -> Test:
    if not isinstance(node.value, dict):
        return Test(subject, "eq", node.operand(element=element))

    fields = node.mapping()
    if len(fields) != 1:
        raise node.error(f"a test has exactly one operator ({', '.join(OPERATORS)})")
    op, operand = next(iter(fields.items()))
    if op not in OPERATORS:
        raise operand.error(f"unknown operator {op!r} (expected one of {', '.join(OPERATORS)})")

    if op == "some":
        parts = operand.mapping({"where", "at_least"}, required={"where"})
        at_least = parts["at_least"].count() if "at_least" in parts else 1
        return Test(subject, op, Some(_condition(parts["where"], element=True), at_least))
    if op in ("present", "empty"):
        return Test(subject, op, operand.boolean())
    value = operand.operand(element=element)
    if op in ("in", "not_in", "includes", "intersects", "disjoint") and not isinstance(
        value, (tuple, Ref)
    ):
        raise operand.error(f"{op} takes a list or a $-reference to one")
    return Test(subject, op, value)


# --- reading YAML with line numbers -------------------------------------------------------------


class _Reader:
    """Turns a YAML document into _Nodes that remember their line and field path."""

    def __init__(self, file: str, data: bytes) -> None:
        self.file = file
        self.data = data
        self.parameters: Mapping[str, Any] = {}
        self._constructor = SafeConstructor()

    def root(self) -> _Node:
        try:
            document = yaml.compose(self.data.decode("utf-8"), Loader=yaml.SafeLoader)
            if document is None:
                raise PolicyError(self.file, 1, "(file)", "the file is empty")
            return self._convert(document, "(document)")
        except UnicodeDecodeError as error:
            raise PolicyError(self.file, 1, "(file)", f"not UTF-8: {error}") from None
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = mark.line + 1 if mark is not None else 1
            raise PolicyError(
                self.file, line, "(file)", f"not valid YAML: {error.problem}"
            ) from None

    def _convert(self, node: yaml.Node, path: str, line: int | None = None) -> _Node:
        # A mapping member is reported at its key's line: where the author wrote the field name.
        line = line if line is not None else node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            members: dict[str, _Node] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str) or key_node.tag != "tag:yaml.org,2002:str":
                    raise PolicyError(
                        self.file, key_node.start_mark.line + 1, path, "keys are plain words"
                    )
                child_path = key if path == "(document)" else f"{path}.{key}"
                if key in members:
                    raise PolicyError(
                        self.file,
                        key_node.start_mark.line + 1,
                        child_path,
                        "this key is given twice",
                    )
                members[key] = self._convert(value_node, child_path, key_node.start_mark.line + 1)
            return _Node(self, members, line, path)
        if isinstance(node, yaml.SequenceNode):
            items = [self._convert(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
            return _Node(self, items, line, path)
        try:
            value = self._constructor.construct_object(node)
        except (ValueError, OverflowError, yaml.YAMLError) as error:
            # A scalar YAML reads as a date or number it cannot build (2021-02-30, say).
            raise PolicyError(
                self.file, line, path, f"{node.value!r} cannot be read: {error}"
            ) from None
        return _Node(self, value, line, path)


@dataclass(frozen=True)
class _Node:
    """One value of the policy file with its place in it, and typed accessors that fail well."""

    reader: _Reader = field(repr=False)
    value: Any
    line: int
    path: str

    def error(self, message: str) -> PolicyError:
        return PolicyError(self.reader.file, self.line, self.path, message)

    def mapping(
        self, known: set[str] | None = None, *, required: set[str] | frozenset[str] = frozenset()
    ) -> dict[str, _Node]:
        if not isinstance(self.value, dict):
            raise self.error(f"expected a mapping, got {_shown(self.value)}")
        members: dict[str, _Node] = self.value
        if known is not None:
            for key, member in members.items():
                if key not in known:
                    expected = ", ".join(sorted(known))
                    raise member.error(f"unknown key {key!r} (expected one of {expected})")
        for key in sorted(required):
            if key not in members:
                raise PolicyError(
                    self.reader.file, self.line, _join(self.path, key), "this field is required"
                )
        return members

    def items(self) -> list[_Node]:
        if not isinstance(self.value, list):
            raise self.error(f"expected a list, got {_shown(self.value)}")
        items: list[_Node] = self.value
        return items

    def string(self) -> str:
        if not isinstance(self.value, str) or not self.value.strip():
            raise self.error(f"expected a non-empty string, got {_shown(self.value)}")
        return self.value

    def text(self) -> str:
        """A string, or a number written without quotes (as a version often is)."""
        if isinstance(self.value, (int, float)) and not isinstance(self.value, bool):
            return str(self.value)
        return self.string()

    def day(self) -> date:
        """A calendar date, written 2021-11-01 (YAML reads it as a date) or quoted."""
        if isinstance(self.value, date) and not isinstance(self.value, datetime):
            return self.value
        if isinstance(self.value, str):
            try:
                return date.fromisoformat(self.value)
            except ValueError:
                pass
        raise self.error(f"expected a date like 2021-11-01, got {_shown(self.value)}")

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"expected true or false, got {_shown(self.value)}")
        return self.value

    def count(self) -> int:
        value = self._parameter(self.value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.error(f"expected a whole number of zero or more, got {_shown(value)}")
        return value

    def choice(self, options: tuple[str, ...]) -> str:
        value = self.string()
        if value not in options:
            raise self.error(f"{value!r} is not one of {', '.join(options)}")
        return value

    def duration(self) -> Duration:
        value = self._parameter(self.value)
        parsed = parse_duration(value) if isinstance(value, str) else None
        if parsed is None:
            raise self.error(f"{_shown(value)} is not an ISO 8601 duration")
        return parsed

    def event_type(self) -> str:
        name = self.string()
        if name not in load_catalogue().types:
            raise self.error(f"{name!r} is not an event type of the catalogue (domain/catalogue)")
        return name

    def event_types(self) -> tuple[str, ...]:
        if isinstance(self.value, list):
            names = tuple(item.event_type() for item in self.items())
            if not names:
                raise self.error("expected at least one event type")
            return names
        return (self.event_type(),)

    def ref(self) -> Ref:
        text = self.string()
        if not text.startswith("$"):
            raise self.error(
                f"expected a $-reference such as $trigger.payload.party_id, got {text!r}"
            )
        return self._ref_path(text[1:], element=False, allow_params=False)

    def path_ref(self, key: str, *, element: bool) -> Ref:
        """The left-hand side of a test: a path without the $ (its subject is implied)."""
        if key.startswith("$"):
            raise self.error(f"write the path {key[1:]!r} without $ on the left of a test")
        return self._ref_path(key, element=element, allow_params=False, key=key)

    def operand(self, *, element: bool) -> Any:
        """A literal, a list of operands, or a $-reference (a $params.* one is read now)."""
        value = self.value
        if isinstance(value, list):
            return tuple(item.operand(element=element) for item in self.items())
        if isinstance(value, dict):
            raise self.error("expected a value, a list or a $-reference, not a mapping")
        if isinstance(value, str) and value.startswith("$"):
            ref = self._ref_path(value[1:], element=element, allow_params=True)
            if ref.root == "params":
                return self.reader.parameters[ref.path[0]]
            return ref
        if isinstance(value, float):
            raise self.error("numbers in a policy are whole numbers")
        return value

    def _ref_path(
        self, text: str, *, element: bool, allow_params: bool, key: str | None = None
    ) -> Ref:
        shown = key if key is not None else f"${text}"
        segments = tuple(text.split("."))
        if any(not segment for segment in segments):
            raise self.error(f"{shown!r} has an empty path segment")
        head, rest = segments[0], segments[1:]

        if head == "params" and allow_params:
            if len(rest) != 1 or rest[0] not in self.reader.parameters:
                known = ", ".join(sorted(self.reader.parameters)) or "none"
                raise self.error(f"{shown!r} names no parameter (parameters: {known})")
            return Ref("params", rest, shown)
        if head == "case":
            if not rest or rest[0] not in CASE_FACTS:
                raise self.error(f"{shown!r}: case facts are {', '.join(CASE_FACTS)}")
            if rest[0] == "parties" and len(rest) != 2:
                raise self.error(f"{shown!r}: write case.parties.<party role>")
            return Ref("case", rest, shown)
        if head in ("trigger", "item"):
            if head == "trigger" and (not rest or rest[0] not in EVENT_FIELDS):
                raise self.error(
                    f"{shown!r}: after trigger. comes one of {', '.join(EVENT_FIELDS)}"
                )
            return Ref(head, rest, shown)
        if element:
            return Ref("element", segments, shown)
        if head not in EVENT_FIELDS:
            roots = ", ".join((*EVENT_FIELDS, *SCOPES))
            raise self.error(f"{shown!r} does not start with one of {roots}")
        return Ref("subject", segments, shown)

    def _parameter(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("$params."):
            name = value[len("$params.") :]
            if name not in self.reader.parameters:
                known = ", ".join(sorted(self.reader.parameters)) or "none"
                raise self.error(f"{value!r} names no parameter (parameters: {known})")
            return self.reader.parameters[name]
        return value


def _join(path: str, key: str) -> str:
    return key if path == "(document)" else f"{path}.{key}"


def _shown(value: Any) -> str:
    if isinstance(value, _Node):
        value = value.value
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _shift_months(moment: datetime, months: int) -> datetime:
    if months == 0:
        return moment
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


__all__ = [
    "BASIS_TAGS",
    "AllOf",
    "AnyOf",
    "Check",
    "ClientFault",
    "Condition",
    "Duration",
    "Exists",
    "ForEach",
    "Not",
    "Obligation",
    "Policy",
    "PolicyError",
    "Ref",
    "Requirement",
    "Responsible",
    "Rule",
    "Selector",
    "Settings",
    "Some",
    "Test",
    "Text",
    "Timing",
    "Trigger",
    "available_policies",
    "content_hash",
    "load_policy",
    "load_policy_file",
    "parse_duration",
]
