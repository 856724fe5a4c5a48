"""CPU that maintenance adds to each one-row insert, without the client and the commit wait.

Run:  .venv/bin/python -m bench.trigger_cpu [--inserts 20000] [--rounds 3] [--out bench/TRIGGER_CPU.md]

W2 (bench.run) measures one-row inserts through pgbench, where the client's own CPU and,
with one client, the commit's fdatasync weigh as much as the trigger. This isolates the
trigger: a procedure inserts one row per statement in a server-side loop and commits
after each (synchronous_commit off, so nothing waits for the disk), on three copies of
S1 in a throw-away cluster with bench.run's settings:

- baseline: no maintenance;
- pgtally: the per-user and global rollups of bench.run, the global one with 16 slots
  (W2's configuration);
- reference: bench.run's hand-written upsert trigger (not pgtally; the existing user row
  and one of 16 global slot rows, no aggregation, nothing kept for reads but the sums).

Rounds alternate the copies; the report gives the median microseconds per insert and
what each trigger adds to the baseline. pgtally's stats and the reference's sums are
checked against the source at the end; a difference fails the run (exit 1).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.run import (
    S1_ROLLUPS,
    SCHEMA_OF,
    USERS,
    W2_REFERENCES,
    W2_SLOTS,
    BenchFailure,
    check_exact,
    command_line,
    fresh_schemas,
    log,
    publish,
    q,
    s1_schema,
    start_configured,
    throwaway_cluster,
    vacuum,
)
from harness import install

REFERENCE = "bench_upsert_reference"
COPIES = {"baseline": SCHEMA_OF["baseline"], "pgtally": SCHEMA_OF["pgtally"], "reference": REFERENCE}

# One row per statement, committed one by one, with static SQL: the plan is cached as an
# application's prepared INSERT would be. (No SET clause: a procedure with one may not
# COMMIT; every name in it is schema-qualified or in pg_catalog.)
INSERT_LOOP = """
CREATE PROCEDURE {schema}.insert_rows(p_inserts integer)
LANGUAGE plpgsql
AS $$
BEGIN
    FOR i IN 1 .. p_inserts LOOP
        INSERT INTO {schema}.user_actions (action_id, user_id, emissions_saved_lbs, verified, logged_at)
        VALUES (gen_random_uuid(), md5('user' || (i * 7919) % {users})::uuid,
                ((i * 7127) % 1000000)::numeric / 10000, i % 4 <> 0, now());
        COMMIT;
    END LOOP;
END $$;
"""


def build(conn: psycopg.Connection[Any]) -> None:
    fresh_schemas(conn)  # baseline and pgtally copies, with bench.run's rollups
    conn.execute("SELECT tally.set_slots('global_emissions', %s)", (W2_SLOTS,))
    conn.execute("DROP SCHEMA IF EXISTS bench_stage CASCADE")
    conn.execute("CREATE SCHEMA bench_stage")  # the users the reference's rows start with
    conn.execute(
        "CREATE TABLE bench_stage.users AS SELECT md5('user' || n)::uuid AS user_id "
        "FROM generate_series(0, %s) AS n",
        (USERS - 1,),
    )
    s1_schema(conn, REFERENCE)
    conn.execute(W2_REFERENCES["upsert"].format(schema=REFERENCE))  # type: ignore[arg-type]
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER maintain AFTER INSERT ON {0}.user_actions REFERENCING NEW TABLE AS new_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION {0}.maintain()"
        ).format(q(REFERENCE))
    )
    for schema in COPIES.values():
        conn.execute(INSERT_LOOP.format(schema=schema, users=USERS))  # type: ignore[arg-type]
    vacuum(conn)


def check_reference(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute(
        sql.SQL(
            "SELECT (SELECT sum(emissions_saved_lbs) FROM {0}.user_actions WHERE verified) "
            "IS NOT DISTINCT FROM (SELECT sum(emissions) FROM {0}.global_slots) "
            "AND (SELECT count(*) FROM {0}.user_actions WHERE verified) "
            "= (SELECT sum(actions) FROM {0}.user_totals)"
        ).format(q(REFERENCE))
    ).fetchone()
    if row is None or row[0] is not True:
        raise BenchFailure("the reference trigger's sums differ from its source")


def run(args: argparse.Namespace, command: str) -> int:
    micros: dict[str, list[float]] = {name: [] for name in COPIES}
    try:
        with throwaway_cluster("pgtally-trigger-cpu-") as (cluster, _):
            dsn = start_configured(cluster)
            with psycopg.connect(dsn, autocommit=True) as conn:
                install.install(conn)
                build(conn)
                conn.execute("SET synchronous_commit = off")
                for schema in COPIES.values():  # warm-up: caches, plans, the slot rows
                    conn.execute(sql.SQL("CALL {}.insert_rows({})").format(q(schema), args.inserts // 10))
                for round_number in range(1, args.rounds + 1):
                    for name, schema in COPIES.items():
                        start = time.perf_counter()
                        conn.execute(sql.SQL("CALL {}.insert_rows({})").format(q(schema), args.inserts))
                        micros[name].append((time.perf_counter() - start) / args.inserts * 1e6)
                        log(f"round {round_number} {name:<9} {micros[name][-1]:6.1f} us per insert")
                check_exact(conn, S1_ROLLUPS, "the inserts")
                check_reference(conn)
    except BenchFailure as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    publish(report(micros, args, command), args.out)
    return 0


def report(micros: dict[str, list[float]], args: argparse.Namespace, command: str) -> str:
    base = statistics.median(micros["baseline"])
    lines = [
        "# CPU per one-row insert (S1, server-side loop, synchronous_commit off)",
        "",
        f"Command: `{command}`; {args.inserts:,} inserts per copy and round, {args.rounds} round(s), "
        "medians; server settings of bench.run.",
        "",
        "| copy | µs per insert | added to the baseline | per round |",
        "|---|---|---|---|",
    ]
    for name, values in micros.items():
        median = statistics.median(values)
        added = "-" if name == "baseline" else f"+{median - base:.1f} µs"
        lines.append(f"| {name} | {median:.1f} | {added} | {', '.join(f'{v:.1f}' for v in values)} |")
    lines += [
        "",
        "pgtally: per-user and global rollups, the global one with 16 slots; reference: the",
        "hand-written upsert trigger of bench.run (not pgtally). Both were exact at the end.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trigger_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--inserts", type=int, default=20_000, help="inserts per copy and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the three copies")
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    return run(args, command_line("bench.trigger_cpu", argv))


if __name__ == "__main__":
    sys.exit(main())
