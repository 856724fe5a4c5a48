"""pgtally server start|stop|status: the embedded cluster (initdb/pg_ctl)."""

from __future__ import annotations

import argparse

from harness.cluster import DEFAULT_DATADIR, DEFAULT_PORT, ClusterError, EmbeddedCluster
from harness.commands.common import EXIT_FOUND, EXIT_OK, CommandError, console, print_json
from harness.dsn import EMBEDDED_DATABASE

HELP = "start, stop or inspect the embedded PostgreSQL cluster"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--datadir", default=str(DEFAULT_DATADIR), help="data directory")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (127.0.0.1)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    cluster = EmbeddedCluster(args.datadir, args.port, cron_database=EMBEDDED_DATABASE)
    try:
        if args.action == "start":
            cluster.start()
            cluster.ensure_database(EMBEDDED_DATABASE)
        elif args.action == "stop":
            cluster.stop()
    except ClusterError as exc:
        raise CommandError(str(exc)) from exc
    status = cluster.status()
    if args.json:
        print_json(status.as_dict())
    elif status.running:
        console.print(f"running: pid {status.pid}, data directory {status.datadir}", highlight=False)
        console.print(f"connect: {cluster.psql_command(EMBEDDED_DATABASE)}", highlight=False)
    elif args.action == "stop":
        console.print(f"stopped (data directory {status.datadir})", highlight=False)
    else:
        console.print(f"not running (data directory {status.datadir})", highlight=False)
    if args.action == "status" and not status.running:
        return EXIT_FOUND
    return EXIT_OK
