"""pgtally listen ROLLUP: a live terminal leaderboard fed by the rollup's NOTIFY channel.

LISTENs on the rollup's channel (default "tally_<rollup>", see tally.set_notify), shows
tally.top(rollup, measure, N) and fetches it again on every notification. The change
sequence ("seq") of each message is shown; a jump in it means messages were missed (a
client that was not connected, a full queue...), which is reported, and the table is
fetched in full anyway, so it is right again. Ctrl-C exits with status 0.

The pieces are separate so they can be tested without a terminal: `observe` (pure: a
payload -> the new feed state), `render` (pure: rows and state -> a rich Table) and
`follow` (the LISTEN loop, with a notification count and a time limit).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql
from rich.live import Live
from rich.table import Table

from harness.commands.common import EXIT_OK, EXIT_USAGE, CommandError, add_dsn, console, open_connection

HELP = "live leaderboard of a rollup: LISTEN on its channel, refresh tally.top on every change"

Row = tuple[int, dict[str, Any], str | None]  # (rank, group_key, measure_value) as tally.top returns


@dataclass(frozen=True)
class FeedState:
    """What the client knows about the change feed so far."""

    last_seq: int | None = None  # highest seq seen (from a message or tally.change_feed)
    messages: int = 0
    missed: int = 0  # messages known to be missed, from jumps in seq
    last_op: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


def observe(state: FeedState, payload: str) -> FeedState:
    """The state after one notification payload. Pure.

    seq = last + 1: in order. seq > last + 1: messages were missed (warning). seq <= last:
    a message already reflected in the data we fetched (the fetch after LISTEN can see a
    commit whose message arrives later): nothing to report. A restarted feed (publishing
    switched off and on) starts again at 1: reported. "many": true is a bulk change.
    """
    try:
        message = json.loads(payload)
    except ValueError:
        return replace(
            state, messages=state.messages + 1, warnings=(*state.warnings, f"bad payload: {payload!r}")
        )
    if not isinstance(message, dict):
        return replace(
            state, messages=state.messages + 1, warnings=(*state.warnings, f"bad payload: {payload!r}")
        )
    seq = message.get("seq")
    op = message.get("op")
    warnings = state.warnings
    missed = state.missed
    last = state.last_seq
    if isinstance(seq, int):
        if last is not None and seq > last + 1:
            missed += seq - last - 1
            warnings = (*warnings, f"missed {seq - last - 1} message(s) (seq {last} -> {seq}): full refetch")
        elif last is not None and seq == 1 and last > 1:
            warnings = (*warnings, "the change sequence restarted (publishing was switched off and on)")
            last = 0
        last = seq if last is None else max(last, seq)
    return FeedState(
        last_seq=last,
        messages=state.messages + 1,
        missed=missed,
        last_op=str(op) if op is not None else state.last_op,
        warnings=warnings,
    )


def render(rollup: str, measure: str, rows: list[Row], state: FeedState, channel: str | None = None) -> Table:
    """The leaderboard as a rich Table: rank, each group key, the exact value. Pure."""
    key_names: list[str] = []
    for _rank, key, _value in rows:
        key_names += [k for k in key if k not in key_names]
    table = Table(title=f"{rollup} by {measure}", title_justify="left")
    table.add_column("rank", justify="right")
    for name in key_names:
        table.add_column(name)
    table.add_column(measure, justify="right")
    for rank, key, value in rows:
        table.add_row(str(rank), *(_cell(key.get(k)) for k in key_names), "NULL" if value is None else value)
    seq = "-" if state.last_seq is None else str(state.last_seq)
    caption = [f"channel {channel}" if channel else None, f"seq {seq}", f"{state.messages} message(s)"]
    if state.last_op:
        caption.append(f"last op {state.last_op}")
    if state.missed:
        caption.append(f"[red]missed {state.missed}[/red]")
    table.caption = " · ".join(c for c in caption if c)
    if state.warnings:
        table.caption += f"\n[yellow]warning:[/yellow] {state.warnings[-1]}"
    table.caption_justify = "left"
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    return value if isinstance(value, str) else json.dumps(value)


def fetch_top(conn: psycopg.Connection[Any], rollup: str, measure: str, top: int) -> list[Row]:
    rows = conn.execute(
        "SELECT rank, group_key, measure_value FROM tally.top(%s, %s, %s)", (rollup, measure, top)
    )
    return [(int(r), dict(k), v) for r, k, v in rows.fetchall()]


def feed_seq(conn: psycopg.Connection[Any], rollup: str) -> int | None:
    """The rollup's current change sequence, or None when it does not publish."""
    row = conn.execute("SELECT seq FROM tally.change_feed WHERE rollup_name = %s", (rollup,)).fetchone()
    return None if row is None else int(row[0])


