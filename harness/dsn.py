"""Which server to talk to: --dsn, else $PGTALLY_DSN, else PG* variables, else embedded.

Like psql: an explicit DSN wins; the usual libpq variables (PGHOST, PGPORT,
PGDATABASE, PGUSER, ...) are honoured when set. With none of them, the embedded
cluster (see harness.cluster) is started and database `pgtally` in it is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg

ENV_DSN = "PGTALLY_DSN"
LIBPQ_MARKERS = ("PGHOST", "PGDATABASE", "PGPORT")
EMBEDDED_DATABASE = "pgtally"


@dataclass(frozen=True)
class Target:
    dsn: str  # "" means: libpq reads the PG* environment variables
    source: str  # "option", "PGTALLY_DSN", "PG* environment" or "embedded cluster"


def resolve(cli_dsn: str | None, env: Mapping[str, str] | None = None) -> Target | None:
    """The configured target, or None when the embedded cluster should be used."""
    env = os.environ if env is None else env
    if cli_dsn:
        return Target(cli_dsn, "option")
    if env.get(ENV_DSN):
        return Target(env[ENV_DSN], ENV_DSN)
    if any(env.get(name) for name in LIBPQ_MARKERS):
        return Target("", "PG* environment")
    return None


def resolve_or_embedded(cli_dsn: str | None) -> Target:
    """Like resolve(), but starts the embedded cluster when nothing is configured."""
    target = resolve(cli_dsn)
    if target is not None:
        return target
    from harness.cluster import EmbeddedCluster  # only needed on this path

    cluster = EmbeddedCluster()
    cluster.start()
    return Target(cluster.ensure_database(EMBEDDED_DATABASE), "embedded cluster")


def connect(dsn: str, *, autocommit: bool = True) -> psycopg.Connection:
    """Open a connection with a connect timeout unless the DSN/env chose one."""
    kwargs: dict[str, object] = {}
    if "connect_timeout" not in dsn and not os.environ.get("PGCONNECT_TIMEOUT"):
        kwargs["connect_timeout"] = 10
    return psycopg.connect(dsn, autocommit=autocommit, **kwargs)
