"""Reading personal data in plain text, and erasing it, as acts on the record.

A reveal opens the sealed fields of a page of records for a caller entitled to them, and
appends one `pi.accessed` event per party to the case — naming the key, the fields, the
stated purpose and how many values — before a single plaintext value is returned. If the
record cannot be written, nothing is revealed.

An erasure request is answered by the retention rules of the active policy (PIPL art 47):
while a retention clock still runs for any case of the party, the party is restricted
(storage and security only; reveals refused except to an admin for a legal claim) and
`erasure.restricted` is recorded with the date erasure becomes possible; otherwise the
party's data keys are destroyed and `erasure.executed` recorded. Either way every chain,
proof and bundle still verifies: only keys change, never the records.

A party is the pair (agency, party_id): each agency names its own parties, so an erasure
names the agency, and only that agency's cases, keys and restrictions take part in it.
A retention clock runs from the later of an event's occurred_at (what the sender says)
and its recorded_at (what the ledger vouches for), so a backdated contract cannot make
data erasable early.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from domain.case import case_stream_id
from domain.envelope import Record, format_recorded_at, parse_recorded_at, parse_stored
from domain.errors import LedgerIntegrityError, NotPermitted, UnknownParty
from domain.validation import Draft
from domain.vault import ERASED, VaultError, field_context, is_sealed, open_sealed
from projections.apikeys import Principal
from projections.keystore import LEGACY_AGENCY, KeyDestroyed, UnknownKey
from projections.writer import AppendCommand

if TYPE_CHECKING:
    from projections.runtime import Runtime

log = logging.getLogger("casetrail.personal_data")

RESTRICTED = "restricted"

RESTRICTIONS_TABLE = """
    CREATE TABLE IF NOT EXISTS party_restrictions (
        agency TEXT NOT NULL,
        party_id TEXT NOT NULL,
        until TEXT NOT NULL,
        reason TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (agency, party_id)
    )
