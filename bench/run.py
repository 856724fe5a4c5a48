"""The pgtally benchmark (issue 4): W1-W5 and S2, baseline versus pgtally, in one run.

    .venv/bin/python -m bench.run [--quick] [--reps N] [--out bench/RESULTS.md]

Starts its own embedded cluster in a temp directory, installs pgtally into database
`bench`, and for every repetition builds two fresh copies of the S1 schema: schema
`bench_base` (no maintenance at all) and schema `bench_tally` (rollups declared with
tally.create_rollup: per-user sum + count over verified rows, one global sum over
verified rows). Each workload runs on both copies back to back (the order alternates
between repetitions); the table reports medians over the repetitions and the ratio of
the medians (pgtally / baseline for times, pgtally / baseline for TPS).

After every write workload the pgtally stats are compared with
tally.recompute_sql(rollup) (EXCEPT ALL both ways must be empty); any difference, any
failed or aborted pgbench transaction, or any reconcile reporting drift fails the run
(exit 1). Timings are wall-clock seen by the client (autocommit, synchronous_commit on,
fsync on), after a CHECKPOINT, so a checkpoint never lands inside a timed statement.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from harness import install
from harness.cluster import SUPERUSER, EmbeddedCluster, bindir, free_port
from harness.exactness import difference_query

DB = "bench"
USERS = 10_000
BASE = "bench_base"
TALLY = "bench_tally"
VARIANTS = ("baseline", "pgtally")
SCHEMA_OF = {"baseline": BASE, "pgtally": TALLY}
S1_ROLLUPS = ("user_emissions", "global_emissions")
W2_SLOTS = 16  # slots per group in the W2 variant with tally.set_slots
APPEND_COMPACT_SECONDS = 1.0  # W2 in append mode: a compaction folds the pending rows this often
S2_ROLLUPS = ("load_counts",)
STATUSES = ("DRAFT", "MISSING_DATA", "UNMAPPED", "IN_TRANSIT", "DELIVERED")

# Server settings for the run (written with ALTER SYSTEM, then a restart). Durability
# is left as shipped: fsync on, synchronous_commit on.
SERVER_SETTINGS = {
    "shared_buffers": "1GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "autovacuum": "off",  # VACUUM ANALYZE runs between phases, never inside a timed one
}


class BenchFailure(Exception):
    """A variant was inexact, a transaction failed, or the run could not proceed."""


@dataclass(frozen=True)
class Config:
    quick: bool
    reps: int
    rows: int  # W1: rows per INSERT ... SELECT (the table then holds 2 * rows for W3)
    pgbench_seconds: int
    reads: int  # W4: timed reads per query, pgtally
    baseline_reads: int  # W4: timed reads per query, baseline (each is a scan)
    reconciles: int  # W5: timed runs per rep
    s2_rows: int

    @classmethod
    def make(cls, quick: bool, reps: int | None) -> Config:
        if quick:
            return cls(True, reps or 1, 50_000, 3, 100, 3, 1, 50_000)
        return cls(False, reps or 3, 1_000_000, 15, 500, 5, 3, 1_000_000)


@dataclass(frozen=True)
class Metric:
    key: str
    workload: str
    unit: str  # "s", "tps" or "ms"
    target: str
    # judge(baseline_median, pgtally_median, ratio) -> met?; None: informative only
    judge: Callable[[float, float, float], bool] | None = None


def _ratio_at_most(limit: float) -> Callable[[float, float, float], bool]:
    return lambda _b, _p, ratio: ratio <= limit


def _ratio_at_least(limit: float) -> Callable[[float, float, float], bool]:
    return lambda _b, _p, ratio: ratio >= limit


def _latency_at_most(limit_ms: float) -> Callable[[float, float, float], bool]:
    return lambda _b, pgtally, _r: pgtally <= limit_ms


def metrics(cfg: Config) -> list[Metric]:
    n = f"{cfg.rows:,}"
    total = f"{2 * cfg.rows:,}"
    return [
        Metric("w1_empty", f"W1 INSERT ... SELECT {n} rows into an empty table", "s", "<= 1.10x",
               _ratio_at_most(1.10)),
        Metric("w1_full", f"W1 INSERT ... SELECT {n} rows into a table with {n} rows", "s", "<= 1.10x",
               _ratio_at_most(1.10)),
        Metric("w1_empty_floor", "W1 into an empty table, floor (not pgtally): a statement-level trigger "
               "with a transition table that does nothing", "s", "n/a"),
        Metric("w2_c1", "W2 pgbench one-row inserts, 1 client (TPS), one row per group", "tps",
               "n/a (default)"),
        Metric("w2_c16", "W2 pgbench one-row inserts, 16 clients (TPS), one row per group", "tps",
               "n/a (default)"),
        Metric("w2_c1_append", "W2 1 client, rollups in append mode (tally.set_mode), compacted every "
               f"{APPEND_COMPACT_SECONDS:g} s during the run", "tps", ">= 0.80x", _ratio_at_least(0.80)),
        Metric("w2_c16_append", "W2 16 clients, rollups in append mode, compacted every "
               f"{APPEND_COMPACT_SECONDS:g} s during the run", "tps", ">= 0.75x", _ratio_at_least(0.75)),
        Metric("w2_c1_slots", f"W2 1 client, rollups with {W2_SLOTS} slots (tally.set_slots)", "tps", "n/a"),
        Metric("w2_c16_slots", f"W2 16 clients, rollups with {W2_SLOTS} slots (tally.set_slots)", "tps",
               "n/a"),
        Metric("w2_c1_append_floor", "W2 1 client, reference (not pgtally): a hand-written trigger that "
               "only appends each row to unindexed delta tables", "tps", "n/a"),
        Metric("w2_c16_append_floor", "W2 16 clients, the same append-only reference trigger", "tps", "n/a"),
        Metric("w2_c1_upsert_floor", "W2 1 client, reference (not pgtally): a hand-written trigger that "
               "upserts the user row and a per-backend global slot row, no aggregation", "tps", "n/a"),
        Metric("w2_c16_upsert_floor", "W2 16 clients, the same upsert reference trigger", "tps", "n/a"),
        Metric("w2_c1_empty_floor", "W2 1 client, floor (not pgtally): a statement-level trigger with a "
               "transition table and a pinned search_path that does nothing", "tps", "n/a"),
        Metric("w2_c16_empty_floor", "W2 16 clients, the same trigger that does nothing", "tps", "n/a"),
        Metric("w4_group_append", "W4 read one group through the view in append mode (after a compaction)",
               "ms", "<= 0.15 ms", _latency_at_most(0.15)),
        Metric("w4_global_append", "W4 read the global total through the view in append mode (after a "
               "compaction)", "ms", "<= 0.15 ms", _latency_at_most(0.15)),
        Metric("w4_group_slots", f"W4 read one group through the view over {W2_SLOTS} slots", "ms",
               "<= 0.15 ms", _latency_at_most(0.15)),
        Metric("w4_global_slots", f"W4 read the global total through the view over {W2_SLOTS} slots", "ms",
               "<= 0.15 ms", _latency_at_most(0.15)),
        Metric("w3_update", f"W3 UPDATE amount of 10% of {total} rows", "s", "<= 1.30x",
               _ratio_at_most(1.30)),
        Metric("w3_move", f"W3 UPDATE moving user_id of 10% of {total} rows", "s", "<= 1.30x",
               _ratio_at_most(1.30)),
        Metric("w3_delete", f"W3 DELETE 10% of {total} rows", "s", "<= 1.40x", _ratio_at_most(1.40)),
        Metric("w3_delete_reference", "W3 DELETE, reference (not pgtally): a hand-written trigger that "
               "aggregates the old rows and updates the existing user and global rows", "s", "n/a"),
        Metric("w3_delete_floor_empty", "W3 DELETE, floor (not pgtally): a statement-level trigger with a "
               "transition table that does nothing", "s", "n/a"),
        Metric("w3_delete_floor_aggregate", "W3 DELETE, floor (not pgtally): a trigger that reads and "
               "aggregates the old rows as pgtally does and writes nothing", "s", "n/a"),
        Metric("w4_group", "W4 read one group (baseline: GROUP BY source)", "ms", "<= 0.15 ms",
               _latency_at_most(0.15)),
        Metric("w4_global", "W4 read the global row (baseline: sum over source)", "ms", "<= 0.15 ms",
               _latency_at_most(0.15)),
        Metric("w4_top10", "W4 read top-10 (baseline: GROUP BY + sort)", "ms", "<= 0.3 ms",
               _latency_at_most(0.30)),
        Metric("w4_floor", "W4 round-trip floor: SELECT 1 (same client, informative)", "ms", "n/a"),
        Metric("w5_reconcile", "W5 tally.reconcile of both S1 rollups vs bare GROUP BY recompute", "s",
               "<= 1.2x", _ratio_at_most(1.20)),
        Metric("s2_move", f"S2 bulk status move of 10% of {cfg.s2_rows:,} loads", "s", "n/a"),
    ]  # fmt: skip


@dataclass
class Results:
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, key: str, variant: str, value: float) -> None:
        self.values.setdefault(key, {v: [] for v in VARIANTS})[variant].append(value)


# --------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def q(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def timed(conn: psycopg.Connection[Any], statement: sql.Composable | str) -> float:
    """Seconds the client waits for one autocommitted statement, after a CHECKPOINT."""
    conn.execute("CHECKPOINT")
    start = time.perf_counter()
    conn.execute(statement)  # type: ignore[arg-type]
    return time.perf_counter() - start


def vacuum(conn: psycopg.Connection[Any]) -> None:
    conn.execute("VACUUM (ANALYZE)")


def differences(conn: psycopg.Connection[Any], rollup: str) -> list[tuple[Any, ...]]:
    """Stats rows missing from the recomputation and the other way round (multisets)."""
    try:
        query = difference_query(conn, rollup)
    except LookupError as exc:
        raise BenchFailure(str(exc)) from exc
    return conn.execute(sql.SQL("{} LIMIT 20").format(query)).fetchall()


def check_exact(conn: psycopg.Connection[Any], rollups: tuple[str, ...], after: str) -> None:
    for rollup in rollups:
        diff = differences(conn, rollup)
        if diff:
            raise BenchFailure(
                f"INEXACT: rollup {rollup} differs from tally.recompute_sql after {after}; "
                f"first differences: {diff[:10]}"
            )


# --------------------------------------------------------------------------- schema and data


def build_stage(conn: psycopg.Connection[Any], cfg: Config) -> None:
    """2 * rows generated S1 rows and the 10k users, once per run (not timed)."""
    conn.execute("DROP SCHEMA IF EXISTS bench_stage CASCADE")
    conn.execute("CREATE SCHEMA bench_stage")
    conn.execute(
        "CREATE TABLE bench_stage.users AS "
        "SELECT n, md5('user' || n)::uuid AS user_id FROM generate_series(0, %s) AS n",
        (USERS - 1,),
    )
    conn.execute("ALTER TABLE bench_stage.users ADD PRIMARY KEY (n)")
    conn.execute("CREATE UNIQUE INDEX ON bench_stage.users (user_id)")
    conn.execute(
        """
        CREATE TABLE bench_stage.actions AS
        SELECT i,
               md5('action' || i)::uuid AS action_id,
               md5('user' || ((i::bigint * 7919) %% %(users)s))::uuid AS user_id,
               (((i::bigint * 7127) %% 1000000)::numeric / 10000)::numeric(30, 6) AS emissions_saved_lbs,
               (i %% 4 <> 0) AS verified,
               timestamptz '2025-01-01 00:00+00' + i * interval '1 second' AS logged_at
        FROM generate_series(1, %(n)s) AS i
        """.replace("%(users)s", str(USERS)),
        {"n": 2 * cfg.rows},
    )
    conn.execute("ALTER TABLE bench_stage.actions ADD PRIMARY KEY (i)")


S1_TABLE = """
CREATE TABLE {schema}.user_actions (
    action_id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    emissions_saved_lbs numeric(30, 6) NOT NULL,
    verified boolean DEFAULT false,
    logged_at timestamptz NOT NULL,
    created_at timestamptz DEFAULT now(),
    metadata jsonb DEFAULT '{{}}'
)
"""

S2_TABLE = "CREATE TABLE {schema}.loads (id bigserial PRIMARY KEY, org_id int NOT NULL, status text NOT NULL)"


def s1_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    """Schema `schema`, made afresh, holding S1's user_actions table, empty."""
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(q(schema)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(q(schema)))
    conn.execute(S1_TABLE.format(schema=schema))  # type: ignore[arg-type]


