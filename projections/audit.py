"""Auditing a whole ledger: every case's chain, every event against its leaf in the
transparency log, and the tree against every signed tree head.

The per-case chain catches edits inside a case. It cannot see a case deleted whole, the
newest events of a case deleted, or an event rewritten together with the hashes after
it. The log catches those: each leaf fixes an event's hash at its feed position, and
each signed tree head fixes all the leaves before it. So the audit walks the feed and
the leaves side by side, in position order, and rebuilds the tree from the leaves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from domain import merkle
from domain.envelope import parse_stored
from domain.errors import SignatureError
from domain.signing import verify_tree_head
from projections.runtime import Runtime
from projections.transparency import LEVEL_SHIFT


@dataclass(frozen=True)
class Finding:
    case_id: str | None
    seq: int | None
    reason: str

    def line(self) -> str:
        if self.case_id is None:
            return f"FAIL log: {self.reason}"
        return f"FAIL {self.case_id} seq {self.seq}: {self.reason}"


@dataclass
class AuditReport:
    cases: int = 0
    events: int = 0
    leaves: int = 0
    tree_heads: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def first_per_case(self) -> list[Finding]:
        """The first finding of each case (and every log-wide finding), in order."""
        seen: set[str] = set()
        chosen = []
        for finding in self.findings:
            if finding.case_id is None:
                chosen.append(finding)
            elif finding.case_id not in seen:
                seen.add(finding.case_id)
                chosen.append(finding)
        return chosen


def audit_ledger(runtime: Runtime) -> AuditReport:
    report = AuditReport()
    _audit_chains(runtime, report)
    _audit_events_against_leaves(runtime, report)
    _audit_tree(runtime, report)
    report.findings.sort(key=lambda f: (f.case_id or "", f.seq or 0))
    return report


def _audit_chains(runtime: Runtime, report: AuditReport) -> None:
    for case_id in runtime.all_case_ids():
        report.cases += 1
        chain = runtime.verify_case(case_id, against_log=False)
        report.events += chain.length
        if chain.fault is not None:
            report.findings.append(Finding(case_id, chain.fault.seq, chain.fault.reason))


def _audit_events_against_leaves(runtime: Runtime, report: AuditReport) -> None:
    """Walk the feed and the leaves in position order; every leaf needs its event."""
    notifications = _iter_notifications(runtime)
    pending = next(notifications, None)
    sealed_up_to = 0

    for leaf in runtime.log.iter_leaves():
        report.leaves += 1
        position = int(leaf["position"])
        sealed_up_to = position
        case_id, seq = leaf["case_id"], int(leaf["seq"])

        while pending is not None and pending[0] < position:
            _unsealed(report, pending)
            pending = next(notifications, None)

        if pending is None or pending[0] != position:
            report.findings.append(
                Finding(
                    case_id,
                    seq,
                    f"the event at feed position {position} is in the transparency log but "
                    "missing from the store (deleted)",
                )
            )
            continue

        _, stored_case, stored_seq, stored_hash = pending
        pending = next(notifications, None)
        if (stored_case, stored_seq) != (case_id, seq):
            report.findings.append(
                Finding(
                    case_id,
                    seq,
                    f"feed position {position} holds case {stored_case!r} seq {stored_seq}, "
                    "but the transparency log recorded this event there",
                )
            )
        elif stored_hash != leaf["event_hash"]:
            report.findings.append(
                Finding(
                    case_id,
                    seq,
                    "the stored event does not match its leaf in the transparency log "
                    f"(stored {str(stored_hash)[:16]}…, sealed {leaf['event_hash'][:16]}…): it "
                    "was rewritten after it was sealed",
                )
            )

    while pending is not None and pending[0] <= sealed_up_to:
        _unsealed(report, pending)
        pending = next(notifications, None)

    # Beyond the last leaf: events awaiting the sealer, each of which must carry the
    # writer's mark (a row written into the database directly has none).
    tail = [pending, *notifications] if pending is not None else []
    unmarked = set(runtime.marks.unmarked(event_hash for *_, event_hash in tail))
    for position, case_id, seq, event_hash in tail:
        if event_hash in unmarked:
            report.findings.append(
                Finding(
                    case_id,
                    seq,
                    f"the event at feed position {position} was not recorded by this "
                    "ledger's writer (it has no valid mark): written into the database directly",
                )
            )


def _unsealed(report: AuditReport, notification: tuple[int, str, int, str]) -> None:
    position, case_id, seq, _ = notification
    report.findings.append(
        Finding(
            case_id,
            seq,
            f"the event at feed position {position} is not in the transparency log although "
            "the log has sealed later positions (inserted behind the ledger's back)",
        )
    )


def _iter_notifications(runtime: Runtime) -> Iterator[tuple[int, str, int, str]]:
    position = 0
    while True:
        page = runtime.ledger.recorder.select_notifications(
            start=position, limit=1000, inclusive_of_start=False
        )
        if not page:
            return
        for notification in page:
            record = parse_stored(
                notification.state, seq=notification.originator_version, verify=False
            )
            if isinstance(record, dict):
                yield (
                    notification.id,
                    str(record.get("case_id")),
                    int(notification.originator_version),
                    str(record.get("hash")),
                )
            else:
                yield notification.id, "?", int(notification.originator_version), "?"
        position = page[-1].id


def _audit_tree(runtime: Runtime, report: AuditReport) -> None:
    """Rebuild the tree from the leaves; every signed head and stored node must agree."""
    heads = {head.tree_size: head for head in runtime.log.all_tree_heads()}
    report.tree_heads = len(heads)
    key = runtime.signing_key
    if key is not None:
        for head in heads.values():
            try:
                verify_tree_head(head, key.public_key)
            except SignatureError as error:
                report.findings.append(Finding(None, None, f"tree head {head.tree_size}: {error}"))

    tree = merkle.CompactRange()
    nodes = _NodeComparer(runtime, report)
    for expected_index, leaf in enumerate(runtime.log.iter_leaves()):
        if int(leaf["leaf_index"]) != expected_index:
            report.findings.append(
                Finding(None, None, f"leaf index {expected_index} is missing from the log")
            )
            return
        leaf_hash = merkle.leaf_hash(bytes.fromhex(leaf["event_hash"]))
        for level, index, digest in tree.append(leaf_hash):
            if level > 0:
                nodes.expect(level, index, digest)
        signed = heads.get(tree.size)
        if signed is not None and signed.root_hash != tree.root().hex():
            report.findings.append(
                Finding(
                    None,
                    None,
                    f"the leaves no longer hash to the signed root of the tree head of size "
                    f"{signed.tree_size}: the log or the events were rewritten",
                )
            )

    nodes.flush()
    missing = [size for size in heads if size > tree.size]
    if missing:
        report.findings.append(
            Finding(
                None,
                None,
                f"the log has {tree.size} leaves but tree heads were signed for up to "
                f"{max(missing)}: leaves were removed",
            )
        )


class _NodeComparer:
    """Compares recomputed nodes with the stored ones, a few thousand per query."""

    def __init__(self, runtime: Runtime, report: AuditReport) -> None:
        self.db = runtime.ledger.db
        self.report = report
        self.pending: dict[int, bytes] = {}

    def expect(self, level: int, index: int, digest: bytes) -> None:
        self.pending[(level << LEVEL_SHIFT) | index] = digest
        if len(self.pending) >= 2000:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        keys = list(self.pending)
        marks = ",".join("?" * len(keys))
        rows: list[dict[str, Any]] = self.db.query(
            f"SELECT node_key, hash FROM log_nodes WHERE node_key IN ({marks})", keys
        )
        stored = {int(row["node_key"]): bytes(row["hash"]) for row in rows}
        for key, digest in self.pending.items():
            if stored.get(key) != digest:
                level, index = key >> LEVEL_SHIFT, key & ((1 << LEVEL_SHIFT) - 1)
                self.report.findings.append(
                    Finding(
                        None,
                        None,
                        f"stored node (level {level}, index {index}) is missing or does not "
                        "match the leaves; proofs served from it would fail",
                    )
                )
        self.pending.clear()
