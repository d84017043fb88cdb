"""Read models that follow the notification log, each with its own tracking position.

A `View` owns some tables and a tracking row (the library's `TrackingRecorder`, one row
per view); `View.update(position)` writes both in one transaction, so a crash never
applies an event twice or skips one. A `Follower` thread feeds a `Projection` pages of
the log in feed order, starting after the view's position. On SQLite, which has no
subscriptions, it polls; in-process appends wake it at once. On PostgreSQL it polls too
(a short interval) because a LISTEN connection can silently hang (EVENTSOURCING.md §6),
and two processes following the same view cannot double-apply: the tracking upsert
refuses a position that is not ahead of the stored one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import IntegrityError as StoreConflict
from eventsourcing.persistence import Notification, Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection
from eventsourcing.sqlite import SQLiteTrackingRecorder

from domain.envelope import Record, parse_stored
from projections.store import Cursor, Ledger

log = logging.getLogger("casetrail.projections")

PAGE_SIZE = 500


def tracking_recorder(ledger: Ledger) -> TrackingRecorder:
    """The one tracking table of a ledger, shared by all its views (one row each)."""
    existing = getattr(ledger, "_casetrail_tracking", None)
    if existing is not None:
        return existing  # type: ignore[no-any-return]

    datastore: Any = ledger.db.datastore
    recorder: TrackingRecorder
    if ledger.target.is_sqlite:
        recorder = SQLiteTrackingRecorder(datastore)
    else:
        recorder = PostgresTrackingRecorder(datastore, tracking_table_name="casetrail_tracking")
    recorder.create_table()
    ledger._casetrail_tracking = recorder  # type: ignore[attr-defined]
    return recorder


VIEW_SHAPES_DDL = (
    "CREATE TABLE IF NOT EXISTS view_shapes (name TEXT PRIMARY KEY, shape TEXT NOT NULL)"
)


def view_shape(ddl: Sequence[str], tables: Sequence[str]) -> str:
    """What a view's tables are built from: a ledger built with another shape is rebuilt."""
    return hashlib.sha256("\n".join([*ddl, *tables]).encode()).hexdigest()


class View:
    """A read model's tables and its position in the feed, updated together."""

    def __init__(self, ledger: Ledger, name: str, ddl: Sequence[str], tables: Sequence[str]):
        self.ledger = ledger
        self.db = ledger.db
        self.name = name
        self.ddl = list(ddl)
        self.tables = list(tables)
        self.tracking = tracking_recorder(ledger)
        self._rebuild_if_shape_changed()
        self.db.execute_script(self.ddl)

    def _rebuild_if_shape_changed(self) -> None:
        """A read model is disposable: when this code's tables differ from those a ledger
        was built with, drop them and replay the feed rather than read a stale shape."""
        shape = view_shape(self.ddl, self.tables)
        self.db.execute_script([VIEW_SHAPES_DDL])
        row = self.db.query_one("SELECT shape FROM view_shapes WHERE name = ?", [self.name])
        if row is not None and row["shape"] == shape:
            return
        if row is not None:
            log.warning("view %s: its tables changed; rebuilding it from the feed", self.name)
        self._drop()
        with self.db.transaction() as cursor:
            cursor.execute("DELETE FROM view_shapes WHERE name = ?", [self.name])
            cursor.execute(
                "INSERT INTO view_shapes (name, shape) VALUES (?, ?)", [self.name, shape]
            )

    def position(self) -> int:
        return self.tracking.max_tracking_id(self.name) or 0

    @contextmanager
    def update(self, position: int) -> Iterator[Cursor]:
        """A transaction over the view's tables that also moves its position to `position`."""
        with self.db.transaction(durable=False) as cursor:
            yield cursor
            # The library's own upsert, in our transaction (it has no public form of it).
            insert = self.tracking._insert_tracking  # type: ignore[attr-defined]
            insert(cursor.raw, Tracking(self.name, position))

    def reset(self) -> None:
        """Forget everything: drop the tables and the position, then create empty tables."""
        self._drop()
        self.db.execute_script(self.ddl)

    def _drop(self) -> None:
        tracking_table = "tracking" if self.db.is_sqlite else "casetrail_tracking"
        with self.db.transaction() as cursor:
            for table in self.tables:
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(f"DELETE FROM {tracking_table} WHERE application_name = ?", [self.name])


