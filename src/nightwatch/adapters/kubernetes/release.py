"""Letting go of Jobs: `Releaser` removes nightwatch's finalizer, deletes Jobs, and finds those still held.

`finalizer.py` says why every Job carries the `nightwatch.io/outcome` finalizer and builds the patch
that removes it; this module sends it. A release is one tested JSON patch, or (when a test fails: the
finalizer is not first, or the Job is not ours any more) a read and a patch at the index found. Many
Jobs are released concurrently, and each failure is reported without stopping the others. A delete
releases first, or the deletion would wait for our own finalizer for ever; a 404 is what it wanted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes.client.exceptions import ApiException

from nightwatch.adapters.kubernetes.api import KubeApi, why_no_job_can_exist
from nightwatch.adapters.kubernetes.finalizer import finalizers_of, is_dying, is_finished, is_held, release_patch
from nightwatch.adapters.kubernetes.jobbody import OUTCOME_FINALIZER
from nightwatch.adapters.kubernetes.retry import api_message
from nightwatch.adapters.kubernetes.status import task_id_of
from nightwatch.domain.errors import RetryableError
from nightwatch.domain.model import TaskId
from nightwatch.domain.ports import JobRef

logger = logging.getLogger(__name__)


class Releaser:
    def __init__(
        self,
        api: KubeApi,
        *,
        workers: int,
        jobs_of: Callable[[str], dict[str, dict[str, Any]] | RetryableError] | None = None,
    ) -> None:
        """`workers`: Jobs released concurrently by `release` (the client's pool must allow as many).
        `jobs_of`: name -> Job of a namespace (the informer's cache, else a list); a list by default."""
        self._api = api
        self._workers = workers
        self._jobs_of = jobs_of or api.list_jobs_or_error

    def delete(self, ref: JobRef) -> None:
        if why_no_job_can_exist(ref):
            return  # nothing to delete: no Job can have that name
        where = f"{ref.namespace}/{ref.job_name}"
        self.release_one(ref)  # or the deletion would wait for our own finalizer for ever
        try:
            self._api.calls.call(
                f"delete Job {where}",
                self._api.batch.delete_namespaced_job,
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

    def release(self, refs: Sequence[JobRef]) -> None:
        if not refs:
            return
        failures: list[str] = []
        with ThreadPoolExecutor(max(1, min(self._workers, len(refs))), "release") as pool:
            for ref, error in zip(refs, pool.map(self._release_or_error, refs), strict=True):
                if error is not None:
                    logger.warning("could not release Job %s/%s yet: %s", ref.namespace, ref.job_name, error)
                    failures.append(str(error))
        if failures:
            raise RetryableError(f"could not release {len(failures)} of {len(refs)} Job(s): {failures[0]}")

    def _release_or_error(self, ref: JobRef) -> RetryableError | None:
        try:
            # Finished Jobs' releases may wait: they take only the rate limiter's spare tokens.
            self.release_one(ref, background=True)
        except RetryableError as exc:
            return exc
        return None

    def release_one(self, ref: JobRef, *, background: bool = False) -> None:
        """Remove our finalizer from the task's Job: one tested JSON patch, or a read and a second one."""
        if why_no_job_can_exist(ref):
            return
        where = f"{ref.namespace}/{ref.job_name}"
        try:
            self._patch_job(ref, release_patch(ref.task_id), background=background)
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
            job = self._api.calls.call(
                f"read Job {where}",
                self._api.batch.read_namespaced_job,
                ref.job_name,
                ref.namespace,
                background=background,
            )
        except ApiException as exc:
            if exc.status == 404:
                return
            raise RetryableError(f"cannot read Job {where}: {api_message(exc)}") from None
        finalizers = finalizers_of(job)
        if task_id_of(job) != str(ref.task_id) or OUTCOME_FINALIZER not in finalizers:
            return
        try:
            self._patch_job(ref, release_patch(ref.task_id, finalizers.index(OUTCOME_FINALIZER)), background=background)
        except ApiException as exc:
            if exc.status != 404:
                raise RetryableError(f"cannot release Job {where}: {api_message(exc)}") from None

    def _patch_job(self, ref: JobRef, patch: list[dict[str, Any]], *, background: bool) -> None:
        self._api.calls.call(
            f"release Job {ref.namespace}/{ref.job_name}",
            self._api.request,
            "PATCH",
            "/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
            {"namespace": ref.namespace, "name": ref.job_name},
            body=patch,
            content_type="application/json-patch+json",
            parse=False,
            background=background,
        )

    def held(self, namespace: str, *, unfinished: bool = False) -> list[JobRef]:
        jobs = self._jobs_of(namespace)
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
