"""pgtally uninstall: drop rollups (stats tables, triggers), cron jobs and schema tally."""

from __future__ import annotations

import argparse

from harness import install
from harness.commands.common import (
    EXIT_OK,
    CommandError,
    add_dsn,
    add_json,
    add_lock_timeout,
    console,
    open_connection,
    print_json,
)

HELP = "remove pgtally (its rollups, their stats tables and triggers, cron jobs, schema tally)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_dsn(parser)
    add_json(parser)
    add_lock_timeout(parser, install.DEFAULT_LOCK_TIMEOUT)


def run(args: argparse.Namespace) -> int:
    with open_connection(args) as conn:
        try:
            removed = install.uninstall(conn, lock_timeout=args.lock_timeout)
        except install.InstallError as exc:
            raise CommandError(str(exc)) from exc
    if args.json:
        print_json({"removed": removed})
    elif removed:
        for item in removed:
            console.print(f"removed {item}", highlight=False)
    else:
        console.print("pgtally is not installed here: nothing removed")
    return EXIT_OK
