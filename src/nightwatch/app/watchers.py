"""The watcher registry: nightwatch's extension point.

A watcher is a named periodic unit of work: a `WatcherSpec` says how to build its `run()` from
the ports (`WatcherContext`) and when to run it (an interval or a cron spec). dispatch, sync,
cancel, release and spawn are built-in watchers; a third-party package adds one by exposing a `WatcherSpec` (or a
zero-argument callable returning one) under the `nightwatch.watchers` entry-point group. Each
watcher can be disabled or re-timed by configuration (a `WatcherTiming` under `watchers.<name>`)
without code changes; what configuration leaves unset keeps the timing its spec declares.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nightwatch.app.usecases.cancel import CancelSettings, CancelTasks
from nightwatch.app.usecases.dispatch import DispatchSettings, DispatchTasks
from nightwatch.app.usecases.logs import CaptureLogs, LogsSettings
from nightwatch.app.usecases.notify import NotifySettings, SendNotifications
from nightwatch.app.usecases.release import ReleaseJobs
from nightwatch.app.usecases.spawn import SpawnSchedules, SpawnSettings
from nightwatch.app.usecases.sync import RetrySettings, SyncSettings, SyncTasks
from nightwatch.domain.ports import (
    Clock,
    CronCalendar,
    Fence,
    JobLogs,
    JobRunner,
    LeaderStore,
    Outbox,
    QueueStates,
    ScheduleRepository,
    TaskCommands,
    TaskLogStore,
    WebhookPoster,
)
from nightwatch.domain.queues import Queues
from nightwatch.domain.submission import SubmissionPolicy

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "nightwatch.watchers"


class Wakeups:
    """Asks for a watcher's tick now rather than at its next interval (a change the runner heard, a
    task just submitted). The service connects it to its ticker when it starts; until then, and on a
    replica that is not running watchers, a wake-up does nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: Callable[[str], None] = lambda name: None

    def connect(self, target: Callable[[str], None]) -> None:
        with self._lock:
            self._target = target

    def wake(self, name: str) -> None:
        with self._lock:
            target = self._target
        target(name)

    def waker(self, name: str) -> Callable[[], None]:
        return lambda: self.wake(name)


@runtime_checkable
class StepsDown(Protocol):
    """A watcher's run that holds something for the leader's term (a watch): the service calls
    `step_down()` the moment leadership is lost. Must not block or raise."""

    def step_down(self) -> None: ...


@dataclass(frozen=True)
class WatcherContext:
    """What a watcher may use. Built once by the composition root."""

    repository: LeaderStore
    runner: JobRunner
    clock: Clock
    fence: Fence
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    cancel: CancelSettings = field(default_factory=CancelSettings)
    policy: SubmissionPolicy = field(default_factory=SubmissionPolicy)
    """What dispatch accepts (`runner.allowed_namespaces`), as SubmitTask does."""
    wakeups: Wakeups = field(default_factory=Wakeups)
    """How a watcher asks for a tick now (of itself or of another one)."""
    schedules: ScheduleRepository | None = None
    """The schedule table, the calendar and the task commands spawn needs (Replace cancels); a context
    without them (a test of other watchers) gets a spawn watcher that does nothing."""
    calendar: CronCalendar | None = None
    commands: TaskCommands | None = None
    spawn: SpawnSettings = field(default_factory=SpawnSettings)
    outbox: Outbox | None = None
    """The events `apply` records (None: the `notify` watcher does nothing)."""
    poster: WebhookPoster | None = None
    notify: NotifySettings = field(default_factory=NotifySettings)
    job_logs: JobLogs | None = None
    """The runner's output (None: the `capture_logs` watcher does nothing)."""
    task_logs: TaskLogStore | None = None
    logs: LogsSettings = field(default_factory=LogsSettings)
    queues: Queues = field(default_factory=Queues)
    """The configured queues (`queues:`); dispatch selects through them."""
    queue_states: QueueStates | None = None
    """Which queues are paused (the `queue_state` table); None: none ever is."""


Run = Callable[[], object]


@dataclass(frozen=True)
class WatcherSpec:
    name: str
    build: Callable[[WatcherContext], Run]
    interval_seconds: float | None = None
    cron: str | None = None
    leader_only: bool = True
    """Leader-only watchers run only while this replica holds the lease."""


class WatcherTiming(BaseModel):
    """When one watcher runs, as configured under `watchers.<name>`; None keeps its spec's timing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    interval_seconds: float | None = Field(default=None, gt=0)
    cron: str | None = None
    """A crontab spec ("*/5 * * * *", UTC); checked by the configuration, which knows the scheduler."""
    resync_seconds: float | None = Field(default=None, gt=0)
    """sync only: how often it reads every in-flight row and observes them all, repairing anything the
    runner's change feed missed (the configuration folds it into `SyncSettings.resync_seconds`)."""

    @model_validator(mode="after")
    def _one_timing(self) -> WatcherTiming:
        if self.interval_seconds is not None and self.cron is not None:
            raise ValueError("set interval_seconds or cron, not both")
        return self


@dataclass(frozen=True)
class ScheduledWatcher:
    name: str
    run: Run
    interval_seconds: float | None
    cron: str | None
    leader_only: bool


