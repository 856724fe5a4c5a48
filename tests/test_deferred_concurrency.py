"""Deferred rollups under concurrent writers: nothing lost, nothing counted twice.

Real connections in threads. Six writers run single-row and multi-row inserts, UPDATEs
that move their rows between days and groups (and in and out of the rollup's filter),
value corrections, DELETEs, rolled-back transactions and savepoints, and multi-statement
transactions that sleep before they commit, so a refresh takes its snapshots while they
are open. Meanwhile two refreshers call tally.run_job(..., 'refresh') back to back (with
and without include_current; the second is mostly skipped by the job lock), a reader
checks in every snapshot that tally.read_pending equals a recomputation from the source,
and a flipper switches a second rollup of the same source between deferred and immediate.
Days cover the past before the rollup became deferred, days due for finalisation
(finalised while writers still write to them: late data), today and tomorrow. Once every
writer is done, one refresh per rollup (include_current) must leave the stats equal to a
recomputation, tally.invalidations empty, every refresh step done and verified.

Why verified must always be true here: a step deletes the bucket's pending
invalidations (snapshot S1), recomputes their groups (a later snapshot S3 >= S1) and
verifies in a later one still; a write is committed together with its invalidation, so a
difference the verification sees comes from a write committed after S1, whose
invalidation is still pending and explains it (refresh_step.sql). Nothing else writes the
stats of a deferred rollup.

Two races once found here are shown deterministically below: a TRUNCATE of the source
during a refresh step (it deadlocked when the step locked the stats table before the
source; the step now takes ROW EXCLUSIVE on the source first) and set_mode('immediate')
during a whole-day refresh step of the same day (it failed with a duplicate key; the step's
source lock now serialises the two). The stress test runs its TRUNCATEs between refresh
calls and flips only the rollup without buckets, so that it keeps testing what it is
about: lost and double-counted writes.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from tests.exactness import assert_exact

WRITERS = 6
WRITE_SECONDS = 6.0
GROUPS = 8
FIRST_DAY, LAST_DAY = -9, 1  # day offsets from today (UTC) the writers use
DEFERRED_SINCE_DAY = -3  # days -3 .. -1 are due for a whole-day refresh and finalisation

SCHEMA = """
CREATE TABLE public.events (
    id bigserial PRIMARY KEY,
    writer int NOT NULL,
    at timestamptz NOT NULL,
    grp int NOT NULL,
    amount numeric(12, 2) NOT NULL,
    live boolean NOT NULL DEFAULT true
);
CREATE INDEX ON public.events (((at AT TIME ZONE 'UTC')::date));
CREATE INDEX ON public.events (writer);
SELECT tally.create_rollup('events_daily', source => 'public.events',
    group_by => ARRAY[$$day = (at AT TIME ZONE 'UTC')::date$$, 'grp'],
    measures => ARRAY['n = count(*)', 'total = sum(amount)', 'biggest = max(amount)',
                      'smallest = min(amount)', 'mean = avg(amount)'],
    filter => 'live');
SELECT tally.create_rollup('events_by_writer', source => 'public.events',
    group_by => ARRAY['writer', 'grp'], measures => ARRAY['n = count(*)', 'total = sum(amount)']);
