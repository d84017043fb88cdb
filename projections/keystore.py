"""Where the data keys of parties and the ledger's own secrets are kept, wrapped.

Rows hold keys wrapped by the master key, never the master key itself. Destroying a
party's key deletes its wrapped bytes and keeps the row (`destroyed_at`), so a key id is
never handed out twice and a reveal can tell "erased" from "unknown".
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError as StoreConflict

from domain.envelope import format_recorded_at
from domain.vault import MasterKey, VaultError, new_data_key, new_key_id
from projections.store import Database

DDL = [
    """
    CREATE TABLE IF NOT EXISTS party_keys (
        key_id TEXT PRIMARY KEY,
        party_id TEXT NOT NULL,
        wrapped {blob},
        master_key_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        destroyed_at TEXT
    )
    """,
    """
    CREATE UNIQUE INDEX IF NOT EXISTS party_keys_active
        ON party_keys (party_id) WHERE destroyed_at IS NULL
    """,
    "CREATE INDEX IF NOT EXISTS party_keys_party ON party_keys (party_id)",
    """
    CREATE TABLE IF NOT EXISTS ledger_secrets (
        name TEXT PRIMARY KEY,
        wrapped {blob} NOT NULL,
        master_key_id TEXT NOT NULL
    )
    """,
]


class KeyDestroyed(VaultError):
    """The key existed and was destroyed by an erasure."""


class UnknownKey(VaultError):
    """No key with this id was ever issued by this ledger."""


class KeyStore:
    def __init__(self, db: Database, master: MasterKey) -> None:
        self.db = db
        self.master = master
        self._unwrapped: dict[str, bytes] = {}
        self._lock = threading.Lock()
        db.execute_script(DDL)

    def active_key(self, party_id: str) -> tuple[str, bytes]:
        """The party's current data key, created on first use."""
        row = self.db.query_one(
            "SELECT key_id, wrapped FROM party_keys WHERE party_id = ? AND destroyed_at IS NULL",
            [party_id],
        )
        if row is None:
            row = self._create(party_id)
        return row["key_id"], self._unwrap(row["key_id"], row["wrapped"])

    def key(self, key_id: str) -> bytes:
        """A data key by id, for opening sealed values."""
        with self._lock:
            cached = self._unwrapped.get(key_id)
        row = self.db.query_one(
            "SELECT key_id, wrapped, destroyed_at FROM party_keys WHERE key_id = ?", [key_id]
        )
        if row is None:
            raise UnknownKey(f"no data key {key_id!r} was ever issued by this ledger")
        if row["destroyed_at"] is not None:
            with self._lock:
                self._unwrapped.pop(key_id, None)
            raise KeyDestroyed(f"data key {key_id} was destroyed on {row['destroyed_at']}")
        return cached if cached is not None else self._unwrap(key_id, row["wrapped"])

    def party_key_ids(self, party_id: str) -> list[dict[str, Any]]:
        return self.db.query(
            "SELECT key_id, created_at, destroyed_at FROM party_keys WHERE party_id = ? "
            "ORDER BY created_at",
            [party_id],
        )

    def destroy(self, party_id: str) -> list[str]:
        """Destroy every key of a party; returns the destroyed key ids."""
        now = format_recorded_at(datetime.now(UTC))
        with self.db.transaction() as cursor:
            cursor.execute(
                "SELECT key_id FROM party_keys WHERE party_id = ? AND destroyed_at IS NULL",
                [party_id],
            )
            key_ids = [row["key_id"] for row in cursor.fetchall()]
            cursor.execute(
                "UPDATE party_keys SET wrapped = NULL, destroyed_at = ? "
                "WHERE party_id = ? AND destroyed_at IS NULL",
                [now, party_id],
            )
        with self._lock:
            for key_id in key_ids:
                self._unwrapped.pop(key_id, None)
        return key_ids

    def secret(self, name: str) -> bytes:
        """A named random secret of the ledger (e.g. for request fingerprints), made once."""
        row = self.db.query_one("SELECT wrapped FROM ledger_secrets WHERE name = ?", [name])
        if row is None:
            try:
                with self.db.transaction() as cursor:
                    cursor.execute(
                        "INSERT INTO ledger_secrets (name, wrapped, master_key_id) VALUES (?, ?, ?)",
                        [
                            name,
                            self.master.wrap(os.urandom(32), label=f"secret:{name}"),
                            self.master.key_id,
                        ],
                    )
            except StoreConflict:
                pass  # another process made it first; use theirs
            row = self.db.query_one("SELECT wrapped FROM ledger_secrets WHERE name = ?", [name])
            assert row is not None
        return self.master.unwrap(bytes(row["wrapped"]), label=f"secret:{name}")

    def rewrap(self, new_master: MasterKey) -> int:
        """Re-wrap every live data key and secret under a new master key, atomically."""
        count = 0
        with self.db.transaction() as cursor:
            cursor.execute("SELECT key_id, wrapped FROM party_keys WHERE destroyed_at IS NULL")
            for row in cursor.fetchall():
                plain = self.master.unwrap(bytes(row["wrapped"]), label=row["key_id"])
                cursor.execute(
                    "UPDATE party_keys SET wrapped = ?, master_key_id = ? WHERE key_id = ?",
                    [new_master.wrap(plain, label=row["key_id"]), new_master.key_id, row["key_id"]],
                )
                count += 1
            cursor.execute("SELECT name, wrapped FROM ledger_secrets")
            for row in cursor.fetchall():
                label = f"secret:{row['name']}"
                plain = self.master.unwrap(bytes(row["wrapped"]), label=label)
                cursor.execute(
                    "UPDATE ledger_secrets SET wrapped = ?, master_key_id = ? WHERE name = ?",
                    [new_master.wrap(plain, label=label), new_master.key_id, row["name"]],
                )
                count += 1
        self.master = new_master
        return count

    def _create(self, party_id: str) -> dict[str, Any]:
        key_id = new_key_id()
        wrapped = self.master.wrap(new_data_key(), label=key_id)
        try:
            with self.db.transaction() as cursor:
                cursor.execute(
                    "INSERT INTO party_keys (key_id, party_id, wrapped, master_key_id, "
                    "created_at) VALUES (?, ?, ?, ?, ?)",
                    [
                        key_id,
                        party_id,
                        wrapped,
                        self.master.key_id,
                        format_recorded_at(datetime.now(UTC)),
                    ],
                )
        except StoreConflict:
            pass  # another process created the party's key first
        row = self.db.query_one(
            "SELECT key_id, wrapped FROM party_keys WHERE party_id = ? AND destroyed_at IS NULL",
            [party_id],
        )
        if row is None:
            raise VaultError(f"could not create a data key for party {party_id!r}")
        return row

    def _unwrap(self, key_id: str, wrapped: Any) -> bytes:
        with self._lock:
            cached = self._unwrapped.get(key_id)
            if cached is not None:
                return cached
        plain = self.master.unwrap(bytes(wrapped), label=key_id)
        with self._lock:
            self._unwrapped[key_id] = plain
        return plain
