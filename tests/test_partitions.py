"""Partitioned sources: statements that name a partition fire only that partition's
statement triggers, so pgtally installs its triggers on every partition too. Writes through
the parent, to a leaf or to a sub-partitioned partition all keep the stats exact; TRUNCATE
of a partition alone (no transition table) is refused; a partition created later is
reported by schema_drift() until the rollups are regenerated; a detached table's leftover
triggers no longer touch the stats."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests import support
from tests.exactness import assert_exact, stats_rows

EVENTS = """
CREATE TABLE public.events (day date NOT NULL, kind text NOT NULL, cost numeric(12, 2) NOT NULL,
                            note text) PARTITION BY RANGE (day);
CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.events_2026 PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
    PARTITION BY LIST (kind);
CREATE TABLE public.events_2026_a PARTITION OF public.events_2026 FOR VALUES IN ('a');
CREATE TABLE public.events_2026_other PARTITION OF public.events_2026 DEFAULT;
INSERT INTO public.events SELECT date '2025-12-20' + g % 25, (ARRAY['a', 'b', 'c'])[1 + g % 3], g, NULL
FROM generate_series(1, 300) AS g;
SELECT tally.create_rollup('costs_by_kind_day', source => 'public.events', group_by => ARRAY['kind', 'day'],
    measures => ARRAY['cost = sum(cost)', 'n = count(*)']);
SELECT tally.create_rollup('costs_overall', source => 'public.events',
    measures => ARRAY['cost = sum(cost)', 'n = count(*)', 'top = max(cost)']);
SELECT tally.create_rollup('costs_of_a', source => 'public.events', group_by => ARRAY['day'],
    measures => ARRAY['n = count(*)'], filter => $$kind = 'a'$$);
