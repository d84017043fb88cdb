"""Benchmark: durable, hash-chained appends over HTTP against the baselines that bound them.

Measured in one run, on one machine, so the ratios mean something on a noisy host:

- casetrail over HTTP (uvicorn, one worker, SQLite with full durability or PostgreSQL):
  single events and batches of 100, with 1 and 16 concurrent clients; appends/s, p50, p99;
- the raw `eventsourcing` library appending the same events in-process, without HTTP or
  hashing, one event per transaction and 100 per transaction;
- a bare starlette endpoint that only parses the same body and answers 201.

The load comes from a separate process speaking HTTP/1.1 over keep-alive connections,
so the server has a core of its own to contend for, as it would in production.

    python scripts/bench_append.py                    # SQLite, 3 runs, 5 s each
    python scripts/bench_append.py --runs 5 --seconds 8
    CASETRAIL_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python scripts/bench_append.py --backend postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

ROOT = Path(__file__).resolve().parent.parent


def note_event(index: int) -> dict[str, Any]:
    return {
        "type": "note.added",
        "occurred_at": "2024-03-01T10:00:00+08:00",
        "actor": {"id": "agent-a1", "role": "agent_of_record", "agency": "agency-a"},
        "payload": {"text": f"called the seller about the viewing on Saturday, attempt {index}"},
        "evidence": [
            {
                "name": "call-log.pdf",
                "sha256": "63d2b71be6b9c3ae61907ca454972a2cb96f159c3b9c0e6a2b5e17286f28b2ca",
                "media_type": "application/pdf",
            }
        ],
    }


OPEN_EVENT = {
    "type": "case.opened",
    "occurred_at": "2024-03-01T09:00:00+08:00",
    "actor": {"id": "agent-a1", "role": "agent_of_record", "agency": "agency-a"},
    "payload": {"kind": "sale", "property_ref": "prop-bench"},
}


# -- the load generator (runs in its own process) --------------------------------------


async def _client(
    port: int, path: str, body: bytes, token: str, deadline: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    failures = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        writer.write(request)
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        if not status_line.startswith(b"HTTP/1.1 201"):
            failures += 1
    writer.close()
    return failures


def _load(port: int, paths: list[str], body: bytes, token: str, seconds: float, queue: Any) -> None:
    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds
        failures = await asyncio.gather(
            *(_client(port, path, body, token, deadline, latencies) for path in paths)
        )
        return latencies, sum(failures)

    latencies, failures = asyncio.run(run())
    queue.put((latencies, failures))


def drive(port: int, paths: list[str], body: bytes, token: str, seconds: float) -> dict[str, float]:
    queue: Any = multiprocessing.Queue()
    process = multiprocessing.Process(target=_load, args=(port, paths, body, token, seconds, queue))
    process.start()
    latencies, failures = queue.get()
    process.join()
    latencies.sort()
    return {
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0,
        "failures": float(failures),
    }


# -- servers ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no server on port {port}")


BARE_APP = """
import orjson, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def append(request):
    orjson.loads(await request.body())
    return Response(b'{}', status_code=201, media_type="application/json")

