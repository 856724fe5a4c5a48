"""Hot groups split over slot rows (tally.set_slots, issue 4): concurrent writers of one
group do not queue on one row, the stats view stays exactly equal to a recomputation
after every kind of write from several backends, compaction, corrections and backfill
keep it so, and set_slots converts back and forth without losing anything."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import errors

from tests.exactness import assert_exact
from tests.test_rollup_properties import SCHEMA, apply, block

SLOTS = 8

FACTS = (
    SCHEMA.split("SELECT tally.create_rollup")[0]
    + """
SELECT tally.create_rollup('facts_by_g', source => 'public.facts', group_by => ARRAY['g'],
    measures => ARRAY['n = count(*)', 'nv = count(v)', 'total = sum(amount)', 'mean = avg(v)']);
SELECT tally.create_rollup('facts_by_h', source => 'public.facts', group_by => ARRAY['h'],
    measures => ARRAY['n = count(*)', 'total = sum(v)'], filter => 'flag');
SELECT tally.create_rollup('facts_overall', source => 'public.facts',
    measures => ARRAY['n = count(*)', 'total = sum(amount)', 'mean = avg(amount)']);
"""
)

ACTIONS = """
CREATE TABLE public.actions (id bigserial PRIMARY KEY, user_id int NOT NULL, lbs numeric(30, 6) NOT NULL,
                             verified boolean NOT NULL DEFAULT true);
SELECT tally.create_rollup('per_user', source => 'public.actions', group_by => ARRAY['user_id'],
    measures => ARRAY['total = sum(lbs)', 'n = count(*)'], filter => 'verified');
SELECT tally.create_rollup('overall', source => 'public.actions',
    measures => ARRAY['total = sum(lbs)'], filter => 'verified');
