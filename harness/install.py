"""Install, plan and uninstall pgtally in one database.

install(): in ONE transaction under a fixed advisory lock, with check_function_bodies
off: refuse a `tally` schema without a ledger and any applied migration whose file
changed; apply pending migrations in order; re-apply repeatable files whose checksum
differs from the ledger; record each in tally.install_ledger; then, when something
was applied and tally.regenerate_all_rollups() exists, call it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql

from harness import paths
from harness.sources import SqlFile, all_sources

# pg_advisory_xact_lock key shared by every installer (and the built psql script):
# the bytes of "pgtally" as a bigint.
ADVISORY_LOCK_KEY = int.from_bytes(b"pgtally", "big")
LEDGER = "tally.install_ledger"


class InstallError(Exception):
    """pgtally cannot be installed into this database as it stands."""


class LedgerMissing(InstallError):
    """Schema tally exists but has no install ledger: it was not made by pgtally."""


class MigrationChanged(InstallError):
    """An applied migration's file differs from what was applied."""


class UnknownMigration(InstallError):
    """The ledger lists a migration this pgtally does not have (a newer install?)."""


class LockTimeout(InstallError):
    """A table lock the install needs was held longer than its lock timeout."""


# How long an install waits for a table lock (a source's, to regenerate its triggers; a
# stats table's, for a migration that alters it) before it gives up and changes nothing:
# a lock request that waits also blocks every later writer of that table.
DEFAULT_LOCK_TIMEOUT = "30s"


@dataclass
class Plan:
    migrations: list[SqlFile] = field(default_factory=list)  # pending, in order
    repeatables: list[SqlFile] = field(default_factory=list)  # new or changed
    changed_migrations: list[str] = field(default_factory=list)
    unknown_migrations: list[str] = field(default_factory=list)
    schema_exists: bool = False
    ledger_exists: bool = False

    @property
    def files(self) -> list[SqlFile]:
        return self.migrations + self.repeatables

    @property
    def up_to_date(self) -> bool:
        return self.ledger_exists and not self.files and not self.problems()

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.schema_exists and not self.ledger_exists:
            found.append("schema tally exists but has no tally.install_ledger")
        found += [f"applied migration changed: {name}" for name in self.changed_migrations]
        found += [f"applied migration unknown here: {name}" for name in self.unknown_migrations]
        return found


@dataclass(frozen=True)
class InstallResult:
    version: str
    applied: list[str]  # ledger names of the files applied, in order
    regenerated: bool  # tally.regenerate_all_rollups() was called


def _exists(conn: psycopg.Connection[Any], query: LiteralString, *args: object) -> bool:
    return conn.execute(query, args).fetchone() is not None


def _schema_exists(conn: psycopg.Connection[Any], name: str = "tally") -> bool:
    return _exists(conn, "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", name)


def _relation_exists(conn: psycopg.Connection[Any], qualified: str) -> bool:
    row = conn.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()
    return bool(row and row[0])


def _function_exists(conn: psycopg.Connection[Any], schema: str, name: str) -> bool:
    return _exists(
        conn,
        """SELECT 1 FROM pg_catalog.pg_proc p
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = %s AND p.proname = %s""",
        schema,
        name,
    )


def plan(conn: psycopg.Connection[Any], sources: Sequence[SqlFile] | None = None) -> Plan:
    """What install() would do now (reads only; take the lock first to act on it)."""
    files = list(all_sources() if sources is None else sources)
    result = Plan(schema_exists=_schema_exists(conn))
    result.ledger_exists = _relation_exists(conn, LEDGER)
    ledger: dict[str, tuple[str, str]] = {}
    if result.ledger_exists:
        rows = conn.execute(f"SELECT file_name, file_kind, checksum FROM {LEDGER}").fetchall()
        ledger = {name: (kind, digest) for name, kind, digest in rows}
    known = {f.name for f in files}
    for f in files:
        entry = ledger.get(f.name)
        if f.kind == "migration":
            if entry is None:
                result.migrations.append(f)
            elif entry[1] != f.checksum:
                result.changed_migrations.append(f.name)
        elif entry is None or entry[1] != f.checksum:
            result.repeatables.append(f)
    result.unknown_migrations = sorted(
        name for name, (kind, _) in ledger.items() if kind == "migration" and name not in known
    )
    return result


