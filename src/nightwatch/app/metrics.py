"""Prometheus metrics, on a registry owned by the running service (no global state).

Task counts are read from the repository when scraped (through the `CachedCounts` the API's summary
uses too, 5 s here), never per tick, so an idle leader costs the database nothing for them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import fields, is_dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from nightwatch.app.counts import CachedCounts
from nightwatch.domain.errors import NightwatchError
from nightwatch.domain.model import TaskStatus
from nightwatch.domain.ports import TaskQueries

logger = logging.getLogger(__name__)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tick_seconds = Histogram(
            "nightwatch_tick_duration_seconds",
            "Duration of one watcher tick",
            ["watcher"],
            registry=r,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.tick_errors = Counter("nightwatch_tick_errors_total", "Ticks that raised", ["watcher", "kind"], registry=r)
        self.watcher_events = Counter(
            "nightwatch_watcher_events_total", "Counts reported by watcher ticks", ["watcher", "event"], registry=r
        )
        self.jobs_created = Counter("nightwatch_jobs_created_total", "Jobs created by dispatch", registry=r)
        self.api_errors = Counter(
            "nightwatch_api_errors_total", "Launches that failed with a retryable API error", registry=r
        )
        self.launch_deferred = Counter(
            "nightwatch_launch_deferred_total",
            "Launches put off with the task left Normal, by reason (quota, not-ready, api, unexpected)",
            ["reason"],
            registry=r,
        )
        self.schedule_slots = Counter(
            "nightwatch_schedule_slots_total",
            "Schedule slots handled by spawn: fired, skipped (Forbid, Replace), missed (outage, deadline)",
            ["outcome"],
            registry=r,
        )
        self.attempts = Counter(
            "nightwatch_task_attempts_failed_total",
            "Failed attempts whose outcome was stored, by failure class and outcome (retried, failed)",
            ["failure_class", "outcome"],
            registry=r,
        )
        self.leader = Gauge("nightwatch_leader", "1 while this replica is the leader", registry=r)
        self.epoch = Gauge("nightwatch_leader_epoch", "Fencing epoch held by this replica (0 if none)", registry=r)
        self.lease_validity = Gauge("nightwatch_lease_validity_seconds", "Seconds left on the held lease", registry=r)
        self.lease_renewals = Counter("nightwatch_lease_renewals_total", "Successful lease renewals", registry=r)
        self.lease_losses = Counter("nightwatch_lease_losses_total", "Leases lost or given up", registry=r)
        self.leader_acquisitions = Counter("nightwatch_lease_acquisitions_total", "Leases gained", registry=r)

    def watch_tasks(self, repository: TaskQueries, cache_seconds: float = 5.0) -> None:
        self.registry.register(TaskCountCollector(repository, cache_seconds))

    def record_report(self, watcher: str, report: object) -> None:
        """Count the integer fields of a tick's report (launched, failed, changed, ...)."""
        if not is_dataclass(report) or isinstance(report, type):
            return
        for f in fields(report):
            value = getattr(report, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value:
                self.watcher_events.labels(watcher, f.name).inc(value)
        if watcher == "spawn":
            for outcome in ("fired", "skipped", "missed"):
                self.schedule_slots.labels(outcome).inc(getattr(report, outcome, 0))
        if watcher == "dispatch":
            self.jobs_created.inc(getattr(report, "launched", 0))
            self.api_errors.inc(getattr(report, "deferred", 0))
            for reason, count in (getattr(report, "deferred_by_reason", None) or {}).items():
                self.launch_deferred.labels(reason).inc(count)
        if watcher == "sync":
            for (failure_class, outcome), count in (getattr(report, "attempts", None) or {}).items():
                self.attempts.labels(failure_class, outcome).inc(count)


class TaskCountCollector(Collector):
    """`nightwatch_tasks{status=...}`; unknown status strings are counted under their own value."""

    def __init__(self, repository: TaskQueries, cache_seconds: float) -> None:
        self._counts_of = CachedCounts(repository, cache_seconds)
        self._last: Mapping[str, int] = {}
        self._repository = repository
        self._cache_seconds = cache_seconds
        self._retrying: tuple[float, int] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self._counts()
        family = GaugeMetricFamily("nightwatch_tasks", "Tasks by status", labels=["status"])
        for status in TaskStatus:
            family.add_metric([status.value], counts.get(status.value, 0))
        unknown = GaugeMetricFamily(
            "nightwatch_tasks_unknown_status", "Rows whose status nightwatch does not know (left alone)"
        )
        unknown.add_metric([], sum(n for s, n in counts.items() if TaskStatus.parse(s) is None))
        yield family
        yield unknown
        retrying = GaugeMetricFamily(
            "nightwatch_tasks_waiting_retry",
            "Normal tasks on a later attempt (a retry waiting for its backoff or dispatch)",
        )
        retrying.add_metric([], self._waiting_retry())
        yield retrying

    def _waiting_retry(self) -> int:
        """Counted at most once per cache period; during an outage the last count seen."""
        now = time.monotonic()
        if self._retrying is None or now - self._retrying[0] >= self._cache_seconds:
            try:
                self._retrying = (now, self._repository.count_waiting_retry())
            except NightwatchError as exc:
                logger.warning("cannot count tasks waiting for a retry for /metrics: %s", exc)
                return self._retrying[1] if self._retrying is not None else 0
        return self._retrying[1]

    def _counts(self) -> Mapping[str, int]:
        """The cached counts; during an outage the last ones seen (a scrape never fails), counted
        again at the next scrape."""
        try:
            self._last = self._counts_of()
        except NightwatchError as exc:
            logger.warning("cannot count tasks for /metrics: %s", exc)
        return self._last
