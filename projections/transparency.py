"""The global transparency log: every event a leaf of one RFC 9162 Merkle tree, in feed
order, with signed tree heads and proofs served from stored complete-subtree nodes.

The sealer follows the feed like any read model. For each event it checks the record's
own hash, appends `SHA-256(0x00 || event hash)` as the next leaf (dense indices 0, 1, 2…,
not feed positions, which may have gaps), and stores every complete subtree node the
append finished — leaves, nodes and its feed position in one transaction. Every N leaves
or T seconds it signs a tree head, after checking that the new tree extends the last
signed one.

Proofs are computed only for sizes that have a signed tree head. Every range of an
RFC 9162 proof is either an aligned complete subtree (one stored node) or a suffix ending
at the tree size, which the tree head's stored border (the roots of its complete
subtrees) answers with no read at all; so a proof needs at most ⌈log2 n⌉ node reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError as StoreConflict
from eventsourcing.persistence import Notification

from domain import merkle
from domain.case import case_stream_id
from domain.envelope import Record, check_record, format_recorded_at
from domain.errors import LedgerIntegrityError, ProofError
from domain.signing import LedgerKey, TreeHead
from projections.follower import LedgerProjection, View
from projections.marks import EventMarks
from projections.store import Ledger

log = logging.getLogger("casetrail.transparency")

VIEW_NAME = "transparency_log"
LEVEL_SHIFT = 48  # node key = level << 48 | index: room for 2^48 leaves

LOG_DDL = [
    """
    CREATE TABLE IF NOT EXISTS log_leaves (
        leaf_index {bigint} PRIMARY KEY,
        position {bigint} NOT NULL UNIQUE,
        case_id TEXT NOT NULL,
        seq {bigint} NOT NULL,
        event_hash TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS log_leaves_case ON log_leaves (case_id, seq)",
    "CREATE INDEX IF NOT EXISTS log_leaves_event ON log_leaves (event_hash)",
    """
    CREATE TABLE IF NOT EXISTS log_nodes (
        node_key {bigint} PRIMARY KEY,
        hash {blob} NOT NULL
    )
    """,
]
LOG_TABLES = ["log_leaves", "log_nodes"]
TREE_HEADS_DDL = [
    """
    CREATE TABLE IF NOT EXISTS log_tree_heads (
        tree_size {bigint} PRIMARY KEY,
        root_hash TEXT NOT NULL,
        timestamp TEXT NOT NULL,
        log_id TEXT NOT NULL,
        signature TEXT NOT NULL,
        border {blob} NOT NULL
    )
    """
]


def node_key(level: int, index: int) -> int:
    return (level << LEVEL_SHIFT) | index


class SealerStopped(LedgerIntegrityError):
    """The sealer refused to seal a record that does not verify."""


