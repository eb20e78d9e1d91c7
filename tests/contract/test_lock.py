"""The LeaderLock contract: two replicas contend for one lease. Later locks add a backend here."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from nightwatch.adapters.memory import MemoryLeaderLock, MemoryLockServer
from nightwatch.domain.ports import LeaderLock
from tests.contract.redis_locks import redis_lock_backends, stop_private_redis_masters  # noqa: F401

TTL = 1.0

LockPair = tuple[LeaderLock, LeaderLock]


@contextmanager
def memory_locks() -> Iterator[LockPair]:
    server = MemoryLockServer()
    yield (
        MemoryLeaderLock("replica-a", ttl_seconds=TTL, server=server),
        MemoryLeaderLock("replica-b", ttl_seconds=TTL, server=server),
    )


LOCK_BACKENDS: dict[str, Callable[[], AbstractContextManager[LockPair]]] = {
    "memory": memory_locks,
    **redis_lock_backends(TTL),
}


@pytest.fixture(params=sorted(LOCK_BACKENDS))
def locks(request: pytest.FixtureRequest) -> Iterator[LockPair]:
    with LOCK_BACKENDS[request.param]() as pair:
        yield pair
        for lock in pair:
            lock.release()


def test_only_one_replica_holds_the_lease(locks: LockPair) -> None:
    a, b = locks
    assert a.acquire()
    assert not b.acquire()
    assert a.is_held() and not b.is_held()
    assert 0 < a.validity_seconds() <= TTL and b.validity_seconds() == 0.0


def test_renew_keeps_the_lease_past_its_ttl(locks: LockPair) -> None:
    a, b = locks
    assert a.acquire()
    for _ in range(3):
        time.sleep(TTL / 2)
        assert a.renew()
    assert a.is_held() and not b.acquire()


def test_release_hands_over_at_once(locks: LockPair) -> None:
    a, b = locks
    assert a.acquire()
    a.release()
    assert not a.is_held()
    assert b.acquire()


def test_release_by_a_non_owner_does_nothing(locks: LockPair) -> None:
    a, b = locks
    assert a.acquire()
    b.release()
    assert a.is_held() and not b.acquire()


def test_an_expired_lease_cannot_be_renewed_and_is_taken_over(locks: LockPair) -> None:
    a, b = locks
    assert a.acquire()
    time.sleep(TTL * 1.3)
    assert not a.is_held()
    assert b.acquire()
    assert not a.renew()