class WatcherRegistry:
    def __init__(self, specs: Iterable[WatcherSpec] = ()) -> None:
        self._specs: dict[str, WatcherSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: WatcherSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"a watcher named {spec.name!r} is already registered")
        if (spec.interval_seconds is None) == (spec.cron is None):
            raise ValueError(f"watcher {spec.name!r} needs exactly one of interval_seconds and cron")
        self._specs[spec.name] = spec

    def names(self) -> list[str]:
        return sorted(self._specs)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register every watcher declared by installed packages. A broken one is logged and skipped."""
        loaded = []
        for ep in entry_points(group=group):
            try:
                obj = ep.load()
                spec = obj if isinstance(obj, WatcherSpec) else obj()
                if not isinstance(spec, WatcherSpec):
                    raise TypeError(f"{ep.value} is not a WatcherSpec")
                self.register(spec)
                loaded.append(spec.name)
            except Exception:
                logger.exception("could not load watcher entry point %r (%s)", ep.name, ep.value)
        return loaded

    def effective_timing(self, timings: Mapping[str, WatcherTiming]) -> dict[str, WatcherTiming]:
        """The enabled watchers, each with exactly one of interval and cron: the configured one,
        else its spec's. Raises ValueError on a configured name that no watcher has."""
        unknown = set(timings) - set(self._specs)
        if unknown:
            raise ValueError(f"configuration names unknown watchers: {', '.join(sorted(unknown))}")
        effective = {}
        for name in self.names():
            spec = self._specs[name]
            configured = timings.get(name, WatcherTiming())
            if not configured.enabled:
                continue
            interval, cron = spec.interval_seconds, spec.cron
            if configured.cron is not None:
                interval, cron = None, configured.cron
            elif configured.interval_seconds is not None:
                interval, cron = configured.interval_seconds, None
            # Not re-validated: a spec's own timing was checked by `register`, the configured one by config.
            effective[name] = WatcherTiming.model_construct(interval_seconds=interval, cron=cron)
        return effective

    def build(self, context: WatcherContext, timings: Mapping[str, WatcherTiming]) -> list[ScheduledWatcher]:
        """The enabled watchers with their effective timing. Raises ValueError on an unknown name."""
        built = []
        for name, timing in self.effective_timing(timings).items():
            spec = self._specs[name]
            built.append(
                ScheduledWatcher(name, spec.build(context), timing.interval_seconds, timing.cron, spec.leader_only)
            )
        return built


def _dispatch(ctx: WatcherContext) -> Run:
    return DispatchTasks(
        ctx.repository,
        ctx.runner,
        ctx.clock,
        ctx.fence,
        ctx.dispatch,
        policy=ctx.policy,
        queues=ctx.queues,
        queue_states=ctx.queue_states,
    )


def _sync(ctx: WatcherContext) -> Run:
    return SyncTasks(
        ctx.repository,
        ctx.runner,
        ctx.clock,
        ctx.fence,
        ctx.sync,
        retry=ctx.retry,
        profiles=ctx.policy.profiles,
        wake=ctx.wakeups.waker("sync"),
    )


def _cancel(ctx: WatcherContext) -> Run:
    return CancelTasks(ctx.repository, ctx.runner, ctx.clock, ctx.fence, ctx.cancel)


def _release(ctx: WatcherContext) -> Run:
    return ReleaseJobs(ctx.repository, ctx.runner, ctx.policy.allowed_namespaces, fence=ctx.fence)


def _spawn(ctx: WatcherContext) -> Run:
    if ctx.schedules is None or ctx.calendar is None or ctx.commands is None:
        return lambda: None
    return SpawnSchedules(ctx.schedules, ctx.commands, ctx.calendar, ctx.clock, ctx.fence, ctx.spawn)


def _idle() -> None:
    """The run of a watcher whose ports this context lacks."""


def _notify(ctx: WatcherContext) -> Run:
    if ctx.outbox is None or ctx.poster is None:
        return _idle
    return SendNotifications(ctx.outbox, ctx.repository, ctx.poster, ctx.clock, ctx.fence, ctx.notify)


def _capture_logs(ctx: WatcherContext) -> Run:
    if ctx.job_logs is None or ctx.task_logs is None:
        return _idle
    return CaptureLogs(ctx.repository, ctx.job_logs, ctx.task_logs, ctx.clock, ctx.fence, ctx.logs)


# The built-in watchers' timing, written here only: configuration overrides it per watcher.
BUILTIN_WATCHERS = (
    WatcherSpec("dispatch", _dispatch, interval_seconds=1.0),
    WatcherSpec("sync", _sync, interval_seconds=2.0),
    WatcherSpec("cancel", _cancel, interval_seconds=1.0),
    # Leftovers only (SyncTasks releases each Job as it stores its outcome): see usecases/release.py.
    WatcherSpec("release", _release, interval_seconds=60.0),
    # Every second: a schedule's seconds field can name every second, and an idle tick is one query.
    WatcherSpec("spawn", _spawn, interval_seconds=1.0),
    # Never waits for a receiver (a bounded pool does): see usecases/notify.py.
    WatcherSpec("notify", _notify, interval_seconds=1.0),
    # Apart from sync, so a log download never slows a status write: see usecases/logs.py.
    WatcherSpec("capture_logs", _capture_logs, interval_seconds=2.0),
)


def default_registry(*, load_plugins: bool = True) -> WatcherRegistry:
    registry = WatcherRegistry(BUILTIN_WATCHERS)
    if load_plugins:
        registry.load_entry_points()
    return registry
