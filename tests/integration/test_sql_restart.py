"""A MariaDB restart under a live repository: the next call works without rebuilding anything.

Starts a private `mariadbd` (tests/mariadb_server.py: its own datadir and port, in a temp dir),
stops and restarts it by the PID this test started (never the shared server, never by name), and
checks that pooled connections killed by the restart are noticed (pre-ping) instead of surfacing as
errors.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nightwatch.adapters.sql import DbRetry, SqlTaskRepository, create_engine_for, init_database
from nightwatch.domain.errors import RetryableError
from nightwatch.domain.model import TaskStatus
from nightwatch.domain.ports import NewTask
from tests.support.mariadb_server import PrivateMariaDB
from tests.support.mariadb_server import private_mariadb as private_mariadb_server

NOW = datetime(2026, 3, 1, tzinfo=UTC)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def private_mariadb(tmp_path: Path) -> Iterator[PrivateMariaDB]:
    with private_mariadb_server(tmp_path) as server:
        server.create_database("nightwatch")
        yield server


def test_the_repository_survives_a_server_restart(private_mariadb: PrivateMariaDB) -> None:
    url = private_mariadb.url("nightwatch")
    init_database(url)
    repo = SqlTaskRepository(create_engine_for(url), retry=DbRetry(attempts=3, base_delay=0.1))
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
