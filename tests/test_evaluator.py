"""The evaluator as a pure function: timing kinds, as-of, backdating, corrections, attribution.

Each test writes a small case as a "story" of events at business times, each recorded a minute
after it happened unless the test says otherwise, and reads the verdicts of cn-baseline (or of
a tiny policy written for the test) as of a chosen ledger moment.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from domain.envelope import Record
from domain.evaluator import STATUSES, Verdict, evaluate, verdicts_as_bytes, verdicts_as_json
from domain.policy import Policy, load_policy, load_policy_file
from tests.test_scenario_verdicts import build_records

BEIJING = timezone(timedelta(hours=8))
RECORDING_DELAY = timedelta(minutes=1)


def at(month: int, day: int, hour: int = 10, minute: int = 0, year: int = 2024) -> datetime:
    """A business time in Beijing."""
    return datetime(year, month, day, hour, minute, tzinfo=BEIJING)


class Story:
    """A case written as it happens; the ledger records each event shortly after it."""

    def __init__(self, case_id: str = "t-1", agency: str = "agency-t") -> None:
        self.case_id = case_id
        self.agency = agency
        self.events: list[dict[str, Any]] = []
        self.recorded: list[datetime | None] = []

    def add(
        self,
        event_type: str,
        when: datetime,
        payload: dict[str, Any] | None = None,
        *,
        actor: str = "agent-t1",
        role: str = "agent_of_record",
        recorded: datetime | None = None,
    ) -> int:
        """Append one event and return its seq."""
        self.events.append(
            {
                "type": event_type,
                "occurred_at": when.isoformat(),
                "actor": {"id": actor, "role": role, "agency": self.agency},
                "payload": payload or {},
            }
        )
        previous = max((r for r in self.recorded if r is not None), default=when)
        self.recorded.append(
            recorded or max(when + RECORDING_DELAY, previous + timedelta(seconds=1))
        )
        return len(self.events)

    def records(self) -> list[Record]:
        return build_records(self.case_id, self.events, recorded_at=self.recorded)

    @property
    def last_recorded(self) -> datetime:
        return max(r for r in self.recorded if r is not None)


def opened(kind: str = "sale", *, case_id: str = "t-1") -> Story:
    """A case opened on 4 March 2024 with agent-t1 (supervised by mgr-t1) as agent of record."""
    story = Story(case_id)
    story.add("case.opened", at(3, 4, 9), {"kind": kind, "property_ref": "prop-t"})
    story.add(
        "agent.assigned",
        at(3, 4, 9, 5),
        {
            "agent_id": "agent-t1",
            "case_role": "agent_of_record",
            "licence_no": "L-1",
            "supervisor_id": "mgr-t1",
        },
        actor="mgr-t1",
        role="branch_manager",
    )
    return story


def judge(
    story: Story, as_of: datetime | None = None, policy: str | Policy = "cn-baseline"
) -> list[Verdict]:
    chosen = load_policy(policy) if isinstance(policy, str) else policy
    return evaluate(story.records(), chosen, as_of or story.last_recorded + timedelta(minutes=1))


def pick(verdicts: list[Verdict], obligation: str, rule: str | None = None) -> list[Verdict]:
    return [v for v in verdicts if v.obligation == obligation and (rule is None or v.rule == rule)]


def one(verdicts: list[Verdict], obligation: str, rule: str | None = None) -> Verdict:
    found = pick(verdicts, obligation, rule)
    assert len(found) == 1, [v.as_json() for v in found]
    return found[0]


def roles(verdict: Verdict) -> list[tuple[int, str]]:
    return [(entry.seq, entry.role) for entry in verdict.evidence]


def identity(story: Story, when: datetime, result: str = "pass", party: str = "p-1") -> int:
    payload = {"party_id": party, "doc_type": "id_card", "method": "in_person", "result": result}
    return story.add("identity.verified", when, payload)


def mandate(story: Story, when: datetime, party: str = "p-1", kind: str = "sell") -> int:
    payload = {"party_id": party, "kind": kind, "exclusive": False, "expires_on": None}
    return story.add("mandate.signed", when, payload)


def complaint(story: Story, when: datetime, complaint_id: str = "c-1") -> int:
    payload = {"complaint_id": complaint_id, "party_id": "p-2", "channel": "phone", "summary": "x"}
    return story.add("complaint.received", when, payload)


def funds(story: Story, when: datetime, account: str, **extra: Any) -> int:
    payload = {
        "amount_minor": 100,
        "currency": "CNY",
        "payer_party_id": "p-2",
        "account_type": account,
    }
    return story.add("funds.received", when, {**payload, **extra}, actor="fin-t1", role="finance")


def sale(story: Story, when: datetime, **extra: Any) -> int:
    payload = {
        "buyer_party_ids": ["p-2"],
        "seller_party_ids": ["p-1"],
        "price_minor": 100,
        "currency": "CNY",
    }
    return story.add("contract.sale_signed", when, {**payload, **extra})


# --- timing: before -----------------------------------------------------------------------------


def test_before_is_met_by_evidence_that_precedes_the_trigger() -> None:
    """An identity check before the mandate meets CN-INT-01; the verdict settles at the mandate."""
    story = opened()
    check = identity(story, at(3, 4, 10))
    signed = mandate(story, at(3, 4, 11))

    verdict = one(judge(story), "CN-INT-01")

    assert verdict.status == "met"
    assert verdict.settled_at == verdict.due == at(3, 4, 11).isoformat()
    assert roles(verdict) == [(check, "satisfies"), (signed, "trigger")]
    assert verdict.trigger is not None and verdict.trigger["seq"] == signed


def test_before_is_breached_by_evidence_that_comes_after() -> None:
    """An identity check after the mandate is cited as late and does not save it."""
    story = opened()
    signed = mandate(story, at(3, 4, 11))
    check = identity(story, at(3, 4, 12))

    verdict = one(judge(story), "CN-INT-01")

    assert verdict.status == "breached"
    assert (check, "late") in roles(verdict)
    assert "came late" in verdict.reason and f"#{signed}" in verdict.reason


def test_before_judges_the_latest_check_when_the_rule_says_so() -> None:
    """A failed identity check after a passing one means the mandate had to be refused."""
    story = opened()
    identity(story, at(3, 4, 10), "pass")
    failed = identity(story, at(3, 4, 10, 30), "fail")
    mandate(story, at(3, 4, 11))

    verdict = one(judge(story), "CN-INT-01")

    assert verdict.status == "breached"
    assert f"the latest identity.verified #{failed}" in verdict.reason
    assert (failed, "failing") in roles(verdict)


@pytest.mark.parametrize(
    ("searched", "status"), [(at(3, 14, 9), "met"), (at(3, 12, 9), "breached")]
)
def test_before_with_a_maximum_age_needs_fresh_evidence(searched: datetime, status: str) -> None:
    """CN-TTL-01 wants a registry search in the day before the sale contract."""
    story = opened()
    search = {
        "source": "r",
        "mortgages": [],
        "seizures": [],
        "restrictions": [],
        "snapshot_sha256": "0" * 64,
    }
    story.add("title.search_completed", searched, search)
    sale(story, at(3, 14, 10))

    verdict = one(judge(story), "CN-TTL-01", "signing")

    assert verdict.status == status


# --- timing: at_or_before -----------------------------------------------------------------------


def test_at_or_before_accepts_acts_in_the_same_session() -> None:
    """Title certificate and site inspection within two hours after the mandate still count."""
    story = opened()
    mandate(story, at(3, 4, 10))
    story.add("property.title_certificate_inspected", at(3, 4, 10, 30), {"matches_principal": True})
    story.add("property.site_inspected", at(3, 4, 11, 30), {"observations": [], "red_flags": []})

    verdict = one(judge(story), "CN-INT-02")

    assert verdict.status == "met"
    assert verdict.due == at(3, 4, 12).isoformat()
    assert verdict.settled_at == at(3, 4, 11, 30).isoformat()


def test_at_or_before_is_pending_while_the_session_is_open() -> None:
    """Read during the session, a missing inspection is still owed; after it, breached."""
    story = opened()
    mandate(story, at(3, 4, 10))

    during = one(judge(story, as_of=at(3, 4, 11)), "CN-INT-02")
    after = one(judge(story, as_of=at(3, 4, 12, 1)), "CN-INT-02")

    assert (during.status, after.status) == ("pending", "breached")


def test_a_failed_check_settles_at_the_trigger_even_inside_a_session() -> None:
    """A brokerage contract without the seal is breached when signed, not when the session ends."""
    story = opened()
    payload = {"party_id": "p-1", "signatories": [{"agent_id": "agent-t1", "licence": "broker"}]}
    story.add("contract.brokerage_signed", at(3, 4, 11), {**payload, "agency_seal": False})

    verdict = one(judge(story), "CN-LIC-02")

    assert (verdict.status, verdict.settled_at, verdict.due) == (
        "breached",
        at(3, 4, 11).isoformat(),
        at(3, 4, 13).isoformat(),
    )
    assert "the contract bears the agency seal" in verdict.reason


# --- timing: within -----------------------------------------------------------------------------


def test_an_unanswered_complaint_turns_breached_when_its_deadline_passes() -> None:
    """Same records, two as-of moments: pending before the 24 h deadline, breached after it."""
    story = opened()
    complaint(story, at(3, 5, 9, 30))
    due = at(3, 6, 9, 30)

    before = one(judge(story, as_of=due - timedelta(minutes=1)), "CN-CMP-01", "acknowledge")
    after = one(judge(story, as_of=due + timedelta(minutes=1)), "CN-CMP-01", "acknowledge")

    assert (before.status, before.due, before.settled_at) == ("pending", due.isoformat(), None)
    assert (after.status, after.due, after.settled_at) == (
        "breached",
        due.isoformat(),
        due.isoformat(),
    )


def test_within_is_met_in_time_and_breached_when_late() -> None:
    """An acknowledgement after two hours meets the target; one after thirty hours is cited late."""
    quick, slow = opened(case_id="quick"), opened(case_id="slow")
    for story, delay in ((quick, 2), (slow, 30)):
        complaint(story, at(3, 5, 9))
        story.add(
            "complaint.acknowledged", at(3, 5, 9) + timedelta(hours=delay), {"complaint_id": "c-1"}
        )

    met = one(judge(quick), "CN-CMP-01", "acknowledge")
    late = one(judge(slow), "CN-CMP-01", "acknowledge")

    assert (met.status, met.settled_at) == ("met", at(3, 5, 11).isoformat())
    assert late.status == "breached"
    assert [role for _, role in roles(late)] == ["trigger", "late"]


def test_each_complaint_is_its_own_instance() -> None:
    """Two complaints, one answered: one verdict each, told apart by their trigger."""
    story = opened()
    first = complaint(story, at(3, 5, 9), "c-1")
    second = complaint(story, at(3, 5, 10), "c-2")
    story.add("complaint.acknowledged", at(3, 5, 11), {"complaint_id": "c-2"})

    verdicts = pick(judge(story, as_of=at(3, 7)), "CN-CMP-01", "acknowledge")

    assert [(v.trigger and v.trigger["seq"], v.status) for v in verdicts] == [
        (first, "breached"),
        (second, "met"),
    ]


# --- timing: within_working_days ----------------------------------------------------------------


def listed_then_sold(signed: datetime, withdrawn: datetime | None) -> Story:
    story = opened()
    story.add(
        "listing.published", signed - timedelta(days=5), {"channel": "app", "listing_code": "L-1"}
    )
    sale(story, signed)
    if withdrawn is not None:
        payload = {"channel": "app", "listing_code": "L-1", "reason": "sold"}
        story.add("listing.withdrawn", withdrawn, payload)
    return story


def test_working_days_skip_the_national_day_holidays() -> None:
    """Signed Monday 30 September 2024: two working days run to the end of Wednesday 9 October."""
    in_time = listed_then_sold(at(9, 30), at(10, 9, 18))
    too_late = listed_then_sold(at(9, 30), at(10, 10, 9))

    met = one(judge(in_time), "CN-LST-03")
    breached = one(judge(too_late), "CN-LST-03")

    assert (met.status, met.due) == ("met", "2024-10-10T00:00:00+08:00")
    assert breached.status == "breached"
    assert not [flag for flag in met.flags if flag.startswith("calendar")]


def test_a_withdrawal_before_the_trigger_counts() -> None:
    """CN-LST-03 accepts a listing already withdrawn before the contract."""
    story = listed_then_sold(at(3, 14), None)
    story.add(
        "listing.withdrawn", at(3, 13), {"channel": "app", "listing_code": "L-1", "reason": "x"}
    )

    assert one(judge(story), "CN-LST-03").status == "met"


def test_no_listing_means_nothing_to_withdraw() -> None:
    """With no listing ever published, the withdrawal rule has nothing to apply to."""
    story = opened()
    sale(story, at(3, 14))

    verdict = one(judge(story), "CN-LST-03")

    assert verdict.status == "not_applicable"
    assert verdict.trigger is not None


def test_a_deadline_in_a_year_the_calendar_lacks_is_flagged() -> None:
    """No 2027 holiday notice exists yet: the deadline is a weekend-only guess, and says so."""
    story = listed_then_sold(at(12, 30, year=2026), at(12, 30, 15, year=2026))

    verdict = one(judge(story), "CN-LST-03")

    assert verdict.status == "met"
    assert "calendar_not_covered:cn:2027" in verdict.flags


# --- timing: invariant and prohibited -----------------------------------------------------------


@pytest.mark.parametrize(("account", "status"), [("settlement", "met"), ("personal", "breached")])
def test_invariant_judges_the_trigger_itself(account: str, status: str) -> None:
    """Money into the settlement account meets CN-FND-01; into a personal account breaches it."""
    story = opened()
    received = funds(story, at(3, 15), account)

    verdict = one(judge(story), "CN-FND-01", "receipt")

    assert (verdict.status, verdict.settled_at, verdict.due) == (
        status,
        at(3, 15).isoformat(),
        None,
    )
    assert roles(verdict) == [(received, "trigger")]


def test_a_prohibited_act_by_a_client_names_the_client() -> None:
    """A buyer who dealt around the agency after a viewing carries CN-BYP-01 itself."""
    story = opened()
    story.add("viewing.conducted", at(3, 6), {"party_id": "p-2", "property_ref": "prop-t"})
    payload = {
        "fact_type": "broker_bypass",
        "description": "x",
        "source": "registry",
        "party_id": "p-2",
    }
    story.add("material_fact.learned", at(5, 2), payload)

    verdict = one(judge(story), "CN-BYP-01")

    assert (verdict.status, verdict.accountable, verdict.performer, verdict.supervisor) == (
        "breached",
        "p-2",
        "p-2",
        None,
    )


def test_no_bypass_without_a_prior_viewing() -> None:
    """Without a viewing the agency arranged, there is no service the client went around."""
    story = opened()
    payload = {
        "fact_type": "broker_bypass",
        "description": "x",
        "source": "registry",
        "party_id": "p-2",
    }
    story.add("material_fact.learned", at(5, 2), payload)

    assert one(judge(story), "CN-BYP-01").status == "not_applicable"


# --- as_of is ledger time -----------------------------------------------------------------------


def test_records_recorded_after_as_of_do_not_exist() -> None:
    """An identity check entered days later is invisible before it was recorded, late after."""
    story = opened()
    mandate(story, at(3, 4, 11))
    entered = at(3, 9)
    check = {"party_id": "p-1", "doc_type": "id_card", "method": "in_person", "result": "pass"}
    story.add("identity.verified", at(3, 4, 10), check, recorded=entered)

    before = one(judge(story, as_of=entered - timedelta(seconds=1)), "CN-INT-01")
    after = one(judge(story, as_of=entered + timedelta(seconds=1)), "CN-INT-01")

    assert before.status == "breached"
    assert after.status == "met"
    assert "late_entry" in after.flags and "late_entry" not in before.flags


def test_as_of_before_the_case_sees_nothing() -> None:
    """Read before anything was recorded, every obligation is not applicable."""
    story = opened()
    mandate(story, at(3, 4, 11))

    verdicts = judge(story, as_of=at(3, 1))

    assert {v.status for v in verdicts} == {"not_applicable"}


def test_evaluate_wants_an_aware_as_of_and_one_case() -> None:
    story = opened()
    other = opened(case_id="t-2")
    policy = load_policy("cn-baseline")

    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(story.records(), policy, datetime(2024, 3, 4))
    with pytest.raises(ValueError, match="one case"):
        evaluate(story.records() + other.records(), policy, datetime.now(UTC))


# --- backdated entries --------------------------------------------------------------------------


@pytest.mark.parametrize(("delay", "late"), [(timedelta(days=1), False), (timedelta(days=3), True)])
def test_evidence_entered_long_after_the_fact_is_flagged(delay: timedelta, late: bool) -> None:
    """Beyond the policy's P2D threshold the evidence entry and the verdict both say so."""
    story = opened()
    mandate(story, at(3, 4, 11))
    payload = {"party_id": "p-1", "doc_type": "id_card", "method": "in_person", "result": "pass"}
    check = story.add("identity.verified", at(3, 4, 10), payload, recorded=at(3, 4, 10) + delay)

    verdict = one(judge(story), "CN-INT-01")

    entry = next(e for e in verdict.evidence if e.seq == check)
    assert entry.late_entry is late
    assert ("late_entry" in verdict.flags) is late
    assert ("late_entry" in entry.as_json()) is late


