"""Redis backends for the LeaderLock contract suite: the shared Redis, and Redlock over three private masters.

The shared Redis (127.0.0.1:6379) is used with a key unique to the test, deleted afterwards. The three
private masters are started on first use and stopped once, at the end of the session, by PID.
"""

from __future__ import annotations

import atexit
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import redis

from nightwatch.adapters.redlock import RedlockLeaderLock
from nightwatch.domain.ports import LeaderLock
from tests.support.redis_servers import RedisServers, redis_server_binary, require_shared_redis

LockPair = tuple[LeaderLock, LeaderLock]


class PrivateMasters:
    """Three private redis-servers shared by the whole session, started lazily."""

    def __init__(self, count: int = 3) -> None:
        self.count = count
        self._group: RedisServers | None = None

    def urls(self) -> list[str]:
        if self._group is None:
            redis_server_binary()  # fail (CI) or skip with a reason when it is not installed
            group = RedisServers(self.count, Path(tempfile.mkdtemp(prefix="nightwatch-redlock-")))
            group.start()
            self._group = group
            atexit.register(group.stop)  # in case the session fixture below was not collected
        return self._group.urls

    def stop(self) -> None:
        if self._group is not None:
            self._group.stop()
            self._group = None


PRIVATE_MASTERS = PrivateMasters()


@pytest.fixture(scope="session", autouse=True)
def stop_private_redis_masters() -> Iterator[None]:
    """Import this into a test module that uses the redlock-3 backend: stops the masters at session end."""
    yield
    PRIVATE_MASTERS.stop()


@contextmanager
def _lock_pair(urls: Sequence[str], ttl: float) -> Iterator[LockPair]:
    key = f"nightwatch:test:leader:{uuid.uuid4().hex}"
    a = RedlockLeaderLock.from_urls(urls, owner="replica-a", key=key, ttl_seconds=ttl)
    b = RedlockLeaderLock.from_urls(urls, owner="replica-b", key=key, ttl_seconds=ttl)
    try:
        yield (a, b)
    finally:
        a.close()
        b.close()
        for url in urls:
            client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
            try:
                client.delete(key)
            except (redis.RedisError, OSError):
                pass  # a master a test stopped on purpose holds nothing worth cleaning
            finally:
                client.close()


def redis_lock_backends(ttl: float) -> dict[str, Callable[[], AbstractContextManager[LockPair]]]:
    """The contract suite's Redis backends, keyed by name."""

    def shared() -> AbstractContextManager[LockPair]:
        return _lock_pair([require_shared_redis()], ttl)

    def redlock3() -> AbstractContextManager[LockPair]:
        return _lock_pair(PRIVATE_MASTERS.urls(), ttl)

    return {"redis": shared, "redlock-3": redlock3}
