"""Install paths: `pgtally install`, the built psql script, CREATE EXTENSION; uninstall."""

from __future__ import annotations

import json
import shutil
import threading
from typing import Any

import psycopg
import pytest

from harness import build, install, paths
from harness.sources import all_sources, migrations
from tests import support
from tests.exactness import assert_exact


def test_install_into_empty_database_applies_every_file_and_records_it(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        result = install.install(conn)
        expected = [f.name for f in all_sources()]
        assert result.applied == expected
        assert support.ledger(conn) == {f.name: f.checksum for f in all_sources()}
        assert install.installed_version(conn) == result.version


def test_second_install_applies_nothing(conn: psycopg.Connection[Any]) -> None:
    before = conn.execute("SELECT * FROM tally.install_ledger ORDER BY 1").fetchall()
    result = install.install(conn)
    assert result.applied == []
    assert result.regenerated is False
    assert conn.execute("SELECT * FROM tally.install_ledger ORDER BY 1").fetchall() == before


def test_changed_applied_migration_is_refused_with_its_name(
    conn: psycopg.Connection[Any],
) -> None:
    first = migrations()[0].name
    conn.execute("UPDATE tally.install_ledger SET checksum = 'edited' WHERE file_name = %s", (first,))
    with pytest.raises(install.MigrationChanged, match=first):
        install.install(conn)


def test_changed_repeatable_is_reapplied(conn: psycopg.Connection[Any]) -> None:
    from harness.sources import repeatables

    files = repeatables()
    assert files
    conn.execute("UPDATE tally.install_ledger SET checksum = 'old' WHERE file_name = %s", (files[0].name,))
    assert install.install(conn).applied == [files[0].name]
    assert support.ledger(conn)[files[0].name] == files[0].checksum


def test_tally_schema_without_ledger_is_refused(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA tally")
        with pytest.raises(install.LedgerMissing, match="install_ledger"):
            install.install(conn)
        # nothing was adopted or half-applied
        assert conn.execute("SELECT to_regclass('tally.install_ledger')").fetchone() == (None,)


def test_failed_install_leaves_nothing_behind(empty_dsn: str, tmp_path: Any) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "functions").mkdir()
    (tmp_path / "views").mkdir()
    (tmp_path / "triggers").mkdir()
    good = migrations()[0]
    (tmp_path / "migrations" / good.path.name).write_bytes(good.path.read_bytes())
    (tmp_path / "migrations" / "V9999__broken.sql").write_text("SELECT no_such_function();\n")
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedFunction):
            install.install(conn, sources=all_sources(tmp_path))
        assert not support.schema_exists(conn)


def test_an_upgrade_gives_up_on_a_busy_source_after_its_lock_timeout(
    conn: psycopg.Connection[Any], connect: Any, tmp_path: Any
) -> None:
    conn.execute("CREATE TABLE public.src (id int PRIMARY KEY, g int NOT NULL)")
    conn.execute(
        "SELECT tally.create_rollup('src_by_g', source => 'public.src', group_by => ARRAY['g'], "
        "measures => ARRAY['n = count(*)'])"
    )
    # a newer pgtally: one function file changed, so the upgrade regenerates the triggers
    sql_dir = tmp_path / "sql"
    shutil.copytree(paths.SQL_DIR, sql_dir)
    changed = sql_dir / "functions" / "maintenance_function_sql.sql"
    changed.write_text(changed.read_text(encoding="utf-8") + "-- a newer release\n", encoding="utf-8")
    before = support.ledger(conn)

    writer = connect()
    writer.execute("BEGIN")
    writer.execute("INSERT INTO public.src VALUES (1, 1)")  # holds the source against trigger changes
    with pytest.raises(install.LockTimeout, match=r"LOCK TABLE public\.src .*nothing was changed"):
        install.install(conn, sources=all_sources(sql_dir), lock_timeout="200ms")
    assert support.ledger(conn) == before
    writer.execute("COMMIT")  # the insert was maintained by the triggers the failed upgrade left

    result = install.install(conn, sources=all_sources(sql_dir), lock_timeout="200ms")
    assert result.applied == ["functions/maintenance_function_sql.sql"] and result.regenerated
    assert_exact(conn)

    # inside a caller's transaction the install's settings end with it
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '7s'")
        assert install.install(conn, sources=all_sources(sql_dir), lock_timeout="200ms").applied == []
        assert conn.execute(
            "SELECT current_setting('lock_timeout'), current_setting('check_function_bodies')"
        ).fetchone() == ("7s", "on")

    # waiting for another installer is not cut short by the session's own lock_timeout
    holder = connect()
    holder.execute("SELECT pg_advisory_lock(%s)", (install.ADVISORY_LOCK_KEY,))
    release = threading.Timer(0.5, holder.execute, ("SELECT pg_advisory_unlock_all()",))
    release.start()
    try:
        impatient = connect(options="-c lock_timeout=100ms")
        assert install.install(impatient, sources=all_sources(sql_dir)).applied == []
    finally:
        release.join()

    # the CLI passes --lock-timeout on
    cli = support.run_cli("install", "--help")
    assert "--lock-timeout" in cli.stdout


