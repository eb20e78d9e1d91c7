"""Service: a dependency that stays down is logged as an outage, not as a flood of identical warnings.

Measured on the dependency-fault system test before this was fixed: with the database down, the
leader logged about 12 warnings a second (every retry attempt, every failed tick, and APScheduler's
"skipped: maximum number of running instances reached" for every interval a slow tick covered).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from nightwatch.adapters.memory import MemoryLeaderLock, MemoryTaskRepository
from nightwatch.app.leadership import Leadership
from nightwatch.app.metrics import Metrics
from nightwatch.app.service import Service
from nightwatch.app.watchers import ScheduledWatcher
from nightwatch.domain.errors import RetryableError
from tests.support.logs import messages


class ManualTicker:
    """Records the ticks; the test runs them by name."""

    def __init__(self) -> None:
        self.ticks: dict[str, Callable[[], None]] = {}

    def add(self, name: str, tick: Callable[[], None], *, interval_seconds: float | None, cron: str | None) -> None:
        self.ticks[name] = tick

    def start(self) -> None: ...
    def pause(self, name: str) -> None: ...
    def resume(self, name: str) -> None: ...
    def wake(self, name: str) -> None: ...
    def shutdown(self, wait: bool) -> None: ...


class Outage:
    """A watcher whose run fails with RetryableError while `down` is set."""

    def __init__(self) -> None:
        self.down = True

    def __call__(self) -> None:
        if self.down:
            raise RetryableError("list tasks by status: database unavailable: (2003, connection refused)")


def started_service(watcher: Outage, now: list[float]) -> tuple[ManualTicker, Service]:
    ticker = ManualTicker()
    leadership = Leadership(
        MemoryLeaderLock("r1"), MemoryTaskRepository(), renew_interval=1.0, retry_interval=1.0, safety_margin=0.1
    )
    service = Service(
        [ScheduledWatcher("sync", watcher, 0.5, None, leader_only=False)],
        ticker,
        leadership,
        Metrics(),
        repeat_warning_seconds=60.0,
        clock=lambda: now[0],
    )
    service.start()
    return ticker, service


@pytest.mark.outage
def test_a_watcher_failing_tick_after_tick_warns_once_then_once_a_minute_then_says_it_recovered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="nightwatch.app.service")
    outage, now = Outage(), [1000.0]
    ticker, service = started_service(outage, now)
    try:
        for _ in range(121):  # a minute of ticks every 0.5 s: t = 1000.0 ... 1060.0
            ticker.ticks["sync"]()
            now[0] += 0.5
        warnings = messages(caplog, logging.WARNING)
        assert warnings == [
            "sync tick failed, will retry every tick: list tasks by status: database unavailable: (2003, connection"
            " refused)",
            "sync ticks still failing after 60 s (121 ticks): list tasks by status: database unavailable: (2003,"
            " connection refused)",
        ]
        assert len(messages(caplog, logging.DEBUG)) == 119  # every failed tick is still in the DEBUG log

        outage.down = False
        ticker.ticks["sync"]()
        ticker.ticks["sync"]()
        recovered = [m for m in messages(caplog, logging.INFO) if "work again" in m]
        assert recovered == ["sync ticks work again after 60.5 s (121 failed ticks)"]

        caplog.clear()
        outage.down = True
        ticker.ticks["sync"]()  # a new outage warns at once again
        assert len(messages(caplog, logging.WARNING)) == 1
    finally:
        service.stop(grace_seconds=1.0)


class Term:
    """A leader-only watcher that holds something for the term (a watch), as SyncTasks does."""

    def __init__(self) -> None:
        self.step_downs = 0

    def __call__(self) -> None: ...

    def step_down(self) -> None:
        self.step_downs += 1


class WakeRecorder(ManualTicker):
    def __init__(self) -> None:
        super().__init__()
        self.woken: list[str] = []

    def wake(self, name: str) -> None:
        self.woken.append(name)


def test_losing_the_lease_steps_watchers_down_and_wakeups_reach_only_a_leader() -> None:
    from nightwatch.app.watchers import Wakeups

    lock = MemoryLeaderLock("r1")
    leadership = Leadership(lock, MemoryTaskRepository(), renew_interval=1.0, retry_interval=1.0, safety_margin=0.1)
    ticker, term, wakeups = WakeRecorder(), Term(), Wakeups()
    service = Service(
        [ScheduledWatcher("sync", term, 2.0, None, leader_only=True)], ticker, leadership, Metrics(), wakeups=wakeups
    )
    service.start()
    try:
        wait = time.monotonic() + 5
        while not leadership.is_leader and time.monotonic() < wait:
            time.sleep(0.01)
        assert leadership.is_leader
        wakeups.wake("sync")
        assert ticker.woken == ["sync"]
        before = term.step_downs
        leadership._step_down("lease renewal failed")  # what the watchdog does when a renewal fails
        assert term.step_downs == before + 1
        wakeups.wake("sync")  # a standby now: nothing to wake
        assert ticker.woken == ["sync"]
    finally:
        service.stop(grace_seconds=1.0)


def test_a_leader_paused_past_its_lease_gets_no_epoch_before_its_watchdog_runs() -> None:
    """The local lease check is all that guards an API create (the database fence cannot reach the
    API server): a leader resumed after a pause must refuse before the watchdog notices."""
    from nightwatch.adapters.memory import FakeClock
    from nightwatch.domain.errors import LeadershipLost

    clock = FakeClock()
    lock = MemoryLeaderLock("r1", ttl_seconds=10.0, clock=clock)
    leadership = Leadership(lock, MemoryTaskRepository(), renew_interval=1.0, retry_interval=1.0, safety_margin=1.0)
    leadership._try_acquire()  # what the watchdog does for a standby; not started, so nothing renews
    assert leadership.epoch() == 1
    clock.advance(9.5)  # paused: less than the safety margin left on the lease
    assert leadership.is_leader  # the watchdog has not run, so it still believes it leads
    with pytest.raises(LeadershipLost, match="about to expire"):
        leadership.epoch()
