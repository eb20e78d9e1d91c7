"""The client-side token bucket: burst, then QPS; thread-safe; qps 0 disables it."""

from __future__ import annotations

import threading

import pytest

from nightwatch.adapters.kubernetes.ratelimit import TokenBucket


class FakeTime:
    """A monotonic clock that moves only when the bucket sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        pass  # the wait is computed up front; tests inspect reservations, not wall time


def test_burst_then_qps() -> None:
    t = FakeTime()
    bucket = TokenBucket(qps=10, burst=3, clock=t.clock, sleep=t.sleep)
    waits = [bucket.reserve() for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.2])
    t.now = 10.0  # a long pause refills up to the burst, never beyond
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_tokens_accrue_at_qps() -> None:
    t = FakeTime()
    bucket = TokenBucket(qps=2, burst=1, clock=t.clock, sleep=t.sleep)
    assert bucket.reserve() == 0.0
    t.now = 0.5
    assert bucket.reserve() == 0.0
    t.now = 0.75
    assert bucket.reserve() == pytest.approx(0.25)


def test_zero_qps_disables_limiting() -> None:
    bucket = TokenBucket(qps=0, burst=0)
    assert not bucket.enabled
    assert all(bucket.reserve() == 0.0 for _ in range(10_000))


def test_thread_safe_reservations_are_spaced_exactly() -> None:
    t = FakeTime()
    bucket = TokenBucket(qps=100, burst=10, clock=t.clock, sleep=t.sleep)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            wait = bucket.reserve()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 400 reservations: 10 free, then one every 10 ms, each exactly once (no token handed out twice).
    assert sorted(waits) == pytest.approx([0.0] * 10 + [i / 100 for i in range(1, 391)])


def test_acquire_sleeps_for_its_reservation() -> None:
    slept: list[float] = []
    bucket = TokenBucket(qps=4, burst=1, clock=lambda: 0.0, sleep=slept.append)
    bucket.acquire()
    bucket.acquire()
    assert slept == [0.25]


def test_a_burst_of_zero_still_lets_requests_through_at_qps() -> None:
    bucket = TokenBucket(qps=5, burst=0, clock=lambda: 0.0)
    assert [bucket.reserve() for _ in range(2)] == pytest.approx([0.0, 0.2])


def test_background_callers_take_only_spare_tokens_and_never_queue_ahead() -> None:
    """A release waits while creates use the bucket: it takes a token only above half the burst, and
    never borrows one from the future (a create that comes after it is not queued behind it)."""
    t = FakeTime()
    bucket = TokenBucket(qps=10, burst=5, clock=t.clock, sleep=t.sleep)
    assert [bucket.reserve_spare() for _ in range(3)] == [0.0, 0.0, 0.0]  # 5 tokens: spare down to 2
    assert bucket.reserve_spare() == pytest.approx(0.1)  # 2 left: the next must wait for a third
    assert [bucket.reserve() for _ in range(2)] == [0.0, 0.0]  # the others still get the reserve
    assert bucket.reserve() == pytest.approx(0.1)  # and then queue at qps, as before
    assert bucket.reserve_spare() == pytest.approx(0.4)  # 1 borrowed: 4 tenths until 3 are there
    t.now = 10.0
    assert bucket.reserve_spare() == 0.0  # refilled


def test_a_background_acquire_waits_and_retries_until_a_spare_token() -> None:
    t = FakeTime()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        t.now += seconds

    bucket = TokenBucket(qps=10, burst=3, clock=t.clock, sleep=sleep)
    for _ in range(3):
        bucket.acquire()
    bucket.acquire(background=True)  # empty: waits until 1 spare token (2 accrued) is there
    assert sum(slept) == pytest.approx(0.2)
