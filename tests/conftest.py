"""Shared fixtures: a ledger on SQLite always, and on PostgreSQL whenever it is reachable.

PostgreSQL tests create a database of their own and drop it afterwards; they never touch
a database they did not create. The server URL comes from CASETRAIL_TEST_POSTGRES_URL
(default postgresql://postgres@127.0.0.1:5432/test, used only to create and drop).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from domain.settings import Settings
from domain.signing import LedgerKey
from domain.vault import new_master_key_file
from projections.runtime import Runtime

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES_URL = os.environ.get("CASETRAIL_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return True
    except Exception:
        return False


POSTGRES_AVAILABLE = postgres_reachable()
if os.environ.get("CASETRAIL_REQUIRE_POSTGRES") and not POSTGRES_AVAILABLE:
    raise pytest.UsageError(
        f"CASETRAIL_REQUIRE_POSTGRES is set but PostgreSQL is not reachable at {POSTGRES_URL}; "
        "start it (pg_ctlcluster … main start) or unset the variable"
    )
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES_AVAILABLE, reason="PostgreSQL is not reachable"),
        ],
    ),
]


class PostgresDatabase:
    """A throwaway database on the test server."""

    def __init__(self) -> None:
        import psycopg

        self.name = "casetrail_test_" + secrets.token_hex(6)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        parts = urlsplit(POSTGRES_URL)
        self.url = urlunsplit(parts._replace(path=f"/{self.name}"))

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path) -> Iterator[Settings]:
    var = tmp_path / "var"
    var.mkdir()
    new_master_key_file(str(var / "master.key"))
    LedgerKey.create(str(var / "signing-key.pem"))
    base = Settings(
        database_url=f"sqlite:///{var / 'casetrail.sqlite'}",
        master_key_path=str(var / "master.key"),
        signing_key_path=str(var / "signing-key.pem"),
        seal_every_seconds=0.05,
    )
    if backend == "sqlite":
        yield base
        return

    database = PostgresDatabase()
    try:
        yield replace(base, database_url=database.url)
    finally:
        database.drop()


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    with Runtime(settings) as running:
        yield running


@pytest.fixture
def admin_token(runtime: Runtime) -> str:
    token, _ = runtime.api_keys.create("admin", name="test admin")
    return token


@pytest.fixture
def client(runtime: Runtime, admin_token: str) -> Iterator[TestClient]:
    with TestClient(
        create_app(runtime), headers={"Authorization": f"Bearer {admin_token}"}
    ) as test_client:
        yield test_client


class LiveServer:
    """The app under uvicorn on 127.0.0.1, for tests that need real concurrency."""

    def __init__(self, runtime: Runtime) -> None:
        import uvicorn

        self.port = _free_port()
        config = uvicorn.Config(
            create_app(runtime),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            loop="asyncio",
            http="httptools",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(runtime: Runtime) -> Iterator[LiveServer]:
    server = LiveServer(runtime)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(live_server: LiveServer, admin_token: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30
    ) as session:
        yield session


def event(
    event_type: str,
    payload: dict[str, Any] | None = None,
    *,
    occurred_at: str = "2024-03-01T10:00:00+08:00",
    actor: dict[str, str] | None = None,
    evidence: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """An event as an integrator would send it."""
    body: dict[str, Any] = {
        "type": event_type,
        "occurred_at": occurred_at,
        "actor": actor or {"id": "agent-a1", "role": "agent_of_record", "agency": "agency-a"},
        "payload": payload if payload is not None else {},
    }
    if evidence is not None:
        body["evidence"] = evidence
    return body


def opened(kind: str = "sale", agency: str = "agency-a") -> dict[str, Any]:
    return event(
        "case.opened",
        {"kind": kind, "property_ref": "prop-1"},
        actor={"id": "agent-a1", "role": "agent_of_record", "agency": agency},
    )


def note(text: str = "called the seller") -> dict[str, Any]:
    return event("note.added", {"text": text})


# -- the compliance desk ------------------------------------------------------------------


class DeskLedger:
    """A ledger on SQLite with example cases loaded, served on 127.0.0.1, with keys."""

    def __init__(self, folder: Path, scenarios: list[str]) -> None:
        from scripts.scenarios import EXAMPLES, load_scenario, read_scenarios

        var = folder / "var"
        var.mkdir(parents=True)
        new_master_key_file(str(var / "master.key"))
        LedgerKey.create(str(var / "signing-key.pem"))
        self.settings = Settings(
            database_url=f"sqlite:///{var / 'casetrail.sqlite'}",
            master_key_path=str(var / "master.key"),
            signing_key_path=str(var / "signing-key.pem"),
            seal_every_seconds=0.05,
        )
        self.runtime = Runtime(self.settings)
        for scenario in read_scenarios([EXAMPLES / f"{name}.json" for name in scenarios]):
            load_scenario(self.runtime, scenario)
        self.runtime.settle(timeout=20.0)
        self.runtime.seal_now()
        self.compliance, _ = self.runtime.api_keys.create("compliance", name="desk officer")
        # An agent of the lease agency: it may see C-02's case and nothing of agency-a.
        self.lease_agent, _ = self.runtime.api_keys.create(
            "agent", name="lease agent", agency="agency-l"
        )
        self.server = LiveServer(self.runtime)
        self.url = self.server.url

    def close(self) -> None:
        self.server.stop()
        self.runtime.close()


@pytest.fixture(scope="module")
def desk_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeskLedger]:
    ledger = DeskLedger(
        tmp_path_factory.mktemp("desk"),
        ["D-02", "C-01-compliant-sale", "C-02-lease-late-complaint"],
    )
    try:
        yield ledger
    finally:
        ledger.close()
