"""The composition root: the only module that imports adapters and wires them to the use cases.

The container holds the validated `Settings` whole; each provider takes its own section from it
(`settings.provided.dispatch`), never a copy flattened into a dict. `Selector` providers pick the
repository (by the database URL's scheme), the lock and the runner from it. Anything that connects
is a `Resource`, created on first use (never at import) and closed by `shutdown_resources()`. Tests
build a container from a dict and override providers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from nightwatch.adapters.apscheduler import ApschedulerCalendar, ApschedulerTicker
from nightwatch.adapters.clock import SystemClock
from nightwatch.adapters.kubernetes.settings import KubernetesSettings
from nightwatch.adapters.local.settings import LocalRunnerSettings
from nightwatch.adapters.memory import (
    MemoryLeaderLock,
    MemoryOutbox,
    MemoryQueueStates,
    MemoryScheduleRepository,
    MemoryTaskLogs,
    MemoryTaskRepository,
)
from nightwatch.app.config import ApiSettings, DatabaseSettings, HttpSettings, LockSettings, Settings
from nightwatch.app.leadership import Leadership
from nightwatch.app.metrics import Metrics
from nightwatch.app.profiles import LiveProfiles
from nightwatch.app.service import Readiness, Service
from nightwatch.app.usecases.cancel import RequestCancel
from nightwatch.app.usecases.logs import ReadTaskLogs
from nightwatch.app.usecases.queues import ExplainWaiting, QueueAdmin
from nightwatch.app.usecases.render import RenderJob
from nightwatch.app.usecases.schedules import ScheduleCommands
from nightwatch.app.usecases.submit import SubmitTask
from nightwatch.app.watchers import Wakeups, WatcherContext, WatcherTiming, default_registry
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.ports import (
    JobLogs,
    JobRunner,
    Outbox,
    QueueStates,
    ScheduleRepository,
    TaskLogStore,
    TaskQueries,
    TaskRepository,
)
from nightwatch.domain.queues import queues_from
from nightwatch.domain.submission import SubmissionPolicy

logger = logging.getLogger(__name__)


def _sql_repository(database: DatabaseSettings) -> Iterator[TaskRepository]:
    from nightwatch.adapters.sql import SqlTaskRepository, create_engine_for

    repository = SqlTaskRepository(create_engine_for(database.url, pool_size=database.pool_size))
    try:
        yield repository
    finally:
        repository.close()


def _sql_schedules(repository: Any) -> ScheduleRepository:
    """The schedule table on the task repository's engine (one pool, one database)."""
    from nightwatch.adapters.sql import SqlScheduleRepository

    return SqlScheduleRepository(repository.engine)


def _outbox(repository: TaskRepository) -> Outbox:
    """The outbox beside the task table: same store, same engine."""
    if isinstance(repository, MemoryTaskRepository):
        return MemoryOutbox(repository)
    from nightwatch.adapters.sql.outbox import SqlOutbox

    return SqlOutbox(repository.engine)  # type: ignore[attr-defined]


def _task_logs(repository: TaskRepository) -> TaskLogStore:
    if isinstance(repository, MemoryTaskRepository):
        return MemoryTaskLogs(repository)
    from nightwatch.adapters.sql.tasklog import SqlTaskLogs

    return SqlTaskLogs(repository.engine)  # type: ignore[attr-defined]


def _runner_logs(runner: JobRunner) -> JobLogs:
    """The Kubernetes runner serves its Jobs' output (`logs`) over its own client and rate limit."""
    logs: JobLogs = runner.logs  # type: ignore[attr-defined]
    return logs


def _runner_captured_logs(runner: JobRunner) -> JobLogs:
    """The same for the `capture_logs` watcher, whose requests wait for the rate limiter's spare tokens."""
    logs: JobLogs = runner.captured_logs  # type: ignore[attr-defined]
    return logs


def _local_logs(settings: LocalRunnerSettings) -> JobLogs:
    # Only the Job directories: `nightwatch logs` need not start a local runner (which sweeps them).
    from nightwatch.adapters.local.logs import LocalJobLogs

    return LocalJobLogs(Path(settings.local_state_dir))


def _webhook_poster(workers: int) -> Iterator[Any]:
    from nightwatch.adapters.webhook import HttpxWebhookPoster

    poster = HttpxWebhookPoster(max_connections=max(workers, 4))
    try:
        yield poster
    finally:
        poster.close()