def _record(conn: psycopg.Connection[Any], f: SqlFile, version: str) -> None:
    conn.execute(
        f"""INSERT INTO {LEDGER} (file_name, file_kind, checksum, pgtally_version)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (file_name) DO UPDATE
               SET checksum = EXCLUDED.checksum,
                   pgtally_version = EXCLUDED.pgtally_version,
                   applied_at = pg_catalog.now(),
                   applied_by = current_user""",
        (f.name, f.kind, f.checksum, version),
    )


def _refuse(p: Plan) -> None:
    if p.schema_exists and not p.ledger_exists:
        raise LedgerMissing(
            "schema tally exists but has no tally.install_ledger: it was not created by "
            "pgtally; rename or drop it before installing"
        )
    if p.changed_migrations:
        raise MigrationChanged(
            "applied migration(s) changed since they were applied: "
            + ", ".join(p.changed_migrations)
            + " (a released migration is never edited: add a new one)"
        )
    if p.unknown_migrations:
        raise UnknownMigration(
            "the database has migration(s) this pgtally does not know: "
            + ", ".join(p.unknown_migrations)
            + " (is a newer pgtally installed?)"
        )


def install(
    conn: psycopg.Connection[Any],
    *,
    sources: Sequence[SqlFile] | None = None,
    version: str | None = None,
    lock_timeout: str = DEFAULT_LOCK_TIMEOUT,
) -> InstallResult:
    """Apply what is pending in one transaction; returns what was applied.

    Works with autocommit or not: the work runs inside conn.transaction() and is
    committed when it ends (a savepoint, if the caller already has a transaction open).
    A table lock that does not come within lock_timeout (a value of PostgreSQL's
    lock_timeout setting: "30s", "2min"; a bare number is milliseconds; "0" waits for ever)
    raises LockTimeout, and nothing is changed. Waiting for another
    installer does not count: its advisory lock is taken before the timeout is set.
    """
    version = version or paths.version()
    applied: list[str] = []
    regenerated = False
    applying = "the rollups' triggers"  # what the install is at, for a lock timeout's message
    try:
        with _installer_transaction(conn, lock_timeout):
            conn.execute("SET LOCAL check_function_bodies = off")
            todo = plan(conn, sources)  # after the lock: sees what a racing installer did
            _refuse(todo)
            for f in todo.files:
                applying = f.name
                conn.execute(cast(LiteralString, f.text))
                _record(conn, f, version)
                applied.append(f.name)
            if applied and _function_exists(conn, "tally", "regenerate_all_rollups"):
                applying = "tally.regenerate_all_rollups() (the rollups' triggers)"
                conn.execute("SELECT tally.regenerate_all_rollups()")
                regenerated = True
            if applied and _function_exists(conn, "tally", "record_function_fingerprints"):
                conn.execute("SELECT tally.record_function_fingerprints()")  # for schema drift checks
    except psycopg.errors.LockNotAvailable as exc:
        raise _lock_timeout_error(exc, lock_timeout, f"applying {applying}", "install") from exc
    return InstallResult(version, applied, regenerated)


