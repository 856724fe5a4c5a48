"""What subcommands share: the --dsn option, connecting, exit codes, output."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from typing import Any

import psycopg
from rich.console import Console

from harness import dsn as dsn_mod

EXIT_OK = 0
EXIT_FOUND = 1  # drift / failure found
EXIT_USAGE = 2  # usage or connection error

console = Console()
err_console = Console(stderr=True)


class CommandError(Exception):
    """Raised by a subcommand to exit with a message and a code."""

    def __init__(self, message: str, code: int = EXIT_FOUND) -> None:
        super().__init__(message)
        self.code = code


def add_dsn(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn",
        help="libpq connection string or URI (default: $PGTALLY_DSN, then PG* "
        "variables, then the embedded cluster)",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def add_lock_timeout(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--lock-timeout",
        default=default,
        help="how long to wait for a table lock before giving up with nothing changed (a value of "
        "PostgreSQL's lock_timeout: 30s, 2min; a bare number is milliseconds; 0 waits for ever; "
        f"default {default})",
    )


def open_connection(args: argparse.Namespace) -> psycopg.Connection[Any]:
    """Connect to the target the options/environment name; connection errors exit 2."""
    try:
        target = dsn_mod.resolve_or_embedded(getattr(args, "dsn", None))
        return dsn_mod.connect(target.dsn)
    except psycopg.OperationalError as exc:
        raise CommandError(f"cannot connect: {str(exc).strip()}", EXIT_USAGE) from exc


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)  # exact: JSON numbers would go through float
    return str(value)


def print_json(data: object) -> None:
    print(json.dumps(data, indent=2, default=_default, sort_keys=False))
