"""The benchmark scripts still run, end to end, at a size that takes seconds.

Nothing here judges speed (the figures are for people, measured by hand on a quiet
machine); a benchmark that stops running is what these catch, as when the log benchmark's
prebuilt tables were dropped by the view-shape check and it died before printing a proof.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_script(*arguments: str, timeout: float = 300) -> str:
    finished = subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished.stdout


def test_the_log_benchmark_builds_a_log_and_measures_every_part(tmp_path: Path) -> None:
    output = run_script(
        "scripts/bench_log.py",
        *("--runs", "1", "--sizes", "1000", "--sealer-leaves", "500", "--grown-leaves", "200"),
        *("--proofs", "20", "--bundle-events", "50", "--bundle-filler", "200"),
        *("--workdir", str(tmp_path)),
    )

    assert "Sealer.process_page" in output
    assert "n = 1,000:" in output
    assert "inclusion    p50" in output and "consistency  p50" in output
    assert "verify_bundle" in output


def test_the_desk_benchmark_times_every_page(tmp_path: Path) -> None:
    output = run_script(
        "scripts/bench_desk.py", "--cases", "50", "--rounds", "1", "--keep", str(tmp_path / "l")
    )

    for page in ("cases, newest first", "case of 500 events", "reports, one agency"):
        assert page in output


def test_the_append_benchmark_drives_every_scenario() -> None:
    output = run_script("scripts/bench_append.py", "--runs", "1", "--seconds", "0.3")

    for figure in ("http_single_16_events_per_s", "http_batch100_1_p99_ms", "raw_library_1"):
        assert figure in output
    failures = [line.split() for line in output.splitlines() if "_failures" in line]
    assert failures and all(float(figures[-1]) == 0 for figures in failures), failures
