"""Bad rollup definitions get an error with an SQLSTATE that names the bad part, and
leave nothing behind: no catalogue row, no stats table, no trigger."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.exactness import assert_exact

SOURCE = """
CREATE TABLE public.orders (
    id bigserial PRIMARY KEY, customer int NOT NULL, total numeric(12, 2) NOT NULL,
    weight double precision, placed_at timestamptz NOT NULL DEFAULT now(), paid boolean NOT NULL DEFAULT false
);
CREATE TABLE public.taken (x int);
"""


def nothing_left(conn: psycopg.Connection[Any]) -> None:
    assert conn.execute("SELECT count(*) FROM tally.rollups").fetchone() == (0,)
    assert conn.execute("SELECT to_regclass('public.bad')").fetchone() == (None,)
    assert conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.orders'::regclass"
    ).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM tally.rollup_sources").fetchone() == (0,)


CASES = [
    # (what is wrong, arguments, expected error class, text the message must contain)
    (
        "unknown table",
        "source => 'public.nope', measures => ARRAY['n = count(*)']",
        errors.UndefinedTable,
        "nope",
    ),
    (
        "unknown column in a key",
        "source => 'public.orders', group_by => ARRAY['custmer'], measures => ARRAY['n = count(*)']",
        errors.UndefinedColumn,
        'group key "custmer"',
    ),
    (
        "unknown column in a measure",
        "source => 'public.orders', measures => ARRAY['s = sum(totl)']",
        errors.UndefinedColumn,
        'measure "s"',
    ),
    (
        "unknown column in the filter",
        "source => 'public.orders', measures => ARRAY['n = count(*)'], filter => 'payd'",
        errors.UndefinedColumn,
        "filter",
    ),
    (
        "filter of the wrong type",
        "source => 'public.orders', measures => ARRAY['n = count(*)'], filter => 'customer'",
        errors.DatatypeMismatch,
        "filter must be boolean",
    ),
    (
        "bad expression",
        "source => 'public.orders', measures => ARRAY['s = sum(total +)']",
        errors.SyntaxError,
        'measure "s"',
    ),
    (
        "non-aggregate measure",
        "source => 'public.orders', measures => ARRAY['s = total + 1']",
        errors.GroupingError,
        "not an aggregate",
    ),
    (
        "unsupported aggregate",
        "source => 'public.orders', measures => ARRAY['s = string_agg(total::text, '','')']",
        errors.FeatureNotSupported,
        "string_agg",
    ),
    (
        "count distinct",
        "source => 'public.orders', measures => ARRAY['c = count(DISTINCT customer)']",
        errors.FeatureNotSupported,
        "DISTINCT",
    ),
    (
        "measure without a name",
        "source => 'public.orders', measures => ARRAY['count(*)']",
        errors.InvalidParameterValue,
        "has no name",
    ),
    (
        "key expression without a name",
        "source => 'public.orders', group_by => ARRAY['customer % 10'], measures => ARRAY['n = count(*)']",
        errors.InvalidParameterValue,
        "without a name",
    ),
    (
        "duplicate names",
        "source => 'public.orders', group_by => ARRAY['customer'], measures => ARRAY['customer = count(*)']",
        errors.DuplicateColumn,
        "customer",
    ),
    (
        "reserved name",
        "source => 'public.orders', measures => ARRAY['_tally_rows = count(*)']",
        errors.ReservedName,
        "_tally_rows",
    ),
    (
        "name clash with an existing table",
        "source => 'public.orders', measures => ARRAY['n = count(*)'], stats_table => 'public.taken'",
        errors.DuplicateTable,
        "public.taken",
    ),
    (
        "float summed without saying so",
        "source => 'public.orders', measures => ARRAY['w = sum(weight)']",
        errors.DatatypeMismatch,
        "not exact",
    ),
    (
        "volatile key",
        "source => 'public.orders', group_by => ARRAY['day = date_trunc(''day'', placed_at)'], measures => ARRAY['n = count(*)']",
        errors.InvalidObjectDefinition,
        "immutable",
    ),
    (
        "subquery",
        "source => 'public.orders', measures => ARRAY['n = count(*)'], filter => 'customer IN (SELECT x FROM public.taken)'",
        errors.FeatureNotSupported,
        "filter",
    ),
    (
        "aggregate in a key",
        "source => 'public.orders', group_by => ARRAY['k = max(customer)'], measures => ARRAY['n = count(*)']",
        errors.GroupingError,
        'group key "k"',
    ),
    (
        "escaping the wrapper",
        "source => 'public.orders', measures => ARRAY['n = count(*)'], filter => 'true) OR (true'",
        errors.SyntaxError,
        "unbalanced",
    ),
    (
        "comment in an expression",
        "source => 'public.orders', measures => ARRAY['n = count(*)'], filter => 'paid -- hi'",
        errors.SyntaxError,
        "--",
    ),
    (
        "no measures",
        "source => 'public.orders', measures => ARRAY[]::text[]",
        errors.InvalidParameterValue,
        "no measures",
    ),
    (
        "bad rollup name",
        "source => 'public.orders', measures => ARRAY['n = count(*)']",
        errors.InvalidName,
        "not valid",
    ),
    (
        "not a table",
        "source => 'pg_catalog.pg_tables', measures => ARRAY['n = count(*)']",
        errors.WrongObjectType,
        "not a table",
    ),
]


@pytest.mark.parametrize(("what", "arguments", "error", "text"), CASES, ids=[c[0] for c in CASES])
def test_bad_definition_is_refused_and_leaves_nothing(
    conn: psycopg.Connection[Any], what: str, arguments: str, error: type[Exception], text: str
) -> None:
    conn.execute(SOURCE)
    name = "Bad Name" if what == "bad rollup name" else "bad"
    with pytest.raises(error) as raised:
        conn.execute(f"SELECT tally.create_rollup('{name}', {arguments})")
    assert text in str(raised.value), str(raised.value)
    nothing_left(conn)


def test_role_that_does_not_own_the_source_cannot_define_a_rollup(
    conn: psycopg.Connection[Any], dsn_for: Callable[..., str]
) -> None:
    conn.execute(SOURCE)
    conn.execute("DROP ROLE IF EXISTS analyst")
    conn.execute("CREATE ROLE analyst LOGIN")
    try:
        conn.execute("SELECT tally.grant_usage('analyst')")
        conn.execute("GRANT SELECT ON public.orders TO analyst")
        conn.execute("GRANT CREATE, USAGE ON SCHEMA public TO analyst")
        with (
            psycopg.connect(dsn_for("analyst"), autocommit=True) as analyst,
            pytest.raises(errors.InsufficientPrivilege, match=r"must be owner of table public\.orders"),
        ):
            analyst.execute(
                "SELECT tally.create_rollup('bad', source => 'public.orders', measures => ARRAY['n = count(*)'])"
            )
        nothing_left(conn)
    finally:
        conn.execute("DROP OWNED BY analyst")
        conn.execute("DROP ROLE analyst")


def test_owner_role_with_pgtally_usage_defines_and_drops_its_rollup(
    conn: psycopg.Connection[Any], dsn_for: Callable[..., str]
) -> None:
    conn.execute("DROP ROLE IF EXISTS app_owner")
    conn.execute("CREATE ROLE app_owner LOGIN")
    try:
        conn.execute("SELECT tally.grant_usage('app_owner')")
        conn.execute("CREATE SCHEMA app AUTHORIZATION app_owner")
        with psycopg.connect(dsn_for("app_owner"), autocommit=True) as owner:
            owner.execute(
                "CREATE TABLE app.items (id serial PRIMARY KEY, kind text NOT NULL, price numeric NOT NULL)"
            )
            owner.execute("INSERT INTO app.items (kind, price) VALUES ('a', 1.5), ('a', 2), ('b', 3)")
            owner.execute(
                "SELECT tally.create_rollup('items_by_kind', source => 'app.items', group_by => ARRAY['kind'], "
                "measures => ARRAY['n = count(*)', 'total = sum(price)'])"
            )
            owner.execute("INSERT INTO app.items (kind, price) VALUES ('b', 4)")
            assert owner.execute("SELECT kind, n, total FROM app.items_by_kind ORDER BY 1").fetchall() == [
                ("a", 2, Decimal("3.5")),
                ("b", 2, Decimal("7")),
            ]
            assert owner.execute(
                "SELECT tableowner FROM pg_tables WHERE tablename = 'items_by_kind'"
            ).fetchone() == ("app_owner",)
            owner.execute("SELECT tally.drop_rollup('items_by_kind')")
    finally:
        conn.execute("DROP SCHEMA IF EXISTS app CASCADE")
        conn.execute("SELECT tally.revoke_usage('app_owner')")
        conn.execute("DROP OWNED BY app_owner")
        conn.execute("DROP ROLE app_owner")


def test_rollups_follow_their_source_to_a_new_owner(
    conn: psycopg.Connection[Any], dsn_for: Callable[..., str]
) -> None:
    """The catalogue shows a rollup to whoever owns its source now: a new owner who adds a
    rollup regenerates the triggers with every rollup of the source, not only its own."""
    conn.execute("DROP ROLE IF EXISTS first_owner, next_owner")
    conn.execute("CREATE ROLE first_owner LOGIN")
    conn.execute("CREATE ROLE next_owner LOGIN")
    try:
        conn.execute("SELECT tally.grant_usage('first_owner'), tally.grant_usage('next_owner')")
        conn.execute("CREATE SCHEMA app")
        conn.execute("GRANT CREATE, USAGE ON SCHEMA app TO first_owner, next_owner")
        with psycopg.connect(dsn_for("first_owner"), autocommit=True) as first:
            first.execute(
                "CREATE TABLE app.items (id serial PRIMARY KEY, kind text NOT NULL, price numeric NOT NULL)"
            )
            first.execute("INSERT INTO app.items (kind, price) VALUES ('a', 1.5), ('b', 3)")
            first.execute(
                "SELECT tally.create_rollup('items_by_kind', source => 'app.items', group_by => ARRAY['kind'], "
                "measures => ARRAY['n = count(*)', 'total = sum(price)'])"
            )
        conn.execute("ALTER TABLE app.items OWNER TO next_owner")
        with (
            psycopg.connect(dsn_for("next_owner"), autocommit=True) as following,
            pytest.raises(
                errors.InsufficientPrivilege, match=r"stats table app\.items_by_kind belongs to first_owner"
            ),
        ):
            following.execute(
                "SELECT tally.create_rollup('items_total', source => 'app.items', measures => ARRAY['total = sum(price)'])"
            )
        assert conn.execute("SELECT to_regclass('app.items_total')").fetchone() == (None,)
        conn.execute("INSERT INTO app.items (kind, price) VALUES ('b', 1)")  # the triggers still work
        conn.execute("SELECT tally.regenerate_all_rollups()")  # an upgrade, say: moves the stats table along
        with psycopg.connect(dsn_for("next_owner"), autocommit=True) as following:
            following.execute(
                "SELECT tally.create_rollup('items_total', source => 'app.items', measures => ARRAY['total = sum(price)'])"
            )
            assert following.execute("SELECT rollup_name FROM tally.rollups ORDER BY 1").fetchall() == [
                ("items_by_kind",),
                ("items_total",),
            ]
            following.execute("INSERT INTO app.items (kind, price) VALUES ('a', 2), ('c', 4)")
        assert_exact(conn)
        with psycopg.connect(dsn_for("next_owner"), autocommit=True) as following:
            following.execute("SELECT tally.drop_rollup('items_by_kind')")
            following.execute("SELECT tally.drop_rollup('items_total')")
        assert conn.execute("SELECT count(*) FROM tally.rollups").fetchone() == (0,)
        assert conn.execute("SELECT to_regclass('app.items_by_kind')").fetchone() == (None,)
    finally:
        conn.execute("DROP SCHEMA IF EXISTS app CASCADE")
        conn.execute("SELECT tally.revoke_usage('first_owner'), tally.revoke_usage('next_owner')")
        conn.execute("DROP OWNED BY first_owner, next_owner")
        conn.execute("DROP ROLE first_owner, next_owner")


def test_unknown_rollup_cannot_be_dropped(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(errors.UndefinedObject, match='rollup "ghost" does not exist'):
        conn.execute("SELECT tally.drop_rollup('ghost')")
