"""Scheduling with pg_cron: named pgtally:<rollup>:<job> jobs upserted, catalogued in
tally.jobs, visible in tally.jobs, removed by unschedule and drop_rollup; a clear
error without pg_cron; reconcile and purge jobs; one real pg_cron run."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

ROLLUP = """
CREATE TABLE public.costs (id bigserial PRIMARY KEY, at timestamptz NOT NULL, amount numeric NOT NULL);
SELECT tally.create_rollup('daily_costs', source => 'public.costs',
    group_by => ARRAY[$$day = (at AT TIME ZONE 'UTC')::date$$], measures => ARRAY['total = sum(amount)']);
SELECT tally.set_mode('daily_costs', 'deferred', '{"bucket": "day", "include_current": true}');
"""


def test_scheduling_without_pg_cron_says_how_to_enable_it(conn: psycopg.Connection[Any]) -> None:
    conn.execute(ROLLUP)
    with pytest.raises(psycopg.errors.FeatureNotSupported) as error:
        conn.execute("SELECT tally.schedule('daily_costs', 'refresh', '5 0 * * *')")
    hint = error.value.diag.message_hint or ""
    assert (
        "shared_preload_libraries" in hint
        and "cron.database_name" in hint
        and "CREATE EXTENSION pg_cron" in hint
    )
    assert conn.execute("SELECT count(*) FROM tally.jobs").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM tally.jobs").fetchone() == (0,)  # the view works without cron


def test_schedule_rejects_unknown_jobs_options_and_non_deferred_refresh(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(ROLLUP)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT tally.schedule('daily_costs', 'vacuum', '5 0 * * *')")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no slots"):
        conn.execute("SELECT tally.schedule('daily_costs', 'compact', '5 0 * * *')")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("""SELECT tally.schedule('daily_costs', 'reconcile', '5 0 * * *', '{"fix": true}')""")
    conn.execute("SELECT tally.set_mode('daily_costs', 'immediate')")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("SELECT tally.schedule('daily_costs', 'refresh', '5 0 * * *')")


@pytest.mark.parametrize(
    ("schedule", "seconds"),
    [
        ("* * * * *", 60),
        ("*/5 * * * *", 300),
        ("17 * * * *", 3600),
        ("5 0 * * *", 86400),
        ("0 3 * * 1", 604800),
        ("0 0 1 * *", None),
    ],
)
def test_cron_interval_seconds(tx: psycopg.Connection[Any], schedule: str, seconds: int | None) -> None:
    assert tx.execute("SELECT tally.cron_interval_seconds(%s)", (schedule,)).fetchone() == (seconds,)


@pytest.mark.cron
def test_jobs_are_named_upserted_listed_and_removed(cron_db_dsn: str) -> None:
    with psycopg.connect(cron_db_dsn, autocommit=True) as conn:
        conn.execute(ROLLUP)
        first = conn.execute("SELECT tally.schedule('daily_costs', 'refresh', '5 0 * * *')").fetchone()
        again = conn.execute(
            """SELECT tally.schedule('daily_costs', 'refresh', '*/10 * * * *', '{"include_current": false}')"""
        ).fetchone()
        assert first == again  # same name: the pg_cron job is updated, not duplicated
        conn.execute("SELECT tally.schedule(NULL, 'purge', '30 3 * * *', '{\"retention\": \"7 days\"}')")
        cron = conn.execute("SELECT jobname, schedule, command FROM cron.job ORDER BY 1").fetchall()
        assert cron == [
            ("pgtally:*:purge", "30 3 * * *", "CALL tally.run_job(NULL, 'purge')"),
            ("pgtally:daily_costs:refresh", "*/10 * * * *", "CALL tally.run_job('daily_costs', 'refresh')"),
        ]
        jobs = conn.execute(
            "SELECT job_name, job_kind, interval_seconds, options FROM tally.jobs ORDER BY 1"
        ).fetchall()
        assert jobs == [
            ("pgtally:*:purge", "purge", 86400, {"retention": "7 days"}),
            ("pgtally:daily_costs:refresh", "refresh", 600, {"include_current": False}),
        ]
        status = conn.execute("SELECT job_name, cron_active FROM tally.jobs ORDER BY 1").fetchall()
        assert status == [("pgtally:*:purge", True), ("pgtally:daily_costs:refresh", True)]
        assert conn.execute("SELECT tally.unschedule(NULL, 'purge')").fetchone() == (True,)
        assert conn.execute("SELECT tally.unschedule(NULL, 'purge')").fetchone() == (False,)
        conn.execute("SELECT tally.drop_rollup('daily_costs')")  # takes its jobs with it
        assert conn.execute("SELECT count(*) FROM cron.job").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM tally.jobs").fetchone() == (0,)


def test_reconcile_and_purge_jobs_record_their_runs(conn: psycopg.Connection[Any]) -> None:
    conn.execute(ROLLUP)
    conn.execute("SELECT tally.set_mode('daily_costs', 'immediate')")
    conn.execute("INSERT INTO public.costs (at, amount) VALUES ('2025-03-01 10:00+00', 5)")
    conn.execute("UPDATE public.daily_costs SET total = 99")  # drift
    conn.execute("""CALL tally.run_job('daily_costs', 'reconcile', '{"auto_correct": true}')""")
    assert conn.execute("SELECT total FROM public.daily_costs").fetchone() == (5,)
    job = conn.execute(
        "SELECT status, details -> 'reconciled' -> 'daily_costs' ->> 'corrected' FROM tally.runs WHERE run_kind = 'job'"
    ).fetchone()
    assert job == ("done", "1")
    conn.execute(
        "UPDATE tally.runs SET started_at = started_at - interval '40 days' WHERE run_kind = 'reconcile'"
    )
    conn.execute("CALL tally.run_job(NULL, 'purge')")
    purge = conn.execute(
        "SELECT status, details ->> 'runs_purged' FROM tally.runs WHERE job_name = 'pgtally:*:purge'"
    ).fetchone()
    assert purge == ("done", "1")


@pytest.mark.cron
def test_pg_cron_really_runs_a_scheduled_refresh(cron_db_dsn: str) -> None:
    with psycopg.connect(cron_db_dsn, autocommit=True) as conn:
        conn.execute(ROLLUP)
        conn.execute("INSERT INTO public.costs (at, amount) VALUES (now(), 5), (now() - interval '1 day', 7)")
        conn.execute("SELECT tally.schedule('daily_costs', 'refresh', '* * * * *')")
        conn.execute("SELECT tally.schedule(NULL, 'purge', '* * * * *')")
        deadline = time.monotonic() + 75
        row = None
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT status FROM tally.runs WHERE job_name = 'pgtally:daily_costs:refresh' "
                "AND run_kind = 'job' AND status <> 'running'"
            ).fetchone()
            if row is not None:
                break
            time.sleep(1)
        assert row == ("done",), "pg_cron did not run the refresh job within 75 s"
        assert conn.execute("SELECT sum(total) FROM public.daily_costs").fetchone() == (12,)
        assert conn.execute("SELECT count(*) FROM tally.invalidations").fetchone() == (0,)
        health = conn.execute(
            "SELECT healthy FROM tally.health() WHERE job_name = 'pgtally:daily_costs:refresh'"
        ).fetchone()
        assert health == (True,)


@pytest.mark.cron
def test_uninstall_removes_the_pg_cron_jobs(cron_db_dsn: str) -> None:
    from harness import install

    with psycopg.connect(cron_db_dsn, autocommit=True) as conn:
        conn.execute(ROLLUP)
        conn.execute("SELECT tally.schedule('daily_costs', 'refresh', '5 0 * * *')")
        conn.execute("SELECT tally.schedule(NULL, 'purge', '30 3 * * *')")
        conn.execute("SELECT cron.schedule('someone-elses-job', '0 1 * * *', 'SELECT 1')")
        removed = install.uninstall(conn)
        assert "cron job pgtally:*:purge" in removed
        assert conn.execute("SELECT jobname FROM cron.job ORDER BY 1").fetchall() == [("someone-elses-job",)]
        assert conn.execute("SELECT to_regnamespace('tally')").fetchone() == (None,)
