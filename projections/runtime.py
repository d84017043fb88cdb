"""A running ledger: the store, its writer and the followers that keep the views current.

The HTTP app and the command line both work through a `Runtime`, so an event appended by
`casetrail demo` takes exactly the same path as one posted over HTTP.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain import merkle
from domain.bundle import build_bundle
from domain.case import Case, case_stream_id
from domain.catalogue import Catalogue, load_catalogue
from domain.envelope import (
    ChainReport,
    ChainVerifier,
    Record,
    RecordFault,
    check_record,
    format_recorded_at,
    parse_stored,
)
from domain.errors import (
    ChainBroken,
    LedgerIntegrityError,
    ProofError,
    SignatureError,
    UnknownCase,
)
from domain.evaluator import evaluate, verdicts_as_json
from domain.policy import load_policy
from domain.settings import Settings
from domain.signing import LedgerKey, TreeHead, verify_tree_head
from domain.state import State, fold
from domain.validation import EventValidator
from domain.vault import field_context, load_master_key, seal
from projections.apikeys import ApiKeys, Principal
from projections.attribution import AttributionProjection
from projections.case_state import CaseStateProjection
from projections.follower import Follower
from projections.keystore import KeyStore
from projections.marks import EventMarks
from projections.personal_data import PersonalData
from projections.store import Ledger
from projections.transparency import Sealer, TransparencyLog
from projections.writer import AppendCommand, AppendResult, Writer

log = logging.getLogger("casetrail.runtime")


@dataclass(frozen=True)
class EventPage:
    case_id: str
    stored: list[bytes]
    records: list[Record]
    last_seq: int | None


class Runtime:
    def __init__(self, settings: Settings, *, start_followers: bool = True) -> None:
        self.settings = settings
        settings.ensure_var_dir()
        self.catalogue: Catalogue = load_catalogue()
        self.validator = EventValidator(self.catalogue)
        self.ledger = Ledger(settings.database)
        self.master_key = load_master_key(value=settings.master_key, path=settings.master_key_path)
        try:
            self.keystore = KeyStore(self.ledger.db, self.master_key)
        except BaseException:
            # A master key the ledger no longer uses, say: let go of the connection pool.
            self.ledger.close()
            raise
        self.api_keys = ApiKeys(self.ledger.db)
        self.request_secret = self.keystore.secret("request-fingerprint")
        self.signing_key = _load_signing_key(settings.signing_key_path)
        self.marks = EventMarks(self.ledger.db, self.keystore.secret("event-mark"))
        self.sealer = Sealer(
            self.ledger,
            self.signing_key,
            sign_every_events=settings.seal_every_events,
            sign_every_seconds=settings.seal_every_seconds,
            marks=self.marks,
        )
        self.log = TransparencyLog(self.ledger, self.sealer)
        self.writer = Writer(
            self.ledger,
            seal_personal=self.seal_personal,
            guard_case=self.guard_case,
            check_payload=self.check_payload,
            ledger_made=self.ledger_made,
            mark=self.marks.mark,
        )
        self.case_state = CaseStateProjection(self.ledger)
        self.policy = load_policy(settings.policy)
        self.attribution = AttributionProjection(self.ledger, self.policy)
        self._agencies: dict[str, str] = {}
        self._verified_head: tuple[int, str] | None = None
        self.personal_data = PersonalData(self)
        self.followers: dict[str, Follower] = {
            # Readers that need the latest state wait for it (and cut the pause short), so
            # the view can gather a tenth of a second of appends into one transaction.
            "case_state": Follower(self.ledger, self.case_state, gather_seconds=0.1),
            # Events are sealed within a second anyway (tree heads are signed every
            # CASETRAIL_SEAL_EVERY_SECONDS): a fifth of one lets appends gather.
            "transparency_log": Follower(self.ledger, self.sealer, gather_seconds=0.2),
            # Verdicts need not follow every append within milliseconds: gathering half a
            # second of them evaluates each busy case once, not once per request, and
            # under load the view takes at most a quarter of the process's time (a long
            # case costs its length to evaluate), so appends keep theirs.
            "attribution": Follower(self.ledger, self.attribution, gather_seconds=0.5, share=0.25),
        }
        if start_followers:
            for follower in self.followers.values():
                follower.start()

    def close(self) -> None:
        self.writer.close()
        for follower in self.followers.values():
            follower.stop()
        self.ledger.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------

    def append(self, command: AppendCommand, timeout: float = 60.0) -> AppendResult:
        return self.writer.append(command, timeout=timeout)

    def seal_personal(
        self, case_id: str, agency: str, seq: int, event_type: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Seal the personal fields of a payload under its subject's data key: the key of
        that party id *in the case's agency*, so no agency can reach another's party."""
        spec = self.catalogue.types[event_type]
        present = [name for name in spec.personal if isinstance(payload.get(name), str)]
        if not present:
            return payload

        party_id = str(payload.get(spec.subject or "party_id"))
        key_id, key = self.keystore.active_key(agency, party_id)
        sealed = dict(payload)
        for name in present:
            sealed[name] = seal(
                key, key_id, payload[name], field_context(case_id, seq, party_id, name)
            )
        return sealed

    def guard_case(self, case_id: str, stored: dict[int, str]) -> None:
        """Refuse to append to a case whose store disagrees with the transparency log.

        A sealed event rewritten, or events removed behind the ledger's back, would
        otherwise be extended at the old length, hiding the damage from the chain.
        """
        sealed = self.log.leaf_hashes(case_id, 1, None)
        for seq, leaf_hash in sorted(sealed.items()):
            if seq not in stored:
                raise LedgerIntegrityError(
                    f"case {case_id!r} has {len(stored)} events in the store but the "
                    f"transparency log holds seq {max(sealed)}: events were removed; the ledger "
                    "refuses to append until this is investigated (run `casetrail verify`)"
                )
            if stored[seq] != leaf_hash:
                raise LedgerIntegrityError(
                    f"case {case_id!r} seq {seq} differs from its leaf in the transparency log; "
                    "the ledger refuses to append until this is investigated"
                )

    def check_payload(self, event_type: str, payload: Any, pointer: str) -> None:
        self.validator.payload(event_type, payload, pointer)

    def ledger_made(self, event_type: str, payload: dict[str, Any]) -> bool:
        """Whether only the ledger makes such a record (the catalogue's `system` marks)."""
        spec = self.catalogue.types.get(event_type)
        if spec is None:
            return False
        return spec.system or any(name in payload for name in spec.system_fields)

    # -- attribution ------------------------------------------------------------------

    def attribution_of(
        self, case_id: str, *, as_of: datetime | None = None, policy_id: str | None = None
    ) -> dict[str, Any]:
        """A case's verdicts evaluated directly from its verified records, as of a moment."""
        policy = self.policy if policy_id is None else load_policy(policy_id)
        moment = as_of or datetime.now(UTC)
        records = self.verified_records(case_id)
        verdicts = evaluate(records, policy, moment)
        return {
            "case_id": case_id,
            "as_of": format_recorded_at(moment),
            "policy": policy.ref(),
            "verdicts": verdicts_as_json(verdicts),
        }

    # -- the transparency log ---------------------------------------------------------

    def seal_now(self) -> TreeHead | None:
        """Seal everything recorded so far and sign a tree head covering it."""
        if self.signing_key is None:
            raise LedgerIntegrityError("the ledger has no signing key: run `casetrail keys init`")
        self.followers["transparency_log"].catch_up()
        return self.sealer.sign()

    def bundle(self, case_id: str) -> dict[str, Any]:
        """A dispute bundle of the case, against a tree head that covers all its events."""
        head = self.seal_now()
        records = self.verified_records(case_id)
        if head is None or self.signing_key is None:
            raise LedgerIntegrityError("no signed tree head exists yet")
        leaves = {int(leaf["seq"]): leaf for leaf in self.log.leaves_of_case(case_id)}

        entries = []
        for record in records:
            leaf = leaves.get(record["seq"])
            if leaf is None or int(leaf["leaf_index"]) >= head.tree_size:
                raise LedgerIntegrityError(
                    f"seq {record['seq']} of case {case_id!r} is not yet covered by a signed "
                    "tree head; try again in a moment"
                )
            if leaf["event_hash"] != record["hash"]:
                raise ChainBroken(
                    f"seq {record['seq']} of case {case_id!r} differs from its leaf in the "
                    "transparency log",
                    case_id=case_id,
                    seq=record["seq"],
                )
            proof = self.log.inclusion_proof(int(leaf["leaf_index"]), head.tree_size)
            entries.append((record, int(leaf["leaf_index"]), proof))
        # The records were read after sealing and every one is in the tree, so the last of
        # them is the case's last event in that tree; signing that lets a reader see that
        # no events were cut from the end of the bundle.
        last = records[-1]
        case_head = self.signing_key.sign_case_head(
            case_id,
            int(last["seq"]),
            str(last["hash"]),
            head,
            format_recorded_at(datetime.now(UTC)),
        )
        return build_bundle(
            case_id, self.catalogue.version, self.signing_key.public_key, head, case_head, entries
        )

    def verified_records(self, case_id: str) -> list[Record]:
        """All of a case's records, after checking its chain against the log and the views.

        Everything that presents a case as sound (replay, attribution, bundles) reads it
        through here, so tampered history is refused with the first bad seq, not served.
        """
        records = self._chain_records(case_id)
        hashes = {int(record["seq"]): str(record["hash"]) for record in records}
        report = ChainReport(case_id, len(records), records[-1]["hash"] if records else "")
        checked = self._against_stores(report, hashes)
        if checked.fault is not None:
            raise ChainBroken(
                f"case {case_id!r} does not verify at seq {checked.fault.seq}: "
                f"{checked.fault.reason}",
                case_id=case_id,
                seq=checked.fault.seq,
            )
        if not records:
            raise UnknownCase(f"no case {case_id!r}", pointer="/path/case_id")
        return records

    def _chain_records(self, case_id: str) -> list[Record]:
        verifier = ChainVerifier(case_id)
        records: list[Record] = []
        for seq, state in self.iter_records(case_id):
            fault = verifier.add(seq, state)
            if fault is not None:
                raise ChainBroken(
                    f"case {case_id!r} does not verify at seq {fault.seq}: {fault.reason}",
                    case_id=case_id,
                    seq=fault.seq,
                )
            assert verifier.record is not None  # set by every add that verifies
            records.append(verifier.record)
        return records

    # -- keeping views current --------------------------------------------------------

    def head_position(self) -> int:
        return self.ledger.recorder.max_notification_id() or 0

    def settle(self, timeout: float = 2.0, views: tuple[str, ...] | None = None) -> bool:
        """Wait until the given views (every view by default) have processed everything
        recorded so far."""
        target = self.head_position()
        deadline = time.monotonic() + timeout
        for name, follower in self.followers.items():
            if views is not None and name not in views:
                continue
            remaining = max(0.0, deadline - time.monotonic())
            if not follower.wait_for(target, timeout=remaining):
                return False
        return True

    def catch_up(self) -> None:
        """Bring every view up to date on the calling thread (command-line use)."""
        for follower in self.followers.values():
            follower.catch_up()

    # -- reading ----------------------------------------------------------------------

    def case_exists(self, case_id: str) -> bool:
        return self.case_agency(case_id) is not None

    def case_agency(self, case_id: str) -> str | None:
        """The agency that opened a case (which never changes), or None if there is no case.

        Access control rests on this, so the opening record is checked before it is
        believed: its own hash, and its leaf in the transparency log once it is sealed.
        """
        agency = self._agencies.get(case_id)
        if agency is not None:
            return agency
        first = self.ledger.recorder.select_events(case_stream_id(case_id), limit=1)
        if not first:
            return None
        opened = parse_stored(first[0].state, seq=first[0].originator_version)
        fault = self._opening_fault(case_id, opened)
        if fault is not None or not isinstance(opened, dict):
            reason = fault.reason if fault is not None else "unreadable"
            raise ChainBroken(
                f"case {case_id!r} cannot be trusted: its opening record does not verify "
                f"({reason})",
                case_id=case_id,
                seq=1,
            )
        agency = str(opened["actor"]["agency"])
        if len(self._agencies) > 100_000:
            self._agencies.clear()
        self._agencies[case_id] = agency
        return agency

    def _opening_fault(self, case_id: str, opened: Record | RecordFault) -> RecordFault | None:
        if isinstance(opened, RecordFault):
            return opened
        fault = check_record(opened, case_id=case_id, seq=1)
        if fault is not None:
            return fault
        sealed = self.log.leaf_hashes(case_id, 1, 1).get(1)
        if sealed is not None and sealed != opened["hash"]:
            return RecordFault(1, "it differs from its leaf in the transparency log", "log")
        return None

    def visible_case(self, case_id: str, viewer: Principal) -> str:
        """The case's agency if `viewer` may see the case; otherwise 404, as for no case.

        A case whose opening record was tampered with is reported broken only to a viewer
        who could see it when it was sound; to anyone else it is a case they cannot see,
        so a corrupt row never tells one agency about another's case."""
        try:
            agency = self.case_agency(case_id)
        except ChainBroken:
            if viewer.may_see_agency(self._projected_agency(case_id) or "\x00"):
                raise
            raise UnknownCase(f"no case {case_id!r}", pointer="/path/case_id") from None
        if agency is None or not viewer.may_see_agency(agency):
            raise UnknownCase(f"no case {case_id!r}", pointer="/path/case_id")
        return agency

    def _projected_agency(self, case_id: str) -> str | None:
        """The agency the case-state view recorded while the case still verified."""
        row = self.ledger.db.query_one("SELECT agency FROM case_state WHERE case_id = ?", [case_id])
        return str(row["agency"]) if row is not None else None

    def read_events(self, case_id: str, *, after_seq: int, limit: int) -> EventPage:
        """A page of a case's records, each verified against its predecessor before serving."""
        stream = case_stream_id(case_id)
        start = max(after_seq - 1, 0)
        stored = self.ledger.recorder.select_events(stream, gt=start, limit=limit + 1)
        if not stored and after_seq == 0:
            raise UnknownCase(f"no case {case_id!r}", pointer="/path/case_id")
        if after_seq > 0 and (not stored or stored[0].originator_version != after_seq):
            if not self.case_exists(case_id):
                raise UnknownCase(f"no case {case_id!r}", pointer="/path/case_id")
            if not stored:
                self._check_page_against_log(case_id, [], after_seq=after_seq, complete=True)
                return EventPage(case_id, [], [], None)
            raise ChainBroken(
                f"seq {after_seq} of case {case_id!r} is missing from the store",
                case_id=case_id,
                seq=after_seq,
            )

        verifier = ChainVerifier(case_id)
        if after_seq > 0:
            link = parse_stored(stored[0].state, seq=after_seq)
            if not isinstance(link, dict):
                raise ChainBroken(link.reason, case_id=case_id, seq=link.seq)
            verifier = ChainVerifier(case_id, after_seq=after_seq, prev_hash=str(link["hash"]))
            stored = stored[1:]
        stored = stored[:limit]

        pages: list[bytes] = []
        records: list[Record] = []
        for event in stored:
            fault = verifier.add(event.originator_version, event.state)
            if fault is not None:
                raise ChainBroken(
                    f"case {case_id!r} does not verify at seq {fault.seq}: {fault.reason}",
                    case_id=case_id,
                    seq=fault.seq,
                )
            pages.append(event.state)
            assert verifier.record is not None  # set by every add that verifies
            records.append(verifier.record)
        last = records[-1]["seq"] if records else None
        self._check_page_against_log(
            case_id, records, after_seq=after_seq, complete=len(stored) < limit
        )
        return EventPage(case_id, pages, records, last)

    def _check_page_against_log(
        self, case_id: str, records: list[Record], *, after_seq: int, complete: bool
    ) -> None:
        """Refuse to serve records that differ from their leaves, or a truncated case."""
        first = records[0]["seq"] if records else after_seq + 1
        last = records[-1]["seq"] if records else after_seq
        sealed = self.log.leaf_hashes(case_id, first, None if complete else last)
        for record in records:
            leaf_hash = sealed.get(record["seq"])
            if leaf_hash is not None and leaf_hash != record["hash"]:
                raise ChainBroken(
                    f"case {case_id!r} seq {record['seq']} differs from its leaf in the "
                    "transparency log: it was rewritten after it was sealed",
                    case_id=case_id,
                    seq=record["seq"],
                )
        beyond = [seq for seq in sealed if seq > last]
        if complete and beyond:
            raise ChainBroken(
                f"case {case_id!r} ends at seq {last} in the store, but the transparency log "
                f"holds seq {max(beyond)}: events were removed",
                case_id=case_id,
                seq=last + 1,
            )

    def feed(self, *, after: int, limit: int, viewer: Principal) -> dict[str, Any]:
        """The global feed after a position, in feed order, filtered to what `viewer` sees.

        `next_after` is the last position read (seen or filtered out), so an agency-scoped
        reader pages through the whole log without skipping anything it may see.
        """
        notifications = self.ledger.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        events = []
        for notification in notifications:
            record = parse_stored(notification.state, seq=notification.originator_version)
            if not isinstance(record, dict):
                # Whose record it was cannot be known, so only unscoped keys are told.
                if viewer.agency is None:
                    events.append(
                        {"position": notification.id, "error": record.reason, "case_id": None}
                    )
                continue
            case_id = str(record["case_id"])
            if viewer.agency is not None and self._feed_agency(case_id) != viewer.agency:
                continue
            events.append(
                {
                    "position": notification.id,
                    "case_id": case_id,
                    "seq": record["seq"],
                    "type": record["type"],
                    "hash": record["hash"],
                    "recorded_at": record["recorded_at"],
                }
            )
        next_after = notifications[-1].id if notifications else after
        return {"events": events, "next_after": next_after}

    def _feed_agency(self, case_id: str) -> str | None:
        # One case with a corrupt opening record must not stop every agency's feed.
        try:
            return self.case_agency(case_id)
        except ChainBroken:
            return self._projected_agency(case_id)

    def iter_records(self, case_id: str) -> Iterator[tuple[int, bytes]]:
        stream = case_stream_id(case_id)
        after = 0
        while True:
            page = self.ledger.recorder.select_events(stream, gt=after, limit=1000)
            if not page:
                return
            for event in page:
                yield event.originator_version, event.state
            after = page[-1].originator_version

    def verify_case(self, case_id: str, *, against_log: bool = True) -> ChainReport:
        """Verify a case's chain and, unless told otherwise, each event against its leaf."""
        verifier = ChainVerifier(case_id)
        hashes: dict[int, str] = {}
        for seq, state in self.iter_records(case_id):
            if verifier.add(seq, state) is not None:
                break
            hashes[seq] = str(verifier.head_hash)
        report = verifier.report()
        if not report.ok or not against_log:
            return report
        checked = self._against_stores(report, hashes)
        if not hashes and checked.ok:
            raise UnknownCase(f"no case {case_id!r}", pointer="/path/case_id")
        return checked

    def _against_stores(self, report: ChainReport, hashes: dict[int, str]) -> ChainReport:
        """A sound chain, checked against what else the ledger keeps of it: the log's
        leaves and signed head, the writer's marks, and the case-state view."""
        return self._against_projection(self._against_log(report, hashes))

    def _against_projection(self, report: ChainReport) -> ChainReport:
        """The case-state view only ever follows the store, so a view that saw more events
        than the store now holds means events were deleted from the end (with their log
        rows, or before they were sealed)."""
        if not report.ok:
            return report
        row = self.ledger.db.query_one(
            "SELECT last_seq FROM case_state WHERE case_id = ?", [report.case_id]
        )
        if row is not None and int(row["last_seq"]) > report.length:
            return _fault(
                report,
                report.length + 1,
                f"seq {report.length + 1} is missing from the store, but the case-state view "
                f"recorded the case up to seq {row['last_seq']} (events were removed)",
            )
        return report

    def _against_log(self, report: ChainReport, hashes: dict[int, str]) -> ChainReport:
        """A sound chain, checked against the log: against the leaves it holds for the
        case, then against the latest signed tree head itself. The leaf rows are only a
        table; the signed root is what no one can rewrite without the signing key."""
        leaves = self.log.leaves_of_case(report.case_id)
        for leaf in leaves:
            seq = int(leaf["seq"])
            if seq not in hashes:
                return _fault(
                    report,
                    seq,
                    f"seq {seq} is in the transparency log but missing from the store "
                    "(events were removed)",
                )
            if hashes[seq] != leaf["event_hash"]:
                return _fault(
                    report,
                    seq,
                    "the stored event does not match its leaf in the transparency log: it "
                    "was rewritten after it was sealed",
                )
        return self._against_signed_head(report, hashes, leaves)

    def _against_signed_head(
        self, report: ChainReport, hashes: dict[int, str], leaves: list[dict[str, Any]]
    ) -> ChainReport:
        """The case's last event under the latest signed tree head must prove its inclusion
        in that head's root. The chain makes that one proof speak for every event before
        it; when it fails, a binary search finds the first event that can no longer be
        proven (a rewritten leaf row also spoils the proofs of its neighbours, so that may
        be a little before the first rewritten event)."""
        head = self.log.tree_head()
        if head is None or self.signing_key is None:
            return self._uncovered_marked(report, hashes, 0)
        covered = [leaf for leaf in leaves if int(leaf["leaf_index"]) < head.tree_size]
        if not covered:
            return self._uncovered_marked(report, hashes, 0)
        try:
            self._check_head_signature(head)
        except SignatureError as failure:
            return _fault(
                report, int(covered[0]["seq"]), f"the latest tree head is forged: {failure}"
            )

        def signed(leaf: dict[str, Any]) -> bool:
            try:
                proof = self.log.inclusion(leaf, head)
                merkle.verify_inclusion(
                    merkle.leaf_hash(bytes.fromhex(hashes[int(leaf["seq"])])),
                    int(leaf["leaf_index"]),
                    head.tree_size,
                    proof.proof,
                    bytes.fromhex(head.root_hash),
                )
            except (ProofError, LedgerIntegrityError, ValueError):
                return False
            return True

        if signed(covered[-1]):
            return self._uncovered_marked(report, hashes, int(covered[-1]["seq"]))
        low, high = 0, len(covered) - 1  # covered[high] fails; find the first that does
        while low < high:
            middle = (low + high) // 2
            if signed(covered[middle]):
                low = middle + 1
            else:
                high = middle
        return _fault(
            report,
            int(covered[low]["seq"]),
            f"from this event on the case cannot be proven against the signed tree head "
            f"of size {head.tree_size}: events, or the log's rows for them, were rewritten "
            "after signing",
        )

    def _uncovered_marked(
        self, report: ChainReport, hashes: dict[int, str], covered_to: int
    ) -> ChainReport:
        """Events no signed tree head covers yet must carry the writer's mark."""
        later = [seq for seq in sorted(hashes) if seq > covered_to]
        unmarked = set(self.marks.unmarked(hashes[seq] for seq in later))
        for seq in later:
            if hashes[seq] in unmarked:
                return _fault(
                    report,
                    seq,
                    "the event was not recorded by this ledger's writer (it has no valid "
                    "mark): it was written into the database directly",
                )
        return report

    def _check_head_signature(self, head: TreeHead) -> None:
        # One verification per tree head, not per read.
        if self._verified_head == (head.tree_size, head.signature):
            return
        assert self.signing_key is not None
        verify_tree_head(head, self.signing_key.public_key)
        self._verified_head = (head.tree_size, head.signature)

    def all_case_ids(self) -> list[str]:
        """Every case in the store, from the notification log (not from a view)."""
        seen: dict[str, None] = {}
        position = 0
        while True:
            page = self.ledger.recorder.select_notifications(
                start=position, limit=1000, topics=[Case.Opened.TOPIC], inclusive_of_start=False
            )
            if not page:
                return list(seen)
            for notification in page:
                record = parse_stored(notification.state, seq=1)
                if isinstance(record, dict):
                    seen[str(record["case_id"])] = None
            position = page[-1].id

    def state_as_of(
        self, case_id: str, *, seq: int | None = None, recorded: str | None = None
    ) -> State | None:
        """The case's state as it stood after seq N or at a recorded moment, from verified
        records only."""
        records = [
            record
            for record in self.verified_records(case_id)
            if (seq is None or record["seq"] <= seq)
            and (recorded is None or record["recorded_at"] <= recorded)
        ]
        return fold(records, self.catalogue) if records else None


def _fault(report: ChainReport, seq: int, reason: str) -> ChainReport:
    return ChainReport(
        report.case_id, report.length, report.head_hash, RecordFault(seq, reason, "log")
    )


def _load_signing_key(path: str) -> LedgerKey | None:
    """The ledger's signing key, or None (with a warning) when it was never created."""
    try:
        return LedgerKey.load(path)
    except FileNotFoundError:
        log.warning("no signing key at %s: tree heads will not be signed", path)
        return None