def _sql_queue_states(repository: TaskRepository) -> QueueStates:
    from nightwatch.adapters.sql import SqlTaskRepository
    from nightwatch.adapters.sql.queues import SqlQueueStates

    assert isinstance(repository, SqlTaskRepository)  # the Selector picks both by the database kind
    return SqlQueueStates(repository.engine)


def _redis_lock(lock: LockSettings, owner: str) -> Iterator[Any]:
    from nightwatch.adapters.redlock import RedlockLeaderLock

    redlock = RedlockLeaderLock.from_urls(lock.redis_urls, owner=owner, key=lock.key, ttl_seconds=lock.ttl_seconds)
    try:
        yield redlock
    finally:
        redlock.close()


def _local_runner(settings: LocalRunnerSettings) -> Iterator[JobRunner]:
    from nightwatch.adapters.local import LocalJobRunner

    runner = LocalJobRunner(settings)
    try:
        yield runner
    finally:
        runner.close()


def _kubernetes_runner(settings: KubernetesSettings, workers: int, replica_id: str) -> Iterator[JobRunner]:
    from nightwatch.adapters.kubernetes import KubernetesJobRunner, load_api_client

    api_client = load_api_client(
        settings.kubeconfig,
        settings.context,
        pool_maxsize=max(workers + 4, 16),
        user_agent=f"nightwatch/{replica_id}",
    )
    adapter = KubernetesJobRunner(api_client, settings)
    try:
        yield adapter
    finally:
        adapter.close()


def _job_builder(settings: Settings) -> Callable[[LaunchRequest], dict[str, Any]]:
    """The Kubernetes runner's own Job builder, with its default TTL and its namespace's Kueue mode
    (what `render` shows)."""
    from nightwatch.adapters.kubernetes.jobbody import build_job_body

    runner = settings.runner
    ttl = runner.ttl_seconds_after_finished or None

    def build(request: LaunchRequest) -> dict[str, Any]:
        return build_job_body(
            request, default_ttl_seconds_after_finished=ttl, kueue=runner.kueue_for(request.namespace)
        )

    return build
def _redis_nudges(lock: LockSettings) -> Iterator[Any]:
    from nightwatch.adapters.redisnudge import RedisNudges

    nudges = RedisNudges(lock.redis_urls, channel=f"{lock.key}:nudge")
    try:
        yield nudges
    finally:
        nudges.close()


def _nudge(wakeups: Wakeups, remote: Any) -> Callable[[], None]:
    """After a submit: wake dispatch here (this replica may lead) and tell the others (one of them may)."""

    def nudge() -> None:
        wakeups.wake("dispatch")
        if remote is not None:
            remote.publish("dispatch")

    return nudge


def _replica_id(settings: Settings) -> str:
    from nightwatch.adapters.redlock import default_replica_id

    return settings.replica_id or default_replica_id()


def _web_app(
    repository: TaskQueries,
    submit: SubmitTask,
    cancel: RequestCancel,
    render: RenderJob,
    schedules: ScheduleCommands,
    logs: ReadTaskLogs,
    queues: QueueAdmin,
    waiting: ExplainWaiting,
    api: ApiSettings,
    http: HttpSettings,
    metrics: Metrics,
    readiness: Readiness,
) -> Any:
    # Imported here: the CLI's submit/list/show/cancel build a container too, without FastAPI.
    from nightwatch.app.api import ApiBackend, create_app

    backend = ApiBackend(
        repository,
        submit,
        cancel,
        render=render,
        schedules=schedules,
        logs=logs,
        queues=queues,
        waiting=waiting,
    )
    return create_app(
        backend,
        api,
        reads_open=api.reads_are_open(),
        registry=metrics.registry,
        readiness=readiness,
        metrics_open=None if http.metrics_port is not None else api.metrics_are_open(separate_port=False),
        body_timeout_seconds=http.body_timeout_seconds,
    )


def _metrics_app(api: ApiSettings, http: HttpSettings, metrics: Metrics) -> Any:
    from nightwatch.app.api import create_metrics_app

    return create_metrics_app(
        api,
        metrics_open=api.metrics_are_open(separate_port=True),
        registry=metrics.registry,
        body_timeout_seconds=http.body_timeout_seconds,
    )