# --- corrections --------------------------------------------------------------------------------


def test_a_correction_replaces_the_payload_the_verdict_reads() -> None:
    """A payment first recorded as personal, corrected to settlement, meets CN-FND-02."""
    story = opened()
    received = funds(story, at(3, 15), "personal")
    replacement = {
        "amount_minor": 100,
        "currency": "CNY",
        "payer_party_id": "p-2",
        "account_type": "settlement",
    }
    fix = story.add(
        "event.corrected",
        at(3, 15, 12),
        {"corrects_seq": received, "reason": "typo", "replacement": replacement},
    )

    verdict = one(judge(story), "CN-FND-02", "payment")

    assert verdict.status == "met"
    assert "corrected_entry" in verdict.flags
    entry = verdict.evidence[0]
    assert (entry.seq, entry.corrected_by) == (received, fix)
    assert entry.as_json()["corrected_by"] == fix


def test_a_correction_without_replacement_retracts_the_event() -> None:
    """A retracted payment no longer triggers anything."""
    story = opened()
    received = funds(story, at(3, 15), "personal")
    story.add("event.corrected", at(3, 15, 12), {"corrects_seq": received, "reason": "wrong case"})

    assert one(judge(story), "CN-FND-02", "payment").status == "not_applicable"


def test_a_correction_recorded_after_as_of_is_not_applied() -> None:
    """As of before the correction, the verdict is the one the ledger gave then."""
    story = opened()
    received = funds(story, at(3, 15), "personal")
    replacement = {"account_type": "settlement", "payer_party_id": "p-2"}
    story.add(
        "event.corrected",
        at(3, 20),
        {"corrects_seq": received, "reason": "x", "replacement": replacement},
    )

    verdict = one(judge(story, as_of=at(3, 18)), "CN-FND-02", "payment")

    assert verdict.status == "breached"


