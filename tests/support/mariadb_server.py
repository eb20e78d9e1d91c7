"""A private `mariadbd` for tests that must stop, kill or restart the database server.

The shared MariaDB at 127.0.0.1:3306 belongs to everyone and is never stopped; this server belongs to
the test that started it: its own data directory (made by `mariadb-install-db` in a temp dir), a free
port, stopped by the PID this process started (never by name). It runs on compiled-in defaults
(`--no-defaults`), like the shared server: binary logging off, so the system tests' audit trigger (a
user variable, UNIX_TIMESTAMP) needs no extra privilege; `--skip-grant-tables` so root needs no password
over TCP. Used by the SQL restart test and the dependency-fault system tests.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.redis_servers import free_port
from tests.support.services import in_ci, port_open, server_answers


def mariadb_binary(name: str, *fallbacks: str) -> str:
    """The path of a MariaDB executable; missing, it fails the test under CI=true and skips it elsewhere."""
    found = shutil.which(name) or next((f for f in fallbacks if Path(f).exists()), None)
    if found is None:
        reason = f"{name} is not installed"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: integration services must be available)", pytrace=False)
        pytest.skip(reason)
    return found


class PrivateMariaDB:
    """One private mariadbd: `install()` once, then start, stop (SIGTERM) and start again on the same
    port and data directory, as many times as a test likes."""

    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        self.base_dir = base_dir
        self.datadir = base_dir / "data"
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def server_url(self) -> str:
        """The server URL without a database (root, no password)."""
        return f"mysql+pymysql://root@127.0.0.1:{self.port}"

    def url(self, database: str) -> str:
        return f"{self.server_url}/{database}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def error_log(self) -> Path:
        return self.base_dir / "error.log"

    def install(self) -> None:
        """Create the system tables in a fresh data directory."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                mariadb_binary("mariadb-install-db", "/usr/bin/mariadb-install-db"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start (or restart, same port and data) and wait until it answers a query."""
        if self.running:
            return
        self.process = subprocess.Popen(
            [
                mariadb_binary("mariadbd", "/usr/sbin/mariadbd"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.base_dir / 'mysqld.sock'}",
                f"--pid-file={self.base_dir / 'mysqld.pid'}",
                f"--log-error={self.error_log}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-grant-tables",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not (port_open("127.0.0.1", self.port, timeout=0.2) and server_answers(self.server_url)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.error_log.read_text(errors="replace")[-2000:] if self.error_log.exists() else ""
                self.stop()
                raise AssertionError(f"private mariadbd on port {self.port} did not start:\n{log}")
            time.sleep(0.1)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM by PID and wait until it has exited (SIGKILL, still our own PID, if it lingers)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL by PID: a crash (InnoDB recovers on the next start)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` (utf8mb4); returns its URL."""
        admin = sa.create_engine(self.server_url)
        try:
            with admin.begin() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        finally:
            admin.dispose()
        return self.url(name)


@contextmanager
def private_mariadb(base_dir: Path) -> Iterator[PrivateMariaDB]:
    """Install and start a private mariadbd under `base_dir`; stop it (by PID) on exit, whatever happened."""
    server = PrivateMariaDB(base_dir)
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
    try:
        yield server
    finally:
        server.stop()
