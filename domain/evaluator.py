"""Responsibility attribution: what a policy says about one case, as of one moment of the ledger.

``evaluate(records, policy, as_of)`` is a pure function. It reads no clock and no file, and
returns the same verdicts, byte for byte under ``verdicts_as_bytes``, for the same input, so a
third party holding a case bundle and the policy file can recompute any report.

Two clocks meet here:

- ``as_of`` is *ledger* time. A record whose ``recorded_at`` is after it does not exist for the
  evaluation, so a report read "as of" last Tuesday shows what the ledger knew last Tuesday.
- Deadlines come from *business* time, the trigger's ``occurred_at``, and are compared with
  ``as_of`` as instants: a complaint left unanswered turns from ``pending`` to ``breached`` the
  moment its deadline passes, with no new event.

Each rule of each obligation yields one verdict per instance (per matching trigger event), one
``pending`` verdict when the rule has been activated but not triggered yet, or one
``not_applicable`` verdict when nothing in the case touched it, so a report lists them all.
Corrections (``event.corrected``) are applied first, as ``domain.state`` applies them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from domain.canonical import canonical_bytes
from domain.envelope import Record, format_recorded_at
from domain.policy import (
    AllOf,
    AnyOf,
    ClientFault,
    Condition,
    Exists,
    Not,
    Obligation,
    Policy,
    Ref,
    Requirement,
    Resolver,
    Rule,
    Selector,
    Some,
    Test,
)
from domain.state import effective_records

STATUSES = ("met", "breached", "pending", "not_applicable", "waived")
EVALUATOR_VERSION = 2
"""Raised whenever the same events and policy come to give different verdicts (statuses,
reasons, evidence roles), so that stored verdicts are judged again."""


class _Missing:
    """What a path gives when the field is not there; compares equal to null only."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# --- the result ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """One record a verdict relies on, and the part it plays."""

    seq: int
    hash: str
    type: str
    role: str
    late_entry: bool = False
    corrected_by: int | None = None

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "seq": self.seq,
            "hash": self.hash,
            "type": self.type,
            "role": self.role,
        }
        if self.late_entry:
            entry["late_entry"] = True
        if self.corrected_by is not None:
            entry["corrected_by"] = self.corrected_by
        return entry


@dataclass(frozen=True)
class Verdict:
    """What one rule of one obligation says about one instance in one case."""

    case_id: str
    obligation: str
    rule: str | None
    status: str
    severity: str
    basis: str
    source: str
    due: str | None
    settled_at: str | None
    accountable: str | None
    performer: str | None
    supervisor: str | None
    client_share: dict[str, Any] | None
    trigger: dict[str, Any] | None
    activated_by: dict[str, Any] | None
    evidence: tuple[Evidence, ...]
    flags: tuple[str, ...]
    reason: str
    policy: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "case_id": self.case_id,
            "obligation": self.obligation,
            "rule": self.rule,
            "status": self.status,
            "severity": self.severity,
            "basis": self.basis,
            "source": self.source,
            "due": self.due,
            "settled_at": self.settled_at,
            "accountable": self.accountable,
            "performer": self.performer,
            "supervisor": self.supervisor,
            "trigger": self.trigger,
            "activated_by": self.activated_by,
            "evidence": [entry.as_json() for entry in self.evidence],
            "flags": list(self.flags),
            "reason": self.reason,
            "policy": _fresh(self.policy),
        }
        if self.client_share is not None:
            document["client_share"] = self.client_share
        return document


def verdicts_as_json(verdicts: Iterable[Verdict]) -> list[dict[str, Any]]:
    return [verdict.as_json() for verdict in verdicts]


def verdicts_as_bytes(verdicts: Iterable[Verdict]) -> bytes:
    """The canonical (RFC 8785) bytes of a verdict list: what a report signs or compares."""
    return canonical_bytes(verdicts_as_json(verdicts))


# --- evaluation ---------------------------------------------------------------------------------


def evaluate(records: Sequence[Record], policy: Policy, as_of: datetime) -> list[Verdict]:
    """Every verdict of ``policy`` on one case, as the ledger stood at ``as_of``.

    Preconditions: ``records`` are the records of one case (any order; they are read in seq
    order), each with the envelope fields and ``hash``; ``as_of`` is timezone-aware.
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError(f"as_of must be timezone-aware, got naive {as_of.isoformat()}")
    case_ids = {record["case_id"] for record in records}
    if len(case_ids) > 1:
        raise ValueError(f"evaluate takes the records of one case, got {sorted(case_ids)}")

    case = _Case(records, policy, as_of)
    verdicts: list[Verdict] = []
    for obligation, rules in _compiled(policy):
        if obligation.scope == "agency":
            verdicts.append(_agency_scope_verdict(case, obligation))
            continue
        for rule in rules:
            verdicts.extend(_Judge(case, obligation, rule).verdicts())

    verdicts.sort(
        key=lambda v: (
            v.obligation,
            v.rule or "",
            v.trigger["seq"] if v.trigger else 0,
            v.activated_by["seq"] if v.activated_by else 0,
        )
    )
    return verdicts


# --- the case as the evaluator reads it ---------------------------------------------------------


