"""The writer's mark on each event it records, so that a row written into the event table
by anyone else is never taken for the ledger's own.

A record's hash proves its content, and the chain its place, but both are plain SHA-256:
someone able to write to the database can append a well-formed record to a case. The
signed tree head stops that for every event it covers, because its signature needs the
log key. The mark covers the rest, from the moment an event is recorded until a tree
head covers it: an HMAC of the event hash under a ledger secret that is stored wrapped
by the master key, which never enters the database. The sealer puts no event into the
log without a valid mark, and verification names an uncovered event that has none.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from projections.store import Database

DOMAIN = b"casetrail.event-mark.v1\n"
CHUNK = 500


class EventMarks:
    def __init__(self, db: Database, secret: bytes) -> None:
        self.db = db
        self.secret = secret

    def mark(self, event_hash: str) -> str:
        return hmac.new(self.secret, DOMAIN + event_hash.encode(), hashlib.sha256).hexdigest()

    def unmarked(self, event_hashes: Iterable[str]) -> list[str]:
        """The given event hashes that have no valid mark, in the order given."""
        wanted = list(event_hashes)
        stored: dict[str, str] = {}
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            rows = self.db.query(
                "SELECT event_hash, mark FROM event_marks "
                f"WHERE event_hash IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            stored.update((str(row["event_hash"]), str(row["mark"])) for row in rows)
        return [
            event_hash
            for event_hash in wanted
            if not hmac.compare_digest(stored.get(event_hash, ""), self.mark(event_hash))
        ]
