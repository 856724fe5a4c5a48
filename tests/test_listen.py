"""`pgtally listen` (observe/render as pure functions, follow with a real LISTEN) and the
LISTEN client example in docs/ — both fed by NOTIFY sent by hand, not by the triggers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from rich.console import Console

from harness.cli import main as cli_main
from harness.commands import listen
from harness.paths import REPO_ROOT
from tests.test_scenarios_core import S1_ACTIONS, S1_SCHEMA, USER, s1_params


def message(seq: int, **extra: Any) -> str:
    return json.dumps({"rollup": "user_emissions", "op": "insert", "seq": seq, "groups": 1, **extra})


def text_of(table: Any) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(table)
    return console.export_text()


# -- pure parts --------------------------------------------------------------------------


def test_observe_follows_the_sequence_and_reports_a_gap() -> None:
    state = listen.FeedState(last_seq=4)
    state = listen.observe(state, message(5))
    assert (state.last_seq, state.messages, state.missed, state.warnings) == (5, 1, 0, ())
    state = listen.observe(state, message(8, op="update"))
    assert (state.last_seq, state.missed, state.last_op) == (8, 2, "update")
    assert state.warnings == ("missed 2 message(s) (seq 5 -> 8): full refetch",)


def test_observe_ignores_messages_already_reflected_and_notes_restarts_and_garbage() -> None:
    state = listen.observe(listen.FeedState(last_seq=7), message(6))
    assert (state.last_seq, state.missed, state.warnings) == (7, 0, ())
    state = listen.observe(state, message(1))
    assert state.last_seq == 1 and "restarted" in state.warnings[-1]
    state = listen.observe(state, "not json")
    assert state.last_seq == 1 and state.messages == 3 and "bad payload" in state.warnings[-1]
    first = listen.observe(listen.FeedState(), message(41))
    assert (first.last_seq, first.missed) == (41, 0)  # nothing known before: no gap


def test_render_shows_ranks_keys_exact_values_seq_and_warning() -> None:
    rows: list[listen.Row] = [
        (1, {"user_id": str(USER[3])}, "10.400000"),
        (2, {"user_id": str(USER[2])}, "10.300000"),
        (3, {"user_id": str(USER[1])}, None),
    ]
    state = listen.observe(listen.observe(listen.FeedState(last_seq=1), message(2)), message(5))
    text = text_of(
        listen.render("user_emissions", "total_emissions_lbs", rows, state, "tally_user_emissions")
    )
    assert "user_emissions by total_emissions_lbs" in text
    lines = [line for line in text.splitlines() if str(USER[3]) in line]
    assert len(lines) == 1
    assert [cell.strip() for cell in lines[0].split("│")[1:-1]] == ["1", str(USER[3]), "10.400000"]
    assert "NULL" in text
    assert "seq 5" in text and "2 message(s)" in text and "missed 2" in text
    assert "missed 2 message(s) (seq 2 -> 5)" in text


def test_render_of_an_empty_board_and_several_keys() -> None:
    text = text_of(listen.render("r", "n", [], listen.FeedState()))
    assert "seq -" in text
    text = text_of(listen.render("r", "n", [(1, {"org": "1", "status": "DRAFT"}, "3")], listen.FeedState()))
    assert "org" in text and "status" in text and "DRAFT" in text


# -- with a server -----------------------------------------------------------------------


@pytest.fixture
def s1(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn.execute(S1_SCHEMA)
    conn.execute(S1_ACTIONS.format(conflict=""), s1_params())
    return conn


def test_follow_refreshes_on_each_notification_and_detects_a_gap(
    s1: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    listener = connect()
    listening = threading.Event()
    updates: list[tuple[list[listen.Row], listen.FeedState]] = []
    result: list[listen.FeedState] = []

    def on_update(rows: list[listen.Row], state: listen.FeedState) -> None:
        updates.append((rows, state))
        listening.set()

    def loop() -> None:
        result.append(
            listen.follow(
                listener,
                "user_emissions",
                "total_emissions_lbs",
                2,
                "tally_user_emissions",
                on_update,
                max_notifications=3,
                timeout=20,
                poll=0.2,
            )
        )

    thread = threading.Thread(target=loop)
    thread.start()
    assert listening.wait(10)
    first_rows, first_state = updates[0]
    assert [r[1]["user_id"] for r in first_rows] == [str(USER[3]), str(USER[2])]
    assert first_state.last_seq is None and "does not publish" in first_state.warnings[0]

    s1.execute("SELECT pg_notify('tally_user_emissions', %s)", (message(1),))
    # user 1 overtakes everybody before the next message: the refetch must show it
    s1.execute(
        "INSERT INTO public.user_actions (action_id, user_id, emissions_saved_lbs, verified, logged_at) "
        "VALUES (gen_random_uuid(), %s, 5, true, now())",
        (USER[1],),
    )
    s1.execute("SELECT pg_notify('tally_user_emissions', %s)", (message(2),))
    s1.execute("SELECT pg_notify('tally_user_emissions', %s)", (message(5),))
    thread.join(20)
    assert not thread.is_alive()
    (final,) = result
    assert len(updates) == 4  # the first fetch, then one per notification
    assert (final.last_seq, final.messages, final.missed) == (5, 3, 2)
    last_rows, _ = updates[-1]
    assert last_rows == [
        (1, {"user_id": str(USER[1])}, "15.200000"),
        (2, {"user_id": str(USER[3])}, "10.400000"),
    ]


def test_follow_stops_at_its_timeout_without_messages(
    s1: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    start = time.monotonic()
    state = listen.follow(
        connect(),
        "user_emissions",
        "action_count",
        1,
        "tally_user_emissions",
        lambda rows, st: None,
        timeout=0.5,
        poll=0.1,
    )
    assert state.messages == 0 and time.monotonic() - start < 5


def test_follow_starts_from_the_published_sequence(
    s1: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    s1.execute("SELECT tally.set_notify('user_emissions')")
    s1.execute("UPDATE tally.change_feed SET seq = 41 WHERE rollup_name = 'user_emissions'")
    seen: list[listen.FeedState] = []
    state = listen.follow(
        connect(),
        "user_emissions",
        "total_emissions_lbs",
        3,
        "tally_user_emissions",
        lambda rows, st: seen.append(st),
        timeout=0.3,
        poll=0.1,
    )
    assert state.last_seq == 41 and seen[0].warnings == ()


def test_cli_once_prints_the_board_and_unknown_rollup_exits_2(
    s1: psycopg.Connection[Any], db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["listen", "user_emissions", "--once", "--top", "2", "--dsn", db_dsn]) == 0
    out = capsys.readouterr().out
    assert str(USER[3]) in out and str(USER[2]) in out and str(USER[1]) not in out
    assert "10.400000" in out
    assert cli_main(["listen", "nope", "--once", "--dsn", db_dsn]) == 2


def test_docs_listen_client_receives_a_hand_sent_notify(s1: psycopg.Connection[Any], db_dsn: str) -> None:
    client = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "docs" / "listen_client.py"),
            db_dsn,
            "user_emissions",
            "--count",
            "2",
            "--timeout",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # wait until the client LISTENs, then send two messages with a gap between them
        deadline = time.monotonic() + 20
        while not s1.execute(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        ).fetchone():
            assert time.monotonic() < deadline, "the client never LISTENed"
            time.sleep(0.05)
        s1.execute("SELECT pg_notify('tally_user_emissions', %s)", (message(1),))
        s1.execute("SELECT pg_notify('tally_user_emissions', %s)", (message(3),))
        out, err = client.communicate(timeout=30)
    finally:
        client.kill()
    assert client.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [m["seq"] for m in lines] == [1, 3]
    assert "missed" not in lines[0] and lines[1]["missed"] == 1
