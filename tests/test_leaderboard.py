"""Leaderboards: tally.make_rankable, tally.top, tally.rank (issue 5)."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.test_scenarios_core import S1_ACTIONS, S1_SCHEMA, USER, s1_params


def user_key(user: uuid.UUID) -> str:
    return json.dumps({"user_id": str(user)})


def top(conn: psycopg.Connection[Any], *args: Any) -> list[tuple[Any, ...]]:
    placeholders = ", ".join(["%s"] * len(args))
    return conn.execute(f"SELECT * FROM tally.top({placeholders})", args).fetchall()


def rank(
    conn: psycopg.Connection[Any], rollup: str, measure: str, key: str, around: int = 0
) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT * FROM tally.rank(%s, %s, %s::jsonb, %s)", (rollup, measure, key, around)
    ).fetchall()


@pytest.fixture
def s1(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn.execute(S1_SCHEMA)
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    return conn


def test_s1_top_orders_user3_user2_user1_with_ranks_and_exact_values(s1: psycopg.Connection[Any]) -> None:
    assert top(s1, "user_emissions", "total_emissions_lbs") == [
        (1, {"user_id": str(USER[3])}, "10.400000"),
        (2, {"user_id": str(USER[2])}, "10.300000"),
        (3, {"user_id": str(USER[1])}, "10.200000"),
    ]
    assert top(s1, "user_emissions", "total_emissions_lbs", 1, 1) == [
        (2, {"user_id": str(USER[2])}, "10.300000")
    ]
    assert top(s1, "user_emissions", "total_emissions_lbs", 10, 3) == []
    assert top(s1, "user_emissions", "total_emissions_lbs", 0) == []


def test_s1_rank_of_each_user_matches_top(s1: psycopg.Connection[Any]) -> None:
    for position, user in ((1, USER[3]), (2, USER[2]), (3, USER[1])):
        assert rank(s1, "user_emissions", "total_emissions_lbs", user_key(user)) == [
            (
                position,
                {"user_id": str(user)},
                str(top(s1, "user_emissions", "total_emissions_lbs")[position - 1][2]),
                True,
            )
        ]


def test_equal_totals_are_ordered_by_key_with_consecutive_ranks(s1: psycopg.Connection[Any]) -> None:
    # user 0 catches up with user 2: 10.3 each. The smaller key (user 0) comes first.
    s1.execute(
        "INSERT INTO public.user_actions (action_id, user_id, emissions_saved_lbs, verified, logged_at) "
        "VALUES (gen_random_uuid(), %s, 10.3, true, now())",
        (USER[0],),
    )
    assert [(r[0], r[1]["user_id"]) for r in top(s1, "user_emissions", "total_emissions_lbs")] == [
        (1, str(USER[3])),
        (2, str(USER[0])),
        (3, str(USER[2])),
        (4, str(USER[1])),
    ]
    assert rank(s1, "user_emissions", "total_emissions_lbs", user_key(USER[0]))[0][0] == 2
    assert rank(s1, "user_emissions", "total_emissions_lbs", user_key(USER[2]))[0][0] == 3
    # count ranks too: three users tied at 1 action, user 0... all at 1: key order decides
    assert [r[1]["user_id"] for r in top(s1, "user_emissions", "action_count")] == [
        str(u) for u in (USER[0], USER[1], USER[2], USER[3])
    ]


def test_rank_at_both_ends_with_neighbours(s1: psycopg.Connection[Any]) -> None:
    first = rank(s1, "user_emissions", "total_emissions_lbs", user_key(USER[3]), 2)
    assert [(r[0], r[1]["user_id"], r[3]) for r in first] == [
        (1, str(USER[3]), True),
        (2, str(USER[2]), False),
        (3, str(USER[1]), False),
    ]
    last = rank(s1, "user_emissions", "total_emissions_lbs", user_key(USER[1]), 5)
    assert [(r[0], r[1]["user_id"], r[2], r[3]) for r in last] == [
        (1, str(USER[3]), "10.400000", False),
        (2, str(USER[2]), "10.300000", False),
        (3, str(USER[1]), "10.200000", True),
    ]
    middle = rank(s1, "user_emissions", "total_emissions_lbs", user_key(USER[2]), 1)
    assert [r[0] for r in middle] == [1, 2, 3]
    assert [r[3] for r in middle] == [False, True, False]


def test_make_rankable_creates_one_index_and_is_idempotent(s1: psycopg.Connection[Any]) -> None:
    (index,) = s1.execute(
        "SELECT tally.make_rankable('user_emissions', 'total_emissions_lbs')::text"
    ).fetchone()  # type: ignore[misc]
    assert index == "user_emissions_rank_total_emissions_lbs"
    (definition,) = s1.execute("SELECT pg_get_indexdef(%s::regclass)", (index,)).fetchone()  # type: ignore[misc]
    assert "(total_emissions_lbs DESC NULLS LAST, user_id)" in definition
    (again,) = s1.execute(
        "SELECT tally.make_rankable('user_emissions', 'total_emissions_lbs')::text"
    ).fetchone()  # type: ignore[misc]
    assert again == index
    (count,) = s1.execute(  # type: ignore[misc]
        "SELECT count(*) FROM pg_index WHERE indrelid = 'public.user_emissions'::regclass"
    ).fetchone()
    assert count == 2  # primary key + rank index


def test_make_rankable_shortens_long_names_without_collisions(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE public.t (k int NOT NULL, v numeric)")
    long_measure_a = "a_rather_long_measure_name_that_goes_on_and_on_one"
    long_measure_b = "a_rather_long_measure_name_that_goes_on_and_on_two"
    conn.execute(
        "SELECT tally.create_rollup('a_long_rollup_name_for_a_leaderboard_of_things', 'public.t', "
        "ARRAY[%s, %s], ARRAY['k'])",
        (f"{long_measure_a} = sum(v)", f"{long_measure_b} = max(v)"),
    )
    names = [
        conn.execute(
            "SELECT tally.make_rankable('a_long_rollup_name_for_a_leaderboard_of_things', %s)::text", (m,)
        ).fetchone()[0]  # type: ignore[index]
        for m in (long_measure_a, long_measure_b)
    ]
    assert len(set(names)) == 2
    assert all(len(n.encode()) <= 63 for n in names)


def test_bad_input_is_refused_with_sqlstates(s1: psycopg.Connection[Any]) -> None:
    key = user_key(USER[1])
    for call, params in (
        ("SELECT tally.make_rankable(%s, %s)", ("nope", "total_emissions_lbs")),
        ("SELECT * FROM tally.top(%s, %s)", ("nope", "total_emissions_lbs")),
        ("SELECT * FROM tally.rank(%s, %s, %s::jsonb)", ("nope", "total_emissions_lbs", key)),
    ):
        with pytest.raises(errors.UndefinedObject):
            s1.execute(call, params)
    for call, params in (
        ("SELECT tally.make_rankable(%s, %s)", ("user_emissions", "nope")),
        ("SELECT * FROM tally.top(%s, %s)", ("user_emissions", "nope")),
        ("SELECT * FROM tally.rank(%s, %s, %s::jsonb)", ("user_emissions", "nope", key)),
    ):
        with pytest.raises(errors.UndefinedColumn):
            s1.execute(call, params)
    for call, params in (
        ("SELECT tally.make_rankable(%s, %s)", ("global_emissions", "total_lbs_saved")),
        ("SELECT * FROM tally.top(%s, %s)", ("global_emissions", "total_lbs_saved")),
        ("SELECT * FROM tally.rank(%s, %s, '{}')", ("global_emissions", "total_lbs_saved")),
        ("SELECT * FROM tally.top(%s, %s, -1)", ("user_emissions", "total_emissions_lbs")),
        ("SELECT * FROM tally.top(%s, %s, 10, -1)", ("user_emissions", "total_emissions_lbs")),
        ("SELECT * FROM tally.top(%s, %s, NULL)", ("user_emissions", "total_emissions_lbs")),
        ("SELECT * FROM tally.rank(%s, %s, %s::jsonb, -1)", ("user_emissions", "total_emissions_lbs", key)),
        ("SELECT * FROM tally.rank(%s, %s, '[1]')", ("user_emissions", "total_emissions_lbs")),
        ("SELECT * FROM tally.rank(%s, %s, NULL)", ("user_emissions", "total_emissions_lbs")),
        ("SELECT * FROM tally.rank(%s, %s, '{}')", ("user_emissions", "total_emissions_lbs")),
        (
            "SELECT * FROM tally.rank(%s, %s, %s::jsonb)",
            ("user_emissions", "total_emissions_lbs", json.dumps({"user_id": str(USER[1]), "x": 1})),
        ),
    ):
        with pytest.raises(errors.InvalidParameterValue):
            s1.execute(call, params)
    with pytest.raises(errors.NoDataFound, match="has no group"):
        rank(s1, "user_emissions", "total_emissions_lbs", user_key(uuid.UUID(int=99)))
    with pytest.raises(errors.InvalidTextRepresentation):
        rank(s1, "user_emissions", "total_emissions_lbs", '{"user_id": "not a uuid"}')
    s1.execute("CREATE TABLE public.user_emissions_rank_action_count (x int)")
    with pytest.raises(errors.DuplicateTable):
        s1.execute("SELECT tally.make_rankable('user_emissions', 'action_count')")


def brute_force(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """(rank, group_key, value) computed the plain way: a window over the whole table."""
    return conn.execute(
        """SELECT row_number() OVER (ORDER BY total DESC NULLS LAST, region, bucket),
                  tally.exact_json(jsonb_build_object('region', region, 'bucket', bucket)), total::text
             FROM public.scores_by_bucket
            ORDER BY 1"""
    ).fetchall()


@pytest.mark.parametrize("rankable", [False, True])
def test_rank_and_top_agree_with_a_window_over_ties_null_values_and_null_keys(
    conn: psycopg.Connection[Any], rankable: bool
) -> None:
    # Two keys, one of them an expression that can be NULL; a measure that can be NULL
    # (sum of NULLs); many ties. Every group's rank and neighbours must match the window.
    conn.execute(
        """CREATE TABLE public.scores (id serial PRIMARY KEY, region text NOT NULL, b int, points int);
           SELECT tally.create_rollup('scores_by_bucket', 'public.scores',
               ARRAY['total = sum(points)', 'n = count(*)'],
               ARRAY['region', 'bucket = nullif(b % 4, 0)'])"""
    )
    rng = random.Random(5)
    rows = [(rng.choice("abc"), rng.randrange(12), rng.choice([None, 1, 2, 3, 5])) for _ in range(150)] + [
        ("z", 1, None),
        ("z", 2, None),
        ("z", 4, None),
        ("y", 4, None),
    ]  # NULL totals, NULL keys
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO public.scores (region, b, points) VALUES (%s, %s, %s)", rows)
    if rankable:
        conn.execute("SELECT tally.make_rankable('scores_by_bucket', 'total')")
    expected = brute_force(conn)
    assert any(r[2] is None for r in expected), "no NULL total: the data does not test NULLS LAST"
    assert any(r[1]["bucket"] is None for r in expected), "no NULL key"
    assert top(conn, "scores_by_bucket", "total", 1000) == expected
    assert top(conn, "scores_by_bucket", "total", 3, 4) == expected[4:7]
    for position, key, value in expected:
        got = rank(conn, "scores_by_bucket", "total", json.dumps(key), 2)
        window = expected[max(position - 3, 0) : position + 2]
        assert [(r[0], r[1], r[2]) for r in got] == window, key
        assert [r[3] for r in got] == [r[0] == position for r in window]
        assert (position, key, value) in [(r[0], r[1], r[2]) for r in got]


def nested_plans(conn: psycopg.Connection[Any], query: str) -> list[str]:
    """The plans of every statement `query` runs, functions' dynamic SQL included."""
    plans: list[str] = []

    def keep(diagnostic: psycopg.errors.Diagnostic) -> None:
        if diagnostic.message_primary and "Query Text" in diagnostic.message_primary:
            plans.append(diagnostic.message_primary)

    conn.execute("LOAD 'auto_explain'")
    conn.execute(
        "SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; "
        "SET auto_explain.log_level = notice"
    )
    conn.add_notice_handler(keep)
    try:
        conn.execute(query).fetchall()
    finally:
        conn.remove_notice_handler(keep)
        conn.execute("RESET auto_explain.log_min_duration")
    return plans


