"""The SQL sources: versioned migrations and repeatable files, with checksums.

Migrations: sql/migrations/V<NNNN>__<name>.sql, applied once in numeric order.
Repeatables: sql/functions/*.sql, sql/views/*.sql, then sql/triggers/*.sql, in file-name order,
re-applied when their checksum differs from the ledger.
A file's name in the ledger is its path relative to sql/, e.g. functions/x.sql.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.paths import SQL_DIR

Kind = Literal["migration", "repeatable"]

MIGRATION_RE = re.compile(r"^V(?P<number>\d+)__(?P<name>\w+)\.sql$")
REPEATABLE_DIRS = ("functions", "views", "triggers")


class SourceError(Exception):
    """The sql/ tree is malformed (bad migration name, duplicate number)."""


@dataclass(frozen=True)
class SqlFile:
    name: str  # path relative to sql/, as recorded in tally.install_ledger
    kind: Kind
    path: Path
    checksum: str  # sha256 hex of the file's bytes

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sql_file(path: Path, sql_dir: Path, kind: Kind) -> SqlFile:
    return SqlFile(
        name=path.relative_to(sql_dir).as_posix(),
        kind=kind,
        path=path,
        checksum=checksum(path),
    )


def migrations(sql_dir: Path = SQL_DIR) -> list[SqlFile]:
    """Versioned migrations in numeric order; refuses badly named or duplicate ones."""
    numbered: dict[int, Path] = {}
    for path in (sql_dir / "migrations").glob("*.sql"):
        match = MIGRATION_RE.match(path.name)
        if match is None:
            raise SourceError(f"{path}: migration files are named V<NNNN>__<name>.sql")
        number = int(match["number"])
        if number in numbered:
            raise SourceError(f"{path} and {numbered[number]} share version {number}")
        numbered[number] = path
    return [_sql_file(numbered[n], sql_dir, "migration") for n in sorted(numbered)]


def repeatables(sql_dir: Path = SQL_DIR) -> list[SqlFile]:
    """Repeatable files: functions/ then triggers/, each in file-name order."""
    files: list[SqlFile] = []
    for sub in REPEATABLE_DIRS:
        for path in sorted((sql_dir / sub).glob("*.sql"), key=lambda p: p.name):
            files.append(_sql_file(path, sql_dir, "repeatable"))
    return files


def all_sources(sql_dir: Path = SQL_DIR) -> list[SqlFile]:
    """Every file in install order: migrations, then repeatables."""
    return migrations(sql_dir) + repeatables(sql_dir)