"""
# Restrictions of earlier versions were keyed by party id alone; they keep applying to
# that id in every agency (agency ''), the cautious reading of what they meant.
RESTRICTIONS_MIGRATION = [
    "ALTER TABLE party_restrictions RENAME TO party_restrictions_unscoped",
    RESTRICTIONS_TABLE,
    f"""
    INSERT INTO party_restrictions (agency, party_id, until, reason, recorded_at)
    SELECT '{LEGACY_AGENCY}', party_id, until, reason, recorded_at
    FROM party_restrictions_unscoped
    """,
    "DROP TABLE party_restrictions_unscoped",
]

ACTOR_ROLES = {"compliance": "compliance", "agent": "agent_of_record", "admin": "pi_officer"}


@dataclass(frozen=True)
class Revealed:
    seq: int
    path: str
    party_id: str
    field: str
    value: str | None
    status: str  # "revealed", "erased", "restricted" or "unreadable"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class PersonalData:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.db = runtime.ledger.db
        self.db.execute_script([RESTRICTIONS_TABLE])
        if not self.db.has_column("party_restrictions", "agency"):
            self.db.execute_script(RESTRICTIONS_MIGRATION)

    # -- reveal ---------------------------------------------------------------------------

    def may_reveal(self, caller: Principal, case_agency: str) -> bool:
        if caller.role == "admin":
            return True
        if caller.role not in self.runtime.settings.reveal_roles:
            return False
        return caller.may_see_agency(case_agency)

    def reveal(
        self, case_id: str, records: list[Record], caller: Principal, purpose: str
    ) -> list[Revealed]:
        """Open the sealed fields of these records, after recording the access."""
        agency = self.runtime.case_agency(case_id) or ""
        if not self.may_reveal(caller, agency):
            raise NotPermitted(
                f"a key with role {caller.role!r} may not read personal data in plain text "
                f"(roles allowed: {', '.join(self.runtime.settings.reveal_roles)} of the "
                "case's agency, and admin)"
            )

        places = _sealed_places(self.runtime, records)
        opened = [self._open(case_id, agency, record, place, caller) for record, place in places]
        if opened:
            self._record_access(case_id, agency, opened, caller, purpose)
        return opened

    def _open(
        self, case_id: str, agency: str, record: Record, place: _Place, caller: Principal
    ) -> Revealed:
        sealed = place.sealed
        base = (record["seq"], place.path, place.party_id, place.field)
        restriction = self.restriction(agency, place.party_id)
        if restriction is not None and caller.role != "admin":
            return Revealed(*base, None, RESTRICTED)
        try:
            key = self.runtime.keystore.key(sealed["key_id"])
        except KeyDestroyed:
            return Revealed(*base, ERASED, "erased")
        except UnknownKey:
            raise LedgerIntegrityError(
                f"case {case_id!r} seq {record['seq']} holds a value sealed under key "
                f"{sealed['key_id']!r}, which this ledger never issued"
            ) from None
        context = field_context(case_id, record["seq"], place.party_id, place.field)
        try:
            return Revealed(*base, open_sealed(key, sealed, context), "revealed")
        except VaultError:
            # Sealed for another case, event, party or field (a copied value): refuse it.
            log.warning(
                "sealed value at %s seq %s %s does not open", case_id, record["seq"], place.path
            )
            return Revealed(*base, None, "unreadable")

    def _record_access(
        self,
        case_id: str,
        agency: str,
        opened: list[Revealed],
        caller: Principal,
        purpose: str,
    ) -> None:
        by_party: dict[str, list[Revealed]] = {}
        for item in opened:
            by_party.setdefault(item.party_id, []).append(item)
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        drafts = [
            Draft(
                type="pi.accessed",
                schema_version=self.runtime.catalogue.version,
                occurred_at=now,
                actor={
                    "id": caller.key_id,
                    "role": ACTOR_ROLES.get(caller.role, "system"),
                    "agency": agency,
                },
                payload={
                    "party_id": party_id,
                    "purpose": purpose,
                    "fields": sorted({item.field for item in items}),
                    "count": sum(1 for item in items if item.status == "revealed"),
                    "key_id": caller.key_id,
                },
                evidence=[],
            )
            for party_id, items in sorted(by_party.items())
        ]
        # Appended (and committed) before the caller sees anything.
        self.runtime.append(
            AppendCommand(case_id=case_id, events=drafts, recorded_by=caller.key_id)
        )

    # -- erasure ----------------------------------------------------------------------------

    def restriction(self, agency: str, party_id: str) -> dict[str, Any] | None:
        """The restriction on the agency's party (or on its id from before agency scoping)."""
        return self.db.query_one(
            "SELECT party_id, until, reason, recorded_at FROM party_restrictions "
            "WHERE party_id = ? AND agency IN (?, ?) ORDER BY agency DESC",
            [party_id, agency, LEGACY_AGENCY],
        )

    def erase(
        self, agency: str | None, party_id: str, reason: str, caller: Principal
    ) -> dict[str, Any]:
        """Answer an erasure request: restrict while a retention clock runs, else destroy
        the keys. A party id names one person across the platform, so without `agency`
        the person is erased in every agency that registered them (each agency seals
        under its own key); with it, only in that agency."""
        agencies = [agency] if agency is not None else self._agencies_of(party_id)
        cases = [case for each in agencies for case in self._cases_of(each, party_id)]
        keys = [
            key for each in agencies for key in self.runtime.keystore.party_key_ids(each, party_id)
        ]
        if not cases and not keys:
            where = f"agency {agency!r}" if agency is not None else "any agency"
            raise UnknownParty(
                f"{where} has no party {party_id!r}: no case registered it (check the id)",
                pointer="/path/party_id",
            )
        until = self._retention_end(cases)
        now = datetime.now(UTC)

        payload: dict[str, Any] = {"party_id": party_id, "reason": reason}
        destroyed: list[str] = []
        if until is not None and until > now:
            for each in agencies:
                self._restrict(each, party_id, until, reason)
            outcome = "erasure.restricted"
            payload["until"] = until.date().isoformat()
        else:
            for each in agencies:
                destroyed.extend(self.runtime.keystore.destroy(each, party_id))
                with self.db.transaction() as cursor:
                    cursor.execute(
                        "DELETE FROM party_restrictions WHERE agency = ? AND party_id = ?",
                        [each, party_id],
                    )
            outcome = "erasure.executed"
            payload["key_ids"] = destroyed

        for case_id in cases:
            self._record(case_id, party_id, reason, outcome, payload, caller)
        return {
            "agency": agency,
            "party_id": party_id,
            "outcome": outcome.split(".")[1],
            "until": payload.get("until"),
            "destroyed_key_ids": destroyed,
            "cases": cases,
        }

    def _agencies_of(self, party_id: str) -> list[str]:
        """Every agency that registered the party or holds a key for it."""
        self.runtime.settle(timeout=5.0, views=("case_state",))
        rows = self.db.query("SELECT case_id FROM case_parties WHERE party_id = ?", [party_id])
        found = {self.runtime.case_agency(row["case_id"]) for row in rows}
        found.update(
            str(row["agency"])
            for row in self.db.query(
                "SELECT DISTINCT agency FROM party_keys WHERE party_id = ?", [party_id]
            )
        )
        return sorted(agency for agency in found if agency is not None)

    def _cases_of(self, agency: str, party_id: str) -> list[str]:
        """The agency's cases that name the party (another agency's same id is not it)."""
        self.runtime.settle(timeout=5.0, views=("case_state",))
        rows = self.db.query(
            "SELECT case_id FROM case_parties WHERE party_id = ? ORDER BY case_id", [party_id]
        )
        # Whose case it is comes from its verified opening record, not from a view.
        return [
            row["case_id"] for row in rows if self.runtime.case_agency(row["case_id"]) == agency
        ]

    def _retention_end(self, cases: list[str]) -> datetime | None:
        """When the last retention clock of the party's cases runs out (None if none runs)."""
        ends: list[datetime] = []
        for case_id in cases:
            records = self.runtime.verified_records(case_id)
            for rule in self.runtime.policy.retention:
                moments = [
                    _clock_start(record) for record in records if record["type"] in rule.after
                ]
                if moments:
                    # Saturates at the end of time rather than overflowing.
                    ends.append(rule.keep.after(max(moments)))
        return max(ends) if ends else None

    def _restrict(self, agency: str, party_id: str, until: datetime, reason: str) -> None:
        with self.db.transaction() as cursor:
            cursor.execute(
                """
                INSERT INTO party_restrictions (agency, party_id, until, reason, recorded_at)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (agency, party_id) DO UPDATE SET until = excluded.until,
                    reason = excluded.reason, recorded_at = excluded.recorded_at
                """,
                [
                    agency,
                    party_id,
                    format_recorded_at(until),
                    reason,
                    format_recorded_at(datetime.now(UTC)),
                ],
            )

    def _record(
        self,
        case_id: str,
        party_id: str,
        reason: str,
        outcome: str,
        payload: dict[str, Any],
        caller: Principal,
    ) -> None:
        agency = self.runtime.case_agency(case_id) or ""
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        actor = {"id": caller.key_id, "role": "pi_officer", "agency": agency}
        drafts = [
            Draft("erasure.requested", 1, now, actor, {"party_id": party_id, "reason": reason}, []),
            Draft(outcome, 1, now, actor, payload, []),
        ]
        self.runtime.append(
            AppendCommand(case_id=case_id, events=drafts, recorded_by=caller.key_id)
        )


