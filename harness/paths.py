"""Where things live: the repository, its SQL sources, and the pgtally version."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

PACKAGE_NAME = "pgtally"
REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"
PYPROJECT = REPO_ROOT / "pyproject.toml"


@cache
def version() -> str:
    """The pgtally version: installed metadata, else `version` in pyproject.toml."""
    try:
        return metadata.version(PACKAGE_NAME)
    except metadata.PackageNotFoundError:
        return version_from_pyproject(PYPROJECT)


def version_from_pyproject(path: Path) -> str:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return str(data["project"]["version"])