# --- the law of the day ------------------------------------------------------------------------


def prv01(story: Story) -> Verdict:
    """CN-PRV-01 a day later, when the registration's session has long closed."""
    return one(judge(story, story.last_recorded + timedelta(days=1)), "CN-PRV-01")


def registered_without_notice(year: int, *, hour: int = 10, offset: int = 8) -> Story:
    story = Story()
    zone = timezone(timedelta(hours=offset))
    when = datetime(year, 3, 15, hour, tzinfo=zone)
    story.add("case.opened", when - timedelta(minutes=5), {"kind": "sale", "property_ref": "p"})
    story.add("party.registered", when, {"party_id": "p-1", "party_role": "seller"})
    return story


def test_conduct_before_a_rule_was_in_force_is_not_judged_by_it() -> None:
    """CN-PRV-01's notice duty came with the Consumer Protection Law of 2014-03-15: a
    registration without a notice in 2011 breaks no rule of its day; in 2015 it does."""
    before = prv01(registered_without_notice(2011))
    after = prv01(registered_without_notice(2015))

    assert before.status == "not_applicable"
    assert "before this rule was in force (2014-03-15)" in before.reason
    assert roles(before) == [(2, "trigger")]
    assert before.due is None
    assert after.status == "breached"


def test_the_day_a_rule_comes_into_force_is_the_senders_calendar_day() -> None:
    """00:30 on 15 March 2014 in Beijing is still 14 March in UTC: the rule applies."""
    early_in_beijing = registered_without_notice(2014, hour=0)
    same_instant_in_utc = Story()
    for event in early_in_beijing.events:
        moment = datetime.fromisoformat(event["occurred_at"]).astimezone(UTC)
        same_instant_in_utc.add(event["type"], moment, event["payload"])

    assert prv01(early_in_beijing).status == "breached"
    assert prv01(same_instant_in_utc).status == "not_applicable"


