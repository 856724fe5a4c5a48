"""Smoke tests of the benchmarks: `python -m bench.run --quick --reps 1` and a one-second
`python -m bench.deferred` run and report.

No timing is asserted (the suite must not fail on a slow machine): only that the run
succeeds, which includes its own exactness checks of every pgtally variant and of every
pgbench transaction, and that the table lists every workload.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_run_reports_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--reps", "1", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"bench failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    report = out.read_text(encoding="utf-8")
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    for workload in ("W1", "W2", "W3", "W4", "W5", "S2"):
        assert any(row.startswith(f"| {workload} ") for row in rows), f"{workload} missing:\n{report}"
    assert "INEXACT" not in report
    assert result.stdout.strip() == report.strip()


def test_deferred_bench_quick_run_ends_exact(tmp_path: Path) -> None:
    out = tmp_path / "DEFERRED.md"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.deferred",
            "--seconds",
            "1",
            "--reps",
            "1",
            "--clients",
            "2",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"bench failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    rows = [line for line in out.read_text(encoding="utf-8").splitlines() if line.startswith("| 2 |")]
    assert len(rows) == 1, out.read_text(encoding="utf-8")
