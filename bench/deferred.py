"""Deferred versus immediate rollups for a high-volume source (issue 6, S5).

Run:  .venv/bin/python -m bench.deferred [--seconds 10] [--reps 3] [--clients 1 8] [--out bench/DEFERRED.md]

Starts a throw-away embedded cluster, installs pgtally and builds three copies of S5's
append-only `calculation_logs(created_at, locality, duration_ms)`: no maintenance at all
(baseline), an immediate rollup and a deferred rollup (both: count(*) and sum(duration_ms)
per UTC day and locality, 5 localities, so every writer hits one of today's 5 rows). Each
copy takes one-row INSERTs from pgbench (prepared, synchronous_commit on) for a fixed
time; the order of the copies alternates between repetitions. Reported: median TPS and
its ratio to the baseline (write cost), and for the deferred copy its staleness: the
invalidation rows pending after the run and the time one refresh job run takes to apply
them. After every run both rollups are compared with a recomputation from the source
(the deferred one after its refresh); any difference or failed transaction fails the run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.run import DB, BenchFailure, command_line, pgbench, publish, throwaway_cluster
from harness import install

VARIANTS = ("baseline", "immediate", "deferred")

SCHEMA = """
CREATE SCHEMA {schema};
CREATE TABLE {schema}.calculation_logs (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    locality text NOT NULL,
    duration_ms integer NOT NULL
);
"""

ROLLUP = """
SELECT tally.create_rollup('{schema}_daily', source => '{schema}.calculation_logs',
    group_by => ARRAY[$$day = (created_at AT TIME ZONE 'UTC')::date$$, 'locality'],
    measures => ARRAY['calculations = count(*)', 'total_ms = sum(duration_ms)'],
    stats_table => '{schema}.calculation_stats_daily');
"""

INSERT_SCRIPT = """\\set n random(1, 5)
\\set ms random(1, 5000)
INSERT INTO {schema}.calculation_logs (locality, duration_ms)
VALUES ('locality_' || :n, :ms);
"""


@dataclass
class Measured:
    tps: dict[tuple[int, str], list[float]] = field(default_factory=dict)
    pending: dict[int, list[int]] = field(default_factory=dict)
    refresh_ms: dict[int, list[float]] = field(default_factory=dict)


def build(conn: psycopg.Connection[Any]) -> None:
    for variant in VARIANTS:
        conn.execute(SCHEMA.format(schema=variant))
        if variant != "baseline":
            conn.execute(ROLLUP.format(schema=variant))
    options = '{"bucket": "day", "include_current": true}'
    conn.execute("SELECT tally.set_mode('deferred_daily', 'deferred', %s)", (options,))


def assert_exact(conn: psycopg.Connection[Any], rollup: str) -> None:
    row = conn.execute("SELECT in_sync, groups_checked FROM tally.reconcile(%s)", (rollup,)).fetchone()
    if row is None or not row[0]:
        raise BenchFailure(f"{rollup} differs from a recomputation of its source: {row}")


def pending(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM tally.invalidations WHERE rollup_name = 'deferred_daily'"
    ).fetchone()
    return int(row[0]) if row else 0


def refresh(conn: psycopg.Connection[Any]) -> float:
    start = time.perf_counter()
    conn.execute("CALL tally.run_job('deferred_daily', 'refresh')")
    return (time.perf_counter() - start) * 1000


def run(args: argparse.Namespace, command: str) -> int:
    measured = Measured()
    try:
        with throwaway_cluster("pgtally-bench-deferred-") as (cluster, base):
            cluster.start()
            dsn = cluster.ensure_database(DB)
            params = {"host": "127.0.0.1", "port": str(cluster.status().port)}
            with psycopg.connect(dsn, autocommit=True) as conn:
                install.install(conn)
                build(conn)
                for rep in range(args.reps):
                    order = VARIANTS if rep % 2 == 0 else tuple(reversed(VARIANTS))
                    for clients in args.clients:
                        for variant in order:
                            script = base / f"insert_{variant}.sql"
                            script.write_text(INSERT_SCRIPT.format(schema=variant))
                            conn.execute("CHECKPOINT")
                            tps, _ = pgbench(params, script, clients, args.seconds)
                            measured.tps.setdefault((clients, variant), []).append(tps)
                            print(
                                f"rep {rep + 1} clients {clients:>2} {variant:<9} {tps:9.1f} tps",
                                file=sys.stderr,
                            )
                        measured.pending.setdefault(clients, []).append(pending(conn))
                        measured.refresh_ms.setdefault(clients, []).append(refresh(conn))
                        assert_exact(conn, "immediate_daily")
                        assert_exact(conn, "deferred_daily")
                        conn.execute("VACUUM ANALYZE")
    except BenchFailure as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    publish(report(args, measured, command), args.out)
    return 0


def report(args: argparse.Namespace, measured: Measured, command: str) -> str:
    lines = [
        "# Deferred versus immediate rollups (S5 write path)",
        "",
        f"Command: `{command}` ({args.reps} repetitions of {args.seconds} s per variant; medians).",
        "",
        "| clients | baseline TPS | immediate TPS (ratio) | deferred TPS (ratio) "
        "| pending invalidations after the run | one refresh run |",
        "|---|---|---|---|---|---|",
    ]
    for clients in args.clients:
        base = statistics.median(measured.tps[(clients, "baseline")])
        immediate = statistics.median(measured.tps[(clients, "immediate")])
        deferred = statistics.median(measured.tps[(clients, "deferred")])
        lines.append(
            f"| {clients} | {base:,.0f} | {immediate:,.0f} ({immediate / base:.2f}x) "
            f"| {deferred:,.0f} ({deferred / base:.2f}x) "
            f"| {statistics.median(measured.pending[clients]):,.0f} "
            f"| {statistics.median(measured.refresh_ms[clients]):,.0f} ms |"
        )
    lines += [
        "",
        "Every run ended exact: the immediate rollup after each pgbench run, the deferred one",
        "after its refresh (tally.reconcile in sync), and no pgbench transaction failed.",
        "Staleness of the deferred rollup is bounded by the refresh schedule (a minute with",
        "`* * * * *`) plus one refresh run; `tally.read_pending` gives exact-now reads meanwhile.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deferred", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="pgbench duration per variant")
    parser.add_argument("--reps", type=int, default=3, help="repetitions")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="pgbench client counts")
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    return run(args, command_line("bench.deferred", argv))


if __name__ == "__main__":
    sys.exit(main())