"""


def overall(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    return stats_rows(conn, "costs_overall", "cost", "n", "top")[0]


def maintenance_triggers(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT tgname FROM pg_catalog.pg_trigger WHERE tgrelid = %s::regclass AND tgname LIKE 'tally%%' ORDER BY 1",
        (table,),
    )
    return [name for (name,) in rows.fetchall()]


def test_writes_that_name_a_partition_are_maintained(conn: psycopg.Connection[Any]) -> None:
    conn.execute(EVENTS)
    assert_exact(conn)
    writes = [
        "INSERT INTO public.events_2025 (day, kind, cost) VALUES ('2025-06-01', 'a', 5)",  # a leaf
        "INSERT INTO public.events_2026 (day, kind, cost) "  # a sub-partitioned partition
        "SELECT date '2026-02-01' + g, (ARRAY['a', 'z'])[1 + g % 2], g FROM generate_series(1, 40) AS g",
        "INSERT INTO public.events_2026_other (day, kind, cost) VALUES ('2026-03-03', 'q', 1000)",
        "UPDATE public.events_2026_a SET cost = cost * 2 WHERE day < '2026-01-03'",
        "UPDATE public.events_2025 SET kind = 'c', day = day - 1 WHERE kind = 'b'",
        "UPDATE public.events_2026_other SET cost = 1 WHERE cost = 1000",  # lowers the max: recomputed
        "UPDATE public.events SET day = day + 20 WHERE kind = 'a' AND day > '2025-12-25'",  # moves partitions
        "UPDATE public.events_2025 SET note = 'seen'",  # a column no rollup reads
        "DELETE FROM public.events_2026_a WHERE cost > 100",
        "DELETE FROM public.events_2026 WHERE kind = 'z'",
    ]
    for write in writes:
        conn.execute(write)
        assert_exact(conn)
    with conn.cursor().copy("COPY public.events_2026_a (day, kind, cost) FROM STDIN") as copy:
        copy.write_row(("2026-05-05", "a", "7.25"))
        copy.write_row(("2026-05-06", "a", "0.75"))
    assert_exact(conn)
    before = overall(conn)
    try:
        with conn.transaction():
            conn.execute("DELETE FROM public.events_2025")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert overall(conn) == before
    assert_exact(conn)


def test_truncate_of_one_partition_is_refused_and_of_the_whole_table_empties_the_stats(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(EVENTS)
    before = overall(conn)
    for table in ("public.events_2025", "public.events_2026", "public.events_2026_a"):
        with pytest.raises(
            errors.FeatureNotSupported, match=r"cannot truncate \S+ alone: it is a partition of"
        ):
            conn.execute(f"TRUNCATE {table}")
    assert overall(conn) == before
    # holding the source ACCESS EXCLUSIVE for another reason (a new partition, a lock, an
    # ALTER) does not make a lone partition's TRUNCATE pass
    for first in (
        "CREATE TABLE public.events_2031 PARTITION OF public.events FOR VALUES FROM ('2031-01-01') TO ('2032-01-01')",
        "LOCK TABLE public.events IN ACCESS EXCLUSIVE MODE",
        "ALTER TABLE public.events ADD COLUMN extra int",
    ):
        with pytest.raises(errors.FeatureNotSupported), conn.transaction():
            conn.execute(first)
            conn.execute("TRUNCATE public.events_2025")
    conn.execute("DELETE FROM public.events_2026_a")  # what the hint says
    assert_exact(conn)
    conn.execute("TRUNCATE public.events_2025, public.events")  # a partition named before its parent
    assert stats_rows(conn, "costs_overall", "cost", "n") == []
    conn.execute("INSERT INTO public.events_2025 (day, kind, cost) VALUES ('2025-02-02', 'a', 3)")
    assert overall(conn) == (Decimal("3.00"), 1, Decimal("3.00"))
    conn.execute("TRUNCATE public.events")
    assert_exact(conn)


def test_partitions_created_attached_and_detached_later_get_and_lose_the_triggers(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(EVENTS)
    notices: list[str] = []
    conn.add_notice_handler(lambda diagnostic: notices.append(str(diagnostic.message_primary)))
    conn.execute(
        "CREATE TABLE public.events_2027 PARTITION OF public.events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')"
    )
    conn.execute(
        "INSERT INTO public.events_2027 (day, kind, cost) VALUES ('2027-01-01', 'a', 4), ('2027-01-02', 'b', 6)"
    )
    conn.execute("UPDATE public.events_2027 SET cost = cost + 1")
    assert_exact(conn)
    assert notices == []

    # attached with rows: the triggers come, and a warning says the rows are not counted
    conn.execute("CREATE TABLE public.events_2028 (LIKE public.events)")
    conn.execute("INSERT INTO public.events_2028 (day, kind, cost) VALUES ('2028-05-05', 'c', 8)")
    conn.execute(
        "ALTER TABLE public.events ATTACH PARTITION public.events_2028 FOR VALUES FROM ('2028-01-01') TO ('2029-01-01')"
    )
    assert notices == [
        "pgtally: public.events_2028 joined public.events with rows that the rollups of public.events do not count"
    ]
    conn.execute("SELECT tally.reconcile(rollup_name, true) FROM tally.rollups")  # what the hint says
    conn.execute("INSERT INTO public.events_2028 (day, kind, cost) VALUES ('2028-06-06', 'a', 2)")
    assert_exact(conn)

    # detached: its triggers go, writes to it no longer touch the stats
    conn.execute("DELETE FROM public.events_2027")
    conn.execute("ALTER TABLE public.events DETACH PARTITION public.events_2027")
    assert len(notices) == 1
    assert maintenance_triggers(conn, "public.events_2027") == []
    before = overall(conn)
    conn.execute("INSERT INTO public.events_2027 (day, kind, cost) VALUES ('2027-03-01', 'a', 9)")
    conn.execute("TRUNCATE public.events_2027")  # no longer a partition: allowed
    assert overall(conn) == before
    assert_exact(conn)
    assert conn.execute("SELECT count(*) FROM tally.schema_drift()").fetchone() == (0,)


def test_dropping_a_partition_or_the_source_warns_with_the_correction(conn: psycopg.Connection[Any]) -> None:
    conn.execute(EVENTS)
    warnings: list[tuple[str, str]] = []
    conn.add_notice_handler(
        lambda d: (
            warnings.append((str(d.message_primary), str(d.message_hint)))
            if d.severity == "WARNING"
            else None
        )
    )
    conn.execute("CREATE TABLE public.unrelated (a int); DROP TABLE public.unrelated")
    conn.execute("CREATE TABLE public.plain (k int NOT NULL)")
    conn.execute(
        "SELECT tally.create_rollup('plain_n', source => 'public.plain', measures => ARRAY['n = count(*)'])"
    )
    assert warnings == []

    # a sub-partitioned partition goes with its partitions; the rows it held are still
    # counted until the hint's correction
    dropped = conn.execute("SELECT count(*) FROM public.events_2026").fetchone()
    assert dropped is not None and dropped[0] > 0
    conn.execute("DROP TABLE public.events_2026")
    rollups = "costs_by_kind_day, costs_of_a, costs_overall"
    assert warnings == [
        (
            "pgtally: dropping partition(s) public.events_2026 takes their rows along without DML: "
            f"the rollups {rollups} still count any they held",
            "Correct them with: SELECT tally.reconcile('costs_by_kind_day', true); "
            "SELECT tally.reconcile('costs_of_a', true); SELECT tally.reconcile('costs_overall', true); "
            "To drop a partition with rows exactly, DELETE its rows first.",
        )
    ]
    assert overall(conn)[1] == 300  # still counted
    for statement in warnings[0][1].removeprefix("Correct them with: ").split("; ")[:3]:
        conn.execute(statement)
    assert overall(conn)[1] == 300 - dropped[0]
    assert_exact(conn)

    # as the hint says: an emptied partition drops exactly (the warning cannot tell)
    conn.execute("DELETE FROM public.events_2025")
    conn.execute("DROP TABLE public.events_2025")
    assert len(warnings) == 2
    assert_exact(conn)

    # dropped sources: their rollups are named, with the calls that drop them
    conn.execute("DROP TABLE public.events, public.plain")
    assert warnings[2:] == [
        (
            f"pgtally: dropping public.events leaves its rollups {rollups} with nothing to maintain them",
            "Drop them with: SELECT tally.drop_rollup('costs_by_kind_day'); "
            "SELECT tally.drop_rollup('costs_of_a'); SELECT tally.drop_rollup('costs_overall');",
        ),
        (
            "pgtally: dropping public.plain leaves its rollups plain_n with nothing to maintain them",
            "Drop them with: SELECT tally.drop_rollup('plain_n');",
        ),
    ]
    drift = conn.execute("SELECT object_type, object_name, problem FROM tally.schema_drift()").fetchall()
    assert drift == [
        ("source", "public.events", f"dropped: nothing maintains its rollups {rollups}; drop them with "
         + warnings[2][1].removeprefix("Drop them with: ")),
        ("source", "public.plain", "dropped: nothing maintains its rollups plain_n; drop them with "
         "SELECT tally.drop_rollup('plain_n');"),
    ]  # fmt: skip
    conn.execute("SELECT tally.drop_rollup(rollup_name) FROM tally.rollups")
    assert conn.execute("SELECT count(*) FROM tally.rollups").fetchone() == (0,)

    # DROP SCHEMA ... CASCADE takes the stats tables (a view and its tables in append
    # mode) along; partitions without marker triggers (the rollups read no column) went
    # with their source and get no warning of their own
    warnings.clear()
    conn.execute(
        """
        CREATE SCHEMA app;
        CREATE TABLE app.src (id int NOT NULL, g int) PARTITION BY RANGE (id);
        CREATE TABLE app.src_1 PARTITION OF app.src FOR VALUES FROM (0) TO (10);
        CREATE TABLE app.src_2 PARTITION OF app.src FOR VALUES FROM (10) TO (20);
        SELECT tally.create_rollup('app_n', source => 'app.src', measures => ARRAY['n = count(*)']);
        SELECT tally.create_rollup('app_by_g', source => 'app.src', group_by => ARRAY['g'],
                                   measures => ARRAY['n = count(*)']);
        SELECT tally.set_mode('app_by_g', 'append');
        INSERT INTO app.src VALUES (1, 1), (12, 2);
        """
    )
    conn.execute("DROP SCHEMA app CASCADE")
    assert [message for message, _ in warnings] == [
        "pgtally: dropping app.src leaves its rollups app_by_g, app_n with nothing to maintain them"
    ]
    conn.execute("SELECT tally.drop_rollup('app_by_g'), tally.drop_rollup('app_n')")
    assert conn.execute("SELECT count(*) FROM tally.schema_drift()").fetchone() == (0,)

    # a partition named by the DROP is warned about though a source goes in the same DROP
    warnings.clear()
    conn.execute(
        """
        CREATE TABLE public.ev (id int NOT NULL) PARTITION BY RANGE (id);
        CREATE TABLE public.ev_1 PARTITION OF public.ev FOR VALUES FROM (0) TO (10);
        CREATE TABLE public.ev_2 PARTITION OF public.ev FOR VALUES FROM (10) TO (20);
        SELECT tally.create_rollup('ev_n', source => 'public.ev', measures => ARRAY['n = count(*)']);
        CREATE TABLE public.other (id int);
        SELECT tally.create_rollup('other_n', source => 'public.other', measures => ARRAY['n = count(*)']);
        INSERT INTO public.ev VALUES (1), (15);
        """
    )
    conn.execute("DROP TABLE public.ev_1, public.other")
    assert [message for message, _ in warnings] == [
        "pgtally: dropping partition(s) public.ev_1 takes their rows along without DML: "
        "the rollups ev_n still count any they held",
        "pgtally: dropping public.other leaves its rollups other_n with nothing to maintain them",
    ]

    # and so is one that a DROP SCHEMA takes along with an unrelated source
    warnings.clear()
    conn.execute(
        """
        CREATE SCHEMA x;
        CREATE TABLE x.ev_3 PARTITION OF public.ev FOR VALUES FROM (20) TO (30);
        CREATE TABLE x.other (id int);
        SELECT tally.create_rollup('x_other_n', source => 'x.other', measures => ARRAY['n = count(*)']);
        INSERT INTO public.ev VALUES (25);
        """
    )
    conn.execute("DROP SCHEMA x CASCADE")
    assert [message for message, _ in warnings] == [
        "pgtally: dropping partition(s) x.ev_3 takes their rows along without DML: "
        "the rollups ev_n still count any they held",
        "pgtally: dropping x.other leaves its rollups x_other_n with nothing to maintain them",
    ]


def test_dropping_the_schema_of_stats_tables_warns_and_the_source_can_be_repaired(
    conn: psycopg.Connection[Any],
) -> None:
    # the generated functions live in the schema of the source's first stats table: a
    # DROP SCHEMA ... CASCADE of it takes them, and with them the source's triggers
    conn.execute(
        """
        CREATE SCHEMA app; CREATE SCHEMA stats1;
        CREATE TABLE app.src (id int PRIMARY KEY, g int NOT NULL);
        SELECT tally.create_rollup('r1', source => 'app.src', group_by => ARRAY['g'],
                                   measures => ARRAY['n = count(*)'], stats_table => 'stats1.r1');
        SELECT tally.create_rollup('r0', source => 'app.src', measures => ARRAY['n = count(*)'],
                                   stats_table => 'stats1.r0');
        SELECT tally.create_rollup('r2', source => 'app.src', measures => ARRAY['n = count(*)']);
        SELECT tally.set_slots('r2', 2);
        """
    )
    warnings: list[str] = []
    conn.add_notice_handler(
        lambda d: warnings.append(str(d.message_primary)) if d.severity == "WARNING" else None
    )
    conn.execute("DROP SCHEMA stats1 CASCADE")
    assert warnings == [
        "pgtally: the rollup(s) r0, r1 of app.src lost their stats tables: writes to it fail or go unmaintained",
        "pgtally: the triggers that keep the rollups of app.src exact went with their functions: "
        "its writes are not maintained",
    ]
    conn.execute("INSERT INTO app.src VALUES (1, 1), (2, 2)")  # not maintained
    assert conn.execute("SELECT object_type, object_name FROM tally.schema_drift()").fetchall() == [
        ("stats table", "r0"),
        ("stats table", "r1"),
    ]
    # the code cannot be generated with their stats gone (it would name a dropped table):
    # this source is skipped, the others go on
    conn.execute("CREATE TABLE public.other (id int)")
    conn.execute(
        "SELECT tally.create_rollup('other_n', source => 'public.other', measures => ARRAY['n = count(*)'])"
    )
    assert conn.execute("SELECT tally.regenerate_all_rollups()").fetchone() == (1,)
    assert (
        warnings[-1] == "the stats tables of rollup(s) r0, r1 of app.src are gone: its code is left as it is"
    )
    with pytest.raises(
        errors.UndefinedTable, match=r"stats tables of rollup\(s\) r0, r1 of app\.src are gone"
    ):
        conn.execute("SELECT tally.set_slots('r2', 4)")
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match=r"drop them before r2"):
        conn.execute("SELECT tally.drop_rollup('r2')")  # its code could not be written again
    conn.execute("SELECT tally.drop_rollup('r0')")  # r1 still lacks its stats: nothing is generated yet
    conn.execute("SELECT tally.drop_rollup('r1')")  # the functions move to r2's schema
    assert conn.execute(
        "SELECT function_schema FROM tally.rollup_sources WHERE source_table = 'app.src'::regclass"
    ).fetchone() == ("app",)
    assert conn.execute("SELECT count(*) FROM tally.schema_drift()").fetchone() == (0,)
    conn.execute("SELECT tally.reconcile('r2', true)")
    conn.execute("INSERT INTO app.src VALUES (3, 3)")
    assert_exact(conn)
    conn.execute("SELECT tally.drop_rollup('r2')")
    conn.execute("DROP SCHEMA app CASCADE")


def test_dropping_a_partition_of_another_roles_source_warns_without_names(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(EVENTS)
    conn.execute("CREATE ROLE pgtally_t_partowner")
    warnings: list[str] = []
    conn.add_notice_handler(
        lambda d: warnings.append(str(d.message_primary)) if d.severity == "WARNING" else None
    )
    try:
        conn.execute("ALTER TABLE public.events_2025 OWNER TO pgtally_t_partowner")
        conn.execute("ALTER TABLE public.events_2026_a OWNER TO pgtally_t_partowner")
        with conn.transaction():
            conn.execute("SET LOCAL ROLE pgtally_t_partowner")  # no usage on schema tally
            conn.execute("DROP TABLE public.events_2025")
        assert len(warnings) == 1 and warnings[0].startswith(
            "pgtally: could not tell which rollups count the rows of the dropped tables public.events_2025: "
        ), warnings
        conn.execute("SELECT tally.grant_usage('pgtally_t_partowner')")
        with conn.transaction():
            conn.execute("SET LOCAL ROLE pgtally_t_partowner")  # row security hides the rollups
            assert conn.execute("SELECT count(*) FROM tally.rollups").fetchone() == (0,)
            conn.execute("DROP TABLE public.events_2026_a")
        assert warnings[1:] == [
            "pgtally: dropping partition(s) public.events_2026_a takes their rows along without DML: "
            "the rollups of their source still count any they held"
        ]
        conn.execute("SELECT tally.reconcile(rollup_name, true) FROM tally.rollups")
        assert_exact(conn)
    finally:
        conn.execute("REASSIGN OWNED BY pgtally_t_partowner TO CURRENT_USER")
        conn.execute("DROP OWNED BY pgtally_t_partowner")
        conn.execute("DROP ROLE IF EXISTS pgtally_t_partowner")


def test_without_the_event_trigger_drift_names_new_partitions_until_regenerated(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(EVENTS)
    conn.execute("ALTER EVENT TRIGGER tally_partition_ddl DISABLE")  # as in an install by a non-superuser
    conn.execute(
        "CREATE TABLE public.events_2027 PARTITION OF public.events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')"
    )
    drift = conn.execute("SELECT object_name, problem FROM tally.schema_drift()").fetchall()
    assert {name for name, _ in drift} == {
        f"{trigger} on public.events_2027"
        for trigger in (
            "tally_maintain_insert",
            "tally_maintain_update",
            "tally_maintain_delete",
            "tally_maintain_truncate",
        )
    } | {"tally_partition_ddl"}
    assert all(
        "regenerate_all_rollups" in problem for name, problem in drift if name != "tally_partition_ddl"
    )
    conn.execute("SELECT tally.regenerate_all_rollups()")
    assert conn.execute("SELECT object_name FROM tally.schema_drift()").fetchall() == [
        ("tally_partition_ddl",)
    ]
    conn.execute("INSERT INTO public.events_2027 (day, kind, cost) VALUES ('2027-01-01', 'a', 4)")
    assert_exact(conn)

    # a table detached meanwhile keeps its triggers, which ignore its writes, until the
    # next regeneration drops them; dropping the last rollup drops them too
    conn.execute("DELETE FROM public.events_2027")
    conn.execute("ALTER TABLE public.events DETACH PARTITION public.events_2027")
    assert len(maintenance_triggers(conn, "public.events_2027")) == 7  # 3 maintain, 3 markers, truncate
    before = overall(conn)
    conn.execute("INSERT INTO public.events_2027 (day, kind, cost) VALUES ('2027-03-01', 'a', 9)")
    conn.execute("UPDATE public.events_2027 SET cost = 10")
    assert overall(conn) == before
    for rollup in ("costs_by_kind_day", "costs_overall", "costs_of_a"):
        conn.execute("SELECT tally.drop_rollup(%s)", (rollup,))
    assert maintenance_triggers(conn, "public.events_2027") == []
    assert maintenance_triggers(conn, "public.events_2026_a") == []


def test_a_source_that_is_itself_a_partition_is_reported(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """
        CREATE TABLE public.readings (at date NOT NULL, v int NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE public.readings_2025 PARTITION OF public.readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        SELECT tally.create_rollup('readings_2025_total', source => 'public.readings_2025',
            measures => ARRAY['v = sum(v)']);
        """
    )
    assert conn.execute("SELECT object_type, object_name, problem FROM tally.schema_drift()").fetchall() == [
        (
            "source",
            "public.readings_2025",
            "is a partition of public.readings: writes through it do not reach the stats",
        )
    ]


def test_only_one_table_of_a_partition_tree_can_have_rollups(conn: psycopg.Connection[Any]) -> None:
    conn.execute(EVENTS)
    for source in ("public.events_2026", "public.events_2026_a"):
        with pytest.raises(errors.FeatureNotSupported, match="are in one partition tree"):
            conn.execute(
                "SELECT tally.create_rollup('nested', source => %s, measures => ARRAY['n = count(*)'])",
                (source,),
            )
    assert conn.execute("SELECT to_regclass('public.nested')").fetchone() == (None,)

    # attaching a table that has rollups of its own keeps its own triggers, and says so
    conn.execute("CREATE TABLE public.events_2029 (LIKE public.events)")
    conn.execute(
        "SELECT tally.create_rollup('only_2029', source => 'public.events_2029', measures => ARRAY['n = count(*)'])"
    )
    notices: list[str] = []
    conn.add_notice_handler(lambda diagnostic: notices.append(str(diagnostic.message_primary)))
    conn.execute(
        "ALTER TABLE public.events ATTACH PARTITION public.events_2029 FOR VALUES FROM ('2029-01-01') TO ('2030-01-01')"
    )
    assert notices == [
        "pgtally: partition public.events_2029 of public.events has rollups of its own: "
        "writes that name it keep only those exact"
    ]
    conn.execute("INSERT INTO public.events_2029 (day, kind, cost) VALUES ('2029-01-01', 'a', 1)")
    assert_exact(conn, "only_2029")
    problems = conn.execute("SELECT object_name, problem FROM tally.schema_drift()").fetchall()
    assert (
        "tally_maintain_insert on public.events_2029",
        f"calls public.tally_events_2029_{oid(conn, 'public.events_2029')}_insert, not this "
        f"source's public.tally_events_{oid(conn, 'public.events')}_insert",
    ) in problems


def oid(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute("SELECT %s::regclass::oid", (table,)).fetchone()
    assert row is not None
    return int(row[0])


def test_the_event_trigger_never_fails_ddl_and_partitions_of_others_are_skipped(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(EVENTS)
    conn.execute("CREATE ROLE pgtally_t_outsider")
    conn.execute("CREATE ROLE pgtally_t_partman")
    try:
        conn.execute("GRANT CREATE ON SCHEMA public TO pgtally_t_outsider")
        with conn.transaction():
            conn.execute("SET LOCAL ROLE pgtally_t_outsider")  # no usage on schema tally
            conn.execute("CREATE TABLE public.unrelated (x int)")
            conn.execute("ALTER TABLE public.unrelated ADD COLUMN y int")
            conn.execute("CREATE TEMP TABLE scratch (x int)")
            conn.execute("DROP TABLE public.unrelated")

        # a partition owned by another role: the source's owner still manages its rollups
        conn.execute("SELECT tally.drop_rollup(rollup_name) FROM tally.rollups")
        conn.execute("ALTER TABLE public.events_2026_a OWNER TO pgtally_t_partman")
        conn.execute("CREATE ROLE pgtally_t_owner")
        conn.execute("GRANT pgtally_t_owner TO CURRENT_USER")
        conn.execute("ALTER TABLE public.events OWNER TO pgtally_t_owner")
        conn.execute("ALTER TABLE public.events_2025 OWNER TO pgtally_t_owner")
        conn.execute("ALTER TABLE public.events_2026 OWNER TO pgtally_t_owner")
        conn.execute("ALTER TABLE public.events_2026_other OWNER TO pgtally_t_owner")
        conn.execute("SELECT tally.grant_usage('pgtally_t_owner')")
        conn.execute("GRANT CREATE ON SCHEMA public TO pgtally_t_owner")
        notices: list[str] = []
        conn.add_notice_handler(lambda diagnostic: notices.append(str(diagnostic.message_primary)))
        with conn.transaction():
            conn.execute("SET LOCAL ROLE pgtally_t_owner")
            conn.execute(
                "SELECT tally.create_rollup('costs_of_b', source => 'public.events', group_by => ARRAY['day'], "
                "measures => ARRAY['n = count(*)'], filter => $$kind = 'b'$$)"
            )
        assert (
            "pgtally: no TRIGGER privilege on partition public.events_2026_a of public.events" in notices[0]
        )
        drift = conn.execute("SELECT object_name FROM tally.schema_drift()").fetchall()
        assert ("tally_maintain_insert on public.events_2026_a",) in drift
        conn.execute("INSERT INTO public.events (day, kind, cost) VALUES ('2025-03-03', 'b', 2)")
        conn.execute("INSERT INTO public.events_2025 (day, kind, cost) VALUES ('2025-03-04', 'b', 2)")
        assert_exact(conn)

        # the partition's owner may not declare rollups on it, though it cannot see the parent's
        conn.execute("SELECT tally.grant_usage('pgtally_t_partman')")
        with conn.transaction():
            conn.execute("SET LOCAL ROLE pgtally_t_partman")
            assert conn.execute("SELECT count(*) FROM tally.rollups").fetchone() == (0,)
            with pytest.raises(errors.FeatureNotSupported, match="are in one partition tree"):
                conn.execute(
                    "SELECT tally.create_rollup('mine', source => 'public.events_2026_a', "
                    "measures => ARRAY['n = count(*)'], stats_table => 'public.mine')"
                )

        # a partition that changed hands after it got its triggers: rollups can still be
        # dropped; the last one says whose table keeps its triggers
        conn.execute("ALTER TABLE public.events_2025 OWNER TO pgtally_t_partman")
        with conn.transaction():
            conn.execute("SET LOCAL ROLE pgtally_t_owner")
            conn.execute(
                "SELECT tally.create_rollup('costs_of_c', source => 'public.events', group_by => ARRAY['day'], "
                "measures => ARRAY['n = count(*)'], filter => $$kind = 'c'$$)"
            )
            conn.execute("SELECT tally.drop_rollup('costs_of_c')")
            with pytest.raises(errors.InsufficientPrivilege, match=r"public\.events_2025 cannot be dropped"):
                conn.execute("SELECT tally.drop_rollup('costs_of_b')")
        assert any("no TRIGGER privilege on partition public.events_2025" in n for n in notices)
        conn.execute("SELECT tally.drop_rollup('costs_of_b')")  # a superuser may
        assert maintenance_triggers(conn, "public.events_2025") == []
    finally:
        conn.execute("REASSIGN OWNED BY pgtally_t_partman TO CURRENT_USER")
        conn.execute("DROP OWNED BY pgtally_t_outsider, pgtally_t_partman")
        conn.execute("REASSIGN OWNED BY pgtally_t_owner TO CURRENT_USER")
        conn.execute("DROP OWNED BY pgtally_t_owner")
        conn.execute("DROP ROLE IF EXISTS pgtally_t_outsider, pgtally_t_partman, pgtally_t_owner")


ODD_PARTITION_TRUNCATE = 'TRUNCATE public."o\'brien%s 1"'
ODD_PARTITION_DELETE = 'DELETE FROM public."o\'brien%s 2"'


def test_the_partition_guard_survives_a_rename_and_odd_names(conn: psycopg.Connection[Any]) -> None:
    """The code that lets detached tables go reads the catalogue, not the source's name or
    oid: a renamed source, or one restored from a dump (other oids), stays maintained."""
    conn.execute(EVENTS)
    code = conn.execute("SELECT tally.maintenance_code('costs_overall')").fetchone()
    assert code is not None
    # INSERT, UPDATE and DELETE test it first; TRUNCATE when it looks the source up
    assert code[0].count("IF TG_NARGS > 0 AND NOT EXISTS (") == 3
    assert code[0].count("RETURN NULL;  -- a table detached from the source: its rows are no longer") == 4
    assert f"{oid(conn, 'public.events')}::" not in code[0] and "'public.events'::regclass" not in code[0]
    conn.execute("ALTER TABLE public.events RENAME TO events_renamed")
    conn.execute("INSERT INTO public.events_renamed (day, kind, cost) VALUES ('2025-05-05', 'a', 1)")
    conn.execute("INSERT INTO public.events_2026_a (day, kind, cost) VALUES ('2026-05-05', 'a', 2)")
    # the recomputation of a lowered max reads the source by name: the event trigger
    # regenerated the code with the rename
    conn.execute("DELETE FROM public.events_2025 WHERE cost > 250")
    conn.execute("UPDATE public.events_2026_a SET cost = 1")
    assert conn.execute("SELECT count(*) FROM tally.schema_drift()").fetchone() == (0,)
    assert_exact(conn)

    conn.execute(
        """
        CREATE TABLE public."o'brien%s" (k int NOT NULL, v int NOT NULL) PARTITION BY LIST (k);
        CREATE TABLE public."o'brien%s 1" PARTITION OF public."o'brien%s" FOR VALUES IN (1);
        CREATE TABLE public."o'brien%s 2" PARTITION OF public."o'brien%s" FOR VALUES IN (2);
        SELECT tally.create_rollup('obrien', source => 'public."o''brien%s"', measures => ARRAY['v = sum(v)']);
        INSERT INTO public."o'brien%s 1" VALUES (1, 5);
        INSERT INTO public."o'brien%s" VALUES (2, 7);
        """
    )
    with pytest.raises(errors.FeatureNotSupported, match=r"it is a partition of public\."):
        conn.execute(ODD_PARTITION_TRUNCATE)
    conn.execute(ODD_PARTITION_DELETE)
    conn.execute(ODD_PARTITION_TRUNCATE)  # the last rows: the source ends empty
    assert stats_rows(conn, "obrien", "v") == []
    assert_exact(conn)


def test_a_lone_partition_truncate_waits_for_no_one_and_trusts_no_old_snapshot(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(EVENTS)
    conn.execute("DELETE FROM public.events_2026")  # only events_2025 has rows
    writer = connect()
    writer.execute("BEGIN")
    writer.execute(
        "INSERT INTO public.events (day, kind, cost) VALUES ('2026-05-05', 'a', 42)"
    )  # not committed
    with pytest.raises(errors.FeatureNotSupported):
        conn.execute("TRUNCATE public.events_2025")  # the source is being written: refused at once
    writer.execute("COMMIT")
    conn.execute("DELETE FROM public.events_2026")
    with pytest.raises(errors.FeatureNotSupported), conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute("TRUNCATE public.events_2025")  # an old snapshot cannot tell the source is empty
    conn.execute("TRUNCATE public.events_2025")  # read committed, nobody writing, nothing else left
    assert stats_rows(conn, "costs_overall", "n") == []
    assert_exact(conn)
    conn.execute(
        "INSERT INTO public.events (day, kind, cost) VALUES ('2025-05-05', 'a', 1), ('2026-05-05', 'a', 2)"
    )
    with conn.transaction():  # the whole source may be truncated at any isolation level
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute("TRUNCATE public.events")
    assert stats_rows(conn, "costs_overall", "n") == []


def test_a_restored_dump_keeps_maintaining_a_partitioned_source(
    conn: psycopg.Connection[Any], db_dsn: str, empty_dsn: str
) -> None:
    conn.execute(EVENTS)
    dump = subprocess.run(
        [support.pg_bin("pg_dump"), "-d", db_dsn], capture_output=True, text=True, check=True
    )
    restore = subprocess.run(
        [support.pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", empty_dsn],
        input=dump.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert restore.returncode == 0, restore.stderr
    with psycopg.connect(empty_dsn, autocommit=True) as restored:
        assert oid(restored, "public.events") != oid(conn, "public.events")
        restored.execute("INSERT INTO public.events (day, kind, cost) VALUES ('2025-04-04', 'a', 5)")
        restored.execute("INSERT INTO public.events_2026_a (day, kind, cost) VALUES ('2026-04-04', 'a', 6)")
        restored.execute("UPDATE public.events_2025 SET cost = cost + 1 WHERE kind = 'b'")
        with pytest.raises(errors.FeatureNotSupported):
            restored.execute("TRUNCATE public.events_2026_a")
        assert_exact(restored)


def test_a_policy_on_the_source_does_not_hide_rows_from_the_truncate_check(
    conn: psycopg.Connection[Any], dsn_for: Callable[..., str]
) -> None:
    """The generated functions run as the source's owner, whom a forced row-security policy
    filters; the emptiness check reads the partitions themselves."""
    conn.execute("DROP ROLE IF EXISTS pgtally_t_rls_owner")
    conn.execute("CREATE ROLE pgtally_t_rls_owner LOGIN")
    try:
        conn.execute("SELECT tally.grant_usage('pgtally_t_rls_owner')")
        conn.execute("CREATE SCHEMA guarded AUTHORIZATION pgtally_t_rls_owner")
        with psycopg.connect(dsn_for("pgtally_t_rls_owner"), autocommit=True) as owner:
            owner.execute(
                """
                CREATE TABLE guarded.ev (k int NOT NULL, v int NOT NULL) PARTITION BY LIST (k);
                CREATE TABLE guarded.ev1 PARTITION OF guarded.ev FOR VALUES IN (1);
                CREATE TABLE guarded.ev2 PARTITION OF guarded.ev FOR VALUES IN (2);
                INSERT INTO guarded.ev VALUES (1, 1), (2, 2), (2, 3);
                SELECT tally.create_rollup('guarded_total', source => 'guarded.ev', measures => ARRAY['v = sum(v)']);
                ALTER TABLE guarded.ev ENABLE ROW LEVEL SECURITY;
                ALTER TABLE guarded.ev FORCE ROW LEVEL SECURITY;
                CREATE POLICY only_ones ON guarded.ev USING (k = 1);
                """
            )
            with pytest.raises(errors.FeatureNotSupported, match=r"cannot truncate guarded\.ev1 alone"):
                owner.execute("TRUNCATE guarded.ev1")
        assert stats_rows(conn, "guarded_total", "v") == [(6,)]
        assert_exact(conn)
    finally:
        conn.execute("DROP SCHEMA IF EXISTS guarded CASCADE")
        conn.execute("SELECT tally.revoke_usage('pgtally_t_rls_owner')")
        conn.execute("DROP OWNED BY pgtally_t_rls_owner")
        conn.execute("DROP ROLE pgtally_t_rls_owner")
