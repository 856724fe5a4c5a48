"""Smoke tests of the benchmarks: `python -m bench.run --quick --reps 1`, a one-second
`python -m bench.deferred` run, a 20,000-row `python -m bench.memory` run and a 300-insert
`python -m bench.trigger_cpu` run, and their reports.

No timing is asserted (the suite must not fail on a slow machine): only that the run
succeeds, which includes its own exactness checks of every pgtally variant and of every
pgbench transaction, and that the table lists every workload.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_bench(module: str, *args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    """Run `python -m bench.<module> ARGS`; fails the test unless it exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"bench failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result


def test_bench_quick_run_reports_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    result = run_bench("run", "--quick", "--reps", "1", "--out", str(out), timeout=600)
    report = out.read_text(encoding="utf-8")
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    for workload in ("W1", "W2", "W3", "W4", "W5", "S2"):
        assert any(row.startswith(f"| {workload} ") for row in rows), f"{workload} missing:\n{report}"
    assert "INEXACT" not in report
    assert result.stdout.strip() == report.strip()


def test_deferred_bench_quick_run_ends_exact(tmp_path: Path) -> None:
    out = tmp_path / "DEFERRED.md"
    run_bench("deferred", "--seconds", "1", "--reps", "1", "--clients", "2", "--out", str(out), timeout=300)
    rows = [line for line in out.read_text(encoding="utf-8").splitlines() if line.startswith("| 2 |")]
    assert len(rows) == 1, out.read_text(encoding="utf-8")


def test_memory_bench_small_run_reports_every_statement(tmp_path: Path) -> None:
    out = tmp_path / "MEMORY.md"
    run_bench("memory", "--rows", "20000", "--out", str(out), timeout=300)
    rows = [line for line in out.read_text(encoding="utf-8").splitlines() if line.startswith("| 20,000 |")]
    assert len(rows) == 4, rows  # INSERT and DELETE on both copies
    for row in rows:
        peak_mb = float(row.split("|")[4].split()[0].replace(",", ""))
        assert peak_mb > 0, f"no memory sampled for the backend: {row}"


def test_trigger_cpu_bench_small_run_reports_every_copy(tmp_path: Path) -> None:
    out = tmp_path / "TRIGGER_CPU.md"
    run_bench("trigger_cpu", "--inserts", "300", "--rounds", "1", "--out", str(out), timeout=300)
    rows = [line for line in out.read_text(encoding="utf-8").splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == ["baseline", "pgtally", "reference"], rows
    for row in rows:
        assert float(row.split("|")[2]) > 0, row
