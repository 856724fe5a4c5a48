"""pgtally drift / reconcile / backfill from the command line, against a real server."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from tests import support
from tests.test_scenarios_core import S1_ACTIONS, S1_SCHEMA, s1_params


def drift(db_dsn: str) -> tuple[int, dict[str, Any]]:
    result = support.run_cli("drift", "--json", "--dsn", db_dsn)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_clean_install_has_no_drift(conn: psycopg.Connection[Any], db_dsn: str) -> None:
    conn.execute(S1_SCHEMA)
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    code, report = drift(db_dsn)
    assert (code, report["schema_drift"], report["data_drift"]) == (0, [], [])


def test_each_kind_of_schema_drift_is_reported(conn: psycopg.Connection[Any], db_dsn: str) -> None:
    conn.execute(S1_SCHEMA)
    conn.execute("ALTER TABLE public.user_actions DISABLE TRIGGER tally_maintain_insert")
    conn.execute("ALTER TABLE public.user_emissions ALTER COLUMN action_count TYPE integer")
    conn.execute(
        "CREATE OR REPLACE FUNCTION tally.version() RETURNS text LANGUAGE sql "
        "SET search_path = pg_catalog, pg_temp AS $$ SELECT 'hacked' $$"
    )
    (prefix,) = conn.execute("SELECT function_prefix FROM tally.rollup_sources").fetchone()  # type: ignore[misc]
    conn.execute(f"DROP FUNCTION public.{prefix}_truncate() CASCADE")
    code, report = drift(db_dsn)
    assert code == 1
    problems = {(r["object_type"], r["problem"].split(":")[0]) for r in report["schema_drift"]}
    assert ("trigger", "disabled") in problems
    assert ("trigger", "missing") in problems  # dropped with the truncate function
    assert ("generated function", "missing") in problems
    assert ("stats column", "type is integer, expected bigint") in problems
    assert ("function", "definition edited by hand") in problems


def test_drift_finds_data_drift_and_reconcile_fix_clears_it(
    conn: psycopg.Connection[Any], db_dsn: str
) -> None:
    conn.execute(S1_SCHEMA)
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    conn.execute("UPDATE public.global_emissions SET total_lbs_saved = 30.5")
    code, report = drift(db_dsn)
    assert code == 1
    assert [r["rollup_name"] for r in report["data_drift"]] == ["global_emissions"]
    fixed = support.run_cli("reconcile", "--fix", "--json", "--dsn", db_dsn)
    assert fixed.returncode == 0, fixed.stderr
    assert [r["groups_corrected"] for r in json.loads(fixed.stdout)] == [1, 0]
    assert drift(db_dsn)[0] == 0


def test_cli_backfill_runs_to_the_end(conn: psycopg.Connection[Any], db_dsn: str) -> None:
    conn.execute(
        "CREATE TABLE public.t (id serial PRIMARY KEY, g int NOT NULL, v numeric NOT NULL);"
        "INSERT INTO public.t (g, v) SELECT g % 50, g FROM generate_series(1, 1000) AS g;"
        "SELECT tally.create_rollup('t_by_g', source => 'public.t', group_by => ARRAY['g'], "
        "measures => ARRAY['total = sum(v)'], populate => false);"
    )
    result = support.run_cli("backfill", "t_by_g", "--batch-groups", "10", "--dsn", db_dsn)
    assert result.returncode == 0, result.stderr
    assert conn.execute("SELECT batches_done, batches_total FROM tally.backfill_progress").fetchone() == (
        5,
        5,
    )
    assert support.run_cli("backfill", "ghost", "--dsn", db_dsn).returncode == 1


def test_drift_with_an_unreachable_server_exits_2() -> None:
    result = support.run_cli("drift", "--dsn", "host=127.0.0.1 port=1 user=nobody connect_timeout=2")
    assert result.returncode == 2
