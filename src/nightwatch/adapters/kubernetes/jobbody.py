"""The Job object nightwatch sends for a task: a pure function from a LaunchRequest to a dict.

Only allow-listed fields reach the Job (see `JobSpec`): one container named `task`, `restartPolicy:
Never`, no security context, volumes, service account or host access. No secret reaches a task: the
pod gets no service-account token (`automountServiceAccountToken: false`: a task cannot call the API
server as its namespace's default account) and no service links (`enableServiceLinks: false`: no
`REDIS_PORT=tcp://...`-style variables naming every Service in the namespace); its environment is the
image's plus the spec's `env`. The labels make every Job
findable by one label-selector list and tie it to its task (idempotent launch, adoption); the
`nightwatch.io/outcome` finalizer keeps a finished Job until its outcome is stored (`finalizer.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nightwatch.domain.jobspec import LaunchRequest

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "nightwatch"
TASK_ID_LABEL = "nightwatch.io/task-id"
ATTEMPT_LABEL = "nightwatch.io/attempt"
"""On a retry's Job and its pods (attempt > 1); absent means attempt 1 (Jobs made before retries existed)."""
POD_APP_LABEL = "app"
POD_APP_VALUE = "task-job"
CONTAINER_NAME = "task"
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
OUTCOME_FINALIZER = "nightwatch.io/outcome"
"""On every Job: the cluster keeps the Job until nightwatch has stored its outcome (see `finalizer.py`)."""
START_TIMEOUT_ANNOTATION = "nightwatch.io/start-timeout-seconds"
"""A task's own `startTimeoutSeconds`, carried on its Job so observation needs no row (absent: the default)."""


def task_selector(task_id: int) -> str:
    """The label selector of one task's Job and pods."""
    return f"{TASK_ID_LABEL}={task_id}"


def job_labels(task_id: int, attempt: int = 1) -> dict[str, str]:
    labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, TASK_ID_LABEL: str(task_id)}
    if attempt > 1:
        labels[ATTEMPT_LABEL] = str(attempt)
    return labels


def attempt_of(obj: Mapping[str, Any]) -> int:
    """The attempt a Job or pod belongs to (its label; none, or an unreadable one, is attempt 1)."""
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(ATTEMPT_LABEL)
    try:
        return max(1, int(value)) if value is not None else 1
    except (TypeError, ValueError):
        return 1


def build_job_body(request: LaunchRequest, *, default_ttl_seconds_after_finished: int | None = 3600) -> dict[str, Any]:
    """The batch/v1 Job for `request`, as the JSON the API server receives."""
    spec = request.spec
    container: dict[str, Any] = {"name": CONTAINER_NAME, "image": spec.image}
    if spec.command:
        container["command"] = list(spec.command)
    if spec.args:
        container["args"] = list(spec.args)
    if spec.env:
        container["env"] = [{"name": e.name, "value": e.value} for e in spec.env]
    if spec.resources is not None and (spec.resources.requests or spec.resources.limits):
        resources: dict[str, dict[str, str]] = {}
        if spec.resources.requests:
            resources["requests"] = dict(spec.resources.requests)
        if spec.resources.limits:
            resources["limits"] = dict(spec.resources.limits)
        container["resources"] = resources

    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        "template": {
            "metadata": {"labels": {**job_labels(request.task_id, request.attempt), POD_APP_LABEL: POD_APP_VALUE}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "containers": [container],
            },
        },
    }
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    # Finished Jobs are garbage-collected by the TTL controller so they do not pile up in etcd.
    ttl = spec.ttl_seconds_after_finished
    if ttl is None:
        ttl = default_ttl_seconds_after_finished
    if ttl is not None:
        job_spec["ttlSecondsAfterFinished"] = ttl

    body: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": request.job_name,
            "namespace": request.namespace,
            "labels": job_labels(request.task_id, request.attempt),
            "finalizers": [OUTCOME_FINALIZER],
        },
        "spec": job_spec,
    }
    if spec.start_timeout_seconds is not None:
        body["metadata"]["annotations"] = {START_TIMEOUT_ANNOTATION: str(spec.start_timeout_seconds)}
    return body