class Sealer(LedgerProjection):
    """Appends every event of the feed to the tree; signs tree heads."""

    name = VIEW_NAME

    def __init__(
        self,
        ledger: Ledger,
        key: LedgerKey | None,
        *,
        sign_every_events: int = 256,
        sign_every_seconds: float = 1.0,
        marks: EventMarks | None = None,
    ) -> None:
        super().__init__(View(ledger, VIEW_NAME, LOG_DDL, tables=LOG_TABLES))
        self.marks = marks
        ledger.db.execute_script(TREE_HEADS_DDL)
        self.ledger = ledger
        self.db = ledger.db
        self.key = key
        self.sign_every_events = sign_every_events
        self.sign_every_seconds = sign_every_seconds
        self.lock = threading.RLock()
        self._tree: merkle.CompactRange | None = None
        self._last_signed_at = time.monotonic()  # T seconds count from start-up

    # -- following the feed -------------------------------------------------------------

    def process_page(self, page: Sequence[tuple[Notification, Record]], position: int) -> None:
        with self.lock:
            # Grow a copy of the tree and keep it only once its rows are committed, so a
            # refused record or a failed write never leaves the tree ahead of the table.
            current = self._current_tree()
            tree = merkle.CompactRange.from_border(current.size, current.border())
            leaves: list[tuple[int, int, str, int, str]] = []
            nodes: list[tuple[int, bytes]] = []
            self._check_marked(page)
            for notification, record in page:
                self._check_sealable(notification, record)
                index = tree.size
                new_nodes = tree.append(merkle.leaf_hash(bytes.fromhex(record["hash"])))
                leaves.append(
                    (index, notification.id, record["case_id"], record["seq"], record["hash"])
                )
                nodes.extend(
                    (node_key(level, idx), digest) for level, idx, digest in new_nodes if level > 0
                )

            with self.ledger_view.update(position) as cursor:
                cursor.executemany(
                    "INSERT INTO log_leaves (leaf_index, position, case_id, seq, event_hash) "
                    "VALUES (?, ?, ?, ?, ?)",
                    leaves,
                )
                cursor.executemany("INSERT INTO log_nodes (node_key, hash) VALUES (?, ?)", nodes)
            self._tree = tree

    def _check_marked(self, page: Sequence[tuple[Notification, Record]]) -> None:
        """No event enters the log without the writer's mark (see projections/marks.py)."""
        if self.marks is None:
            return
        unmarked = set(self.marks.unmarked(str(record.get("hash")) for _, record in page))
        for notification, record in page:
            if str(record.get("hash")) in unmarked:
                raise SealerStopped(
                    f"feed position {notification.id} (case {record.get('case_id')!r}, seq "
                    f"{notification.originator_version}) was not recorded by this ledger's "
                    "writer (it has no valid mark): it was written into the database "
                    "directly; the sealer will not commit the log to it"
                )

    @staticmethod
    def _check_sealable(notification: Notification, record: Record) -> None:
        """The log commits to a record only if it verifies and sits where it claims."""
        case_id = str(record.get("case_id"))
        fault = check_record(record, case_id=case_id, seq=notification.originator_version)
        if fault is None and notification.originator_id != case_stream_id(case_id):
            fault_reason = "it is stored in another case's stream"
        elif fault is not None:
            fault_reason = fault.reason
        else:
            return
        raise SealerStopped(
            f"feed position {notification.id} (case {case_id!r}, seq "
            f"{notification.originator_version}) does not verify: {fault_reason}; the sealer "
            "will not commit the log to it"
        )

    def after_step(self, processed: int) -> None:
        """Called by the follower after each round, busy or idle: sign when it is time."""
        with self.lock:
            tree = self._current_tree()
            last = self.latest_size()
            grown = tree.size - last
            if grown <= 0 or self.key is None:
                return
            waited = time.monotonic() - self._last_signed_at
            if grown >= self.sign_every_events or waited >= self.sign_every_seconds:
                self.sign()

    def sign(self) -> TreeHead | None:
        """Sign a tree head for the current tree, if it grew since the last one."""
        with self.lock:
            if self.key is None:
                raise LedgerIntegrityError(
                    "the ledger has no signing key: run `casetrail keys init`"
                )
            tree = self._current_tree()
            previous = self.latest()
            if tree.size == 0 or (previous is not None and previous.tree_size >= tree.size):
                return previous

            root = tree.root()
            if previous is not None:
                self._check_extends(previous, tree.size, root)
            head = self.key.sign(tree.size, root.hex(), format_recorded_at(datetime.now(UTC)))
            try:
                with self.db.transaction() as cursor:
                    cursor.execute(
                        "INSERT INTO log_tree_heads (tree_size, root_hash, timestamp, log_id, "
                        "signature, border) VALUES (?, ?, ?, ?, ?, ?)",
                        [
                            head.tree_size,
                            head.root_hash,
                            head.timestamp,
                            head.log_id,
                            head.signature,
                            b"".join(tree.border()),
                        ],
                    )
            except StoreConflict:
                pass  # another process signed this size first; theirs stands
            self._last_signed_at = time.monotonic()
            return self.latest()

    def _check_extends(self, previous: TreeHead, size: int, root: bytes) -> None:
        """Refuse to sign a tree that is not an extension of the last signed one."""
        proof = merkle.consistency_proof(previous.tree_size, size, NodeReader(self.db).node)
        try:
            merkle.verify_consistency(
                previous.tree_size, size, proof, bytes.fromhex(previous.root_hash), root
            )
        except ProofError as error:
            raise LedgerIntegrityError(
                f"the tree of size {size} does not extend the signed tree head of size "
                f"{previous.tree_size} ({error}); refusing to sign"
            ) from None

    def _current_tree(self) -> merkle.CompactRange:
        if self._tree is None:
            self._tree = self._load_tree()
        return self._tree

    def _load_tree(self) -> merkle.CompactRange:
        row = self.db.query_one("SELECT MAX(leaf_index) AS last FROM log_leaves")
        size = int(row["last"]) + 1 if row and row["last"] is not None else 0
        reader = NodeReader(self.db)
        hashes = [reader.node(level, index) for level, index in merkle.complete_subtrees(0, size)]
        return merkle.CompactRange.from_border(size, hashes)

    def reload(self) -> None:
        with self.lock:
            self._tree = None

    def reset(self) -> None:
        """Drop leaves and nodes (never the signed tree heads) to rebuild them from the feed.

        The rebuilt tree must reproduce every signed root; `casetrail verify` checks it.
        """
        with self.lock:
            self.ledger_view.reset()
            self._tree = None

    # -- tree heads -------------------------------------------------------------------

    def latest(self) -> TreeHead | None:
        row = self.db.query_one(
            "SELECT tree_size, root_hash, timestamp, log_id, signature FROM log_tree_heads "
            "ORDER BY tree_size DESC LIMIT 1"
        )
        return _head(row) if row else None

    def latest_size(self) -> int:
        row = self.db.query_one("SELECT MAX(tree_size) AS size FROM log_tree_heads")
        return int(row["size"]) if row and row["size"] is not None else 0

    def size(self) -> int:
        with self.lock:
            return self._current_tree().size


