"""Exactness checks shared by the rollup tests: stats versus a recomputation.

The recomputation is `tally.recompute_sql`, i.e. `SELECT keys, aggregates FROM source
WHERE filter GROUP BY keys`, compared as multisets with every bookkeeping column, so a
wrong hidden count is caught as surely as a wrong visible total.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from harness.exactness import difference_query


def stats_table(conn: psycopg.Connection[Any], rollup: str) -> str:
    row = conn.execute(
        "SELECT stats_table::text FROM tally.rollups WHERE rollup_name = %s", (rollup,)
    ).fetchone()
    assert row is not None, f"no rollup {rollup}"
    return str(row[0])


def differences(conn: psycopg.Connection[Any], rollup: str) -> list[tuple[Any, ...]]:
    """Rows in the stats but not in the recomputation, or the other way round."""
    return conn.execute(difference_query(conn, rollup)).fetchall()


def assert_exact(conn: psycopg.Connection[Any], *rollups: str) -> None:
    names = rollups or tuple(r[0] for r in conn.execute("SELECT rollup_name FROM tally.rollups ORDER BY 1"))
    for rollup in names:
        diff = differences(conn, rollup)
        assert diff == [], f"rollup {rollup} differs from its recomputation: {diff[:10]}"


def stats_rows(conn: psycopg.Connection[Any], rollup: str, *columns: str) -> list[tuple[Any, ...]]:
    """Visible stats columns, ordered by all of them (deterministic for assertions)."""
    column_list = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    return conn.execute(
        sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            column_list, sql.SQL(stats_table(conn, rollup)), column_list
        )
    ).fetchall()
