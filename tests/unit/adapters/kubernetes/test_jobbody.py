"""The pure Job-body builder: allow-listed fields only, labels, TTL default."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nightwatch.adapters.kubernetes.jobbody import build_job_body
from nightwatch.domain.jobspec import JobSpec, LaunchRequest
from nightwatch.domain.model import TaskId
from tests.support.hostile import body_of, shape_violations


def body_for(info: dict[str, Any], **kwargs: int | None) -> dict[str, Any]:
    spec = JobSpec.from_info(json.dumps(info))
    return build_job_body(LaunchRequest(TaskId(42), "my-task", "team-a", spec), **kwargs)


def test_every_allowed_field_lands_in_its_place() -> None:
    body = body_for(
        {
            "image": "python:3.12",
            "command": ["python", "-c"],
            "args": ["print(1)"],
            "env": {"A": "1"},
            "resources": {"requests": {"cpu": 1}, "limits": {"memory": "1Gi"}},
            "backoffLimit": 3,
            "activeDeadlineSeconds": 600,
            "ttlSecondsAfterFinished": 60,
        }
    )
    assert body["metadata"] == {
        "name": "my-task",
        "namespace": "team-a",
        "labels": {"app.kubernetes.io/managed-by": "nightwatch", "nightwatch.io/task-id": "42"},
    }
    spec = body["spec"]
    assert isinstance(spec, dict)
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (3, 600, 60)
    assert spec["template"]["metadata"]["labels"]["app"] == "task-job"
    assert spec["template"]["metadata"]["labels"]["nightwatch.io/task-id"] == "42"
    assert spec["template"]["spec"] == {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [
            {
                "name": "task",
                "image": "python:3.12",
                "command": ["python", "-c"],
                "args": ["print(1)"],
                "env": [{"name": "A", "value": "1"}],
                "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}},
            }
        ],
    }


def test_ttl_default_applies_only_when_the_spec_has_none() -> None:
    assert body_for({"image": "a"})["spec"]["ttlSecondsAfterFinished"] == 3600
    assert body_for({"image": "a"}, default_ttl_seconds_after_finished=120)["spec"]["ttlSecondsAfterFinished"] == 120
    assert "ttlSecondsAfterFinished" not in body_for({"image": "a"}, default_ttl_seconds_after_finished=None)["spec"]
    assert body_for({"image": "a", "ttlSecondsAfterFinished": 0})["spec"]["ttlSecondsAfterFinished"] == 0


def test_nothing_dangerous_from_info_reaches_the_job() -> None:
    body = body_for(
        {
            "image": "alpine",
            "securityContext": {"privileged": True},
            "privileged": True,
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
            "hostNetwork": True,
            "serviceAccountName": "admin",
            "metadata": {"labels": {"nightwatch.io/task-id": "1"}},
            "labels": {"x": "y"},
        }
    )
    text = json.dumps(body)
    for word in ("securityContext", "privileged", "hostPath", "volumes", "hostNetwork", "serviceAccount", '"x"'):
        assert word not in text
    assert body["metadata"]["labels"]["nightwatch.io/task-id"] == "42"


def test_the_builder_is_pure() -> None:
    assert body_for({"image": "a"}) == body_for({"image": "a"})


def test_task_pods_get_no_service_account_token_and_no_service_links() -> None:
    # Neither can be switched back on from info: a task must not call the API server as its
    # namespace's service account, nor learn every Service's address from its environment.
    body = body_for({"image": "a", "automountServiceAccountToken": True, "enableServiceLinks": True})
    pod = body["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
@pytest.mark.hostile
def test_the_shape_walker_sees_a_key_nightwatch_never_sets() -> None:
    body = body_of(JobSpec(image="a"))
    body["spec"]["template"]["spec"]["hostNetwork"] = True  # type: ignore[index]
    body["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}  # type: ignore[index]
    assert shape_violations(body) == [
        ".spec.template.spec.hostNetwork: not a field nightwatch sets",
        ".spec.template.spec.containers[0].securityContext: not a field nightwatch sets",
    ]