def _head(row: dict[str, Any]) -> TreeHead:
    return TreeHead(
        row["log_id"], int(row["tree_size"]), row["root_hash"], row["timestamp"], row["signature"]
    )


class NodeReader:
    """Reads complete-subtree hashes, counting reads (for proofs and the benchmark)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.reads = 0

    def node(self, level: int, index: int) -> bytes:
        return self.nodes([(level, index)])[(level, index)]

    def nodes(self, wanted: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Fetch several nodes in one query; level 0 comes from the leaves table."""
        found: dict[tuple[int, int], bytes] = {}
        leaves = [index for level, index in wanted if level == 0]
        inner = [node_key(level, index) for level, index in wanted if level > 0]
        if leaves:
            marks = ",".join("?" * len(leaves))
            for row in self.db.query(
                f"SELECT leaf_index, event_hash FROM log_leaves WHERE leaf_index IN ({marks})",
                leaves,
            ):
                found[(0, int(row["leaf_index"]))] = merkle.leaf_hash(
                    bytes.fromhex(row["event_hash"])
                )
        if inner:
            marks = ",".join("?" * len(inner))
            for row in self.db.query(
                f"SELECT node_key, hash FROM log_nodes WHERE node_key IN ({marks})", inner
            ):
                key = int(row["node_key"])
                found[(key >> LEVEL_SHIFT, key & ((1 << LEVEL_SHIFT) - 1))] = bytes(row["hash"])
        self.reads += len(wanted)
        missing = [pair for pair in wanted if pair not in found]
        if missing:
            raise LedgerIntegrityError(
                f"the transparency log lacks stored node(s) {missing[:3]}; rebuild it with "
                "`casetrail rebuild`"
            )
        return found


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    position: int
    case_id: str
    seq: int
    event_hash: str
    tree_head: TreeHead
    proof: list[bytes]

    def as_json(self) -> dict[str, Any]:
        return {
            "leaf_index": self.leaf_index,
            "position": self.position,
            "case_id": self.case_id,
            "seq": self.seq,
            "event_hash": self.event_hash,
            "leaf_hash": merkle.leaf_hash(bytes.fromhex(self.event_hash)).hex(),
            "tree_size": self.tree_head.tree_size,
            "proof": [element.hex() for element in self.proof],
            "tree_head": self.tree_head.as_json(),
        }


