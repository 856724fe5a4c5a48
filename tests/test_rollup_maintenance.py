"""Every kind of write keeps the stats equal to a recomputation; types are exact."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.exactness import assert_exact, stats_rows

SOURCE = """
CREATE TABLE public.ledger (
    id bigserial PRIMARY KEY,
    account int NOT NULL,
    category text,
    small int,
    big bigint,
    amount numeric(14, 2),
    flag boolean NOT NULL DEFAULT false,
    note text
);
SELECT tally.create_rollup('by_account', source => 'public.ledger', group_by => ARRAY['account'],
    measures => ARRAY['n = count(*)', 'n_small = count(small)', 'sum_small = sum(small)',
                      'sum_big = sum(big)', 'total = sum(amount)', 'lowest = min(amount)',
                      'highest = max(small)', 'mean = avg(small)', 'flagged = count(*) FILTER (WHERE flag)',
                      'flagged_total = sum(amount) FILTER (WHERE flag)']);
SELECT tally.create_rollup('by_category', source => 'public.ledger', group_by => ARRAY['category'],
    measures => ARRAY['n = count(*)', 'top = max(amount)'], filter => 'flag');
SELECT tally.create_rollup('overall', source => 'public.ledger',
    measures => ARRAY['n = count(*)', 'total = sum(amount)', 'lowest = min(small)']);
"""

ROWS = """
INSERT INTO public.ledger (account, category, small, big, amount, flag)
SELECT g % 7, (ARRAY['a', 'b', NULL])[1 + g % 3], CASE WHEN g % 5 = 0 THEN NULL ELSE g % 100 END,
       g::bigint * 1000000000, (g % 997) / 3.0, g % 2 = 0
