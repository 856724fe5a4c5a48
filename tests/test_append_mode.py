"""Append mode (tally.set_mode(rollup, 'append'), issue 4): writers append their changes to
an unindexed pending table and lock no stats row; the stats view adds the pending rows in,
so it stays exactly equal to a recomputation after every kind of write from several
backends, while compactions fold the pending rows, corrections and backfills run; and
set_mode converts back and forth without losing anything."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.exactness import assert_exact
from tests.test_hot_slots import (
    ACTIONS,
    FACTS,
    random_action_writes,
    repeat_until_stopped,
    with_random_blocks,
    write_blocks_and_check,
)


def appending(conn: psycopg.Connection[Any], *rollups: str) -> None:
    for rollup in rollups:
        assert conn.execute("SELECT tally.set_mode(%s, 'append')", (rollup,)).fetchone() == ("append",)


def pending_rows(conn: psycopg.Connection[Any], rollup: str) -> int:
    table = conn.execute("SELECT pending_table::text FROM tally.rollups WHERE rollup_name = %s", (rollup,))
    name = table.fetchone()
    assert name is not None and name[0] is not None, f"{rollup} has no pending table"
    row = conn.execute(f"SELECT count(*) FROM {name[0]}").fetchone()  # a regclass's text: quoted
    assert row is not None
    return int(row[0])


@with_random_blocks
def test_random_writes_from_several_backends_keep_rollups_in_append_mode_exact(
    conn: psycopg.Connection[Any],
    connect: Callable[..., psycopg.Connection[Any]],
    blocks: list[Any],
    compact_after: list[bool],
) -> None:
    if conn.execute("SELECT to_regclass('public.facts')").fetchone() == (None,):
        conn.execute(FACTS)
        appending(conn, "facts_by_g", "facts_by_h", "facts_overall")
    write_blocks_and_check(conn, [connect() for _ in range(3)], blocks, compact_after)


def test_append_mode_moves_the_stats_behind_a_view_and_back(conn: psycopg.Connection[Any]) -> None:
    conn.execute(ACTIONS)
    conn.execute(
        "INSERT INTO public.actions (user_id, lbs, verified) SELECT g % 4, g / 4.0, g % 5 <> 0 "
        "FROM generate_series(1, 40) g"
    )
    before = conn.execute("SELECT * FROM public.per_user ORDER BY user_id").fetchall()
    appending(conn, "per_user", "overall")
    relations = conn.execute(
        "SELECT stats_table::text, slot_table::text, pending_table::text, "
        "(SELECT relkind FROM pg_class WHERE oid = stats_table) FROM tally.rollups WHERE rollup_name = 'per_user'"
    ).fetchone()
    assert relations == ("per_user", "per_user_slots", "per_user_pending", "v")
    assert conn.execute("SELECT * FROM public.per_user ORDER BY user_id").fetchall() == before
    # every kind of write appends; nothing is folded until a compaction
    conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (1, 2.5)")
    conn.execute("INSERT INTO public.actions (user_id, lbs) SELECT g, g FROM generate_series(5, 7) g")
    with conn.cursor().copy("COPY public.actions (user_id, lbs, verified) FROM STDIN") as copy:
        copy.write_row((2, Decimal("0.125"), True))
        copy.write_row((8, Decimal("3"), False))
    conn.execute("UPDATE public.actions SET user_id = user_id + 1 WHERE id % 3 = 0")
    conn.execute("DELETE FROM public.actions WHERE id = 2")
    conn.execute("DELETE FROM public.actions WHERE id % 7 = 0")
    with conn.transaction():
        conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (1, 1000)")
        conn.execute("SAVEPOINT s")
        conn.execute("DELETE FROM public.actions WHERE user_id = 1")
        conn.execute("ROLLBACK TO SAVEPOINT s")
    assert pending_rows(conn, "per_user") > 0
    assert conn.execute("SELECT count(*) FROM public.per_user_slots WHERE _tally_slot <> 0").fetchone() == (
        0,
    )
    assert_exact(conn)
    top = conn.execute("SELECT group_key ->> 'user_id', measure_value FROM tally.top('per_user', 'total', 2)")
    expected = conn.execute(
        "SELECT user_id::text, total::text FROM public.per_user AS p ORDER BY p.total DESC, p.user_id LIMIT 2"
    )
    assert top.fetchall() == expected.fetchall()
    folded = conn.execute("SELECT tally.compact('per_user')").fetchone()
    assert folded is not None and folded[0] > 0
    assert pending_rows(conn, "per_user") == 0
    assert_exact(conn)
    conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (3, 4)")
    conn.execute("TRUNCATE public.actions")
    assert pending_rows(conn, "per_user") == 0
    assert conn.execute("SELECT count(*) FROM public.per_user").fetchone() == (0,)
    conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (3, 4), (4, 5)")
    assert conn.execute("SELECT total FROM public.overall").fetchone() == (Decimal("9.000000"),)

    # back to immediate: the pending rows are folded and the plain stats table returns
    assert conn.execute("SELECT tally.set_mode('per_user', 'immediate')").fetchone() == ("immediate",)
    assert conn.execute(
        "SELECT relkind, to_regclass('public.per_user_pending'), to_regclass('public.per_user_slots') "
        "FROM pg_class WHERE oid = 'public.per_user'::regclass"
    ).fetchone() == ("r", None, None)
    assert conn.execute(
        "SELECT pending_table, slot_table FROM tally.rollups WHERE rollup_name = 'per_user'"
    ).fetchone() == (
        None,
        None,
    )
    conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (3, 1)")
    assert_exact(conn)
    assert conn.execute("SELECT * FROM tally.schema_drift()").fetchall() == []


def test_one_row_writes_append_for_every_rollup_in_append_mode_in_one_statement(
    conn: psycopg.Connection[Any],
) -> None:
    # two rollups in append mode (different filters and keys) share the one-row path's
    # statement; the immediate and the deferred one keep theirs
    conn.execute(
        """
        CREATE TABLE public.mixed (id bigserial PRIMARY KEY, g int, h int NOT NULL, v numeric(12, 2),
                                   flag boolean NOT NULL DEFAULT true);
        SELECT tally.create_rollup('mixed_by_g', source => 'public.mixed', group_by => ARRAY['g'],
            measures => ARRAY['n = count(*)', 'total = sum(v)']);
        SELECT tally.create_rollup('mixed_by_h', source => 'public.mixed', group_by => ARRAY['h3 = h % 3'],
            measures => ARRAY['total = sum(v * 2)', 'mean = avg(v)'], filter => 'flag',
            stats_table => 'public."FROM changes AS c"');  -- a name that is also generated text
        SELECT tally.create_rollup('mixed_overall', source => 'public.mixed',
            measures => ARRAY['n = count(*)', 'total = sum(v)', 'low = min(v)']);
        SELECT tally.create_rollup('mixed_later', source => 'public.mixed', group_by => ARRAY['h'],
            measures => ARRAY['n = count(*)'], filter => 'v > 0');
        """
    )
    conn.execute("SELECT tally.set_mode('mixed_later', 'deferred')")
    appending(conn, "mixed_by_h", "mixed_by_g")
    for event in ("insert", "delete"):
        code = conn.execute(
            "SELECT pg_get_functiondef(tally.generated_function('public.mixed', %s))", (event,)
        ).fetchone()
        assert code is not None
        one_row_path = code[0].split("    ELSE\n")[0]
        assert one_row_path.count("changes_mixed_by_g AS (") == 1, one_row_path
        assert one_row_path.count("changes_mixed_by_h AS (") == 1, one_row_path
        # the appends' statement, the immediate rollup's and the deferred one's
        assert one_row_path.count("WITH ") == 3, one_row_path

    writes = [
        "INSERT INTO public.mixed (g, h, v) VALUES (1, 4, 2.50)",
        "INSERT INTO public.mixed (g, h, v, flag) VALUES (NULL, 5, NULL, true)",
        "INSERT INTO public.mixed (g, h, v, flag) VALUES (2, 6, -1.25, false)",
        "INSERT INTO public.mixed (g, h, v, flag) SELECT i % 3, i, i / 4.0, i % 2 = 0 FROM generate_series(1, 12) i",
        "DELETE FROM public.mixed WHERE id = 1",
        "DELETE FROM public.mixed WHERE id = (SELECT min(id) FROM public.mixed WHERE NOT flag)",
        "DELETE FROM public.mixed WHERE id = -1",
        "UPDATE public.mixed SET g = g + 1, flag = NOT flag WHERE id % 4 = 0",
        "DELETE FROM public.mixed WHERE h > 9",
    ]
    for statement in writes:
        conn.execute(statement)
        conn.execute("CALL tally.run_job('mixed_later', 'refresh')")
        assert_exact(conn)
    with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
        conn.execute("INSERT INTO public.mixed (g, h, v) VALUES (7, 7, 7)")
        conn.execute("SELECT 1 / 0")
    assert pending_rows(conn, "mixed_by_g") > 0 and pending_rows(conn, "mixed_by_h") > 0
    conn.execute("SELECT tally.compact('mixed_by_g'), tally.compact('mixed_by_h')")
    assert_exact(conn)


def test_writers_of_one_group_do_not_wait_for_each_other(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(ACTIONS)
    appending(conn, "per_user", "overall")
    first, second = connect(), connect()
    second.execute("SET lock_timeout = '1s'")
    insert = "INSERT INTO public.actions (user_id, lbs) VALUES (%s, 1.5)"
    first.execute("BEGIN")
    first.execute(insert, (1,))
    first.execute("DELETE FROM public.actions WHERE user_id = 1")
    first.execute(insert, (1,))
    second.execute(insert, (1,))  # same user, same global total: no row to wait for
    second.execute("SELECT tally.compact('per_user'), tally.compact('overall')")  # nor does a compaction
    first.execute("COMMIT")
    assert conn.execute("SELECT user_id, total, n FROM public.per_user").fetchall() == [
        (1, Decimal("3.000000"), 2)
    ]
    assert_exact(conn)


def test_concurrent_writers_compactions_and_corrections_stay_exact(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(ACTIONS)
    appending(conn, "overall", "per_user")
    failures: list[str] = []
    stop = threading.Event()

    compact = ["SELECT tally.compact('per_user'), tally.compact('overall')"]
    reconcile = ["SELECT * FROM tally.reconcile('per_user', p_auto_correct => true)"]
    # writers in append mode lock no stats row: any six sessions, slots or not
    threads = [
        threading.Thread(target=random_action_writes, args=(connect(), seed, failures)) for seed in range(6)
    ]
    background = [
        threading.Thread(target=repeat_until_stopped, args=(connect, statements, stop, failures))
        for statements in (compact, compact, reconcile)  # two compactions take turns on the pending rows
    ]
    for thread in background + threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    stop.set()
    for thread in background:
        thread.join(timeout=60)
    assert failures == []
    assert_exact(conn)
    # concurrent writes and compactions never looked like drift: nothing was "corrected"
    assert conn.execute("SELECT count(*) FROM tally.corrections").fetchone() == (0,)
    conn.execute("SELECT tally.compact('per_user'), tally.compact('overall')")
    assert pending_rows(conn, "per_user") == 0 and pending_rows(conn, "overall") == 0
    assert_exact(conn)


def test_drift_backfill_feed_and_drop_in_append_mode(conn: psycopg.Connection[Any]) -> None:
    conn.execute(ACTIONS)
    conn.execute("INSERT INTO public.actions (user_id, lbs) SELECT g % 3, g FROM generate_series(1, 30) g")
    appending(conn, "per_user")
    conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (1, 1), (2, 2)")
    # drift in a pending row is found and corrected like any other
    conn.execute("UPDATE public.per_user_pending SET total = total + 1 WHERE user_id = 1")
    summary = conn.execute(
        "SELECT in_sync, groups_mismatched FROM tally.reconcile('per_user', p_auto_correct => true)"
    ).fetchone()
    assert summary == (False, 1)
    assert_exact(conn, "per_user")
    # a backfill recomputes its groups, pending rows included
    conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (1, 10), (5, 5)")
    conn.execute("UPDATE public.per_user_pending SET total = total * 2")
    conn.execute("CALL tally.backfill('per_user', 2)")
    assert_exact(conn, "per_user")
    # a change feed in values mode sends the group as the view now shows it, pending rows
    # included (every number as an exact decimal string)
    conn.execute("SELECT tally.set_notify('per_user', 'values', 'per_user_changes')")
    conn.execute("LISTEN per_user_changes")
    conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (4, 4), (4, 0.5)")
    notices = [json.loads(n.payload) for n in conn.notifies(timeout=2, stop_after=1)]
    assert [(row["user_id"], row["total"], row["n"]) for n in notices for row in n["rows"]] == [
        ("4", "4.500000", "2")
    ]
    assert_exact(conn, "per_user")
    conn.execute("SELECT tally.drop_rollup('per_user')")
    assert conn.execute(
        "SELECT to_regclass('public.per_user'), to_regclass('public.per_user_slots'), "
        "to_regclass('public.per_user_pending')"
    ).fetchone() == (None, None, None)
    assert_exact(conn, "overall")


def test_bad_append_requests_are_refused_and_change_nothing(conn: psycopg.Connection[Any]) -> None:
    conn.execute(ACTIONS)
    conn.execute(
        "SELECT tally.create_rollup('extremes', source => 'public.actions', group_by => ARRAY['user_id'], "
        "measures => ARRAY['biggest = max(lbs)'])"
    )
    with pytest.raises(errors.FeatureNotSupported, match="min or max"):
        conn.execute("SELECT tally.set_mode('extremes', 'append')")
    with pytest.raises(errors.InvalidParameterValue, match="unknown mode"):
        conn.execute("SELECT tally.set_mode('per_user', 'appending')")
    conn.execute("SELECT tally.make_rankable('per_user', 'total')")
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="indexes of its own"):
        conn.execute("SELECT tally.set_mode('per_user', 'append')")
    conn.execute("DROP INDEX public.per_user_rank_total")
    conn.execute("SELECT tally.set_mode('per_user', 'deferred')")
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="deferred"):
        conn.execute("SELECT tally.set_mode('per_user', 'append')")
    conn.execute("SELECT tally.set_mode('per_user', 'immediate')")
    conn.execute("CREATE TABLE public.overall_pending (x int)")
    with pytest.raises(errors.DuplicateTable, match="overall_pending"):
        conn.execute("SELECT tally.set_mode('overall', 'append')")
    # nothing half-made: no view, no slot table, the catalogue as before
    assert conn.execute(
        "SELECT relkind, to_regclass('public.overall_slots') FROM pg_class WHERE oid = 'public.overall'::regclass"
    ).fetchone() == ("r", None)
    assert conn.execute("SELECT count(*) FROM tally.rollups WHERE pending_table IS NOT NULL").fetchone() == (
        0,
    )
    conn.execute("DROP TABLE public.overall_pending")
    appending(conn, "overall")
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="append mode"):
        conn.execute("SELECT tally.set_slots('overall', 4)")
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="append mode"):
        conn.execute("SELECT tally.set_mode('overall', 'deferred')")
    appending(conn, "overall")  # again: nothing to do
    conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (1, 2)")
    assert_exact(conn)


def test_a_compact_job_can_fold_every_fraction_of_a_second_within_one_run(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(ACTIONS)
    appending(conn, "per_user", "overall")
    conn.execute("INSERT INTO public.actions (user_id, lbs) SELECT g % 3, g FROM generate_series(1, 9) g")
    conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (1, 1)")
    # nothing folds the pending rows yet: health says so
    assert conn.execute("SELECT rollup_name, healthy, problem FROM tally.health()").fetchall() == [
        ("overall", False, "rollup in append mode has no compact job"),
        ("per_user", False, "rollup in append mode has no compact job"),
    ]
    conn.execute("""CALL tally.run_job(NULL, 'compact', '{"for_seconds": 0.6, "every_seconds": 0.2}')""")
    run = conn.execute(
        "SELECT status, details -> 'compacted', (details ->> 'rounds')::int FROM tally.runs WHERE run_kind = 'job'"
    ).fetchone()
    assert run is not None and run[0] == "done" and run[2] >= 3
    assert run[1] == {"overall": 2, "per_user": 4}  # 1 + 1 pending rows, 3 + 1 pending rows
    assert pending_rows(conn, "per_user") == 0
    assert_exact(conn)
    for options in (
        '{"for_seconds": "soon"}',
        '{"every_seconds": 0}',
        '{"for_seconds": 7200}',
        '{"rounds": 3}',
    ):
        with pytest.raises(errors.InvalidParameterValue):
            conn.execute("SELECT tally.schedule('per_user', 'compact', '* * * * *', %s)", (options,))


def test_odd_names_fold_and_switch_back(conn: psycopg.Connection[Any]) -> None:
    # a key named with a comma and a space, quotes and capitals in the table names
    conn.execute('CREATE TABLE public."Src ""q"" T" ("a, b" int, "Lbs" numeric NOT NULL)')
    conn.execute(
        """SELECT tally.create_rollup('oddkeys', source => 'public."Src ""q"" T"', group_by => ARRAY['"a, b"'],
           measures => ARRAY['total = sum("Lbs")', 'n = count(*)'], stats_table => 'public."Odd ""Stats"" T"')"""
    )
    conn.execute("SELECT tally.set_slots('oddkeys', 4)")
    conn.execute('INSERT INTO public."Src ""q"" T" VALUES (1, 2), (NULL, 3), (1, 4)')
    assert conn.execute("SELECT tally.compact('oddkeys')").fetchone() == (2,)
    appending(conn, "oddkeys")
    conn.execute('INSERT INTO public."Src ""q"" T" VALUES (1, 2), (NULL, 3)')
    assert conn.execute("SELECT tally.compact('oddkeys')").fetchone() == (2,)
    assert_exact(conn)
    conn.execute("SELECT tally.set_mode('oddkeys', 'immediate'), tally.set_slots('oddkeys', 1)")
    assert_exact(conn)
    # a 62-byte name of two-byte characters: the slot and pending tables still get names of their own
    name = "ä" * 31
    conn.execute("CREATE TABLE public.src2 (k int NOT NULL, v int NOT NULL)")
    conn.execute(
        "SELECT tally.create_rollup('mb', source => 'public.src2', group_by => ARRAY['k'], "
        "measures => ARRAY['total = sum(v)'], stats_table => %s)",
        (f'public."{name}"',),
    )
    appending(conn, "mb")
    tables = conn.execute(
        "SELECT slot_table::text, pending_table::text FROM tally.rollups WHERE rollup_name = 'mb'"
    ).fetchone()
    assert tables == (f'"{"ä" * 28}_slots"', f'"{"ä" * 27}_pending"')
    conn.execute("INSERT INTO public.src2 VALUES (1, 1)")
    assert_exact(conn)


def test_mode_changes_that_race_are_refused_and_leave_a_consistent_rollup(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(ACTIONS)
    first, second = connect(), connect()
    first.execute("BEGIN")
    first.execute("SELECT tally.set_mode('per_user', 'append')")
    failures: list[str] = []

    def make_deferred() -> None:
        try:
            second.execute("SELECT tally.set_mode('per_user', 'deferred')")
        except psycopg.Error as exc:
            failures.append(f"{type(exc).__name__}: {exc}")

    racer = threading.Thread(target=make_deferred)
    racer.start()
    deadline = time.monotonic() + 10
    while conn.execute(  # the second set_mode waits for the source lock
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (second.info.backend_pid,)
    ).fetchone() != ("Lock",):
        assert time.monotonic() < deadline, "the second set_mode never waited"
        time.sleep(0.05)
    first.execute("COMMIT")
    racer.join(30)
    assert len(failures) == 1 and "append mode" in failures[0]
    assert conn.execute("SELECT count(*) FROM tally.deferred_rollups").fetchone() == (0,)
    conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (1, 2)")
    conn.execute("SELECT tally.set_mode('per_user', 'immediate')")
    assert_exact(conn)


def test_append_mode_works_under_a_publication_of_all_tables(conn: psycopg.Connection[Any]) -> None:
    conn.execute(ACTIONS)
    conn.execute("CREATE PUBLICATION everything FOR ALL TABLES")
    try:
        appending(conn, "per_user", "overall")
        conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (1, 2), (2, 3)")
        assert conn.execute("SELECT tally.compact('per_user') + tally.compact('overall')").fetchone() == (3,)
        conn.execute("SELECT tally.set_mode('per_user', 'immediate')")
        assert_exact(conn)
    finally:
        conn.execute("DROP PUBLICATION everything")


def test_layout_changes_refuse_views_over_the_stats_table_and_stray_options(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(ACTIONS)
    conn.execute("CREATE VIEW public.dashboard AS SELECT user_id, total FROM public.per_user")
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="dashboard"):
        conn.execute("SELECT tally.set_mode('per_user', 'append')")
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="dashboard"):
        conn.execute("SELECT tally.set_slots('per_user', 4)")
    conn.execute("DROP VIEW public.dashboard")
    with pytest.raises(errors.InvalidParameterValue, match="takes no options"):
        conn.execute("""SELECT tally.set_mode('per_user', 'append', '{"bucket": "day"}')""")
    appending(conn, "per_user")
    conn.execute("CREATE VIEW public.dashboard AS SELECT user_id, total FROM public.per_user")
    conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (1, 2)")
    assert conn.execute("SELECT * FROM public.dashboard").fetchall() == [(1, Decimal("2.000000"))]
    # a bad option given to a run directly fails before the run starts: nothing left holding the job's lock
    with pytest.raises(errors.InvalidParameterValue):
        conn.execute("""CALL tally.run_job('per_user', 'compact', '{"for_seconds": "soon"}')""")
    assert conn.execute("SELECT count(*) FROM tally.runs").fetchone() == (0,)
    conn.execute("CALL tally.run_job('per_user', 'compact')")
    assert conn.execute("SELECT status FROM tally.runs").fetchall() == [("done",)]
