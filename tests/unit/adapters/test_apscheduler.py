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
