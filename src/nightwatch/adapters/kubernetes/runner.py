"""`KubernetesJobRunner`: the JobRunner port on the official Kubernetes client.

Launch is idempotent (a 409 on a Job carrying our task-id label is adoption). Observation lists
Jobs per namespace by label selector with pagination, never one GET per task; a namespace that
cannot be read leaves only its own tasks unobserved. Pods are read only for a root cause: one list
of pending pods per namespace with stuck tasks (at most once per diagnosis period, see
`diagnosis.py`), and the pods of each newly failed task (capped per call) once its pods have
terminated (a Job past its deadline has `FailureTarget` while they still run, and no exit code yet).
A Job with no pod at all gets the Job controller's `FailedCreate` Event (one Events list per
namespace per call). A Job with no running pod `startTimeoutSeconds` after it started is deleted and
observed as failed with the last known reason. Every call is rate-limited, timed out and retried by
`ApiCaller`; library exceptions never leave this module.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from nightwatch.adapters.kubernetes.diagnosis import (
    JOB_CREATE_FAILURES,
    NO_POD_GRACE_SECONDS,
    PendingDiagnoses,
    creation_failure_of,
    creation_failures,
)
from nightwatch.adapters.kubernetes.finalizer import finalizers_of, is_dying, is_finished, is_held, release_patch
from nightwatch.adapters.kubernetes.forbidden import forbidden_error
from nightwatch.adapters.kubernetes.jobbody import (
    MANAGED_SELECTOR,
    OUTCOME_FINALIZER,
    START_TIMEOUT_ANNOTATION,
    build_job_body,
    task_selector,
)
from nightwatch.adapters.kubernetes.legacy import adopt_legacy_jobs
from nightwatch.adapters.kubernetes.ratelimit import TokenBucket
from nightwatch.adapters.kubernetes.retry import ApiCaller, api_causes, api_message
from nightwatch.adapters.kubernetes.settings import KubernetesSettings
from nightwatch.adapters.kubernetes.status import (
    conditions_of,
    failure_diagnosis,
    is_stale,
    observe_job,
    task_id_of,
)
from nightwatch.domain.errors import (
    AdmissionDeferred,
    ForeignJob,
    InvalidTaskSpec,
    JobInvalid,
    JobRefused,
    RetryableError,
)
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.model import TaskId
from nightwatch.domain.names import check_dns1123_label
from nightwatch.domain.observation import JobCondition, JobObservation, JobPhase
from nightwatch.domain.ports import JobRef, LaunchResult

logger = logging.getLogger(__name__)


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
        self._api = api_client
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._calls = ApiCaller(
            TokenBucket(settings.qps, settings.burst, sleep=sleep),
            request_timeout=settings.request_timeout_seconds,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            sleep=sleep,
        )
        self._default_ttl = settings.ttl_seconds_after_finished or None  # 0: keep finished Jobs
        self._pending_after = settings.pending_diagnosis_after_seconds
        self._max_pod_reads = max_pod_reads
        self._page_size = settings.list_page_size
        self._list_workers = list_workers
        self._now = now
        self._pending = PendingDiagnoses(self._list_pending_pods, max(self._pending_after, 1.0), now)
        self._no_pod_after = min(self._pending_after, NO_POD_GRACE_SECONDS)
        self._start_timeout = settings.start_timeout_seconds

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    # -- launch -----------------------------------------------------------------------------------
    def launch(self, request: LaunchRequest) -> LaunchResult:
        where = f"{request.namespace}/{request.job_name}"
        body = build_job_body(request, default_ttl_seconds_after_finished=self._default_ttl)
        try:
            self._calls.call(f"create Job {where}", self._create_job, request.namespace, body, parse=False)
        except ApiException as exc:
            if exc.status == 409:
                return self._adopt(request)
            refusal = self._refusal(exc, f"create Job {where}", request.namespace)
            if isinstance(refusal, AdmissionDeferred) and refusal.reason == AdmissionDeferred.QUOTA:
                return self._adopt_over_quota(request, refusal)
            raise refusal from None
        logger.debug("created Job %s for task %s", where, request.task_id)
        return LaunchResult(request.job_name)

    def _create_job(self, namespace: str, body: dict[str, Any], **options: Any) -> Any:
        """POST a Job body (a plain dict), skipping the model layer (see `_request`)."""
        return self._request(
            "POST", "/apis/batch/v1/namespaces/{namespace}/jobs", {"namespace": namespace}, body=body, **options
        )

    def _request(
        self,
        method: str,
        resource_path: str,
        path_params: dict[str, str],
        *,
        query: list[tuple[str, Any]] | None = None,
        body: dict[str, Any] | list[dict[str, Any]] | None = None,
        content_type: str = "application/json",
        _preload_content: bool = False,
        _request_timeout: float | None = None,
    ) -> Any:
        """One request through the ApiClient's own request path, without the generated methods.

        The generated methods validate their arguments with pydantic (`create_namespaced_job`
        turns the body dict into a `V1Job` and back: ~15% of a launch; the first call of each
        method builds its validator) and build models from responses. `build_job_body` already
        makes the exact JSON, and the adapter reads responses as raw JSON. The URL, headers,
        authentication (token refresh included) and errors are the client's own: a non-2xx
        status raises `ApiException`. Returns the raw urllib3 response, like the generated
        methods with `_preload_content=False`.
        """
        method, url, headers, _, _ = self._api.param_serialize(
            method=method,
            resource_path=resource_path,
            path_params=path_params,
            query_params=query,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(method, url, header_params=headers, body=body, _request_timeout=_request_timeout)
        if not 200 <= response.status <= 299:
            response.read()  # type: ignore[no-untyped-call]
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def _adopt(self, request: LaunchRequest) -> LaunchResult:
        """After a 409: our Job from an earlier attempt (adopt it) or someone else's (ForeignJob)."""
        where = f"{request.namespace}/{request.job_name}"
        try:
            job = self._calls.call(
                f"read Job {where}", self._batch.read_namespaced_job, request.job_name, request.namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                # Deleted between our create and our read (TTL, a user): the next tick creates it again.
                raise RetryableError(f"Job {where} disappeared while being adopted; will retry") from None
            raise self._refusal(exc, f"read Job {where}", request.namespace) from None
        if task_id_of(job) == str(request.task_id):
            # Ours, even while being deleted: it is this task's only Job, and our finalizer keeps its
            # outcome readable (waiting for it to go would wait for ourselves).
            logger.info("adopted existing Job %s for task %s", where, request.task_id)
            return LaunchResult(request.job_name, adopted=True)
        if is_dying(job):
            # Another Job of that name on its way out (409 "object is being deleted"): the task stays
            # Normal and is launched once the old Job is gone.
            raise RetryableError(f"a Job named {request.job_name} is being deleted in {request.namespace}; will retry")
        raise ForeignJob(
            f"a Job named {request.job_name} already exists in {request.namespace} and was not created by nightwatch"
        )

    def _adopt_over_quota(self, request: LaunchRequest, refusal: AdmissionDeferred) -> LaunchResult:
        """After a quota 403 on create: quota admission runs before the name is checked, so a Job this
        task created earlier (a crash before its row said Pending) gets a 403, not a 409, while the quota
        is full, and counts towards it. Adopt it if it is there; otherwise the launch is deferred."""
        try:
            return self._adopt(request)
        except AdmissionDeferred:
            raise
        except RetryableError:
            raise refusal from None  # no Job yet (or it cannot be read now): the quota is the news

    @staticmethod
    def _refusal(exc: ApiException, what: str, namespace: str) -> Exception:
        """The domain error for an HTTP error that retrying will not fix (or might, for 401 and some 403s)."""
        message = api_message(exc)
        if exc.status == 403:
            return forbidden_error(message, what, namespace)
        if exc.status == 401:
            logger.error("%s: the API server rejected nightwatch's credentials: %s", what, message)
            return RetryableError(f"{what}: unauthorized: {message}")
        if exc.status == 422:
            return JobInvalid(f"the API server refused the Job: {message}", api_causes(exc))
        return JobRefused(f"{what}: {message}")

    # -- observe ----------------------------------------------------------------------------------
    def observe(self, refs: Sequence[JobRef]) -> Mapping[TaskId, JobObservation]:
        by_namespace: dict[str, list[JobRef]] = defaultdict(list)
        result: dict[TaskId, JobObservation] = {}
        for ref in refs:
            impossible = _why_no_job_can_exist(ref)
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
        with ThreadPoolExecutor(max(1, min(self._list_workers, len(namespaces))), "observe") as pool:
            for namespace, jobs in zip(namespaces, pool.map(self._list_jobs_or_error, namespaces), strict=True):
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
        refs, jobs = adopt_legacy_jobs(self._calls.call, self._request, refs, jobs)
        for ref in refs:
            job = jobs.get(ref.job_name)
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
                observation = observe_job(job, self._failure_diagnosis(ref, budget), conditions)
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
                    self.delete(ref)
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
        try:
            return creation_failures(
                self._list(
                    namespace,
                    "/api/v1/namespaces/{namespace}/events",
                    "events",
                    field_selector=JOB_CREATE_FAILURES,
                    label_selector=None,
                )
            )
        except RetryableError as exc:
            # A diagnosis is a nicety: never fail the observation because Events could not be read.
            logger.warning("cannot read the Job Events of %s: %s", namespace, exc)
            return {}

    def _list_jobs_or_error(self, namespace: str) -> dict[str, dict[str, Any]] | RetryableError:
        try:
            return {
                name: job
                for job in self._list(namespace, "/apis/batch/v1/namespaces/{namespace}/jobs", "Jobs")
                if isinstance(name := (job.get("metadata") or {}).get("name"), str)
            }
        except RetryableError as exc:
            return exc

    def _list_pending_pods(self, namespace: str) -> list[dict[str, Any]]:
        try:
            return list(
                self._list(
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

    def _list(
        self,
        namespace: str,
        path: str,
        what: str,
        *,
        field_selector: str | None = None,
        label_selector: str | None = MANAGED_SELECTOR,
    ) -> Iterator[dict[str, Any]]:
        """Every nightwatch object of a kind in a namespace (Events: every one the field selector
        matches, they carry no labels of ours): one list call per page.

        A continue token that expired mid-listing (410, etcd compacted its revision) is replaced by the
        fresh one the Status carries, at most MAX_EXPIRED_CONTINUES times: the remainder it gives is read
        at the current revision, so a Job that exists throughout is on some page, which is all observe
        needs (a Job missing from the list would be reported missing). Without a fresh token the list
        starts over (items already yielded may come again). A token the server calls malformed (400)
        starts the list over once. Past those bounds the namespace is not observed this tick.
        """
        token: str | None = None
        expired = malformed = 0
        while True:
            query: list[tuple[str, Any]] = [("limit", self._page_size)]
            if label_selector:
                query.insert(0, ("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if token:
                query.append(("continue", token))
            try:
                page = self._calls.call(
                    f"list {what} in {namespace}", self._request, "GET", path, {"namespace": namespace}, query=query
                )
            except ApiException as exc:
                if token and exc.status == 410 and expired < MAX_EXPIRED_CONTINUES:
                    expired += 1
                    token = _fresh_continue(exc)
                    logger.info(
                        "listing %s in %s: the continue token expired, %s",
                        what,
                        namespace,
                        "going on from the server's fresh token" if token else "starting over",
                    )
                    continue
                if token and exc.status == 400 and not malformed:
                    malformed += 1
                    token = None
                    logger.warning(
                        "listing %s in %s: the server refused our continue token, starting over", what, namespace
                    )
                    continue
                if exc.status == 403:
                    logger.error(
                        "listing %s forbidden in namespace %s: check nightwatch's RBAC: %s",
                        what,
                        namespace,
                        api_message(exc),
                    )
                raise RetryableError(f"cannot list {what} in {namespace}: {api_message(exc)}") from None
            yield from page.get("items") or ()
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return

    def _failure_diagnosis(self, ref: JobRef, budget: list[int]) -> str:
        """How a failed task's container ended, from its pods, within the call's budget."""
        if budget[0] <= 0:
            return ""
        budget[0] -= 1
        try:
            pods = self._calls.call(
                f"list pods of task {ref.task_id}",
                self._core.list_namespaced_pod,
                ref.namespace,
                label_selector=task_selector(ref.task_id),
            )
        except (ApiException, RetryableError) as exc:
            logger.warning("cannot read pods of task %s in %s: %s", ref.task_id, ref.namespace, exc)
            return ""
        return failure_diagnosis(pods.get("items") or ())

    # -- delete -----------------------------------------------------------------------------------
    def delete(self, ref: JobRef) -> None:
        if _why_no_job_can_exist(ref):
            return  # nothing to delete: no Job can have that name
        where = f"{ref.namespace}/{ref.job_name}"
        self._release_one(ref)  # or the deletion would wait for our own finalizer for ever
        try:
            self._calls.call(
                f"delete Job {where}",
                self._batch.delete_namespaced_job,
                ref.job_name,
                ref.namespace,
                propagation_policy="Background",
            )
        except ApiException as exc:
            if exc.status == 404:
                return  # already gone: that is what we wanted
            if exc.status == 403:
                logger.error("deleting Job %s forbidden: check nightwatch's RBAC in %s", where, ref.namespace)
            raise RetryableError(f"cannot delete Job {where}: {api_message(exc)}") from None
        logger.debug("deleted Job %s", where)

    # -- release ----------------------------------------------------------------------------------
    def release(self, refs: Sequence[JobRef]) -> None:
        if not refs:
            return
        failures: list[str] = []
        with ThreadPoolExecutor(max(1, min(self._list_workers, len(refs))), "release") as pool:
            for ref, error in zip(refs, pool.map(self._release_or_error, refs), strict=True):
                if error is not None:
                    logger.warning("could not release Job %s/%s yet: %s", ref.namespace, ref.job_name, error)
                    failures.append(str(error))
        if failures:
            raise RetryableError(f"could not release {len(failures)} of {len(refs)} Job(s): {failures[0]}")

    def _release_or_error(self, ref: JobRef) -> RetryableError | None:
        try:
            self._release_one(ref)
        except RetryableError as exc:
            return exc
        return None

    def _release_one(self, ref: JobRef) -> None:
        """Remove our finalizer from the task's Job: one tested JSON patch, or a read and a second one."""
        if _why_no_job_can_exist(ref):
            return
        where = f"{ref.namespace}/{ref.job_name}"
        try:
            self._patch_job(ref, release_patch(ref.task_id))
            return
        except ApiException as exc:
            if exc.status == 404:
                return
            if exc.status == 403:
                logger.error("patching Job %s forbidden: nightwatch's RBAC lacks `patch` on jobs", where)
            if exc.status not in (409, 422):
                raise RetryableError(f"cannot release Job {where}: {api_message(exc)}") from None
        # A test failed: not at index 0, not held any more, or another task's Job. Look.
        try:
            job = self._calls.call(f"read Job {where}", self._batch.read_namespaced_job, ref.job_name, ref.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise RetryableError(f"cannot read Job {where}: {api_message(exc)}") from None
        finalizers = finalizers_of(job)
        if task_id_of(job) != str(ref.task_id) or OUTCOME_FINALIZER not in finalizers:
            return
        try:
            self._patch_job(ref, release_patch(ref.task_id, finalizers.index(OUTCOME_FINALIZER)))
        except ApiException as exc:
            if exc.status != 404:
                raise RetryableError(f"cannot release Job {where}: {api_message(exc)}") from None

    def _patch_job(self, ref: JobRef, patch: list[dict[str, Any]]) -> None:
        self._calls.call(
            f"release Job {ref.namespace}/{ref.job_name}",
            self._request,
            "PATCH",
            "/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
            {"namespace": ref.namespace, "name": ref.job_name},
            body=patch,
            content_type="application/json-patch+json",
            parse=False,
        )

    def held(self, namespace: str, *, unfinished: bool = False) -> list[JobRef]:
        jobs = self._list_jobs_or_error(namespace)
        if isinstance(jobs, RetryableError):
            raise jobs
        refs = []
        for name, job in jobs.items():
            task_id = task_id_of(job)
            if not is_held(job) or task_id is None or not task_id.isdigit():
                continue
            if unfinished or is_finished(job) or is_dying(job):
                refs.append(JobRef(TaskId(int(task_id)), namespace, name))
        return refs


MAX_EXPIRED_CONTINUES = 3
"""Expired continue tokens tolerated per list before the namespace is left unobserved for the tick."""


def _fresh_continue(exc: ApiException) -> str | None:
    """The `metadata.continue` of a 410 Expired Status (the remainder at the current revision), if any."""
    try:
        status = json.loads(exc.body or "")
    except (ValueError, TypeError):
        return None
    metadata = status.get("metadata") if isinstance(status, dict) else None
    token = metadata.get("continue") if isinstance(metadata, dict) else None
    return token if isinstance(token, str) and token else None


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


def pods_still_terminating(job: Mapping[str, Any], conditions: Sequence[JobCondition]) -> bool:
    """FailureTarget without Failed while `status.terminating` > 0: its pods' exit codes are not known yet."""
    true = {c.type for c in conditions if c.is_true}
    terminating = (job.get("status") or {}).get("terminating")
    return "FailureTarget" in true and "Failed" not in true and isinstance(terminating, int) and terminating > 0


def start_timeout_of(job: Mapping[str, Any], default: int) -> int:
    """The Job's `nightwatch.io/start-timeout-seconds` annotation (the task's own), else the default; 0: off."""
    value = ((job.get("metadata") or {}).get("annotations") or {}).get(START_TIMEOUT_ANNOTATION)
    try:
        return max(0, int(value)) if value is not None else default
    except (TypeError, ValueError):
        return default


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def started_at_of(job: Mapping[str, Any], ref: JobRef) -> datetime | None:
    """When the Job's wait for a pod began: the later of the task's dispatch and the Job's `startTime`
    (set again when a suspended Job resumes), else the Job's creation."""
    moments = [m for m in (ref.started_at, _parse_time((job.get("status") or {}).get("startTime"))) if m is not None]
    if moments:
        return max(moments)
    return _parse_time((job.get("metadata") or {}).get("creationTimestamp"))


def _why_no_job_can_exist(ref: JobRef) -> str:
    """Why no Job can exist for `ref` (its namespace or name is not a Kubernetes name), or ""."""
    try:
        check_dns1123_label(ref.namespace, "namespace")
        check_dns1123_label(ref.job_name, "Job name")
    except InvalidTaskSpec as exc:
        return f"no Job can exist for this task: {exc}"
    return ""
