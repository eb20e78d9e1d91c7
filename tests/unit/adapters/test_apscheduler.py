"""ApschedulerTicker: a run skipped because the previous tick is still going is not a warning."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from nightwatch.adapters.apscheduler import ApschedulerTicker


@pytest.mark.outage
def test_a_run_skipped_because_the_previous_tick_is_still_going_is_not_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="apscheduler.scheduler")  # configure_logging() may have raised it
    release = threading.Event()
    ticker = ApschedulerTicker()
    ticker.add("slow", lambda: release.wait(5), interval_seconds=0.05, cron=None)
    ticker.start()
    try:
        deadline = time.monotonic() + 5
        skipped: list[logging.LogRecord] = []
        while not skipped and time.monotonic() < deadline:
            time.sleep(0.05)
            skipped = [r for r in caplog.records if "maximum number of running instances" in r.getMessage()]
    finally:
        release.set()
        ticker.shutdown(wait=True)
    assert skipped, "APScheduler never skipped a run (the test did not exercise the case)"
    assert {r.levelno for r in skipped} == {logging.DEBUG}


def test_wake_runs_a_tick_now_and_again_after_one_that_is_running() -> None:
    runs: list[float] = []
    gate = threading.Event()
    entered = threading.Event()

    def tick() -> None:
        runs.append(time.monotonic())
        if len(runs) == 2:
            entered.set()
            gate.wait(5)

    ticker = ApschedulerTicker()
    ticker.add("sync", tick, interval_seconds=3600, cron=None)  # never again by its interval
    ticker.start()
    try:
        deadline = time.monotonic() + 5
        while not runs and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(runs) == 1  # the first run, at once
        woken = time.monotonic()
        ticker.wake("sync")
        assert entered.wait(5), "wake did not run the tick"
        assert runs[1] - woken < 1.0
        ticker.wake("sync")  # while it runs: once more right after it
        ticker.wake("sync")  # coalesced
        gate.set()
        deadline = time.monotonic() + 5
        while len(runs) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert len(runs) == 3
        ticker.pause("sync")
        ticker.wake("sync")  # a paused tick (a standby's) is left alone
        time.sleep(0.3)
        assert len(runs) == 3
    finally:
        gate.set()
        ticker.shutdown(wait=True)
