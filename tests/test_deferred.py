"""Deferred rollups (S4, S5): writers record invalidations, the refresh job recomputes
them per day bucket, leaves today alone, catches up after an outage, retries a failing
bucket then dead-letters it, verifies what it wrote, collapses on-demand requests, and
never runs twice at once. Time moves with the settable clock (SET pgtally.clock)."""

from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.exactness import assert_exact

COSTS = """
CREATE TABLE public.costs (id bigserial PRIMARY KEY, at timestamptz NOT NULL, amount numeric NOT NULL,
                           region text NOT NULL DEFAULT 'eu');
CREATE INDEX ON public.costs (((at AT TIME ZONE 'UTC')::date));
SELECT tally.create_rollup('daily_costs', source => 'public.costs',
    group_by => ARRAY[$$day = (at AT TIME ZONE 'UTC')::date$$],
    measures => ARRAY['total = sum(amount)', 'n = count(*)', 'mean = avg(amount)']);
"""


def clock(conn: psycopg.Connection[Any], at: str) -> None:
    conn.execute("SELECT set_config('pgtally.clock', %s, false)", (at,))


def add(conn: psycopg.Connection[Any], day: str, *amounts: int) -> None:
    for amount in amounts:
        conn.execute(
            "INSERT INTO public.costs (at, amount) VALUES (%s::date + time '12:00' AT TIME ZONE 'UTC', %s)",
            (day, amount),
        )


