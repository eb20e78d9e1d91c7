"""The running service: watchers on a tick scheduler, gated by leadership, plus the HTTP endpoint.

A tick never kills the scheduler: LeadershipLost ends the tick quietly (the writes already stop
at the fence), any other exception is logged and counted, and the next tick runs as usual.

A dependency that stays down (the database for minutes) fails every tick of a watcher the same
way. That is logged as an outage, not as a stream of identical warnings: a warning when the
watcher starts failing, a reminder every `repeat_warning_seconds` while it goes on, and one line
saying how long it lasted when a tick works again. The error counter still counts every tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass

from nightwatch.app.leadership import Leadership
from nightwatch.app.metrics import Metrics
from nightwatch.app.watchers import ScheduledWatcher, StepsDown, Wakeups
from nightwatch.domain.errors import LeadershipLost, RetryableError
from nightwatch.domain.ports import TaskQueries, Ticker

logger = logging.getLogger(__name__)


@dataclass
class _FailingSince:
    """A watcher's run of ticks failing with retryable errors: when it began, how many, last warning."""

    started: float
    ticks: int
    warned: float


class Service:
    def __init__(
        self,
        watchers: list[ScheduledWatcher],
        ticker: Ticker,
        leadership: Leadership,
        metrics: Metrics,
        *,
        repeat_warning_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wakeups: Wakeups | None = None,
    ) -> None:
        self._watchers = watchers
        self._ticker = ticker
        self._leadership = leadership
        self._metrics = metrics
        self._repeat_warning_seconds = repeat_warning_seconds
        self._clock = clock
        self._failing: dict[str, _FailingSince] = {}
        self._leader_only = [w.name for w in watchers if w.leader_only]
        self._steps_down: list[StepsDown] = []
        for watcher in watchers:
            if isinstance(watcher.run, StepsDown):
                self._steps_down.append(watcher.run)
        self._wakeups = wakeups
        self._stopping = False
        leadership.on_gain = self._resume_leader_work
        leadership.on_loss = self._pause_leader_work

    def start(self) -> None:
        for watcher in self._watchers:
            self._ticker.add(
                watcher.name, self._tick_of(watcher), interval_seconds=watcher.interval_seconds, cron=watcher.cron
            )
        self._ticker.start()
        if self._wakeups is not None:
            self._wakeups.connect(self._wake)
        self._pause_leader_work()  # standby until the lease is ours
        self._leadership.start()
        logger.info("nightwatch started with watchers: %s", ", ".join(w.name for w in self._watchers))

    def stop(self, grace_seconds: float) -> bool:
        """Stop scheduling, let the tick in flight finish within the grace period, release the lease.

        Returns False when a tick was still running at the end of the grace period: its threads (a Job
        create retrying against a hanging API server, say) would keep the interpreter alive, so the
        caller must end the process itself."""
        self._pause_leader_work()
        # From here the scheduler is shutting down, and APScheduler holds its job-store lock until the
        # tick in flight ends: the pause the step-down below triggers would wait for it too.
        self._stopping = True
        done = threading.Thread(target=self._ticker.shutdown, kwargs={"wait": True}, daemon=True)
        done.start()
        done.join(grace_seconds)
        clean = not done.is_alive()
        if not clean:
            logger.warning("a tick did not finish within %.1f s; exiting anyway (its writes are fenced)", grace_seconds)
        self._leadership.stop()
        logger.info("nightwatch stopped")
        return clean

    def _tick_of(self, watcher: ScheduledWatcher) -> Callable[[], None]:
        def tick() -> None:
            if watcher.leader_only and not self._leadership.is_leader:
                return
            started = time.perf_counter()
            try:
                report = watcher.run()
            except LeadershipLost as exc:
                logger.info("%s tick stopped: %s", watcher.name, exc)
                return
            except RetryableError as exc:
                self._metrics.tick_errors.labels(watcher.name, "retryable").inc()
                self._log_retryable(watcher.name, exc)
                return
            except Exception:
                self._metrics.tick_errors.labels(watcher.name, "unexpected").inc()
                logger.exception("%s tick failed unexpectedly; the next tick runs as usual", watcher.name)
                return
            finally:
                elapsed = time.perf_counter() - started
                self._metrics.tick_seconds.labels(watcher.name).observe(elapsed)
            self._log_recovery(watcher.name)
            self._metrics.record_report(watcher.name, report)
            summary = _summary(report)
            if summary:
                logger.info("%s: %s in %.3f s", watcher.name, summary, elapsed)

        return tick

    def _log_retryable(self, name: str, exc: RetryableError) -> None:
        now = self._clock()
        failing = self._failing.get(name)
        if failing is None:
            self._failing[name] = _FailingSince(now, 1, now)
            logger.warning("%s tick failed, will retry every tick: %s", name, exc)
            return
        failing.ticks += 1
        if now - failing.warned >= self._repeat_warning_seconds:
            failing.warned = now
            logger.warning(
                "%s ticks still failing after %.0f s (%d ticks): %s", name, now - failing.started, failing.ticks, exc
            )
        else:
            logger.debug("%s tick failed again: %s", name, exc)

    def _log_recovery(self, name: str) -> None:
        failing = self._failing.pop(name, None)
        if failing is not None:
            logger.info(
                "%s ticks work again after %.1f s (%d failed ticks)",
                name,
                self._clock() - failing.started,
                failing.ticks,
            )

    def _wake(self, name: str) -> None:
        if name in self._leader_only and not self._leadership.is_leader:
            return
        self._ticker.wake(name)

    def _pause_leader_work(self) -> None:
        # Watches stop even while shutting down: nothing heard under this term may be written later.
        for run in self._steps_down:
            try:
                run.step_down()
            except Exception:
                logger.exception("stepping a watcher down failed")
        if self._stopping:
            return
        for name in self._leader_only:
            self._ticker.pause(name)

    def _resume_leader_work(self) -> None:
        if self._stopping:
            return
        for name in self._leader_only:
            self._ticker.resume(name)


def _summary(report: object) -> str:
    """`launched=2 failed=1` from a report's non-zero integer fields; empty for an idle tick."""
    if not is_dataclass(report) or isinstance(report, type):
        return ""
    parts = []
    for f in fields(report):
        value = getattr(report, f.name)
        if isinstance(value, int) and not isinstance(value, bool) and value and f.name != "observed":
            parts.append(f"{f.name}={value}")
    return " ".join(parts)


class Readiness:
    """/readyz: the database answers, and a leader's lease is fresh (a standby is ready to take over)."""

    def __init__(self, repository: TaskQueries, leadership: Leadership) -> None:
        self._repository = repository
        self._leadership = leadership

    def __call__(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        try:
            self._repository.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {exc}"
        checks["role"] = "leader" if self._leadership.is_leader else "standby"
        checks["lease"] = "ok" if self._leadership.lease_fresh() else "expiring"
        return checks["database"] == "ok" and checks["lease"] == "ok", checks
