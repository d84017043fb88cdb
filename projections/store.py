"""The ledger's store: the `eventsourcing` application over SQLite or PostgreSQL, the
recorders that keep idempotency receipts in the same transaction as the events, and a
small helper for the tables casetrail keeps next to the library's.

Everything that touches the database lives in this package (`projections/`): the event
store here, and the read models rebuilt from its notification log next to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from psycopg.sql import SQL, Identifier

from domain.case import RecordMapper
from domain.settings import DatabaseTarget


@dataclass(frozen=True)
class Receipt:
    """What an idempotent append leaves behind: the key, what was asked (as a keyed
    fingerprint), and which events answered it. A retry's answer is rebuilt from those
    events, byte for byte as the first one.

    Receipts are written before the events, in the same transaction, so nothing that can
    fail runs after the events are in: a receipt exists exactly when its events do.
    """

    scope: str
    key: str
    fingerprint: str
    case_id: str
    first_seq: int
    last_seq: int
    created_at: str

    def row(self) -> tuple[Any, ...]:
        return (
            self.scope,
            self.key,
            self.fingerprint,
            self.case_id,
            self.first_seq,
            self.last_seq,
            self.created_at,
        )


RECEIPTS_DDL = """
CREATE TABLE IF NOT EXISTS idempotency_receipts (
    scope TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    case_id TEXT NOT NULL,
    first_seq {bigint} NOT NULL,
    last_seq {bigint} NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
)
"""


# The writer's mark on every event it records: an HMAC of the event hash under a ledger
# secret that lives wrapped by the master key, outside the database. A row inserted into
# the event table by anyone else has no valid mark, so the sealer will not put it in the
# log and verification names it.
EVENT_MARKS_DDL = """
CREATE TABLE IF NOT EXISTS event_marks (
    event_hash TEXT PRIMARY KEY,
    mark TEXT NOT NULL
)
"""


class SQLiteLedgerRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(RECEIPTS_DDL.replace("{bigint}", "INTEGER"))
        statements.append(EVENT_MARKS_DDL)
        return statements

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        receipts: Sequence[Receipt] = kwargs.get("receipts") or ()
        if receipts:
            c.executemany(
                "INSERT INTO idempotency_receipts VALUES (?,?,?,?,?,?,?)",
                [receipt.row() for receipt in receipts],
            )
        marks: Sequence[tuple[str, str]] = kwargs.get("marks") or ()
        if marks:
            c.executemany("INSERT INTO event_marks VALUES (?,?)", list(marks))
        return super()._insert_events(c, stored_events, **kwargs)

    def events_with_positions(
        self, stream: UUID, first: int, last: int
    ) -> list[tuple[int, bytes, int]]:
        """(seq, stored bytes, feed position) of a case's events first..last."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT originator_version, state, rowid FROM {self.events_table_name} "
                "WHERE originator_id = ? AND originator_version BETWEEN ? AND ? "
                "ORDER BY originator_version",
                (stream.hex, first, last),
            )
            return [(row[0], bytes(row[1]), row[2]) for row in c.fetchall()]


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        receipts = Identifier(self.datastore.schema, "idempotency_receipts")
        ddl = RECEIPTS_DDL.replace("{bigint}", "BIGINT").replace("idempotency_receipts", "{table}")
        self.sql_create_statements.append(SQL(ddl).format(table=receipts))
        self.insert_receipt_statement = SQL(
            "INSERT INTO {table} VALUES (%s,%s,%s,%s,%s,%s,%s)"
        ).format(table=receipts)
        marks = Identifier(self.datastore.schema, "event_marks")
        self.sql_create_statements.append(
            SQL(EVENT_MARKS_DDL.replace("event_marks", "{table}")).format(table=marks)
        )
        self.insert_mark_statement = SQL("INSERT INTO {table} VALUES (%s,%s)").format(table=marks)
        self.events_with_positions_statement = SQL(
            "SELECT originator_version, state, notification_id FROM {table} "
            "WHERE originator_id = %s AND originator_version BETWEEN %s AND %s "
            "ORDER BY originator_version"
        ).format(table=Identifier(self.datastore.schema, self.events_table_name))

    def _insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # The library runs this before the events, outside the part of the transaction
        # where it holds back errors until after COMMIT: a failure here aborts it all.
        receipts: Sequence[Receipt] = kwargs.get("receipts") or ()
        for receipt in receipts:
            curs.execute(self.insert_receipt_statement, receipt.row())
        marks: Sequence[tuple[str, str]] = kwargs.get("marks") or ()
        if marks:
            curs.executemany(self.insert_mark_statement, list(marks))

    def events_with_positions(
        self, stream: UUID, first: int, last: int
    ) -> list[tuple[int, bytes, int]]:
        """(seq, stored bytes, feed position) of a case's events first..last."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.events_with_positions_statement, (stream, first, last))
            return [
                (row["originator_version"], bytes(row["state"]), row["notification_id"])
                for row in curs.fetchall()
            ]


class Ledger(Application[UUID]):
    """The event-sourced application: one stream per case, one notification log for all."""

    name = "Ledger"

    def __init__(self, target: DatabaseTarget, *, create_tables: bool = True) -> None:
        self.target = target
        super().__init__(env=_library_env(target, create_tables=create_tables))
        self.db = Database(self)
        self.commit_listeners: list[Callable[[], None]] = []

    def record(self, events: Sequence[Any], **kwargs: Any) -> list[int]:
        """Store new events in one transaction; return their feed positions.

        The event store's own `put`, without `Application.save`'s per-object protocol
        checks (which cost more than the insert itself on the append path) and without
        snapshots, which casetrail does not take.
        """
        recordings = self.events.put(events, **kwargs)
        self._notify(recordings)
        return [recording.notification.id for recording in recordings]

    def construct_mapper(self) -> Mapper[UUID]:
        return RecordMapper(transcoder=self.construct_transcoder())

    def _notify(self, recordings: Any) -> None:
        # Wake the in-process followers (projections, sealer) without waiting for a poll.
        for listener in self.commit_listeners:
            listener()


def _library_env(target: DatabaseTarget, *, create_tables: bool) -> dict[str, str]:
    create = "y" if create_tables else "n"
    if target.is_sqlite:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": target.path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "projections.store:SQLiteLedgerRecorder",
            "CREATE_TABLE": create,
        }
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": target.dbname,
        "POSTGRES_HOST": target.host,
        "POSTGRES_PORT": str(target.port),
        "POSTGRES_USER": target.user,
        "POSTGRES_PASSWORD": target.password,
        "POSTGRES_POOL_SIZE": "6",
        "POSTGRES_MAX_OVERFLOW": "12",
        "POSTGRES_LOCK_TIMEOUT": "30",
        "POSTGRES_CONN_MAX_AGE": "3600",
        "APPLICATION_RECORDER_TOPIC": "projections.store:PostgresLedgerRecorder",
        "CREATE_TABLE": create,
    }


class Database:
    """casetrail's own tables, in the library's database and through its connection pool.

    SQL is written once with `?` placeholders and `{blob}`/`{bigint}` type names; this
    class adapts both to the backend. Rows come back as dicts.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.is_sqlite = ledger.target.is_sqlite
        recorder: Any = ledger.recorder
        self.datastore: Any = recorder.datastore
        self.schema = "" if self.is_sqlite else self.datastore.schema
        self._ddl_lock = threading.Lock()

    def sql(self, statement: str) -> str:
        statement = statement.replace("{blob}", "BLOB" if self.is_sqlite else "BYTEA")
        statement = statement.replace("{bigint}", "INTEGER" if self.is_sqlite else "BIGINT")
        if not self.is_sqlite:
            statement = statement.replace("?", "%s")
        return statement

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(self.sql(statement), tuple(params))
            return [dict(row) for row in cursor.fetchall()]

    def query_one(self, statement: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.query(statement, params)
        return rows[0] if rows else None

    def has_column(self, table: str, column: str) -> bool:
        """Whether a table made by an earlier version already has a column (migrations)."""
        try:
            self.query(f"SELECT {column} FROM {table} WHERE 1 = 0")
        except Exception:
            return False
        return True

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Cursor]:
        """A read-write transaction. `durable=False` is for read models on SQLite: their
        commits skip the fsync (synchronous=NORMAL; still atomic and consistent in WAL
        mode), because a view that loses its last commits to a power cut replays them
        from the feed, which was committed durably. The events never take this path."""
        if durable or not self.is_sqlite:
            with self.datastore.transaction(commit=True) as cursor:
                yield Cursor(cursor, self)
            return
        with self.datastore.get_connection(commit=True) as connection:
            connection.cursor().execute("PRAGMA synchronous = NORMAL")
            try:
                with connection.transaction(commit=True) as cursor:
                    yield Cursor(cursor, self)
            finally:
                connection.cursor().execute("PRAGMA synchronous = FULL")

    def execute_script(self, statements: Sequence[str]) -> None:
        with self._ddl_lock, self.transaction() as cursor:
            for statement in statements:
                cursor.execute(statement)


class Cursor:
    """A cursor inside one of casetrail's transactions, with the backend's SQL dialect."""

    def __init__(self, raw: Any, db: Database) -> None:
        self.raw = raw
        self.db = db

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.raw.execute(self.db.sql(statement), tuple(params))

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.raw.executemany(self.db.sql(statement), [tuple(row) for row in rows])

    def fetchall(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.raw.fetchall()]

    def fetchone(self) -> dict[str, Any] | None:
        row = self.raw.fetchone()
        return dict(row) if row is not None else None