def follow(
    conn: psycopg.Connection[Any],
    rollup: str,
    measure: str,
    top: int,
    channel: str,
    on_update: Callable[[list[Row], FeedState], None],
    *,
    max_notifications: int | None = None,
    timeout: float | None = None,
    poll: float = 1.0,
) -> FeedState:
    """LISTEN, fetch, then fetch again on every notification; returns the final state.

    `conn` must be in autocommit mode (a LISTEN inside an open transaction hears nothing
    until it commits). Stops after max_notifications messages or timeout seconds, or
    never (until KeyboardInterrupt) when both are None. LISTEN comes before the first
    fetch, so no change committed after that fetch can go unnoticed.
    """
    if not conn.autocommit:
        raise ValueError("follow() needs an autocommit connection")
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    state = FeedState(last_seq=feed_seq(conn, rollup))
    if state.last_seq is None:
        state = replace(
            state,
            warnings=(
                f"rollup {rollup} does not publish its changes: run SELECT tally.set_notify('{rollup}')",
            ),
        )
    on_update(fetch_top(conn, rollup, measure, top), state)
    deadline = None if timeout is None else time.monotonic() + timeout
    while max_notifications is None or state.messages < max_notifications:
        wait = poll if deadline is None else min(poll, deadline - time.monotonic())
        if wait <= 0:
            break
        # One at a time: no query may run on the connection while notifies() iterates.
        # A message that arrives during the fetch is kept and returned by the next call.
        for notify in list(conn.notifies(timeout=wait, stop_after=1)):
            state = observe(state, notify.payload)
            on_update(fetch_top(conn, rollup, measure, top), state)
    return state


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rollup", help="the rollup to show")
    parser.add_argument("--measure", help="measure to rank by (default: the rollup's first measure)")
    parser.add_argument(
        "--top", type=int, default=10, metavar="N", help="how many groups to show (default 10)"
    )
    parser.add_argument("--channel", help="NOTIFY channel (default: the one tally.set_notify chose)")
    parser.add_argument("--once", action="store_true", help="print the leaderboard once and exit")
    add_dsn(parser)


def resolve(
    conn: psycopg.Connection[Any], rollup: str, measure: str | None, channel: str | None
) -> tuple[str, str]:
    """(measure, channel), defaults filled in from the catalogue; unknown rollup: exit 2."""
    row = conn.execute(
        "SELECT (SELECT m.measure_name FROM tally.rollup_measures AS m WHERE m.rollup_name = r.rollup_name "
        "        ORDER BY m.measure_position LIMIT 1), "
        "       (SELECT f.channel FROM tally.change_feed AS f WHERE f.rollup_name = r.rollup_name) "
        "FROM tally.rollups AS r WHERE r.rollup_name = %s",
        (rollup,),
    ).fetchone()
    if row is None:
        raise CommandError(f"rollup {rollup!r} does not exist (or is not visible to this role)", EXIT_USAGE)
    return measure or str(row[0]), channel or row[1] or f"tally_{rollup}"


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise CommandError("--top must be at least 1", EXIT_USAGE)
    with open_connection(args) as conn:
        measure, channel = resolve(conn, args.rollup, args.measure, args.channel)
        if args.once:
            state = FeedState(last_seq=feed_seq(conn, args.rollup))
            console.print(
                render(args.rollup, measure, fetch_top(conn, args.rollup, measure, args.top), state)
            )
            return EXIT_OK
        empty = render(args.rollup, measure, [], FeedState(), channel)
        with Live(empty, console=console, refresh_per_second=8, transient=False) as live:

            def show(rows: list[Row], state: FeedState) -> None:
                live.update(render(args.rollup, measure, rows, state, channel), refresh=True)

            # Ctrl-C is how one leaves a live board: not an error.
            with contextlib.suppress(KeyboardInterrupt):
                follow(conn, args.rollup, measure, args.top, channel, show)
    return EXIT_OK