class _Event:
    """One effective record, with its business time parsed once."""

    __slots__ = (
        "seq",
        "hash",
        "type",
        "payload",
        "actor",
        "occurred",
        "occurred_at",
        "late",
        "corrected_by",
    )

    def __init__(self, record: Record, late_after: Callable[[datetime], datetime]) -> None:
        self.seq: int = record["seq"]
        self.hash: str = record["hash"]
        self.type: str = record["type"]
        self.payload: dict[str, Any] = record.get("payload") or {}
        self.actor: dict[str, Any] = record.get("actor") or {}
        self.occurred_at: str = record["occurred_at"]
        self.occurred: datetime = _parse_instant(self.occurred_at, self.seq)
        recorded = _parse_instant(record["recorded_at"], self.seq)
        # Evidence entered long after the fact (for instance once a dispute began) is weak.
        self.late: bool = late_after(self.occurred) < recorded
        self.corrected_by: int | None = None

    def field(self, name: str) -> Any:
        if name == "payload":
            return self.payload
        if name == "actor":
            return self.actor
        if name == "type":
            return self.type
        if name == "seq":
            return self.seq
        if name == "hash":
            return self.hash
        if name == "occurred_at":
            return self.occurred_at
        if name == "date":
            return self.occurred.date().isoformat()
        if name == "month":
            return self.occurred.date().isoformat()[:7]
        return MISSING

    @property
    def name(self) -> str:
        return f"{self.type} #{self.seq}"


class _Case:
    """The visible, effective events of one case, indexed by type, and facts derived from them."""

    def __init__(self, records: Sequence[Record], policy: Policy, as_of: datetime) -> None:
        self.policy = policy
        self.as_of = as_of
        cutoff = format_recorded_at(as_of)
        visible = sorted(
            (record for record in records if record["recorded_at"] <= cutoff),
            key=lambda record: record["seq"],
        )
        self.case_id: str = records[0]["case_id"] if records else ""

        late_after = policy.settings.late_entry_after.after
        corrections = {
            int(record["payload"]["corrects_seq"]): record["seq"]
            for record in visible
            if record["type"] == "event.corrected"
        }
        self.events: list[_Event] = []
        for record in effective_records(visible):
            event = _Event(record, late_after)
            if record.get("corrected"):
                event.corrected_by = corrections.get(event.seq)
            self.events.append(event)

        self.timeline = sorted(self.events, key=_in_time)
        self.by_type: dict[str, list[_Event]] = {}
        for event in self.timeline:
            self.by_type.setdefault(event.type, []).append(event)
        self._merged: dict[tuple[str, ...], list[_Event]] = {}
        self._facts: dict[str, Any] | None = None
        self._agents: dict[datetime | None, dict[str, Any] | None] = {}
        self._supervisors: dict[tuple[str, datetime | None], str | None] = {}
        # Shared by every verdict of this evaluation; Verdict.as_json hands out copies.
        self.policy_ref = policy.ref()
        self.assignments = self.of_types(("agent.assigned", "agent.unassigned"))

    def of_types(self, types: tuple[str, ...]) -> list[_Event]:
        """Events of the given types in business-time order (ties broken by seq)."""
        if len(types) == 1:
            return self.by_type.get(types[0], [])
        merged = self._merged.get(types)
        if merged is None:
            merged = sorted((e for t in types for e in self.by_type.get(t, ())), key=_in_time)
            self._merged[types] = merged
        return merged

    @property
    def agency(self) -> str | None:
        opened = self.by_type.get("case.opened")
        first = opened[0] if opened else (self.events[0] if self.events else None)
        return first.actor.get("agency") if first is not None else None

    @property
    def facts(self) -> dict[str, Any]:
        if self._facts is None:
            self._facts = self._derive_facts()
        return self._facts

    def agent_of_record(self, at: datetime | None) -> dict[str, Any] | None:
        """The agent.assigned payload in force at ``at``: else the next one, else the last one."""
        if at not in self._agents:
            self._agents[at] = self._agent_of_record(at)
        return self._agents[at]

    def _agent_of_record(self, at: datetime | None) -> dict[str, Any] | None:
        in_force: dict[str, Any] | None = None
        next_one: dict[str, Any] | None = None
        last: dict[str, Any] | None = None
        for event in self.assignments:
            payload = event.payload
            assigned = (
                event.type == "agent.assigned" and payload.get("case_role") == "agent_of_record"
            )
            if assigned:
                last = payload
            if at is not None and event.occurred > at:
                next_one = next_one or (payload if assigned else None)
            elif assigned:
                in_force = payload
            elif in_force is not None and payload.get("agent_id") == in_force.get("agent_id"):
                in_force = None
        return in_force or next_one or last

    def supervisor_of(self, agent_id: str | None, at: datetime | None) -> str | None:
        """The supervisor_id of the agent's assignment in force at ``at`` (else its first)."""
        if agent_id is None:
            return None
        key = (agent_id, at)
        if key not in self._supervisors:
            self._supervisors[key] = self._supervisor_of(agent_id, at)
        return self._supervisors[key]

    def _supervisor_of(self, agent_id: str, at: datetime | None) -> str | None:
        assignments = [
            event
            for event in self.by_type.get("agent.assigned", ())
            if event.payload.get("agent_id") == agent_id
        ]
        if not assignments:
            return None
        earlier = [event for event in assignments if at is None or event.occurred <= at]
        chosen = earlier[-1] if earlier else assignments[0]
        supervisor = chosen.payload.get("supervisor_id")
        return supervisor if isinstance(supervisor, str) else None

    def actor_with_role(self, role: str, at: datetime | None) -> str | None:
        """The latest actor with ``role`` at or before ``at`` (else the first one after it)."""
        earlier: str | None = None
        for event in self.timeline:
            if event.actor.get("role") != role:
                continue
            if at is not None and event.occurred > at:
                return earlier or event.actor.get("id")
            earlier = event.actor.get("id")
        return earlier

    def _derive_facts(self) -> dict[str, Any]:
        opened = self.by_type.get("case.opened")
        opening = opened[0].payload if opened else {}
        parties: dict[str, set[str]] = {}
        staff: set[str] = set()
        for event in self.by_type.get("party.registered", ()):
            party_id, role = event.payload.get("party_id"), event.payload.get("party_role")
            if isinstance(party_id, str) and isinstance(role, str):
                parties.setdefault(role, set()).add(party_id)
            if isinstance(party_id, str) and event.payload.get("staff_agent_id"):
                staff.add(party_id)

        team: set[str] = set()
        for event in self.by_type.get("agent.assigned", ()):
            for name in ("agent_id", "supervisor_id"):
                if isinstance(event.payload.get(name), str):
                    team.add(event.payload[name])

        return {
            "id": self.case_id,
            "agency": self.agency,
            "kind": opening.get("kind", MISSING),
            "property_ref": opening.get("property_ref", MISSING),
            "parties": {role: sorted(ids) for role, ids in parties.items()},
            "staff_parties": sorted(staff),
            "principals": self._ids("mandate.signed", "party_id"),
            "buyers": self._ids("contract.sale_signed", "buyer_party_ids"),
            "sellers": self._ids("contract.sale_signed", "seller_party_ids"),
            "team": sorted(team),
        }

    def _ids(self, event_type: str, name: str) -> list[str]:
        ids: set[str] = set()
        for event in self.by_type.get(event_type, ()):
            value = event.payload.get(name)
            values = value if isinstance(value, list) else [value]
            ids.update(v for v in values if isinstance(v, str))
        return sorted(ids)


