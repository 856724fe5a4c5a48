"""pgtally install: apply pending migrations and changed repeatable files."""

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

HELP = "install or upgrade pgtally in a database (one transaction, advisory-locked)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_dsn(parser)
    add_json(parser)
    add_lock_timeout(parser, install.DEFAULT_LOCK_TIMEOUT)


def run(args: argparse.Namespace) -> int:
    with open_connection(args) as conn:
        try:
            result = install.install(conn, lock_timeout=args.lock_timeout)
        except install.InstallError as exc:
            raise CommandError(str(exc)) from exc
    if args.json:
        print_json(
            {
                "version": result.version,
                "applied": result.applied,
                "regenerated": result.regenerated,
            }
        )
    elif result.applied:
        for name in result.applied:
            console.print(f"applied {name}", highlight=False)
        console.print(f"pgtally {result.version}: {len(result.applied)} file(s) applied")
    else:
        console.print(f"pgtally {result.version}: already up to date, nothing applied")
    return EXIT_OK
