"""`pgtally` command line: argparse subcommands, one module each in harness.commands.

Exit codes: 0 ok, 1 drift or failure found, 2 usage or connection error.
To add a subcommand (reconcile, backfill, drift, listen, health, ...): write
harness/commands/<name>.py with HELP, configure(parser) and run(args) -> int, and add
one line to COMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

import psycopg

from harness import paths
from harness.commands.common import EXIT_FOUND, EXIT_USAGE, CommandError, err_console

COMMANDS: dict[str, str] = {
    "install": "harness.commands.install",
    "uninstall": "harness.commands.uninstall",
    "status": "harness.commands.status",
    "build": "harness.commands.build",
    "server": "harness.commands.server",
    "demo": "harness.commands.demo",
    "listen": "harness.commands.listen",
    "drift": "harness.commands.drift",
    "reconcile": "harness.commands.reconcile",
    "backfill": "harness.commands.backfill",
    "health": "harness.commands.health",
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="pgtally", description="Exact rollup tables maintained by triggers in PostgreSQL"
    )
    top.add_argument("--version", action="version", version=f"pgtally {paths.version()}")
    subs = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = _module(name)
        sub = subs.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(run=module.run)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except CommandError as exc:
        err_console.print(f"[red]pgtally {args.command}:[/red] {exc}", highlight=False)
        return exc.code
    except psycopg.OperationalError as exc:
        err_console.print(f"[red]pgtally {args.command}:[/red] {exc}", highlight=False)
        return EXIT_USAGE
    except psycopg.Error as exc:
        err_console.print(f"[red]pgtally {args.command}:[/red] {exc}", highlight=False)
        return EXIT_FOUND
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