app = Starlette(routes=[Route("/v1/cases/{case_id}/events", append, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), loop="uvloop",
            http="httptools", access_log=False, log_level="warning")
"""


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Any = None

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if self.log is not None:
            self.log.close()


def start_bare() -> Server:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)], cwd=ROOT)
    _wait_for(port)
    return Server(process, port)


def start_ledger(env: dict[str, str]) -> Server:
    port = _free_port()
    # The server's own output (its access log, one line per request) is no result; it is
    # kept in a file so that a server that fails to start can say why.
    # Not a with-block: the file lives as long as the server.
    log = tempfile.TemporaryFile(prefix="casetrail-bench-server-")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        _wait_for(port)
    except RuntimeError:
        process.kill()
        log.seek(0)
        raise RuntimeError(
            f"the ledger server did not start:\n{log.read().decode(errors='replace')[-2000:]}"
        ) from None
    return Server(process, port, log)


def ledger_env(workdir: Path, database_url: str) -> tuple[dict[str, str], str]:
    """Settings for a fresh ledger, and an integrator key for it."""
    sys.path.insert(0, str(ROOT))
    from domain.settings import Settings
    from domain.signing import LedgerKey
    from domain.vault import new_master_key_file
    from projections.runtime import Runtime

    new_master_key_file(str(workdir / "master.key"))
    LedgerKey.create(str(workdir / "signing-key.pem"))
    env = {
        "CASETRAIL_DATABASE_URL": database_url,
        "CASETRAIL_MASTER_KEY_PATH": str(workdir / "master.key"),
        "CASETRAIL_SIGNING_KEY_PATH": str(workdir / "signing-key.pem"),
    }
    with Runtime(Settings.from_env(env), start_followers=False) as runtime:
        token, _ = runtime.api_keys.create("integrator", name="bench")
    return env, token


def open_cases(port: int, token: str, prefix: str, count: int) -> list[str]:
    import httpx

    paths = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for index in range(count):
            path = f"/v1/cases/{prefix}-{index}/events"
            response = client.post(
                path, json=OPEN_EVENT, headers={"Authorization": f"Bearer {token}"}
            )
            response.raise_for_status()
            paths.append(path)
    return paths


# -- the raw library baseline ----------------------------------------------------------


class Note(Aggregate):
    @event("Noted")
    def note(self, text: str, evidence: list[dict[str, str]]) -> None:
        pass


class RawLedger(Application[Any]):
    pass


def raw_library(database_url: str, per_transaction: int, seconds: float) -> float:
    """Events/s of eventsourcing itself: same payloads, no HTTP, no hashing, no chaining."""
    sys.path.insert(0, str(ROOT))
    from domain.settings import parse_database_url
    from projections.store import _library_env

    env = _library_env(parse_database_url(database_url), create_tables=True)
    env.pop("APPLICATION_RECORDER_TOPIC")
    app = RawLedger(env=env)
    sample = note_event(0)
    aggregate = Note()
    app.save(aggregate)

    count = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(per_transaction):
            aggregate.note(text=sample["payload"]["text"], evidence=sample["evidence"])
        app.save(aggregate)
        count += per_transaction
    elapsed = time.perf_counter() - started
    app.close()
    return count / elapsed


# -- the run -----------------------------------------------------------------------------


def one_run(backend: str, seconds: float, run: int) -> dict[str, float]:
    results: dict[str, float] = {}
    single = json.dumps(note_event(1)).encode()
    batch = json.dumps({"events": [note_event(i) for i in range(100)]}).encode()

    with tempfile.TemporaryDirectory(prefix="casetrail-bench-") as tmp:
        workdir = Path(tmp)
        database_url, drop = _database(backend, workdir, "ledger")
        raw_url, drop_raw = _database(backend, workdir, "raw")
        try:
            results["raw_library_1_per_txn"] = raw_library(raw_url, 1, seconds)
            results["raw_library_100_per_txn"] = raw_library(raw_url, 100, seconds)

            bare = start_bare()
            try:
                paths = [f"/v1/cases/bare-{i}/events" for i in range(16)]
                results["bare_16_rps"] = drive(bare.port, paths, single, "x", seconds)[
                    "requests_per_s"
                ]
                results["bare_1_rps"] = drive(bare.port, paths[:1], single, "x", seconds)[
                    "requests_per_s"
                ]
            finally:
                bare.stop()

            env, token = ledger_env(workdir, database_url)
            server = start_ledger(env)
            try:
                paths = open_cases(server.port, token, f"r{run}", 16)
                for clients in (1, 16):
                    for name, body, events in (("single", single, 1), ("batch100", batch, 100)):
                        figures = drive(server.port, paths[:clients], body, token, seconds)
                        key = f"http_{name}_{clients}"
                        results[f"{key}_events_per_s"] = figures["requests_per_s"] * events
                        results[f"{key}_p50_ms"] = figures["p50_ms"]
                        results[f"{key}_p99_ms"] = figures["p99_ms"]
                        results[f"{key}_failures"] = figures["failures"]
            finally:
                server.stop()
        finally:
            drop()
            drop_raw()
    return results


def _database(backend: str, workdir: Path, name: str) -> tuple[str, Any]:
    if backend == "sqlite":
        return f"sqlite:///{workdir / (name + '.sqlite')}", lambda: None

    import psycopg

    admin_url = os.environ.get(
        "CASETRAIL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    database = f"casetrail_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    return admin_url.rsplit("/", 1)[0] + f"/{database}", drop


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    runs = []
    for run in range(args.runs):
        print(f"run {run + 1} of {args.runs}…", file=sys.stderr, flush=True)
        runs.append(one_run(args.backend, args.seconds, run))

    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(f"\nmedians of {args.runs} runs, {args.seconds:g} s each, backend {args.backend}\n")
    for key in sorted(median):
        print(f"  {key:<40} {median[key]:>12,.1f}")

    ratios = {
        "single, 16 clients / raw library 1 per txn (goal ≥ 2.0)": median[
            "http_single_16_events_per_s"
        ]
        / median["raw_library_1_per_txn"],
        "single, 16 clients / bare starlette, 16 clients (goal ≥ 0.4)": median[
            "http_single_16_events_per_s"
        ]
        / median["bare_16_rps"],
        "batch of 100, 16 clients / raw library 100 per txn (goal ≥ 0.5)": median[
            "http_batch100_16_events_per_s"
        ]
        / median["raw_library_100_per_txn"],
        "batch of 100, 1 client / raw library 100 per txn": median["http_batch100_1_events_per_s"]
        / median["raw_library_100_per_txn"],
        "single, 1 client / raw library 1 per txn": median["http_single_1_events_per_s"]
        / median["raw_library_1_per_txn"],
    }
    print("\nratios (medians)\n")
    for name, value in ratios.items():
        print(f"  {name:<66} {value:>6.2f}×")
    print(f"\n  p99 single, 16 clients (goal ≤ 25 ms): {median['http_single_16_p99_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
