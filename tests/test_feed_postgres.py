"""The global feed under concurrent writers on PostgreSQL: nothing skipped, repeated or
reordered."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.catalogue import load_catalogue
from domain.settings import Settings
from domain.validation import EventValidator
from domain.vault import new_master_key_file
from projections.apikeys import SYSTEM
from projections.runtime import Runtime
from projections.writer import AppendCommand
from tests.conftest import POSTGRES_AVAILABLE, PostgresDatabase, note, opened

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_AVAILABLE, reason="PostgreSQL is not reachable"),
]
VALIDATOR = EventValidator(load_catalogue())


@pytest.fixture
def pg_settings(tmp_path: Path) -> Iterator[Settings]:
    new_master_key_file(str(tmp_path / "master.key"))
    database = PostgresDatabase()
    try:
        yield Settings(database_url=database.url, master_key_path=str(tmp_path / "master.key"))
    finally:
        database.drop()


def command(case_id: str, body: dict[str, Any]) -> AppendCommand:
    return AppendCommand(
        case_id=case_id, events=[VALIDATOR.event(body, "")], recorded_by=SYSTEM.key_id
    )


def test_tailing_reader_sees_every_event_once_in_order(pg_settings: Settings) -> None:
    runtimes = [Runtime(pg_settings, start_followers=False) for _ in range(4)]
    reader = runtimes[0]
    stop = threading.Event()
    seen: list[int] = []

    def write(runtime: Runtime, writer: int) -> None:
        for case in range(6):
            case_id = f"w{writer}-c{case}"
            runtime.append(command(case_id, opened()))
            for _ in range(12):
                runtime.append(command(case_id, note()))

    def tail() -> None:
        position = 0
        while True:
            page = reader.feed(after=position, limit=50, viewer=SYSTEM)
            seen.extend(event["position"] for event in page["events"])
            position = page["next_after"]
            if stop.is_set() and not page["events"]:
                return

    tailer = threading.Thread(target=tail)
    tailer.start()
    writers = [
        threading.Thread(target=write, args=(runtimes[index % 4], index)) for index in range(8)
    ]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    tailer.join(timeout=60)

    everything = [
        row["notification_id"]
        for row in reader.ledger.db.query(
            "SELECT notification_id FROM ledger_events ORDER BY notification_id"
        )
    ]
    assert len(everything) == 8 * 6 * 13
    assert seen == everything
    for runtime in runtimes:
        runtime.close()


def test_reader_that_polled_during_an_open_transaction_still_gets_both(
    pg_settings: Settings,
) -> None:
    slow = Runtime(pg_settings, start_followers=False)
    fast = Runtime(pg_settings, start_followers=False)
    inserted, release = threading.Event(), threading.Event()
    recorder: Any = slow.ledger.recorder
    original = recorder._fetch_ids_after_insert_events

    def hold_the_transaction_open(*args: Any, **kwargs: Any) -> Any:
        ids = original(*args, **kwargs)
        inserted.set()
        release.wait(30)
        return ids

    recorder._fetch_ids_after_insert_events = hold_the_transaction_open
    start = slow.head_position()

    first = threading.Thread(target=slow.append, args=(command("held", opened()),))
    first.start()
    assert inserted.wait(10)
    second = threading.Thread(target=fast.append, args=(command("quick", opened()),))
    second.start()
    time.sleep(0.5)

    polled_between = fast.feed(after=start, limit=100, viewer=SYSTEM)
    release.set()
    first.join(10)
    second.join(10)
    polled_after = fast.feed(after=polled_between["next_after"], limit=100, viewer=SYSTEM)

    assert polled_between["events"] == []
    assert [e["case_id"] for e in polled_after["events"]] == ["held", "quick"]
    slow.close()
    fast.close()