def fresh_schemas(conn: psycopg.Connection[Any]) -> None:
    """Drop every rollup and both schemas, then create S1 and S2 in each, empty."""
    conn.execute("SELECT tally.drop_rollup(rollup_name) FROM tally.rollups")
    for variant in VARIANTS:
        schema = SCHEMA_OF[variant]
        s1_schema(conn, schema)
        conn.execute(S2_TABLE.format(schema=schema))  # type: ignore[arg-type]
    conn.execute(
        f"""
        SELECT tally.create_rollup('user_emissions', source => '{TALLY}.user_actions',
            group_by => ARRAY['user_id'],
            measures => ARRAY['total_emissions_lbs = sum(emissions_saved_lbs)', 'action_count = count(*)'],
            filter => 'verified');
        SELECT tally.create_rollup('global_emissions', source => '{TALLY}.user_actions',
            measures => ARRAY['total_lbs_saved = sum(emissions_saved_lbs)'], filter => 'verified');
        SELECT tally.create_rollup('load_counts', source => '{TALLY}.loads',
            group_by => ARRAY['org_id', 'status'], measures => ARRAY['n = count(*)']);
        """  # type: ignore[arg-type]
    )


def insert_stage_sql(schema: str, first: int, last: int) -> sql.Composed:
    return sql.SQL(
        "INSERT INTO {}.user_actions (action_id, user_id, emissions_saved_lbs, verified, logged_at) "
        "SELECT action_id, user_id, emissions_saved_lbs, verified, logged_at "
        "FROM bench_stage.actions WHERE i BETWEEN {} AND {}"
    ).format(q(schema), sql.Literal(first), sql.Literal(last))


