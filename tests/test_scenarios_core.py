"""The rollup engine against the figures of shared/SCENARIOS.md (S1, S2, S3)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg

from tests.exactness import assert_exact, stats_rows

USER = [uuid.UUID(int=i) for i in range(4)]
ACTION = [uuid.UUID(int=0xA0 + i) for i in range(4)]

S1_SCHEMA = """
CREATE TABLE public.user_actions (
    action_id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    emissions_saved_lbs numeric(30, 6) NOT NULL,
    verified boolean DEFAULT false,
    logged_at timestamptz NOT NULL,
    created_at timestamptz DEFAULT now(),
    metadata jsonb DEFAULT '{}'
);
SELECT tally.create_rollup('user_emissions', source => 'public.user_actions',
    group_by => ARRAY['user_id'],
    measures => ARRAY['total_emissions_lbs = sum(emissions_saved_lbs)', 'action_count = count(*)'],
    filter => 'verified');
SELECT tally.create_rollup('global_emissions', source => 'public.user_actions',
    measures => ARRAY['total_lbs_saved = sum(emissions_saved_lbs)'], filter => 'verified');
"""

S1_ACTIONS = """
INSERT INTO public.user_actions (action_id, user_id, emissions_saved_lbs, verified, logged_at)
VALUES (%(a1)s, %(u1)s, 10.2, true, '2025-11-05 10:00+00'),
       (%(a2)s, %(u2)s, 10.3, true, '2025-11-05 10:05+00'),
       (%(a3)s, %(u3)s, 10.4, true, '2025-11-05 10:10+00')
{conflict}
"""


def s1_params() -> dict[str, uuid.UUID]:
    return {"a1": ACTION[1], "a2": ACTION[2], "a3": ACTION[3], "u1": USER[1], "u2": USER[2], "u3": USER[3]}


def global_total(conn: psycopg.Connection[Any]) -> Decimal:
    row = conn.execute("SELECT total_lbs_saved FROM public.global_emissions").fetchone()
    assert row is not None
    return row[0]


def test_s1_sums_are_exact_decimals_per_user_and_global(conn: psycopg.Connection[Any]) -> None:
    conn.execute(S1_SCHEMA)
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    assert str(global_total(conn)) == "30.900000"
    assert stats_rows(conn, "user_emissions", "user_id", "total_emissions_lbs", "action_count") == [
        (USER[1], Decimal("10.200000"), 1),
        (USER[2], Decimal("10.300000"), 1),
        (USER[3], Decimal("10.400000"), 1),
    ]
    leaderboard = conn.execute(
        "SELECT user_id, rank() OVER (ORDER BY total_emissions_lbs DESC, user_id) "
        "FROM public.user_emissions ORDER BY 2"
    ).fetchall()
    assert leaderboard == [(USER[3], 1), (USER[2], 2), (USER[1], 3)]
    assert_exact(conn)


def test_s1_reinsert_with_on_conflict_do_nothing_changes_nothing(conn: psycopg.Connection[Any]) -> None:
    conn.execute(S1_SCHEMA)
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    before = stats_rows(conn, "user_emissions", "user_id", "total_emissions_lbs", "action_count")
    conn.execute(S1_ACTIONS.format(conflict="ON CONFLICT (action_id) DO NOTHING"), s1_params())
    assert stats_rows(conn, "user_emissions", "user_id", "total_emissions_lbs", "action_count") == before
    assert str(global_total(conn)) == "30.900000"


def test_s1_backfill_of_older_logs_keeps_global_equal_to_source(conn: psycopg.Connection[Any]) -> None:
    conn.execute(S1_SCHEMA)
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    conn.execute(
        """
        INSERT INTO public.user_actions (action_id, user_id, emissions_saved_lbs, verified, logged_at)
        SELECT gen_random_uuid(), ('00000000-0000-0000-0000-00000000000' || (g % 3 + 1))::uuid,
               (g % 1000) / 7.0, g % 5 <> 0, timestamptz '2024-01-01' + g * interval '1 hour'
        FROM generate_series(1, 5000) AS g
        """
    )
    (expected,) = conn.execute(  # type: ignore[misc]
        "SELECT sum(emissions_saved_lbs) FROM public.user_actions WHERE verified"
    ).fetchone()
    assert global_total(conn) == expected
    assert_exact(conn)


S2_SCHEMA = """
CREATE TABLE public.loads (id bigserial PRIMARY KEY, org_id int NOT NULL, status text NOT NULL);
CREATE TABLE public.invoices (id bigserial PRIMARY KEY, org_id int NOT NULL, status text NOT NULL);
"""


def count_of(conn: psycopg.Connection[Any], table: str, org: int, status: str) -> int:
    row = conn.execute(
        f"SELECT n FROM public.{table} WHERE org_id = %s AND status = %s", (org, status)
    ).fetchone()
    return 0 if row is None else int(row[0])


def test_s2_initialize_counts_existing_rows_then_follows_every_write(conn: psycopg.Connection[Any]) -> None:
    conn.execute(S2_SCHEMA)
    # rows that existed before pgtally was set up
    conn.execute(
        "INSERT INTO public.loads (org_id, status) "
        "SELECT 1 + g % 3, (ARRAY['DRAFT','MISSING_DATA','UNMAPPED','IN_TRANSIT','DELIVERED'])[1 + g % 5] "
        "FROM generate_series(1, 300) AS g"
    )
    conn.execute(
        "SELECT tally.create_rollup('loads_by_status', source => 'public.loads', "
        "group_by => ARRAY['org_id', 'status'], measures => ARRAY['n = count(*)'])"
    )
    conn.execute(
        "SELECT tally.create_rollup('invoices_by_status', source => 'public.invoices', "
        "group_by => ARRAY['org_id', 'status'], measures => ARRAY['n = count(*)'])"
    )
    assert_exact(conn)
    assert count_of(conn, "loads_by_status", 1, "DRAFT") == 20

    (load_id,) = conn.execute(  # type: ignore[misc]
        "INSERT INTO public.loads (org_id, status) VALUES (9, 'DRAFT') RETURNING id"
    ).fetchone()
    assert count_of(conn, "loads_by_status", 9, "DRAFT") == 1
    conn.execute("UPDATE public.loads SET status = 'IN_TRANSIT' WHERE id = %s", (load_id,))
    assert count_of(conn, "loads_by_status", 9, "DRAFT") == 0
    assert count_of(conn, "loads_by_status", 9, "IN_TRANSIT") == 1
    assert conn.execute("SELECT count(*) FROM public.loads_by_status WHERE org_id = 9").fetchone() == (
        1,
    )  # the emptied DRAFT group is gone, not left at zero

    # bulk status update of many rows in one statement
    conn.execute("UPDATE public.loads SET status = 'DELIVERED' WHERE status = 'IN_TRANSIT'")
    assert count_of(conn, "loads_by_status", 9, "DELIVERED") == 1
    assert count_of(conn, "loads_by_status", 1, "IN_TRANSIT") == 0
    assert_exact(conn, "loads_by_status")

    conn.execute(
        "INSERT INTO public.invoices (org_id, status) "
        "SELECT 1 + g % 4, CASE WHEN (g / 4) % 2 = 0 THEN 'PENDING' ELSE 'PAID' END "
        "FROM generate_series(1, 400) AS g"
    )
    conn.execute("UPDATE public.invoices SET status = 'VOID' WHERE status = 'PENDING' AND org_id = 2")
    assert count_of(conn, "invoices_by_status", 2, "VOID") == 50
    assert count_of(conn, "invoices_by_status", 2, "PENDING") == 0
    conn.execute("DELETE FROM public.invoices WHERE org_id = 3")
    assert count_of(conn, "invoices_by_status", 3, "PAID") == 0
    conn.execute("DELETE FROM public.loads WHERE id = %s", (load_id,))
    assert count_of(conn, "loads_by_status", 9, "DELIVERED") == 0
    assert_exact(conn)


def test_s2_reading_one_count_is_an_index_lookup(conn: psycopg.Connection[Any]) -> None:
    conn.execute(S2_SCHEMA)
    conn.execute(
        "SELECT tally.create_rollup('loads_by_status', source => 'public.loads', "
        "group_by => ARRAY['org_id', 'status'], measures => ARRAY['n = count(*)'])"
    )
    conn.execute(
        "INSERT INTO public.loads (org_id, status) "
        "SELECT g % 500, 'S' || g % 7 FROM generate_series(1, 20000) AS g"
    )
    conn.execute("ANALYZE public.loads_by_status")
    plan = "\n".join(
        r[0]
        for r in conn.execute(
            "EXPLAIN SELECT n FROM public.loads_by_status WHERE org_id = 7 AND status = 'S3'"
        )
    )
    assert "Index Scan using loads_by_status_pkey" in plan or "Index Only Scan" in plan, plan


S3_SCHEMA = """
CREATE TABLE public.runs (
    run_id serial PRIMARY KEY,
    user_id int NOT NULL,
    started_on date NOT NULL,
    day_count int NOT NULL,
    active boolean NOT NULL DEFAULT false
);
CREATE INDEX ON public.runs (user_id);
SELECT tally.create_rollup('runs_per_user', source => 'public.runs', group_by => ARRAY['user_id'],
    measures => ARRAY['total_days = sum(day_count)', 'longest_run = max(day_count)',
                      'current_run = max(day_count) FILTER (WHERE active)']);
