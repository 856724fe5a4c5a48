"""pgtally health: tally.health() as a table, JSON or Prometheus text, for monitoring.

Exit 0 when every job and deferred rollup is healthy, 1 when any is not (or nothing can
tell: --require-jobs with no job scheduled), 2 on a connection or usage error.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import dict_row
from rich.table import Table

from harness.commands.common import EXIT_FOUND, EXIT_OK, add_dsn, console, open_connection, print_json

HELP = "health of pgtally's jobs and deferred rollups (exit 1 when unhealthy); --json or --prometheus"

METRIC_PREFIX = "pgtally_"


def configure(parser: argparse.ArgumentParser) -> None:
    add_dsn(parser)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="machine-readable output")
    output.add_argument(
        "--prometheus",
        action="store_true",
        help="Prometheus text exposition format (for a textfile collector)",
    )
    parser.add_argument(
        "--require-jobs", action="store_true", help="unhealthy (exit 1) when no job is scheduled at all"
    )


def fetch(conn: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute("SELECT * FROM tally.health()").fetchall())


def _label_value(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(row: dict[str, Any]) -> str:
    return (
        f'rollup="{_label_value(row["rollup_name"] or "*")}",'
        f'job="{_label_value(row["job_name"] or "")}",'
        f'kind="{_label_value(row["job_kind"] or "")}"'
    )


def _seconds(value: datetime | timedelta | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value.timestamp()


METRICS: list[tuple[str, str, str]] = [
    ("healthy", "gauge", "1 when the job (or deferred rollup) is healthy, else 0"),
    ("running", "gauge", "1 while a run of the job holds its lock"),
    ("last_success_timestamp_seconds", "gauge", "end of the job's last successful run (Unix time)"),
    ("last_failure_timestamp_seconds", "gauge", "end of the job's last failed run (Unix time)"),
    ("lag_seconds", "gauge", "seconds since the job's last successful run"),
    ("pending_invalidations", "gauge", "changed groups of the rollup waiting for its refresh"),
    ("dead_letters", "gauge", "buckets of the rollup set aside after failing every attempt"),
]


def _metric_values(row: dict[str, Any]) -> dict[str, float | None]:
    return {
        "healthy": 1.0 if row["healthy"] else 0.0,
        "running": 1.0 if row["running_now"] else 0.0,
        "last_success_timestamp_seconds": _seconds(row["last_success"]),
        "last_failure_timestamp_seconds": _seconds(row["last_failure"]),
        "lag_seconds": _seconds(row["lag"]),
        "pending_invalidations": float(row["pending_invalidations"]),
        "dead_letters": float(row["dead_letters"]),
    }


def prometheus_text(rows: list[dict[str, Any]]) -> str:
    """The rows as Prometheus text: one metric family per measure, one sample per row."""
    lines: list[str] = []
    values = [(_labels(row), _metric_values(row)) for row in rows]
    for name, kind, description in METRICS:
        lines.append(f"# HELP {METRIC_PREFIX}{name} {description}")
        lines.append(f"# TYPE {METRIC_PREFIX}{name} {kind}")
        for labels, measured in values:
            if measured[name] is not None:
                lines.append(f"{METRIC_PREFIX}{name}{{{labels}}} {measured[name]:g}")
    return "\n".join(lines) + "\n"


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="pgtally health")
    for column in (
        "rollup",
        "job",
        "healthy",
        "last success",
        "last failure",
        "lag",
        "pending",
        "dead",
        "problem",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["rollup_name"] or "*",
            row["job_name"] or "-",
            "yes" if row["healthy"] else "[red]NO[/red]",
            str(row["last_success"] or "-"),
            str(row["last_failure"] or "-"),
            str(row["lag"] or "-"),
            str(row["pending_invalidations"]),
            str(row["dead_letters"]),
            row["problem"] or "",
        )
    return table


def run(args: argparse.Namespace) -> int:
    with open_connection(args) as conn:
        rows = fetch(conn)
    unhealthy = [row for row in rows if not row["healthy"]]
    if args.json:
        print_json(rows)
    elif args.prometheus:
        print(prometheus_text(rows), end="")
    elif rows:
        console.print(_table(rows))
    else:
        console.print("no scheduled jobs and no deferred rollups")
    if unhealthy or (args.require_jobs and not rows):
        return EXIT_FOUND
    return EXIT_OK
