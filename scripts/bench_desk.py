"""Benchmark: how fast the compliance desk answers, on a ledger of 100,000 cases with one
case of 500 events.

The ledger is built once in-process (appends through the writer, projections settled),
then served by `casetrail serve` in a child process; a signed-in client in this process
asks for every page several times over keep-alive HTTP and reports p50, p95 and max.
The baseline, measured in the same run against the same server, is GET /healthz: the
cost of one request that does no work. The issue's goal is every page within 300 ms.

    python scripts/bench_desk.py                       # 100,000 cases, 7 rounds
    python scripts/bench_desk.py --cases 20000 --rounds 5
    python scripts/bench_desk.py --keep /tmp/desk-ledger   # build once, reuse next time
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_append import start_ledger  # noqa: E402

AGENCIES = 40
AGENTS_PER_AGENCY = 25
BIG_CASE = "bench-big"
BIG_EVENTS = 500
EVIDENCE = [
    {
        "name": "signed.pdf",
        "sha256": "63d2b71be6b9c3ae61907ca454972a2cb96f159c3b9c0e6a2b5e17286f28b2ca",
        "media_type": "application/pdf",
    }
]


def moment(days_ago: float) -> str:
    when = datetime.now(UTC) - timedelta(days=days_ago)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def case_events(index: int) -> list[dict[str, Any]]:
    """A small case: opened, an agent assigned; every third one takes a mandate without
    the identity and title checks, so a third of the cases carry breaches."""
    agency = f"agency-{index % AGENCIES:02d}"
    agent = f"agent-{index % AGENCIES:02d}-{index % AGENTS_PER_AGENCY:02d}"
    manager = f"mgr-{index % AGENCIES:02d}"
    age = 1 + index % 300
    events: list[dict[str, Any]] = [
        {
            "type": "case.opened",
            "occurred_at": moment(age),
            "actor": {"id": agent, "role": "agent_of_record", "agency": agency},
            "payload": {"kind": "sale", "property_ref": f"prop-{index}"},
        },
        {
            "type": "agent.assigned",
            "occurred_at": moment(age - 0.01),
            "actor": {"id": manager, "role": "branch_manager", "agency": agency},
            "payload": {
                "agent_id": agent,
                "case_role": "agent_of_record",
                "licence_no": f"LIC-{index}",
                "supervisor_id": manager,
            },
        },
    ]
    if index % 3 == 0:
        events.append(
            {
                "type": "mandate.signed",
                "occurred_at": moment(age - 0.02),
                "actor": {"id": agent, "role": "agent_of_record", "agency": agency},
                "payload": {
                    "party_id": f"p-{index}",
                    "kind": "sell",
                    "exclusive": False,
                    "expires_on": (datetime.now(UTC) + timedelta(days=90)).date().isoformat(),
                    "currency": "CNY",
                    "commission_rate_bp": 100,
                    "commission_payer": "buyer",
                },
                "evidence": EVIDENCE,
            }
        )
    return events


def big_case_events() -> list[dict[str, Any]]:
    """One long case: the opening steps, then viewings and notes up to BIG_EVENTS."""
    events = case_events(0)
    actor = events[0]["actor"]
    while len(events) < BIG_EVENTS:
        index = len(events)
        age = 200 - index * 0.3
        if index % 4 == 0:
            events.append(
                {
                    "type": "viewing.conducted",
                    "occurred_at": moment(age),
                    "actor": actor,
                    "payload": {"party_id": f"buyer-{index}", "property_ref": "prop-0"},
                }
            )
        else:
            events.append(
                {
                    "type": "note.added",
                    "occurred_at": moment(age),
                    "actor": actor,
                    "payload": {"text": f"called the buyer back about the price, call {index}"},
                    "evidence": EVIDENCE,
                }
            )
    return events


def build(folder: Path, cases: int) -> dict[str, str]:
    """A ledger with `cases` small cases and one big one; returns the server's settings."""
    from domain.settings import Settings
    from domain.signing import LedgerKey
    from domain.vault import new_master_key_file
    from projections.runtime import Runtime
    from projections.writer import AppendCommand

    env = {
        "CASETRAIL_DATABASE_URL": f"sqlite:///{folder / 'ledger.sqlite'}",
        "CASETRAIL_MASTER_KEY_PATH": str(folder / "master.key"),
        "CASETRAIL_SIGNING_KEY_PATH": str(folder / "signing-key.pem"),
    }
    if (folder / "ready").exists():
        return env

    new_master_key_file(env["CASETRAIL_MASTER_KEY_PATH"])
    LedgerKey.create(env["CASETRAIL_SIGNING_KEY_PATH"])
    with Runtime(Settings.from_env(env)) as runtime:

        def append(case_id: str, events: list[dict[str, Any]]) -> None:
            drafts = [
                runtime.validator.event(event, f"/events/{i}") for i, event in enumerate(events)
            ]
            runtime.append(AppendCommand(case_id=case_id, events=drafts, recorded_by="bench"))

        started = time.perf_counter()
        for start in range(0, BIG_EVENTS, 50):
            append(BIG_CASE, big_case_events()[start : start + 50])
        with ThreadPoolExecutor(max_workers=16) as pool:
            for done, _ in enumerate(
                pool.map(lambda i: append(f"bench-{i:06d}", case_events(i)), range(1, cases))
            ):
                if done % 10_000 == 0:
                    print(f"  appended {done:>7} cases", flush=True)
        print(f"  appended in {time.perf_counter() - started:.0f} s; projecting…", flush=True)

        started = time.perf_counter()
        while not runtime.settle(timeout=60.0):
            print(f"  projections at {runtime.head_position()}…", flush=True)
        runtime.seal_now()
        print(f"  projections settled in {time.perf_counter() - started:.0f} s", flush=True)
    (folder / "ready").write_text("built\n")
    return env