def _in_time(event: _Event) -> tuple[datetime, int]:
    return (event.occurred, event.seq)


def _parse_instant(text: str, seq: int) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"record {seq}: {text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"record {seq}: {text!r} has no UTC offset")
    return moment


# --- the condition language, compiled to closures -----------------------------------------------


class _Scope:
    """What a condition can see: the event under test, the trigger, the item, the case."""

    __slots__ = ("case", "subject", "trigger", "item", "element")

    def __init__(
        self,
        case: _Case,
        subject: Any,
        trigger: _Event | None,
        item: Any = None,
        element: Any = None,
    ) -> None:
        self.case = case
        self.subject = subject
        self.trigger = trigger
        self.item = item
        self.element = element


Predicate = Callable[[_Scope], bool]
Getter = Callable[[_Scope], Any]


def _walk(value: Any, path: tuple[str, ...]) -> Any:
    for segment in path:
        if isinstance(value, _Event):
            value = value.field(segment)
        elif isinstance(value, dict):
            value = value.get(segment, MISSING)
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return MISSING
    return value


def _getter(ref: Ref) -> Getter:
    path = ref.path
    # The common case, one payload field of the subject or the trigger, skips the walk.
    if len(path) == 2 and path[0] == "payload" and ref.root in ("subject", "trigger"):
        name = path[1]
        if ref.root == "subject":
            return lambda scope: scope.subject.payload.get(name, MISSING)
        return lambda scope: scope.trigger.payload.get(name, MISSING) if scope.trigger else MISSING
    if ref.root == "subject":
        return lambda scope: _walk(scope.subject, path)
    if ref.root == "element":
        return lambda scope: _walk(scope.element, path)
    if ref.root == "trigger":
        return lambda scope: _walk(scope.trigger, path) if scope.trigger else MISSING
    if ref.root == "item":
        return lambda scope: _walk(scope.item, path)
    if ref.root == "case":
        return lambda scope: _walk(scope.case.facts, path)
    raise ValueError(f"cannot read {ref.text}: unknown root {ref.root!r}")


def _operand(value: Any) -> Getter:
    if isinstance(value, Ref):
        return _getter(value)
    if isinstance(value, tuple):
        parts = [_operand(item) for item in value]
        return lambda scope: [part(scope) for part in parts]
    return lambda scope: value


def _compile(condition: Condition) -> Predicate:
    if isinstance(condition, Test):
        return _compile_test(condition)
    if isinstance(condition, AllOf):
        parts = [_compile(part) for part in condition.parts]
        return lambda scope: all(part(scope) for part in parts)
    if isinstance(condition, AnyOf):
        parts = [_compile(part) for part in condition.parts]
        return lambda scope: any(part(scope) for part in parts)
    if isinstance(condition, Not):
        inner = _compile(condition.part)
        return lambda scope: not inner(scope)
    return _compile_exists(condition)


