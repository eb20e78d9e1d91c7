"""The one polling helper: wait until a condition holds, or fail the test saying what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """The predicate's first truthy value; AssertionError once `timeout` seconds have passed without one.

    The predicate is evaluated once more after the deadline, so a condition that became true while
    the caller slept is not reported as a timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
