"""An embedded PostgreSQL cluster made with initdb/pg_ctl, for the demo and the tests.

The server refuses to run as root: when we are root, every server command runs as
the `postgres` OS user (`runuser -u postgres --`) and the data directory is theirs.
pg_cron is preloaded (with `cron.database_name`) only when pg_cron.so is installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

DEFAULT_DATADIR = Path("/tmp/pgtally-cluster")
DEFAULT_PORT = 54329
DEFAULT_CRON_DATABASE = "pgtally"
SERVER_USER = "postgres"  # OS user running the server when we are root
SUPERUSER = "postgres"  # database superuser made by initdb
DEBIAN_BINDIR = Path("/usr/lib/postgresql/15/bin")


class ClusterError(Exception):
    """initdb/pg_ctl failed; the message carries their output."""


@cache
def bindir() -> Path:
    """PostgreSQL server binaries: $PGTALLY_PG_BINDIR, Debian's 15, else pg_config's."""
    env = os.environ.get("PGTALLY_PG_BINDIR")
    if env:
        return Path(env)
    if (DEBIAN_BINDIR / "pg_ctl").exists():
        return DEBIAN_BINDIR
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        raise ClusterError("no PostgreSQL binaries: install postgresql-15 or set PGTALLY_PG_BINDIR")
    out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def pg_config(option: str) -> str:
    """`pg_config <option>` of the server in bindir() (e.g. --pkglibdir, --sharedir)."""
    exe = bindir() / "pg_config"
    if not exe.exists():
        exe = Path(shutil.which("pg_config") or "pg_config")
    out = subprocess.run([str(exe), option], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def cron_available() -> bool:
    """Is pg_cron installed for this server (pg_cron.so in the package lib dir)?"""
    try:
        return (Path(pg_config("--pkglibdir")) / "pg_cron.so").exists()
    except (OSError, subprocess.CalledProcessError):
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True)
class ClusterStatus:
    running: bool
    datadir: Path
    port: int
    pid: int | None
    dsn: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "running": self.running,
            "datadir": str(self.datadir),
            "port": self.port,
            "pid": self.pid,
            "dsn": self.dsn,
        }


class EmbeddedCluster:
    """One data directory, one server: init() once, start()/stop() as needed."""

    def __init__(
        self,
        datadir: Path | str = DEFAULT_DATADIR,
        port: int = DEFAULT_PORT,
        cron_database: str = DEFAULT_CRON_DATABASE,
    ) -> None:
        self.datadir = Path(datadir).resolve()
        self.port = port
        self.cron_database = cron_database

    # -- paths and connection -------------------------------------------------
    @property
    def logfile(self) -> Path:
        return self.datadir / "pgtally-server.log"

    def dsn(self, dbname: str = "postgres") -> str:
        return make_conninfo(host="127.0.0.1", port=str(self._running_port()), user=SUPERUSER, dbname=dbname)

    def psql_command(self, dbname: str = "postgres") -> str:
        return f'psql "{self.dsn(dbname)}"'

    # -- lifecycle -------------------------------------------------------------
    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb (trust auth, UTF8, C.UTF-8) and write our settings; no-op if done."""
        if self.initialized():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.datadir.chmod(0o700)
        if _is_root():
            shutil.chown(self.datadir, SERVER_USER, SERVER_USER)
        self._run(
            [
                str(bindir() / "initdb"),
                "-D", str(self.datadir),
                "-U", SUPERUSER,
                "--auth=trust",
                "-E", "UTF8",
                "--locale=C.UTF-8",
            ]
        )  # fmt: skip
        self._write_settings()

    def _settings(self) -> dict[str, str]:
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.datadir}'",
            "max_connections": "200",
            "fsync": "on",
        }
        if cron_available():
            settings["shared_preload_libraries"] = "'pg_cron'"
            settings["cron.database_name"] = f"'{self.cron_database}'"
            # jobs connect over the unix socket: no dependence on how localhost resolves
            settings["cron.host"] = f"'{self.datadir}'"
        return settings

    def _write_settings(self) -> None:
        lines = ["", "# --- pgtally embedded cluster ---"]
        lines += [f"{key} = {value}" for key, value in self._settings().items()]
        conf = self.datadir / "postgresql.conf"
        with conf.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")

    def start(self) -> str:
        """Start (initdb first if needed); idempotent. Returns the admin DSN."""
        self.init()
        if not self.status().running:
            self._set_port(self.port)
            self._run(
                [
                    str(bindir() / "pg_ctl"),
                    "-D", str(self.datadir),
                    "-l", str(self.logfile),
                    "-w", "-t", "60",
                    "start",
                ],
                log_on_error=True,
            )  # fmt: skip
        return self.dsn()

    def stop(self) -> None:
        """Stop the server (fast shutdown); no-op when it is not running."""
        if not self.initialized() or not self.status().running:
            return
        self._run([str(bindir() / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"])

    def status(self) -> ClusterStatus:
        pid = self._pid()
        running = pid is not None and self._pg_ctl_status()
        port = self._running_port() if running else self.port
        dsn = self.dsn() if running else None
        return ClusterStatus(running, self.datadir, port, pid if running else None, dsn)

    def ensure_database(self, name: str) -> str:
        """Create database `name` if missing; returns its DSN."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def destroy(self) -> None:
        """Stop and delete the data directory."""
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)

    # -- internals ---------------------------------------------------------------
    def _pid(self) -> int | None:
        pidfile = self.datadir / "postmaster.pid"
        try:
            first = pidfile.read_text(encoding="utf-8").splitlines()[0]
            return int(first)
        except (OSError, ValueError, IndexError):
            return None

    def _running_port(self) -> int:
        # postmaster.pid line 4 holds the port the running server listens on
        try:
            lines = (self.datadir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
            return int(lines[3])
        except (OSError, ValueError, IndexError):
            return self.port

    def _pg_ctl_status(self) -> bool:
        result = self._run([str(bindir() / "pg_ctl"), "-D", str(self.datadir), "status"], check=False)
        return result.returncode == 0

    def _set_port(self, port: int) -> None:
        """Record the port in postgresql.auto.conf so a restart on a new port works."""
        auto = self.datadir / "postgresql.auto.conf"
        text = auto.read_text(encoding="utf-8") if auto.exists() else ""
        kept = [line for line in text.splitlines() if not line.startswith("port = ")]
        kept.append(f"port = {port}")
        auto.write_text("\n".join(kept) + "\n", encoding="utf-8")
        if _is_root():
            shutil.chown(auto, SERVER_USER, SERVER_USER)

    def _run(
        self, argv: list[str], *, check: bool = True, log_on_error: bool = False
    ) -> subprocess.CompletedProcess[str]:
        if _is_root():
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd=self.datadir if self.datadir.exists() else "/",
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )
        if check and result.returncode != 0:
            message = f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            if log_on_error and self.logfile.exists():
                tail = self.logfile.read_text(encoding="utf-8", errors="replace")[-4000:]
                message += f"\n--- {self.logfile} ---\n{tail}"
            raise ClusterError(message)
        return result


def wait_until_ready(dsn: str, timeout: float = 30.0) -> None:
    """Poll until a connection succeeds (for servers we did not start ourselves)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
