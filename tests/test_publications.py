"""Rollups under a publication of all tables (logical replication, change data capture).

PostgreSQL refuses an UPDATE or DELETE of a published table that has no replica identity,
and the refusal fails the user's write whose trigger made it. Every table pgtally updates or
deletes from must have one: a primary key, or REPLICA IDENTITY FULL where there is none (a
rollup without keys, keys that may be NULL, the invalidation queue, pending tables).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from tests.exactness import assert_exact

MIGRATION = (
    Path(__file__).resolve().parents[1]
    / "sql"
    / "migrations"
    / "V0011__replica_identity_without_primary_key.sql"
)

EVENTS = """
CREATE TABLE public.events (id bigserial PRIMARY KEY, team int, member int NOT NULL, day date NOT NULL,
                            amount numeric(20, 4) NOT NULL);
INSERT INTO public.events (team, member, day, amount)
SELECT CASE WHEN i % 5 = 0 THEN NULL ELSE i % 3 END, i % 7, date '2025-03-01' + i % 4, i * 1.25
FROM generate_series(1, 200) AS i;
SELECT tally.create_rollup('events_overall', source => 'public.events', measures => ARRAY['n = count(*)',
    'total = sum(amount)']);
SELECT tally.create_rollup('events_by_team', source => 'public.events', group_by => ARRAY['team'],
    measures => ARRAY['n = count(*)', 'top = max(amount)']);
SELECT tally.create_rollup('events_by_member', source => 'public.events', group_by => ARRAY['member'],
    measures => ARRAY['total = sum(amount)']);
SELECT tally.create_rollup('events_by_day', source => 'public.events', group_by => ARRAY['day'],
    measures => ARRAY['n = count(*)', 'total = sum(amount)'], populate => false);
"""

# Tables pgtally writes to (its catalogue and every rollup's tables) that have neither a
# primary key nor REPLICA IDENTITY FULL: an UPDATE or DELETE of one fails under a publication.
TABLES_WITHOUT_IDENTITY = """
SELECT c.oid::regclass::text
FROM pg_catalog.pg_class AS c
WHERE c.relkind = 'r'
  AND (c.relnamespace = 'tally'::regnamespace
       OR c.oid IN (SELECT t FROM tally.rollups AS r,
                    LATERAL (VALUES (r.stats_table), (r.slot_table), (r.pending_table)) AS v (t)))
  AND c.relreplident NOT IN ('f', 'i')
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_index AS i WHERE i.indrelid = c.oid AND i.indisprimary)
ORDER BY 1
"""


def tables_without_identity(conn: psycopg.Connection[Any]) -> list[str]:
    return [name for (name,) in conn.execute(TABLES_WITHOUT_IDENTITY).fetchall()]


def every_kind_of_write(conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO public.events (team, member, day, amount) VALUES (NULL, 1, '2025-03-02', 9.5)")
    conn.execute(
        "INSERT INTO public.events (team, member, day, amount) "
        "SELECT i % 4, i % 9, date '2025-03-01' + i % 6, i FROM generate_series(1, 50) AS i"
    )
    conn.execute("UPDATE public.events SET team = NULL WHERE id % 11 = 0")  # moves rows into the NULL group
    conn.execute("UPDATE public.events SET amount = amount + 1, member = member + 1 WHERE id % 7 = 0")
    conn.execute("DELETE FROM public.events WHERE id % 13 = 0")
    with conn.cursor().copy("COPY public.events (team, member, day, amount) FROM STDIN") as copy:
        copy.write_row((None, 3, "2025-03-04", "2.5000"))
        copy.write_row((2, 4, "2025-03-05", "7.2500"))
    try:
        with conn.transaction():
            conn.execute("DELETE FROM public.events WHERE team IS NULL")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass


def test_every_rollup_table_has_a_replica_identity_and_writes_work_under_a_publication(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("CREATE PUBLICATION everything FOR ALL TABLES")
    try:
        conn.execute(EVENTS)
        conn.execute("CALL tally.backfill('events_by_day', 2)")
        assert tables_without_identity(conn) == []
        every_kind_of_write(conn)
        assert_exact(conn)

        # corrections rewrite a drifted group; slots and append mode keep their identity
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM public.events WHERE member = 2")
        conn.execute("RESET session_replication_role")
        for rollup in ("events_overall", "events_by_team", "events_by_member", "events_by_day"):
            conn.execute("SELECT tally.reconcile(%s, true)", (rollup,))
        assert_exact(conn)
        conn.execute("SELECT tally.set_slots('events_overall', 4)")
        conn.execute("SELECT tally.set_mode('events_by_member', 'append')")
        conn.execute("SELECT tally.set_mode('events_by_day', 'deferred')")
        assert tables_without_identity(conn) == []
        every_kind_of_write(conn)
        conn.execute("SELECT tally.compact('events_overall'), tally.compact('events_by_member')")
        conn.execute("CALL tally.run_job('events_by_day', 'refresh', '{\"include_current\": true}')")
        assert_exact(conn)

        conn.execute("SELECT tally.set_slots('events_overall', 1)")
        conn.execute("SELECT tally.set_mode('events_by_member', 'immediate')")
        conn.execute("SELECT tally.set_mode('events_by_day', 'immediate')")
        assert tables_without_identity(conn) == []
        conn.execute("TRUNCATE public.events")
        every_kind_of_write(conn)
        assert_exact(conn)
        for rollup in ("events_overall", "events_by_team", "events_by_member", "events_by_day"):
            conn.execute("SELECT tally.drop_rollup(%s)", (rollup,))
        conn.execute("DELETE FROM public.events")
    finally:
        conn.execute("DROP PUBLICATION everything")


def test_the_migration_gives_existing_tables_without_a_primary_key_their_identity(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(EVENTS)
    conn.execute("CALL tally.backfill('events_by_day', 2)")
    # as an install from before V0011 left them
    for table in ("tally.invalidations", "public.events_overall", "public.events_by_team"):
        conn.execute(f"ALTER TABLE {table} REPLICA IDENTITY DEFAULT")
    assert tables_without_identity(conn) == ["events_by_team", "events_overall", "tally.invalidations"]
    conn.execute(MIGRATION.read_text())  # type: ignore[arg-type]
    assert tables_without_identity(conn) == []
    keyed = conn.execute(
        "SELECT relreplident FROM pg_catalog.pg_class WHERE oid = 'public.events_by_member'::regclass"
    ).fetchone()
    assert keyed == ("d",)  # a table with a primary key keeps it as its identity
    conn.execute("CREATE PUBLICATION everything FOR ALL TABLES")
    try:
        every_kind_of_write(conn)
        assert_exact(conn)
    finally:
        conn.execute("DROP PUBLICATION everything")