def sign_in(client: Any, key: str) -> None:
    page = client.get("/desk/sign-in").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf, "the sign-in form carries a CSRF token"
    answer = client.post("/desk/sign-in", data={"csrf": csrf.group(1), "key": key})
    assert answer.status_code == 303, answer.text


def timed(client: Any, method: str, path: str, rounds: int, **options: Any) -> list[float]:
    client.request(method, path, **options)  # warm the server's caches once
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.request(method, path, **options)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} answered {response.status_code}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="build the ledger here, or reuse it")
    args = parser.parse_args()

    import httpx

    folder = args.keep or Path(tempfile.mkdtemp(prefix="casetrail-bench-desk-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"ledger in {folder} ({args.cases} cases, one of {BIG_EVENTS} events)")
    env = build(folder, args.cases)

    from api.desk.views import _cursor
    from domain.settings import Settings
    from projections.runtime import Runtime

    with Runtime(Settings.from_env(env), start_followers=False) as runtime:
        started = time.perf_counter()
        runtime.catch_up()  # a ledger built by older code may have views to rebuild
        print(f"views current after {time.perf_counter() - started:.1f} s")
        key, _ = runtime.api_keys.create("compliance", name="bench desk")
        halfway = runtime.ledger.db.query_one(
            "SELECT case_id, updated_at FROM case_state ORDER BY updated_at DESC, case_id "
            "LIMIT 1 OFFSET ?",
            [args.cases // 2],
        )
        assert halfway is not None
        deep = _cursor(halfway, "updated")
        middle = runtime.verified_records(BIG_CASE)[BIG_EVENTS // 2]["recorded_at"]

    server = start_ledger(env)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60)
        sign_in(client, key)
        bundle = client.get(f"/desk/cases/{BIG_CASE}/bundle.json").content
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/desk/verify").text)
        assert csrf

        pages: list[tuple[str, str, str, dict[str, Any]]] = [
            ("baseline: GET /healthz", "GET", "/healthz", {}),
            ("cases, newest first", "GET", "/desk/cases", {}),
            ("cases with breaches", "GET", "/desk/cases?breaches=1", {}),
            ("cases of one agent", "GET", "/desk/cases?agent=agent-07-07", {}),
            (
                "cases, critical, by breaches",
                "GET",
                "/desk/cases?severity=critical&sort=breaches",
                {},
            ),
            ("cases, a page halfway down", "GET", f"/desk/cases?after={deep}", {}),
            (f"case of {BIG_EVENTS} events", "GET", f"/desk/cases/{BIG_CASE}", {}),
            ("same, as of its middle", "GET", f"/desk/cases/{BIG_CASE}?as_of={middle}", {}),
            ("same, every obligation", "GET", f"/desk/cases/{BIG_CASE}?all=1", {}),
            ("verdicts CSV", "GET", f"/desk/cases/{BIG_CASE}/verdicts.csv", {}),
            ("dispute bundle", "GET", f"/desk/cases/{BIG_CASE}/bundle.json", {}),
            ("reports, all agencies", "GET", "/desk/reports", {}),
            ("reports, one agency", "GET", "/desk/reports?agency=agency-07", {}),
            ("verify page", "GET", "/desk/verify", {}),
            (
                f"verify a {BIG_EVENTS}-event bundle",
                "POST",
                "/desk/verify",
                {
                    "data": {"csrf": csrf.group(1)},
                    "files": {"bundle": ("b.json", bundle, "application/json")},
                },
            ),
        ]
        results = []
        for label, method, path, options in pages:
            times = timed(client, method, path, args.rounds, **options)
            results.append((label, statistics.median(times), _p95(times), max(times)))

        base = results[0][1]
        print(f"\n{'page':<36} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'p50/base':>9}")
        for label, p50, p95, worst in results:
            verdict = "" if label.startswith("baseline") or worst <= 300 else "  over 300 ms"
            print(f"{label:<36} {p50:8.1f} {p95:8.1f} {worst:8.1f} {p50 / base:9.1f}{verdict}")
        client.close()
    finally:
        server.stop()
    return 0


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


if __name__ == "__main__":
    raise SystemExit(main())
