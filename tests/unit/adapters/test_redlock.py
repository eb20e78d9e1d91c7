"""RedlockLeaderLock on three independent fake Redis masters (fakeredis with Lua).

A master goes "down" with `server.connected = False`; every assertion is on the masters' state
(the key's value and PTTL) or on what the lock reports.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import fakeredis
import pytest

from nightwatch.adapters.redlock import RedlockLeaderLock, default_replica_id

KEY = "nightwatch:leader"
TTL = 10.0
"""Long enough that a loaded machine (a Lua script load, a descheduled thread) never eats the validity;
the tests of expiry use their own short TTL."""


class Masters:
    def __init__(self, count: int = 3) -> None:
        self.servers = [fakeredis.FakeServer() for _ in range(count)]
        self._inspect = [fakeredis.FakeStrictRedis(server=s) for s in self.servers]

    def lock(self, owner: str, ttl: float = TTL) -> RedlockLeaderLock:
        clients = [fakeredis.FakeStrictRedis(server=s) for s in self.servers]
        return RedlockLeaderLock(clients, owner=owner, key=KEY, ttl_seconds=ttl)

    def down(self, *indexes: int) -> None:
        for i in indexes:
            self.servers[i].connected = False

    def up(self, *indexes: int) -> None:
        for i in indexes:
            self.servers[i].connected = True

    def values(self) -> list[bytes | None]:
        """The key's value on each master (None where a master is down or has no key)."""
        out: list[bytes | None] = []
        for server, client in zip(self.servers, self._inspect, strict=True):
            value = client.get(KEY) if server.connected else None
            assert value is None or isinstance(value, bytes)
            out.append(value)
        return out

    def pttl(self, i: int) -> int:
        result: int = self._inspect[i].pttl(KEY)
        return result


@pytest.fixture
def masters() -> Iterator[Masters]:
    yield Masters()


def test_acquires_with_all_masters_and_reports_validity(masters: Masters) -> None:
    lock = masters.lock("a")
    assert lock.quorum == 2 and lock.ttl_seconds == TTL
    assert lock.acquire()
    assert lock.is_held()
    assert 0 < lock.validity_seconds() <= TTL - lock.drift_seconds
    assert masters.values() == [b"a", b"a", b"a"]
    assert all(0 < masters.pttl(i) <= TTL * 1000 for i in range(3))


def test_quorum_with_one_master_down(masters: Masters) -> None:
    masters.down(0)
    lock = masters.lock("a")
    assert lock.acquire()
    assert lock.renew()
    assert masters.values() == [None, b"a", b"a"]


def test_no_quorum_with_two_masters_down_releases_the_minority(masters: Masters) -> None:
    masters.down(0, 1)
    lock = masters.lock("a")
    assert not lock.acquire()
    assert not lock.is_held() and lock.validity_seconds() == 0.0
    # The one live master granted the key, then had it taken back: it must not block anyone.
    assert masters.values() == [None, None, None]
    assert masters.pttl(2) == -2
    masters.up(0, 1)
    assert masters.lock("b").acquire()


def test_renew_fails_and_the_lease_is_lost_when_quorum_goes(masters: Masters) -> None:
    lock = masters.lock("a")
    assert lock.acquire()
    masters.down(1, 2)
    assert not lock.renew()
    assert not lock.is_held()
    assert not lock.renew()  # lost stays lost until acquired again
    masters.up(1, 2)
    assert lock.acquire()  # our own token is still there: re-acquire at once


def test_renewal_extends_the_ttl_on_the_masters(masters: Masters) -> None:
    lock = masters.lock("a")
    assert lock.acquire()
    threading.Event().wait(0.4)
    before = [masters.pttl(i) for i in range(3)]
    assert all(p <= TTL * 1000 - 350 for p in before)
    assert lock.renew()
    after = [masters.pttl(i) for i in range(3)]
    assert all(a > b + 200 for a, b in zip(after, before, strict=True)), (before, after)
    assert lock.validity_seconds() > TTL * 0.9


def test_an_expired_lease_is_not_held_not_renewed_and_taken_over(masters: Masters) -> None:
    a = masters.lock("a", ttl=0.3)
    b = masters.lock("b", ttl=0.3)
    assert a.acquire()
    assert not b.acquire()
    threading.Event().wait(0.4)
    assert not a.is_held() and a.validity_seconds() == 0.0
    assert not a.renew()
    assert b.acquire()
    assert masters.values() == [b"b", b"b", b"b"]
    assert not a.renew()  # a's token is gone: compare-and-extend refuses even if asked


def test_release_by_the_wrong_owner_is_refused(masters: Masters) -> None:
    a, b = masters.lock("a"), masters.lock("b")
    assert a.acquire()
    b.release()
    assert masters.values() == [b"a", b"a", b"a"]
    assert a.is_held() and a.renew()
    a.release()
    assert not a.is_held()
    assert masters.values() == [None, None, None]


def test_release_never_raises_with_masters_down_or_after_close(masters: Masters) -> None:
    lock = masters.lock("a")
    assert lock.acquire()
    masters.down(0, 1, 2)
    lock.release()
    masters.up(0, 1, 2)
    lock.close()
    lock.release()
    lock.close()


@pytest.mark.parametrize("owners", [2, 3, 5])
def test_racing_owners_never_both_hold_it(masters: Masters, owners: int) -> None:
    for _ in range(30):
        locks = [masters.lock(f"replica-{n}") for n in range(owners)]
        start = threading.Barrier(owners)
        won: list[str] = []

        threads = [threading.Thread(target=_contend, args=(lock, start, won)) for lock in locks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) <= 1, won
        if owners == 2:
            assert len(won) == 1  # with 3 masters and 2 contenders one always reaches 2 votes
        if won:
            # The losers took their minority keys back: no master holds a loser's token.
            values = masters.values()
            assert set(values) <= {won[0].encode(), None}
            assert values.count(won[0].encode()) >= 2
        else:
            assert masters.values() == [None, None, None]
        for lock in locks:
            lock.release()
            lock.close()


def _contend(lock: RedlockLeaderLock, start: threading.Barrier, won: list[str]) -> None:
    start.wait()
    if lock.acquire():
        won.append(lock.owner)


def test_rejects_nonsense_configuration() -> None:
    with pytest.raises(ValueError):
        RedlockLeaderLock([], owner="a", key=KEY, ttl_seconds=1.0)
    with pytest.raises(ValueError):
        RedlockLeaderLock(["redis://127.0.0.1:1/0"], owner="", key=KEY, ttl_seconds=1.0)
    with pytest.raises(ValueError):
        RedlockLeaderLock(["redis://127.0.0.1:1/0"], owner="a", key=KEY, ttl_seconds=0)


def test_default_replica_ids_are_unique_per_call() -> None:
    assert default_replica_id() != default_replica_id()
