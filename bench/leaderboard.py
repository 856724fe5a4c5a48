"""Cost of tally.top and tally.rank at 100,000 and 1,000,000 groups (issue 5).

Run:  .venv/bin/python bench/leaderboard.py [--sizes 100000 1000000] [--repeat 15]

Starts a throw-away embedded cluster (harness.cluster), installs pgtally, declares a rollup
with one group per player, makes it rankable, and times (median wall-clock per call,
client round trip included):
  * tally.top(10), and a deep page (offset N/2);
  * tally.rank of a group near the top, in the middle and at the bottom, alone and with
    5 neighbours each side;
  * the same bottom rank after 10% of the groups changed without a VACUUM since (the
    visibility map is stale, so the index-only count visits the heap);
  * the baseline a user would write without pgtally's functions: row_number() over the
    whole stats table (a full sort), for the top 10 and for one group's rank.
Prints a Markdown table; bench/LEADERBOARD.md records a run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import install
from harness.cluster import EmbeddedCluster, free_port

SCHEMA = """
CREATE TABLE public.plays (id bigserial PRIMARY KEY, player_id int NOT NULL, points numeric(14, 2) NOT NULL);
"""


def timed(call: Callable[[], Any], repeat: int) -> float:
    """Median milliseconds of `repeat` calls (after one warm-up call)."""
    call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def load(conn: psycopg.Connection[Any], groups: int) -> None:
    conn.execute("SELECT tally.drop_rollup(rollup_name) FROM tally.rollups")
    conn.execute("DROP TABLE IF EXISTS public.plays")
    conn.execute(SCHEMA)
    # Two plays per player; points spread over ~groups/10 distinct totals: many ties.
    conn.execute(
        "INSERT INTO public.plays (player_id, points) "
        "SELECT 1 + g %% %(groups)s, (g::bigint * 7919 %% (%(groups)s / 10 + 7)) / 4.0 "
        "FROM generate_series(0, 2 * %(groups)s - 1) AS g",
        {"groups": groups},
    )
    conn.execute(
        "SELECT tally.create_rollup('player_points', 'public.plays', "
        "ARRAY['points = sum(points)', 'plays = count(*)'], ARRAY['player_id'])"
    )
    conn.execute("SELECT tally.make_rankable('player_points', 'points')")
    conn.execute("VACUUM ANALYZE public.player_points")


def key_at(conn: psycopg.Connection[Any], position: int) -> str:
    row = conn.execute(
        "SELECT group_key FROM tally.top('player_points', 'points', 1, %s)", (position - 1,)
    ).fetchone()
    assert row is not None
    return json.dumps(row[0])


def rank_call(conn: psycopg.Connection[Any], key: str, around: int, expect: int) -> Callable[[], Any]:
    def call() -> None:
        rows = conn.execute(
            "SELECT rank FROM tally.rank('player_points', 'points', %s::jsonb, %s) WHERE is_target",
            (key, around),
        ).fetchall()
        assert rows == [(expect,)], rows

    return call


def bench(conn: psycopg.Connection[Any], groups: int, repeat: int) -> list[tuple[str, float]]:
    load(conn, groups)
    results: list[tuple[str, float]] = []

    def run(label: str, call: Callable[[], Any], times: int = repeat) -> None:
        results.append((label, timed(call, times)))
        print(f"  {groups:>9,} {label}: {results[-1][1]:.2f} ms", file=sys.stderr)

    run("top 10", lambda: conn.execute("SELECT * FROM tally.top('player_points', 'points', 10)").fetchall())
    run(
        f"top 10 at offset {groups // 2:,}",
        lambda: conn.execute(
            "SELECT * FROM tally.top('player_points', 'points', 10, %s)", (groups // 2,)
        ).fetchall(),
        max(3, repeat // 3),
    )
    positions = {"near the top (10th)": 10, "middle": groups // 2, "bottom": groups}
    keys = {label: key_at(conn, p) for label, p in positions.items()}
    for label, position in positions.items():
        slow = max(3, repeat // 3) if position > 1000 else repeat
        run(f"rank, {label}", rank_call(conn, keys[label], 0, position), slow)
        run(f"rank ±5, {label}", rank_call(conn, keys[label], 5, position), slow)

    # 10% of the players score again, no VACUUM since: index-only scans fetch heap pages.
    conn.execute("ALTER TABLE public.player_points SET (autovacuum_enabled = false)")
    conn.execute(
        "INSERT INTO public.plays (player_id, points) SELECT g, 0 FROM generate_series(1, %s, 10) AS g",
        (groups,),
    )
    run("rank, bottom, stale visibility map", rank_call(conn, keys["bottom"], 0, groups), max(3, repeat // 3))
    conn.execute("VACUUM public.player_points")
    conn.execute("ALTER TABLE public.player_points RESET (autovacuum_enabled)")

    run(
        "baseline: top 10 by row_number() over all",
        lambda: conn.execute(
            "SELECT * FROM (SELECT row_number() OVER (ORDER BY points DESC NULLS LAST, player_id) AS r, "
            "player_id, points FROM public.player_points) AS w WHERE r <= 10"
        ).fetchall(),
        3,
    )
    bottom_id = json.loads(keys["bottom"])["player_id"]
    run(
        "baseline: rank, bottom, by row_number() over all",
        lambda: conn.execute(
            "SELECT r FROM (SELECT row_number() OVER (ORDER BY points DESC NULLS LAST, player_id) AS r, "
            "player_id FROM public.player_points) AS w WHERE player_id = %s",
            (bottom_id,),
        ).fetchall(),
        3,
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="pgtally-bench-"))
    base.chmod(0o755)
    cluster = EmbeddedCluster(base / "data", port=free_port(), cron_database="pgtally_cron")
    try:
        dsn = cluster.start()
        dsn = cluster.ensure_database("bench")
        with psycopg.connect(dsn, autocommit=True) as conn:
            install.install(conn)
            (version,) = conn.execute("SHOW server_version").fetchone()  # type: ignore[misc]
            table: dict[str, dict[int, float]] = {}
            for size in args.sizes:
                for label, ms in bench(conn, size, args.repeat):
                    table.setdefault(label.replace(f"{size // 2:,}", "N/2"), {})[size] = ms
        print(f"PostgreSQL {version}; median ms per call, client round trip included\n")
        print("| call | " + " | ".join(f"{s:,} groups" for s in args.sizes) + " |")
        print("|---|" + "---:|" * len(args.sizes))
        for label, by_size in table.items():
            cells = " | ".join(f"{by_size.get(s, float('nan')):.2f}" for s in args.sizes)
            print(f"| {label} | {cells} |")
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