"""

# Every rollup, its refresh options: the final refresh uses these.
FINAL_REFRESH = {"events_daily": '{"include_current": true}', "events_by_writer": None}


def today_utc() -> date:
    return datetime.now(UTC).date()


def moment(rng: random.Random, offset: int) -> datetime:
    """A random instant of day today+offset (UTC), the edges of the day included."""
    start = datetime.combine(today_utc() + timedelta(days=offset), datetime.min.time(), tzinfo=UTC)
    second = rng.choice([0, 86399, rng.randrange(86400)])
    return start + timedelta(seconds=second, microseconds=rng.choice([0, 999999, rng.randrange(10**6)]))


def amount(rng: random.Random) -> Decimal:
    return Decimal(rng.randrange(-5000, 100000)) / 100


def rows(rng: random.Random, writer: int, count: int) -> tuple[Any, ...]:
    """Parameters of INSERT_ROWS: count rows spread over every day and group."""
    return (
        writer,
        [moment(rng, rng.randint(FIRST_DAY, LAST_DAY)) for _ in range(count)],
        [rng.randrange(GROUPS) for _ in range(count)],
        [amount(rng) for _ in range(count)],
        [rng.random() < 0.8 for _ in range(count)],
    )


INSERT_ROWS = (
    "INSERT INTO public.events (writer, at, grp, amount, live) "
    "SELECT %s, u.at, u.grp, u.amount, u.live "
    "FROM unnest(%s::timestamptz[], %s::int[], %s::numeric[], %s::boolean[]) AS u(at, grp, amount, live)"
)
# moves some of the writer's rows to other days (kept within the test's days) and groups
MOVE_ROWS = (
    "UPDATE public.events SET at = at + make_interval(days => %(shift)s), grp = (grp + %(step)s) %% "
    + str(GROUPS)
    + " WHERE writer = %(writer)s AND id %% %(modulus)s = %(residue)s"
    " AND ((at + make_interval(days => %(shift)s)) AT TIME ZONE 'UTC')::date"
    " BETWEEN %(first)s::date AND %(last)s::date"
)
AMEND_ROWS = (
    "UPDATE public.events SET amount = amount + %(delta)s "
    "WHERE writer = %(writer)s AND id %% %(modulus)s = %(residue)s"
)
TOGGLE_ROWS = (
    "UPDATE public.events SET live = NOT live WHERE writer = %(writer)s AND id %% %(modulus)s = %(residue)s"
)
DELETE_ROWS = "DELETE FROM public.events WHERE writer = %(writer)s AND id %% %(modulus)s = %(residue)s"


class Run:
    """State shared by the threads of one stress run."""

    def __init__(self) -> None:
        self.stop_writing = threading.Event()
        self.stop_background = threading.Event()
        self.failures: list[str] = []
        self.mismatches: list[str] = []
        self.counts: Counter[str] = Counter()
        self.count_lock = threading.Lock()
        # each refresher holds its lock around a run; a TRUNCATE takes all of them (see the
        # module docstring: a TRUNCATE concurrent with a refresh step can deadlock)
        self.refresh_locks = [threading.Lock(), threading.Lock()]
        now = time.monotonic()
        self.truncate_at = [now + WRITE_SECONDS / 3, now + WRITE_SECONDS * 2 / 3]

    def count(self, what: str) -> None:
        with self.count_lock:
            self.counts[what] += 1

    @contextmanager
    def no_refresh_running(self) -> Iterator[None]:
        with ExitStack() as stack:
            for lock in self.refresh_locks:
                stack.enter_context(lock)
            yield


def statement_parameters(rng: random.Random, writer: int) -> dict[str, Any]:
    today = today_utc()
    return {
        "writer": writer,
        "shift": rng.choice([-2, -1, 1, 2]),
        "step": rng.randrange(1, GROUPS),
        "modulus": rng.choice([3, 5, 7]),
        "residue": rng.randrange(3),
        "delta": Decimal(rng.choice([-250, -1, 1, 99])) / 100,
        "first": today + timedelta(days=FIRST_DAY),
        "last": today + timedelta(days=LAST_DAY),
    }


def one_change(conn: psycopg.Connection[Any], rng: random.Random, writer: int) -> str:
    """One random statement over the writer's own rows (or new rows); returns its kind."""
    kind = rng.choice(["insert_one", "insert_many", "move", "move", "amend", "toggle", "delete"])
    parameters = statement_parameters(rng, writer)
    if kind == "insert_one":
        conn.execute(INSERT_ROWS, rows(rng, writer, 1))
    elif kind == "insert_many":
        conn.execute(INSERT_ROWS, rows(rng, writer, rng.randint(2, 25)))
    elif kind == "move":
        conn.execute(MOVE_ROWS, parameters)
    elif kind == "amend":
        conn.execute(AMEND_ROWS, parameters)
    elif kind == "toggle":
        conn.execute(TOGGLE_ROWS, parameters)
    else:
        parameters["modulus"] = 11
        conn.execute(DELETE_ROWS, parameters)
    return kind


def writer_work(conn: psycopg.Connection[Any], writer: int, run: Run) -> None:
    rng = random.Random(1000 + writer)
    try:
        while not run.stop_writing.is_set():
            if writer == 0 and run.truncate_at and time.monotonic() >= run.truncate_at[0]:
                # TRUNCATE while the other writers write and invalidations are pending
                with run.no_refresh_running():
                    conn.execute("TRUNCATE public.events")
                run.truncate_at.pop(0)
                run.count("truncate")
            roll = rng.random()
            if roll < 0.55:  # one statement, its own transaction
                run.count(one_change(conn, rng, writer))
            elif roll < 0.70:  # rolled back: must leave no trace
                with conn.transaction():
                    for _ in range(rng.randint(1, 3)):
                        one_change(conn, rng, writer)
                    raise psycopg.Rollback()
                run.count("rolled_back")
            elif roll < 0.97:  # several statements, open across refresh snapshots, then committed
                with conn.transaction():
                    one_change(conn, rng, writer)
                    conn.execute("SELECT pg_sleep(%s)", (rng.choice([0.02, 0.05, 0.1, 0.2]),))
                    with conn.transaction():  # a savepoint, sometimes rolled back
                        one_change(conn, rng, writer)
                        if rng.random() < 0.4:
                            raise psycopg.Rollback()
                    one_change(conn, rng, writer)
                run.count("slow_transaction")
            else:
                time.sleep(rng.choice([0.0, 0.005, 0.02]))
    except BaseException as exc:
        run.failures.append(f"writer {writer}: {exc!r}")