def test_a_rule_can_come_into_force_later_than_its_obligation() -> None:
    policy = load_policy("cn-baseline")
    rules = {rule.id: rule.in_force_from for rule in policy.obligation("CN-PRV-04").rules}

    assert str(rules["access"]) == "2011-04-01"
    assert str(rules["breach-notification"]) == "2017-06-01"


# --- determinism --------------------------------------------------------------------------------


def test_same_input_gives_the_same_bytes() -> None:
    """Record order, repeated runs and a freshly loaded policy object change nothing."""
    story = opened()
    identity(story, at(3, 4, 10))
    mandate(story, at(3, 4, 11))
    complaint(story, at(3, 5, 9))
    funds(story, at(3, 15), "personal")
    records = story.records()
    shuffled = list(records)
    random.Random(7).shuffle(shuffled)
    as_of = story.last_recorded + timedelta(minutes=1)
    fresh = load_policy_file(load_policy("cn-baseline").path)

    first = verdicts_as_bytes(evaluate(records, load_policy("cn-baseline"), as_of))
    again = verdicts_as_bytes(evaluate(records, load_policy("cn-baseline"), as_of))
    reordered = verdicts_as_bytes(evaluate(shuffled, fresh, as_of))

    assert first == again == reordered


def test_verdicts_come_sorted_and_every_obligation_is_listed() -> None:
    """Sorted by obligation, rule and trigger; obligations that never applied are still listed."""
    story = opened()
    policy = load_policy("cn-baseline")

    verdicts = judge(story)

    keys = [(v.obligation, v.rule or "", v.trigger["seq"] if v.trigger else 0) for v in verdicts]
    assert keys == sorted(keys)
    assert {v.obligation for v in verdicts} == {o.id for o in policy.obligations}
    assert {v.status for v in verdicts} <= set(STATUSES)


