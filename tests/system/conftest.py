"""System-test fixtures and options.

`cluster` is the one running `Cluster` of a test module (module scope): the module says how it differs
(fewer replicas, shorter lease, a private MariaDB...) by overriding `cluster_options`. `nw` is one
`nightwatch` working directory and environment whose service is killed afterwards; a module adds
environment variables by overriding `nw_env`.

Under --long, the long variants get a long pytest timeout: a CI run keeps each module's own
`pytest.mark.timeout`; a long run (200 crash iterations, a 20,000-task soak) would hit it, so it is
replaced (prepended: the closest marker wins) by `LONG_RUN_TIMEOUT`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.nwprocess import Nightwatch
from tests.support.redis_servers import redis_server_binary

LONG_RUN_TIMEOUT = 4 * 3600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--long"):
        return
    for item in items:
        if item.get_closest_marker("system") is not None:
            item.add_marker(pytest.mark.timeout(LONG_RUN_TIMEOUT), append=False)


@pytest.fixture(scope="module")
def cluster_options() -> dict[str, Any]:
    """Keyword arguments for the module's `Cluster` (its defaults when not overridden)."""
    return {}


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, cluster_options: dict[str, Any]
) -> Iterator[Cluster]:
    redis_server_binary()  # fail under CI=true, skip elsewhere, when it is missing (MariaDB: in start())
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    running = Cluster(Path(tmp_path_factory.mktemp(name)), **cluster_options)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def nw_env() -> dict[str, str]:
    """Environment variables the module's `nw` adds to nwprocess's defaults."""
    return {}


@pytest.fixture
def nw(tmp_path: Path, nw_env: dict[str, str]) -> Iterator[Nightwatch]:
    instance = Nightwatch(tmp_path, env=nw_env)
    yield instance
    instance.kill()