"""


def slotted(conn: psycopg.Connection[Any], *rollups: str, slots: int = SLOTS) -> None:
    for rollup in rollups:
        assert conn.execute("SELECT tally.set_slots(%s, %s)", (rollup, slots)).fetchone() == (slots,)


def connections_on_distinct_slots(
    connect: Callable[..., psycopg.Connection[Any]], count: int, slots: int = SLOTS
) -> list[psycopg.Connection[Any]]:
    """`count` connections whose backends write to different slots (pid modulo slots)."""
    chosen: dict[int, psycopg.Connection[Any]] = {}
    while len(chosen) < count:
        candidate = connect()
        chosen.setdefault(candidate.info.backend_pid % slots, candidate)
    return list(chosen.values())


def random_action_writes(
    session: psycopg.Connection[Any], seed: int, failures: list[str], writes: int = 150
) -> None:
    """One session's random writes to public.actions (ACTIONS): one-row inserts, a multi-row
    insert and an UPDATE moving rows to another user in one transaction, deletes, and
    inserts rolled back. A database error is recorded in `failures`."""
    rng = random.Random(seed)
    try:
        for _ in range(writes):
            user = rng.randrange(5)
            choice = rng.random()
            if choice < 0.5:
                session.execute(
                    "INSERT INTO public.actions (user_id, lbs, verified) VALUES (%s, %s, %s)",
                    (user, Decimal(rng.randrange(1, 10_000)) / 100, rng.random() < 0.8),
                )
            elif choice < 0.65:
                with session.transaction():
                    session.execute(
                        "INSERT INTO public.actions (user_id, lbs) SELECT %s, g / 7.0 FROM generate_series(1, 5) g",
                        (user,),
                    )
                    session.execute(
                        "UPDATE public.actions SET user_id = %s WHERE id IN "
                        "(SELECT id FROM public.actions WHERE user_id = %s ORDER BY id LIMIT 2)",
                        ((user + 1) % 5, user),
                    )
            elif choice < 0.8:
                session.execute(
                    "DELETE FROM public.actions WHERE id IN (SELECT id FROM public.actions ORDER BY random() LIMIT 2)"
                )
            else:
                try:
                    with session.transaction():
                        session.execute("INSERT INTO public.actions (user_id, lbs) VALUES (%s, 100)", (user,))
                        raise RuntimeError("roll back")
                except RuntimeError:
                    pass
    except psycopg.Error as exc:
        failures.append(f"writer {seed}: {type(exc).__name__}: {exc}")


def repeat_until_stopped(
    connect: Callable[..., psycopg.Connection[Any]],
    statements: list[str],
    stop: threading.Event,
    failures: list[str],
) -> None:
    """Runs the statements in turn, in one session, until `stop` is set; a database error
    is recorded in `failures`."""
    session = connect()
    try:
        while not stop.is_set():
            for statement in statements:
                session.execute(statement)  # type: ignore[arg-type]
    except psycopg.Error as exc:
        failures.append(f"{statements[0]}: {type(exc).__name__}: {exc}")


def with_random_blocks(test: Callable[..., None]) -> Callable[..., None]:
    """Hypothesis draws `blocks` (up to six blocks of writes, each for one of three writers)
    and `compact_after` (whether to compact after each block) for the test."""
    return settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )(
        given(
            blocks=st.lists(st.tuples(st.integers(min_value=0, max_value=2), block), min_size=1, max_size=6),
            compact_after=st.lists(st.booleans(), min_size=6, max_size=6),
        )(test)
    )


@with_random_blocks
def test_random_writes_from_several_backends_keep_slotted_rollups_exact(
    conn: psycopg.Connection[Any],
    connect: Callable[..., psycopg.Connection[Any]],
    blocks: list[Any],
    compact_after: list[bool],
) -> None:
    if conn.execute("SELECT to_regclass('public.facts')").fetchone() == (None,):
        conn.execute(FACTS)
        slotted(conn, "facts_by_g", "facts_by_h", "facts_overall")
    writers = connections_on_distinct_slots(connect, 3)
    write_blocks_and_check(conn, writers, blocks, compact_after)


def write_blocks_and_check(
    conn: psycopg.Connection[Any],
    writers: list[psycopg.Connection[Any]],
    blocks: list[Any],
    compact_after: list[bool],
) -> None:
    """Empties public.facts, then runs each block (committed, rolled back or in autocommit)
    on its writer, compacting every rollup after the blocks `compact_after` marks, and
    checks every rollup exact after each block; closes the writers."""
    conn.execute("TRUNCATE public.facts")
    for index, (writer_index, (mode, steps)) in enumerate(blocks):
        writer = writers[writer_index]
        if mode == "commit":
            for action in steps:
                apply(writer, action)
        else:
            writer.execute("BEGIN")
            for action in steps:
                apply(writer, action)
            writer.execute("ROLLBACK" if mode == "rollback" else "COMMIT")
        if compact_after[index]:
            conn.execute("SELECT tally.compact(rollup_name) FROM tally.rollups")
        assert_exact(conn)
    for writer in writers:
        writer.close()


def test_a_writer_holding_the_global_row_does_not_block_another(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(ACTIONS)
    first, second = connections_on_distinct_slots(connect, 2)
    second.execute("SET lock_timeout = '1s'")
    insert = "INSERT INTO public.actions (user_id, lbs) VALUES (%s, 1.5)"

    # without slots the global row serialises writers: the second waits for the first
    first.execute("BEGIN")
    first.execute(insert, (1,))
    with pytest.raises(errors.LockNotAvailable):
        second.execute(insert, (2,))
    first.execute("ROLLBACK")

    slotted(conn, "overall", "per_user")
    first.execute("BEGIN")
    first.execute(insert, (1,))
    second.execute(insert, (2,))  # its own slot rows: no wait
    second.execute(insert, (1,))  # the same user too
    first.execute("COMMIT")
    assert conn.execute("SELECT total FROM public.overall").fetchone() == (Decimal("4.500000"),)
    assert conn.execute("SELECT user_id, total, n FROM public.per_user ORDER BY 1").fetchall() == [
        (1, Decimal("3.000000"), 2),
        (2, Decimal("1.500000"), 1),
    ]
    assert_exact(conn)


def test_concurrent_writers_compaction_and_corrections_stay_exact(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(ACTIONS)
    slotted(conn, "overall", "per_user")
    failures: list[str] = []
    stop = threading.Event()

    # writers on different slots: the transaction that inserts and then moves rows holds its
    # slot rows between its statements, so two writers sharing a slot while one of them
    # deletes rows the other moves could deadlock, as any two such transactions can (README)
    writers = connections_on_distinct_slots(connect, 6)
    threads = [
        threading.Thread(target=random_action_writes, args=(writer, seed, failures))
        for seed, writer in enumerate(writers)
    ]
    background = threading.Thread(
        target=repeat_until_stopped,
        args=(connect, ["SELECT tally.compact('per_user'), tally.compact('overall')",
                        "SELECT * FROM tally.reconcile('per_user', p_auto_correct => true)"], stop, failures),
    )  # fmt: skip
    background.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    stop.set()
    background.join(timeout=60)
    assert failures == []
    assert_exact(conn)
    # concurrent writes never looked like drift: nothing was "corrected"
    assert conn.execute("SELECT count(*) FROM tally.corrections").fetchone() == (0,)
    conn.execute("SELECT tally.compact('per_user'), tally.compact('overall')")
    assert_exact(conn)
    slots_left = conn.execute("SELECT count(*) FROM public.per_user_slots WHERE _tally_slot <> 0").fetchone()
    assert slots_left == (0,)


def test_drift_in_a_slot_is_found_and_corrected(conn: psycopg.Connection[Any]) -> None:
    conn.execute(ACTIONS)
    conn.execute("INSERT INTO public.actions (user_id, lbs) SELECT g % 3, g FROM generate_series(1, 30) g")
    slotted(conn, "per_user")
    conn.execute("UPDATE public.per_user_slots SET total = total + 1 WHERE user_id = 1")
    conn.execute(
        "INSERT INTO public.per_user_slots (user_id, _tally_slot, total, n, _tally_n_total, _tally_rows) "
        "VALUES (77, 3, 5, 1, 1, 1)"
    )
    summary = conn.execute(
        "SELECT in_sync, groups_mismatched, groups_extra FROM tally.reconcile('per_user', p_auto_correct => true)"
    ).fetchone()
    assert summary == (False, 1, 1)
    assert_exact(conn, "per_user")
    corrected = conn.execute(
        "SELECT group_key, column_name, previous_value, corrected_value FROM tally.corrections "
        "WHERE column_name = 'total' ORDER BY 1"
    ).fetchall()
    assert corrected == [
        ({"user_id": 1}, "total", "146.000000", "145.000000"),
        ({"user_id": 77}, "total", "5", None),
    ]


def test_backfill_and_set_slots_round_trip_keep_the_stats_and_the_grants(
    conn: psycopg.Connection[Any], dsn_for: Callable[..., str]
) -> None:
    conn.execute(ACTIONS)
    conn.execute(
        "INSERT INTO public.actions (user_id, lbs) SELECT g % 7, g / 3.0 FROM generate_series(1, 70) g"
    )
    conn.execute("DROP ROLE IF EXISTS slot_reader")
    conn.execute("CREATE ROLE slot_reader LOGIN")
    try:
        conn.execute("SELECT tally.grant_read('slot_reader', 'per_user')")
        slotted(conn, "per_user", "overall")
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'public.per_user'::regclass"
        ).fetchone() == ("v",)
        conn.execute("UPDATE public.actions SET lbs = lbs * 2 WHERE user_id = 3")
        conn.execute("CALL tally.backfill('per_user', 3)")
        assert_exact(conn)
        with psycopg.connect(dsn_for("slot_reader"), autocommit=True) as reader:
            assert reader.execute("SELECT count(*) FROM public.per_user").fetchone() == (7,)
            assert [r[0] for r in reader.execute("SELECT rank FROM tally.top('per_user', 'total', 3)")] == [
                1,
                2,
                3,
            ]
        assert conn.execute("SELECT tally.set_slots('per_user', 3)").fetchone() == (3,)  # regenerate only
        conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (3, 1), (9, 2)")
        slotted(conn, "per_user", "overall", slots=1)
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'public.per_user'::regclass"
        ).fetchone() == ("r",)
        assert conn.execute("SELECT to_regclass('public.per_user_slots')").fetchone() == (None,)
        assert_exact(conn)
        with psycopg.connect(dsn_for("slot_reader"), autocommit=True) as reader:
            assert reader.execute("SELECT count(*) FROM public.per_user").fetchone() == (8,)
        assert conn.execute("SELECT * FROM tally.schema_drift()").fetchall() == []
    finally:
        conn.execute("DROP OWNED BY slot_reader")
        conn.execute("DROP ROLE slot_reader")


def test_the_compact_job_folds_every_slotted_rollup(conn: psycopg.Connection[Any]) -> None:
    conn.execute(ACTIONS)
    slotted(conn, "per_user", "overall")
    conn.execute("INSERT INTO public.actions (user_id, lbs) VALUES (1, 1), (2, 2)")
    conn.execute("CALL tally.run_job(NULL, 'compact')")
    job = conn.execute(
        "SELECT status, details -> 'compacted' FROM tally.runs WHERE run_kind = 'job'"
    ).fetchone()
    assert job == ("done", {"overall": 1, "per_user": 2})
    assert conn.execute("SELECT count(*) FROM public.per_user_slots WHERE _tally_slot <> 0").fetchone() == (
        0,
    )
    assert_exact(conn)


def test_bad_slot_requests_are_refused_and_change_nothing(conn: psycopg.Connection[Any]) -> None:
    conn.execute(ACTIONS)
    conn.execute(
        "SELECT tally.create_rollup('extremes', source => 'public.actions', group_by => ARRAY['user_id'], "
        "measures => ARRAY['biggest = max(lbs)'])"
    )
    with pytest.raises(errors.FeatureNotSupported, match="min or max"):
        conn.execute("SELECT tally.set_slots('extremes', 4)")
    with pytest.raises(errors.InvalidParameterValue, match="between 1 and 1024"):
        conn.execute("SELECT tally.set_slots('per_user', 0)")
    with pytest.raises(errors.UndefinedObject):
        conn.execute("SELECT tally.set_slots('no_such_rollup', 4)")
    conn.execute("SELECT tally.make_rankable('per_user', 'total')")
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="indexes of its own"):
        conn.execute("SELECT tally.set_slots('per_user', 4)")
    conn.execute("CREATE TABLE public.overall_slots (x int)")
    with pytest.raises(errors.DuplicateTable, match="overall_slots"):
        conn.execute("SELECT tally.set_slots('overall', 4)")
    assert conn.execute("SELECT count(*) FROM tally.rollups WHERE slots > 1").fetchone() == (0,)
    conn.execute("DROP TABLE public.overall_slots")
    slotted(conn, "overall")
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="slots"):
        conn.execute("SELECT tally.set_mode('overall', 'deferred')")
    conn.execute("SELECT tally.set_mode('per_user', 'deferred')")
    conn.execute("DROP INDEX public.per_user_rank_total")
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="deferred"):
        conn.execute("SELECT tally.set_slots('per_user', 4)")
    conn.execute("SELECT tally.drop_rollup('overall')")
    assert conn.execute(
        "SELECT to_regclass('public.overall'), to_regclass('public.overall_slots')"
    ).fetchone() == (
        None,
        None,
    )
