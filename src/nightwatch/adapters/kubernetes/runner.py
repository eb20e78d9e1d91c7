"""`KubernetesJobRunner`: the JobRunner port on the official Kubernetes client.

This module only puts the adapter together and keeps the port's shape; the work is in one module per
concern, sharing one `KubeApi` (`api.py`: the client, the `ApiCaller` that rate-limits, times out and
retries every call, raw requests and paginated lists):

- `launch.py`: create a Job, idempotently (a 409 on a Job carrying our task-id label is adoption),
  and turn refusals into domain errors;
- `observe.py`: list Jobs per namespace (never one GET per task), diagnose the ones still waiting or
  failed (`diagnosis.py`, `status.py`), and delete those past their start timeout;
- `release.py`: remove nightwatch's outcome finalizer (`finalizer.py`), delete Jobs, list held ones;
- `informer.py`: with `watch` on (the default), the `ChangeFeed`: a list + watch per namespace with
  tasks in flight, whose cache `observe` and `held` read instead of listing.

Library exceptions never leave the adapter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from nightwatch.adapters.kubernetes.api import KubeApi
from nightwatch.adapters.kubernetes.informer import Informers
from nightwatch.adapters.kubernetes.launch import Launcher
from nightwatch.adapters.kubernetes.logs import KubernetesJobLogs
from nightwatch.adapters.kubernetes.observe import Observer
from nightwatch.adapters.kubernetes.ratelimit import TokenBucket
from nightwatch.adapters.kubernetes.release import Releaser
from nightwatch.adapters.kubernetes.retry import ApiCaller
from nightwatch.adapters.kubernetes.settings import KubernetesSettings
from nightwatch.domain.errors import RetryableError
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.model import TaskId
from nightwatch.domain.observation import JobObservation
from nightwatch.domain.ports import JobRef, LaunchResult


def _utcnow() -> datetime:
    return datetime.now(UTC)


class KubernetesJobRunner:
    def __init__(
        self,
        api_client: client.ApiClient,
        settings: KubernetesSettings | None = None,
        *,
        max_pod_reads: int = 20,
        list_workers: int = 4,
        max_attempts: int = 4,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
        now: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`api_client` from `load_api_client` (its pool must be at least the launch worker count).

        `settings`: rate limit (qps 0 disables it), timeouts, Job TTL, diagnosis delay and page size,
        as configured under `runner:`. `max_pod_reads`: pod lists per `observe` call at most.
        `list_workers`: namespaces listed concurrently by `observe` (the pool must allow as many).
        """
        settings = settings or KubernetesSettings()
        calls = ApiCaller(
            TokenBucket(settings.qps, settings.burst, sleep=sleep),
            request_timeout=settings.request_timeout_seconds,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            sleep=sleep,
        )
        self._api = KubeApi(api_client, calls, page_size=settings.list_page_size)
        self.logs = KubernetesJobLogs(self._api, request_timeout_seconds=settings.request_timeout_seconds)
        """The `JobLogs` port over the same client and rate limit, for users reading a task's output."""
        self.captured_logs = KubernetesJobLogs(
            self._api, request_timeout_seconds=settings.request_timeout_seconds, background=True
        )
        """The same, for the `capture_logs` watcher: from the rate limiter's spare tokens only."""
        self._informers = Informers(
            self._api,
            watch_timeout=settings.watch_timeout_seconds,
            connect_timeout=settings.request_timeout_seconds,
            recheck_seconds=settings.watch_recheck_seconds,
            start_timeout=settings.start_timeout_seconds,
        )
        self._launcher = Launcher(
            self._api,
            default_ttl=settings.ttl_seconds_after_finished or None,  # ttl 0: keep finished Jobs
            kueue=settings.kueue_for,
            assume=self._informers.assume if settings.watch else None,
            forget=self._informers.forget,
        )
        self._watch = settings.watch
        self._releaser = Releaser(self._api, workers=list_workers, jobs_of=self._jobs_of)
        self._observer = Observer(
            self._api,
            self._releaser.delete,
            pending_after=settings.pending_diagnosis_after_seconds,
            start_timeout=settings.start_timeout_seconds,
            max_pod_reads=max_pod_reads,
            list_workers=list_workers,
            now=now,
            jobs_of=self._jobs_of if settings.watch else None,  # a cache's misses are read by name
        )

    def close(self) -> None:
        self._informers.close()
        self._api.client.close()  # type: ignore[no-untyped-call]

    def _jobs_of(self, namespace: str) -> dict[str, dict[str, Any]] | RetryableError:
        """name -> Job in `namespace`: the informer's cache once it has listed, else one list."""
        cached = self._informers.snapshot(namespace)
        return cached if cached is not None else self._api.list_jobs_or_error(namespace)

    @property
    def informers(self) -> Informers:
        return self._informers

    def launch(self, request: LaunchRequest) -> LaunchResult:
        if self._watch:
            self._informers.ensure(request.namespace)  # first, so the launch's Job is assumed into it
        result = self._launcher.launch(request)
        if self._watch and result.adopted:
            # Queued as changed: an adopted Job (created before a crash or an outage) may have finished
            # long ago and send no event again. A Job just created needs nothing: it is in the cache from
            # the body sent, its events queue its task, and an event that beats the Pending write is read
            # again next tick (sync carries rows it found still Normal). Queueing every launch made sync
            # read back each row dispatch had just written.
            self._informers.queue.add({request.task_id})
        return result

    # -- ChangeFeed ---------------------------------------------------------------------------------
    def follow(self, namespaces: Collection[str], wake: Callable[[], None]) -> None:
        if self._watch:
            self._informers.follow(namespaces, wake)

    def take_changes(self) -> set[TaskId]:
        return self._informers.take() if self._watch else set()

    def stop_following(self) -> None:
        self._informers.stop()

    @property
    def follows_changes(self) -> bool:
        """False with `watch` off: sync then observes every in-flight task each tick (the polling method)."""
        return self._watch

    def observe(self, refs: Sequence[JobRef]) -> Mapping[TaskId, JobObservation]:
        return self._observer.observe(refs)

    def delete(self, ref: JobRef) -> None:
        self._releaser.delete(ref)

    def release(self, refs: Sequence[JobRef]) -> None:
        self._releaser.release(refs)

    def held(self, namespace: str, *, unfinished: bool = False) -> list[JobRef]:
        return self._releaser.held(namespace, unfinished=unfinished)
