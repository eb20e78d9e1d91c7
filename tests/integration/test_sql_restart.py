"""A MariaDB restart under a live repository: the next call works without rebuilding anything.

Starts a private `mariadbd` (its own datadir and port, in a temp dir), stops and restarts it by
the PID this test started (never the shared server, never by name), and checks that pooled
connections killed by the restart are noticed (pre-ping) instead of surfacing as errors.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from nightwatch.adapters.sql import RetryPolicy, SqlTaskRepository, create_engine_for, init_database
from nightwatch.domain.errors import RetryableError
from nightwatch.domain.model import TaskStatus
from nightwatch.domain.ports import NewTask
from tests.services import in_ci, port_open

NOW = datetime(2026, 3, 1, tzinfo=UTC)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def _binary(name: str, *fallbacks: str) -> str:
    found = shutil.which(name) or next((f for f in fallbacks if Path(f).exists()), None)
    if found is None:
        reason = f"{name} is not installed"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateMariaDB:
    datadir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/nightwatch"

    def start(self) -> None:
        run = self.datadir.parent
        self.process = subprocess.Popen(
            [
                _binary("mariadbd", "/usr/sbin/mariadbd"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={run / 'mysqld.sock'}",
                f"--pid-file={run / 'mysqld.pid'}",
                f"--log-error={run / 'error.log'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-grant-tables",
                "--innodb-buffer-pool-size=16M",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", self.port, timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (run / "error.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"private mariadbd did not start:\n{log}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()  # our own PID only
                self.process.wait()
        self.process = None


@pytest.fixture
def private_mariadb(tmp_path: Path) -> Iterator[PrivateMariaDB]:
    datadir = tmp_path / "data"
    subprocess.run(
        [
            _binary("mariadb-install-db", "/usr/bin/mariadb-install-db"),
            "--no-defaults",
            f"--datadir={datadir}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = PrivateMariaDB(datadir, _free_port())
    server.start()
    try:
        admin = sa.create_engine(server.url.rsplit("/", 1)[0])
        with admin.begin() as conn:
            conn.exec_driver_sql("CREATE DATABASE nightwatch CHARACTER SET utf8mb4")
        admin.dispose()
        yield server
    finally:
        server.stop()


def test_the_repository_survives_a_server_restart(private_mariadb: PrivateMariaDB) -> None:
    init_database(private_mariadb.url)
    repo = SqlTaskRepository(create_engine_for(private_mariadb.url), retry=RetryPolicy(attempts=3, base_delay=0.1))
    try:
        task = repo.add(NewTask("survivor", "default", "{}"), NOW)
        epoch = repo.advance_epoch()
        assert repo.get(task.id).status is TaskStatus.NORMAL

        # A restart between two calls: the pooled connection is dead but nobody has noticed yet.
        private_mariadb.stop()
        private_mariadb.start()
        assert repo.get(task.id).name == "survivor"

        # A call while the server is down: a quick, one-line RetryableError.
        private_mariadb.stop()
        started = time.monotonic()
        with pytest.raises(RetryableError) as down:
            repo.get(task.id)
        assert time.monotonic() - started < 10 and "\n" not in str(down.value)

        private_mariadb.start()
        # Same repository, same engine: the pool's dead connections are replaced transparently.
        assert repo.get(task.id).name == "survivor"
        assert repo.apply([repo.get(task.id).start("survivor", NOW)], epoch=epoch).applied == (task.id,)
    finally:
        repo.close()
