"""Memory of one big statement with and without pgtally (issue 4: bounded on 10M rows).

Run:  .venv/bin/python -m bench.memory [--rows 1000000 10000000] [--out bench/MEMORY.md]

Starts a throw-away embedded cluster with the benchmark's server settings, installs
pgtally and builds S1 twice (schema `bench_base`: no maintenance, `bench_tally`: the
per-user and global rollups of bench.run). For every row count it runs, on each copy, one
INSERT ... SELECT of that many generated rows into the empty table and then one DELETE of
all of them, each in a backend of its own, and reports per statement:

- the backend's peak private memory: the largest RssAnon of /proc/<pid>/status, sampled
  every 20 ms while the statement runs (RssAnon leaves out shared buffers, which any big
  write touches whatever maintains it);
- the bytes the statement spilled to temporary files (pg_stat_database.temp_bytes), where
  the transition tables go past work_mem;
- the wall time.

Memory is bounded when the pgtally peak does not grow with the row count: the transition
tables spill to disk, the aggregation holds one entry per group, and the only plpgsql
array holds the keys of groups a statement emptied (10,000 users here). Both copies are
checked against a recomputation after every write; a difference fails the run (exit 1).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.run import (
    S1_ROLLUPS,
    SCHEMA_OF,
    USERS,
    VARIANTS,
    BenchFailure,
    check_exact,
    command_line,
    fresh_schemas,
    publish,
    q,
    start_configured,
    throwaway_cluster,
)
from harness import install

GENERATED_ROWS = """
INSERT INTO {schema}.user_actions (action_id, user_id, emissions_saved_lbs, verified, logged_at)
SELECT md5('action' || i)::uuid,
       md5('user' || ((i * 7919) % {users}))::uuid,
       (((i * 7127) % 1000000)::numeric / 10000)::numeric(30, 6),
       i % 4 <> 0,
       timestamptz '2025-01-01 00:00+00' + i * interval '1 second'
FROM generate_series(1::bigint, {rows}) AS i
"""


@dataclass
class Measurement:
    rows: int
    statement: str
    variant: str
    peak_anon_kb: int
    temp_bytes: int
    seconds: float


def anon_kb(pid: int) -> int:
    """RssAnon of a process in kB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except FileNotFoundError:
        return 0
    return 0


def measured_statement(dsn: str, statement: sql.Composable) -> tuple[int, int, float]:
    """Run one statement in a fresh backend; returns (peak RssAnon kB, temp bytes, seconds)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        temp_before = temp_bytes(conn)
        peak = anon_kb(pid)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, anon_kb(pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        try:
            conn.execute(statement)
        finally:
            seconds = time.perf_counter() - start
            done.set()
            sampler.join()
        conn.execute("SELECT pg_stat_force_next_flush()")
    with psycopg.connect(dsn, autocommit=True) as conn:
        spilled = temp_bytes(conn) - temp_before
    return peak, spilled, seconds


def temp_bytes(conn: psycopg.Connection[Any]) -> int:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    return int(row[0]) if row else 0


def run(args: argparse.Namespace, command: str) -> int:
    results: list[Measurement] = []
    try:
        with throwaway_cluster("pgtally-memory-") as (cluster, _):
            dsn = start_configured(cluster)
            with psycopg.connect(dsn, autocommit=True) as conn:
                install.install(conn)
                work_mem = conn.execute("SHOW work_mem").fetchone()[0]  # type: ignore[index]
                for rows in args.rows:
                    fresh_schemas(conn)
                    for variant in VARIANTS:
                        schema = SCHEMA_OF[variant]
                        statements = {
                            "INSERT ... SELECT": sql.SQL(
                                GENERATED_ROWS.format(schema=schema, users=USERS, rows=rows)
                            ),
                            "DELETE (all rows)": sql.SQL("DELETE FROM {}.user_actions").format(q(schema)),
                        }
                        for name, statement in statements.items():
                            conn.execute("CHECKPOINT")
                            peak, spilled, seconds = measured_statement(dsn, statement)
                            results.append(Measurement(rows, name, variant, peak, spilled, seconds))
                            print(
                                f"{rows:>11,} {name:<18} {variant:<8} peak {peak / 1024:7.1f} MB "
                                f"temp {spilled / 2**20:8.1f} MB {seconds:7.1f} s",
                                file=sys.stderr,
                            )
                            check_exact(conn, S1_ROLLUPS, f"{name} of {rows:,} rows")
                            conn.execute(sql.SQL("VACUUM {}.user_actions").format(q(schema)))
    except BenchFailure as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    publish(report(results, command, work_mem), args.out)
    return 0


def report(results: list[Measurement], command: str, work_mem: str) -> str:
    lines = [
        "# Memory of one big statement (S1, per-user and global rollups)",
        "",
        f"Command: `{command}`; work_mem {work_mem}; server settings of bench.run.",
        "",
        "| rows | statement | variant | backend peak private memory | spilled to temp files | time |",
        "|---|---|---|---|---|---|",
    ]
    for m in results:
        lines.append(
            f"| {m.rows:,} | {m.statement} | {m.variant} | {m.peak_anon_kb / 1024:,.1f} MB "
            f"| {m.temp_bytes / 2**20:,.1f} MB | {m.seconds:.1f} s |"
        )
    lines += [
        "",
        "Peak private memory is the largest RssAnon of the statement's backend (sampled every",
        "20 ms); shared buffers are not in it. Both copies were exact after every statement.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1_000_000, 10_000_000], help="rows per statement"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    return run(args, command_line("bench.memory", argv))


if __name__ == "__main__":
    sys.exit(main())