class LedgerProjection(Projection[Any]):
    """A projection fed whole pages: `process_page` applies them and moves the position.

    The library's `process_event` is supported too (one event per transaction), so a
    `ProjectionRunner` can drive the same class; casetrail's own follower uses pages,
    which make catching up and rebuilding an order of magnitude faster.
    """

    def __init__(self, view: View) -> None:
        super().__init__(view=view)
        self.ledger_view = view

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        notification = Notification(
            id=tracking.notification_id,
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=type(domain_event).TOPIC,
            state=domain_event.stored_bytes,
        )
        self.process_page([(notification, domain_event.record)], tracking.notification_id)

    def process_page(self, page: Sequence[tuple[Notification, Record]], position: int) -> None:
        raise NotImplementedError

    def after_step(self, processed: int) -> None:
        """Called after every round of the follower, busy or idle (e.g. to sign on a timer)."""

    def reload(self) -> None:
        """Forget cached state: another process advanced the view (see `Follower`)."""

    def reset(self) -> None:
        """Drop everything the projection built, to rebuild it from the start of the feed."""
        self.ledger_view.reset()


class Follower:
    """Keeps one projection up to date with the log, on its own thread."""

    def __init__(
        self,
        ledger: Ledger,
        projection: LedgerProjection,
        *,
        poll_seconds: float = 0.5,
        page_size: int = PAGE_SIZE,
        gather_seconds: float = 0.02,
        share: float | None = None,
    ) -> None:
        self.ledger = ledger
        self.projection = projection
        self.view = projection.ledger_view
        self.poll_seconds = poll_seconds
        self.page_size = page_size
        self.gather_seconds = gather_seconds
        # At most this share of the process's time under load: after a round that took t
        # seconds it rests t * (1/share - 1) before the next. None: no such limit.
        self.share = share
        self._wake = threading.Event()
        # Set by a reader waiting for this view: it cuts short a gathering pause or a rest.
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._advanced = threading.Condition()
        self._step_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self.ledger.commit_listeners.append(self._wake.set)
        self._thread = threading.Thread(
            target=self._run, name=f"casetrail-{self.view.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._wake.set in self.ledger.commit_listeners:
            self.ledger.commit_listeners.remove(self._wake.set)

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Process everything recorded so far, on the calling thread; returns events seen."""
        seen = 0
        while True:
            count = self._step()
            if count == 0:
                self.projection.after_step(0)
                return seen
            seen += count
            if progress is not None:
                progress(count)

    def wait_for(self, position: int, timeout: float = 10.0) -> bool:
        """Block until the view has processed the feed up to `position`."""
        deadline = time.monotonic() + timeout
        self._wanted.set()
        self._wake.set()
        with self._advanced:
            while self.view.position() < position:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._advanced.wait(min(remaining, 0.05))
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self._wake.clear()  # set again by any commit made while this round runs
            try:
                count = self._step()
                self.projection.after_step(count)
                self.last_error = None
            except Exception as error:
                self.last_error = f"{type(error).__name__}: {error}"
                log.exception("projection %s failed; retrying", self.view.name)
                self._stop.wait(1.0)
                continue
            if self.share is not None and count > 0 and self._wake.is_set():
                # Appends arrived while this round ran: leave them most of the process.
                # A backlog with no appends competing (a rebuild, a restart) runs flat out.
                spent = time.monotonic() - started
                self._pause(max(self.gather_seconds, spent * (1 / self.share - 1)))
                continue
            if count == self.page_size:
                continue  # a backlog: keep going
            if count > 0:
                # Let a few more appends gather, so that under load one view transaction
                # (and one fsync) serves many events instead of competing with each append.
                self._pause(self.gather_seconds)
            self._wake.wait(self.poll_seconds)

    def _pause(self, seconds: float) -> None:
        """Rest, unless someone is waiting for this view (or it is stopping)."""
        self._wanted.wait(seconds)
        self._wanted.clear()

    def _step(self) -> int:
        with self._step_lock:
            for _ in range(5):
                try:
                    return self._step_locked()
                except StoreConflict:
                    # Another process (or runtime) applied this page first: its position
                    # and rows stand; forget our cached state and carry on from theirs.
                    self.projection.reload()
            return self._step_locked()

    def _step_locked(self) -> int:
        position = self.view.position()
        notifications = self.ledger.recorder.select_notifications(
            start=position, limit=self.page_size, inclusive_of_start=False
        )
        if not notifications:
            return 0

        page: list[tuple[Notification, Record]] = []
        for notification in notifications:
            record = parse_stored(
                notification.state, seq=notification.originator_version, verify=False
            )
            if not isinstance(record, dict):
                # The chain verifier reports it; the read model skips what it cannot read.
                log.error(
                    "feed position %d cannot be read (%s); %s skips it",
                    notification.id,
                    record.reason,
                    self.view.name,
                )
                continue
            page.append((notification, record))

        self.projection.process_page(page, notifications[-1].id)
        with self._advanced:
            self._advanced.notify_all()
        return len(notifications)