def test_the_json_document_of_a_verdict() -> None:
    """The fields a report relies on, with the policy's id, version and content hash."""
    story = opened()
    mandate(story, at(3, 4, 11))

    document = verdicts_as_json([one(judge(story), "CN-INT-01")])[0]

    assert set(document) >= {
        "obligation", "status", "due", "settled_at", "accountable", "performer", "supervisor",
        "evidence", "source", "basis", "severity", "trigger", "flags", "reason", "policy",
    }  # fmt: skip
    assert document["policy"]["sha256"] == load_policy("cn-baseline").content_hash
    assert document["evidence"][0].keys() == {"seq", "hash", "type", "role"}


def test_the_agency_scope_obligation_is_listed_not_judged() -> None:
    """Month-end reconciliation is not an event of a case: listed with a flag that says why."""
    verdict = one(judge(opened()), "CN-FND-03")

    assert (verdict.status, verdict.flags) == ("not_applicable", ("agency_scope",))


# --- who answers for it -------------------------------------------------------------------------


def test_the_performer_is_the_agent_of_record_at_the_trigger() -> None:
    """A reassignment between two mandates moves the performer and the supervisor with it."""
    story = opened()
    first = mandate(story, at(3, 4, 11), party="p-1")
    reassign = {
        "agent_id": "agent-t2",
        "case_role": "agent_of_record",
        "licence_no": "L-2",
        "supervisor_id": "mgr-t2",
    }
    story.add("agent.assigned", at(3, 6), reassign, actor="mgr-t2", role="branch_manager")
    second = mandate(story, at(3, 7), party="p-3")

    verdicts = {v.trigger["seq"]: v for v in pick(judge(story), "CN-INT-01") if v.trigger}

    assert (verdicts[first].performer, verdicts[first].supervisor) == ("agent-t1", "mgr-t1")
    assert (verdicts[second].performer, verdicts[second].supervisor) == ("agent-t2", "mgr-t2")
    assert verdicts[second].accountable == "agency-t"


