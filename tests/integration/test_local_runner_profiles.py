"""The local runner and Job profiles: it honours the merged command, args, env and deadline, and the
task's message names the profile fields a local process cannot honour."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nightwatch.adapters.local import LocalJobRunner
from nightwatch.adapters.local.settings import LocalRunnerSettings
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.model import TaskId
from nightwatch.domain.observation import JobPhase
from nightwatch.domain.ports import JobRef
from nightwatch.domain.profiles import ProfileCatalog
from nightwatch.domain.submission import SubmissionPolicy, validate_submission
from tests.support.local_harness import wait_for_phase

PROFILE = {
    "user_fields": ["image", "command", "args", "env"],
    "job": {
        "spec": {
            "activeDeadlineSeconds": 1,
            "template": {
                "spec": {
                    "serviceAccountName": "trainer",
                    "nodeSelector": {"pool": "gpu"},
                    "containers": [
                        {
                            "env": [
                                {"name": "FROM_PROFILE", "value": "yes"},
                                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                            ],
                            "securityContext": {"allowPrivilegeEscalation": False},
                        }
                    ],
                }
            },
        }
    },
}


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[LocalJobRunner]:
    runner = LocalJobRunner(LocalRunnerSettings(local_state_dir=str(tmp_path / "state")))
    yield runner
    runner.close()


def request_for(task_id: int, name: str, script: str) -> LaunchRequest:
    policy = SubmissionPolicy(profiles=ProfileCatalog.build({"gpu": PROFILE}, "gpu", {}))
    info = {"image": "busybox", "command": ["sh", "-c", script], "env": {"FROM_USER": "too"}}
    valid = validate_submission(name, "default", info, policy)
    return LaunchRequest(TaskId(task_id), name, "default", valid.spec, valid.profile, valid.placement)


def test_profile_env_and_user_env_reach_the_process_and_the_message_names_what_is_ignored(
    runner: LocalJobRunner,
) -> None:
    request = request_for(1, "env", 'echo "$FROM_PROFILE $FROM_USER ${TOKEN:-unset}"')
    launched = runner.launch(request)
    ref = JobRef(request.task_id, request.namespace, request.job_name)
    wait_for_phase(runner, ref, JobPhase.SUCCEEDED)
    seen = runner.observe([ref])[request.task_id]
    assert seen.message.startswith("exit code 0: yes too unset")
    ignored = "the local runner ignores these fields of profile gpu: serviceAccountName, nodeSelector, securityContext, env TOKEN (valueFrom)"
    assert ignored in seen.message
    assert launched.note == ignored


def test_the_profiles_deadline_is_enforced(runner: LocalJobRunner) -> None:
    request = request_for(2, "slow", "sleep 30")
    runner.launch(request)
    ref = JobRef(request.task_id, request.namespace, request.job_name)
    wait_for_phase(runner, ref, JobPhase.FAILED, timeout=20)
    assert "deadline" in runner.observe([ref])[request.task_id].message