def _clock_start(record: Record) -> datetime:
    """When a retention clock starts for a record: the later of its occurred_at and its
    recorded_at, so the clock never runs shorter than the ledger can vouch for."""
    occurred = datetime.fromisoformat(record["occurred_at"].replace("Z", "+00:00"))
    recorded = parse_recorded_at(record["recorded_at"])
    return max(occurred, recorded)


@dataclass(frozen=True)
class _Place:
    path: str
    party_id: str
    field: str
    sealed: dict[str, str]


def _sealed_places(runtime: Runtime, records: list[Record]) -> list[tuple[Record, _Place]]:
    """Every sealed personal value in the records, with its party and field."""
    places: list[tuple[Record, _Place]] = []
    for record in records:
        payloads = [("/payload", record["type"], record["payload"])]
        replacement = record["payload"].get("replacement")
        if record["type"] == "event.corrected" and isinstance(replacement, dict):
            target = _corrected_type(runtime, record)
            if target is not None:
                payloads.append(("/payload/replacement", target, replacement))
        for base, event_type, payload in payloads:
            spec = runtime.catalogue.types.get(event_type)
            if spec is None or not spec.personal:
                continue
            party_id = str(payload.get(spec.subject or "party_id"))
            for name in spec.personal:
                value = payload.get(name)
                if is_sealed(value):
                    places.append((record, _Place(f"{base}/{name}", party_id, name, value)))
    return places


def _corrected_type(runtime: Runtime, record: Record) -> str | None:
    """The type of the event a correction replaces (its replacement is sealed like it)."""
    target = int(record["payload"]["corrects_seq"])
    stream = case_stream_id(record["case_id"])
    stored = runtime.ledger.recorder.select_events(stream, gt=target - 1, lte=target)
    parsed = parse_stored(stored[0].state, seq=target, verify=False) if stored else None
    return str(parsed["type"]) if isinstance(parsed, dict) else None