def test_a_rule_can_name_the_actor_as_performer() -> None:
    """Whoever read personal data without need to know answers for it, not the agent of record."""
    story = opened()
    payload = {"party_id": "p-1", "purpose": "x", "fields": ["phone"], "count": 900}
    story.add("pi.accessed", at(3, 8, 21), payload, actor="agent-x9")
    story.add("pi.accessed", at(3, 8, 22), payload, actor="agent-t1")

    verdicts = pick(judge(story), "CN-PRV-04", "access")

    assert [(v.status, v.performer, v.supervisor) for v in verdicts] == [
        ("breached", "agent-x9", None),
        ("met", "agent-t1", "mgr-t1"),
    ]


def test_complaints_are_the_branch_manager_s() -> None:
    """The branch manager is the supervisor of the agent of record."""
    story = opened()
    complaint(story, at(3, 5, 9))

    verdict = one(judge(story), "CN-CMP-01", "acknowledge")

    assert (verdict.accountable, verdict.performer) == ("agency-t", "mgr-t1")


def test_an_actor_role_names_its_holder() -> None:
    """An erasure request is the personal-information officer's to answer."""
    story = opened()
    story.add(
        "pia.completed",
        at(3, 4, 9, 10),
        {"scope": "x", "document_sha256": "0" * 64},
        actor="pio-1",
        role="pi_officer",
    )
    story.add("erasure.requested", at(3, 20), {"party_id": "p-1"})

    verdict = one(judge(story, as_of=at(4, 30)), "CN-PRV-05")

    assert (verdict.status, verdict.performer) == ("breached", "pio-1")


