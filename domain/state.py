"""The state of a case, folded from its records: what a compliance officer sees first.

A pure function of the records, so the projection, the `replay` command and a third
party all get the same state from the same events. Personal data never enters it:
parties appear by id and role only.

Corrections are events too (`event.corrected` points at an earlier seq). The state is
folded from the *effective* records: a corrected event counts with its replacement
payload, or not at all if the correction carries none; history keeps both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from domain.catalogue import Catalogue, load_catalogue
from domain.envelope import Record

State = dict[str, Any]

_CONTRACT_TYPES = {
    "contract.brokerage_signed": "brokerage",
    "contract.sale_signed": "sale",
    "contract.online_filed": "online_filing",
    "ancillary.contract_signed": "ancillary",
    "contract.rescinded": "rescission",
}
_DISCLOSURE_TYPES = {
    "disclosure.written_notice_signed",
    "disclosure.interest_declared",
    "material_fact.disclosed",
    "inquiry.answered",
}


def effective_records(records: Sequence[Record]) -> list[Record]:
    """The records as they count after corrections: replaced payloads, retracted events gone.

    The correcting event itself stays in the list, so anything reading the result can
    still see that, when and by whom a correction was made.
    """
    corrections: dict[int, dict[str, Any] | None] = {}
    for record in records:
        if record["type"] == "event.corrected":
            payload = record["payload"]
            corrections[int(payload["corrects_seq"])] = payload.get("replacement")

    if not corrections:
        return list(records)

    effective = []
    for record in records:
        seq = record["seq"]
        if seq not in corrections or record["type"] in ("case.opened", "event.corrected"):
            effective.append(record)
            continue
        replacement = corrections[seq]
        if replacement is not None:
            effective.append({**record, "payload": replacement, "corrected": True})
    return effective


def fold(records: Iterable[Record], catalogue: Catalogue | None = None) -> State | None:
    """The state after all the given records (in seq order), or None for no records."""
    records = list(records)
    if not records:
        return None

    catalogue = catalogue or load_catalogue()
    state = new_state(records[0])
    for record in effective_records(records):
        apply(state, record, catalogue)
    return state


def new_state(opened: Record) -> State:
    return {
        "case_id": opened["case_id"],
        "kind": None,
        "property_ref": None,
        "agency": opened["actor"]["agency"],
        "opened_at": opened["occurred_at"],
        "phase": "intake",
        "closed": False,
        "outcome": None,
        "parties": [],
        "agents": [],
        "mandates": [],
        "listings": [],
        "disclosures": [],
        "contracts": [],
        "funds": {
            "received": {},
            "released": {},
            "received_by_account": {},
            "commission_invoiced": {},
            "commission_received": {},
        },
        "complaints": [],
        "open_complaints": 0,
        "aftercare": {
            "handover_at": None,
            "followups": 0,
            "first_followup_at": None,
            "survey_score": None,
            "survey_declined": False,
        },
        "corrections": [],
        "last_seq": 0,
        "head_hash": None,
        "updated_at": None,
        "last_occurred_at": None,
    }


def apply(state: State, record: Record, catalogue: Catalogue) -> State:
    """Apply one effective record to the state, in place (and return it)."""
    kind = record["type"]
    payload = record["payload"]
    seq = record["seq"]

    _advance_phase(state, kind, catalogue)
    handler = _HANDLERS.get(kind)
    if handler is not None:
        handler(state, payload, seq, record)
    if kind in _DISCLOSURE_TYPES:
        _disclosure(state, kind, payload, seq)
    if kind in _CONTRACT_TYPES:
        _contract(state, kind, payload, seq)

    state["last_seq"] = max(state["last_seq"], seq)
    state["head_hash"] = record["hash"]
    state["updated_at"] = record["recorded_at"]
    state["last_occurred_at"] = record["occurred_at"]
    return state


def _advance_phase(state: State, kind: str, catalogue: Catalogue) -> None:
    event_type = catalogue.event_type(kind)
    if event_type is None or event_type.phase is None or state["closed"]:
        return
    if catalogue.phase_rank(event_type.phase) > catalogue.phase_rank(state["phase"]):
        state["phase"] = event_type.phase


def _opened(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    state["kind"] = payload.get("kind")
    state["property_ref"] = payload.get("property_ref")


def _closed(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    state["closed"] = True
    state["outcome"] = payload.get("outcome")


def _party(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    party_id = payload.get("party_id")
    role = payload.get("party_role")
    for party in state["parties"]:
        if party["party_id"] == party_id:
            party["role"] = role
            return
    state["parties"].append({"party_id": party_id, "role": role, "registered_seq": seq})


def _agent_assigned(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    entry = {
        "agent_id": payload.get("agent_id"),
        "case_role": payload.get("case_role"),
        "supervisor_id": payload.get("supervisor_id"),
        "licence_no": payload.get("licence_no"),
        "assigned_seq": seq,
        "active": True,
    }
    state["agents"] = [
        agent
        for agent in state["agents"]
        if not (agent["agent_id"] == entry["agent_id"] and agent["case_role"] == entry["case_role"])
    ]
    state["agents"].append(entry)


def _agent_unassigned(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    for agent in state["agents"]:
        if agent["agent_id"] == payload.get("agent_id"):
            agent["active"] = False


def _mandate(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    state["mandates"].append(
        {
            "seq": seq,
            "party_id": payload.get("party_id"),
            "kind": payload.get("kind"),
            "exclusive": payload.get("exclusive"),
            "expires_on": payload.get("expires_on"),
            "terminated": False,
        }
    )


def _mandate_terminated(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    for mandate in state["mandates"]:
        if mandate["party_id"] == payload.get("party_id"):
            mandate["terminated"] = True


def _listing(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    state["listings"].append(
        {
            "channel": payload.get("channel"),
            "listing_code": payload.get("listing_code"),
            "published_seq": seq,
            "withdrawn": False,
        }
    )


def _listing_withdrawn(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    for listing in state["listings"]:
        if listing["channel"] == payload.get("channel") and listing["listing_code"] == payload.get(
            "listing_code"
        ):
            listing["withdrawn"] = True


def _disclosure(state: State, kind: str, payload: dict[str, Any], seq: int) -> None:
    entry: dict[str, Any] = {"seq": seq, "type": kind}
    for name in ("party_id", "to_party_id", "fact_type", "items", "acknowledged", "topic"):
        if name in payload:
            entry[name] = payload[name]
    if kind == "disclosure.interest_declared":
        entry["has_interest"] = payload.get("has_interest")
    state["disclosures"].append(entry)


def _contract(state: State, kind: str, payload: dict[str, Any], seq: int) -> None:
    entry: dict[str, Any] = {"seq": seq, "type": _CONTRACT_TYPES[kind]}
    for name in (
        "party_id",
        "buyer_party_ids",
        "seller_party_ids",
        "price_minor",
        "currency",
        "filing_no",
        "service",
        "contract",
    ):
        if name in payload:
            entry[name] = payload[name]
    state["contracts"].append(entry)


def _add_money(bucket: dict[str, int], payload: dict[str, Any]) -> None:
    currency = payload.get("currency") or "?"
    amount = payload.get("amount_minor")
    if isinstance(amount, int):
        bucket[currency] = bucket.get(currency, 0) + amount


def _funds_received(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    funds = state["funds"]
    _add_money(funds["received"], payload)
    account = str(payload.get("account_type"))
    _add_money(funds["received_by_account"].setdefault(account, {}), payload)


def _funds_released(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    _add_money(state["funds"]["released"], payload)


def _commission_invoiced(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    _add_money(state["funds"]["commission_invoiced"], payload)


def _commission_received(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    _add_money(state["funds"]["commission_received"], payload)


def _complaint(state: State, complaint_id: Any) -> dict[str, Any]:
    complaints: list[dict[str, Any]] = state["complaints"]
    for existing in complaints:
        if existing["complaint_id"] == complaint_id:
            return existing
    complaint: dict[str, Any] = {
        "complaint_id": complaint_id,
        "party_id": None,
        "status": "open",
        "received_at": None,
        "acknowledged_at": None,
        "solution_proposed_at": None,
        "closed_at": None,
        "escalated_to": [],
    }
    state["complaints"].append(complaint)
    return complaint


def _complaint_event(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    complaint = _complaint(state, payload.get("complaint_id"))
    moment = record["occurred_at"]
    kind = record["type"]
    if kind == "complaint.received":
        complaint["party_id"] = payload.get("party_id")
        complaint["received_at"] = moment
    elif kind == "complaint.acknowledged":
        complaint["acknowledged_at"] = complaint["acknowledged_at"] or moment
    elif kind == "complaint.solution_proposed":
        complaint["solution_proposed_at"] = complaint["solution_proposed_at"] or moment
    elif kind == "complaint.closed":
        complaint["status"] = "closed"
        complaint["closed_at"] = moment
    elif kind == "complaint.escalated":
        complaint["escalated_to"].append(payload.get("to"))
    state["open_complaints"] = sum(1 for c in state["complaints"] if c["status"] == "open")


def _aftercare(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    aftercare = state.setdefault("aftercare", {})
    kind = record["type"]
    if kind == "handover.completed":
        aftercare["handover_at"] = record["occurred_at"]
    elif kind == "followup.contacted":
        aftercare["followups"] = aftercare.get("followups", 0) + 1
        aftercare["first_followup_at"] = aftercare.get("first_followup_at") or record["occurred_at"]
    elif kind == "survey.completed":
        aftercare["survey_score"] = payload.get("score")
    elif kind == "survey.declined":
        aftercare["survey_declined"] = True


def _corrected(state: State, payload: dict[str, Any], seq: int, record: Record) -> None:
    state["corrections"].append(
        {
            "seq": seq,
            "corrects_seq": payload.get("corrects_seq"),
            "reason": payload.get("reason"),
            "replaced": payload.get("replacement") is not None,
        }
    )


_HANDLERS = {
    "case.opened": _opened,
    "case.closed": _closed,
    "party.registered": _party,
    "agent.assigned": _agent_assigned,
    "agent.unassigned": _agent_unassigned,
    "mandate.signed": _mandate,
    "mandate.terminated": _mandate_terminated,
    "listing.published": _listing,
    "listing.withdrawn": _listing_withdrawn,
    "funds.received": _funds_received,
    "funds.released": _funds_released,
    "commission.invoiced": _commission_invoiced,
    "commission.received": _commission_received,
    "complaint.received": _complaint_event,
    "complaint.acknowledged": _complaint_event,
    "complaint.solution_proposed": _complaint_event,
    "complaint.closed": _complaint_event,
    "complaint.escalated": _complaint_event,
    "event.corrected": _corrected,
    "handover.completed": _aftercare,
    "followup.contacted": _aftercare,
    "survey.completed": _aftercare,
    "survey.declined": _aftercare,
}
