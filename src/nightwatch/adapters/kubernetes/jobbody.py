"""The Job object nightwatch sends for a task: a pure function from a LaunchRequest to a dict.

Only allow-listed fields reach the Job: the task's profile (`domain/profiles.py`, whose `job` is checked by
an allow-list walk: never host paths, privilege or host namespaces) merged with the allow-listed `info`
fields (`JobSpec`); one container named `task`, `restartPolicy: Never`. No secret reaches a task: the
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
from nightwatch.domain.kueue import KueueSettings
from nightwatch.domain.profiles import merge

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
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
KUEUE_COUNTED_LABEL = "nightwatch.io/kueue-counted"
"""On a Kueue Job whose mode says Kueue does not own admission (`owns_admission: false`): observation
reads it, so the task keeps counting against nightwatch's `max_in_flight` while Kueue holds the Job."""


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


def build_job_body(
    request: LaunchRequest,
    *,
    default_ttl_seconds_after_finished: int | None = 3600,
    kueue: KueueSettings | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job for `request`, as the JSON the API server receives (for Kueue to admit, with
    the profile's `kueue`, else `kueue`: the namespace's or the global Kueue mode).

    The task's profile merged with its spec (`profiles.merge`) over nightwatch's pod defaults
    (`restartPolicy: Never`, no service-account token, no service links), then nightwatch's identity:
    Job name, namespace, the managed-by and task-id labels, the outcome finalizer, the container's name.
    """
    merged = merge(request.profile, request.spec, request.placement)
    metadata = merged.get("metadata", {})
    job_spec: dict[str, Any] = merged["spec"]
    template = job_spec["template"]
    pod: dict[str, Any] = {"automountServiceAccountToken": False, "enableServiceLinks": False, **template["spec"]}
    pod["restartPolicy"] = "Never"
    container = {"name": CONTAINER_NAME, **pod.pop("containers")[0]}
    container["name"] = CONTAINER_NAME
    pod["containers"] = [container]
    pod_metadata = dict(template.get("metadata", {}))
    pod_metadata["labels"] = {
        **pod_metadata.get("labels", {}),
        **job_labels(request.task_id, request.attempt),
        POD_APP_LABEL: POD_APP_VALUE,
    }
    job_spec["template"] = {"metadata": pod_metadata, "spec": pod}
    # Finished Jobs are garbage-collected by the TTL controller so they do not pile up in etcd.
    if "ttlSecondsAfterFinished" not in job_spec and default_ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = default_ttl_seconds_after_finished

    annotations = dict(metadata.get("annotations", {}))
    annotations.pop(START_TIMEOUT_ANNOTATION, None)
    spec = request.spec
    if spec.start_timeout_seconds is not None and "startTimeoutSeconds" in request.profile.user_fields:
        annotations[START_TIMEOUT_ANNOTATION] = str(spec.start_timeout_seconds)
    body_metadata: dict[str, Any] = {
        "name": request.job_name,
        "namespace": request.namespace,
        "labels": {**metadata.get("labels", {}), **job_labels(request.task_id, request.attempt)},
        "finalizers": [OUTCOME_FINALIZER],
    }
    if annotations:
        body_metadata["annotations"] = annotations
    body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": body_metadata, "spec": job_spec}
    kueue = request.profile.kueue or kueue
    if kueue is not None:
        _for_kueue(body, kueue)
    return body


def _for_kueue(body: dict[str, Any], kueue: KueueSettings) -> None:
    """Created suspended with Kueue's labels: Kueue unsuspends the Job when it admits its Workload
    (nightwatch never does), and suspends it again to preempt it. Applied over the profile-merged body;
    Kueue's labels are not nightwatch's own (`job_labels`), which stay as set."""
    body["spec"]["suspend"] = True
    labels = body["metadata"]["labels"]
    labels[KUEUE_QUEUE_LABEL] = kueue.queue_name
    if kueue.priority_class is not None:
        labels[KUEUE_PRIORITY_CLASS_LABEL] = kueue.priority_class
    if not kueue.owns_admission:
        labels[KUEUE_COUNTED_LABEL] = "true"
