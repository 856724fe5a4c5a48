"""pgtally drift: schema drift (edited functions, disabled triggers, altered stats) and
data drift (report-only reconciliation of every rollup). Exit 0 clean, 1 drift, 2 usage."""

from __future__ import annotations

import argparse
from typing import Any

import psycopg
from psycopg.rows import dict_row
from rich.table import Table

from harness import install
from harness.commands.common import (
    EXIT_FOUND,
    EXIT_OK,
    CommandError,
    add_dsn,
    add_json,
    console,
    open_connection,
    print_json,
)

HELP = "check schema drift and data drift of every rollup (exit 1 when drift is found)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_dsn(parser)
    add_json(parser)
    parser.add_argument("--schema-only", action="store_true", help="skip the data reconciliation")


def collect(conn: psycopg.Connection[Any], *, data: bool = True) -> dict[str, Any]:
    if not install._function_exists(conn, "tally", "schema_drift"):
        raise CommandError("pgtally is not installed in this database (run `pgtally install`)")
    with conn.cursor(row_factory=dict_row) as cur:
        schema = cur.execute("SELECT * FROM tally.schema_drift()").fetchall()
        rollups: list[dict[str, Any]] = []
        if data:
            # report only: nothing is changed, the runs and differences are logged
            with conn.transaction():
                rollups = cur.execute(
                    "SELECT run_id, rollup_name, in_sync, groups_checked, groups_mismatched, groups_missing, "
                    "groups_extra, duration_ms FROM tally.reconcile_all(false)"
                ).fetchall()
    return {
        "schema_drift": schema,
        "data_drift": [r for r in rollups if not r["in_sync"]],
        "rollups_checked": rollups,
        "clean": not schema and all(r["in_sync"] for r in rollups),
    }


def run(args: argparse.Namespace) -> int:
    with open_connection(args) as conn:
        result = collect(conn, data=not args.schema_only)
    if args.json:
        print_json(result)
    else:
        _print(result)
    return EXIT_OK if result["clean"] else EXIT_FOUND


def _print(result: dict[str, Any]) -> None:
    if result["schema_drift"]:
        table = Table(title="schema drift")
        for column in ("object_type", "object_name", "problem"):
            table.add_column(column)
        for row in result["schema_drift"]:
            table.add_row(row["object_type"], row["object_name"], row["problem"])
        console.print(table)
    else:
        console.print("schema: no drift")
    if result["rollups_checked"]:
        table = Table(title="data drift (report only)")
        for column in ("rollup", "in sync", "groups", "mismatched", "missing", "extra", "run"):
            table.add_column(column)
        for row in result["rollups_checked"]:
            table.add_row(
                row["rollup_name"],
                "yes" if row["in_sync"] else "[red]NO[/red]",
                str(row["groups_checked"]),
                str(row["groups_mismatched"]),
                str(row["groups_missing"]),
                str(row["groups_extra"]),
                str(row["run_id"]),
            )
        console.print(table)
    console.print("clean" if result["clean"] else "[red]drift found[/red]")