def stats(conn: psycopg.Connection[Any]) -> dict[date, tuple[Decimal, int]]:
    rows = conn.execute("SELECT day, total, n FROM public.daily_costs ORDER BY day").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def recomputed(conn: psycopg.Connection[Any]) -> dict[date, tuple[Decimal, int]]:
    rows = conn.execute(
        "SELECT (at AT TIME ZONE 'UTC')::date, sum(amount), count(*) FROM public.costs GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def refresh(conn: psycopg.Connection[Any], options: str | None = None) -> None:
    conn.execute("CALL tally.run_job('daily_costs', 'refresh', %s)", (options,))


def deferred(conn: psycopg.Connection[Any], since: str = "2025-03-01 09:00+00", **options: Any) -> None:
    conn.execute(COSTS)
    clock(conn, since)
    conn.execute(
        "SELECT tally.set_mode('daily_costs', 'deferred', %s)",
        (psycopg.types.json.Jsonb({"bucket": "day", **options}),),
    )


def pending(conn: psycopg.Connection[Any]) -> int:
    return int(conn.execute("SELECT count(*) FROM tally.invalidations").fetchone()[0])  # type: ignore[index]


def test_writers_only_record_invalidations_and_lock_no_stats_row(conn: psycopg.Connection[Any]) -> None:
    deferred(conn)
    add(conn, "2025-02-27", 10, 20)
    assert stats(conn) == {}
    assert pending(conn) == 2  # insert-only: one row per statement and group
    code = conn.execute("SELECT tally.maintenance_code('daily_costs')").fetchone()[0]  # type: ignore[index]
    assert "INSERT INTO tally.invalidations" in code and "ON CONFLICT" not in code
    # exact-now read folds the pending groups in without writing anything
    rows = conn.execute(
        "SELECT day, total, n, mean FROM tally.read_pending(NULL::public.daily_costs)"
    ).fetchall()
    assert rows == [(date(2025, 2, 27), Decimal(30), 2, Decimal(15))]
    assert stats(conn) == {}


def test_refresh_is_idempotent_and_picks_up_changed_raw_data(conn: psycopg.Connection[Any]) -> None:
    deferred(conn)
    add(conn, "2025-02-27", 10, 20)
    add(conn, "2025-02-28", 5)
    refresh(conn)
    assert stats(conn) == recomputed(conn) == {date(2025, 2, 27): (30, 2), date(2025, 2, 28): (5, 1)}
    assert pending(conn) == 0
    first = conn.execute("SELECT * FROM public.daily_costs ORDER BY day").fetchall()
    refresh(conn)
    refresh(conn, '{"include_current": true}')
    assert conn.execute("SELECT * FROM public.daily_costs ORDER BY day").fetchall() == first
    # raw data changed later (a correction and a deletion) is picked up by the next run
    conn.execute("UPDATE public.costs SET amount = amount + 1 WHERE amount = 10")
    conn.execute("DELETE FROM public.costs WHERE amount = 5")
    assert stats(conn)[date(2025, 2, 28)] == (5, 1)  # stale until refreshed
    refresh(conn)
    assert stats(conn) == recomputed(conn) == {date(2025, 2, 27): (31, 2)}
    assert_exact(conn, "daily_costs")
    steps = conn.execute(
        "SELECT count(*), bool_and(verified) FROM tally.runs WHERE run_kind = 'refresh' AND status = 'done'"
    ).fetchone()
    assert steps is not None and steps[0] >= 3 and steps[1] is True
    jobs = conn.execute("SELECT status FROM tally.runs WHERE run_kind = 'job' ORDER BY run_id").fetchall()
    assert jobs == [("done",)] * 4


def test_s4_previous_utc_day_is_aggregated_at_0005_and_today_left_alone(
    conn: psycopg.Connection[Any],
) -> None:
    deferred(conn, since="2025-03-01 00:00+00")
    add(conn, "2025-03-01", 100, 50)
    clock(conn, "2025-03-01 23:59+00")
    refresh(conn)
    assert stats(conn) == {}  # the current (incomplete) day is never aggregated automatically
    add(conn, "2025-03-02", 7)
    clock(conn, "2025-03-02 00:05+00")  # the 5 0 * * * run
    refresh(conn)
    assert stats(conn) == {date(2025, 3, 1): (150, 2)}
    state = conn.execute(
        "SELECT bucket, finalised_at IS NOT NULL, verified FROM tally.bucket_state"
    ).fetchall()
    assert state == [(date(2025, 3, 1), True, True)]
    assert pending(conn) == 1  # today's write waits for tomorrow
    refresh(conn, '{"include_current": true}')  # unless asked for
    assert stats(conn) == recomputed(conn)


def test_catch_up_fills_the_days_missed_during_a_three_day_outage(conn: psycopg.Connection[Any]) -> None:
    deferred(conn, since="2025-03-01 00:00+00")
    for day in ("2025-03-01", "2025-03-02", "2025-03-03", "2025-03-04", "2025-03-05"):
        add(conn, day, 10)
    clock(conn, "2025-03-02 00:05+00")
    refresh(conn)
    assert set(stats(conn)) == {date(2025, 3, 1)}
    # rows written with the triggers off (a bulk load) leave no invalidation: only catch-up sees them
    conn.execute("ALTER TABLE public.costs DISABLE TRIGGER USER")
    add(conn, "2025-03-03", 1000)
    conn.execute("ALTER TABLE public.costs ENABLE TRIGGER USER")
    # no run on the 3rd, 4th and 5th at 00:05; the server is back on the 5th at 10:00
    clock(conn, "2025-03-05 10:00+00")
    refresh(conn)
    expected = recomputed(conn)
    assert stats(conn) == {d: v for d, v in expected.items() if d < date(2025, 3, 5)}
    assert stats(conn)[date(2025, 3, 3)] == (1010, 2)
    finalised = conn.execute(
        "SELECT bucket FROM tally.bucket_state WHERE finalised_at IS NOT NULL ORDER BY 1"
    ).fetchall()
    assert [r[0] for r in finalised] == [date(2025, 3, d) for d in (1, 2, 3, 4)]


def test_gaps_older_than_the_catch_up_window_are_reported_not_filled(conn: psycopg.Connection[Any]) -> None:
    deferred(conn, since="2025-03-01 00:00+00", catch_up_days=2)
    conn.execute("ALTER TABLE public.costs DISABLE TRIGGER USER")
    add(conn, "2025-03-01", 10)
    conn.execute("ALTER TABLE public.costs ENABLE TRIGGER USER")
    clock(conn, "2025-03-06 00:05+00")
    refresh(conn)
    assert date(2025, 3, 1) not in stats(conn)
    gaps = conn.execute(
        "SELECT details -> 'gaps_not_filled' FROM tally.runs WHERE run_kind = 'job'"
    ).fetchone()
    assert gaps == (["2025-03-01", "2025-03-02", "2025-03-03"],)


def test_a_failing_bucket_is_retried_with_backoff_then_dead_lettered_and_never_blocks_the_next(
    conn: psycopg.Connection[Any],
) -> None:
    deferred(conn, since="2025-03-01 00:00+00")
    conn.execute("ALTER TABLE public.daily_costs ADD CONSTRAINT plausible CHECK (total < 1000)")
    add(conn, "2025-03-01", 5000)  # this day fails deterministically
    add(conn, "2025-03-02", 1)
    add(conn, "2025-03-03", 2)
    notices: list[str] = []
    conn.add_notify_handler(lambda n: notices.append(n.payload))
    conn.execute("LISTEN tally_operations")
    clock(conn, "2025-03-04 00:05+00")
    refresh(conn)
    assert set(stats(conn)) == {date(2025, 3, 2), date(2025, 3, 3)}  # later days went on
    failed = conn.execute(
        "SELECT bucket, attempt, error_sqlstate FROM tally.runs WHERE status = 'failed' AND run_kind = 'refresh'"
    ).fetchall()
    assert failed == [(date(2025, 3, 1), 1, "23514")]
    # within the backoff (1 minute, then 2) the bucket is not retried
    clock(conn, "2025-03-04 00:05:30+00")
    refresh(conn)
    assert conn.execute("SELECT attempts FROM tally.bucket_state WHERE bucket = '2025-03-01'").fetchone() == (
        1,
    )
    clock(conn, "2025-03-04 00:07+00")
    refresh(conn)
    clock(conn, "2025-03-04 00:10+00")
    refresh(conn)
    dead = conn.execute("SELECT bucket, attempts, last_sqlstate FROM tally.dead_letters").fetchall()
    assert dead == [(date(2025, 3, 1), 3, "23514")]
    clock(conn, "2025-03-05 00:05+00")
    refresh(conn)  # dead letters are set aside: not tried again
    assert conn.execute("SELECT attempts FROM tally.bucket_state WHERE bucket = '2025-03-01'").fetchone() == (
        3,
    )
    conn.execute("SELECT 1")  # deliver notifications
    assert any('"bucket_dead_lettered"' in n for n in notices)
    # fixed, released, refreshed
    conn.execute("ALTER TABLE public.daily_costs DROP CONSTRAINT plausible")
    assert conn.execute("SELECT tally.retry_dead_letter('daily_costs')").fetchone() == (1,)
    refresh(conn)
    assert stats(conn) == {d: v for d, v in recomputed(conn).items() if d < date(2025, 3, 5)}
    assert conn.execute("SELECT count(*) FROM tally.dead_letters").fetchone() == (0,)


def test_verification_flags_a_refresh_that_does_not_match_the_source(conn: psycopg.Connection[Any]) -> None:
    deferred(conn, since="2025-03-01 00:00+00")
    # a stats trigger that falsifies what the refresh writes: verification must notice
    conn.execute(
        """CREATE FUNCTION public.falsify() RETURNS trigger LANGUAGE plpgsql AS
           $f$BEGIN NEW.total := NEW.total + 1; RETURN NEW; END;$f$;
           CREATE TRIGGER falsify BEFORE INSERT ON public.daily_costs FOR EACH ROW EXECUTE FUNCTION public.falsify();"""
    )
    add(conn, "2025-03-01", 10)
    clock(conn, "2025-03-02 00:05+00")
    refresh(conn)
    row = conn.execute(
        "SELECT verified FROM tally.runs WHERE run_kind = 'refresh' AND status = 'done'"
    ).fetchone()
    assert row == (False,)
    assert conn.execute("SELECT verified FROM tally.bucket_state").fetchone() == (False,)
    assert conn.execute("SELECT verified FROM tally.runs WHERE run_kind = 'job'").fetchone() == (False,)


def test_two_runs_at_once_one_works_and_the_other_skips(conn: psycopg.Connection[Any], connect: Any) -> None:
    deferred(conn, since="2025-03-01 00:00+00")
    add(conn, "2025-03-01", 10)
    blocker = connect()
    blocker.execute("BEGIN")
    blocker.execute("LOCK TABLE public.daily_costs IN ACCESS EXCLUSIVE MODE")  # holds run 1 mid-bucket
    first = connect(options="-c pgtally.clock=2025-03-02T00:05Z")
    done = threading.Event()

    def run_first() -> None:
        first.execute("CALL tally.run_job('daily_costs', 'refresh')")
        done.set()

    thread = threading.Thread(target=run_first)
    thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # barrier: run 1 holds the job lock and waits in its bucket
        held = conn.execute(
            "SELECT running_now FROM tally.health() WHERE rollup_name = 'daily_costs'"
        ).fetchone()
        waiting = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'public.daily_costs'::regclass"
        ).fetchone()
        if waiting == (1,):
            break
        time.sleep(0.05)
    assert held is not None
    second = connect(options="-c pgtally.clock=2025-03-02T00:05Z")
    second.execute("CALL tally.run_job('daily_costs', 'refresh')")  # returns at once
    assert not done.is_set()
    blocker.execute("COMMIT")
    thread.join(20)
    assert done.is_set()
    runs = conn.execute("SELECT status FROM tally.runs WHERE run_kind = 'job' ORDER BY run_id").fetchall()
    assert runs == [("running",), ("skipped",)] or sorted(runs) == [("done",), ("skipped",)]
    assert sorted(conn.execute("SELECT status FROM tally.runs WHERE run_kind = 'job'").fetchall()) == [
        ("done",),
        ("skipped",),
    ]
    assert stats(conn) == {date(2025, 3, 1): (10, 1)}
    # the lock was released: a third run works
    conn.execute("CALL tally.run_job('daily_costs', 'refresh')")
    assert conn.execute(
        "SELECT status FROM tally.runs WHERE run_kind = 'job' ORDER BY run_id DESC"
    ).fetchone() == ("done",)