def refresher_work(conn: psycopg.Connection[Any], index: int, run: Run) -> None:
    rng = random.Random(2000 + index)
    try:
        while not run.stop_background.is_set():
            with run.refresh_locks[index]:
                if index == 0:
                    current = rng.random() < 0.75
                    conn.execute(
                        "CALL tally.run_job('events_daily', 'refresh', %s)",
                        (json.dumps({"include_current": current}),),
                    )
                    conn.execute("CALL tally.run_job('events_by_writer', 'refresh')")
                    run.count("refresh_calls")
                else:  # overlaps the first refresher: mostly skipped by the job's lock
                    conn.execute("CALL tally.run_job('events_daily', 'refresh')")
            time.sleep(0.01 if index == 0 else 0.15)
    except BaseException as exc:
        run.failures.append(f"refresher {index}: {exc!r}")


def comparison_query(conn: psycopg.Connection[Any], rollup: str) -> sql.Composed:
    """Rows where tally.read_pending and a recomputation from the source differ."""
    columns = [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM tally.stats_columns(%s) WHERE recompute_expression IS NOT NULL",
            (rollup,),
        )
    ]
    (recompute,) = conn.execute("SELECT tally.recompute_sql(%s)", (rollup,)).fetchone()  # type: ignore[misc]
    (stats,) = conn.execute(
        "SELECT stats_table::text FROM tally.rollups WHERE rollup_name = %s", (rollup,)
    ).fetchone()  # type: ignore[misc]
    column_list = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    # one statement: the source is locked before read_pending reads the stats, the order
    # a TRUNCATE takes them in
    return sql.SQL(
        "WITH expected AS MATERIALIZED (SELECT {cols} FROM ({recompute}) AS r), "
        "pending AS MATERIALIZED (SELECT {cols} FROM tally.read_pending(NULL::{stats})) "
        "(SELECT 'read_pending' AS side, * FROM (TABLE pending EXCEPT ALL TABLE expected) AS a) "
        "UNION ALL (SELECT 'recomputed', * FROM (TABLE expected EXCEPT ALL TABLE pending) AS b)"
    ).format(cols=column_list, recompute=sql.SQL(recompute), stats=sql.SQL(stats))


def reader_work(conn: psycopg.Connection[Any], run: Run) -> None:
    try:
        queries = {rollup: comparison_query(conn, rollup) for rollup in FINAL_REFRESH}
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        while not run.stop_background.is_set():
            with conn.transaction():
                for rollup, query in queries.items():
                    diff = conn.execute(query).fetchall()
                    if diff:
                        run.mismatches.append(f"{rollup}: {diff[:6]}")
            run.count("exact_reads")
            time.sleep(0.05)
    except BaseException as exc:
        run.failures.append(f"reader: {exc!r}")


def flipper_work(conn: psycopg.Connection[Any], run: Run) -> None:
    rng = random.Random(3000)
    try:
        while not run.stop_background.is_set():
            time.sleep(rng.uniform(0.2, 0.6))
            conn.execute("SELECT tally.set_mode('events_by_writer', 'immediate')")
            time.sleep(rng.uniform(0.1, 0.4))
            conn.execute("SELECT tally.set_mode('events_by_writer', 'deferred')")
            run.count("mode_flips")
    except BaseException as exc:
        run.failures.append(f"flipper: {exc!r}")


