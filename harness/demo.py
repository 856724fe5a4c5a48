"""`pgtally demo`: an embedded cluster, pgtally installed, three rollups, some writes.

Re-runnable: previous demo rollups and tables are dropped first.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from harness import install
from harness.cluster import DEFAULT_DATADIR, DEFAULT_PORT, EmbeddedCluster, cron_available
from harness.dsn import EMBEDDED_DATABASE

ROLLUPS = ("user_emissions", "global_emissions", "loads_by_status")
USERS = [uuid.UUID(f"00000000-0000-4000-8000-00000000000{i}") for i in (1, 2, 3)]

SOURCE_DDL = """
CREATE TABLE public.user_actions (
    action_id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    emissions_saved_lbs numeric(30, 6) NOT NULL,
    verified boolean DEFAULT false,
    logged_at timestamptz NOT NULL,
    created_at timestamptz DEFAULT now(),
    metadata jsonb DEFAULT '{}'
);
CREATE TABLE public.loads (
    id bigserial PRIMARY KEY,
    org_id int NOT NULL,
    status text NOT NULL
);
"""

CREATE_ROLLUPS = """
SELECT tally.create_rollup('user_emissions', source => 'public.user_actions',
    group_by => ARRAY['user_id'],
    measures => ARRAY['total_emissions_lbs = sum(emissions_saved_lbs)', 'action_count = count(*)'],
    filter => 'verified');
SELECT tally.create_rollup('global_emissions', source => 'public.user_actions',
    measures => ARRAY['total_lbs_saved = sum(emissions_saved_lbs)'],
    filter => 'verified');
SELECT tally.create_rollup('loads_by_status', source => 'public.loads',
    group_by => ARRAY['org_id', 'status'],
    measures => ARRAY['n = count(*)']);
"""


class DemoError(Exception):
    pass


def _reset(conn: psycopg.Connection[Any]) -> None:
    """Drop what an earlier demo run left: rollups first (triggers, stats), then tables."""
    if install._relation_exists(conn, "tally.rollups") and install._function_exists(
        conn, "tally", "drop_rollup"
    ):
        for name in ROLLUPS:
            found = conn.execute("SELECT 1 FROM tally.rollups WHERE rollup_name = %s", (name,)).fetchone()
            if found:
                conn.execute("SELECT tally.drop_rollup(%s)", (name,))
    for table in ("user_actions", "loads", *ROLLUPS):
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier("public", table)))


def _write_data(conn: psycopg.Connection[Any]) -> None:
    actions = [
        (USERS[0], Decimal("10.2"), True),
        (USERS[1], Decimal("10.3"), True),
        (USERS[2], Decimal("10.4"), True),
        (USERS[0], Decimal("99.9"), False),  # not verified: outside both filters
    ]
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO public.user_actions
                   (action_id, user_id, emissions_saved_lbs, verified, logged_at)
               VALUES (gen_random_uuid(), %s, %s, %s, now())""",
            actions,
        )
        cur.executemany(
            "INSERT INTO public.loads (org_id, status) VALUES (%s, 'DRAFT')",
            [(1,), (1,), (1,), (2,), (2,)],
        )
        # a status move: one load leaves DRAFT, one count shifts between groups
        cur.execute(
            "UPDATE public.loads SET status = 'IN_TRANSIT' "
            "WHERE id = (SELECT min(id) FROM public.loads WHERE org_id = 1)"
        )


def _table(conn: psycopg.Connection[Any], title: str, query: sql.Composable) -> Table:
    cur = conn.execute(query)
    columns = [d.name for d in cur.description or []]
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in cur.fetchall():
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    return table


def run(console: Console, datadir: str = str(DEFAULT_DATADIR), port: int = DEFAULT_PORT) -> EmbeddedCluster:
    cluster = EmbeddedCluster(datadir, port, cron_database=EMBEDDED_DATABASE)
    console.print(f"starting the embedded cluster in {cluster.datadir} ...", highlight=False)
    cluster.start()
    dsn = cluster.ensure_database(EMBEDDED_DATABASE)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if cron_available():
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        result = install.install(conn)
        console.print(f"pgtally {result.version}: {len(result.applied)} file(s) applied", highlight=False)
        if not install._function_exists(conn, "tally", "create_rollup"):
            raise DemoError(
                "tally.create_rollup() does not exist yet: the SQL engine (sql/functions) "
                "is not written; nothing to demonstrate"
            )
        with conn.transaction():
            _reset(conn)
            conn.execute(SOURCE_DDL)
            conn.execute(CREATE_ROLLUPS)
        with conn.transaction():
            _write_data(conn)

        for name in ROLLUPS:
            query = sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier("public", name))
            console.print(_table(conn, f"public.{name}", query))
        leaderboard = sql.SQL(
            "SELECT user_id, total_emissions_lbs, action_count FROM public.user_emissions "
            "ORDER BY total_emissions_lbs DESC, user_id"
        )
        console.print(_table(conn, "leaderboard (verified lbs saved)", leaderboard))
        row = conn.execute(
            "SELECT (SELECT sum(emissions_saved_lbs) FROM public.user_actions WHERE verified),"
            "       (SELECT total_lbs_saved FROM public.global_emissions)"
        ).fetchone()
        if row is not None:
            recomputed, kept = row
            verdict = "[green]exact[/green]" if recomputed == kept else "[red]DIFFERENT[/red]"
            console.print(
                f"global total kept by triggers: {kept!s}; recomputed from source: "
                f"{recomputed!s} -> {verdict}",
                highlight=False,
            )
    console.print(f"\ncluster data directory: {cluster.datadir} (log: {cluster.logfile})")
    console.print(f"connect with:  {cluster.psql_command(EMBEDDED_DATABASE)}", highlight=False)
    console.print("stop it with:  pgtally server stop", highlight=False)
    return cluster