def range_condition(cfg: Config, part: int) -> sql.Composed:
    """The part-th tenth (0-based) of the 2 * rows actions, by logged_at (one seq scan)."""
    tenth = (2 * cfg.rows) // 10
    start = part * tenth + 1
    return sql.SQL(
        "logged_at >= timestamptz '2025-01-01 00:00+00' + {} * interval '1 second' "
        "AND logged_at < timestamptz '2025-01-01 00:00+00' + {} * interval '1 second'"
    ).format(sql.Literal(start), sql.Literal(start + tenth))


# --------------------------------------------------------------------------- workloads


def write_phase(
    conn: psycopg.Connection[Any],
    results: Results,
    key: str,
    order: tuple[str, ...],
    statement: Callable[[str], sql.Composable],
    rollups: tuple[str, ...],
) -> None:
    for variant in order:
        seconds = timed(conn, statement(SCHEMA_OF[variant]))
        results.add(key, variant, seconds)
        log(f"  {key:<12} {variant:<8} {seconds:8.3f} s")
    check_exact(conn, rollups, key)
    vacuum(conn)


def run_w1_w3(conn: psycopg.Connection[Any], cfg: Config, results: Results, order: tuple[str, ...]) -> None:
    n = cfg.rows
    write_phase(conn, results, "w1_empty", order, lambda s: insert_stage_sql(s, 1, n), S1_ROLLUPS)
    results.add("w1_empty_floor", "baseline", results.values["w1_empty"]["baseline"][-1])
    results.add("w1_empty_floor", "pgtally", run_w1_floor(conn, n))
    write_phase(conn, results, "w1_full", order, lambda s: insert_stage_sql(s, n + 1, 2 * n), S1_ROLLUPS)
    write_phase(
        conn, results, "w3_update", order,
        lambda s: sql.SQL("UPDATE {}.user_actions SET emissions_saved_lbs = emissions_saved_lbs + 1.5 "
                          "WHERE {}").format(q(s), range_condition(cfg, 0)),
        S1_ROLLUPS,
    )  # fmt: skip
    write_phase(
        conn, results, "w3_move", order,
        lambda s: sql.SQL(
            "UPDATE {}.user_actions AS a SET user_id = u2.user_id "
            "FROM bench_stage.users AS u1 JOIN bench_stage.users AS u2 ON u2.n = (u1.n + 1) % {} "
            "WHERE a.user_id = u1.user_id AND {}"
        ).format(q(s), sql.Literal(USERS), range_condition(cfg, 1)),
        S1_ROLLUPS,
    )  # fmt: skip
    delete = lambda s: sql.SQL("DELETE FROM {}.user_actions WHERE {}").format(q(s), range_condition(cfg, 2))  # noqa: E731
    references = run_w3_delete_reference(conn, delete)
    write_phase(conn, results, "w3_delete", order, delete, S1_ROLLUPS)
    for key, name in (
        ("w3_delete_reference", "reference"),
        ("w3_delete_floor_empty", "empty"),
        ("w3_delete_floor_aggregate", "aggregate"),
    ):
        results.add(key, "baseline", results.values["w3_delete"]["baseline"][-1])
        results.add(key, "pgtally", references[name])
    # Both copies went through the same statements: their sources must be equal.
    sums = [
        conn.execute(
            sql.SQL(
                "SELECT count(*), sum(emissions_saved_lbs), sum(hashtext(user_id::text)::bigint) "
                "FROM {}.user_actions"
            ).format(q(SCHEMA_OF[v]))
        ).fetchone()
        for v in VARIANTS
    ]
    if sums[0] != sums[1]:
        raise BenchFailure(f"baseline and pgtally sources differ after W1/W3: {sums}")


