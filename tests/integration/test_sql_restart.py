"""A database server restart under a live repository: the next call works without rebuilding anything.

Run on MariaDB and on PostgreSQL, with the same assertions. Starts a private server
(tests/support/mariadb_server.py: a `mariadbd`; tests/support/postgres_server.py: an initdb'd cluster
under `pg_ctl`; each with its own data directory and free port, in a temp dir), stops and restarts it
by the PID it started (never a shared server, never by name), and checks that pooled connections
killed by the restart are noticed (pre-ping) instead of surfacing as errors. The repository has
retries, and a retry would also get past a dead pooled connection (SQLAlchemy invalidates the pool on
a disconnect), so the calls after a restart must succeed at the first attempt: no retry logged.
Without pre-ping each of them fails once and is retried, and the test fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nightwatch.adapters.sql import DbRetry, SqlTaskRepository, create_engine_for, init_database
from nightwatch.domain.errors import RetryableError
from nightwatch.domain.model import TaskStatus
from nightwatch.domain.ports import NewTask
from tests.support.mariadb_server import PrivateMariaDB
from tests.support.mariadb_server import private_mariadb as private_mariadb_server
from tests.support.postgres_server import PrivatePostgres
from tests.support.postgres_server import private_postgres as private_postgres_server

NOW = datetime(2026, 3, 1, tzinfo=UTC)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(params=["mariadb", "postgresql"])
def private_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrivateMariaDB | PrivatePostgres]:
    server: PrivateMariaDB | PrivatePostgres
    with private_mariadb_server(tmp_path) if request.param == "mariadb" else private_postgres_server() as server:
        server.create_database("nightwatch")
        yield server


@contextmanager
def at_first_attempt(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The block's repository calls succeed without a retry (nightwatch.adapters.sql.retry logs each)."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="nightwatch.adapters.sql.retry"):
        yield
    retries = [r.getMessage() for r in caplog.records if r.name == "nightwatch.adapters.sql.retry"]
    assert retries == [], "a dead pooled connection reached a query (pre-ping should have replaced it)"


def test_the_repository_survives_a_server_restart(
    private_server: PrivateMariaDB | PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    url = private_server.url("nightwatch")
    init_database(url)
    repo = SqlTaskRepository(create_engine_for(url), retry=DbRetry(attempts=3, base_delay=0.1))
    try:
        task = repo.add(NewTask("survivor", "default", "{}"), NOW)
        epoch = repo.advance_epoch()
        assert repo.get(task.id).status is TaskStatus.NORMAL

        # A restart between two calls: the pooled connection is dead but nobody has noticed yet.
        private_server.stop()
        private_server.start()
        with at_first_attempt(caplog):
            assert repo.get(task.id).name == "survivor"

        # A call while the server is down: a quick, one-line RetryableError.
        private_server.stop()
        started = time.monotonic()
        with pytest.raises(RetryableError) as down:
            repo.get(task.id)
        assert time.monotonic() - started < 10 and "\n" not in str(down.value)

        private_server.start()
        # Same repository, same engine: the pool's dead connections are replaced transparently.
        with at_first_attempt(caplog):
            assert repo.get(task.id).name == "survivor"
            assert repo.apply([repo.get(task.id).start("survivor", NOW)], epoch=epoch).applied == (task.id,)
    finally:
        repo.close()
