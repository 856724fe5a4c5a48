"""Health (S4, S5): tally.health() turns a job unhealthy once it has not succeeded within
twice its interval (time moved with the settable clock, not sleeps), flags dead letters
and deferred rollups nothing refreshes; `pgtally health` exits 1 then, with JSON and
Prometheus output for monitoring."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from harness import cli
from tests import support

CALCULATIONS = """
CREATE TABLE public.calculation_logs (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL,
                                      locality text NOT NULL);
SELECT tally.create_rollup('calculation_stats_daily', source => 'public.calculation_logs',
    group_by => ARRAY[$$day = (created_at AT TIME ZONE 'UTC')::date$$, 'locality'],
    measures => ARRAY['calculations = count(*)']);
SELECT tally.set_mode('calculation_stats_daily', 'deferred', '{"bucket": "day", "include_current": true}');
"""

JOB = "pgtally:calculation_stats_daily:refresh"


def health(conn: psycopg.Connection[Any], at: str | None = None) -> tuple[bool, str | None]:
    """healthy and problem of the hourly refresh job, judged at time `at` (NULL: now)."""
    conn.execute("SELECT set_config('pgtally.clock', coalesce(%s::text, ''), false)", (at,))
    row = conn.execute("SELECT healthy, problem FROM tally.health() WHERE job_name = %s", (JOB,)).fetchone()
    assert row is not None
    return bool(row[0]), row[1]


def at(moment: datetime, **later: int) -> str:
    """A pgtally.clock value: `moment` moved forward, in ISO form (no spaces)."""
    return (moment + timedelta(**later)).isoformat()


def run_cli(dsn: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["health", "--dsn", dsn, *args])
    return code, capsys.readouterr().out


@pytest.mark.cron
def test_a_job_turns_unhealthy_after_two_missed_intervals(cron_db_dsn: str) -> None:
    with psycopg.connect(cron_db_dsn, autocommit=True) as conn:
        conn.execute(CALCULATIONS)
        conn.execute("SELECT tally.schedule('calculation_stats_daily', 'refresh', '0 * * * *')")
        scheduled = conn.execute("SELECT scheduled_at, interval_seconds FROM tally.scheduled_jobs").fetchone()
        assert scheduled is not None and scheduled[1] == 3600
        start: datetime = scheduled[0]
        # never ran: judged from when it was scheduled
        assert health(conn, at(start, hours=1, minutes=59)) == (True, None)
        assert health(conn, at(start, hours=2, minutes=1)) == (
            False,
            "never succeeded within twice its interval",
        )

        # a run succeeds: healthy; 1h59m later still healthy; 2h01m later two runs were missed
        health(conn, None)
        conn.execute("INSERT INTO public.calculation_logs (created_at, locality) VALUES (now(), 'north')")
        conn.execute("CALL tally.run_job('calculation_stats_daily', 'refresh')")
        success = conn.execute(
            "SELECT last_success, healthy, pending_invalidations, running_now FROM tally.health() WHERE job_name = %s",
            (JOB,),
        ).fetchone()
        assert success is not None and success[1:] == (True, 0, False)
        last: datetime = success[0]
        assert health(conn, at(last, hours=1, minutes=59)) == (True, None)
        assert health(conn, at(last, hours=2, minutes=1)) == (False, "no success within twice its interval")
        lag = conn.execute("SELECT lag FROM tally.health() WHERE job_name = %s", (JOB,)).fetchone()
        assert lag == (timedelta(hours=2, minutes=1),)


@pytest.mark.cron
def test_pgtally_health_exit_codes_json_and_prometheus(
    cron_db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(cron_db_dsn, autocommit=True) as conn:
        conn.execute(CALCULATIONS)
        conn.execute("SELECT tally.schedule('calculation_stats_daily', 'refresh', '0 * * * *')")
        conn.execute("CALL tally.run_job('calculation_stats_daily', 'refresh')")
        last = conn.execute("SELECT last_success FROM tally.health() WHERE job_name = %s", (JOB,)).fetchone()
        assert last is not None and last[0] is not None

    code, out = run_cli(cron_db_dsn, capsys, "--json")
    assert code == 0
    assert [(r["job_name"], r["healthy"]) for r in json.loads(out)] == [(JOB, True)]

    code, out = run_cli(cron_db_dsn, capsys, "--prometheus")
    assert code == 0
    labels = f'rollup="calculation_stats_daily",job="{JOB}",kind="refresh"'
    assert f"pgtally_healthy{{{labels}}} 1" in out.splitlines()
    assert f"pgtally_pending_invalidations{{{labels}}} 0" in out.splitlines()
    assert "# TYPE pgtally_lag_seconds gauge" in out

    # three hours later: a monitoring probe whose session clock is moved (libpq options)
    later = support.with_params(cron_db_dsn, options=f"-c pgtally.clock={at(last[0], hours=3)}")
    code, out = run_cli(later, capsys, "--prometheus")
    assert code == 1, out
    assert f"pgtally_healthy{{{labels}}} 0" in out.splitlines()
    assert f"pgtally_lag_seconds{{{labels}}} 10800" in out.splitlines()


def test_a_deferred_rollup_nothing_refreshes_and_dead_letters_are_unhealthy(
    conn: psycopg.Connection[Any], db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    conn.execute(CALCULATIONS)
    rows = conn.execute("SELECT rollup_name, job_name, healthy, problem FROM tally.health()").fetchall()
    assert rows == [("calculation_stats_daily", None, False, "deferred rollup has no refresh job")]
    code, out = run_cli(db_dsn, capsys, "--json")
    assert code == 1
    assert [(r["rollup_name"], r["healthy"], r["problem"]) for r in json.loads(out)] == [
        ("calculation_stats_daily", False, "deferred rollup has no refresh job")
    ]

    # a day that fails every attempt is dead-lettered and counted
    conn.execute(
        "ALTER TABLE public.calculation_stats_daily ADD CONSTRAINT plausible CHECK (calculations < 2)"
    )
    conn.execute(
        "INSERT INTO public.calculation_logs (created_at, locality) "
        "VALUES ('2025-03-01 10:00+00', 'north'), ('2025-03-01 11:00+00', 'north')"
    )
    for moment in ("2025-03-02 00:05+00", "2025-03-02 00:07+00", "2025-03-02 00:10+00"):
        conn.execute("SELECT set_config('pgtally.clock', %s, false)", (moment,))
        conn.execute("CALL tally.run_job('calculation_stats_daily', 'refresh')")
    health_row = conn.execute(
        "SELECT dead_letters, pending_invalidations, healthy FROM tally.health()"
    ).fetchone()
    assert health_row == (1, 1, False)  # one multi-row INSERT: one invalidation of its group

    conn.execute("ALTER TABLE public.calculation_stats_daily DROP CONSTRAINT plausible")
    conn.execute("SELECT tally.set_mode('calculation_stats_daily', 'immediate')")
    assert conn.execute("SELECT count(*) FROM tally.health()").fetchone() == (0,)
    assert conn.execute("SELECT calculations FROM public.calculation_stats_daily").fetchone() == (2,)
    assert run_cli(db_dsn, capsys)[0] == 0
    assert run_cli(db_dsn, capsys, "--require-jobs")[0] == 1