# A hand-written statement-level DELETE trigger doing the least any trigger-maintained
# rollup must: aggregate the old rows per user and subtract them from the existing user
# rows and the global row. A reference (not pgtally) for what W3 DELETE can cost here.
DELETE_REFERENCE = """
CREATE TABLE {schema}.user_totals (user_id uuid PRIMARY KEY, emissions numeric(30, 6),
                                   actions bigint NOT NULL);
INSERT INTO {schema}.user_totals
SELECT user_id, sum(emissions_saved_lbs), count(*) FROM {schema}.user_actions WHERE verified GROUP BY user_id;
CREATE TABLE {schema}.global_total (emissions numeric(30, 6), actions bigint NOT NULL);
INSERT INTO {schema}.global_total
SELECT sum(emissions_saved_lbs), count(*) FROM {schema}.user_actions WHERE verified;
CREATE FUNCTION {schema}.maintain() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    WITH changes AS (
        SELECT o.user_id, sum(o.emissions_saved_lbs) AS emissions, count(*) AS actions
        FROM old_rows AS o WHERE o.verified GROUP BY o.user_id
    ),
    global_change AS (
        UPDATE {schema}.global_total AS t
        SET emissions = t.emissions - c.emissions, actions = t.actions - c.actions
        FROM (SELECT sum(emissions) AS emissions, sum(actions) AS actions FROM changes) AS c
    )
    UPDATE {schema}.user_totals AS u
    SET emissions = u.emissions - c.emissions, actions = u.actions - c.actions
    FROM changes AS c WHERE u.user_id = c.user_id;
    RETURN NULL;
END $$;
CREATE TRIGGER maintain AFTER DELETE ON {schema}.user_actions REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION {schema}.maintain();
"""


def create_floor_trigger(conn: psycopg.Connection[Any], schema: str, event: str, body: str) -> None:
    """A statement-level trigger floor_trigger on schema.user_actions for event ('INSERT' or
    'DELETE'), with a transition table, running plpgsql `body` (not pgtally)."""
    transition = "NEW TABLE AS new_rows" if event == "INSERT" else "OLD TABLE AS old_rows"
    conn.execute(
        sql.SQL(
            "CREATE FUNCTION {0}.floor_trigger() RETURNS trigger LANGUAGE plpgsql "
            "SET search_path = pg_catalog, pg_temp AS {1}; "
            "CREATE TRIGGER floor_trigger AFTER {2} ON {0}.user_actions REFERENCING {3} "
            "FOR EACH STATEMENT EXECUTE FUNCTION {0}.floor_trigger()"
        ).format(
            q(schema), sql.Literal(f"BEGIN\n    {body.strip()}\nEND"), sql.SQL(event), sql.SQL(transition)
        )
    )


def run_w1_floor(conn: psycopg.Connection[Any], n: int) -> float:
    """Seconds of W1's insert into an empty table under a trigger that does nothing."""
    schema = "bench_insert_floor"
    s1_schema(conn, schema)
    create_floor_trigger(conn, schema, "INSERT", "RETURN NULL;")
    seconds = timed(conn, insert_stage_sql(schema, 1, n))
    log(f"  {'w1_empty':<12} {'floor':<8} {seconds:8.3f} s")
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(q(schema)))
    return seconds


# What any statement-level trigger pays for W3's DELETE before it writes a stats row: each
# runs the DELETE on the reference's copy, rolled back, before the reference's own.
DELETE_FLOORS = {
    "empty": "RETURN NULL;",
    "aggregate": """
    -- pgtally's one pass over the old rows (both rollups' grouping sets); nothing is written
    PERFORM count(*) FROM (
        SELECT o.user_id, count(*), sum(o.emissions_saved_lbs)
        FROM old_rows AS o WHERE o.verified
        GROUP BY GROUPING SETS ((), (o.user_id))
    ) AS changes;
    RETURN NULL;""",
}


def run_w3_delete_reference(
    conn: psycopg.Connection[Any], delete: Callable[[str], sql.Composable]
) -> dict[str, float]:
    """Seconds of W3's DELETE on a copy of the baseline table under DELETE_REFERENCE's trigger
    ("reference") and, rolled back, under each of DELETE_FLOORS' triggers."""
    schema = "bench_delete_ref"
    s1_schema(conn, schema)
    conn.execute(
        sql.SQL("INSERT INTO {}.user_actions SELECT * FROM {}.user_actions").format(q(schema), q(BASE))
    )
    vacuum(conn)
    measured = {}
    for name, body in DELETE_FLOORS.items():
        create_floor_trigger(conn, schema, "DELETE", body)
        conn.execute("CHECKPOINT")
        with conn.transaction(force_rollback=True):
            start = time.perf_counter()
            conn.execute(delete(schema))  # type: ignore[arg-type]
            measured[name] = time.perf_counter() - start
        log(f"  {'w3_delete':<12} {name:<8} {measured[name]:8.3f} s")
        conn.execute(sql.SQL("DROP FUNCTION {}.floor_trigger() CASCADE").format(q(schema)))
        vacuum(conn)
    conn.execute(DELETE_REFERENCE.format(schema=schema))  # type: ignore[arg-type]
    vacuum(conn)
    measured["reference"] = seconds = timed(conn, delete(schema))
    log(f"  {'w3_delete':<12} {'ref':<8} {seconds:8.3f} s")
    total = conn.execute(
        sql.SQL(
            "SELECT g.emissions = (SELECT sum(emissions_saved_lbs) FROM {0}.user_actions WHERE verified) "
            "AND g.emissions = (SELECT sum(emissions) FROM {0}.user_totals) FROM {0}.global_total AS g"
        ).format(q(schema))
    ).fetchone()
    if total is None or total[0] is not True:
        raise BenchFailure("the W3 DELETE reference trigger's totals are wrong")
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(q(schema)))
    return measured


PGBENCH_SCRIPT = """\\set u random(0, {last_user})
\\set a random(1, 100000000)
\\set v random(0, 3)
INSERT INTO {schema}.user_actions (action_id, user_id, emissions_saved_lbs, verified, logged_at)
VALUES (gen_random_uuid(), md5('user' || :u)::uuid, :a / 1000000.0, :v <> 0, now());
"""


def pgbench(dsn_params: dict[str, str], script: Path, clients: int, seconds: int) -> tuple[float, str]:
    """Run pgbench; returns (tps, output). Any failed or aborted transaction is fatal."""
    argv = [
        str(bindir() / "pgbench"),
        "-n", "-M", "prepared",
        "-c", str(clients), "-j", str(min(clients, 2)),
        "-T", str(seconds),
        "-f", str(script),
        "-h", dsn_params["host"], "-p", dsn_params["port"], "-U", SUPERUSER,
        DB,
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    failed = re.search(r"number of failed transactions: (\d+)", output)
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)
    problems = []
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}")
    if re.search(r"aborted|error", output, re.IGNORECASE):
        problems.append("aborted client or error in output")
    if failed is None or int(failed.group(1)) != 0:
        problems.append(f"failed transactions: {failed.group(1) if failed else 'not reported'}")
    if tps is None:
        problems.append("no tps reported")
    if problems:
        raise BenchFailure(f"pgbench {' '.join(argv)}: {'; '.join(problems)}\n{output}")
    assert tps is not None
    return float(tps.group(1)), output


