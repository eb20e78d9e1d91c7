"""Creating a task's Job, idempotently: `Launcher`, the `launch` half of the Kubernetes runner.

A launch can be retried after a crash or a timeout that hid a successful create, so a 409 for a Job
carrying our task-id label is adoption, not an error; a Job of that name without it is `ForeignJob`.
A quota 403 may hide our own earlier Job too (quota admission runs before the name is checked), so it
is looked for before the launch is deferred. Every other refusal becomes the domain error that says
whether retrying can help (`_refusal`, and `forbidden.py` for the kinds of 403).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from nightwatch.adapters.kubernetes.api import KubeApi
from nightwatch.adapters.kubernetes.finalizer import is_dying
from nightwatch.adapters.kubernetes.forbidden import forbidden_error
from nightwatch.adapters.kubernetes.jobbody import attempt_of, build_job_body
from nightwatch.adapters.kubernetes.retry import api_causes, api_message
from nightwatch.adapters.kubernetes.settings import KueueSettings
from nightwatch.adapters.kubernetes.status import task_id_of
from nightwatch.domain.errors import AdmissionDeferred, ForeignJob, JobInvalid, JobRefused, RetryableError
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.ports import LaunchResult

logger = logging.getLogger(__name__)


class Launcher:
    def __init__(
        self,
        api: KubeApi,
        *,
        default_ttl: int | None,
        kueue: Callable[[str], KueueSettings | None] = lambda _namespace: None,
        assume: Callable[[str, dict[str, Any]], None] | None = None,
        forget: Callable[[str, str], None] = lambda _namespace, _name: None,
    ) -> None:
        """`default_ttl`: `ttlSecondsAfterFinished` of a Job whose task sets none (None: keep finished Jobs).
        `kueue`: the Kueue mode of a namespace (None: off). `assume`: given (namespace, Job): the body
        about to be sent by a create (a new Job has no status yet, so its answer is not parsed), or the
        Job an adoption read. Before the create, not after: the watch's ADDED event often beats the
        answer, and a Job not assumed yet queues its task for sync to read back. `forget`: given
        (namespace, name) when the create was not accepted: drop the assumption (the watch's own
        version, if it came, stays)."""
        self._api = api
        self._default_ttl = default_ttl
        self._kueue = kueue
        self._assume = assume
        self._forget = forget

    def launch(self, request: LaunchRequest) -> LaunchResult:
        where = f"{request.namespace}/{request.job_name}"
        body = build_job_body(
            request, default_ttl_seconds_after_finished=self._default_ttl, kueue=self._kueue(request.namespace)
        )
        if self._assume is not None:
            self._assume(request.namespace, body)
        try:
            self._api.calls.call(f"create Job {where}", self._api.create_job, request.namespace, body, parse=False)
        except ApiException as exc:
            self._forget(request.namespace, request.job_name)
            if exc.status == 409:
                return self._adopt(request)
            refusal = self._refusal(exc, f"create Job {where}", request.namespace)
            if isinstance(refusal, AdmissionDeferred) and refusal.reason == AdmissionDeferred.QUOTA:
                return self._adopt_over_quota(request, refusal)
            raise refusal from None
        except BaseException:  # a timeout, a retry budget spent: it may exist; its ADDED event will say
            self._forget(request.namespace, request.job_name)
            raise
        logger.debug("created Job %s for task %s", where, request.task_id)
        return LaunchResult(request.job_name)

    def _adopt(self, request: LaunchRequest) -> LaunchResult:
        """After a 409: our Job from an earlier attempt (adopt it) or someone else's (ForeignJob)."""
        where = f"{request.namespace}/{request.job_name}"
        try:
            job = self._api.calls.call(
                f"read Job {where}", self._api.batch.read_namespaced_job, request.job_name, request.namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                # Deleted between our create and our read (TTL, a user): the next tick creates it again.
                raise RetryableError(f"Job {where} disappeared while being adopted; will retry") from None
            raise self._refusal(exc, f"read Job {where}", request.namespace) from None
        if task_id_of(job) == str(request.task_id) and attempt_of(job) == request.attempt:
            # Ours, even while being deleted: it is this task's only Job, and our finalizer keeps its
            # outcome readable (waiting for it to go would wait for ourselves).
            logger.info("adopted existing Job %s for task %s", where, request.task_id)
            if self._assume is not None and isinstance(job, dict):
                self._assume(request.namespace, job)
            return LaunchResult(request.job_name, adopted=True)
        if is_dying(job):
            # Another Job of that name on its way out (409 "object is being deleted"): the task stays
            # Normal and is launched once the old Job is gone.
            raise RetryableError(f"a Job named {request.job_name} is being deleted in {request.namespace}; will retry")
        if task_id_of(job) == str(request.task_id):
            raise ForeignJob(
                f"a Job named {request.job_name} already exists in {request.namespace} for attempt "
                f"{attempt_of(job)} of this task, not attempt {request.attempt}"
            )
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
