"""Many writers at once: no deadlock, no lost update, stats equal the recomputation.

Real connections in threads, released together by a barrier. Each writer runs
multi-row statements over groups that overlap with every other writer's, visiting the
groups in its own order (ascending, descending, shuffled), and moves, changes and
deletes its own rows between shared groups. Each statement commits on its own: upserts
in key order make single statements deadlock-free; a transaction that runs several
statements over overlapping groups holds row locks across them, as with any table.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from tests.exactness import assert_exact

WRITERS = 8
ROUNDS = 12

SCHEMA = """
CREATE TABLE public.moves (
    id bigserial PRIMARY KEY,
    writer int NOT NULL,
    grp int NOT NULL,
    amount numeric(12, 2) NOT NULL,
    rank_value int NOT NULL,
    live boolean NOT NULL DEFAULT true
);
CREATE INDEX ON public.moves (grp);
"""

ROLLUPS = """
SELECT tally.create_rollup('moves_by_grp', source => 'public.moves', group_by => ARRAY['grp'],
    measures => ARRAY['n = count(*)', 'total = sum(amount)', 'best = max(rank_value)', 'worst = min(rank_value)'],
    filter => 'live');
SELECT tally.create_rollup('moves_overall', source => 'public.moves',
    measures => ARRAY['n = count(*)', 'total = sum(amount)']);
"""


def writer_work(
    conn: psycopg.Connection[Any], writer: int, barrier: threading.Barrier, failures: list[BaseException]
) -> None:
    rng = random.Random(writer)
    groups = list(range(20))
    try:
        barrier.wait(timeout=60)
        for round_number in range(ROUNDS):
            order = sorted(groups, reverse=writer % 2 == 1)
            if writer % 3 == 0:
                rng.shuffle(order)
            conn.execute(
                "INSERT INTO public.moves (writer, grp, amount, rank_value, live) "
                "SELECT %s, g, (g * 7 + %s) / 4.0, (g * 31 + %s) %% 97, (g + %s) %% 5 <> 0 "
                "FROM unnest(%s::int[]) WITH ORDINALITY AS u(g, o) ORDER BY o",
                (writer, round_number, writer, round_number, order),
            )
            conn.execute(
                "UPDATE public.moves SET grp = (grp + %s) %% 20, amount = amount + 1 "
                "WHERE writer = %s AND id %% 3 = %s",
                (rng.randint(1, 19), writer, round_number % 3),
            )
            conn.execute(
                "UPDATE public.moves SET live = NOT live, rank_value = rank_value + 1 "
                "WHERE writer = %s AND grp = ANY (%s)",
                (writer, order[:5]),
            )
            conn.execute(
                "DELETE FROM public.moves WHERE writer = %s AND rank_value > %s",
                (writer, 80 - round_number),
            )
    except BaseException as exc:
        failures.append(exc)
        barrier.abort()


def run_writers(
    connect: Callable[..., psycopg.Connection[Any]], during: Callable[[], None] | None = None
) -> None:
    connections = [connect() for _ in range(WRITERS)]
    barrier = threading.Barrier(WRITERS + (1 if during else 0))
    failures: list[BaseException] = []
    threads = [
        threading.Thread(target=writer_work, args=(c, i, barrier, failures))
        for i, c in enumerate(connections)
    ]
    for thread in threads:
        thread.start()
    if during:
        barrier.wait(timeout=60)
        during()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert failures == [], f"writers failed: {failures!r}"


def test_concurrent_multi_row_writers_neither_deadlock_nor_lose_updates(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(SCHEMA)
    conn.execute(ROLLUPS)
    run_writers(connect)
    assert conn.execute("SELECT count(*) FROM public.moves").fetchone()[0] > 0  # type: ignore[index]
    assert_exact(conn)


def test_rollup_created_while_writers_run_is_exact(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(SCHEMA)
    conn.execute(
        "INSERT INTO public.moves (writer, grp, amount, rank_value) "
        "SELECT 99, g % 20, g / 3.0, g % 97 FROM generate_series(1, 20000) AS g"
    )
    creator = connect()
    run_writers(connect, during=lambda: creator.execute(ROLLUPS))
    assert_exact(conn)
