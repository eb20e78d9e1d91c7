"""The composition root: the only module that imports adapters and wires them to the use cases.

`Selector` providers pick the repository (by the database URL's scheme), the lock and the runner
from configuration. Anything that connects is a `Resource`, created on first use (never at import)
and closed by `shutdown_resources()`. Tests build a container from a dict and override providers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from nightwatch.adapters.apscheduler import ApschedulerTicker
from nightwatch.adapters.clock import SystemClock
from nightwatch.adapters.memory import MemoryLeaderLock, MemoryTaskRepository
from nightwatch.app.config import ApiSettings, Settings, database_kind
from nightwatch.app.leadership import Leadership
from nightwatch.app.metrics import Metrics
from nightwatch.app.service import Readiness, Service
from nightwatch.app.usecases.cancel import RequestCancel
from nightwatch.app.usecases.dispatch import DispatchSettings
from nightwatch.app.usecases.submit import SubmitTask
from nightwatch.app.watchers import WatcherContext, WatcherSchedule, default_registry
from nightwatch.domain.ports import JobRunner, TaskQueries, TaskRepository
from nightwatch.domain.submission import SubmissionPolicy


def _sql_repository(url: str, pool_size: int) -> Iterator[TaskRepository]:
    from nightwatch.adapters.sql import SqlTaskRepository, create_engine_for

    repository = SqlTaskRepository(create_engine_for(url, pool_size=pool_size))
    try:
        yield repository
    finally:
        repository.close()


def _redis_lock(urls: list[str], owner: str, key: str, ttl_seconds: float) -> Iterator[Any]:
    from nightwatch.adapters.redlock import RedlockLeaderLock

    lock = RedlockLeaderLock.from_urls(urls, owner=owner, key=key, ttl_seconds=ttl_seconds)
    try:
        yield lock
    finally:
        lock.close()


def _local_runner(state_dir: str) -> Iterator[JobRunner]:
    from nightwatch.adapters.local import LocalJobRunner

    runner = LocalJobRunner(Path(state_dir))
    try:
        yield runner
    finally:
        runner.close()


def _kubernetes_runner(runner: Mapping[str, Any], workers: int, replica_id: str) -> Iterator[JobRunner]:
    from nightwatch.adapters.kubernetes import KubernetesJobRunner, load_api_client

    api_client = load_api_client(
        runner["kubeconfig"],
        runner["context"],
        pool_maxsize=max(workers + 4, 16),
        user_agent=f"nightwatch/{replica_id}",
    )
    adapter = KubernetesJobRunner(
        api_client,
        qps=runner["qps"],
        burst=runner["burst"],
        default_ttl_seconds_after_finished=runner["ttl_seconds_after_finished"] or None,
        pending_diagnosis_after=timedelta(seconds=runner["pending_diagnosis_after_seconds"]),
        list_page_size=runner["list_page_size"],
        request_timeout=runner["request_timeout_seconds"],
    )
    try:
        yield adapter
    finally:
        adapter.close()


def _submission_policy(allowed_namespaces: list[str]) -> SubmissionPolicy:
    return SubmissionPolicy(allowed_namespaces=frozenset(allowed_namespaces))


def _dispatch_settings(dispatch: Mapping[str, Any]) -> DispatchSettings:
    return DispatchSettings(
        batch_size=dispatch["batch_size"],
        workers=dispatch["workers"],
        write_batch_size=dispatch["write_batch_size"],
    )


def _schedules(watchers: Mapping[str, Mapping[str, Any]]) -> dict[str, WatcherSchedule]:
    return {name: WatcherSchedule(**values) for name, values in watchers.items()}


def _web_app(
    repository: TaskQueries,
    submit: SubmitTask,
    cancel: RequestCancel,
    api: Mapping[str, Any],
    http_host: str,
    metrics: Metrics,
    readiness: Readiness,
) -> Any:
    # Imported here: the CLI's submit/list/show/cancel build a container too, without FastAPI.
    from nightwatch.app.api import ApiBackend, create_app

    settings = ApiSettings.model_validate(api)
    backend = ApiBackend(repository, submit, cancel)
    return create_app(
        backend,
        settings,
        reads_open=settings.reads_are_open(settings.bind_host(http_host)),
        registry=metrics.registry,
        readiness=readiness,
    )


def _service(
    context: WatcherContext,
    queries: TaskQueries,
    schedules: dict[str, WatcherSchedule],
    ticker: ApschedulerTicker,
    leadership: Leadership,
    metrics: Metrics,
    load_plugins: bool,
) -> Service:
    watchers = default_registry(load_plugins=load_plugins).build(context, schedules)
    metrics.watch_tasks(queries)
    return Service(watchers, ticker, leadership, metrics)


class Container(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)

    clock = providers.Singleton(SystemClock)
    metrics = providers.Singleton(Metrics)

    repository = providers.Selector(
        config.database.kind,
        sqlite=providers.Resource(_sql_repository, url=config.database.url, pool_size=config.database.pool_size),
        mysql=providers.Resource(_sql_repository, url=config.database.url, pool_size=config.database.pool_size),
        memory=providers.Singleton(MemoryTaskRepository),
    )

    lock = providers.Selector(
        config.lock.backend,
        memory=providers.Singleton(MemoryLeaderLock, owner=config.replica_id, ttl_seconds=config.lock.ttl_seconds),
        redis=providers.Resource(
            _redis_lock,
            urls=config.lock.redis_urls,
            owner=config.replica_id,
            key=config.lock.key,
            ttl_seconds=config.lock.ttl_seconds,
        ),
    )

    runner = providers.Selector(
        config.runner.backend,
        local=providers.Resource(_local_runner, state_dir=config.runner.local_state_dir),
        kubernetes=providers.Resource(
            _kubernetes_runner, runner=config.runner, workers=config.dispatch.workers, replica_id=config.replica_id
        ),
    )

    leadership = providers.Singleton(
        Leadership,
        lock=lock,
        repository=repository,
        renew_interval=config.lock.renew_interval,
        retry_interval=config.lock.retry_interval_seconds,
        safety_margin=config.lock.safety_margin,
        metrics=metrics,
    )

    submission_policy = providers.Singleton(_submission_policy, allowed_namespaces=config.runner.allowed_namespaces)
    dispatch_settings = providers.Singleton(_dispatch_settings, dispatch=config.dispatch)
    watcher_context = providers.Singleton(
        WatcherContext,
        repository=repository,
        runner=runner,
        clock=clock,
        fence=leadership,
        dispatch=dispatch_settings,
        policy=submission_policy,
    )
    ticker = providers.Singleton(ApschedulerTicker)
    service = providers.Singleton(
        _service,
        context=watcher_context,
        queries=repository,
        schedules=providers.Callable(_schedules, config.watchers),
        ticker=ticker,
        leadership=leadership,
        metrics=metrics,
        load_plugins=config.load_plugins,
    )
    readiness = providers.Singleton(Readiness, repository=repository, leadership=leadership)

    submit_task = providers.Factory(
        SubmitTask,
        repository=repository,
        clock=clock,
        policy=submission_policy,
    )
    request_cancel = providers.Factory(RequestCancel, repository=repository)

    web_app = providers.Singleton(
        _web_app,
        repository=repository,
        submit=submit_task,
        cancel=request_cancel,
        api=config.api,
        http_host=config.http.host,
        metrics=metrics,
        readiness=readiness,
    )
    """The ASGI application `nightwatch run` serves (REST API, web page, probes, metrics)."""


def container_config(settings: Settings, *, load_plugins: bool = True) -> dict[str, Any]:
    """The plain dict the container's Configuration holds, with derived values filled in."""
    from nightwatch.adapters.redlock import default_replica_id

    data = settings.model_dump()
    data["database"]["kind"] = database_kind(settings.database.url)
    data["lock"]["renew_interval"] = settings.lock.renew_interval
    data["lock"]["safety_margin"] = settings.lock.safety_margin
    data["replica_id"] = settings.replica_id or default_replica_id()
    data["load_plugins"] = load_plugins
    return data


def build_container(settings: Settings | Mapping[str, Any] | None = None, *, load_plugins: bool = True) -> Container:
    """A container for these settings (a Settings object, or a dict validated like the YAML file)."""
    if settings is None:
        settings = Settings()
    elif not isinstance(settings, Settings):
        settings = Settings.model_validate(settings)
    container = Container()
    container.config.from_dict(container_config(settings, load_plugins=load_plugins))
    return container