@pytest.mark.slow
def test_top_and_rank_use_the_rank_index_on_100k_groups(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """CREATE TABLE public.plays (id bigserial PRIMARY KEY, player_id int NOT NULL, points numeric(12, 2));
           INSERT INTO public.plays (player_id, points)
           SELECT g, (g * 7919 % 100003) / 100.0 FROM generate_series(1, 100000) AS g;
           SELECT tally.create_rollup('player_points', 'public.plays',
               ARRAY['points = sum(points)'], ARRAY['player_id']);
           SELECT tally.make_rankable('player_points', 'points')"""
    )
    conn.execute("VACUUM ANALYZE public.player_points")
    # The plans of the statements the functions run, as auto_explain reports them.
    plans = nested_plans(conn, "SELECT * FROM tally.top('player_points', 'points', 10)")
    top_plan = next(p for p in plans if "ORDER BY s.points DESC NULLS LAST" in p)
    plan_lines = top_plan.splitlines()[2:]  # after "duration" and "Query Text"
    assert any(line.strip().startswith("->  Limit") for line in plan_lines), top_plan
    assert any(
        "Index Scan using player_points_rank_points" in line
        or "Index Only Scan using player_points_rank_points" in line
        for line in plan_lines
    ), top_plan
    assert not any("Sort" in line for line in plan_lines), top_plan
    plans = nested_plans(conn, "SELECT * FROM tally.rank('player_points', 'points', '{\"player_id\": 7}')")
    count_plan = next(p for p in plans if "count(*)" in p)
    assert count_plan.count("Index Only Scan using player_points_rank_points") == 2, count_plan
    # And through the functions (auto_explain would show the same; here: the answers).
    first = top(conn, "player_points", "points", 3)
    assert [r[0] for r in first] == [1, 2, 3]
    (last_key,) = conn.execute(  # type: ignore[misc]
        "SELECT player_id FROM public.player_points ORDER BY points ASC NULLS FIRST, player_id DESC LIMIT 1"
    ).fetchone()
    bottom = rank(conn, "player_points", "points", json.dumps({"player_id": last_key}), 3)
    assert [r[0] for r in bottom] == [99997, 99998, 99999, 100000]
    assert bottom[-1][3] is True
    for r in first:
        assert rank(conn, "player_points", "points", json.dumps(r[1]))[0][:3] == r


