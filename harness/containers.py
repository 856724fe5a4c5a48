"""Optional backend: a PostgreSQL container via testcontainers (PGTALLY_BACKEND=containers).

Used only when a Docker engine answers `docker info` and the `containers` extra is
installed. The stock image has no pg_cron: cron tests skip on this backend.
"""

from __future__ import annotations

import shutil
import subprocess
from contextlib import AbstractContextManager
from typing import Any

IMAGE = "postgres:15"


def docker_available() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run([docker, "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def available() -> bool:
    try:
        import testcontainers.postgres  # noqa: F401
    except ImportError:
        return False
    return docker_available()


def postgres_container() -> AbstractContextManager[Any]:
    """A started-on-enter PostgresContainer; use `dsn(container)` for its DSN."""
    from testcontainers.postgres import PostgresContainer

    return PostgresContainer(IMAGE, username="postgres", password="postgres", dbname="postgres")


def dsn(container: Any) -> str:
    host = container.get_container_host_ip()
    port = container.get_exposed_port(5432)
    return f"host={host} port={port} user=postgres password=postgres dbname=postgres"