def test_a_burst_of_refresh_requests_collapses_into_one_run(conn: psycopg.Connection[Any]) -> None:
    deferred(conn, since="2025-03-01 00:00+00", include_current=True)
    add(conn, "2025-03-01", 10)
    created = [conn.execute("SELECT tally.request_refresh('daily_costs')").fetchone()[0] for _ in range(50)]  # type: ignore[index]
    assert created == [True] + [False] * 49
    for _ in range(3):  # the every-minute job serving requests ticks three times
        refresh(conn, '{"only_requested": true}')
    working = conn.execute(
        "SELECT count(*) FROM tally.runs WHERE run_kind = 'job' AND NOT details ? 'idle'"
    ).fetchone()
    assert working == (1,)
    assert stats(conn) == {date(2025, 3, 1): (10, 1)}
    assert conn.execute(
        "SELECT has_function_privilege('public', 'tally.request_refresh(text)', 'EXECUTE')"
    ).fetchone() == (False,)


def test_switching_back_to_immediate_applies_what_is_pending(conn: psycopg.Connection[Any]) -> None:
    deferred(conn)
    add(conn, "2025-02-27", 10, 20)
    conn.execute("SELECT tally.set_mode('daily_costs', 'immediate')")
    assert stats(conn) == recomputed(conn)
    add(conn, "2025-02-27", 1)
    assert stats(conn) == recomputed(conn) and pending(conn) == 0


