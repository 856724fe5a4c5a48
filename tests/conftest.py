"""Servers and databases for the tests.

pg_server: admin DSN of the server: $PGTALLY_TEST_DSN, else (PGTALLY_BACKEND=containers
with Docker) a container, else a fresh embedded cluster in a temp dir (pg_cron watching
database pgtally_cron). pgtally is installed once into database pgtally_template; a
test gets a clone (db_dsn/conn/connect), an empty database (empty_dsn), or a
transaction rolled back at the end (tx).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness import build, install
from harness.cluster import EmbeddedCluster, cron_available, free_port, pg_config
from tests import support

TEMPLATE_DB = "pgtally_template"
SHARED_DB = "pgtally_shared"
CRON_DB = "pgtally_cron"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Admin (superuser) DSN of the server every test uses."""
    external = os.environ.get("PGTALLY_TEST_DSN")
    if external:
        yield external
        return
    if os.environ.get("PGTALLY_BACKEND") == "containers":
        from harness import containers

        if not containers.available():
            pytest.exit("PGTALLY_BACKEND=containers but no Docker engine/testcontainers", 2)
        with containers.postgres_container() as container:
            yield containers.dsn(container)
        return
    base = Path(tempfile.mkdtemp(prefix="pgtally-test-"))
    base.chmod(0o755)  # the postgres OS user must reach the data directory below
    cluster = EmbeddedCluster(base / "data", port=free_port(), cron_database=CRON_DB)
    try:
        yield cluster.start()
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def admin_dsn(pg_server: str) -> str:
    return pg_server


@pytest.fixture(scope="session")
def template_dsn(pg_server: str) -> Iterator[str]:
    """Database pgtally_template with pgtally installed; no connection left open."""
    support.drop_database(pg_server, TEMPLATE_DB)
    dsn = support.create_database(pg_server, TEMPLATE_DB)
    with psycopg.connect(dsn, autocommit=True) as conn:
        install.install(conn)
    yield dsn
    support.drop_database(pg_server, TEMPLATE_DB)


@pytest.fixture
def db_dsn(pg_server: str, template_dsn: str) -> Iterator[str]:
    """A fresh clone of the template for this test; dropped afterwards."""
    name = support.unique_name()
    dsn = support.create_database(pg_server, name, template=TEMPLATE_DB)
    yield dsn
    support.drop_database(pg_server, name)


@pytest.fixture
def empty_dsn(pg_server: str) -> Iterator[str]:
    """A fresh database without pgtally; dropped afterwards."""
    name = support.unique_name("pgtally_e")
    dsn = support.create_database(pg_server, name)
    yield dsn
    support.drop_database(pg_server, name)


@pytest.fixture
def connect(db_dsn: str) -> Iterator[Callable[..., psycopg.Connection[Any]]]:
    """Factory of autocommit connections to db_dsn (closed at teardown)."""
    opened: list[psycopg.Connection[Any]] = []

    def _connect(**params: Any) -> psycopg.Connection[Any]:
        conn = psycopg.connect(support.with_params(db_dsn, **params), autocommit=True)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture
def conn(connect: Callable[..., psycopg.Connection[Any]]) -> psycopg.Connection[Any]:
    """An autocommit connection to this test's clone."""
    return connect()


@pytest.fixture
def dsn_for(db_dsn: str) -> Callable[..., str]:
    """dsn_for("alice") -> DSN to this test's clone as role alice (trust auth)."""

    def _dsn_for(user: str, **params: Any) -> str:
        return support.with_params(db_dsn, user=user, **params)

    return _dsn_for


@pytest.fixture(scope="session")
def shared_dsn(pg_server: str, template_dsn: str) -> Iterator[str]:
    support.drop_database(pg_server, SHARED_DB)
    dsn = support.create_database(pg_server, SHARED_DB, template=TEMPLATE_DB)
    yield dsn
    support.drop_database(pg_server, SHARED_DB)


