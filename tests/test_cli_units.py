"""Connection resolution and sources, without a server."""

from __future__ import annotations

from harness import dsn, paths
from harness.sources import all_sources, migrations, repeatables


def test_explicit_dsn_wins_over_environment() -> None:
    env = {"PGTALLY_DSN": "dbname=env", "PGHOST": "h"}
    assert dsn.resolve("dbname=cli", env) == dsn.Target("dbname=cli", "option")


def test_pgtally_dsn_wins_over_libpq_variables() -> None:
    env = {"PGTALLY_DSN": "dbname=env", "PGHOST": "h"}
    assert dsn.resolve(None, env) == dsn.Target("dbname=env", "PGTALLY_DSN")


def test_libpq_variables_are_left_to_libpq() -> None:
    assert dsn.resolve(None, {"PGPORT": "5433"}) == dsn.Target("", "PG* environment")


def test_nothing_configured_means_embedded_cluster() -> None:
    assert dsn.resolve(None, {"PGUSER": "x"}) is None


def test_version_comes_from_pyproject() -> None:
    assert paths.version() == paths.version_from_pyproject(paths.PYPROJECT)


def test_sources_are_migrations_in_number_order_then_repeatables() -> None:
    files = all_sources()
    assert files == migrations() + repeatables()
    assert files[0].name == "migrations/V0001__schema_and_install_ledger.sql"
    numbers = [int(f.path.name[1:].split("__")[0]) for f in migrations()]
    assert numbers == sorted(numbers)
    kinds = [f.name.split("/")[0] for f in repeatables()]
    assert kinds == sorted(kinds, key=["functions", "views", "triggers"].index)