def _compile_optional(condition: Condition | None) -> Predicate | None:
    return None if condition is None else _compile(condition)


def _compile_test(test: Test) -> Predicate:
    value_of = _getter(test.subject)
    if isinstance(test.operand, Some):
        inner = _compile(test.operand.where)
        at_least = test.operand.at_least

        def some(scope: _Scope) -> bool:
            values = value_of(scope)
            if not isinstance(values, list):
                return False
            count = sum(
                1
                for element in values
                if inner(_Scope(scope.case, scope.subject, scope.trigger, scope.item, element))
            )
            return count >= at_least

        return some

    compare = _OPERATIONS[test.op]
    operand_of = _operand(test.operand)
    return lambda scope: compare(value_of(scope), operand_of(scope))


def _compile_exists(exists: Exists) -> Predicate:
    where = _compile_optional(exists.where)
    types, when, max_age = exists.events, exists.when, exists.max_age

    def found(scope: _Scope) -> bool:
        anchor = scope.subject.occurred if isinstance(scope.subject, _Event) else None
        oldest = max_age.before(anchor) if max_age is not None and anchor is not None else None
        for event in scope.case.of_types(types):
            if event is scope.subject:
                continue
            if anchor is not None and not _placed(event.occurred, anchor, when):
                continue
            if oldest is not None and event.occurred < oldest:
                continue
            if where is None or where(_Scope(scope.case, event, scope.trigger, scope.item)):
                return True
        return False

    return found


def _placed(moment: datetime, anchor: datetime, when: str) -> bool:
    if when == "before":
        return moment < anchor
    if when == "after":
        return moment > anchor
    return True


def _same(a: Any, b: Any) -> bool:
    # true == 1 in Python; in a policy a boolean only ever equals a boolean.
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    a = None if a is MISSING else a
    b = None if b is MISSING else b
    return bool(a == b)


def _member(value: Any, values: Any) -> bool:
    return isinstance(values, list) and any(_same(value, item) for item in values)


def _ordered(a: Any, b: Any) -> bool:
    both_numbers = all(isinstance(x, int) and not isinstance(x, bool) for x in (a, b))
    return both_numbers or (isinstance(a, str) and isinstance(b, str))


def _present(value: Any) -> bool:
    return value is not MISSING and value is not None and value != ""


def _empty(value: Any) -> bool:
    if value is MISSING or value is None:
        return True
    return isinstance(value, (str, list, dict)) and len(value) == 0


_OPERATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": _same,
    "ne": lambda a, b: not _same(a, b),
    "in": _member,
    "not_in": lambda a, b: not _member(a, b),
    "present": lambda a, flag: _present(a) == flag,
    "empty": lambda a, flag: _empty(a) == flag,
    "contains": lambda a, b: _member(b, a),
    "includes": lambda a, b: isinstance(a, list) and all(_member(x, a) for x in b),
    "intersects": lambda a, b: isinstance(a, list) and any(_member(x, a) for x in b),
    "disjoint": lambda a, b: not (isinstance(a, list) and any(_member(x, a) for x in b)),
    "gte": lambda a, b: _ordered(a, b) and a >= b,
    "gt": lambda a, b: _ordered(a, b) and a > b,
    "lte": lambda a, b: _ordered(a, b) and a <= b,
    "lt": lambda a, b: _ordered(a, b) and a < b,
}


# --- rules, compiled once per policy ------------------------------------------------------------


@dataclass(frozen=True)
class _Select:
    spec: Selector
    where: Predicate | None

    def matches(self, case: _Case, event: _Event, trigger: _Event | None) -> bool:
        return self.where is None or self.where(_Scope(case, event, trigger))

    def find(self, case: _Case, trigger: _Event | None, *, after: datetime | None) -> list[_Event]:
        """Matching events, at or after ``after`` when given, else placed by ``when``."""
        found = []
        for event in case.of_types(self.spec.events):
            if after is not None and event.occurred < after:
                continue
            anchor = trigger.occurred if after is None and trigger is not None else None
            if anchor is not None and not _placed(event.occurred, anchor, self.spec.when):
                continue
            if self.matches(case, event, trigger):
                found.append(event)
        return found


@dataclass(frozen=True)
class _Need:
    spec: Requirement
    where: Predicate | None
    latest: Predicate | None
    items: Getter | None
    item_events: _Select | None


@dataclass(frozen=True)
class _Fault:
    spec: ClientFault
    when: Predicate
    party: Getter


@dataclass(frozen=True)
class _Rule:
    spec: Rule
    trigger_where: Predicate | None
    once_per: Getter | None
    applies_from: tuple[_Select, ...]
    holds: tuple[tuple[str, Predicate], ...]
    requires: tuple[_Need, ...]
    waived_by: tuple[_Select, ...]
    lapses_on: tuple[_Select, ...]
    context: tuple[_Select, ...]
    faults: tuple[_Fault, ...]
    resolvers: tuple[Resolver, Resolver, Resolver | None]


_COMPILED: weakref.WeakKeyDictionary[Policy, list[tuple[Obligation, list[_Rule]]]] = (
    weakref.WeakKeyDictionary()
)