# --- the client's part --------------------------------------------------------------------------


def test_a_client_who_paid_against_the_payee_clause_shares_the_fault() -> None:
    """The verdict stays the agency's; client_share names the payer (D-09)."""
    with_clause, without = opened(case_id="clause"), opened(case_id="none")
    sale(with_clause, at(3, 14), payee_account="settlement account")
    sale(without, at(3, 14))
    for story in (with_clause, without):
        funds(story, at(3, 15), "personal")

    shared = one(judge(with_clause), "CN-FND-02", "payment")
    alone = one(judge(without), "CN-FND-02", "payment")

    assert (shared.status, shared.accountable, shared.performer) == (
        "breached",
        "agency-t",
        "agent-t1",
    )
    assert shared.client_share == {
        "party": "p-2",
        "share_percent": None,
        "rule": "paid-against-payee-clause",
        "basis": "D",
        "source": "民法典 art 1173 (the injured party's own fault reduces the liability); D-09",
    }
    assert alone.status == "breached" and alone.client_share is None
    assert "client_share" not in alone.as_json()


SHIFT_POLICY = """\
format: casetrail-policy/1
id: shift
version: 1
obligations:
  - id: XX-SHF-01
    description: {en: money only into the settlement account, zh: 资金只进入专用账户}
    severity: high
    basis: D
    source: test
    trigger: funds.received
    holds:
      - label: money goes into the settlement account
        where: {payload.account_type: settlement}
    timing: invariant
    client_fault:
      - id: forged-instruction
        label: the payer forged the agency's payment instruction
        when: {payload.instruction_forged_by_payer: true}
        party: $trigger.payload.payer_party_id
        effect: shift
        source: test
        basis: D
"""