def test_two_concurrent_installs_both_succeed_with_one_install(empty_dsn: str) -> None:
    barrier = threading.Barrier(2, timeout=30)
    results: list[install.InstallResult] = []
    errors: list[BaseException] = []

    def installer() -> None:
        try:
            with psycopg.connect(empty_dsn, autocommit=True) as conn:
                barrier.wait()
                results.append(install.install(conn))
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=installer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    applied = sorted((r.applied for r in results), key=len)
    assert applied[0] == []
    assert applied[1] == [f.name for f in all_sources()]
    with psycopg.connect(empty_dsn) as conn:
        count = conn.execute("SELECT count(*) FROM tally.install_ledger").fetchone()
        assert count == (len(all_sources()),)


@pytest.mark.slow
def test_built_script_runs_under_psql_and_install_then_does_nothing(
    empty_dsn: str, dist_dir: build.BuildOutput
) -> None:
    text = dist_dir.script.read_text()
    assert text.startswith("-- pgtally")
    assert "SET check_function_bodies = off;" in text.splitlines()[:6]
    run = support.psql_file(empty_dsn, dist_dir.script)
    assert run.returncode == 0, run.stderr
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        assert install.install(conn).applied == []
        assert support.ledger(conn) == {f.name: f.checksum for f in all_sources()}


@pytest.mark.slow
def test_built_script_refuses_a_database_that_has_pgtally(db_dsn: str, dist_dir: build.BuildOutput) -> None:
    run = support.psql_file(db_dsn, dist_dir.script)
    assert run.returncode != 0
    assert "already exists" in run.stderr


def test_extension_script_dumps_every_catalogue_table_but_the_ledger(
    dist_dir: build.BuildOutput,
) -> None:
    text = dist_dir.extension_script.read_text()
    assert text.startswith('\\echo Use "CREATE EXTENSION pgtally" to load this file. \\quit')
    tables = build.catalogue_tables(all_sources())
    assert "install_ledger" not in tables
    for table in tables:
        assert f"pg_extension_config_dump('tally.{table}', '')" in text
    control = dist_dir.control.read_text()
    assert "schema =" not in control
    assert "relocatable = false" in control


@pytest.mark.slow
def test_create_extension_installs_and_drop_extension_removes_schema(
    empty_dsn: str, extension_files: Any
) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pgtally")
        assert install.extension_version(conn) is not None
        names = {row[1] for row in support.tally_functions(conn)}
        expected = {f.path.stem for f in all_sources() if f.name.startswith("functions/")}
        assert {n.split("(")[0].removeprefix("tally.") for n in names} >= expected
        assert install.install(conn).applied == []  # the ledger came with the extension
        conn.execute("DROP EXTENSION pgtally")
        assert not support.schema_exists(conn)


@pytest.mark.slow
def test_uninstall_removes_everything_after_extension_install(empty_dsn: str, extension_files: Any) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pgtally")
        removed = install.uninstall(conn)
        assert "extension pgtally" in removed
        assert not support.schema_exists(conn)
        assert install.extension_version(conn) is None


def test_uninstall_removes_everything_after_plain_install(
    conn: psycopg.Connection[Any],
) -> None:
    event_trigger = "SELECT count(*) FROM pg_catalog.pg_event_trigger WHERE evtname = 'tally_partition_ddl'"
    assert conn.execute(event_trigger).fetchone() == (1,)  # installed by a superuser
    removed = install.uninstall(conn)
    assert removed[-1] == "schema tally"
    assert not support.schema_exists(conn)
    assert conn.execute(event_trigger).fetchone() == (0,)  # went with its function
    assert install.uninstall(conn) == []  # nothing left to remove


def test_uninstall_drops_rollups_their_stats_tables_and_triggers(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("CREATE TABLE public.src (id int PRIMARY KEY, g int NOT NULL, v numeric)")
    conn.execute(
        "SELECT tally.create_rollup('src_by_g', source => 'public.src', "
        "group_by => ARRAY['g'], measures => ARRAY['n = count(*)'])"
    )
    removed = install.uninstall(conn)
    assert any(item.startswith("rollup src_by_g") for item in removed)
    assert conn.execute("SELECT to_regclass('public.src_by_g')").fetchone() == (None,)
    triggers = conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.src'::regclass"
    ).fetchone()
    assert triggers == (0,)
    assert not support.schema_exists(conn)


