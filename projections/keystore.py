"""Where the data keys of parties and the ledger's own secrets are kept, wrapped.

Rows hold keys wrapped by the master key, never the master key itself. Destroying a
party's key deletes its wrapped bytes and keeps the row (`destroyed_at`), so a key id is
never handed out twice and a reveal can tell "erased" from "unknown".

A party is the pair (agency, party_id): party ids are chosen by each agency, so two
agencies may use the same id for different people, and neither may touch the other's
keys. Keys made before keys were scoped by agency carry the agency '' and were shared by
every agency that used the id: they still open what they sealed, never seal anything new,
and an erasure of the id in any agency destroys them (the subject's data must not stay
readable).

The table `master_key` names the master key the ledger's keys are wrapped under. Wrapping
a new key checks it in the same transaction, so a process still holding a master key that
`casetrail keys rotate-master` replaced refuses to wrap under it instead of making keys
that nothing could open after a restart.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError as StoreConflict

from domain.envelope import format_recorded_at
from domain.errors import MasterKeyRotated
from domain.vault import MasterKey, VaultError, new_data_key, new_key_id
from projections.store import Cursor, Database

log = logging.getLogger("casetrail.keystore")

LEGACY_AGENCY = ""
"""The agency of keys made before keys were scoped by agency (see the module docstring)."""

DDL = [
    """
    CREATE TABLE IF NOT EXISTS party_keys (
        key_id TEXT PRIMARY KEY,
        agency TEXT NOT NULL DEFAULT '',
        party_id TEXT NOT NULL,
        wrapped {blob},
        master_key_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        destroyed_at TEXT
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ledger_secrets (
        name TEXT PRIMARY KEY,
        wrapped {blob} NOT NULL,
        master_key_id TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS master_key (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        key_id TEXT NOT NULL,
        since TEXT NOT NULL
    )
    """,
]
MIGRATION = ["ALTER TABLE party_keys ADD COLUMN agency TEXT NOT NULL DEFAULT ''"]
INDEXES = [
    # One party id per agency: the unscoped index of earlier versions would let a second
    # agency's party share (or block) the first one's key.
    "DROP INDEX IF EXISTS party_keys_active",
    """
    CREATE UNIQUE INDEX IF NOT EXISTS party_keys_active_in_agency
        ON party_keys (agency, party_id) WHERE destroyed_at IS NULL
    """,
    "CREATE INDEX IF NOT EXISTS party_keys_party ON party_keys (party_id)",
]


class KeyDestroyed(VaultError):
    """The key existed and was destroyed by an erasure."""


class UnknownKey(VaultError):
    """No key with this id was ever issued by this ledger."""


def _wait_for_older_snapshots(connection: Any, xid: str | None, seconds: float = 10.0) -> bool:
    """Wait until no other session can still see the row versions transaction `xid` made
    dead (VACUUM keeps what an open snapshot may read); False if one outlasts `seconds`."""
    if xid is None:
        return False
    deadline = time.monotonic() + seconds
    while True:
        row = connection.execute(
            "SELECT count(*) AS older FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND datname = current_database() AND backend_xmin IS NOT NULL "
            "AND age(backend_xmin) >= age(%s::xid)",
            [xid],
        ).fetchone()
        if not row["older"]:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


class KeyStore:
    def __init__(self, db: Database, master: MasterKey) -> None:
        self.db = db
        self.master = master
        self._unwrapped: dict[str, bytes] = {}
        self._lock = threading.Lock()
        db.execute_script(DDL)
        if not db.has_column("party_keys", "agency"):
            db.execute_script(MIGRATION)
        db.execute_script(INDEXES)
        self._check_master_key()

    def active_key(self, agency: str, party_id: str) -> tuple[str, bytes]:
        """The data key of the agency's party, created on first use."""
        row = self._active_row(agency, party_id)
        if row is None:
            row = self._create(agency, party_id)
        return row["key_id"], self._unwrap(row)

    def key(self, key_id: str) -> bytes:
        """A data key by id, for opening sealed values."""
        row = self.db.query_one(
            "SELECT key_id, wrapped, master_key_id, destroyed_at FROM party_keys WHERE key_id = ?",
            [key_id],
        )
        if row is None:
            raise UnknownKey(f"no data key {key_id!r} was ever issued by this ledger")
        if row["destroyed_at"] is not None:
            with self._lock:
                self._unwrapped.pop(key_id, None)
            raise KeyDestroyed(f"data key {key_id} was destroyed on {row['destroyed_at']}")
        return self._unwrap(row)

    def party_key_ids(self, agency: str, party_id: str) -> list[dict[str, Any]]:
        """The keys of the agency's party, with keys made before agency scoping."""
        return self.db.query(
            "SELECT key_id, agency, created_at, destroyed_at FROM party_keys "
            "WHERE party_id = ? AND agency IN (?, ?) ORDER BY created_at",
            [party_id, agency, LEGACY_AGENCY],
        )

    def destroy(self, agency: str, party_id: str) -> list[str]:
        """Destroy every key of the agency's party; returns the destroyed key ids.

        The wrapped bytes are overwritten with zeros before they are dropped, and the
        storage is then compacted (see `_compact`) so that no page the database still holds
        keeps them. What this cannot reach (backups, PostgreSQL's WAL and archives, blocks
        the file system freed) is covered by rotating the master key: docs/design.md.
        """
        now = format_recorded_at(datetime.now(UTC))
        scope = "party_id = ? AND agency IN (?, ?) AND destroyed_at IS NULL"
        with self.db.transaction() as cursor:
            if self.db.is_sqlite:
                # Zero freed bytes in the main file whatever the build's default is.
                cursor.execute("PRAGMA secure_delete = ON")
            cursor.execute(
                f"SELECT key_id, wrapped FROM party_keys WHERE {scope}",
                [party_id, agency, LEGACY_AGENCY],
            )
            rows = cursor.fetchall()
            for row in rows:
                zeros = bytes(len(bytes(row["wrapped"]))) if row["wrapped"] is not None else None
                cursor.execute(
                    "UPDATE party_keys SET wrapped = ? WHERE key_id = ?", [zeros, row["key_id"]]
                )
            cursor.execute(
                f"UPDATE party_keys SET wrapped = NULL, destroyed_at = ? WHERE {scope}",
                [now, party_id, agency, LEGACY_AGENCY],
            )
            xid = None
            if not self.db.is_sqlite:
                # The 32-bit xid that pg_stat_activity.backend_xmin is compared with.
                cursor.execute("SELECT mod(txid_current(), 4294967296)::text AS xid")
                xid = (cursor.fetchone() or {}).get("xid")
        key_ids = [row["key_id"] for row in rows]
        with self._lock:
            for key_id in key_ids:
                self._unwrapped.pop(key_id, None)
        if key_ids:
            self._compact(xid)
        return key_ids

    def _compact(self, xid: str | None) -> None:
        """Drop the old versions of destroyed keys that the database keeps after an update:
        SQLite's write-ahead log (the main file is clean: secure_delete is on), PostgreSQL's
        dead row versions in the table's pages."""
        datastore: Any = self.db.datastore
        if self.db.is_sqlite:
            with datastore.get_connection(commit=True) as connection:
                cursor = connection.cursor()
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                busy = cursor.fetchone()[0]
            if busy:
                log.warning(
                    "the WAL could not be checkpointed after an erasure (a reader held it); "
                    "the destroyed key stays in the WAL until the next checkpoint"
                )
            return
        # VACUUM cannot run inside a transaction; the pool's connections autocommit.
        with datastore.get_connection() as connection:
            waited = _wait_for_older_snapshots(connection, xid)
            connection.execute("VACUUM party_keys")
        if not waited:
            log.warning(
                "a transaction older than an erasure was still open when party_keys was "
                "vacuumed; the destroyed key's old row version stays in its page until the "
                "next VACUUM"
            )

    def secret(self, name: str) -> bytes:
        """A named random secret of the ledger (e.g. for request fingerprints), made once."""
        query = "SELECT wrapped, master_key_id FROM ledger_secrets WHERE name = ?"
        row = self.db.query_one(query, [name])
        if row is None:
            try:
                with self.db.transaction() as cursor:
                    cursor.execute(
                        "INSERT INTO ledger_secrets (name, wrapped, master_key_id) "
                        "VALUES (?, ?, ?)",
                        [
                            name,
                            self.master.wrap(os.urandom(32), label=f"secret:{name}"),
                            self.master.key_id,
                        ],
                    )
                    self._still_current(cursor)
            except StoreConflict:
                pass  # another process made it first; use theirs
            row = self.db.query_one(query, [name])
            assert row is not None
        if row["master_key_id"] != self.master.key_id:
            raise self._rotated()
        return self.master.unwrap(bytes(row["wrapped"]), label=f"secret:{name}")

    def rewrap(self, new_master: MasterKey) -> int:
        """Re-wrap every live data key and secret under a new master key, atomically."""
        count = 0
        with self.db.transaction() as cursor:
            # First, so that a process wrapping a new key meanwhile either commits before
            # this (and its key is re-wrapped below) or finds the new id and refuses.
            cursor.execute(
                "UPDATE master_key SET key_id = ?, since = ? WHERE singleton = 1 AND key_id = ?",
                [new_master.key_id, format_recorded_at(datetime.now(UTC)), self.master.key_id],
            )
            cursor.execute("SELECT key_id FROM master_key WHERE singleton = 1")
            current = cursor.fetchone()
            if current is None or current["key_id"] != new_master.key_id:
                raise self._rotated()
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

    def _active_row(self, agency: str, party_id: str) -> dict[str, Any] | None:
        return self.db.query_one(
            "SELECT key_id, wrapped, master_key_id FROM party_keys "
            "WHERE agency = ? AND party_id = ? AND destroyed_at IS NULL",
            [agency, party_id],
        )

    def _create(self, agency: str, party_id: str) -> dict[str, Any]:
        key_id = new_key_id()
        wrapped = self.master.wrap(new_data_key(), label=key_id)
        try:
            with self.db.transaction() as cursor:
                cursor.execute(
                    "INSERT INTO party_keys (key_id, agency, party_id, wrapped, master_key_id, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        key_id,
                        agency,
                        party_id,
                        wrapped,
                        self.master.key_id,
                        format_recorded_at(datetime.now(UTC)),
                    ],
                )
                self._still_current(cursor)
        except StoreConflict:
            pass  # another process created the party's key first
        row = self._active_row(agency, party_id)
        if row is None:
            raise VaultError(f"could not create a data key for party {party_id!r}")
        return row

    def _unwrap(self, row: dict[str, Any]) -> bytes:
        key_id = row["key_id"]
        with self._lock:
            cached = self._unwrapped.get(key_id)
            if cached is not None:
                return cached
        if row["master_key_id"] != self.master.key_id:
            raise self._rotated()
        plain = self.master.unwrap(bytes(row["wrapped"]), label=key_id)
        with self._lock:
            self._unwrapped[key_id] = plain
        return plain

    # -- which master key is current ----------------------------------------------------

    def _check_master_key(self) -> None:
        """Record the master key on first start; refuse to run with any other one."""
        row = self.db.query_one("SELECT key_id FROM master_key WHERE singleton = 1")
        if row is None:
            # A new ledger, or one from before the table: its secrets name the key in use.
            wrapped = self.db.query_one("SELECT master_key_id FROM ledger_secrets LIMIT 1")
            current = wrapped["master_key_id"] if wrapped is not None else self.master.key_id
            try:
                with self.db.transaction() as cursor:
                    cursor.execute(
                        "INSERT INTO master_key (singleton, key_id, since) VALUES (1, ?, ?)",
                        [current, format_recorded_at(datetime.now(UTC))],
                    )
            except StoreConflict:
                pass  # another process recorded it first
            row = self.db.query_one("SELECT key_id FROM master_key WHERE singleton = 1")
            assert row is not None
        if row["key_id"] != self.master.key_id:
            raise MasterKeyRotated(
                f"this ledger's keys are wrapped under master key {row['key_id']}, but the "
                f"master key loaded is {self.master.key_id}: if the master key was rotated, "
                "restart with the new key (point CASETRAIL_MASTER_KEY_PATH at it); otherwise "
                "load the master key this ledger was created with"
            )

    def _still_current(self, cursor: Cursor) -> None:
        """Inside the transaction that wraps a new key: refuse if the master key was rotated.

        Run after the insert: on SQLite the insert holds the write lock, so no rotation can
        commit in between; on PostgreSQL the share lock makes a rotation wait for this
        transaction (and re-wrap the new key), or this one wait for the rotation and refuse.
        """
        lock = "" if self.db.is_sqlite else " FOR SHARE"
        cursor.execute(f"SELECT key_id FROM master_key WHERE singleton = 1{lock}")
        row = cursor.fetchone()
        if row is None or row["key_id"] != self.master.key_id:
            raise self._rotated()

    def _rotated(self) -> MasterKeyRotated:
        return MasterKeyRotated(
            f"the master key was rotated; restart with the new key (this process holds master "
            f"key {self.master.key_id}, which the ledger no longer uses, and refuses to wrap "
            "new keys under it: nothing could open them after a restart)"
        )
