"""What the local runner makes of a task's Job profile: the parts a local process can honour.

A local Job is a process, not a pod: of the merged Job (`profiles.merge`) it takes the first container's
command, args and plain `env` values, `activeDeadlineSeconds` and `backoffLimit`. Everything else the
profile sets (service account, volumes, security contexts, scheduling, `valueFrom` variables...) cannot
apply here; `local_view` names it, and the runner says so in the task's message.
"""

from __future__ import annotations

from typing import Any

from nightwatch.domain.jobspec import EnvVar, JobSpec, LaunchRequest
from nightwatch.domain.profiles import ignored_by_local_runner, merge


def local_view(request: LaunchRequest) -> tuple[JobSpec, list[str]]:
    """The spec the supervisor runs (the profile merged in) and the profile fields it ignores."""
    merged = merge(request.profile, request.spec, request.placement)
    job_spec: dict[str, Any] = merged["spec"]
    container: dict[str, Any] = job_spec["template"]["spec"]["containers"][0]
    ignored = ignored_by_local_runner(request.profile)
    env: list[EnvVar] = []
    for item in container.get("env", []):
        if "value" in item or "valueFrom" not in item:
            # Not validated again: the spec's were at submit, the profile's at start-up (and a runner
            # must pass on what it was given, as the supervisor reports what exec cannot take).
            env.append(EnvVar.model_construct(name=item["name"], value=item.get("value", "")))
        else:
            ignored.append(f"env {item['name']} (valueFrom)")
    spec = request.spec.model_copy(
        update={
            "image": container["image"],
            "command": tuple(container.get("command", ())),
            "args": tuple(container.get("args", ())),
            "env": tuple(env),
            "backoff_limit": job_spec.get("backoffLimit", request.spec.backoff_limit),
            "active_deadline_seconds": job_spec.get("activeDeadlineSeconds"),
        }
    )
    return spec, ignored