def test_uninstall_gives_up_on_a_busy_source_after_its_lock_timeout(
    conn: psycopg.Connection[Any], connect: Any
) -> None:
    conn.execute("CREATE TABLE public.src (id int PRIMARY KEY, g int NOT NULL)")
    conn.execute(
        "SELECT tally.create_rollup('src_by_g', source => 'public.src', group_by => ARRAY['g'], "
        "measures => ARRAY['n = count(*)'])"
    )
    writer = connect()
    writer.execute("BEGIN")
    writer.execute("INSERT INTO public.src VALUES (1, 1)")  # holds the source against its triggers' drop
    with pytest.raises(install.LockTimeout, match=r"removing rollup src_by_g .*nothing was changed"):
        install.uninstall(conn, lock_timeout="200ms")
    assert support.schema_exists(conn)
    assert conn.execute("SELECT rollup_name FROM tally.rollups").fetchall() == [("src_by_g",)]
    writer.execute("COMMIT")  # maintained: the failed uninstall left the triggers in place
    assert_exact(conn)

    # inside a caller's transaction, the caller's lock_timeout is back after it
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '7s'")
        assert install.uninstall(conn, lock_timeout="200ms")[0].startswith("rollup src_by_g")
        assert conn.execute("SELECT current_setting('lock_timeout')").fetchone() == ("7s",)
    assert not support.schema_exists(conn)
    assert "--lock-timeout" in support.run_cli("uninstall", "--help").stdout


def test_uninstall_after_the_source_and_its_stats_went_with_a_schema(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE SCHEMA app")
    conn.execute("CREATE TABLE app.src (id int PRIMARY KEY, g int NOT NULL)")
    conn.execute(
        "SELECT tally.create_rollup('app_by_g', source => 'app.src', group_by => ARRAY['g'], "
        "measures => ARRAY['n = count(*)']), "
        "tally.create_rollup('app_n', source => 'app.src', measures => ARRAY['n = count(*)'])"
    )
    conn.execute("SELECT tally.set_slots('app_n', 4)")  # a view over a slot table
    conn.execute("DROP SCHEMA app CASCADE")
    removed = install.uninstall(conn)
    assert {item.split(" (")[0] for item in removed if item.startswith("rollup")} == {
        "rollup app_by_g",
        "rollup app_n",
    }
    assert not support.schema_exists(conn)


def test_cli_install_then_status_json_reports_up_to_date(empty_dsn: str) -> None:
    status = support.run_cli("status", "--json", "--dsn", empty_dsn)
    assert status.returncode == 1  # not installed
    assert json.loads(status.stdout)["installed"] is False

    first = support.run_cli("install", "--dsn", empty_dsn)
    assert first.returncode == 0, first.stderr
    again = support.run_cli("install", "--json", "--dsn", empty_dsn)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["applied"] == []

    status = support.run_cli("status", "--json", "--dsn", empty_dsn)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["installed"] is True
    assert data["up_to_date"] is True
    assert data["installed_version"] == data["harness_version"]


def test_cli_status_exits_1_on_a_changed_migration(db_dsn: str) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE tally.install_ledger SET checksum = 'x' WHERE file_kind = 'migration'")
    status = support.run_cli("status", "--json", "--dsn", db_dsn)
    assert status.returncode == 1
    assert json.loads(status.stdout)["problems"]
    install_run = support.run_cli("install", "--dsn", db_dsn)
    assert install_run.returncode == 1
    assert migrations()[0].name in install_run.stderr.replace("\n", "")


def test_cli_exits_2_when_the_server_is_unreachable() -> None:
    dsn = "host=127.0.0.1 port=1 user=postgres dbname=postgres connect_timeout=3"
    for command in ("install", "status", "uninstall"):
        run = support.run_cli(command, "--dsn", dsn)
        assert run.returncode == 2, (command, run.stdout, run.stderr)
        assert "cannot connect" in run.stderr


def test_cli_usage_error_exits_2() -> None:
    assert support.run_cli("no-such-command").returncode == 2


def test_plan_of_an_installed_database_is_up_to_date(tx: psycopg.Connection[Any]) -> None:
    plan = install.plan(tx)
    assert plan.up_to_date
    assert plan.problems() == []
    tx.execute("DELETE FROM tally.install_ledger WHERE file_kind = 'repeatable'")
    assert [f.kind for f in install.plan(tx).files] == ["repeatable"] * len(
        [f for f in all_sources() if f.kind == "repeatable"]
    )  # rolled back after the test: the shared database keeps its ledger
