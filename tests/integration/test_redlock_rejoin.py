"""A Redis master that comes back (restarted empty, or down when the lease was taken) rejoins the lease.

Found by the dependency-fault system test: after all three masters were restarted one by one, the new
leader had taken its lease while the third was still starting, so it held the lease on two masters
only; stopping one master later (a quorum of two still up) made it step down and hand over. The lease
must survive the loss of any minority, every time, not just the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from nightwatch.adapters.redlock import RedlockLeaderLock
from tests.support.redis_servers import RedisServers, redis_servers

TTL = 2.0
KEY = "nightwatch:test:rejoin"


@pytest.fixture
def masters(tmp_path: Path) -> Iterator[RedisServers]:
    with redis_servers(3, tmp_path) as group:
        yield group


def tokens(masters: RedisServers) -> list[bytes | None]:
    """The key's value on every master (None where it has none or is down)."""
    found: list[bytes | None] = []
    for server in masters.servers:
        client = redis.Redis(port=server.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            value = client.get(KEY)
            assert value is None or isinstance(value, bytes)
            found.append(value)
        except redis.ConnectionError:
            found.append(None)
        finally:
            client.close()
    return found


def test_a_master_down_at_acquire_time_gets_the_token_on_the_next_renewal(masters: RedisServers) -> None:
    lock = RedlockLeaderLock.from_urls(masters.urls, owner="a", key=KEY, ttl_seconds=TTL)
    try:
        masters[2].kill()
        assert lock.acquire()  # on masters 0 and 1: a bare majority
        masters[2].start()
        assert lock.renew()
        assert tokens(masters) == [b"a", b"a", b"a"]
        masters[0].kill()
        assert lock.renew(), "one master down of three, and the lease was lost"
    finally:
        lock.close()


def test_the_lease_survives_one_master_restart_after_another(masters: RedisServers) -> None:
    lock = RedlockLeaderLock.from_urls(masters.urls, owner="a", key=KEY, ttl_seconds=TTL)
    other = RedlockLeaderLock.from_urls(masters.urls, owner="b", key=KEY, ttl_seconds=TTL)
    try:
        assert lock.acquire()
        for index in range(3):  # a rolling restart: every master comes back empty in turn
            masters[index].restart()
            assert lock.renew(), f"the lease was lost after master {index} restarted"
            assert not other.acquire()
        assert tokens(masters) == [b"a", b"a", b"a"]
    finally:
        lock.close()
        other.close()


def test_a_renewal_never_takes_a_master_that_holds_another_token(masters: RedisServers) -> None:
    lock = RedlockLeaderLock.from_urls(masters.urls, owner="a", key=KEY, ttl_seconds=TTL)
    try:
        assert lock.acquire()
        masters[0].restart()
        # Someone else's token on the empty master (a contender's minority SET that was not undone yet).
        client = redis.Redis(port=masters[0].port)
        client.set(KEY, b"b", px=int(TTL * 1000))
        client.close()
        assert lock.renew()  # 2 of 3 are still ours
        assert tokens(masters) == [b"b", b"a", b"a"]
        masters[1].kill()
        assert not lock.renew()  # only master 2 is ours now: lost, and nothing was overwritten
        assert tokens(masters)[0] == b"b"
    finally:
        lock.close()
