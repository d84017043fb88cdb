"""Read models are disposable: a ledger built by older code gets its views rebuilt."""

from __future__ import annotations

from starlette.testclient import TestClient

from domain.settings import Settings
from projections.runtime import Runtime


def test_a_view_whose_tables_changed_shape_is_rebuilt_from_the_feed(
    settings: Settings, client: TestClient, runtime: Runtime
) -> None:
    from tests.conftest import note, opened

    client.post("/v1/cases/s-1/events", json={"events": [opened(), note(), note()]})
    assert runtime.settle(timeout=10)
    before = client.get("/v1/cases/s-1").json()
    runtime.close()

    # The case-state tables as an older release made them: no opened_utc column, and no
    # record of their shape.
    with (
        Runtime(settings, start_followers=False) as old,
        old.ledger.db.transaction() as cursor,
    ):
        cursor.execute("DROP INDEX case_state_opened")
        cursor.execute("ALTER TABLE case_state DROP COLUMN opened_utc")
        cursor.execute("DELETE FROM view_shapes WHERE name = 'case_state'")

    with Runtime(settings) as reopened:
        assert reopened.settle(timeout=10)
        row = reopened.ledger.db.query_one(
            "SELECT opened_utc, last_seq FROM case_state WHERE case_id = ?", ["s-1"]
        )
        assert row is not None and row["last_seq"] == 3 and row["opened_utc"]
        assert reopened.state_as_of("s-1")["head_hash"] == before["head_hash"]