def run_w2(
    conn: psycopg.Connection[Any],
    cfg: Config,
    results: Results,
    order: tuple[str, ...],
    workdir: Path,
    dsn_params: dict[str, str],
) -> None:
    for clients, key in ((1, "w2_c1"), (16, "w2_c16")):
        for variant in order:
            script = workdir / f"insert_{variant}.sql"
            script.write_text(PGBENCH_SCRIPT.format(last_user=USERS - 1, schema=SCHEMA_OF[variant]))
            conn.execute("CHECKPOINT")
            tps, _ = pgbench(dsn_params, script, clients, cfg.pgbench_seconds)
            results.add(key, variant, tps)
            log(f"  {key:<12} {variant:<8} {tps:8.1f} tps")
        check_exact(conn, S1_ROLLUPS, key)
        vacuum(conn)

    # The same inserts with both rollups spread over slots (hot groups without a hot row),
    # then in append mode with a compaction every second meanwhile, each against the
    # baseline measured just above in this repetition.
    users = [r[0] for r in conn.execute("SELECT user_id FROM bench_stage.users ORDER BY n")]
    run_w2_hot_groups(
        conn,
        cfg,
        results,
        order,
        workdir,
        dsn_params,
        users,
        "slots",
        sql.SQL("SELECT tally.set_slots(r, {}) FROM unnest(%s::text[]) AS r").format(W2_SLOTS),
        sql.SQL("SELECT tally.set_slots(r, 1) FROM unnest(%s::text[]) AS r"),
        compact_every=None,
    )
    run_w2_hot_groups(
        conn,
        cfg,
        results,
        order,
        workdir,
        dsn_params,
        users,
        "append",
        sql.SQL("SELECT tally.set_mode(r, 'append') FROM unnest(%s::text[]) AS r"),
        sql.SQL("SELECT tally.set_mode(r, 'immediate') FROM unnest(%s::text[]) AS r"),
        compact_every=APPEND_COMPACT_SECONDS,
    )


def read_through_view(
    conn: psycopg.Connection[Any],
    cfg: Config,
    results: Results,
    order: tuple[str, ...],
    users: list[uuid.UUID],
    layout: str,
) -> None:
    """W4's one-group and global reads while the stats are a view (slots or append mode),
    recorded as w4_group_<layout> and w4_global_<layout>."""
    for key in ("w4_group", "w4_global"):
        tally_query, base_query = READS[key]
        for variant in order:
            if variant == "pgtally":
                ms = read_latency(conn, tally_query, cfg.reads, users)
            else:
                ms = read_latency(conn, base_query, cfg.baseline_reads, users)
            results.add(f"{key}_{layout}", variant, ms)
            log(f"  {key + '_' + layout:<12} {variant:<8} {ms:8.3f} ms")


@contextmanager
def compacting(dsn: str, rollups: tuple[str, ...], every_seconds: float) -> Iterator[list[int]]:
    """A second connection that runs tally.compact on the rollups every `every_seconds`
    while the block runs, as a scheduled compact job would; yields the list of rows each
    round folded (filled in as it goes). A failed compaction fails the run."""
    folded: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def loop() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as compactor:
                while not stop.wait(every_seconds):
                    row = compactor.execute(
                        "SELECT sum(tally.compact(r))::bigint FROM unnest(%s::text[]) AS r", (list(rollups),)
                    ).fetchone()
                    folded.append(int(row[0]) if row and row[0] is not None else 0)
        except BaseException as error:  # reported by the caller's thread
            failures.append(error)

    thread = threading.Thread(target=loop, name="compact", daemon=True)
    thread.start()
    try:
        yield folded
    finally:
        stop.set()
        thread.join()
    if failures:
        raise BenchFailure(f"compaction during the run failed: {failures[0]!r}")


def run_w2_hot_groups(
    conn: psycopg.Connection[Any],
    cfg: Config,
    results: Results,
    order: tuple[str, ...],
    workdir: Path,
    dsn_params: dict[str, str],
    users: list[uuid.UUID],
    layout: str,
    enter: sql.Composable,
    leave: sql.Composable,
    compact_every: float | None,
) -> None:
    """W2's inserts with both rollups in a hot-group layout (`enter`, given the rollup names;
    rows w2_c1_<layout> and w2_c16_<layout>), a compaction every `compact_every` seconds
    meanwhile if given; then the reads through the view after a compaction, and back with
    `leave` (which folds the rest); every variant is checked exact.

    Each pgtally run is paired with a baseline run of the same length right next to it (in
    this rep's `order`), and its ratio is to that one: the pair sees the same state of the
    machine, and both sources grow by one run each, so neither inserts into a bigger table
    than the other because of the layouts measured before it."""
    rollups = (list(S1_ROLLUPS),)
    conn.execute(enter, rollups)
    vacuum(conn)
    scripts = {variant: workdir / f"insert_{variant}_{layout}.sql" for variant in VARIANTS}
    for variant, script in scripts.items():
        script.write_text(PGBENCH_SCRIPT.format(last_user=USERS - 1, schema=SCHEMA_OF[variant]))
    for clients, key in ((1, "w2_c1"), (16, "w2_c16")):
        for variant in order:
            conn.execute("CHECKPOINT")
            with (
                compacting(conn.info.dsn, S1_ROLLUPS, compact_every)
                if compact_every and variant == "pgtally"
                else nullcontext([]) as folded
            ):
                tps, _ = pgbench(dsn_params, scripts[variant], clients, cfg.pgbench_seconds)
            results.add(f"{key}_{layout}", variant, tps)
            compactions = f" ({len(folded)} compactions, {sum(folded):,} rows folded)" if folded else ""
            log(f"  {key + '_' + layout:<12} {variant:<8} {tps:8.1f} tps{compactions}")
        check_exact(conn, S1_ROLLUPS, f"{key}_{layout}")
    conn.execute("SELECT tally.compact(r) FROM unnest(%s::text[]) AS r", rollups)
    vacuum(conn)
    read_through_view(conn, cfg, results, order, users, layout)
    conn.execute(leave, rollups)
    check_exact(conn, S1_ROLLUPS, f"w2 {layout} folded back")
    vacuum(conn)