def _compiled(policy: Policy) -> list[tuple[Obligation, list[_Rule]]]:
    # A cache of closures per policy object; it changes how fast, never what, we answer.
    compiled = _COMPILED.get(policy)
    if compiled is None:
        compiled = [
            (obligation, [_compile_rule(rule) for rule in obligation.rules])
            for obligation in policy.obligations
        ]
        _COMPILED[policy] = compiled
    return compiled


def _compile_rule(rule: Rule) -> _Rule:
    def selects(specs: tuple[Selector, ...]) -> tuple[_Select, ...]:
        return tuple(_Select(spec, _compile_optional(spec.where)) for spec in specs)

    needs = tuple(
        _Need(
            spec=need,
            where=_compile_optional(need.where),
            latest=_compile_optional(need.latest),
            items=_getter(need.for_each.items) if need.for_each and need.for_each.items else None,
            item_events=(
                selects((need.for_each.events,))[0]
                if need.for_each and need.for_each.events
                else None
            ),
        )
        for need in rule.requires
    )
    responsible = rule.responsible
    return _Rule(
        spec=rule,
        trigger_where=_compile_optional(rule.trigger.where),
        once_per=_getter(rule.trigger.once_per) if rule.trigger.once_per else None,
        applies_from=selects(rule.applies_from),
        holds=tuple((check.label, _compile(check.where)) for check in rule.holds),
        requires=needs,
        waived_by=selects(rule.waived_by),
        lapses_on=selects(rule.lapses_on),
        context=selects(rule.context),
        faults=tuple(_Fault(f, _compile(f.when), _getter(f.party)) for f in rule.client_fault),
        resolvers=(responsible.accountable, responsible.performer, responsible.supervisor),
    )


# --- judging one rule ---------------------------------------------------------------------------


@dataclass
class _Window:
    """Where in business time evidence counts: (start, end), each open or closed."""

    start: datetime | None
    start_closed: bool
    end: datetime
    end_closed: bool

    def holds(self, moment: datetime) -> bool:
        if self.start is not None and (
            moment < self.start or (moment == self.start and not self.start_closed)
        ):
            return False
        return moment < self.end or (moment == self.end and self.end_closed)

    def passed(self, moment: datetime) -> bool:
        return moment > self.end or (moment == self.end and not self.end_closed)


@dataclass
class _Outcome:
    """How one requirement fared for one instance."""

    need: _Need
    found: list[_Event]
    failures: list[str]
    late: list[_Event]
    stale: list[_Event]
    failing: list[_Event]
    items: list[_Event]

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class _Instance:
    """One trigger being judged: what its verdict will cite, and its evidence window."""

    trigger: _Event
    scope: _Scope
    evidence: _Evidence
    who: tuple[str | None, str | None, str | None]
    window: _Window | None
    flags: list[str]

    @property
    def due(self) -> datetime | None:
        return self.window.end if self.window is not None else None