@pytest.fixture
def tx(shared_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection inside a transaction that is rolled back after the test.

    For tests that do not need to commit (no concurrency, no cron): cheaper than a clone.
    """
    with psycopg.connect(shared_dsn) as conn:  # not autocommit: BEGIN on first statement
        yield conn
        conn.rollback()


def _cron_watches(admin: str) -> bool:
    with psycopg.connect(admin, autocommit=True) as conn:
        preload = conn.execute("SHOW shared_preload_libraries").fetchone()
        if not preload or "pg_cron" not in str(preload[0]):
            return False
        row = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()
        return bool(row and row[0] == CRON_DB)


def _empty_public_schema(conn: psycopg.Connection[Any]) -> None:
    """Drop what earlier tests left in schema public, except extension members: pg_cron's
    extension is recorded in schema public, so DROP SCHEMA public CASCADE would drop it."""
    not_extension = "NOT EXISTS (SELECT FROM pg_depend AS d WHERE d.objid = o.oid AND d.deptype = 'e')"
    relations = conn.execute(
        "SELECT CASE o.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, "
        "o.oid::regclass::text FROM pg_class AS o "
        f"WHERE o.relnamespace = 'public'::regnamespace AND o.relkind IN ('r', 'p', 'v', 'm') AND {not_extension}"
    ).fetchall()
    functions = conn.execute(
        "SELECT CASE o.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, o.oid::regprocedure::text "
        f"FROM pg_proc AS o WHERE o.pronamespace = 'public'::regnamespace AND {not_extension}"
    ).fetchall()
    for kind, name in relations + functions:
        conn.execute(f"DROP {kind} IF EXISTS {name} CASCADE")  # names come quoted from regclass/regprocedure


@pytest.fixture
def cron_db_dsn(pg_server: str) -> Iterator[str]:
    """Database pgtally_cron (the one pg_cron watches), emptied and given pg_cron + pgtally.

    Never dropped once created: dropping it terminates pg_cron's scheduler, which does not
    come back until the server restarts. Emptied instead (jobs, their runs, schemas tally
    and public). Skips when the server does not preload pg_cron for that database.
    """
    if not _cron_watches(pg_server):
        pytest.skip(f"pg_cron is not preloaded with cron.database_name = {CRON_DB}")
    with psycopg.connect(pg_server, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (CRON_DB,)).fetchone()
    dsn = (
        support.with_params(pg_server, dbname=CRON_DB)
        if exists
        else support.create_database(pg_server, CRON_DB)
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        conn.execute("SELECT cron.unschedule(jobid) FROM cron.job")
        conn.execute("DELETE FROM cron.job_run_details")
        conn.execute("DROP SCHEMA IF EXISTS tally CASCADE")
        _empty_public_schema(conn)
        install.install(conn)
    yield dsn
    with psycopg.connect(dsn, autocommit=True) as conn:  # no job may outlive its test
        conn.execute("SELECT cron.unschedule(jobid) FROM cron.job")


@pytest.fixture(scope="session")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> build.BuildOutput:
    """`pgtally build` output for this session (in a temp dir, not ./dist)."""
    return build.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def extension_files(dist_dir: build.BuildOutput, pg_server: str) -> Iterator[Path]:
    """The built extension copied into $(pg_config --sharedir)/extension; removed after.

    Skips when that directory is not writable or the server is not local.
    """
    if os.environ.get("PGTALLY_TEST_DSN") or os.environ.get("PGTALLY_BACKEND"):
        pytest.skip("CREATE EXTENSION tests need the local embedded server")
    target = Path(pg_config("--sharedir")) / "extension"
    if not os.access(target, os.W_OK):
        pytest.skip(f"{target} is not writable (run the tests as root)")
    copied = []
    for source in (dist_dir.control, dist_dir.extension_script):
        dest = target / source.name
        shutil.copyfile(source, dest)
        copied.append(dest)
    yield target
    for dest in copied:
        dest.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def has_cron() -> bool:
    return cron_available()