def test_a_read_only_role_granted_read_uses_top_and_rank_and_nothing_else(
    s1: psycopg.Connection[Any], dsn_for: Any
) -> None:
    s1.execute("DROP ROLE IF EXISTS board_reader")
    s1.execute("CREATE ROLE board_reader LOGIN")
    try:
        with psycopg.connect(dsn_for("board_reader"), autocommit=True) as reader:
            with pytest.raises(errors.InsufficientPrivilege):
                top(reader, "user_emissions", "total_emissions_lbs")
            assert s1.execute("SELECT tally.grant_read('board_reader', 'user_emissions')").fetchone() == (1,)
            assert [row[0] for row in top(reader, "user_emissions", "total_emissions_lbs")] == [1, 2, 3]
            assert rank(reader, "user_emissions", "total_emissions_lbs", user_key(USER[1]))[0][0] == 3
            # the catalogue shows it only the rollups whose stats it may read
            visible = reader.execute("SELECT rollup_name FROM tally.rollups").fetchall()
            assert visible == [("user_emissions",)]
            with pytest.raises(errors.UndefinedObject):
                top(reader, "global_emissions", "total_lbs_saved")
            with pytest.raises(errors.InsufficientPrivilege):
                reader.execute("UPDATE public.user_emissions SET total_emissions_lbs = 0")
            with pytest.raises(errors.InsufficientPrivilege):
                reader.execute("UPDATE tally.rollups SET row_filter = 'true'")
            assert s1.execute("SELECT tally.revoke_read('board_reader')").fetchone() == (2,)
            with pytest.raises(errors.InsufficientPrivilege):
                top(reader, "user_emissions", "total_emissions_lbs")
        with pytest.raises(errors.UndefinedObject):
            s1.execute("SELECT tally.grant_read('no_such_role_here')")
        for call in ("grant_read", "revoke_read"):  # a misspelt rollup is an error, not 0 tables
            with pytest.raises(errors.UndefinedObject, match='rollup "user_emission" does not exist'):
                s1.execute(f"SELECT tally.{call}('board_reader', 'user_emission')")
    finally:
        s1.execute("DROP OWNED BY board_reader")
        s1.execute("DROP ROLE board_reader")