class _Judge:
    """Judges one rule of one obligation on one case."""

    def __init__(self, case: _Case, obligation: Obligation, rule: _Rule) -> None:
        self.case = case
        self.obligation = obligation
        self.rule = rule
        self.spec = rule.spec

    def verdicts(self) -> list[Verdict]:
        triggers = self._triggers()
        if triggers:
            return [self._triggered(trigger) for trigger in triggers]

        activation = self._activation()
        if activation is None:
            return [self._not_applicable()]
        return [self._untriggered(activation)]

    # -- which instances exist

    def _triggers(self) -> list[_Event]:
        where = self.rule.trigger_where
        triggers = [
            event
            for event in self.case.of_types(self.spec.trigger.events)
            if where is None or where(_Scope(self.case, event, event))
        ]
        if self.spec.trigger.once_per_case:
            return triggers[:1]
        if self.rule.once_per is not None:
            firsts: dict[str, _Event] = {}
            for event in triggers:
                key = orjson.dumps(self.rule.once_per(_Scope(self.case, event, event)), default=str)
                firsts.setdefault(key.decode(), event)
            return sorted(firsts.values(), key=_in_time)
        return triggers

    def _activation(self) -> _Event | None:
        candidates = [
            event
            for select in self.rule.applies_from
            for event in self.case.of_types(select.spec.events)
            if select.matches(self.case, event, None)
        ]
        return min(candidates, key=_in_time) if candidates else None

    # -- the three shapes of verdict

    def _not_applicable(self) -> Verdict:
        kinds = " or ".join(self.spec.trigger.events)
        matching = " matching the rule" if self.spec.trigger.where is not None else ""
        return self._verdict("not_applicable", f"No {kinds}{matching} in the case.")

    def _untriggered(self, activation: _Event) -> Verdict:
        kinds = " or ".join(self.spec.trigger.events)
        ends = [
            (event, "lapse")
            for select in self.rule.lapses_on
            for event in select.find(self.case, None, after=activation.occurred)
        ] + [
            (event, "waiver")
            for select in self.rule.waived_by
            for event in select.find(self.case, None, after=activation.occurred)
        ]
        evidence = _Evidence(self.case)
        evidence.add(activation, "activation")
        who = self._responsible(None, activation, at=None)

        if ends:
            end, kind = min(ends, key=lambda pair: _in_time(pair[0]))
            evidence.add(end, kind)
            if kind == "lapse":
                status, reason = "not_applicable", f"Lapsed: {end.name} came before any {kinds}."
            else:
                status, reason = "waived", f"Waived by {end.name} before any {kinds}."
            return self._verdict(
                status,
                reason,
                None,
                end.occurred,
                activated_by=activation,
                evidence=evidence,
                who=who,
            )

        reason = f"Applies since {activation.name}; no {kinds} yet."
        return self._verdict("pending", reason, activated_by=activation, evidence=evidence, who=who)

    def _triggered(self, trigger: _Event) -> Verdict:
        instance = self._instance(trigger)

        # Conduct is judged by the rules of its own day: a duty that no cited source imposed
        # yet when the trigger happened (on the sender's calendar) does not apply to it.
        in_force = self.spec.in_force_from
        if in_force is not None and trigger.occurred.date() < in_force:
            reason = f"{trigger.name} came before this rule was in force ({in_force})."
            return self._verdict("not_applicable", reason, instance, due=False)

        if self.spec.timing.kind == "prohibited":
            what = f": {self.spec.label}" if self.spec.label else ""
            return self._breach(
                instance, f"{trigger.name} is a prohibited act{what}.", trigger.occurred
            )

        broken = [label for label, check in self.rule.holds if not check(instance.scope)]
        if broken:
            reason = f"{trigger.name} broke the rule that {'; and that '.join(broken)}."
            return self._breach(instance, reason, trigger.occurred)

        outcomes = self._outcomes(instance)
        if outcomes and all(self._nothing_to_do(outcome) for outcome in outcomes):
            return self._nothing_applies(instance, outcomes)
        missing = [outcome for outcome in outcomes if not outcome.ok]
        if not missing:
            return self._met(instance, outcomes)

        waiver = self._waiver(trigger, instance.due)
        if waiver is not None:
            instance.evidence.add(waiver, "waiver")
            return self._verdict(
                "waived", f"{trigger.name}: waived by {waiver.name}.", instance, waiver.occurred
            )
        if instance.window is not None and not instance.window.passed(self.case.as_of):
            labels = "; ".join(outcome.need.spec.label for outcome in missing)
            reason = f"{trigger.name}: {labels} due by {_show(instance.due)}."
            return self._verdict("pending", reason, instance)
        return self._missed(instance, missing)

    def _instance(self, trigger: _Event) -> _Instance:
        window, flags = self._window(trigger)
        instance = _Instance(
            trigger=trigger,
            scope=_Scope(self.case, trigger, trigger),
            evidence=_Evidence(self.case),
            who=self._responsible(trigger, trigger, at=trigger.occurred),
            window=window,
            flags=flags,
        )
        instance.evidence.add(trigger, "trigger")
        return instance

    def _outcomes(self, instance: _Instance) -> list[_Outcome]:
        if instance.window is None:
            return []
        outcomes = [
            self._requirement(need, instance.trigger, instance.window)
            for need in self.rule.requires
        ]
        for outcome in outcomes:
            for event in outcome.items:
                instance.evidence.add(event, "subject")  # what a for_each requirement was owed for
            for event in outcome.found:
                instance.evidence.add(event, "satisfies")
        return outcomes

    def _nothing_applies(self, instance: _Instance, outcomes: list[_Outcome]) -> Verdict:
        kinds = " or ".join(
            " or ".join(o.need.spec.for_each.events.events)
            for o in outcomes
            if o.need.spec.for_each and o.need.spec.for_each.events
        )
        reason = f"{instance.trigger.name}: nothing to do, no {kinds or 'item'} it applies to."
        return self._verdict("not_applicable", reason, instance, due=False)

    def _met(self, instance: _Instance, outcomes: list[_Outcome]) -> Verdict:
        # Evidence due before the trigger settles at the trigger; later evidence when it came.
        settled = instance.trigger.occurred
        if self.spec.timing.kind != "before":
            settled = max([settled, *(e.occurred for o in outcomes for e in o.found)])
        return self._verdict("met", self._met_reason(instance.trigger, outcomes), instance, settled)

    def _missed(self, instance: _Instance, missing: list[_Outcome]) -> Verdict:
        for outcome in missing:
            for event in outcome.late:
                instance.evidence.add(event, "late")
            for event in outcome.stale:
                instance.evidence.add(event, "stale")
            for event in outcome.failing:
                instance.evidence.add(event, "failing")
        failures = "; ".join(failure for outcome in missing for failure in outcome.failures)
        return self._breach(instance, f"{instance.trigger.name}: {failures}.")

    def _breach(self, instance: _Instance, reason: str, settled: datetime | None = None) -> Verdict:
        """A breached verdict, settled at ``settled`` (default: the due time, else the trigger).

        It cites what the case showed afterwards, and applies the first client-fault rule whose
        condition the trigger meets.
        """
        trigger = instance.trigger
        context = sorted(
            {
                event.seq: event
                for select in self.rule.context
                for event in select.find(self.case, trigger, after=None)
            }.values(),
            key=_in_time,
        )
        for event in context:
            instance.evidence.add(event, "context")
        if context:
            reason = f"{reason[:-1]}; the case also shows {', '.join(e.name for e in context)}."

        status, share = "breached", None
        fault = self._client_fault(instance.scope)
        if fault is not None:
            spec, party = fault
            share = {
                "party": party,
                "share_percent": 100 if spec.effect == "shift" else spec.share_percent,
                "rule": spec.id,
                "basis": spec.basis,
                "source": spec.source,
            }
            if spec.effect == "shift":
                status, instance.who = "waived", (party, party, None)
                reason = f"{reason[:-1]}; the fault shifts to the client {party}: {spec.label}."
            else:
                reason = f"{reason[:-1]}; the client {party} shares the fault: {spec.label}."

        settled = settled or instance.due or trigger.occurred
        return self._verdict(status, reason, instance, settled, client_share=share)

    # -- the parts

    def _window(self, trigger: _Event) -> tuple[_Window | None, list[str]]:
        timing, moment = self.spec.timing, trigger.occurred
        settings = self.case.policy.settings
        if timing.kind == "before":
            start = timing.max_age.before(moment) if timing.max_age else None
            return _Window(start, True, moment, False), []
        if timing.kind == "at_or_before":
            return _Window(None, True, settings.same_session.after(moment), True), []
        start = None if timing.accept_earlier else moment
        if timing.kind == "within" and timing.within is not None:
            return _Window(start, True, timing.within.after(moment), True), []
        if timing.kind == "within_working_days" and timing.working_days is not None:
            calendar = self.case.policy.calendar
            due = calendar.add_working_days(moment, timing.working_days)
            # The window ends at 24:00 of its last working day; outside the data that is a guess.
            last_day = due.date() - timedelta(days=1)
            uncovered = [
                f"calendar_not_covered:{calendar.id}:{year}"
                for year in range(moment.year, last_day.year + 1)
                if not calendar.covers(year)
            ]
            return _Window(start, True, due, False), uncovered
        return None, []

    def _requirement(self, need: _Need, trigger: _Event, window: _Window) -> _Outcome:
        outcome = _Outcome(need, found=[], failures=[], late=[], stale=[], failing=[], items=[])
        label = need.spec.label
        for item, item_event in self._items(need, trigger):
            if item_event is not None:
                outcome.items.append(item_event)
            candidates = [
                event
                for event in self.case.of_types(need.spec.events)
                if need.where is None or need.where(_Scope(self.case, event, trigger, item))
            ]
            inside = [e for e in candidates if window.holds(e.occurred)]
            for_what = f" for {_describe(item)}" if need.items or need.item_events else ""

            if need.latest is not None and inside:
                chosen = inside[-1]
                if need.latest(_Scope(self.case, chosen, trigger, item)):
                    outcome.found.append(chosen)
                else:
                    outcome.failing.append(chosen)
                    outcome.failures.append(f"the latest {chosen.name}{for_what} is not {label}")
                continue
            if inside:
                outcome.found.append(inside[0] if self._after_trigger() else inside[-1])
                continue

            late = [e for e in candidates if window.passed(e.occurred)]
            stale = [e for e in candidates if not window.passed(e.occurred)]
            if late:
                outcome.late.append(late[0])
                outcome.failures.append(
                    f"{label}{for_what} came late ({late[0].name} at {_show(late[0].occurred)}, "
                    f"due {_show(window.end)})"
                )
            else:
                if stale:
                    outcome.stale.append(stale[-1])
                outcome.failures.append(f"no {label}{for_what} {self._by_when(window)}")
        return outcome

    @staticmethod
    def _nothing_to_do(outcome: _Outcome) -> bool:
        # A for_each with no items: the rule had nothing to apply to in this instance.
        has_items = outcome.items or outcome.found or not outcome.ok
        return outcome.need.spec.for_each is not None and not has_items

    def _items(self, need: _Need, trigger: _Event) -> list[tuple[Any, _Event | None]]:
        if need.items is not None:
            values = need.items(_Scope(self.case, trigger, trigger))
            return [(value, None) for value in values] if isinstance(values, list) else []
        if need.item_events is not None:
            events = need.item_events.find(self.case, trigger, after=None)
            return [(event, event) for event in events]
        return [(None, None)]

    def _after_trigger(self) -> bool:
        return self.spec.timing.kind in ("within", "within_working_days")

    def _by_when(self, window: _Window) -> str:
        timing = self.spec.timing
        if timing.kind == "before" and timing.max_age is not None:
            return f"in the {timing.max_age.text} before it"
        if timing.kind == "before":
            return "before it"
        if timing.kind == "at_or_before":
            return f"by the end of the same session ({_show(window.end)})"
        return f"by {_show(window.end)}"

    def _waiver(self, trigger: _Event, due: datetime | None) -> _Event | None:
        for select in self.rule.waived_by:
            for event in select.find(self.case, trigger, after=trigger.occurred):
                if due is None or event.occurred <= due:
                    return event
        return None

    def _client_fault(self, scope: _Scope) -> tuple[ClientFault, str] | None:
        for fault in self.rule.faults:
            if fault.when(scope):
                party = fault.party(scope)
                if isinstance(party, str) and party:
                    return fault.spec, party
        return None

    def _responsible(
        self, trigger: _Event | None, reference: _Event, *, at: datetime | None
    ) -> tuple[str | None, str | None, str | None]:
        accountable_by, performer_by, supervisor_by = self.rule.resolvers
        accountable = self._resolve(accountable_by, trigger, reference, at)
        performer = self._resolve(performer_by, trigger, reference, at)
        if supervisor_by is not None:
            supervisor = self._resolve(supervisor_by, trigger, reference, at)
        else:
            supervisor = self.case.supervisor_of(performer, at)
        return accountable, performer, supervisor

    def _resolve(
        self, resolver: Resolver, trigger: _Event | None, reference: _Event, at: datetime | None
    ) -> str | None:
        case = self.case
        if isinstance(resolver, Ref):
            value = _getter(resolver)(_Scope(case, reference, trigger))
            return value if isinstance(value, str) else None
        if resolver == "agency":
            return case.agency
        if resolver == "trigger_actor":
            actor = reference.actor.get("id")
            return actor if isinstance(actor, str) else None
        if resolver == "signing_agent" and trigger is not None:
            signatories = trigger.payload.get("signatories")
            if isinstance(signatories, list) and signatories and isinstance(signatories[0], dict):
                agent = signatories[0].get("agent_id")
                if isinstance(agent, str):
                    return agent
        assignment = case.agent_of_record(at)
        if resolver == "branch_manager":
            supervisor = assignment.get("supervisor_id") if assignment else None
            if isinstance(supervisor, str):
                return supervisor
            return case.actor_with_role("branch_manager", at)
        if resolver not in ("agent_of_record", "signing_agent"):
            return case.actor_with_role(resolver, at)
        if assignment is not None and isinstance(assignment.get("agent_id"), str):
            return str(assignment["agent_id"])
        opener = case.by_type.get("case.opened")
        if opener and opener[0].actor.get("role") == "agent_of_record":
            return opener[0].actor.get("id")
        return None

    def _met_reason(self, trigger: _Event, outcomes: list[_Outcome]) -> str:
        if not outcomes:
            return f"{trigger.name} met every condition of the rule."
        found = []
        for outcome in outcomes:
            # One disclosure can answer two items (two mortgages on one register): name it once.
            seqs = dict.fromkeys(event.seq for event in outcome.found)
            names = ", ".join(f"#{seq}" for seq in seqs) or "nothing was due"
            found.append(f"{outcome.need.spec.label} ({names})")
        return f"{trigger.name}: found {'; '.join(found)}."

    def _verdict(
        self,
        status: str,
        reason: str,
        instance: _Instance | None = None,
        settled: datetime | None = None,
        *,
        due: bool = True,
        activated_by: _Event | None = None,
        evidence: _Evidence | None = None,
        who: tuple[str | None, str | None, str | None] = (None, None, None),
        client_share: dict[str, Any] | None = None,
    ) -> Verdict:
        if instance is not None:
            evidence, who = instance.evidence, instance.who
        entries = evidence.entries() if evidence is not None else ()
        flags = set(instance.flags) if instance is not None else set()
        if any(entry.late_entry for entry in entries):
            flags.add("late_entry")
        if any(entry.corrected_by is not None for entry in entries):
            flags.add("corrected_entry")
        accountable, performer, supervisor = who
        return Verdict(
            case_id=self.case.case_id,
            obligation=self.obligation.id,
            rule=self.spec.id,
            status=status,
            severity=self.obligation.severity,
            basis=self.spec.basis,
            source=self.obligation.source,
            due=_show(instance.due) if instance is not None and due else None,
            settled_at=_show(settled),
            accountable=accountable,
            performer=performer,
            supervisor=supervisor,
            client_share=client_share,
            trigger=_link(instance.trigger if instance is not None else None),
            activated_by=_link(activated_by),
            evidence=entries,
            flags=tuple(sorted(flags)),
            reason=reason,
            policy=self.case.policy_ref,
        )


