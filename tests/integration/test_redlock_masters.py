"""RedlockLeaderLock against three private redis-servers that the tests kill, freeze and restart.

The point is timing: with dead (refused) or frozen (SIGSTOP: connects, never answers) masters, a
renewal must still decide well within the TTL, which holds only if the clients have short timeouts
and no hidden retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from nightwatch.adapters.redlock import RedlockLeaderLock
from tests.support.redis_servers import RedisServers, redis_servers

TTL = 2.0
BUDGET = 0.5  # seconds a call may take with masters down: a quarter of the TTL
KEY = "nightwatch:test:leader"


@pytest.fixture
def masters(tmp_path: Path) -> Iterator[RedisServers]:
    with redis_servers(3, tmp_path) as group:
        yield group


@pytest.fixture
def make_lock(masters: RedisServers) -> Iterator[Callable[[str], RedlockLeaderLock]]:
    made: list[RedlockLeaderLock] = []

    def make(owner: str) -> RedlockLeaderLock:
        lock = RedlockLeaderLock.from_urls(masters.urls, owner=owner, key=KEY, ttl_seconds=TTL)
        made.append(lock)
        return lock

    yield make
    for lock in made:
        lock.close()


def timed(call: Callable[[], bool]) -> tuple[bool, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def value_on(masters: RedisServers, index: int) -> bytes | None:
    client = redis.Redis(port=masters[index].port, socket_timeout=1.0)
    try:
        value = client.get(KEY)
        assert value is None or isinstance(value, bytes)
        return value
    finally:
        client.close()


def test_one_killed_master_of_three_still_acquires_and_renews(
    masters: RedisServers, make_lock: Callable[[str], RedlockLeaderLock]
) -> None:
    masters[0].kill()
    lock = make_lock("a")
    acquired, acquire_took = timed(lock.acquire)
    renewed, renew_took = timed(lock.renew)
    assert acquired and renewed and lock.is_held()
    assert acquire_took < BUDGET and renew_took < BUDGET, (acquire_took, renew_took)
    assert [value_on(masters, i) for i in (1, 2)] == [b"a", b"a"]


def test_two_killed_masters_fail_renewal_and_acquire_quickly(
    masters: RedisServers, make_lock: Callable[[str], RedlockLeaderLock]
) -> None:
    lock = make_lock("a")
    assert lock.acquire()
    masters[0].kill()
    masters[1].kill()
    renewed, renew_took = timed(lock.renew)
    assert not renewed and not lock.is_held()
    acquired, acquire_took = timed(lock.acquire)
    assert not acquired
    assert renew_took < BUDGET and acquire_took < BUDGET, (renew_took, acquire_took)
    assert value_on(masters, 2) is None  # the failed acquire took its minority key back


def test_frozen_masters_cost_one_socket_timeout_not_the_ttl(
    masters: RedisServers, make_lock: Callable[[str], RedlockLeaderLock]
) -> None:
    lock = make_lock("a")
    assert lock.acquire()
    masters[0].freeze()
    renewed, one_frozen_took = timed(lock.renew)
    assert renewed and one_frozen_took < BUDGET, one_frozen_took
    masters[1].freeze()
    renewed, two_frozen_took = timed(lock.renew)
    assert not renewed and two_frozen_took < BUDGET, two_frozen_took
    acquired, acquire_took = timed(make_lock("b").acquire)
    assert not acquired and acquire_took < BUDGET, acquire_took
    masters[0].resume()
    masters[1].resume()


def test_a_restarted_master_rejoins_on_the_same_port(
    masters: RedisServers, make_lock: Callable[[str], RedlockLeaderLock]
) -> None:
    a, b = make_lock("a"), make_lock("b")
    assert a.acquire()
    masters[0].restart()  # comes back empty: no persistence
    assert a.renew()  # still 2 of 3; the renewal puts a's token back on the restarted master
    assert value_on(masters, 0) == b"a"
    assert not b.acquire()
    a.release()
    assert b.acquire()
    assert [value_on(masters, i) for i in range(3)] == [b"b", b"b", b"b"]