SELECT tally.create_rollup('runs_monthly', source => 'public.runs',
    group_by => ARRAY['user_id', $$month = date_trunc('month', started_on::timestamp)::date$$],
    measures => ARRAY['total_days = sum(day_count)', 'longest_run = max(day_count)',
                      'current_run = max(day_count) FILTER (WHERE active)']);
"""


def test_s3_streaks_total_longest_current_and_monthly(conn: psycopg.Connection[Any]) -> None:
    conn.execute(S3_SCHEMA)
    conn.execute(
        "INSERT INTO public.runs (user_id, started_on, day_count, active) VALUES "
        "(1, '2025-01-03', 5, false), (1, '2025-01-20', 9, false), (1, '2025-02-02', 4, true), "
        "(2, '2025-01-10', 3, false)"
    )
    per_user = ["user_id", "total_days", "longest_run", "current_run"]
    assert stats_rows(conn, "runs_per_user", *per_user) == [(1, 18, 9, 4), (2, 3, 3, None)]
    assert stats_rows(conn, "runs_monthly", "user_id", "month", "total_days", "longest_run") == [
        (1, date(2025, 1, 1), 14, 9),
        (1, date(2025, 2, 1), 4, 4),
        (2, date(2025, 1, 1), 3, 3),
    ]

    conn.execute("DELETE FROM public.runs WHERE user_id = 1 AND day_count = 9")  # the longest
    assert stats_rows(conn, "runs_per_user", *per_user)[0] == (1, 9, 5, 4)
    conn.execute("UPDATE public.runs SET day_count = 2 WHERE user_id = 1 AND day_count = 5")  # shorten
    assert stats_rows(conn, "runs_per_user", *per_user)[0] == (1, 6, 4, 4)
    conn.execute("UPDATE public.runs SET active = false WHERE user_id = 1")  # current run ends
    assert stats_rows(conn, "runs_per_user", *per_user)[0] == (1, 6, 4, None)
    conn.execute("UPDATE public.runs SET active = true, day_count = 11 WHERE user_id = 2")
    assert stats_rows(conn, "runs_per_user", *per_user)[1] == (2, 11, 11, 11)
    assert_exact(conn)
