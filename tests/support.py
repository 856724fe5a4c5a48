"""Helpers for the tests: DSNs, throw-away databases, catalogue queries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from harness.cluster import bindir


def with_params(dsn: str, **params: Any) -> str:
    """The same DSN with some parameters replaced (dbname=..., user=...)."""
    return make_conninfo(dsn, **params)


def dbname_of(dsn: str) -> str:
    return str(conninfo_to_dict(dsn).get("dbname", ""))


def unique_name(prefix: str = "pgtally_t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(admin_dsn: str, name: str, template: str | None = None) -> str:
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(query)
    return with_params(admin_dsn, dbname=name)


def drop_database(admin_dsn: str, name: str) -> None:
    query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(query)


def pg_bin(name: str) -> str:
    """A client binary of the server version we test against (psql, pg_dump)."""
    path = bindir() / name
    return str(path) if path.exists() else name


def psql_file(dsn: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Run a script the way users are told to: psql -X -v ON_ERROR_STOP=1 -1 -f."""
    return subprocess.run(
        [pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f", str(path), dsn],
        capture_output=True,
        text=True,
        check=False,
    )


def schema_exists(conn: psycopg.Connection[Any], name: str = "tally") -> bool:
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone()
    return row is not None


def ledger(conn: psycopg.Connection[Any]) -> dict[str, str]:
    rows = conn.execute("SELECT file_name, checksum FROM tally.install_ledger").fetchall()
    return {name: digest for name, digest in rows}


def tally_functions(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """(oid, signature, prokind, language, proconfig, comment, is_trigger) per function."""
    return conn.execute(
        """SELECT p.oid, p.oid::regprocedure::text, p.prokind, l.lanname, p.proconfig,
                  pg_catalog.obj_description(p.oid, 'pg_proc'),
                  p.prorettype = 'pg_catalog.trigger'::regtype
             FROM pg_catalog.pg_proc p
             JOIN pg_catalog.pg_language l ON l.oid = p.prolang
            WHERE p.pronamespace = 'tally'::regnamespace
            ORDER BY 2"""
    ).fetchall()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `pgtally` console script, the way users do."""
    exe = shutil.which("pgtally", path=str(Path(sys.executable).parent)) or "pgtally"
    return subprocess.run(
        [exe, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=120,
    )
