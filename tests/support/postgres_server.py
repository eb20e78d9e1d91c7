"""A private PostgreSQL for tests that must stop or restart the database server.

The shared PostgreSQL at 127.0.0.1:5432 belongs to everyone and is never stopped; this server belongs
to the test that started it: its own data directory (made by `initdb`, trust auth, superuser
`postgres`) in a temp dir, a free port on 127.0.0.1, its Unix socket in that temp dir (not in
/var/run/postgresql, where the shared server's is), started with `pg_ctl -w start` and stopped with
`pg_ctl -m fast stop` on its own data directory, i.e. by the PID in *its* postmaster.pid, never by name.

initdb and the postmaster refuse to run as root. Run as root (as CI here is), every server command
runs as the `postgres` system user through `runuser`, and the temp dir is created outside pytest's
tmp_path (which is mode 0700 under /tmp/pytest-of-root, so `postgres` could not reach it) and handed
to that user. Missing binaries follow tests/support/services.py's rule: a failure under CI=true, a skip
elsewhere. Used by the SQL restart test.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa

from tests.support.redis_servers import free_port
from tests.support.services import in_ci, port_open, server_answers

SERVER_USER = "postgres"
"""The unprivileged account the server runs as when the tests run as root."""


def _missing(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: integration services must be available)", pytrace=False)
    pytest.skip(reason)


def postgres_binary(name: str) -> str:
    """The path of a PostgreSQL server executable (initdb, pg_ctl): the Debian layout first
    (/usr/lib/postgresql/<major>/bin, newest major), then PATH. Missing: fail under CI, skip elsewhere."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_major, reverse=True)
    found = next(iter(candidates), None) or shutil.which(name)
    if found is None:
        _missing(f"{name} (PostgreSQL server) is not installed")
    return found


def _major(path: str) -> int:
    version = Path(path).parent.parent.name
    return int(version) if version.isdigit() else 0


def _as_server_user() -> list[str]:
    """The command prefix that drops root to SERVER_USER; empty when not root."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser") or ("/usr/sbin/runuser" if Path("/usr/sbin/runuser").exists() else None)
    if runuser is None:
        _missing("runuser is not installed (needed to run PostgreSQL as a non-root user)")
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        _missing(f"there is no {SERVER_USER!r} system user to run a private PostgreSQL as")
    return [runuser, "-u", SERVER_USER, "--"]


class PrivatePostgres:
    """One private PostgreSQL: `install()` once, then start, stop and start again on the same port and
    data directory, as many times as a test likes."""

    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        self.base_dir = base_dir
        self.datadir = base_dir / "data"
        self.port = port or free_port()

    @property
    def server_url(self) -> str:
        """The server URL of the `postgres` maintenance database (superuser postgres, trust)."""
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def log(self) -> Path:
        return self.base_dir / "server.log"

    @property
    def pid(self) -> int | None:
        """The postmaster's PID, from this server's own postmaster.pid (first line)."""
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    @property
    def running(self) -> bool:
        pid = self.pid
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _run(self, *command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        # Output to a file (pg_ctl -l), never to a pipe: the postmaster would inherit it and keep it open.
        return subprocess.run(
            [*_as_server_user(), *command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def install(self) -> None:
        """initdb a fresh data directory (superuser postgres, trust auth, no fsync: a throwaway)."""
        initdb = postgres_binary("initdb")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base_dir, SERVER_USER, SERVER_USER)
        done = self._run(
            initdb, "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", timeout=120
        )
        if done.returncode != 0:
            raise AssertionError(f"initdb failed ({done.returncode}):\n{done.stderr[-2000:]}")

    def start(self, timeout: float = 30.0) -> None:
        """Start (or restart, same port and data) and wait until it answers a query."""
        if self.running:
            return
        options = f"-p {self.port} -k {self.base_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        done = self._run(
            postgres_binary("pg_ctl"),
            "-D", str(self.datadir),
            "-o", options,
            "-l", str(self.log),
            "-t", str(int(timeout)),
            "-w",
            "start",
            timeout=timeout + 10,
        )  # fmt: skip
        if done.returncode == 0:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if port_open("127.0.0.1", self.port, timeout=0.2) and server_answers(self.server_url):
                    return
                time.sleep(0.1)
        log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        self.stop()
        raise AssertionError(
            f"private PostgreSQL on port {self.port} did not start ({done.returncode}): {done.stderr}\n{log}"
        )

    def stop(self, timeout: float = 60.0) -> None:
        """`pg_ctl -m fast stop` on this data directory (its own postmaster.pid) and wait for the exit;
        SIGKILL of that same PID if it lingers."""
        if not self.running:
            return
        done = self._run(
            postgres_binary("pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-t", str(int(timeout)), "-w", "stop",
            timeout=timeout + 10,
        )  # fmt: skip
        if done.returncode != 0 and self.running and (pid := self.pid) is not None:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self.running and time.monotonic() < deadline:
                time.sleep(0.1)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` (UTF8); returns its URL."""
        admin = sa.create_engine(self.server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")
        finally:
            admin.dispose()
        return self.url(name)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """initdb and start a private PostgreSQL in a fresh temp dir; stop it (its own pg_ctl, its own PID
    file) and remove the dir on exit, whatever happened."""
    base_dir = Path(tempfile.mkdtemp(prefix="nightwatch-pg-"))
    server = PrivatePostgres(base_dir)
    try:
        server.install()
        for attempt in range(3):
            try:
                server.start()
                break
            except AssertionError:
                # Another process may have taken the free port between probe and bind.
                if attempt == 2:
                    raise
                server.port = free_port()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)
