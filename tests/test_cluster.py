"""The embedded cluster: start, status, idempotent start, pg_cron preloaded, stop."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.cluster import EmbeddedCluster, cron_available, free_port


@pytest.fixture
def cluster() -> Iterator[EmbeddedCluster]:
    base = Path(tempfile.mkdtemp(prefix="pgtally-cluster-test-"))
    base.chmod(0o755)
    made = EmbeddedCluster(base / "data", port=free_port(), cron_database="pgtally")
    try:
        yield made
    finally:
        made.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_embedded_cluster_starts_reports_status_and_stops(cluster: EmbeddedCluster) -> None:
    assert cluster.status().running is False
    dsn = cluster.start()
    status = cluster.status()
    assert status.running and status.pid and status.port == cluster.port
    assert f"port={cluster.port}" in dsn and "host=127.0.0.1" in dsn
    assert cluster.start() == dsn  # already running: same server, no error
    assert cluster.status().pid == status.pid
    with psycopg.connect(dsn) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('max_connections', 'fsync', 'listen_addresses', 'unix_socket_directories',"
                " 'shared_preload_libraries')"
            ).fetchall()
        )
    assert settings["max_connections"] == "200"
    assert settings["fsync"] == "on"
    assert settings["listen_addresses"] == "127.0.0.1"
    assert settings["unix_socket_directories"] == str(cluster.datadir)
    if cron_available():
        assert "pg_cron" in settings["shared_preload_libraries"]
    cluster.stop()
    assert cluster.status().running is False


def test_test_server_preloads_pg_cron(admin_dsn: str) -> None:
    if not cron_available():
        pytest.skip("pg_cron is not installed (Debian: postgresql-15-cron)")
    with psycopg.connect(admin_dsn) as conn:
        row = conn.execute("SHOW shared_preload_libraries").fetchone()
    assert row is not None and "pg_cron" in row[0]


@pytest.mark.cron
def test_cron_database_has_pg_cron_and_pgtally(cron_db_dsn: str) -> None:
    with psycopg.connect(cron_db_dsn, autocommit=True) as conn:
        ext = conn.execute("SELECT extname FROM pg_extension WHERE extname = 'pg_cron'")
        assert ext.fetchone() == ("pg_cron",)
        assert conn.execute("SELECT to_regclass('tally.install_ledger')").fetchone() != (None,)
        job: Any = conn.execute("SELECT cron.schedule('pgtally:test', '* * * * *', 'SELECT 1')").fetchone()
        again: Any = conn.execute("SELECT cron.schedule('pgtally:test', '* * * * *', 'SELECT 1')").fetchone()
        assert job[0] == again[0]  # a named schedule upserts


@pytest.mark.slow
def test_demo_runs_twice_and_the_global_total_is_exact(cluster: EmbeddedCluster) -> None:
    from rich.console import Console

    from harness import demo

    console = Console(record=True, width=200)
    for _ in range(2):  # re-runnable: the second run drops the first run's objects
        demo.run(console, str(cluster.datadir), cluster.port)
    out = console.export_text()
    assert "-> exact" in out
    assert "30.9" in out  # 10.2 + 10.3 + 10.4, the unverified 99.9 left out
    assert f'psql "host=127.0.0.1 port={cluster.port} user=postgres dbname=pgtally"' in out


@pytest.mark.slow
def test_server_command_starts_reports_and_says_stopped(cluster: EmbeddedCluster) -> None:
    import subprocess
    import sys

    def server(action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())",
             "server", action, "--datadir", str(cluster.datadir), "--port", str(cluster.port)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    started = server("start")
    assert started.returncode == 0 and "running: pid" in started.stdout, started
    assert server("status").returncode == 0
    stopped = server("stop")
    assert stopped.returncode == 0, stopped
    assert stopped.stdout.startswith("stopped (data directory"), stopped.stdout
    gone = server("status")
    assert gone.returncode == 1 and gone.stdout.startswith("not running"), gone
