"""API keys: who is calling, with which role, for which agency.

A key is shown once, when it is created, as `ctk_<key id>_<secret>`; the table keeps the
key id and a SHA-256 of the secret (the secret is 256 random bits, so a plain hash cannot
be brute-forced). The key id is what the ledger records as `recorded_by` and logs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.catalogue import ID_PATTERN
from domain.envelope import format_recorded_at
from projections.store import Database

ROLES = ("integrator", "agent", "compliance", "auditor", "admin")
# A key's agency is compared with the actor.agency of appended events: the same rule.
AGENCY_ID = ID_PATTERN

SESSION_HOURS = 12

DDL = [
    """
    CREATE TABLE IF NOT EXISTS desk_sessions (
        session_id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        expires_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY,
        secret_sha256 TEXT NOT NULL,
        role TEXT NOT NULL,
        agency TEXT,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    )
    """,
]


@dataclass(frozen=True)
class Principal:
    """The caller, as established from its API key."""

    key_id: str
    role: str
    agency: str | None
    name: str

    def may_see_agency(self, agency: str | None) -> bool:
        return self.agency is None or self.agency == agency


SYSTEM = Principal(key_id="system", role="admin", agency=None, name="casetrail itself")


class ApiKeys:
    CACHE_SECONDS = 2.0  # how long a revocation may take to reach another process

    def __init__(self, db: Database) -> None:
        self.db = db
        db.execute_script(DDL)
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def create(
        self, role: str, *, agency: str | None = None, name: str = ""
    ) -> tuple[str, Principal]:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if agency is not None and not AGENCY_ID.fullmatch(agency):
            raise ValueError(
                f"--agency must be an agency id (letters, digits, '.', '_', '-'), got {agency!r}"
            )
        if role == "agent" and agency is None:
            raise ValueError("an agent key belongs to one agency: give --agency")
        if role == "admin" and agency is not None:
            raise ValueError("an admin key is not bound to an agency; leave out --agency")
        key_id = "key_" + secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self.db.transaction() as cursor:
            cursor.execute(
                "INSERT INTO api_keys (key_id, secret_sha256, role, agency, name, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    key_id,
                    _digest(secret),
                    role,
                    agency,
                    name or role,
                    format_recorded_at(datetime.now(UTC)),
                ],
            )
        token = f"ctk_{key_id.removeprefix('key_')}_{secret}"
        return token, Principal(key_id, role, agency, name or role)

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a presented key, or None if it is malformed, unknown or revoked."""
        if not token.startswith("ctk_"):
            return None
        key_hex, _, secret = token[len("ctk_") :].partition("_")
        if len(key_hex) != 12 or not secret or any(c not in "0123456789abcdef" for c in key_hex):
            return None
        key_id = "key_" + key_hex
        row = self._row(key_id)
        if row is None or row["revoked_at"] is not None:
            return None
        if not hmac.compare_digest(row["secret_sha256"], _digest(secret)):
            return None
        return Principal(row["key_id"], row["role"], row["agency"], row["name"])

    def list(self) -> list[dict[str, Any]]:
        return self.db.query(
            "SELECT key_id, role, agency, name, created_at, revoked_at FROM api_keys "
            "ORDER BY created_at"
        )

    def revoke(self, key_id: str) -> bool:
        with self.db.transaction() as cursor:
            cursor.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                [format_recorded_at(datetime.now(UTC)), key_id],
            )
        with self._lock:
            self._cache.pop(key_id, None)
        row = self.db.query_one("SELECT revoked_at FROM api_keys WHERE key_id = ?", [key_id])
        return row is not None and row["revoked_at"] is not None

    # -- desk sessions: a signed-in browser holds a session id, never the key itself --

    def start_session(self, principal: Principal) -> str:
        session_id = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(hours=SESSION_HOURS)
        with self.db.transaction() as cursor:
            cursor.execute(
                "DELETE FROM desk_sessions WHERE expires_at < ?",
                [format_recorded_at(datetime.now(UTC))],
            )
            cursor.execute(
                "INSERT INTO desk_sessions (session_id, key_id, expires_at) VALUES (?, ?, ?)",
                [_digest(session_id), principal.key_id, format_recorded_at(expires)],
            )
        return session_id

    def session_principal(self, session_id: str) -> Principal | None:
        """The principal of a live session whose key is still valid."""
        row = self.db.query_one(
            "SELECT key_id, expires_at FROM desk_sessions WHERE session_id = ?",
            [_digest(session_id)],
        )
        if row is None or row["expires_at"] < format_recorded_at(datetime.now(UTC)):
            return None
        key = self._row(row["key_id"])
        if key is None or key["revoked_at"] is not None:
            return None
        return Principal(key["key_id"], key["role"], key["agency"], key["name"])

    def end_session(self, session_id: str) -> None:
        with self.db.transaction() as cursor:
            cursor.execute("DELETE FROM desk_sessions WHERE session_id = ?", [_digest(session_id)])

    def _row(self, key_id: str) -> dict[str, Any] | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.CACHE_SECONDS:
            return cached[1]
        row = self.db.query_one(
            "SELECT key_id, secret_sha256, role, agency, name, revoked_at FROM api_keys "
            "WHERE key_id = ?",
            [key_id],
        )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = (now, row)
        return row


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
