"""Online backfill: batches with commits, progress, resume after interruption, exact
while other sessions write."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg
import pytest

from tests.exactness import assert_exact
from tests.test_rollup_concurrency import SCHEMA, run_writers

COSTS = """
CREATE TABLE public.costs (id bigserial PRIMARY KEY, at timestamptz NOT NULL, amount numeric NOT NULL, region text);
CREATE INDEX ON public.costs (((at AT TIME ZONE 'UTC')::date), region);
INSERT INTO public.costs (at, amount, region)
SELECT timestamptz '2025-01-01' + g * interval '73 minutes', g % 100, (ARRAY['eu', 'us', NULL])[1 + g % 3]
FROM generate_series(1, 7200) AS g;
SELECT tally.create_rollup('daily_costs', source => 'public.costs',
    group_by => ARRAY[$$day = (at AT TIME ZONE 'UTC')::date$$, 'region'],
    measures => ARRAY['total = sum(amount)', 'n = count(*)', 'peak = max(amount)'], populate => false);
"""


def progress(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute(
        "SELECT batches_done, batches_total FROM tally.backfill_progress WHERE rollup_name = 'daily_costs'"
    ).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def test_backfill_fills_a_populating_rollup_in_batches_with_progress(conn: psycopg.Connection[Any]) -> None:
    conn.execute(COSTS)
    assert conn.execute("SELECT count(*) FROM public.daily_costs").fetchone() == (0,)
    assert conn.execute("SELECT status FROM tally.rollups").fetchone() == ("populating",)
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("CALL tally.backfill('daily_costs', 7)")
    done, total = progress(conn)
    assert done == total > 7
    assert notices[0] == f"rollup daily_costs: batch 1/{total} done (7 groups)"
    assert notices[-1].startswith(f"rollup daily_costs: batch {total}/{total} done")
    assert conn.execute("SELECT status FROM tally.rollups").fetchone() == ("ready",)
    assert conn.execute("SELECT status, groups_checked > 0 FROM tally.runs").fetchone() == ("done", True)
    assert_exact(conn)


def test_interrupted_backfill_resumes_and_ends_exact(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(COSTS)
    worker = connect()
    (pid,) = worker.execute("SELECT pg_backend_pid()").fetchone()  # type: ignore[misc]

    def run() -> None:
        with contextlib.suppress(psycopg.OperationalError):  # terminated on purpose
            worker.execute("CALL tally.backfill('daily_costs', 5, p_delay => '50 milliseconds')")

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while progress(conn)[0] < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    thread.join(timeout=30)
    done_before, total = progress(conn)
    assert 3 <= done_before < total
    conn.execute(
        "INSERT INTO public.costs (at, amount, region) VALUES ('2025-02-01', 5, 'eu')"
    )  # written meanwhile
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("CALL tally.backfill('daily_costs', 5)")
    assert progress(conn) == (total, total)
    assert len(notices) == total - done_before  # only the batches not done before
    assert_exact(conn)


def test_backfill_is_exact_while_eight_writers_keep_writing(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(SCHEMA)
    conn.execute(
        "INSERT INTO public.moves (writer, grp, amount, rank_value) "
        "SELECT 99, g % 20, g / 3.0, g % 97 FROM generate_series(1, 20000) AS g"
    )
    conn.execute(
        "SELECT tally.create_rollup('moves_by_grp', source => 'public.moves', group_by => ARRAY['grp'], "
        "measures => ARRAY['n = count(*)', 'total = sum(amount)', 'best = max(rank_value)'], "
        "filter => 'live', populate => false)"
    )
    backfiller = connect()
    thread = threading.Thread(target=lambda: backfiller.execute("CALL tally.backfill('moves_by_grp', 2)"))
    run_writers(connect, during=thread.start)
    thread.join(timeout=120)
    assert conn.execute("SELECT status FROM tally.rollups").fetchone() == ("ready",)
    assert_exact(conn)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ("CALL tally.backfill('ghost')", psycopg.errors.UndefinedObject),
        ("CALL tally.backfill('daily_costs', 0)", psycopg.errors.InvalidParameterValue),
        ("CALL tally.backfill('daily_costs', -5)", psycopg.errors.InvalidParameterValue),
        (
            "CALL tally.backfill('daily_costs', 5, p_delay => '-1 second')",
            psycopg.errors.InvalidParameterValue,
        ),
        (
            "CALL tally.backfill('daily_costs', 5, p_key_condition => 'day >= 1; DROP TABLE x')",
            psycopg.errors.SyntaxError,
        ),
    ],
)
def test_bad_backfill_input_gets_a_clear_error(
    conn: psycopg.Connection[Any], call: str, error: type[Exception]
) -> None:
    conn.execute(COSTS)
    with pytest.raises(error):
        conn.execute(call)
    assert progress(conn) == (0, 0)


def test_backfill_of_a_time_range_only(conn: psycopg.Connection[Any]) -> None:
    conn.execute(COSTS)
    conn.execute("CALL tally.backfill('daily_costs', 7, p_key_condition => $$day < '2025-01-08'$$)")
    assert conn.execute("SELECT min(day), max(day) FROM public.daily_costs").fetchone() == (
        date(2025, 1, 1),
        date(2025, 1, 7),
    )
