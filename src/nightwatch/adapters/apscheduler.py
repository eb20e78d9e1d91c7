"""The tick scheduler on APScheduler 3.x.

Each watcher is one job with `max_instances=1` (a slow tick is never run twice at once) and
`coalesce=True` (missed runs collapse into one), started at once rather than one interval late.
A run skipped because the watcher's previous tick is still going is that design at work, so
APScheduler's warning about it is logged at DEBUG: while a dependency is down and every tick waits
out its retries, it would otherwise fire every interval, for every watcher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor as WakePool
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

logger = logging.getLogger(__name__)


def check_cron(spec: str) -> None:
    """Raise ValueError with a readable message for a bad crontab spec."""
    try:
        CronTrigger.from_crontab(spec, timezone=UTC)
    except ValueError as exc:
        raise ValueError(f"invalid cron spec {spec!r}: {exc}") from None


_SKIPPED_RUN = "maximum number of running instances reached"


class _SchedulerLog(logging.LoggerAdapter[logging.Logger]):
    """APScheduler's own logger, with the skipped-run warning demoted to DEBUG."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if isinstance(msg, str) and _SKIPPED_RUN in msg:
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)


class ApschedulerTicker:
    def __init__(self, max_workers: int = 8) -> None:
        self._scheduler = BackgroundScheduler(
            logger=_SchedulerLog(logging.getLogger("apscheduler.scheduler"), {}),
            executors={"default": ThreadPoolExecutor(max_workers)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._wake_lock = threading.Lock()
        self._running: set[str] = set()
        self._woken: set[str] = set()
        self._paused: set[str] = set()
        self._ticks: dict[str, Callable[[], None]] = {}
        self._stopped = False
        self._wake_pool = WakePool(2, thread_name_prefix="wake")
        """Runs woken ticks at once (APScheduler's own executor runs the scheduled ones)."""

    def add(self, name: str, tick: Callable[[], None], *, interval_seconds: float | None, cron: str | None) -> None:
        tick = self._wakeable(name, tick)
        if cron is not None:
            trigger: CronTrigger | IntervalTrigger = CronTrigger.from_crontab(cron, timezone=UTC)
            next_run = None
        else:
            trigger = IntervalTrigger(seconds=interval_seconds or 1.0, timezone=UTC)
            next_run = datetime.now(UTC)
        kwargs = {"next_run_time": next_run} if next_run is not None else {}
        self._scheduler.add_job(tick, trigger, id=name, name=name, replace_existing=True, **kwargs)

    def start(self) -> None:
        self._scheduler.start()

    def pause(self, name: str) -> None:
        with self._wake_lock:
            self._paused.add(name)
        # Leadership can change while the scheduler shuts down; a job already gone needs no pausing.
        with suppress(JobLookupError):
            self._scheduler.pause_job(name)

    def resume(self, name: str) -> None:
        with self._wake_lock:
            self._paused.discard(name)
        with suppress(JobLookupError):
            self._scheduler.resume_job(name)

    def _wakeable(self, name: str, tick: Callable[[], None]) -> Callable[[], None]:
        """`tick`, never twice at once, run again right after itself when woken (or fired) while it ran.

        The ticker keeps the one-at-a-time rule itself (APScheduler's `max_instances` would skip a run
        woken just as the previous one returned, before APScheduler counted it finished)."""

        def run() -> None:
            with self._wake_lock:
                if name in self._running:
                    self._woken.add(name)
                    return
                self._running.add(name)
            self._run_claimed(name, tick)

        self._ticks[name] = tick
        return run

    def _run_claimed(self, name: str, tick: Callable[[], None]) -> None:
        again = True
        try:
            while again:
                with self._wake_lock:
                    self._woken.discard(name)
                tick()
                with self._wake_lock:
                    again = name in self._woken and name not in self._paused
        finally:
            with self._wake_lock:
                self._running.discard(name)
                self._woken.discard(name)

    def wake(self, name: str) -> None:
        with self._wake_lock:
            tick = self._ticks.get(name)
            if tick is None or name in self._paused or self._stopped:
                return
            if name in self._running:
                self._woken.add(name)
                return
            self._running.add(name)
        try:
            self._wake_pool.submit(self._run_claimed, name, tick)
        except RuntimeError:  # the pool is shutting down
            with self._wake_lock:
                self._running.discard(name)

    def shutdown(self, wait: bool) -> None:
        with self._wake_lock:
            self._stopped = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
        self._wake_pool.shutdown(wait=wait)