class _Evidence:
    """The records one verdict cites, each once per role, in seq order."""

    def __init__(self, case: _Case) -> None:
        self.case = case
        self._entries: dict[tuple[int, str], Evidence] = {}

    def add(self, event: _Event, role: str) -> None:
        self._entries.setdefault(
            (event.seq, role),
            Evidence(event.seq, event.hash, event.type, role, event.late, event.corrected_by),
        )

    def entries(self) -> tuple[Evidence, ...]:
        return tuple(self._entries[key] for key in sorted(self._entries))


def _agency_scope_verdict(case: _Case, obligation: Obligation) -> Verdict:
    return Verdict(
        case_id=case.case_id,
        obligation=obligation.id,
        rule=None,
        status="not_applicable",
        severity=obligation.severity,
        basis=obligation.basis,
        source=obligation.source,
        due=None,
        settled_at=None,
        accountable=None,
        performer=None,
        supervisor=None,
        client_share=None,
        trigger=None,
        activated_by=None,
        evidence=(),
        flags=("agency_scope",),
        reason="Judged on the agency's own records, not per case.",
        policy=case.policy_ref,
    )


def _fresh(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of a nested dict, so a caller editing one verdict document edits no other."""
    return {k: _fresh(v) if isinstance(v, dict) else v for k, v in document.items()}


def _link(event: _Event | None) -> dict[str, Any] | None:
    return None if event is None else {"seq": event.seq, "hash": event.hash}


def _show(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _describe(item: Any) -> str:
    if isinstance(item, _Event):
        return item.name
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS).decode()