def test_set_mode_refuses_a_bucket_that_is_not_a_date_key(conn: psycopg.Connection[Any]) -> None:
    conn.execute(COSTS)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("""SELECT tally.set_mode('daily_costs', 'deferred', '{"bucket": "total"}')""")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("SELECT tally.request_refresh('daily_costs')")


def test_a_deferred_rollup_without_buckets_refreshes_its_invalidated_groups(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(
        """CREATE TABLE public.loads (id serial PRIMARY KEY, org_id int, status text, weight int);
           INSERT INTO public.loads (org_id, status, weight) VALUES (1, 'open', 5), (NULL, 'open', 7);
           SELECT tally.create_rollup('loads_by_org', source => 'public.loads', group_by => ARRAY['org_id', 'status'],
                                      measures => ARRAY['n = count(*)', 'heaviest = max(weight)']);
           SELECT tally.create_rollup('all_loads', source => 'public.loads', measures => ARRAY['n = count(*)']);
           SELECT tally.set_mode('loads_by_org', 'deferred');"""
    )
    conn.execute("INSERT INTO public.loads (org_id, status, weight) VALUES (NULL, 'open', 9), (2, 'done', 1)")
    conn.execute("UPDATE public.loads SET status = 'done' WHERE org_id = 1")
    assert_exact(conn, "all_loads")  # an immediate rollup of the same source stays immediate
    pending_rows = conn.execute(
        "SELECT org_id, status, n, heaviest FROM tally.read_pending(NULL::public.loads_by_org) ORDER BY 1, 2"
    ).fetchall()
    conn.execute("CALL tally.run_job('loads_by_org', 'refresh')")
    assert_exact(conn, "loads_by_org")
    stored = conn.execute(
        "SELECT org_id, status, n, heaviest FROM public.loads_by_org ORDER BY 1, 2"
    ).fetchall()
    assert pending_rows == stored == [(1, "done", 1, 5), (2, "done", 1, 1), (None, "open", 2, 9)]


def test_groups_with_a_null_day_are_a_bucket_of_their_own(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """
        CREATE TABLE public.tasks (id bigserial PRIMARY KEY, done_at timestamptz, points numeric NOT NULL);
        SELECT tally.create_rollup('daily_points', source => 'public.tasks',
            group_by => ARRAY[$$day = (done_at AT TIME ZONE 'UTC')::date$$], measures => ARRAY['total = sum(points)']);
        """
    )
    clock(conn, "2025-03-01 09:00+00")
    conn.execute("""SELECT tally.set_mode('daily_points', 'deferred', '{"bucket": "day"}')""")
    conn.execute(
        "INSERT INTO public.tasks (done_at, points) VALUES (NULL, 3), (NULL, 4), "
        "('2025-03-01 10:00+00', 5), ('2025-03-02 10:00+00', 6)"
    )
    clock(conn, "2025-03-02 11:00+00")
    conn.execute("CALL tally.run_job('daily_points', 'refresh')")
    rows = conn.execute("SELECT day, total FROM public.daily_points ORDER BY day NULLS FIRST").fetchall()
    # the unfinished day (today) waits; the NULL day and yesterday do not
    assert rows == [(None, 7), (date(2025, 3, 1), 5)]
    pending_days = conn.execute("SELECT group_key ->> 'day' FROM tally.invalidations").fetchall()
    assert pending_days == [("2025-03-02",)]
    steps = conn.execute(
        "SELECT bucket, status, verified FROM tally.runs WHERE run_kind = 'refresh' ORDER BY bucket NULLS FIRST"
    ).fetchall()
    assert steps == [(None, "done", True), (date(2025, 3, 1), "done", True)]


def test_refresh_and_pending_reads_match_groups_by_key_equality(conn: psycopg.Connection[Any]) -> None:
    # interval '1 mon' = '30 days': one group for GROUP BY and the stats' unique key, so a
    # refresh and an exact-now read must treat them as one, NULL keys included
    conn.execute(
        """
        CREATE TABLE public.spans (id int PRIMARY KEY, span interval, w int NOT NULL);
        SELECT tally.create_rollup('span_counts', source => 'public.spans', group_by => ARRAY['span'],
            measures => ARRAY['n = count(*)', 'hi = max(w)']);
        SELECT tally.set_mode('span_counts', 'deferred');
        INSERT INTO public.spans VALUES (1, '1 month', 5), (2, NULL, 1);
        """
    )
    conn.execute("CALL tally.run_job('span_counts', 'refresh')")
    conn.execute("INSERT INTO public.spans VALUES (3, '30 days', 9)")
    pending = conn.execute(
        "SELECT n, hi FROM tally.read_pending(NULL::public.span_counts) ORDER BY 1, 2"
    ).fetchall()
    assert pending == [(1, 1), (2, 9)]
    conn.execute("CALL tally.run_job('span_counts', 'refresh')")
    assert conn.execute("SELECT n, hi FROM public.span_counts ORDER BY 1, 2").fetchall() == pending
    conn.execute("DELETE FROM public.spans WHERE id = 1")
    conn.execute("CALL tally.run_job('span_counts', 'refresh')")
    assert_exact(conn, "span_counts")
