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

from typing import Any

from nightwatch.adapters.kubernetes.settings import KueueSettings
from nightwatch.domain.jobspec import LaunchRequest

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "nightwatch"
TASK_ID_LABEL = "nightwatch.io/task-id"
POD_APP_LABEL = "app"
POD_APP_VALUE = "task-job"
CONTAINER_NAME = "task"
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
OUTCOME_FINALIZER = "nightwatch.io/outcome"
"""On every Job: the cluster keeps the Job until nightwatch has stored its outcome (see `finalizer.py`)."""
START_TIMEOUT_ANNOTATION = "nightwatch.io/start-timeout-seconds"
"""A task's own `startTimeoutSeconds`, carried on its Job so observation needs no row (absent: the default)."""
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"


def task_selector(task_id: int) -> str:
    """The label selector of one task's Job and pods."""
    return f"{TASK_ID_LABEL}={task_id}"


def job_labels(task_id: int) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, TASK_ID_LABEL: str(task_id)}


def build_job_body(
    request: LaunchRequest,
    *,
    default_ttl_seconds_after_finished: int | None = 3600,
    kueue: KueueSettings | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job for `request`, as the JSON the API server receives (for Kueue to admit, with
    `kueue`)."""
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
            "metadata": {"labels": {**job_labels(request.task_id), POD_APP_LABEL: POD_APP_VALUE}},
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
            "labels": job_labels(request.task_id),
            "finalizers": [OUTCOME_FINALIZER],
        },
        "spec": job_spec,
    }
    if spec.start_timeout_seconds is not None:
        body["metadata"]["annotations"] = {START_TIMEOUT_ANNOTATION: str(spec.start_timeout_seconds)}
    if kueue is not None:
        _for_kueue(body, kueue)
    return body


def _for_kueue(body: dict[str, Any], kueue: KueueSettings) -> None:
    """Created suspended with Kueue's labels: Kueue unsuspends the Job when it admits its Workload
    (nightwatch never does), and suspends it again to preempt it."""
    body["spec"]["suspend"] = True
    labels = body["metadata"]["labels"]
    labels[KUEUE_QUEUE_LABEL] = kueue.queue_name
    if kueue.priority_class is not None:
        labels[KUEUE_PRIORITY_CLASS_LABEL] = kueue.priority_class