FROM generate_series(1, {n}) AS g
"""


@pytest.fixture
def ledger(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn.execute(SOURCE)
    return conn


def test_stats_columns_have_exact_types(ledger: psycopg.Connection[Any]) -> None:
    types = dict(
        ledger.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'public.by_account'::regclass AND attnum > 0"
        ).fetchall()
    )
    assert types["n"] == "bigint"
    assert types["sum_small"] == "bigint"  # sum(int) -> bigint
    assert types["sum_big"] == "numeric"  # sum(bigint) -> numeric
    assert types["total"] == "numeric"
    assert types["lowest"] == "numeric"  # min/max keep the source type
    assert types["highest"] == "integer"
    assert types["mean"] == "numeric"
    pk = ledger.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'public.by_account'::regclass AND contype = 'p'"
    ).fetchone()
    assert pk == ("PRIMARY KEY (account)",)


def test_avg_equals_postgres_avg_exactly(ledger: psycopg.Connection[Any]) -> None:
    ledger.execute(ROWS.format(n=500))
    ledger.execute("DELETE FROM public.ledger WHERE id % 11 = 0")
    stored = ledger.execute("SELECT account, mean FROM public.by_account ORDER BY 1").fetchall()
    expected = ledger.execute(
        "SELECT account, avg(small) FROM public.ledger GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert stored == expected


def test_multi_row_insert_update_delete_stay_exact(ledger: psycopg.Connection[Any]) -> None:
    ledger.execute(ROWS.format(n=2000))
    assert_exact(ledger)
    ledger.execute("UPDATE public.ledger SET account = account + 1 WHERE id % 3 = 0")  # moves groups
    assert_exact(ledger)
    ledger.execute("UPDATE public.ledger SET flag = NOT flag WHERE id % 4 = 0")  # in/out of filter
    assert_exact(ledger)
    ledger.execute("UPDATE public.ledger SET amount = amount * 2, small = NULL WHERE id % 5 = 1")
    assert_exact(ledger)
    ledger.execute("DELETE FROM public.ledger WHERE amount > 300")  # removes maxima
    assert_exact(ledger)
    ledger.execute("DELETE FROM public.ledger WHERE account = 3")  # empties a group
    assert ledger.execute("SELECT count(*) FROM public.by_account WHERE account = 3").fetchone() == (0,)
    assert_exact(ledger)


def test_copy_is_maintained(ledger: psycopg.Connection[Any]) -> None:
    copy_sql = "COPY public.ledger (account, category, small, amount, flag) FROM STDIN"
    with ledger.cursor() as cur, cur.copy(copy_sql) as copy:
        for i in range(1000):
            copy.write_row((i % 9, "c" if i % 2 else None, i, Decimal(i) / 4, i % 3 == 0))
    assert_exact(ledger)
    assert stats_rows(ledger, "overall", "n") == [(1000,)]


def test_truncate_empties_every_stats_table(ledger: psycopg.Connection[Any]) -> None:
    ledger.execute(ROWS.format(n=100))
    ledger.execute("TRUNCATE public.ledger")
    for table in ("by_account", "by_category", "overall"):
        assert ledger.execute(f"SELECT count(*) FROM public.{table}").fetchone() == (0,)
    ledger.execute(ROWS.format(n=10))
    assert_exact(ledger)


def test_rolled_back_transaction_and_savepoint_leave_no_trace(
    ledger: psycopg.Connection[Any],
) -> None:
    ledger.execute(ROWS.format(n=50))
    before = stats_rows(ledger, "by_account", "account", "n", "total")
    with pytest.raises(RuntimeError), ledger.transaction():
        ledger.execute(ROWS.format(n=70))
        raise RuntimeError("roll back")
    assert stats_rows(ledger, "by_account", "account", "n", "total") == before
    with ledger.transaction():
        ledger.execute("INSERT INTO public.ledger (account, amount) VALUES (100, 1)")
        with pytest.raises(RuntimeError), ledger.transaction():  # a savepoint
            ledger.execute("DELETE FROM public.ledger")
            raise RuntimeError("roll back to savepoint")
    assert_exact(ledger)
    assert ledger.execute("SELECT n FROM public.by_account WHERE account = 100").fetchone() == (1,)


def test_insert_on_conflict_do_update_counts_the_update_once(ledger: psycopg.Connection[Any]) -> None:
    ledger.execute("INSERT INTO public.ledger (id, account, amount) VALUES (1, 1, 10), (2, 1, 20)")
    ledger.execute(
        "INSERT INTO public.ledger (id, account, amount) VALUES (1, 2, 5), (3, 1, 1) "
        "ON CONFLICT (id) DO UPDATE SET account = excluded.account, amount = excluded.amount"
    )
    assert stats_rows(ledger, "by_account", "account", "n", "total") == [
        (1, 2, Decimal("21.00")),
        (2, 1, Decimal("5.00")),
    ]
    assert_exact(ledger)


def test_update_of_unrelated_column_writes_no_stats_row(ledger: psycopg.Connection[Any]) -> None:
    ledger.execute(ROWS.format(n=100))
    versions = ledger.execute("SELECT account, xmin::text FROM public.by_account ORDER BY 1").fetchall()
    ledger.execute("UPDATE public.ledger SET note = 'seen'")
    assert (
        ledger.execute("SELECT account, xmin::text FROM public.by_account ORDER BY 1").fetchall() == versions
    )
    ledger.execute("UPDATE public.ledger SET amount = amount + 1 WHERE account = 1")
    assert_exact(ledger)


def test_an_update_writes_only_the_groups_whose_counts_and_sums_it_changed(
    conn: psycopg.Connection[Any],
) -> None:
    """A rollup of counts and exact sums takes from an UPDATE only the groups whose change is
    not zero, so an UPDATE that moves rows between users leaves the global total's row alone,
    with no comparison of old and new rows. min/max rollups and sums of types whose zero has
    several forms (interval) keep the comparison."""
    conn.execute(
        """
        CREATE TABLE public.acts (id int PRIMARY KEY, user_id int NOT NULL, amount numeric,
                                  took interval, ok boolean NOT NULL, note text);
        INSERT INTO public.acts
        SELECT g, g % 10, CASE WHEN g % 9 = 0 THEN NULL ELSE g / 4.0 END, g * interval '1 minute', g % 4 <> 0
        FROM generate_series(1, 400) AS g;
        SELECT tally.create_rollup('acts_by_user', source => 'public.acts', group_by => ARRAY['user_id'],
            measures => ARRAY['n = count(*)', 'total = sum(amount)', 'mean = avg(amount)'], filter => 'ok');
        SELECT tally.create_rollup('acts_took', source => 'public.acts', group_by => ARRAY['user_id'],
            measures => ARRAY['took = sum(took)', 'mean_took = avg(took)']);
        SELECT tally.create_rollup('acts_overall', source => 'public.acts',
            measures => ARRAY['n = count(*)', 'total = sum(amount)'], filter => 'ok');
        SELECT tally.create_rollup('acts_lowest', source => 'public.acts', group_by => ARRAY['user_id'],
            measures => ARRAY['lowest = min(amount)']);
        """
    )
    code = conn.execute("SELECT tally.maintenance_code('acts_overall')").fetchone()
    assert code is not None
    # one comparison decides an UPDATE that names no rollup's column; the min and the
    # interval rollups have one of their own each
    assert code[0].count("EXCEPT ALL") == 3

    def versions(table: str) -> list[tuple[Any, ...]]:
        return conn.execute(f"SELECT xmin::text, * FROM public.{table} ORDER BY 2").fetchall()

    overall, by_user = versions("acts_overall"), versions("acts_by_user")
    # every user's rows move to the next user: each user row changes, the total does not
    conn.execute("UPDATE public.acts SET user_id = (user_id + 1) % 10 WHERE id <= 200")
    assert versions("acts_overall") == overall
    assert all(a != b for a, b in zip(versions("acts_by_user"), by_user, strict=True))
    assert_exact(conn)
    # values set to themselves: no group of a count/sum rollup changes, none is written
    by_user = versions("acts_by_user")
    conn.execute("UPDATE public.acts SET amount = amount, took = took, ok = ok")
    assert (versions("acts_overall"), versions("acts_by_user")) == (overall, by_user)
    # a NULL amount made non-NULL and back in one statement's groups: counts move, exactly
    conn.execute(
        "UPDATE public.acts SET amount = CASE WHEN amount IS NULL THEN 1 ELSE NULL END WHERE id % 9 < 2"
    )
    assert_exact(conn)
    # a change of amount within one user, and a swap that keeps the total: only what changed
    overall = versions("acts_overall")
    conn.execute(
        "UPDATE public.acts SET amount = CASE id WHEN 4 THEN 2.00 WHEN 8 THEN 1.00 END WHERE id IN (4, 8)"
    )
    assert_exact(conn)
    # the last UPDATE of a query sets only user_id, the first one an amount: the total
    # changes although no UPDATE OF trigger named it
    conn.execute(
        "WITH first AS (UPDATE public.acts SET amount = amount + 100 WHERE id = 3 RETURNING id) "
        "UPDATE public.acts SET user_id = 9 WHERE id = 5"
    )
    assert versions("acts_overall") != overall
    assert_exact(conn)
    # and one that changes nothing any rollup reads returns before aggregating
    overall, by_user = versions("acts_overall"), versions("acts_by_user")
    conn.execute("UPDATE public.acts SET note = 'seen'")
    assert (versions("acts_overall"), versions("acts_by_user")) == (overall, by_user)
    assert_exact(conn)

    # interval '1 day' equals '24 hours' but adds differently to a date: a change between
    # them is a change (compared as text, which tells them apart)
    conn.execute(
        "UPDATE public.acts SET took = CASE WHEN id % 2 = 0 THEN interval '1 day' ELSE interval '1 mon' END"
    )
    conn.execute(
        "UPDATE public.acts SET took = CASE WHEN id % 2 = 0 THEN interval '24 hours' ELSE interval '30 days' END"
    )
    assert (
        conn.execute(
            "SELECT user_id, took::text, mean_took::text FROM public.acts_took ORDER BY 1"
        ).fetchall()
        == conn.execute(
            "SELECT user_id, sum(took)::text, avg(took)::text FROM public.acts GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    # an infinite amount moving to another user: the total stays infinite (its change,
    # Infinity - Infinity, is NaN, and no change)
    conn.execute("UPDATE public.acts SET amount = 'Infinity' WHERE id = 1")
    conn.execute("UPDATE public.acts SET user_id = 7 WHERE id = 1")
    conn.execute("UPDATE public.acts SET user_id = 8 WHERE id = 1 OR id = 2")
    assert conn.execute("SELECT total::text FROM public.acts_overall").fetchone() == ("Infinity",)
    # but a change to NaN, or an infinity that meets its opposite, is a change
    conn.execute(
        """
        CREATE TABLE public.pays (id int PRIMARY KEY, user_id int NOT NULL, amount numeric);
        INSERT INTO public.pays VALUES (1, 1, 5), (2, 1, 7), (3, 2, 1), (4, 3, 'Infinity'), (5, 3, 0);
        SELECT tally.create_rollup('pays_by_user', source => 'public.pays', group_by => ARRAY['user_id'],
            measures => ARRAY['total = sum(amount)', 'mean = avg(amount)']);
        SELECT tally.create_rollup('pays_overall', source => 'public.pays', measures => ARRAY['total = sum(amount)']);
        """
    )
    conn.execute("UPDATE public.pays SET amount = 'NaN' WHERE id = 1")
    conn.execute("UPDATE public.pays SET amount = '-Infinity' WHERE id = 5")
    assert conn.execute(
        "SELECT user_id, total::text, mean::text FROM public.pays_by_user "
        "UNION ALL SELECT NULL, total::text, NULL FROM public.pays_overall ORDER BY 1"
    ).fetchall() == [
        (1, "NaN", "NaN"),
        (2, "1", "1.00000000000000000000"),
        (3, "NaN", "NaN"),
        (None, "NaN", None),
    ]


def test_a_count_of_a_json_column_is_maintained_through_updates(conn: psycopg.Connection[Any]) -> None:
    """json has no equality: the comparison of old and new rows reads only whether a
    counted argument is NULL (all that count reads), so UPDATEs do not fail."""
    conn.execute(
        """
        CREATE TABLE public.docs (id int PRIMARY KEY, g int NOT NULL, doc json, v int, note text);
        INSERT INTO public.docs VALUES (1, 1, '{"a": 1}', 5), (2, 1, NULL, 6), (3, 2, '[]', 7);
        SELECT tally.create_rollup('docs_by_g', source => 'public.docs', group_by => ARRAY['g'],
            measures => ARRAY['with_doc = count(doc)']);
        SELECT tally.create_rollup('docs_lowest', source => 'public.docs', group_by => ARRAY['g'],
            measures => ARRAY['lowest = min(v)', 'with_doc = count(doc) FILTER (WHERE v > 5)']);
        """
    )
    conn.execute("UPDATE public.docs SET note = 'seen'")
    conn.execute("UPDATE public.docs SET doc = NULL WHERE id = 1")
    conn.execute(
        "WITH first AS (UPDATE public.docs SET doc = '{\"b\": 2}' WHERE id = 2 RETURNING id) "
        "UPDATE public.docs SET note = 'again' WHERE id = 3"
    )
    assert_exact(conn)
    assert conn.execute("SELECT g, with_doc FROM public.docs_by_g ORDER BY g").fetchall() == [(1, 1), (2, 1)]


def test_a_count_of_a_composite_column_counts_values_with_null_fields(conn: psycopg.Connection[Any]) -> None:
    """count(p) counts every non-NULL p, ROW(NULL, NULL) too, where p IS NOT NULL would ask
    that of each field: every path (one row, many rows, UPDATE) counts as count() does."""
    conn.execute(
        """
        CREATE TYPE public.pair AS (a int, b int);
        CREATE TABLE public.pairs (id int PRIMARY KEY, g int NOT NULL, p public.pair, amount bigint);
        SELECT tally.create_rollup('pairs_by_g', source => 'public.pairs', group_by => ARRAY['g'],
            measures => ARRAY['with_p = count(p)', 'total = sum(amount)']);
        SELECT tally.create_rollup('pairs_counted', source => 'public.pairs', measures => ARRAY['with_p = count(p)']);
        """
    )
    conn.execute("INSERT INTO public.pairs VALUES (1, 1, NULL, 5)")
    conn.execute("INSERT INTO public.pairs VALUES (2, 1, ROW(1, NULL), 7)")
    conn.execute(
        "INSERT INTO public.pairs VALUES (3, 2, ROW(NULL, NULL), 1), (4, 2, ROW(1, 2), 1), (5, 2, NULL, 1)"
    )
    assert_exact(conn)
    conn.execute("UPDATE public.pairs SET p = ROW(NULL, 3) WHERE id IN (1, 4)")
    conn.execute("UPDATE public.pairs SET p = NULL WHERE id = 3")
    conn.execute(
        "WITH first AS (UPDATE public.pairs SET p = ROW(NULL, NULL) WHERE id = 5 RETURNING id) "
        "UPDATE public.pairs SET amount = amount + 1 WHERE id = 2"
    )
    assert_exact(conn)
    conn.execute("DELETE FROM public.pairs WHERE id = 2")
    conn.execute("DELETE FROM public.pairs WHERE id IN (3, 5)")
    assert_exact(conn)
    assert conn.execute("SELECT g, with_p FROM public.pairs_by_g ORDER BY g").fetchall() == [(1, 1), (2, 1)]


def test_a_statement_changing_every_group_updates_the_stats_rows_in_place(
    conn: psycopg.Connection[Any],
) -> None:
    """Stats tables leave half of each page free (fillfactor 50), so a bulk statement's new
    row versions fit beside the old ones: HOT updates, no new primary key entries."""
    conn.execute(
        """
        CREATE TABLE public.moves (id bigserial PRIMARY KEY, account int NOT NULL, amount numeric(12, 2) NOT NULL);
        INSERT INTO public.moves (account, amount) SELECT g % 2000, g FROM generate_series(1, 20000) AS g;
        SELECT tally.create_rollup('moves_by_account', source => 'public.moves', group_by => ARRAY['account'],
            measures => ARRAY['total = sum(amount)', 'n = count(*)']);
        """
    )
    options = conn.execute(
        "SELECT reloptions FROM pg_catalog.pg_class WHERE oid = 'public.moves_by_account'::regclass"
    )
    assert options.fetchone() == (["fillfactor=50"],)
    with conn.transaction():
        conn.execute("UPDATE public.moves SET amount = amount + 1")
        counts = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_catalog.pg_stat_xact_user_tables "
            "WHERE relid = 'public.moves_by_account'::regclass"
        ).fetchone()
    assert counts == (2000, 2000)
    assert_exact(conn)


def test_the_migration_gives_existing_stats_tables_half_full_pages(ledger: psycopg.Connection[Any]) -> None:
    migration = Path(__file__).resolve().parents[1] / "sql/migrations/V0012__stats_tables_half_full_pages.sql"
    ledger.execute("ALTER TABLE public.by_account RESET (fillfactor)")  # as made before V0012
    ledger.execute("ALTER TABLE public.overall SET (fillfactor = 80)")  # a choice of the user's
    ledger.execute(
        "SELECT tally.create_rollup('by_flag', source => 'public.ledger', group_by => ARRAY['flag'], "
        "measures => ARRAY['total = sum(amount)'])"
    )
    ledger.execute("SELECT tally.set_slots('by_flag', 4)")
    ledger.execute("ALTER TABLE public.by_flag_slots RESET (fillfactor)")
    ledger.execute(migration.read_text())  # type: ignore[arg-type]
    options = ledger.execute(
        "SELECT c.relname, c.reloptions FROM pg_catalog.pg_class AS c "
        "WHERE c.relname IN ('by_account', 'overall', 'by_flag', 'by_flag_slots') ORDER BY 1"
    ).fetchall()
    # an installer that does not own a stats table: the upgrade goes on with a warning
    ledger.execute("ALTER TABLE public.by_account RESET (fillfactor)")
    ledger.execute("DROP ROLE IF EXISTS pgtally_t_installer")
    ledger.execute("CREATE ROLE pgtally_t_installer")
    try:
        ledger.execute("GRANT USAGE ON SCHEMA tally TO pgtally_t_installer")
        ledger.execute("GRANT SELECT ON tally.rollups TO pgtally_t_installer")
        ledger.execute(
            "GRANT SELECT ON public.by_account TO pgtally_t_installer"
        )  # so the catalogue shows it
        warnings: list[str] = []
        ledger.add_notice_handler(lambda diagnostic: warnings.append(str(diagnostic.message_primary)))
        with ledger.transaction():
            ledger.execute("SET LOCAL ROLE pgtally_t_installer")
            ledger.execute(migration.read_text())  # type: ignore[arg-type]
        assert any(w.endswith("by_account is not yours to alter") for w in warnings)
    finally:
        ledger.execute("DROP OWNED BY pgtally_t_installer")
        ledger.execute("DROP ROLE pgtally_t_installer")
    ledger.execute(migration.read_text())  # type: ignore[arg-type]
    assert options == [
        ("by_account", ["fillfactor=50"]),
        ("by_flag", None),  # the view over the slots
        ("by_flag_slots", ["fillfactor=50"]),
        ("overall", ["fillfactor=80"]),
    ]


def test_null_group_key_is_one_group_like_group_by(ledger: psycopg.Connection[Any]) -> None:
    ledger.execute(
        "INSERT INTO public.ledger (account, category, amount, flag) VALUES (1, NULL, 1, true), (2, NULL, 5, true)"
    )
    assert stats_rows(ledger, "by_category", "category", "n", "top") == [(None, 2, Decimal("5.00"))]
    ledger.execute("UPDATE public.ledger SET category = 'x' WHERE amount = 5")
    assert stats_rows(ledger, "by_category", "category", "n", "top") == [
        ("x", 1, Decimal("5.00")),
        (None, 1, Decimal("1.00")),
    ]
    ledger.execute("DELETE FROM public.ledger WHERE category IS NULL")
    assert stats_rows(ledger, "by_category", "category", "n") == [("x", 1)]
    assert_exact(ledger)


def test_partitioned_source_is_maintained(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """
        CREATE TABLE public.events (day date NOT NULL, kind text NOT NULL, cost numeric NOT NULL)
            PARTITION BY RANGE (day);
        CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        CREATE TABLE public.events_2026 PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        SELECT tally.create_rollup('event_costs', source => 'public.events', group_by => ARRAY['kind', 'day'],
            measures => ARRAY['cost = sum(cost)', 'n = count(*)']);
        INSERT INTO public.events SELECT date '2025-12-25' + g % 20, 'k' || g % 3, g FROM generate_series(1, 300) AS g;
        UPDATE public.events SET day = day + 30 WHERE kind = 'k1';
        DELETE FROM public.events WHERE kind = 'k2' AND day > '2026-01-01';
        """
    )
    assert_exact(conn)


def test_same_definition_again_is_a_no_op_and_a_change_needs_replace(ledger: psycopg.Connection[Any]) -> None:
    ledger.execute(ROWS.format(n=20))
    again = ledger.execute(
        "SELECT tally.create_rollup('by_category', source => 'public.ledger', group_by => ARRAY['category'], "
        "measures => ARRAY['n = count(*)', 'top = max(amount)'], filter => 'flag')"
    ).fetchone()
    assert again == ("by_category",)
    with pytest.raises(psycopg.errors.DuplicateObject):
        ledger.execute(
            "SELECT tally.create_rollup('by_category', source => 'public.ledger', group_by => ARRAY['category'], "
            "measures => ARRAY['n = count(*)'])"
        )
    ledger.execute(
        "SELECT tally.create_rollup('by_category', source => 'public.ledger', group_by => ARRAY['category'], "
        "measures => ARRAY['n = count(*)'], replace => true)"
    )
    assert_exact(ledger)


def test_drop_rollup_removes_its_table_and_keeps_the_others_exact(ledger: psycopg.Connection[Any]) -> None:
    ledger.execute("SELECT tally.drop_rollup('by_account')")
    assert ledger.execute("SELECT to_regclass('public.by_account')").fetchone() == (None,)
    ledger.execute(ROWS.format(n=300))
    ledger.execute("UPDATE public.ledger SET flag = NOT flag WHERE id % 3 = 0")
    assert_exact(ledger)
    ledger.execute("SELECT tally.drop_rollup('by_category')")
    ledger.execute("SELECT tally.drop_rollup('overall')")
    assert ledger.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.ledger'::regclass"
    ).fetchone() == (0,)
    assert ledger.execute(
        "SELECT count(*) FROM pg_proc WHERE proname LIKE 'tally\\_ledger\\_%'"
    ).fetchone() == (0,)


def test_generated_code_is_printable(ledger: psycopg.Connection[Any]) -> None:
    (code,) = ledger.execute("SELECT tally.maintenance_code('overall')").fetchone()  # type: ignore[misc]
    assert "rollup by_account" in code and "rollup overall" in code
    assert code.count("CREATE OR REPLACE FUNCTION") == 4
    assert "GROUPING SETS" in code  # one pass for rollups with different keys


def test_writer_needs_no_privilege_on_stats_and_cannot_edit_them(
    ledger: psycopg.Connection[Any], dsn_for: Callable[..., str]
) -> None:
    ledger.execute("DROP ROLE IF EXISTS app_writer")
    ledger.execute("CREATE ROLE app_writer LOGIN")
    try:
        ledger.execute("GRANT USAGE ON SCHEMA public TO app_writer")
        ledger.execute("GRANT INSERT, UPDATE, DELETE, SELECT ON public.ledger TO app_writer")
        ledger.execute("GRANT USAGE ON SEQUENCE public.ledger_id_seq TO app_writer")
        with psycopg.connect(dsn_for("app_writer"), autocommit=True) as app:
            app.execute("INSERT INTO public.ledger (account, amount, flag) VALUES (1, 2.5, true)")
            app.execute("UPDATE public.ledger SET account = 2")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("UPDATE public.by_account SET n = 0")
        assert_exact(ledger)
    finally:
        ledger.execute("DROP OWNED BY app_writer")
        ledger.execute("DROP ROLE app_writer")


def test_rollups_of_a_dropped_source_are_skipped_then_dropped_cleanly(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """
        CREATE TABLE public.gone (id serial PRIMARY KEY, k int NOT NULL, v numeric NOT NULL);
        SELECT tally.create_rollup('gone_by_k', source => 'public.gone', group_by => ARRAY['k'],
            measures => ARRAY['total = sum(v)']);
        SELECT tally.create_rollup('gone_overall', source => 'public.gone', measures => ARRAY['n = count(*)']);
        """
    )
    prefix = conn.execute("SELECT function_prefix FROM tally.rollup_sources").fetchone()
    assert prefix is not None
    conn.execute("DROP TABLE public.gone")
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    assert conn.execute("SELECT tally.regenerate_all_rollups()").fetchone() == (0,)
    assert any("gone_by_k, gone_overall" in n for n in notices), notices
    conn.execute("SELECT tally.drop_rollup('gone_by_k')")
    conn.execute("SELECT tally.drop_rollup('gone_overall')")
    assert conn.execute("SELECT count(*) FROM tally.rollups").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM tally.rollup_sources").fetchone() == (0,)
    left = conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE %s", (prefix[0] + "%",)).fetchone()
    assert left == (0,)
    assert conn.execute(
        "SELECT to_regclass('public.gone_by_k'), to_regclass('public.gone_overall')"
    ).fetchone() == (
        None,
        None,
    )


def test_one_row_delete_of_the_smallest_integers_subtracts_in_the_wider_sum_type(
    conn: psycopg.Connection[Any],
) -> None:
    # sum() of smallint/integer is bigint and of bigint numeric: the one-row path must
    # negate in that type, as the aggregating path does (-32768 has no smallint negative)
    conn.execute(
        """
        CREATE TABLE public.extremes (id int PRIMARY KEY, s smallint, i int, b bigint);
        SELECT tally.create_rollup('extreme_sums', source => 'public.extremes',
            measures => ARRAY['ss = sum(s)', 'si = sum(i)', 'sb = sum(b)', 'mean_i = avg(i)', 'mean_b = avg(b)']);
        INSERT INTO public.extremes VALUES (1, -32768, -2147483648, -9223372036854775808);
        INSERT INTO public.extremes VALUES (2, 5, 6, 7);
        """
    )
    conn.execute("DELETE FROM public.extremes WHERE id = 1")
    assert_exact(conn, "extreme_sums")
    assert stats_rows(conn, "extreme_sums", "ss", "si", "sb") == [(5, 6, 7)]
    conn.execute("DELETE FROM public.extremes WHERE id = 2")
    assert stats_rows(conn, "extreme_sums", "ss") == []


def test_literals_in_a_filter_reach_the_trigger_unchanged(conn: psycopg.Connection[Any]) -> None:
    # generated code is indented and annotated for reading; a user's string literal must
    # reach the trigger unchanged (a line break in it, text like the "-- rollup" markers),
    # on the one-row and the aggregating path alike
    odd_labels = ["skip\n    me", "-- rollup a, b"]
    conn.execute("CREATE TABLE public.labels (id serial PRIMARY KEY, label text NOT NULL)")
    conn.execute(
        "SELECT tally.create_rollup('kept_labels', source => 'public.labels', measures => ARRAY['n = count(*)'], "
        "filter => %s)",
        ("label <> 'skip\n    me' AND label <> '-- rollup a, b'",),
    )
    conn.execute("INSERT INTO public.labels (label) VALUES ('x')")
    for label in odd_labels:
        conn.execute("INSERT INTO public.labels (label) VALUES (%s)", (label,))
    conn.execute("INSERT INTO public.labels (label) VALUES ('y'), (%s), (%s)", odd_labels)
    conn.execute("DELETE FROM public.labels WHERE id = 2")
    assert_exact(conn, "kept_labels")
    assert stats_rows(conn, "kept_labels", "n") == [(2,)]


@pytest.mark.parametrize("slots", [1, 4])
def test_money_and_interval_sums_stay_exact_through_every_write(
    conn: psycopg.Connection[Any], slots: int
) -> None:
    # money has no unary minus and no implicit cast from 0: removing rows negates sums as
    # "* -1", and slots fill missing parts with '0' of the column's own type
    conn.execute(
        """
        CREATE TABLE public.expenses (id int PRIMARY KEY, team int NOT NULL, cost money, took interval);
        SELECT tally.create_rollup('team_expenses', source => 'public.expenses', group_by => ARRAY['team'],
            measures => ARRAY['total = sum(cost)', 'spent = sum(took)', 'mean_took = avg(took)', 'n = count(*)']);
        """
    )
    conn.execute("SELECT tally.set_slots('team_expenses', %s)", (slots,))
    writes = [
        "INSERT INTO public.expenses VALUES (1, 1, 5, '1 hour'), (2, 2, 7, '2 days'), (3, 1, 2.5, NULL)",
        "INSERT INTO public.expenses VALUES (4, 2, NULL, '90 minutes')",
        "DELETE FROM public.expenses WHERE id = 1",
        "UPDATE public.expenses SET cost = cost + 1::money, took = coalesce(took, '1 minute') * 2",
        "UPDATE public.expenses SET team = 3 WHERE id = 2",
        "DELETE FROM public.expenses WHERE id IN (3, 4)",
    ]
    for write in writes:
        conn.execute(write)
        assert_exact(conn, "team_expenses")
    conn.execute("SELECT tally.compact('team_expenses')")
    conn.execute("SELECT tally.set_slots('team_expenses', 1)")
    assert_exact(conn, "team_expenses")
    assert stats_rows(conn, "team_expenses", "team", "total", "spent") == [(3, "$8.00", timedelta(days=4))]


def test_a_bare_row_count_reads_no_column_of_the_source(conn: psycopg.Connection[Any]) -> None:
    # no key, no filter, only count(*): the generated code selects no source column at all
    conn.execute(
        """
        CREATE TABLE public.visits (id int PRIMARY KEY, page text);
        SELECT tally.create_rollup('visit_count', source => 'public.visits', measures => ARRAY['n = count(*)']);
        """
    )
    for write in (
        "INSERT INTO public.visits VALUES (1, 'a')",
        "INSERT INTO public.visits VALUES (2, 'b'), (3, 'c')",
        "UPDATE public.visits SET page = 'z'",
        "DELETE FROM public.visits WHERE id = 1",
    ):
        conn.execute(write)
        assert_exact(conn, "visit_count")
    assert stats_rows(conn, "visit_count", "n") == [(2,)]
    conn.execute("DELETE FROM public.visits")
    assert stats_rows(conn, "visit_count", "n") == []


def test_two_keys_of_one_expression_take_both_paths(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """
        CREATE TABLE public.parity (id int PRIMARY KEY, a int NOT NULL);
        SELECT tally.create_rollup('parity_twice', source => 'public.parity',
            group_by => ARRAY['x = a % 2', 'y = a % 2'], measures => ARRAY['n = count(*)']);
        """
    )
    for write in (
        "INSERT INTO public.parity VALUES (1, 1)",
        "INSERT INTO public.parity VALUES (2, 1), (3, 2)",
        "DELETE FROM public.parity WHERE id = 2",
        "DELETE FROM public.parity WHERE id > 0",
    ):
        conn.execute(write)
        assert_exact(conn, "parity_twice")


def test_create_rollup_again_after_its_source_was_dropped_and_made_anew(
    conn: psycopg.Connection[Any],
) -> None:
    # a migration that re-creates a table, then re-runs its create_rollup: the stale
    # rollup (its source gone) is made again over the new table, not kept as "nothing to do"
    declare = (
        "SELECT tally.create_rollup('notes_by_author', source => 'public.notes', group_by => ARRAY['author'], "
        "measures => ARRAY['n = count(*)'])"
    )
    conn.execute("CREATE TABLE public.notes (id int PRIMARY KEY, author text NOT NULL)")
    conn.execute(declare)
    conn.execute("INSERT INTO public.notes VALUES (1, 'ann')")
    conn.execute("DROP TABLE public.notes")
    conn.execute("CREATE TABLE public.notes (id int PRIMARY KEY, author text NOT NULL)")
    conn.execute("INSERT INTO public.notes VALUES (1, 'bob'), (2, 'bob')")
    conn.execute(declare)
    conn.execute("INSERT INTO public.notes VALUES (3, 'cy')")
    assert_exact(conn, "notes_by_author")
    assert stats_rows(conn, "notes_by_author", "author", "n") == [("bob", 2), ("cy", 1)]


@pytest.mark.parametrize("mode", ["immediate", "append"])
def test_several_updates_of_the_source_in_one_query_are_maintained(
    conn: psycopg.Connection[Any], mode: str
) -> None:
    # PostgreSQL fires only the last UPDATE's UPDATE OF triggers when one query updates a
    # table twice (writable CTEs, foreign-key cascades), but every row reaches the trigger
    conn.execute("CREATE TABLE public.p4 (id int PRIMARY KEY, code int UNIQUE)")
    conn.execute(
        "CREATE TABLE public.r4 (id int PRIMARY KEY, g int, v int, note text, "
        "a int REFERENCES public.p4 (id) ON UPDATE CASCADE, b int REFERENCES public.p4 (code) ON UPDATE CASCADE)"
    )
    for rollup, key in (("r4_by_g", "g"), ("r4_by_a", "a"), ("r4_by_b", "b")):
        conn.execute(
            "SELECT tally.create_rollup(%s, source => 'public.r4', group_by => ARRAY[%s], "
            "measures => ARRAY['n = count(*)', 's = sum(v)'])",
            (rollup, key),
        )
        conn.execute("SELECT tally.set_mode(%s, %s)", (rollup, mode))
    conn.execute("INSERT INTO public.p4 VALUES (1, 10), (2, 20)")
    conn.execute("INSERT INTO public.r4 VALUES (1, 1, 10, NULL, 1, 20), (2, 1, 20, NULL, 2, 10)")
    # the last UPDATE sets a column no rollup reads; the first moved a row to another group
    conn.execute(
        "WITH moved AS (UPDATE public.r4 SET g = 2, v = v + 1 WHERE id = 1 RETURNING id) "
        "UPDATE public.r4 SET note = 'x' WHERE id = 2"
    )
    assert_exact(conn)
    # one UPDATE of the parent cascades into the source through both foreign keys
    conn.execute("UPDATE public.p4 SET id = 3, code = 30 WHERE id = 1")
    assert_exact(conn)
    assert conn.execute("SELECT a, n FROM public.r4_by_a ORDER BY a").fetchall() == [(2, 1), (3, 1)]
    # an UPDATE of a column no rollup reads still changes nothing
    conn.execute("UPDATE public.r4 SET note = 'y'")
    assert_exact(conn)
    # a BEFORE UPDATE row trigger made after the rollups changes a column they read in an
    # UPDATE that names none: the comparison sees it without the code being regenerated
    conn.execute(
        "CREATE FUNCTION public.bump() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN NEW.v := NEW.v + 100; RETURN NEW; END $$"
    )
    conn.execute("CREATE TRIGGER bump BEFORE UPDATE ON public.r4 FOR EACH ROW EXECUTE FUNCTION public.bump()")
    conn.execute("UPDATE public.r4 SET note = 'z' WHERE id = 1")
    assert_exact(conn)