def start(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_concurrent_writers_and_refreshes_converge_to_the_exact_stats(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    started = time.monotonic()
    conn.execute(SCHEMA)
    seed = random.Random(7)
    for writer in range(WRITERS):  # history written in immediate mode
        conn.execute(INSERT_ROWS, rows(seed, writer, 40))
    since = datetime.combine(
        today_utc() + timedelta(days=DEFERRED_SINCE_DAY), datetime.min.time(), tzinfo=UTC
    )
    conn.execute("SELECT set_config('pgtally.clock', %s, false)", (since.isoformat(),))
    conn.execute("""SELECT tally.set_mode('events_daily', 'deferred', '{"bucket": "day"}')""")
    conn.execute("SELECT tally.set_mode('events_by_writer', 'deferred')")
    conn.execute("RESET pgtally.clock")

    run = Run()
    writers = [start(writer_work, connect(), w, run) for w in range(WRITERS)]
    background = [
        start(refresher_work, connect(), 0, run),
        start(refresher_work, connect(), 1, run),
        start(reader_work, connect(), run),
        start(flipper_work, connect(), run),
    ]
    time.sleep(WRITE_SECONDS)
    run.stop_writing.set()
    for thread in writers:
        thread.join(timeout=30)
    run.stop_background.set()
    for thread in background:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in writers + background), "a thread hung"
    assert run.failures == []

    # all writers done, the flipper left events_by_writer deferred: one final refresh each
    assert [r[0] for r in conn.execute("SELECT rollup_name FROM tally.deferred_rollups ORDER BY 1")] == [
        "events_by_writer",
        "events_daily",
    ]
    for rollup, options in FINAL_REFRESH.items():
        conn.execute("CALL tally.run_job(%s, 'refresh', %s)", (rollup, options))
    assert_exact(conn, "events_daily", "events_by_writer")
    assert conn.execute("SELECT count(*) FROM tally.invalidations").fetchone() == (0,)
    assert run.mismatches == [], "read_pending differed from the source in some snapshot"

    # every refresh step was done and verified: concurrent writes never count as a mismatch.
    # A step that found its rollup made immediate by the flipper (after waiting for its
    # set_mode) skips it: set_mode applied the pending groups itself.
    bad_steps = conn.execute(
        "SELECT run_id, rollup_name, bucket, status, verified, error_sqlstate, error_text FROM tally.runs "
        "WHERE run_kind = 'refresh' AND (status <> 'done' OR verified IS NOT TRUE) "
        "AND NOT (status = 'skipped' AND details ->> 'reason' = 'the rollup is no longer deferred')"
    ).fetchall()
    assert bad_steps == []
    # job runs: done, or skipped by the job lock; a refresh planned while the flipper had
    # made events_by_writer immediate fails "not deferred" (55000), as it should
    bad_jobs = conn.execute(
        "SELECT run_id, rollup_name, status, error_sqlstate, error_text FROM tally.runs WHERE run_kind = 'job' "
        "AND status NOT IN ('done', 'skipped') "
        "AND NOT (rollup_name = 'events_by_writer' AND status = 'failed' AND error_sqlstate = '55000')"
    ).fetchall()
    assert bad_jobs == []
    assert conn.execute(
        "SELECT count(*) FROM tally.runs WHERE run_kind = 'job' AND status = 'done' AND verified IS FALSE"
    ).fetchone() == (0,)
    assert conn.execute(
        "SELECT count(*) FROM tally.bucket_state WHERE attempts > 0 OR NOT verified"
    ).fetchone() == (0,)

    # the run exercised what it claims to
    counts = run.counts
    assert counts["truncate"] == 2 and counts["mode_flips"] >= 3 and counts["rolled_back"] >= 10
    assert counts["slow_transaction"] >= 40 and counts["refresh_calls"] >= 10 and counts["exact_reads"] >= 10
    late = conn.execute(  # days refreshed again after they were finalised: late data
        "SELECT count(*) FROM tally.bucket_state AS b WHERE b.finalised_at IS NOT NULL AND EXISTS ("
        "SELECT FROM tally.runs AS r WHERE r.run_kind = 'refresh' AND r.rollup_name = b.rollup_name "
        "AND r.bucket = b.bucket AND r.started_at > b.finalised_at AND NOT (r.details ->> 'full')::boolean)"
    ).fetchone()
    assert late is not None and late[0] >= 1
    assert conn.execute("SELECT count(*) FROM public.events").fetchone()[0] > 0  # type: ignore[index]
    assert time.monotonic() - started < 60


# --- the two races above, made deterministic ------------------------------------------

COSTS = """
CREATE TABLE public.costs (id bigserial PRIMARY KEY, at timestamptz NOT NULL, amount numeric NOT NULL);
SELECT tally.create_rollup('daily_costs', source => 'public.costs',
    group_by => ARRAY[$$day = (at AT TIME ZONE 'UTC')::date$$],
    measures => ARRAY['total = sum(amount)', 'n = count(*)']);
"""


def yesterday_at(hour: int) -> datetime:
    """Yesterday (UTC) at hour:00 UTC."""
    return datetime.combine(today_utc() - timedelta(days=1), datetime.min.time(), tzinfo=UTC) + timedelta(
        hours=hour
    )


def add_cost(conn: psycopg.Connection[Any], at: datetime, value: int) -> None:
    conn.execute("INSERT INTO public.costs (at, amount) VALUES (%s, %s)", (at, Decimal(value)))


def wait_until_blocked(conn: psycopg.Connection[Any], pid: int, relation: str | None = None) -> None:
    """Until backend pid waits for a lock (on relation, when given)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted "
            "AND (%s::text IS NULL OR relation = %s::regclass)",
            (pid, relation, relation),
        ).fetchone()
        if row and row[0] > 0:
            return
        time.sleep(0.02)
    raise AssertionError(f"backend {pid} never blocked")


def in_thread(
    conn: psycopg.Connection[Any], query: str, errors: dict[str, str], name: str
) -> threading.Thread:
    def work() -> None:
        try:
            conn.execute(query)
        except psycopg.Error as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"

    return start(work)


def assert_refreshed_cleanly(conn: psycopg.Connection[Any]) -> None:
    conn.execute("""CALL tally.run_job('daily_costs', 'refresh', '{"include_current": true}')""")
    assert_exact(conn, "daily_costs")
    assert conn.execute("SELECT count(*) FROM tally.invalidations").fetchone() == (0,)
    assert (
        conn.execute(
            "SELECT run_id, status, error_text FROM tally.runs WHERE run_kind = 'refresh' AND status <> 'done'"
        ).fetchall()
        == []
    )


def test_truncate_of_the_source_during_a_refresh_step_does_not_deadlock(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(COSTS)
    add_cost(conn, yesterday_at(12), 7)
    conn.execute("""SELECT tally.set_mode('daily_costs', 'deferred', '{"bucket": "day"}')""")
    add_cost(conn, yesterday_at(13), 8)  # a pending invalidation of yesterday
    # Widen the window between the step's DELETE of the stats rows and its read of the
    # source (without it the window is the time the DELETE of a day's rows takes): a
    # reader holds yesterday's stats row for a moment.
    holder = connect()
    holder.execute("BEGIN")
    holder.execute("SELECT * FROM public.daily_costs FOR UPDATE")
    refresher, truncater = connect(), connect()
    errors: dict[str, str] = {}
    refresh = in_thread(refresher, "CALL tally.run_job('daily_costs', 'refresh')", errors, "refresh")
    wait_until_blocked(conn, refresher.info.backend_pid)  # the step holds the stats table
    truncate = in_thread(truncater, "TRUNCATE public.costs", errors, "truncate")
    wait_until_blocked(conn, truncater.info.backend_pid)  # waits for the step, which holds the source
    holder.execute("COMMIT")  # the step goes on to read the source
    refresh.join(30)
    truncate.join(30)
    assert errors == {}
    assert_refreshed_cleanly(conn)


def test_switching_to_immediate_during_a_whole_day_refresh_step_succeeds(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(COSTS)
    add_cost(conn, yesterday_at(12), 7)  # counted in immediate mode
    # deferred since yesterday 00:00 UTC: yesterday is due for a whole-day refresh, with
    # no pending invalidation (the S5 pattern: the hourly runs consumed them)
    conn.execute("SELECT set_config('pgtally.clock', %s, false)", (yesterday_at(0).isoformat(),))
    conn.execute("""SELECT tally.set_mode('daily_costs', 'deferred', '{"bucket": "day"}')""")
    conn.execute("RESET pgtally.clock")
    holder = connect()  # holds the step inside its DELETE of the day's stats rows
    holder.execute("BEGIN")
    holder.execute("SELECT * FROM public.daily_costs FOR UPDATE")
    refresher, switcher = connect(), connect()
    errors: dict[str, str] = {}
    refresh = in_thread(refresher, "CALL tally.run_job('daily_costs', 'refresh')", errors, "refresh")
    wait_until_blocked(conn, refresher.info.backend_pid)
    # late data for yesterday, committed while the step runs: a pending invalidation
    add_cost(conn, yesterday_at(13), 100)
    switch = in_thread(switcher, "SELECT tally.set_mode('daily_costs', 'immediate')", errors, "set_mode")
    wait_until_blocked(conn, switcher.info.backend_pid)
    holder.execute("COMMIT")
    refresh.join(30)
    switch.join(30)
    assert errors == {}
    assert conn.execute("SELECT count(*) FROM tally.deferred_rollups").fetchone() == (0,)
    assert_exact(conn, "daily_costs")
    assert conn.execute("SELECT count(*) FROM tally.invalidations").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM tally.bucket_state").fetchone() == (0,)