def test_a_client_fault_rule_can_shift_the_whole_breach(tmp_path: Path) -> None:
    """With effect shift the agency's verdict is waived and the client is named accountable."""
    path = tmp_path / "shift.yaml"
    path.write_text(SHIFT_POLICY, encoding="utf-8")
    story = opened()
    funds(story, at(3, 15), "personal", instruction_forged_by_payer=True)

    verdict = one(judge(story, policy=load_policy_file(path)), "XX-SHF-01")

    assert (verdict.status, verdict.accountable, verdict.performer) == ("waived", "p-2", "p-2")
    assert verdict.client_share is not None and verdict.client_share["share_percent"] == 100
    assert "the fault shifts to the client p-2" in verdict.reason


# --- activation, waivers, lapses ----------------------------------------------------------------


def test_an_obligation_applies_from_its_activation() -> None:
    """A sale case owes an identity check from its opening; a purchase case only from a mandate."""
    sale_case, purchase = opened("sale"), opened("purchase", case_id="t-2")

    pending = one(judge(sale_case), "CN-INT-01")
    untouched = one(judge(purchase), "CN-INT-01")

    assert (pending.status, pending.trigger, pending.due) == ("pending", None, None)
    assert pending.activated_by is not None and pending.activated_by["seq"] == 1
    assert pending.performer == "agent-t1"
    assert untouched.status == "not_applicable"


def test_closing_the_case_before_the_trigger_lapses_the_obligation() -> None:
    """No mandate was ever signed: the identity check is no longer owed."""
    story = opened()
    closed = story.add("case.closed", at(3, 10), {"outcome": "withdrawn"})

    verdict = one(judge(story), "CN-INT-01")

    assert verdict.status == "not_applicable"
    assert (closed, "lapse") in roles(verdict)


def test_terminating_the_mandate_before_listing_waives_the_listing_duties() -> None:
    """No listing will follow a terminated mandate: the condition statement is waived."""
    story = opened()
    mandate(story, at(3, 4, 11))
    ended = story.add(
        "mandate.terminated", at(3, 8), {"party_id": "p-1", "reason": "owner kept it"}
    )

    verdict = one(judge(story), "CN-LST-01")

    assert (verdict.status, verdict.settled_at) == ("waived", at(3, 8).isoformat())
    assert (ended, "waiver") in roles(verdict)


def test_a_declined_survey_waives_the_survey_but_not_the_follow_up() -> None:
    """The client may refuse a survey; the follow-up call is still owed."""
    story = opened()
    story.add("handover.completed", at(4, 12), {"checklist": {}})
    story.add("survey.declined", at(4, 14), {"party_id": "p-2"})

    verdicts = judge(story, as_of=at(4, 30))

    assert one(verdicts, "CN-FUP-01", "survey").status == "waived"
    assert one(verdicts, "CN-FUP-01", "follow-up").status == "breached"


# --- facts the agency knew ----------------------------------------------------------------------


def disclosure_case(*, disclosed: bool) -> tuple[Story, int]:
    story = opened()
    search = {
        "source": "r",
        "mortgages": [],
        "seizures": [],
        "restrictions": [],
        "snapshot_sha256": "0" * 64,
    }
    story.add("title.search_completed", at(3, 10), search)
    story.add(
        "inquiry.answered",
        at(3, 10, 11),
        {"party_id": "p-1", "topic": "material_facts", "answer": "none"},
    )
    fact = story.add(
        "material_fact.learned",
        at(3, 11),
        {"fact_type": "stigma", "description": "x", "source": "neighbour"},
    )
    if disclosed:
        payload = {"fact_type": "stigma", "to_party_id": "p-2", "acknowledged": True}
        story.add("material_fact.disclosed", at(3, 12), payload)
    sale(story, at(3, 14))
    return story, fact


@pytest.mark.parametrize("disclosed", [True, False])
def test_every_fact_known_before_the_contract_needs_an_acknowledged_disclosure(
    disclosed: bool,
) -> None:
    """CN-DIS-05 repeats its disclosure requirement for each fact learned before signing."""
    story, fact = disclosure_case(disclosed=disclosed)

    verdict = one(judge(story), "CN-DIS-05")

    assert verdict.status == ("met" if disclosed else "breached")
    assert (fact, "subject") in roles(verdict)
    if not disclosed:
        assert f"for material_fact.learned #{fact}" in verdict.reason