def _http_server(settings: Settings, web_app: Any, metrics_app: providers.Provider[Any]) -> Any:
    """The HTTP ports `nightwatch run` serves (bound here: a taken port is an OSError)."""
    from nightwatch.app.http import HttpServer

    if settings.runner.backend == "local" and settings.runner.local_multi_user:
        logger.warning(
            "runner.local_multi_user is true: tasks of every user run as nightwatch's own user on this "
            "machine, so any task can read nightwatch's configuration (every API token), its database "
            "file and the other users' task files; use the kubernetes runner to keep users apart"
        )
    http = settings.http
    host = settings.api.bind_host(http.host)
    return HttpServer(host, http, web_app, metrics_app() if http.metrics_port is not None else None)


def _service(
    context: WatcherContext,
    queries: TaskQueries,
    timings: Mapping[str, WatcherTiming],
    ticker: ApschedulerTicker,
    leadership: Leadership,
    metrics: Metrics,
    load_plugins: bool,
    nudges: Any,
) -> Service:
    watchers = default_registry(load_plugins=load_plugins).build(context, timings)
    metrics.watch_tasks(queries)
    if nudges is not None:
        nudges.listen(context.wakeups.wake)  # the service ignores them unless this replica leads
    return Service(watchers, ticker, leadership, metrics, wakeups=context.wakeups)


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    """The validated configuration, whole; every provider reads its own section from it."""
    load_plugins = providers.Object(True)
    """Whether third-party watchers are loaded from entry points."""

    # Derived once per container: the lock owner and the Kubernetes user agent must agree.
    replica_id = providers.Singleton(_replica_id, settings)
    profiles = providers.Singleton(LiveProfiles, providers.Callable(Settings.profile_catalog, settings))
    """The Job profiles in force; `nightwatch run` swaps them on SIGHUP."""
    queues = providers.Singleton(
        queues_from, settings.provided.queues, max_in_flight=settings.provided.dispatch.max_in_flight
    )
    submission_policy = providers.Singleton(
        SubmissionPolicy,
        allowed_namespaces=providers.Callable(frozenset, settings.provided.runner.allowed_namespaces),
        profiles=profiles,
        queues=queues.provided.names,
    )

    clock = providers.Singleton(SystemClock)
    wakeups = providers.Singleton(Wakeups)
    """How watchers and the API ask for a tick now (connected to the ticker by the service)."""
    metrics = providers.Singleton(Metrics)

    repository = providers.Selector(
        settings.provided.database.kind,
        sqlite=providers.Resource(_sql_repository, settings.provided.database),
        mysql=providers.Resource(_sql_repository, settings.provided.database),
        postgresql=providers.Resource(_sql_repository, settings.provided.database),
        memory=providers.Singleton(MemoryTaskRepository),
    )

    schedules = providers.Selector(
        settings.provided.database.kind,
        sqlite=providers.Singleton(_sql_schedules, repository),
        mysql=providers.Singleton(_sql_schedules, repository),
        postgresql=providers.Singleton(_sql_schedules, repository),
        memory=providers.Singleton(MemoryScheduleRepository, repository),
    )
    calendar = providers.Singleton(ApschedulerCalendar)

    queue_states = providers.Selector(
        settings.provided.database.kind,
        sqlite=providers.Singleton(_sql_queue_states, repository),
        mysql=providers.Singleton(_sql_queue_states, repository),
        postgresql=providers.Singleton(_sql_queue_states, repository),
        memory=providers.Singleton(MemoryQueueStates),
    )
    """Which queues are paused: the `queue_state` table, on the repository's engine."""

    lock = providers.Selector(
        settings.provided.lock.backend,
        memory=providers.Singleton(MemoryLeaderLock, owner=replica_id, ttl_seconds=settings.provided.lock.ttl_seconds),
        redis=providers.Resource(_redis_lock, lock=settings.provided.lock, owner=replica_id),
    )

    runner = providers.Selector(
        settings.provided.runner.backend,
        local=providers.Resource(_local_runner, settings.provided.runner),
        kubernetes=providers.Resource(
            _kubernetes_runner,
            settings.provided.runner,
            workers=settings.provided.dispatch.workers,
            replica_id=replica_id,
        ),
    )

    nudges = providers.Selector(
        settings.provided.lock.backend,
        memory=providers.Object(None),
        redis=providers.Resource(_redis_nudges, lock=settings.provided.lock),
    )
    """Redis pub/sub between replicas: a submission on one wakes the leader's dispatch (None: one process)."""

    leadership = providers.Singleton(
        Leadership,
        lock=lock,
        repository=repository,
        renew_interval=settings.provided.lock.renew_interval,
        retry_interval=settings.provided.lock.retry_interval_seconds,
        safety_margin=settings.provided.lock.safety_margin,
        metrics=metrics,
    )

    outbox = providers.Singleton(_outbox, repository)
    task_logs = providers.Singleton(_task_logs, repository)
    local_logs = providers.Singleton(_local_logs, settings.provided.runner)
    job_logs = providers.Selector(
        settings.provided.runner.backend,
        local=local_logs,
        kubernetes=providers.Singleton(_runner_logs, runner),
    )
    captured_logs = providers.Selector(
        settings.provided.runner.backend,
        local=local_logs,
        kubernetes=providers.Singleton(_runner_captured_logs, runner),
    )
    webhook_poster = providers.Resource(_webhook_poster, settings.provided.notify.workers)
    read_logs = providers.Singleton(
        ReadTaskLogs, queries=repository, job_logs=job_logs, stored=task_logs, settings=settings.provided.logs
    )
    """One per replica: it holds the replica's cap on concurrent log streams."""

    watcher_context = providers.Singleton(
        WatcherContext,
        repository=repository,
        runner=runner,
        clock=clock,
        fence=leadership,
        dispatch=settings.provided.dispatch,
        sync=settings.provided.sync,
        retry=settings.provided.retry,
        cancel=settings.provided.cancel,
        policy=submission_policy,
        wakeups=wakeups,
        schedules=schedules,
        calendar=calendar,
        commands=repository,
        spawn=settings.provided.spawn,
        outbox=outbox,
        poster=webhook_poster,
        notify=settings.provided.notify,
        job_logs=captured_logs,
        task_logs=task_logs,
        logs=settings.provided.logs,
        queues=queues,
        queue_states=queue_states,
    )
    ticker = providers.Singleton(ApschedulerTicker)
    service = providers.Singleton(
        _service,
        context=watcher_context,
        queries=repository,
        timings=settings.provided.watchers,
        ticker=ticker,
        leadership=leadership,
        metrics=metrics,
        load_plugins=load_plugins,
        nudges=nudges,
    )
    readiness = providers.Singleton(Readiness, repository=repository, leadership=leadership)

    submit_task = providers.Factory(
        SubmitTask,
        repository=repository,
        clock=clock,
        policy=submission_policy,
        nudge=providers.Singleton(_nudge, wakeups=wakeups, remote=nudges),
    )
    request_cancel = providers.Factory(RequestCancel, repository=repository)
    render_job = providers.Factory(
        RenderJob, queries=repository, policy=submission_policy, build=providers.Callable(_job_builder, settings)
    )

    schedule_commands = providers.Factory(
        ScheduleCommands,
        schedules=schedules,
        tasks=repository,
        calendar=calendar,
        clock=clock,
        policy=submission_policy,
        queries=repository,
    )
    queue_admin = providers.Factory(QueueAdmin, queues=queues, states=queue_states, queries=repository, clock=clock)
    explain_waiting = providers.Factory(
        ExplainWaiting, queues=queues, states=queue_states, queries=repository, clock=clock, policy=submission_policy
    )

    web_app = providers.Singleton(
        _web_app,
        repository=repository,
        submit=submit_task,
        cancel=request_cancel,
        render=render_job,
        schedules=schedule_commands,
        logs=read_logs,
        queues=queue_admin,
        waiting=explain_waiting,
        api=settings.provided.api,
        http=settings.provided.http,
        metrics=metrics,
        readiness=readiness,
    )
    """The ASGI application `nightwatch run` serves (REST API, web page, probes, metrics unless
    `http.metrics_port` gives them a port of their own)."""
    metrics_app = providers.Singleton(
        _metrics_app, api=settings.provided.api, http=settings.provided.http, metrics=metrics
    )
    """/metrics alone, for `http.metrics_port`."""
    http_server = providers.Singleton(
        _http_server, settings=settings, web_app=web_app, metrics_app=metrics_app.provider
    )
    """The bound HTTP ports (main, and metrics when separate); `nightwatch run` starts and stops them."""


def build_container(settings: Settings | Mapping[str, Any] | None = None, *, load_plugins: bool = True) -> Container:
    """A container for these settings (a Settings object, or a dict validated like the YAML file)."""
    if settings is None:
        settings = Settings()
    elif not isinstance(settings, Settings):
        settings = Settings.model_validate(settings)
    return Container(settings=providers.Object(settings), load_plugins=providers.Object(load_plugins))