# Two hand-written triggers that bound what any trigger-maintained rollup can cost on
# one-row inserts (W2). They are references, not pgtally: "append" is the least work a
# statement trigger can do (each row's values appended to a delta table per rollup, no
# index, no aggregation, no fold, nothing that reads the deltas); "upsert" adds each row
# straight into its (existing) user row and into one of 16 global slot rows (what a
# one-row fast path could run, no aggregation).
W2_REFERENCES = {
    "append": """
CREATE TABLE {schema}.user_deltas (user_id uuid NOT NULL, emissions numeric(30, 6) NOT NULL);
CREATE TABLE {schema}.global_deltas (emissions numeric(30, 6) NOT NULL);
CREATE FUNCTION {schema}.maintain() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    WITH global_delta AS (
        INSERT INTO {schema}.global_deltas SELECT n.emissions_saved_lbs FROM new_rows AS n WHERE n.verified
    )
    INSERT INTO {schema}.user_deltas
    SELECT n.user_id, n.emissions_saved_lbs FROM new_rows AS n WHERE n.verified;
    RETURN NULL;
END $$;
""",
    "empty": """
CREATE FUNCTION {schema}.maintain() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN NULL;  -- the least a statement-level trigger with a transition table costs
END $$;
""",
    "upsert": """
CREATE TABLE {schema}.user_totals (user_id uuid PRIMARY KEY, emissions numeric(30, 6) NOT NULL,
                                   actions bigint NOT NULL);
CREATE TABLE {schema}.global_slots (slot integer PRIMARY KEY, emissions numeric(30, 6) NOT NULL);
-- every row exists already, as pgtally's stats rows do when W2 runs: each upsert updates
INSERT INTO {schema}.user_totals SELECT user_id, 0, 0 FROM bench_stage.users;
INSERT INTO {schema}.global_slots SELECT slot, 0 FROM generate_series(1, 16) AS slot;
CREATE FUNCTION {schema}.maintain() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    WITH global_delta AS (
        INSERT INTO {schema}.global_slots AS g
        SELECT 1 + pg_backend_pid() % 16, n.emissions_saved_lbs FROM new_rows AS n WHERE n.verified
        ON CONFLICT (slot) DO UPDATE SET emissions = g.emissions + excluded.emissions
    )
    INSERT INTO {schema}.user_totals AS u
    SELECT n.user_id, n.emissions_saved_lbs, 1 FROM new_rows AS n WHERE n.verified
    ON CONFLICT (user_id) DO UPDATE SET emissions = u.emissions + excluded.emissions, actions = u.actions + 1;
    RETURN NULL;
END $$;
""",
}


def run_w2_references(
    conn: psycopg.Connection[Any], cfg: Config, results: Results, workdir: Path, dsn_params: dict[str, str]
) -> None:
    """W2's one-row inserts against the reference triggers, each on a copy of the baseline
    table (so it inserts into a table as big as the measured ones, not an empty one), ratios
    to the last baseline run of this rep with the same number of clients."""
    seconds = max(cfg.pgbench_seconds // 2, 1)
    source = "bench_w2_ref"
    s1_schema(conn, source)
    conn.execute(
        sql.SQL("INSERT INTO {}.user_actions SELECT * FROM {}.user_actions").format(q(source), q(BASE))
    )
    script = workdir / "insert_reference.sql"
    script.write_text(PGBENCH_SCRIPT.format(last_user=USERS - 1, schema=source))
    for name, ddl in W2_REFERENCES.items():
        schema = f"bench_{name}_floor"  # the reference's own tables and trigger function
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(q(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(q(schema)))
        conn.execute(ddl.format(schema=schema))  # type: ignore[arg-type]
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER maintain AFTER INSERT ON {}.user_actions REFERENCING NEW TABLE AS new_rows "
                "FOR EACH STATEMENT EXECUTE FUNCTION {}.maintain()"
            ).format(q(source), q(schema))
        )
        vacuum(conn)
        for clients, key in ((1, "w2_c1"), (16, "w2_c16")):
            conn.execute("CHECKPOINT")
            tps, _ = pgbench(dsn_params, script, clients, seconds)
            results.add(f"{key}_{name}_floor", "baseline", results.values[f"{key}_append"]["baseline"][-1])
            results.add(f"{key}_{name}_floor", "pgtally", tps)
            log(f"  {key + '_' + name:<12} {'ref':<8} {tps:8.1f} tps")
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(q(schema)))  # with the trigger
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(q(source)))


READS = {
    "w4_group": (
        "SELECT total_emissions_lbs, action_count FROM bench_tally.user_emissions WHERE user_id = %s",
        "SELECT sum(emissions_saved_lbs), count(*) FROM bench_base.user_actions "
        "WHERE verified AND user_id = %s",
    ),
    "w4_global": (
        "SELECT total_lbs_saved FROM bench_tally.global_emissions",
        "SELECT sum(emissions_saved_lbs) FROM bench_base.user_actions WHERE verified",
    ),
    "w4_top10": (
        "SELECT user_id, total_emissions_lbs FROM bench_tally.user_emissions "
        "ORDER BY total_emissions_lbs DESC, user_id LIMIT 10",
        "SELECT user_id, sum(emissions_saved_lbs) AS total_emissions_lbs FROM bench_base.user_actions "
        "WHERE verified GROUP BY user_id ORDER BY total_emissions_lbs DESC, user_id LIMIT 10",
    ),
}


