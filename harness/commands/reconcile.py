"""pgtally reconcile: compare rollups with their source (and optionally correct them),
with a progress bar over the rollups. Exit 0 in sync (or corrected), 1 drift left."""

from __future__ import annotations

import argparse
from typing import Any

from psycopg.rows import dict_row
from rich.progress import Progress

from harness.commands.common import (
    EXIT_FOUND,
    EXIT_OK,
    add_dsn,
    add_json,
    console,
    open_connection,
    print_json,
)

HELP = "reconcile rollups with their sources; --fix corrects drift safely (exit 1 if drift remains)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_dsn(parser)
    add_json(parser)
    parser.add_argument("rollups", nargs="*", help="rollup names (default: all)")
    parser.add_argument(
        "--fix", action="store_true", help="auto-correct drift (audited in tally.corrections)"
    )
    parser.add_argument("--reason", help="reason recorded with every correction")


def run(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    with open_connection(args) as conn:
        conn.autocommit = True
        names = args.rollups or [
            r[0]
            for r in conn.execute("SELECT rollup_name FROM tally.rollups WHERE status = 'ready' ORDER BY 1")
        ]
        with Progress(console=console, transient=True, disable=args.json) as progress:
            task = progress.add_task("reconciling", total=len(names))
            for name in names:
                progress.update(task, description=f"reconciling {name}")
                with conn.cursor(row_factory=dict_row) as cur:
                    row = cur.execute(
                        "SELECT * FROM tally.reconcile(%s, p_auto_correct => %s, p_reason => %s)",
                        (name, args.fix, args.reason),
                    ).fetchone()
                assert row is not None
                results.append(row)
                progress.advance(task)
    if args.json:
        print_json(results)
    else:
        for row in results:
            state = (
                "in sync"
                if row["in_sync"]
                else f"DRIFT: {row['groups_mismatched']} mismatched, "
                f"{row['groups_missing']} missing, {row['groups_extra']} extra"
            )
            if row["groups_corrected"]:
                state += f", {row['groups_corrected']} corrected"
            console.print(f"{row['rollup_name']}: {state} (run {row['run_id']}, {row['duration_ms']} ms)")
    remaining = [r for r in results if not r["in_sync"] and not r["groups_corrected"]]
    return EXIT_FOUND if remaining else EXIT_OK
