"""Reconciliation: drift detected, logged, reported exactly, and corrected safely."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.exactness import assert_exact
from tests.test_rollup_concurrency import ROLLUPS, SCHEMA, run_writers
from tests.test_scenarios_core import S1_ACTIONS, S1_SCHEMA, s1_params


def reconcile(conn: psycopg.Connection[Any], call: str, *params: Any) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT * FROM {call}", params).fetchone()
    assert row is not None
    return row


def test_s1_corrupted_global_total_is_reported_then_corrected(conn: psycopg.Connection[Any]) -> None:
    conn.execute(S1_SCHEMA)
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    conn.execute("UPDATE public.global_emissions SET total_lbs_saved = total_lbs_saved - 0.4")  # 30.9 -> 30.5

    report = reconcile(conn, "tally.reconcile('global_emissions')")
    assert report["in_sync"] is False
    assert str(report["stored_value"]) == "30.500000"
    assert str(report["recomputed_value"]) == "30.900000"
    assert str(report["discrepancy"]) == "0.400000"
    # report only: nothing changed, the difference is logged
    assert conn.execute("SELECT total_lbs_saved::text FROM public.global_emissions").fetchone() == (
        "30.500000",
    )
    log = conn.execute(
        "SELECT column_name, expected_value, actual_value, discrepancy::text, status FROM tally.reconciliation_log "
        "WHERE run_id = %s",
        (report["run_id"],),
    ).fetchall()
    assert log == [("total_lbs_saved", "30.900000", "30.500000", "0.400000", "mismatch")]

    fixed = reconcile(
        conn, "tally.reconcile('global_emissions', p_auto_correct => true, p_reason => %s)", "S1 audit"
    )
    assert fixed["groups_corrected"] == 1
    assert conn.execute("SELECT total_lbs_saved::text FROM public.global_emissions").fetchone() == (
        "30.900000",
    )
    correction = conn.execute(
        "SELECT previous_value, corrected_value, discrepancy::text, reason, performed_by, run_id "
        "FROM tally.corrections"
    ).fetchall()
    assert correction == [("30.500000", "30.900000", "0.400000", "S1 audit", "postgres", fixed["run_id"])]
    runs = conn.execute("SELECT run_id, status FROM tally.runs ORDER BY run_id").fetchall()
    assert runs == [(report["run_id"], "drift"), (fixed["run_id"], "corrected")]
    assert reconcile(conn, "tally.reconcile('global_emissions')")["in_sync"] is True


def test_s2_verify_one_organisation_and_daily_recalculation(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "CREATE TABLE public.loads (id bigserial PRIMARY KEY, org_id int NOT NULL, status text NOT NULL);"
        "INSERT INTO public.loads (org_id, status) SELECT g % 5, 'S' || g % 3 FROM generate_series(1, 3000) AS g;"
        "SELECT tally.create_rollup('loads_by_status', source => 'public.loads', "
        "group_by => ARRAY['org_id', 'status'], measures => ARRAY['n = count(*)']);"
    )
    conn.execute("UPDATE public.loads_by_status SET n = n + 3 WHERE org_id = 2 AND status = 'S1'")  # by hand
    conn.execute("DELETE FROM public.loads_by_status WHERE org_id = 4 AND status = 'S0'")
    conn.execute("INSERT INTO public.loads_by_status (org_id, status, n, _tally_rows) VALUES (9, 'S9', 1, 1)")

    def verify(org: int) -> bool:
        return bool(
            reconcile(conn, "tally.reconcile('loads_by_status', p_keys => %s)", f'{{"org_id": {org}}}')[
                "in_sync"
            ]
        )

    assert verify(2) is False
    assert verify(3) is True
    daily = reconcile(conn, "tally.reconcile('loads_by_status', p_auto_correct => true)")
    assert (daily["groups_mismatched"], daily["groups_missing"], daily["groups_extra"]) == (1, 1, 1)
    assert daily["groups_corrected"] == 3
    assert verify(2) is True
    assert_exact(conn)


def test_s3_log_has_one_row_per_user_month_and_check(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "CREATE TABLE public.runs (user_id int NOT NULL, started_on date NOT NULL, day_count int NOT NULL, active bool NOT NULL);"
        "INSERT INTO public.runs SELECT u, date '2025-01-01' + (g * 7), 1 + (u * g) % 13, g % 4 = 0 "
        "FROM generate_series(1, 1200) AS u, generate_series(0, 8) AS g;"
        "SELECT tally.create_rollup('runs_monthly', source => 'public.runs', "
        "group_by => ARRAY['user_id', $$month = date_trunc('month', started_on::timestamp)::date$$], "
        "measures => ARRAY['total_days = sum(day_count)', 'longest_run = max(day_count)', "
        "'current_run = max(day_count) FILTER (WHERE active)']);"
    )
    conn.execute("UPDATE public.runs_monthly SET longest_run = 99 WHERE user_id = 7 AND month = '2025-01-01'")
    result = reconcile(conn, "tally.reconcile('runs_monthly', p_log_matches => true)")
    assert (
        result["groups_checked"] == 1200 * 2
    )  # 1,200 users over two months (nine weekly runs from 1 January)
    rows = conn.execute(
        "SELECT status, count(*) FROM tally.reconciliation_log WHERE run_id = %s GROUP BY 1 ORDER BY 1",
        (result["run_id"],),
    ).fetchall()
    checks = len(
        conn.execute(
            "SELECT * FROM tally.stats_columns('runs_monthly') WHERE column_role <> 'key' AND recompute_expression IS NOT NULL"
        ).fetchall()
    )
    assert rows == [("match", 1200 * 2 * checks - 1), ("mismatch", 1)]
    bad = conn.execute(
        "SELECT group_key, column_name, expected_value, actual_value, processing_ms >= 0 FROM tally.reconciliation_log "
        "WHERE run_id = %s AND status = 'mismatch'",
        (result["run_id"],),
    ).fetchone()
    assert bad is not None
    assert bad[0] == {"user_id": 7, "month": "2025-01-01"}
    assert bad[1:] == ("longest_run", bad[2], "99", True) and bad[2] != "99"


def test_writes_made_with_replication_role_replica_are_caught(conn: psycopg.Connection[Any]) -> None:
    conn.execute(S1_SCHEMA)
    conn.execute("SET session_replication_role = replica")  # triggers do not fire
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    conn.execute("RESET session_replication_role")
    result = reconcile(conn, "tally.reconcile('user_emissions')")
    assert result["groups_missing"] == 3
    results = conn.execute("SELECT rollup_name, in_sync FROM tally.reconcile_all(true)").fetchall()
    assert results == [("global_emissions", False), ("user_emissions", False)]
    assert_exact(conn)


def test_sample_checks_stored_groups_only(conn: psycopg.Connection[Any]) -> None:
    conn.execute(S1_SCHEMA)
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    conn.execute("UPDATE public.user_emissions SET action_count = 5")
    result = reconcile(conn, "tally.reconcile('user_emissions', p_sample => 2)")
    assert (result["groups_checked"], result["groups_mismatched"]) == (2, 2)


def test_sample_and_keys_recompute_groups_of_expression_and_null_keys(conn: psycopg.Connection[Any]) -> None:
    """The sampled groups are recomputed through the typed key columns (tally.key_equals_sql),
    p_keys through a once-evaluated parameter: both must find the group of an expression key
    and of a NULL key, and only it."""
    conn.execute(
        """
        CREATE TABLE public.visits (at timestamp NOT NULL, tag text, amount numeric(12, 2) NOT NULL);
        INSERT INTO public.visits
        SELECT timestamp '2025-03-01 00:00' + g * interval '7 hours', CASE WHEN g % 3 = 0 THEN NULL
               ELSE 't' || (g % 3) END, g / 4.0
        FROM generate_series(1, 60) AS g;
        SELECT tally.create_rollup('visits_by_day_tag', source => 'public.visits',
            group_by => ARRAY['day = date_trunc(''day'', at)', 'tag'],
            measures => ARRAY['total = sum(amount)', 'n = count(*)']);
        """
    )
    groups = conn.execute("SELECT count(*) FROM public.visits_by_day_tag").fetchone()[0]  # type: ignore[index]
    assert groups > 10
    assert reconcile(conn, "tally.reconcile('visits_by_day_tag', p_sample => 1000)")["in_sync"] is True

    conn.execute("UPDATE public.visits_by_day_tag SET total = total + 1 WHERE tag IS NULL")
    nulls = conn.execute("SELECT count(*) FROM public.visits_by_day_tag WHERE tag IS NULL").fetchone()[0]  # type: ignore[index]
    sampled = reconcile(conn, "tally.reconcile('visits_by_day_tag', p_sample => 1000)")
    assert (sampled["groups_checked"], sampled["groups_mismatched"]) == (groups, nulls)
    by_key = reconcile(conn, "tally.reconcile('visits_by_day_tag', p_keys => '{\"tag\": null}')")
    assert (by_key["groups_checked"], by_key["groups_mismatched"]) == (nulls, nulls)
    one_day = reconcile(
        conn, "tally.reconcile('visits_by_day_tag', p_keys => %s)", '{"day": "2025-03-02T00:00:00"}'
    )
    assert one_day["groups_mismatched"] == 1  # the day's NULL-tag group, not its t1/t2 groups
    assert one_day["groups_checked"] == 3
    fixed = reconcile(
        conn, "tally.reconcile('visits_by_day_tag', p_keys => '{\"tag\": null}', p_auto_correct => true)"
    )
    assert fixed["groups_corrected"] == nulls
    assert reconcile(conn, "tally.reconcile('visits_by_day_tag')")["in_sync"] is True
    assert_exact(conn)


def test_auto_correct_is_exact_while_eight_writers_keep_writing(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(SCHEMA)
    conn.execute(ROLLUPS)
    conn.execute(
        "INSERT INTO public.moves (writer, grp, amount, rank_value) "
        "SELECT 99, g % 20, g / 3.0, g % 97 FROM generate_series(1, 5000) AS g"
    )
    conn.execute(
        "UPDATE public.moves_by_grp SET total = total + 1000, best = best + 50, n = n - 1 WHERE grp % 3 = 0"
    )
    conn.execute("UPDATE public.moves_overall SET total = total - 7")
    corrector = connect()
    outcome: list[Any] = []

    def correct() -> None:
        for _ in range(3):
            outcome.append(
                corrector.execute("SELECT (tally.reconcile_all(true)).groups_corrected").fetchall()
            )

    thread = threading.Thread(target=correct)
    run_writers(connect, during=thread.start)
    thread.join(timeout=300)
    assert outcome, "the corrector did not run"
    assert_exact(conn)


def test_reconcile_each_commits_per_rollup_and_records_runs(conn: psycopg.Connection[Any]) -> None:
    conn.execute(S1_SCHEMA)
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    conn.execute("UPDATE public.global_emissions SET total_lbs_saved = 0")
    conn.execute("CALL tally.reconcile_each(true)")
    assert conn.execute("SELECT rollup_name, status FROM tally.runs ORDER BY run_id").fetchall() == [
        ("global_emissions", "corrected"),
        ("user_emissions", "in_sync"),
    ]
    assert conn.execute("SELECT tally.purge_logs('0 seconds')").fetchone() == (2,)
    assert conn.execute("SELECT count(*) FROM tally.reconciliation_log").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM tally.corrections").fetchone() == (1,)  # audit trail stays


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ("tally.reconcile('ghost')", psycopg.errors.UndefinedObject),
        ("tally.reconcile('user_emissions', p_sample => -1)", psycopg.errors.InvalidParameterValue),
        ("tally.reconcile('user_emissions', p_keys => '{\"nope\": 1}')", psycopg.errors.UndefinedColumn),
        ("tally.reconcile('user_emissions', p_keys => '[1]')", psycopg.errors.InvalidParameterValue),
        (
            "tally.reconcile('user_emissions', p_key_condition => 'user_id = 1); DROP TABLE x; --')",
            psycopg.errors.SyntaxError,
        ),
        (
            "tally.reconcile('user_emissions', p_key_condition => 'no_such_column > 1')",
            psycopg.errors.UndefinedColumn,
        ),
        ("tally.purge_logs('-1 day')", psycopg.errors.InvalidParameterValue),
    ],
)
def test_bad_reconcile_input_gets_a_clear_error(
    conn: psycopg.Connection[Any], call: str, error: type[Exception]
) -> None:
    conn.execute(S1_SCHEMA)
    with pytest.raises(error):
        conn.execute(f"SELECT * FROM {call}")
    assert conn.execute("SELECT count(*) FROM tally.runs").fetchone() == (0,)


def test_batched_reconcile_commits_per_key_range_and_finds_drift_everywhere(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(
        "CREATE TABLE public.costs (id bigserial PRIMARY KEY, at timestamptz NOT NULL, amount numeric NOT NULL, region text);"
        "INSERT INTO public.costs (at, amount, region) SELECT timestamptz '2025-01-01' + g * interval '97 minutes', "
        "g % 100, (ARRAY['eu', 'us', NULL])[1 + g % 3] FROM generate_series(1, 6000) AS g;"
        "SELECT tally.create_rollup('daily_costs', source => 'public.costs', "
        "group_by => ARRAY[$$day = (at AT TIME ZONE 'UTC')::date$$, 'region'], "
        "measures => ARRAY['total = sum(amount)', 'peak = max(amount)']);"
    )
    conn.execute(
        "DELETE FROM public.daily_costs WHERE day = '2025-01-01' AND region = 'eu'"
    )  # before the first key
    conn.execute("UPDATE public.daily_costs SET total = total + 1 WHERE day = '2025-02-03'")  # in the middle
    conn.execute(
        "DELETE FROM public.daily_costs WHERE day = (SELECT max(day) FROM public.daily_costs)"
    )  # after the last
    conn.execute(
        "UPDATE public.daily_costs SET peak = -1 WHERE region IS NULL AND day = '2025-01-09'"
    )  # NULL key
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("CALL tally.reconcile_batched('daily_costs', 50, true)")
    runs = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'corrected') FROM tally.runs"
    ).fetchone()
    assert runs is not None and runs[0] >= 5 and runs[1] >= 3  # one run (and commit) per key range
    assert notices[-1].endswith("groups drifted in all") and len(notices) == runs[0]
    assert_exact(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("CALL tally.reconcile_batched('daily_costs', 0)")


def test_equal_keys_written_differently_are_one_group_also_when_null(conn: psycopg.Connection[Any]) -> None:
    # interval '1 mon' = '30 days' and numeric 1.0 = 1.00: GROUP BY and the stats' unique
    # key take each pair as one group, so reconcile must too, NULL keys included
    conn.execute(
        """
        CREATE TABLE public.spans (id int PRIMARY KEY, span interval, size numeric);
        SELECT tally.create_rollup('span_counts', source => 'public.spans', group_by => ARRAY['span', 'size'],
            measures => ARRAY['n = count(*)']);
        INSERT INTO public.spans VALUES (1, '1 month', 1.0), (2, NULL, NULL);
        INSERT INTO public.spans VALUES (3, '30 days', 1.00), (4, NULL, 2);
        DELETE FROM public.spans WHERE id = 1;
        """
    )
    report = reconcile(conn, "tally.reconcile('span_counts')")
    assert (
        report["in_sync"],
        report["groups_checked"],
        report["groups_missing"],
        report["groups_extra"],
    ) == (
        True,
        3,
        0,
        0,
    )
    conn.execute("UPDATE public.span_counts SET n = 5 WHERE span IS NULL AND size IS NULL")
    report = reconcile(conn, "tally.reconcile('span_counts', p_auto_correct => true)")
    assert (report["groups_mismatched"], report["groups_missing"], report["groups_extra"]) == (1, 0, 0)
    assert reconcile(conn, "tally.reconcile('span_counts')")["in_sync"] is True


def test_measures_named_like_reconcile_aliases_and_a_leading_avg_are_reconciled(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(
        """
        CREATE TABLE public.scores (id int PRIMARY KEY, g int NOT NULL, v int);
        SELECT tally.create_rollup('scores_se', source => 'public.scores', group_by => ARRAY['g'],
            measures => ARRAY['s = sum(v)', 'e = count(*)']);
        SELECT tally.create_rollup('scores_r', source => 'public.scores', group_by => ARRAY['r = g'],
            measures => ARRAY['s = sum(v)']);
        SELECT tally.create_rollup('scores_mean', source => 'public.scores', measures => ARRAY['m = avg(v)']);
        INSERT INTO public.scores VALUES (1, 1, 5), (2, 2, 7);
        """
    )
    for rollup in ("scores_se", "scores_r", "scores_mean"):
        assert reconcile(conn, "tally.reconcile(%s)", rollup)["in_sync"] is True
    conn.execute("UPDATE public.scores_se SET s = 6 WHERE g = 1")
    conn.execute("UPDATE public.scores_r SET s = 8 WHERE r = 2")
    for rollup in ("scores_se", "scores_r"):
        report = reconcile(conn, "tally.reconcile(%s, p_auto_correct => true)", rollup)
        assert (report["in_sync"], report["groups_mismatched"]) == (False, 1)
        assert reconcile(conn, "tally.reconcile(%s)", rollup)["in_sync"] is True
    assert_exact(conn, "scores_se", "scores_r", "scores_mean")


@pytest.mark.parametrize("slots", [1, 3])
def test_auto_correct_of_money_and_interval_sums(conn: psycopg.Connection[Any], slots: int) -> None:
    conn.execute(
        """
        CREATE TABLE public.bills (id int PRIMARY KEY, team int NOT NULL, cost money, took interval);
        SELECT tally.create_rollup('team_bills', source => 'public.bills', group_by => ARRAY['team'],
            measures => ARRAY['total = sum(cost)', 'spent = sum(took)']);
        """
    )
    conn.execute("SELECT tally.set_slots('team_bills', %s)", (slots,))
    conn.execute("INSERT INTO public.bills VALUES (1, 1, 3.10, '1 day'), (2, 2, 1, NULL)")
    table = "team_bills_slots" if slots > 1 else "team_bills"
    conn.execute(
        f"UPDATE public.{table} SET total = total + 1::money, spent = spent + '1 hour' WHERE team = 1"
    )
    conn.execute(f"DELETE FROM public.{table} WHERE team = 2")
    report = reconcile(conn, "tally.reconcile('team_bills', p_auto_correct => true)")
    assert (report["groups_mismatched"], report["groups_missing"]) == (1, 1)
    assert reconcile(conn, "tally.reconcile('team_bills')")["in_sync"] is True
    assert_exact(conn, "team_bills")
