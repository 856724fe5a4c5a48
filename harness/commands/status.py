"""pgtally status: installed version, pending files, rollups with their row counts."""

from __future__ import annotations

import argparse
from typing import Any

import psycopg
from psycopg import sql
from rich.table import Table

from harness import install, paths
from harness.commands.common import (
    EXIT_FOUND,
    EXIT_OK,
    add_dsn,
    add_json,
    console,
    open_connection,
    print_json,
)

HELP = "show the installed version, pending files and every rollup (exit 1 if not up to date)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_dsn(parser)
    add_json(parser)


def rollups(conn: psycopg.Connection[Any]) -> list[dict[str, object]]:
    """Each rollup in tally.rollups with the row count of its stats table."""
    if not install._relation_exists(conn, "tally.rollups"):
        return []
    rows = conn.execute(
        """SELECT r.rollup_name, r.source_table::text, r.stats_table::text,
                  n.nspname, c.relname
             FROM tally.rollups r
             LEFT JOIN pg_catalog.pg_class c ON c.oid = r.stats_table::regclass
             LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            ORDER BY r.rollup_name"""
    ).fetchall()
    result: list[dict[str, object]] = []
    for name, source, stats, schema, relname in rows:
        count: int | None = None
        if relname is not None:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, relname))
            fetched = conn.execute(query).fetchone()
            count = int(fetched[0]) if fetched else None
        result.append({"rollup_name": name, "source_table": source, "stats_table": stats, "rows": count})
    return result


def collect(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    todo = install.plan(conn)
    return {
        "installed": todo.ledger_exists,
        "installed_version": install.installed_version(conn),
        "extension_version": install.extension_version(conn),
        "harness_version": paths.version(),
        "up_to_date": todo.up_to_date,
        "pending": [f.name for f in todo.files] if todo.ledger_exists else [],
        "problems": todo.problems(),
        "rollups": rollups(conn),
    }


def run(args: argparse.Namespace) -> int:
    with open_connection(args) as conn:
        data = collect(conn)
    if args.json:
        print_json(data)
    else:
        _print(data)
    return EXIT_OK if data["up_to_date"] else EXIT_FOUND


def _print(data: dict[str, Any]) -> None:
    if not data["installed"]:
        console.print("pgtally is not installed in this database (run `pgtally install`)")
    else:
        ext = data["extension_version"]
        how = f"extension {ext}" if ext else "schema install"
        console.print(
            f"pgtally {data['installed_version']} installed ({how}); "
            f"this harness is {data['harness_version']}",
            highlight=False,
        )
        for name in data["pending"]:
            console.print(f"pending: {name}", highlight=False)
    for problem in data["problems"]:
        console.print(f"[red]problem:[/red] {problem}", highlight=False)
    if data["rollups"]:
        table = Table(title="rollups")
        for column in ("rollup", "source", "stats table", "rows"):
            table.add_column(column, justify="right" if column == "rows" else "left")
        for r in data["rollups"]:
            table.add_row(
                str(r["rollup_name"]), str(r["source_table"]), str(r["stats_table"]), str(r["rows"])
            )
        console.print(table)
