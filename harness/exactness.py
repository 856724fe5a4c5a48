"""The one-statement exactness check the tests and the benchmark share.

`difference_query` compares a rollup's stats (every column `tally.stats_columns` can
recompute, bookkeeping included) with `tally.recompute_sql`, as multisets, in ONE
statement, so one snapshot: it is empty exactly when the stats equal a recomputation of
the source. It is deliberately independent of `tally.reconcile`, the code under test.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql


def difference_query(conn: psycopg.Connection[Any], rollup: str) -> sql.Composed:
    """Rows (side, row as jsonb): 'stored' rows missing from the recomputation, and
    'expected' rows missing from the stats. Raises LookupError for an unknown rollup."""
    row = conn.execute(
        "SELECT stats_table::text, tally.recompute_sql(rollup_name) FROM tally.rollups "
        "WHERE rollup_name = %s",
        (rollup,),
    ).fetchone()
    if row is None:
        raise LookupError(f"no rollup {rollup}")
    stats, recompute = row
    columns = [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM tally.stats_columns(%s) WHERE recompute_expression IS NOT NULL",
            (rollup,),
        )
    ]
    stored = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.SQL(stats)
    )
    return sql.SQL(
        "SELECT 'stored' AS side, to_jsonb(a) AS row FROM ({stored} EXCEPT ALL ({recompute})) AS a "
        "UNION ALL SELECT 'expected', to_jsonb(b) FROM (({recompute}) EXCEPT ALL {stored}) AS b"
    ).format(stored=stored, recompute=sql.SQL(recompute))
