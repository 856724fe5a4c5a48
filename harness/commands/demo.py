"""pgtally demo: embedded cluster + install + three rollups + writes, printed."""

from __future__ import annotations

import argparse

from harness import demo
from harness.cluster import DEFAULT_DATADIR, DEFAULT_PORT, ClusterError
from harness.commands.common import EXIT_OK, CommandError, console
from harness.install import InstallError

HELP = "start the embedded cluster, install pgtally, create demo rollups and show them"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datadir", default=str(DEFAULT_DATADIR), help="data directory")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (127.0.0.1)")


def run(args: argparse.Namespace) -> int:
    try:
        demo.run(console, args.datadir, args.port)
    except (demo.DemoError, ClusterError, InstallError) as exc:
        raise CommandError(str(exc)) from exc
    return EXIT_OK
