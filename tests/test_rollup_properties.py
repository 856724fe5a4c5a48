"""Property: after any sequence of writes, every stats table equals its recomputation.

Hypothesis draws sequences of INSERT (row by row, then the same rows in one statement) /
UPDATE (group keys, values, the filter column) / DELETE (many rows, one row) / TRUNCATE,
some inside transactions or savepoints that roll back, and checks all rollups after every
step.
"""

from __future__ import annotations

from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.exactness import assert_exact

SCHEMA = """
CREATE TABLE public.facts (
    id serial PRIMARY KEY,
    g int NOT NULL,
    h text,
    v int,
    amount numeric(10, 2),
    flag boolean NOT NULL
);
SELECT tally.create_rollup('facts_by_g', source => 'public.facts', group_by => ARRAY['g'],
    measures => ARRAY['n = count(*)', 'nv = count(v)', 'total = sum(amount)', 'lo = min(v)', 'hi = max(v)',
                      'mean = avg(v)', 'flagged_hi = max(amount) FILTER (WHERE flag)']);
SELECT tally.create_rollup('facts_by_g_h', source => 'public.facts', group_by => ARRAY['g', 'h'],
    measures => ARRAY['n = count(*)', 'total = sum(v)', 'lo = min(amount)'], filter => 'flag');
SELECT tally.create_rollup('facts_by_parity', source => 'public.facts', group_by => ARRAY['odd = v % 2 = 1'],
    measures => ARRAY['n = count(*)', 'hi = max(amount)']);
SELECT tally.create_rollup('facts_overall', source => 'public.facts',
    measures => ARRAY['n = count(*)', 'total = sum(amount)', 'lo = min(v)'], filter => 'NOT flag');
"""

# Every rollup filtered (by different filters, one of them NULL for NULL v): the generated
# triggers leave out rows matching none of the filters before aggregating.
FILTERED_SCHEMA = (
    SCHEMA.split("SELECT tally.create_rollup")[0]
    + """
SELECT tally.create_rollup('flagged_by_g', source => 'public.facts', group_by => ARRAY['g'],
    measures => ARRAY['n = count(*)', 'total = sum(amount)', 'hi = max(v)'], filter => 'flag');
SELECT tally.create_rollup('big_v_by_h', source => 'public.facts', group_by => ARRAY['h'],
    measures => ARRAY['n = count(*)', 'lo = min(amount)'], filter => 'v > 2');
SELECT tally.create_rollup('big_v_overall', source => 'public.facts',
    measures => ARRAY['n = count(*)', 'total = sum(v)'], filter => 'v > 2');
"""
)

small = st.integers(min_value=0, max_value=4)
values = st.one_of(st.none(), st.integers(min_value=-50, max_value=50))
amounts = st.one_of(st.none(), st.integers(min_value=-9999, max_value=9999))
texts = st.sampled_from([None, "a", "b"])

row = st.tuples(small, texts, values, amounts, st.booleans())

insert = st.builds(lambda rows: ("insert", rows), st.lists(row, min_size=1, max_size=8))
update = st.builds(
    lambda where, column, value: ("update", where, column, value),
    small,
    st.sampled_from(["g", "h", "v", "amount", "flag"]),
    st.one_of(small, values, texts, st.booleans()),
)
delete = st.builds(lambda where: ("delete", where), small)
# one-row DELETEs (the generated triggers' path without aggregation), also of a group's last row
delete_one = st.builds(lambda where: ("delete_one", where), small)
truncate = st.just(("truncate",))
step = st.one_of(insert, insert, update, update, delete, delete_one, truncate)
block = st.tuples(
    st.sampled_from(["commit", "rollback", "savepoint"]), st.lists(step, min_size=1, max_size=4)
)


def apply(conn: psycopg.Connection[Any], action: tuple[Any, ...]) -> None:
    kind = action[0]
    if kind == "insert":
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO public.facts (g, h, v, amount, flag) VALUES (%s, %s, %s, %s::numeric / 100, %s)",
                action[1],
            )
            # and the same rows again in one multi-row statement
            cur.execute(
                "INSERT INTO public.facts (g, h, v, amount, flag) "
                "SELECT g, h, v, amount::numeric / 100, flag FROM unnest(%s::int[], %s::text[], %s::int[], %s::int[], %s::bool[]) "
                "AS u(g, h, v, amount, flag)",
                [list(col) for col in zip(*action[1], strict=True)],
            )
    elif kind == "update":
        _, where, column, value = action
        caster = {"g": "int", "h": "text", "v": "int", "amount": "numeric", "flag": "boolean"}[column]
        if column == "g" and not isinstance(value, int):
            value = 1
        if column == "flag" and not isinstance(value, bool):
            value = bool(value)
        if column in ("v", "amount") and isinstance(value, (bool, str)):
            value = None
        if column == "h" and not (value is None or isinstance(value, str)):
            value = str(value)
        conn.execute(
            f"UPDATE public.facts SET {column} = %s::{caster} WHERE g = %s OR id %% 3 = %s",
            (value, where, where % 3),
        )
    elif kind == "delete":
        conn.execute("DELETE FROM public.facts WHERE g = %s", (action[1],))
    elif kind == "delete_one":
        conn.execute(
            "DELETE FROM public.facts WHERE id = (SELECT max(id) FROM public.facts WHERE g = %s)",
            (action[1],),
        )
    else:
        conn.execute("TRUNCATE public.facts")


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(blocks=st.lists(block, min_size=1, max_size=5))
def test_random_write_sequences_keep_every_rollup_exact(
    conn: psycopg.Connection[Any], blocks: list[Any]
) -> None:
    if conn.execute("SELECT to_regclass('public.facts')").fetchone() == (None,):
        conn.execute(SCHEMA)
    run_blocks(conn, blocks)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(blocks=st.lists(block, min_size=1, max_size=5))
def test_random_write_sequences_keep_filtered_rollups_exact(
    conn: psycopg.Connection[Any], blocks: list[Any]
) -> None:
    if conn.execute("SELECT to_regclass('public.facts')").fetchone() == (None,):
        conn.execute(FILTERED_SCHEMA)
    run_blocks(conn, blocks)


def run_blocks(conn: psycopg.Connection[Any], blocks: list[Any]) -> None:
    conn.execute("TRUNCATE public.facts")
    for mode, steps in blocks:
        if mode == "commit":
            for action in steps:
                apply(conn, action)
        elif mode == "rollback":
            conn.execute("BEGIN")
            for action in steps:
                apply(conn, action)
            conn.execute("ROLLBACK")
        else:
            conn.execute("BEGIN")
            apply(conn, steps[0])
            conn.execute("SAVEPOINT s")
            for action in steps[1:]:
                apply(conn, action)
            conn.execute("ROLLBACK TO SAVEPOINT s")
            conn.execute("COMMIT")
        assert_exact(conn)
