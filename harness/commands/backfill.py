"""pgtally backfill ROLLUP: recompute a rollup online in committed batches, with a
progress bar fed by tally.backfill_progress; resumes an interrupted backfill."""

from __future__ import annotations

import argparse
import threading
from typing import Any

import psycopg
from rich.progress import Progress

from harness import dsn as dsn_mod
from harness.commands.common import EXIT_FOUND, EXIT_OK, CommandError, add_dsn, console, open_connection

HELP = "recompute a rollup online in batches, with progress; resumes where it stopped"


def configure(parser: argparse.ArgumentParser) -> None:
    add_dsn(parser)
    parser.add_argument("rollup")
    parser.add_argument("--batch-groups", type=int, default=1000, help="groups per batch (default 1000)")
    parser.add_argument("--delay", default="0", help="pause between batches, an interval (default 0)")
    parser.add_argument(
        "--key-condition", help="condition over the key columns, e.g. \"day >= '2025-01-01'\""
    )
    parser.add_argument("--restart", action="store_true", help="plan afresh instead of resuming")


def run(args: argparse.Namespace) -> int:
    failure: list[BaseException] = []
    with open_connection(args) as watcher:
        watcher.autocommit = True
        worker = dsn_mod.connect(watcher.info.dsn)
        worker.autocommit = True

        def call() -> None:
            try:
                worker.execute(
                    "CALL tally.backfill(%s, %s, %s::interval, %s, %s)",
                    (args.rollup, args.batch_groups, args.delay, args.key_condition, args.restart),
                )
            except psycopg.Error as exc:
                failure.append(exc)

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        with Progress(console=console) as progress:
            task = progress.add_task(f"backfill {args.rollup}", total=None)
            while thread.is_alive():
                thread.join(timeout=0.5)
                row: Any = watcher.execute(
                    "SELECT batches_done, batches_total FROM tally.backfill_progress WHERE rollup_name = %s",
                    (args.rollup,),
                ).fetchone()
                if row:
                    progress.update(
                        task,
                        completed=row[0],
                        total=row[1],
                        description=f"backfill {args.rollup}: batch {row[0]}/{row[1]}",
                    )
        worker.close()
    if failure:
        raise CommandError(f"backfill failed: {str(failure[0]).strip()}", EXIT_FOUND)
    console.print(f"{args.rollup}: backfill done")
    return EXIT_OK
