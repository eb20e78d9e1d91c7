"""Observing many tasks' Jobs at once: `Observer`, the `observe` half of the Kubernetes runner.

Jobs come per namespace from the informer's cache once it has listed (`informer.py`), else from a
list by label selector with pagination (`KubeApi.list`), a few namespaces concurrently, never one GET
per task; a namespace that cannot be read leaves only its own tasks
unobserved. Pods are read only for a root cause: one list of pending pods per namespace with stuck
tasks (at most once per diagnosis period, see `diagnosis.py`), and the pods of each newly failed task
(capped per call) once its pods have terminated (a Job past its deadline has `FailureTarget` while
they still run, and no exit code yet). A Job with no pod at all gets the Job controller's
`FailedCreate` Event (one Events list per namespace per call; after a 403, none there for a while,
see `ForbiddenEvents`). A Job with no running pod
`startTimeoutSeconds` after it started is deleted and observed as failed with the last known reason.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from nightwatch.adapters.kubernetes.api import KubeApi, ListForbidden, why_no_job_can_exist
from nightwatch.adapters.kubernetes.diagnosis import (
    JOB_CREATE_FAILURES,
    NO_POD_GRACE_SECONDS,
    ForbiddenEvents,
    PendingDiagnoses,
    creation_failure_of,
    creation_failures,
)
from nightwatch.adapters.kubernetes.finalizer import is_dying, is_finished
from nightwatch.adapters.kubernetes.jobbody import task_selector
from nightwatch.adapters.kubernetes.legacy import adopt_legacy_jobs
from nightwatch.adapters.kubernetes.status import (
    FailureEvidence,
    conditions_of,
    failure_evidence,
    is_stale,
    observe_job,
    pods_still_terminating,
    start_timeout_of,
    started_at_of,
    task_id_of,
)
from nightwatch.domain.errors import RetryableError
from nightwatch.domain.model import TaskId
from nightwatch.domain.observation import JobCondition, JobObservation, JobPhase
from nightwatch.domain.ports import JobRef

logger = logging.getLogger(__name__)


class Observer:
    def __init__(
        self,
        api: KubeApi,
        delete: Callable[[JobRef], None],
        *,
        pending_after: float,
        start_timeout: int,
        max_pod_reads: int,
        list_workers: int,
        now: Callable[[], datetime],
        jobs_of: Callable[[str], dict[str, dict[str, Any]] | RetryableError] | None = None,
    ) -> None:
        """`delete`: how a Job past its start timeout is deleted (the runner's own `delete`).
        `jobs_of`: name -> Job of a namespace (the informer's cache, else a list); a list by default.
        With `jobs_of` (a cache), a Job the cache lacks is read by name before it is called missing."""
        self._api = api
        self._jobs_of = jobs_of or api.list_jobs_or_error
        self._confirm_absent = jobs_of is not None
        self._delete = delete
        self._pending_after = pending_after
        self._start_timeout = start_timeout
        self._max_pod_reads = max_pod_reads
        self._list_workers = list_workers
        self._now = now
        self._pending = PendingDiagnoses(self._list_pending_pods, max(pending_after, 1.0), now)
        self._no_pod_after = min(pending_after, NO_POD_GRACE_SECONDS)
        self._forbidden_events = ForbiddenEvents(now)

    def observe(self, refs: Sequence[JobRef]) -> Mapping[TaskId, JobObservation]:
        by_namespace: dict[str, list[JobRef]] = defaultdict(list)
        result: dict[TaskId, JobObservation] = {}
        for ref in refs:
            impossible = why_no_job_can_exist(ref)
            if impossible:
                # A row written by hand as Pending in namespace "" or "a/b": listing there fails
                # forever (and alone, failed the whole tick). No Job can have that name, so it is missing.
                result[ref.task_id] = JobObservation(JobPhase.MISSING, "InvalidName", impossible)
                continue
            by_namespace[ref.namespace].append(ref)
        budget = [self._max_pod_reads]
        now = self._now()
        namespaces = list(by_namespace)
        failures: list[RetryableError] = []
        # Namespaces are listed a few at a time, so reading one page overlaps with the server
        # producing the next; results are consumed in order.
        with contextlib.ExitStack() as stack:
            if len(namespaces) > 1:
                pool = stack.enter_context(ThreadPoolExecutor(min(self._list_workers, len(namespaces)), "observe"))
                listed: Iterable[dict[str, dict[str, Any]] | RetryableError] = pool.map(self._jobs_of, namespaces)
            else:  # most users run one namespace: no pool (its threads cost more than a cached read)
                listed = map(self._jobs_of, namespaces)
            for namespace, jobs in zip(namespaces, listed, strict=True):
                if isinstance(jobs, RetryableError):
                    # One namespace that cannot be read (RBAC, a timeout) must not stop the others:
                    # its tasks get no observation this tick and stay as they are.
                    logger.warning("not observing %d task(s) in %s: %s", len(by_namespace[namespace]), namespace, jobs)
                    failures.append(jobs)
                    continue
                self._observe_namespace(namespace, by_namespace[namespace], jobs, now, budget, result)
        if failures and len(failures) == len(namespaces):
            raise failures[0]
        return result

    def _observe_namespace(
        self,
        namespace: str,
        refs: list[JobRef],
        jobs: dict[str, dict[str, Any]],
        now: datetime,
        budget: list[int],
        result: dict[TaskId, JobObservation],
    ) -> None:
        waiting: list[_Waiting] = []
        refs, jobs = adopt_legacy_jobs(self._api.calls.call, self._api.request, refs, jobs)
        for ref in refs:
            job = jobs.get(ref.job_name)
            if self._confirm_absent and (job is None or task_id_of(job) != str(ref.task_id)):
                # A cache can be behind: a Job created a moment ago whose ADDED event has not arrived,
                # or a watch down (an outage, its backoff) while Jobs were created. Missing fails a
                # task, so only the API server says so: one GET, for the rare Job the cache lacks.
                try:
                    job = self._read_job(ref)
                except RetryableError as exc:
                    logger.warning("cannot read Job %s/%s yet: %s", ref.namespace, ref.job_name, exc)
                    continue  # no observation: the task stays as it is, observed again
            # Same name but another task's id: not this task's Job (a reused name), so missing.
            if job is None or task_id_of(job) != str(ref.task_id):
                result[ref.task_id] = JobObservation.missing(ref.namespace, ref.job_name)
                continue
            if is_dying(job) and not is_finished(job):
                # Deleted before it finished (a user, a namespace going away): it never will now.
                result[ref.task_id] = JobObservation.missing(ref.namespace, ref.job_name)
                continue
            conditions = conditions_of(job)
            observation = observe_job(job, "", conditions)
            if observation.phase is JobPhase.FAILED:
                if pods_still_terminating(job, conditions):
                    # FailureTarget (a deadline) while its pods still run: their exit codes are not
                    # known yet, so no observation: the task stays as it is until Failed (terminating 0).
                    continue
                # Each task fails once, so reading its pods for the exit code is not a per-tick cost.
                evidence = self._failure_evidence(ref, budget)
                if evidence is None:
                    # Its pods cannot be read now (this call's budget is spent, a 429, an outage): no
                    # observation, so the attempt is judged on its evidence later, not as an unknown
                    # failure now (which no retry policy's exitCodes would match).
                    continue
                observation = observe_job(job, "", conditions, evidence)
            elif observation.phase is JobPhase.PENDING:
                waiting.append(self._waiting(ref, job, conditions, now))
            result[ref.task_id] = observation
        self._diagnose_waiting(namespace, waiting, result)

    def _waiting(self, ref: JobRef, job: dict[str, Any], conditions: list[JobCondition], now: datetime) -> _Waiting:
        """What to read for a Job still pending, and whether its start timeout has passed."""
        timeout = start_timeout_of(job, self._start_timeout)
        started = started_at_of(job, ref)
        timed_out = bool(timeout) and started is not None and (now - started).total_seconds() >= timeout
        status = job.get("status") or {}
        no_pod = not status.get("active") and (timed_out or is_stale(ref.started_at, now, self._no_pod_after))
        pods = timed_out or is_stale(ref.started_at, now, self._pending_after)
        return _Waiting(ref, job, conditions, read_pods=pods, read_events=no_pod, timeout=timeout if timed_out else 0)

    def _diagnose_waiting(self, namespace: str, waiting: list[_Waiting], result: dict[TaskId, JobObservation]) -> None:
        """Diagnose pending Jobs (pods, then FailedCreate Events: one list each per namespace at most),
        and delete those past their start timeout."""
        diagnoses = self._pending.for_namespace(namespace) if any(w.read_pods for w in waiting) else {}
        failures = self._creation_failures(namespace) if any(w.read_events for w in waiting) else {}
        for item in waiting:
            ref = item.ref
            diagnosis = diagnoses.get(str(ref.task_id), "") if item.read_pods else ""
            if not diagnosis and item.read_events:
                diagnosis = creation_failure_of(failures, item.job)
            if diagnosis:
                result[ref.task_id] = observe_job(item.job, diagnosis, item.conditions)
            if item.timeout:
                last_reason = result[ref.task_id].summary
                try:
                    self._delete(ref)
                except RetryableError as exc:
                    # The Job still exists: the task waits, and the next observation deletes it again.
                    logger.warning("start timeout of task %s: cannot delete its Job yet: %s", ref.task_id, exc)
                    continue
                logger.info(
                    "task %s: no pod running %d s after its Job started; Job deleted", ref.task_id, item.timeout
                )
                result[ref.task_id] = JobObservation.start_timed_out(item.timeout, last_reason)

    def _creation_failures(self, namespace: str) -> dict[str, str]:
        """Job uid -> its newest FailedCreate Event: ONE (paginated) Events list for the namespace."""
        if not self._forbidden_events.may_list(namespace):
            return {}  # a 403 there lately: not asked again before its back-off ends
        try:
            failures = creation_failures(
                self._api.list(
                    namespace,
                    "/api/v1/namespaces/{namespace}/events",
                    "events",
                    field_selector=JOB_CREATE_FAILURES,
                    label_selector=None,
                    log_forbidden=False,
                )
            )
        except ListForbidden as exc:
            self._forbidden_events.refused(namespace, str(exc))
            return {}
        except RetryableError as exc:
            # A diagnosis is a nicety: never fail the observation because Events could not be read.
            logger.warning("cannot read the Job Events of %s: %s", namespace, exc)
            return {}
        self._forbidden_events.listed(namespace)
        return failures

    def _list_pending_pods(self, namespace: str) -> list[dict[str, Any]]:
        try:
            return list(
                self._api.list(
                    namespace,
                    "/api/v1/namespaces/{namespace}/pods",
                    "pods",
                    field_selector="status.phase=Pending",
                )
            )
        except RetryableError as exc:
            # A diagnosis is a nicety: never fail the observation because pods could not be read.
            logger.warning("cannot read the pending pods of %s: %s", namespace, exc)
            return []

    def _read_job(self, ref: JobRef) -> dict[str, Any] | None:
        """The Job by name from the API server (None: 404); RetryableError when it cannot say now."""
        try:
            job = self._api.calls.call(
                f"read Job {ref.namespace}/{ref.job_name}",
                self._api.batch.read_namespaced_job,
                ref.job_name,
                ref.namespace,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise RetryableError(f"read Job {ref.namespace}/{ref.job_name}: HTTP {exc.status}") from exc
        return job if isinstance(job, dict) else None

    def _failure_evidence(self, ref: JobRef, budget: list[int]) -> FailureEvidence | None:
        """How a failed attempt's container ended, from its pods, within the call's budget; None when
        they cannot be read now (budget spent, a retryable error). A refusal (403: no RBAC for pods)
        is for good: the attempt is judged without them."""
        if budget[0] <= 0:
            return None
        budget[0] -= 1
        try:
            pods = self._api.calls.call(
                f"list pods of task {ref.task_id}",
                self._api.core.list_namespaced_pod,
                ref.namespace,
                label_selector=task_selector(ref.task_id),
            )
        except RetryableError as exc:
            logger.warning("cannot read pods of task %s in %s yet: %s", ref.task_id, ref.namespace, exc)
            return None
        except ApiException as exc:
            logger.warning("cannot read pods of task %s in %s: %s", ref.task_id, ref.namespace, exc)
            return FailureEvidence()
        return failure_evidence(pods.get("items") or (), ref.attempt)


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A task whose Job is still pending, and what its diagnosis needs."""

    ref: JobRef
    job: dict[str, Any]
    conditions: list[JobCondition]
    read_pods: bool
    read_events: bool
    timeout: int
    """Its start timeout in seconds if that has passed (the Job is to be deleted), else 0."""