def read_latency(conn: psycopg.Connection[Any], query: str, runs: int, users: list[uuid.UUID]) -> float:
    """Median client round-trip in ms of a prepared read (warm-up runs not counted)."""
    rng = random.Random(4)
    takes_user = "%s" in query
    samples = []
    for i in range(runs + max(3, runs // 10)):
        params = (rng.choice(users),) if takes_user else None
        start = time.perf_counter()
        conn.execute(query, params, prepare=True).fetchall()  # type: ignore[arg-type]
        if i >= max(3, runs // 10):
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def run_w4(conn: psycopg.Connection[Any], cfg: Config, results: Results, order: tuple[str, ...]) -> None:
    conn.execute(
        "CREATE INDEX IF NOT EXISTS user_emissions_top ON bench_tally.user_emissions "
        "(total_emissions_lbs DESC, user_id)"
    )
    vacuum(conn)
    users = [r[0] for r in conn.execute("SELECT user_id FROM bench_stage.users ORDER BY n")]
    for key, (tally_query, base_query) in READS.items():
        for variant in order:
            if variant == "pgtally":
                ms = read_latency(conn, tally_query, cfg.reads, users)
            else:
                ms = read_latency(conn, base_query, cfg.baseline_reads, users)
            results.add(key, variant, ms)
            log(f"  {key:<12} {variant:<8} {ms:8.3f} ms")
    for variant in order:  # what any read costs this client: the latencies above include it
        results.add("w4_floor", variant, read_latency(conn, "SELECT 1", cfg.reads, users))
    # the top-10 read through the stats equals the one computed from the source
    top_stats = conn.execute(READS["w4_top10"][0]).fetchall()
    top_source = conn.execute(READS["w4_top10"][1].replace("bench_base", "bench_tally")).fetchall()
    if top_stats != top_source:
        raise BenchFailure(f"INEXACT: top-10 from stats {top_stats} != from source {top_source}")


def run_w5(conn: psycopg.Connection[Any], cfg: Config, results: Results) -> None:
    """tally.reconcile (set-based compare + logging) vs the bare GROUP BY it must do anyway."""
    recompute = [conn.execute("SELECT tally.recompute_sql(%s)", (r,)).fetchone()[0] for r in S1_ROLLUPS]  # type: ignore[index]
    for rollup in S1_ROLLUPS:  # warm-up, not timed: plpgsql compiles on the first call
        conn.execute("SELECT tally.reconcile(%s)", (rollup,))
    for run in range(cfg.reconciles):
        for variant in ("baseline", "pgtally") if run % 2 == 0 else ("pgtally", "baseline"):
            conn.execute("CHECKPOINT")
            start = time.perf_counter()
            if variant == "baseline":
                for text in recompute:
                    # the row test reads every column, so no aggregate can be planned away
                    conn.execute(f"SELECT count(*) FROM ({text}) AS r WHERE r IS NOT NULL").fetchall()  # type: ignore[arg-type]
            else:
                for rollup in S1_ROLLUPS:
                    row = conn.execute(
                        "SELECT in_sync, groups_mismatched, groups_missing, groups_extra "
                        "FROM tally.reconcile(%s)",
                        (rollup,),
                    ).fetchone()
                    if row is None or row[0] is not True:
                        raise BenchFailure(f"INEXACT: tally.reconcile('{rollup}') reports {row}")
            seconds = time.perf_counter() - start
            results.add("w5_reconcile", variant, seconds)
            log(f"  {'w5_reconcile':<12} {variant:<8} {seconds:8.3f} s")


def run_s2(conn: psycopg.Connection[Any], cfg: Config, results: Results, order: tuple[str, ...]) -> None:
    statuses = sql.SQL(", ").join(sql.Literal(s) for s in STATUSES)
    for variant in VARIANTS:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.loads (org_id, status) "
                "SELECT i % 1000, (ARRAY[{}])[1 + (i * 31) % 5] FROM generate_series(1, {}) AS i"
            ).format(q(SCHEMA_OF[variant]), statuses, sql.Literal(cfg.s2_rows))
        )
    check_exact(conn, S2_ROLLUPS, "s2 load")
    vacuum(conn)
    move = sql.SQL(
        "CASE status WHEN 'DRAFT' THEN 'IN_TRANSIT' WHEN 'IN_TRANSIT' THEN 'DELIVERED' "
        "WHEN 'MISSING_DATA' THEN 'DRAFT' WHEN 'UNMAPPED' THEN 'MISSING_DATA' ELSE 'UNMAPPED' END"
    )
    write_phase(
        conn, results, "s2_move", order,
        lambda s: sql.SQL("UPDATE {}.loads SET status = {} WHERE id % 10 = 0").format(q(s), move),
        S2_ROLLUPS,
    )  # fmt: skip


# --------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "tps":
        return f"{value:.0f} tps"
    return f"{value:.3f} ms"


def table(cfg: Config, results: Results) -> tuple[str, list[str]]:
    """The markdown table, and the names of the targets missed."""
    lines = [
        "| workload | baseline median | pgtally median | ratio (per-rep range) | target | met |",
        "|---|---|---|---|---|---|",
    ]
    missed = []
    for metric in metrics(cfg):
        per_variant = results.values.get(metric.key)
        if not per_variant:
            continue
        base = median(per_variant["baseline"])
        tally = median(per_variant["pgtally"])
        ratio = tally / base if base else float("nan")
        pairs = [p / b for b, p in zip(per_variant["baseline"], per_variant["pgtally"], strict=False) if b]
        digits = 4 if metric.unit == "ms" else 2
        spread = f" ({min(pairs):.{digits}f}-{max(pairs):.{digits}f})" if len(pairs) > 1 else ""
        ratio_text = f"{ratio:.4f}x" if metric.unit == "ms" else f"{ratio:.2f}x"
        if metric.judge is None:
            met = "-"
        else:
            met = "yes" if metric.judge(base, tally, ratio) else "**no**"
            if met != "yes":
                missed.append(metric.key)
        lines.append(
            f"| {metric.workload} | {fmt(base, metric.unit)} | {fmt(tally, metric.unit)} "
            f"| {ratio_text}{spread} | {metric.target} | {met} |"
        )
    return "\n".join(lines), missed


def server_version(conn: psycopg.Connection[Any]) -> str:
    return str(conn.execute("SELECT version()").fetchone()[0])  # type: ignore[index]


def report(cfg: Config, results: Results, version: str, command: str, seconds: float) -> str:
    body, missed = table(cfg, results)
    settings = ", ".join(f"{k}={v}" for k, v in SERVER_SETTINGS.items())
    return f"""# pgtally benchmark results

- date: {dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
- machine: {os.cpu_count()} CPUs (nproc), {platform.platform()}
- server: {version}
- command: `{command}`
- mode: {"quick (smoke, not representative)" if cfg.quick else "full"}, {cfg.reps} repetition(s), \
run took {seconds / 60:.1f} min
- server settings: {settings}; fsync and synchronous_commit on (defaults)

Medians over the repetitions; ratio = pgtally median / baseline median (time for W1, W3,
W5, S2; TPS for W2; latency for W4, where the baseline computes the answer with GROUP BY
from the source and the target applies to the pgtally latency itself). The per-rep range
is the spread of the ratio computed within each repetition. Every pgtally variant was
checked against `tally.recompute_sql` after every write workload (and by `tally.reconcile`
in W5): all exact, no failed pgbench transaction (the run exits 1 otherwise).

{body}

Targets missed: {", ".join(missed) if missed else "none"}.

Workload details: S1 schema; rollups `user_emissions` (per user: sum and count over
verified rows) and `global_emissions` (global sum over verified rows); 10,000 users,
75% of rows verified. W1 inserts from a pre-generated staging table (so the baseline time
is the insert alone); its floor row inserts the same rows into an empty copy under a
trigger that does nothing. W3 picks its 10% by a `logged_at` range (one sequential scan); the
user move maps each user to the next one. W2 inserts one row per transaction through
`pgbench -M prepared`, `-j` 1 or 2, into the table left by W3; its slots rows run the
same script after `tally.set_slots(rollup, 16)` on both rollups, and the slot reads follow
a `tally.compact` (the rollups then go back to one row per group). Its append rows run it
after `tally.set_mode(rollup, 'append')` on both rollups while a second connection runs
`tally.compact` on them every second (as a scheduled compact job would; its CPU counts
against the writers'), and are checked exact with whatever is still pending; their reads
follow a last compaction, and the rollups then go back to immediate mode. Every pgtally
W2 run (one row per group, slots, append) is paired with a baseline run of the same
length next to it, and its ratio is to that run, so both sources grow alike. The W2
reference and floor rows run the same script, for half as long, on a copy of the
baseline table under three hand-written triggers (`W2_REFERENCES` in bench/run.py), against
the append rows' baseline: not pgtally, and nothing readable by itself in the append one;
they show what the least work a trigger can do costs on this machine, down to a trigger
that does nothing. The W3 DELETE reference runs the same DELETE on a copy of the baseline table
(taken just before it) under a hand-written trigger (`DELETE_REFERENCE`), against the
baseline time; before it, the two floor rows run that DELETE on the copy, rolled back,
under a trigger that does nothing and under one that only reads and aggregates the old
rows as pgtally does (`DELETE_FLOORS`). W4 runs after a leaderboard
index `(total_emissions_lbs DESC, user_id)` is created on the stats table (the writes
before it do not maintain that index); latencies are client round trips (psycopg,
prepared, TCP on 127.0.0.1), so they include the round-trip floor shown by `SELECT 1`.
W5 compares `tally.reconcile` of both rollups (which logs a run row each) with running
both `tally.recompute_sql` queries bare.
S2: `loads(id bigserial, org_id int, status text)`, rollup count(*) per (org_id, status),
1,000 orgs, 5 statuses; one UPDATE moves every 10th row to another status.
"""


# --------------------------------------------------------------------------- main


@contextmanager
def throwaway_cluster(prefix: str) -> Iterator[tuple[EmbeddedCluster, Path]]:
    """An embedded cluster (not started) in a new temp directory, and that directory;
    the cluster and the directory are destroyed on the way out, however it is left."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)  # the postgres OS user must reach the data directory below
    cluster = EmbeddedCluster(base / "data", port=free_port(), cron_database=DB)
    try:
        yield cluster, base
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


def run(cfg: Config, command: str, out: Path | None) -> int:
    started = time.perf_counter()
    results = Results()
    try:
        with throwaway_cluster("pgtally-bench-") as (cluster, base):
            dsn = start_configured(cluster)
            dsn_params = {"host": "127.0.0.1", "port": str(cluster.status().port)}
            with psycopg.connect(dsn, autocommit=True) as conn:
                install.install(conn)
                version = server_version(conn)
                log(f"cluster at {dsn}; {version}")
                log(f"building staging data ({2 * cfg.rows:,} rows)")
                build_stage(conn, cfg)
                vacuum(conn)
                for rep in range(cfg.reps):
                    order = VARIANTS if rep % 2 == 0 else tuple(reversed(VARIANTS))
                    log(f"repetition {rep + 1}/{cfg.reps} (order: {', '.join(order)})")
                    fresh_schemas(conn)
                    vacuum(conn)
                    run_w1_w3(conn, cfg, results, order)
                    run_w2(conn, cfg, results, order, base, dsn_params)
                    run_w2_references(conn, cfg, results, base, dsn_params)
                    run_w4(conn, cfg, results, order)
                    run_w5(conn, cfg, results)
                    run_s2(conn, cfg, results, order)
    except BenchFailure as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    publish(report(cfg, results, version, command, time.perf_counter() - started), out)
    return 0


def start_configured(cluster: EmbeddedCluster) -> str:
    """Start the cluster with SERVER_SETTINGS (ALTER SYSTEM, then a restart); the bench database's DSN."""
    admin = cluster.start()
    with psycopg.connect(admin, autocommit=True) as conn:
        for name, value in SERVER_SETTINGS.items():
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(q(name), sql.Literal(value)))
    cluster.stop()
    cluster.start()
    return cluster.ensure_database(DB)


def publish(text: str, out: Path | None) -> None:
    """Print a benchmark's report, and write it to out when given."""
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a CI smoke run (< 1 min)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3, quick 1)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    return run(Config.make(args.quick, args.reps), command_line("bench.run", argv), args.out)


def command_line(module: str, argv: list[str] | None) -> str:
    """How a benchmark was invoked, for its report: `python -m MODULE ARGS` (shell-quoted)."""
    args = argv if argv is not None else sys.argv[1:]
    return " ".join(["python -m", module, *(shlex.quote(a) for a in args)])


if __name__ == "__main__":
    sys.exit(main())
