"""pgtally build: write the psql script and the CREATE EXTENSION files."""

from __future__ import annotations

import argparse

from harness import build
from harness.commands.common import EXIT_OK, console

HELP = "write dist/pgtally-<version>.sql and dist/extension/ (control + script)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="dist", help="output directory (default: dist)")


def run(args: argparse.Namespace) -> int:
    output = build.build(args.out)
    for path in output.as_list():
        console.print(f"wrote {path}", highlight=False)
    return EXIT_OK