class TransparencyLog:
    """Reads of the log: tree heads and proofs against them."""

    def __init__(self, ledger: Ledger, sealer: Sealer) -> None:
        self.db = ledger.db
        self.sealer = sealer

    def tree_head(self, size: int | None = None) -> TreeHead | None:
        if size is None:
            return self.sealer.latest()
        row = self.db.query_one(
            "SELECT tree_size, root_hash, timestamp, log_id, signature FROM log_tree_heads "
            "WHERE tree_size = ?",
            [size],
        )
        return _head(row) if row else None

    def tree_heads(self, *, after: int, limit: int) -> list[TreeHead]:
        rows = self.db.query(
            "SELECT tree_size, root_hash, timestamp, log_id, signature FROM log_tree_heads "
            "WHERE tree_size > ? ORDER BY tree_size LIMIT ?",
            [after, limit],
        )
        return [_head(row) for row in rows]

    def leaf_by_position(self, position: int) -> dict[str, Any] | None:
        return self.db.query_one(
            "SELECT leaf_index, position, case_id, seq, event_hash FROM log_leaves "
            "WHERE position = ?",
            [position],
        )

    def leaf_by_event(self, event_hash: str) -> dict[str, Any] | None:
        return self.db.query_one(
            "SELECT leaf_index, position, case_id, seq, event_hash FROM log_leaves "
            "WHERE event_hash = ? ORDER BY leaf_index LIMIT 1",
            [event_hash],
        )

    def leaves_of_case(self, case_id: str) -> list[dict[str, Any]]:
        return self.db.query(
            "SELECT leaf_index, position, case_id, seq, event_hash FROM log_leaves "
            "WHERE case_id = ? ORDER BY seq",
            [case_id],
        )

    def leaf_hashes(self, case_id: str, first: int, last: int | None) -> dict[int, str]:
        """Sealed event hashes of a case from seq `first` (to `last`, or to the end)."""
        statement = "SELECT seq, event_hash FROM log_leaves WHERE case_id = ? AND seq >= ?"
        params: list[Any] = [case_id, first]
        if last is not None:
            statement += " AND seq <= ?"
            params.append(last)
        return {int(row["seq"]): row["event_hash"] for row in self.db.query(statement, params)}

    def inclusion(
        self, leaf: dict[str, Any], head: TreeHead, reader: NodeReader | None = None
    ) -> InclusionProof:
        index = int(leaf["leaf_index"])
        if index >= head.tree_size:
            raise ProofError(
                f"leaf {index} is not in the tree of size {head.tree_size}; ask for a later "
                "tree head"
            )
        proof = self.inclusion_proof(index, head.tree_size, reader)
        return InclusionProof(
            index,
            int(leaf["position"]),
            leaf["case_id"],
            int(leaf["seq"]),
            leaf["event_hash"],
            head,
            proof,
        )

    def inclusion_proof(
        self, index: int, size: int, reader: NodeReader | None = None
    ) -> list[bytes]:
        return self._resolve(merkle.inclusion_proof_ranges(index, size), size, reader)

    def consistency_proof(
        self, first: int, second: int, reader: NodeReader | None = None
    ) -> list[bytes]:
        return self._resolve(merkle.consistency_proof_ranges(first, second), second, reader)

    def _resolve(
        self, ranges: Sequence[tuple[int, int]], size: int, reader: NodeReader | None
    ) -> list[bytes]:
        """Hashes of proof ranges: stored nodes for complete subtrees, the tree head's border
        for suffixes that end at the tree size."""
        reader = reader or NodeReader(self.db)
        complete: list[tuple[int, int]] = []
        for start, end in ranges:
            width = end - start
            if width & (width - 1) == 0 and start % width == 0:
                complete.append((width.bit_length() - 1, start // width))
        stored = reader.nodes(complete) if complete else {}
        border = self._border(size)

        hashes = []
        for start, end in ranges:
            width = end - start
            if width & (width - 1) == 0 and start % width == 0:
                hashes.append(stored[(width.bit_length() - 1, start // width)])
            else:
                hashes.append(_suffix_hash(start, size, border))
        return hashes

    def _border(self, size: int) -> list[bytes]:
        row = self.db.query_one("SELECT border FROM log_tree_heads WHERE tree_size = ?", [size])
        if row is None:
            raise ProofError(f"no signed tree head of size {size}")
        blob = bytes(row["border"])
        return [blob[offset : offset + 32] for offset in range(0, len(blob), 32)]

    def iter_leaves(self) -> Iterator[dict[str, Any]]:
        after = -1
        while True:
            rows = self.db.query(
                "SELECT leaf_index, position, case_id, seq, event_hash FROM log_leaves "
                "WHERE leaf_index > ? ORDER BY leaf_index LIMIT 5000",
                [after],
            )
            if not rows:
                return
            yield from rows
            after = int(rows[-1]["leaf_index"])

    def all_tree_heads(self) -> list[TreeHead]:
        rows = self.db.query(
            "SELECT tree_size, root_hash, timestamp, log_id, signature FROM log_tree_heads "
            "ORDER BY tree_size"
        )
        return [_head(row) for row in rows]


def _suffix_hash(start: int, size: int, border: list[bytes]) -> bytes:
    """MTH of leaves [start, size) from the border of the tree of that size."""
    subtrees = merkle.complete_subtrees(0, size)
    first = None
    for position, (level, index) in enumerate(subtrees):
        if index << level == start:
            first = position
            break
    if first is None:
        raise ProofError(f"[{start}, {size}) is not a suffix the tree head can answer")
    result = border[-1]
    for digest in reversed(border[first:-1]):
        result = merkle.node_hash(digest, result)
    return result
