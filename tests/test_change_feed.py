"""LISTEN clients learn of every committed stats change, and of nothing else."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.test_scenarios_core import S1_ACTIONS, S1_SCHEMA, USER, s1_params


def received(listener: psycopg.Connection[Any], timeout: float = 0.5) -> list[dict[str, Any]]:
    return [json.loads(n.payload) for n in listener.notifies(timeout=timeout)]


@pytest.fixture
def s1(conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]) -> tuple[Any, Any]:
    conn.execute(S1_SCHEMA)
    listener = connect()
    return conn, listener


def test_committed_change_is_published_with_keys_and_sequence(s1: tuple[Any, Any]) -> None:
    conn, listener = s1
    assert conn.execute("SELECT tally.set_notify('user_emissions')").fetchone() == ("tally_user_emissions",)
    listener.execute("LISTEN tally_user_emissions")
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    messages = received(listener)
    assert messages == [
        {
            "rollup": "user_emissions",
            "op": "insert",
            "seq": 1,
            "groups": 3,
            "keys": [{"user_id": str(USER[1])}, {"user_id": str(USER[2])}, {"user_id": str(USER[3])}],
        }
    ]
    conn.execute("UPDATE public.user_actions SET verified = false WHERE user_id = %s", (USER[2],))
    assert received(listener) == [
        {
            "rollup": "user_emissions",
            "op": "update",
            "seq": 2,
            "groups": 1,
            "keys": [{"user_id": str(USER[2])}],
        }
    ]


def test_rolled_back_work_sends_nothing_and_keeps_the_sequence(s1: tuple[Any, Any]) -> None:
    conn, listener = s1
    conn.execute("SELECT tally.set_notify('global_emissions', 'none')")
    listener.execute("LISTEN tally_global_emissions")
    with pytest.raises(RuntimeError), conn.transaction():
        conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
        raise RuntimeError("roll back")
    assert received(listener) == []
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    assert received(listener) == [{"rollup": "global_emissions", "op": "insert", "seq": 1, "groups": 1}]


def test_values_mode_sends_exact_decimal_strings_and_deleted_groups(s1: tuple[Any, Any]) -> None:
    conn, listener = s1
    conn.execute("SELECT tally.set_notify('user_emissions', 'values', 'leaderboard')")
    listener.execute("LISTEN leaderboard")
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    (message,) = received(listener)
    assert message["rows"][0] == {
        "user_id": str(USER[1]),
        "total_emissions_lbs": "10.200000",
        "action_count": "1",
    }
    conn.execute("DELETE FROM public.user_actions WHERE user_id = %s", (USER[1],))
    (message,) = received(listener)
    assert message["seq"] == 2
    assert message["rows"] == [{"key": {"user_id": str(USER[1])}, "deleted": True}]


def test_bulk_statement_sends_one_bounded_many_message(s1: tuple[Any, Any]) -> None:
    conn, listener = s1
    conn.execute("SELECT tally.set_notify('user_emissions', 'values')")
    listener.execute("LISTEN tally_user_emissions")
    conn.execute(
        "INSERT INTO public.user_actions (action_id, user_id, emissions_saved_lbs, verified, logged_at) "
        "SELECT gen_random_uuid(), gen_random_uuid(), g, true, now() FROM generate_series(1, 500) AS g"
    )
    assert received(listener) == [
        {"rollup": "user_emissions", "op": "insert", "seq": 1, "groups": 500, "many": True}
    ]
    conn.execute("TRUNCATE public.user_actions")
    assert received(listener) == [
        {"rollup": "user_emissions", "op": "truncate", "seq": 2, "groups": None, "many": True}
    ]


def test_missed_message_is_detectable_from_the_sequence(
    s1: tuple[Any, Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn, listener = s1
    conn.execute("SELECT tally.set_notify('user_emissions')")
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())  # seq 1, sent before the client listened
    listener.execute("LISTEN tally_user_emissions")
    conn.execute("UPDATE public.user_actions SET emissions_saved_lbs = 1 WHERE user_id = %s", (USER[3],))
    (message,) = received(listener)
    assert message["seq"] == 2  # the client's last known seq was 0: one message was missed -> refetch
    (stored,) = conn.execute(
        "SELECT seq FROM tally.change_feed WHERE rollup_name = 'user_emissions'"
    ).fetchone()  # type: ignore[misc]
    assert stored == 2


def test_switching_off_stops_messages_and_bad_mode_is_refused(s1: tuple[Any, Any]) -> None:
    conn, listener = s1
    conn.execute("SELECT tally.set_notify('user_emissions')")
    conn.execute("SELECT tally.set_notify('user_emissions', 'off')")
    listener.execute("LISTEN tally_user_emissions")
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    assert received(listener) == []
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT tally.set_notify('user_emissions', 'everything')")
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT tally.set_notify('nope')")


def test_values_of_a_rollup_whose_columns_are_named_s_and_k(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    # the feed reads stats rows through qualified references only
    conn.execute(
        """
        CREATE TABLE public.points (id int PRIMARY KEY, k int NOT NULL, v int NOT NULL);
        SELECT tally.create_rollup('points_by_k', source => 'public.points', group_by => ARRAY['k'],
            measures => ARRAY['s = sum(v)']);
        SELECT tally.set_notify('points_by_k', 'values');
        """
    )
    listener = connect()
    listener.execute("LISTEN tally_points_by_k")
    conn.execute("INSERT INTO public.points VALUES (1, 7, 5)")
    (message,) = received(listener)
    assert message["rows"] == [{"k": "7", "s": "5"}]
    conn.execute("DELETE FROM public.points WHERE id = 1")
    (message,) = received(listener)
    assert message["rows"] == [{"key": {"k": "7"}, "deleted": True}]