@contextmanager
def _installer_transaction(conn: psycopg.Connection[Any], lock_timeout: str) -> Iterator[None]:
    """One transaction (a savepoint in a caller's) that first waits for any other installer
    or uninstaller, however long, then bounds every table lock wait by lock_timeout. At its
    end it puts lock_timeout and check_function_bodies (which install turns off) back as
    they were: in a caller's open transaction, a SET LOCAL would outlast the savepoint. (On
    an error the savepoint's rollback puts them back.)"""
    with conn.transaction():
        before = conn.execute(
            "SELECT pg_catalog.current_setting('check_function_bodies'), "
            "pg_catalog.current_setting('lock_timeout')"
        ).fetchone()
        assert before is not None
        conn.execute("SET LOCAL lock_timeout = 0")
        conn.execute("SELECT pg_catalog.pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (lock_timeout,))
        yield
        conn.execute(
            "SELECT pg_catalog.set_config('check_function_bodies', %s, true), "
            "pg_catalog.set_config('lock_timeout', %s, true)",
            before,
        )


def _lock_timeout_error(
    exc: psycopg.errors.LockNotAvailable, lock_timeout: str, doing: str, command: str
) -> LockTimeout:
    """What a lock timeout of `pgtally install` or `uninstall` tells its user."""
    waiting = (exc.diag.context or "").split("\n")[0]  # the statement that waited, if known
    change = "alter" if command == "install" else "alter or drop"
    return LockTimeout(
        f"gave up waiting for a lock after lock_timeout = {lock_timeout}, {doing}"
        + (f" ({waiting})" if waiting else "")
        + f": nothing was changed. A long transaction holds a table the {command} must {change} "
        "(a rollup source, for its triggers, or a stats table); retry when it has ended, or give "
        "a longer --lock-timeout"
    )


def installed_version(conn: psycopg.Connection[Any]) -> str | None:
    """The version that last applied a file (None when pgtally is not installed)."""
    if not _relation_exists(conn, LEDGER):
        return None
    row = conn.execute(
        f"SELECT pgtally_version FROM {LEDGER} ORDER BY applied_at DESC, file_name DESC LIMIT 1"
    ).fetchone()
    return None if row is None else str(row[0])


def extension_version(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pgtally'").fetchone()
    return None if row is None else str(row[0])


def _tally_triggers(conn: psycopg.Connection[Any]) -> list[str]:
    """Triggers on tables outside schema tally that call a function in schema tally."""
    rows = conn.execute(
        """SELECT format('trigger %I on %s', t.tgname, t.tgrelid::regclass)
             FROM pg_catalog.pg_trigger t
             JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
             JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
            WHERE NOT t.tgisinternal
              AND p.pronamespace = 'tally'::regnamespace
              AND c.relnamespace <> 'tally'::regnamespace
            ORDER BY 1"""
    ).fetchall()
    return [r[0] for r in rows]


def uninstall(conn: psycopg.Connection[Any], *, lock_timeout: str = DEFAULT_LOCK_TIMEOUT) -> list[str]:
    """Remove pgtally: rollups (stats tables, triggers), cron jobs, then the schema.

    Returns a human-readable list of what was removed. Does nothing (returns []) when
    pgtally is not installed. One transaction: a table lock that does not come within
    lock_timeout (as for install) raises LockTimeout, and nothing is removed.
    """
    removed: list[str] = []
    removing = "pgtally"  # what the uninstall is at, for a lock timeout's message
    try:
        with _installer_transaction(conn, lock_timeout):
            is_extension = extension_version(conn) is not None
            if not is_extension and not _schema_exists(conn):
                return removed
            if _relation_exists(conn, "tally.rollups"):
                triggers = _tally_triggers(conn)
                rollups = conn.execute(
                    "SELECT rollup_name, stats_table::text FROM tally.rollups ORDER BY rollup_name"
                ).fetchall()
                if rollups and _function_exists(conn, "tally", "drop_rollup"):
                    for name, stats_table in rollups:
                        removing = f"rollup {name}"
                        conn.execute("SELECT tally.drop_rollup(%s)", (name,))
                        removed.append(f"rollup {name} (stats table {stats_table})")
                    removed += [t for t in triggers if t not in _tally_triggers(conn)]
                elif rollups:
                    removed += [f"rollup {name} (stats table {st} kept)" for name, st in rollups]
            if _schema_exists(conn, "cron") and _relation_exists(conn, "cron.job"):
                jobs = conn.execute(
                    "SELECT jobid, jobname FROM cron.job WHERE jobname LIKE %s ORDER BY 1",
                    ("pgtally:%",),
                ).fetchall()
                for jobid, jobname in jobs:
                    removing = f"cron job {jobname}"
                    conn.execute("SELECT cron.unschedule(%s::bigint)", (jobid,))
                    removed.append(f"cron job {jobname}")
            if is_extension:
                removing = "extension pgtally"
                conn.execute("DROP EXTENSION pgtally CASCADE")
                removed.append("extension pgtally")
            if _schema_exists(conn):
                removing = "schema tally"
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier("tally")))
                removed.append("schema tally")
            elif is_extension:
                removed.append("schema tally")
    except psycopg.errors.LockNotAvailable as exc:
        raise _lock_timeout_error(exc, lock_timeout, f"removing {removing}", "uninstall") from exc
    return removed
