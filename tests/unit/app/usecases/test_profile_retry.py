"""A Job profile's `retry:` through dispatch and sync on the memory adapters, wired by the watcher
registry as the application wires them: a task without `info.retry` takes its profile's policy over
`retry.default`, key by key; its own `info.retry` keys win; bad entries are refused at config load."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nightwatch.app.config import ConfigError, load_settings
from nightwatch.app.profiles import LiveProfiles
from nightwatch.app.usecases.sync import RetrySettings
from nightwatch.domain.model import TaskId
from nightwatch.domain.observation import JobCondition, JobObservation
from nightwatch.domain.profiles import ProfileCatalog
from nightwatch.domain.retries import RetrySpec
from nightwatch.domain.submission import SubmissionPolicy
from tests.unit.app.usecases.world import S, World

PROFILES: dict[str, Any] = {
    "flaky": {"retry": {"attempts": 3, "exitCodes": [2], "backoffSeconds": 1, "maxBackoffSeconds": 1}},
    "plain": {},
}
DEFAULT = RetrySettings(default=RetrySpec(attempts=2, exit_codes=(2, 7), backoff_seconds=1, max_backoff_seconds=1))


def world() -> World:
    catalog = ProfileCatalog.build(PROFILES, "default", {"batch": "flaky"})
    return World(retry=DEFAULT, policy=SubmissionPolicy(frozenset({"default", "batch"}), catalog))


def exit_with(code: int) -> JobObservation:
    cond = JobCondition("Failed", reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit")
    return JobObservation.from_job_status([cond], exit_code=code, diagnosis=f"container task exited with code {code}")


def jobs_until_terminal(w: World, task_id: TaskId, code: int) -> int:
    """Fail every attempt's Job with `code` until the task ends; the number of Jobs it made."""
    for _ in range(20):
        w.dispatch()
        if w.status(task_id).is_terminal:
            return w.repo.get(task_id).attempt
        task = w.repo.get(task_id)
        if task.status is S.PENDING and task.job_name is not None:
            w.runner.set_observation(task.namespace, task.job_name, exit_with(code))
            w.sync()
        w.clock.advance(5)
    raise AssertionError("the task did not end")


def add(w: World, name: str, namespace: str = "default", **info: object) -> TaskId:
    return w.insert(name, namespace, json.dumps({"image": "busybox", **info}))


def test_a_task_without_info_retry_takes_its_profiles_policy_over_the_default() -> None:
    w = world()
    by_info = add(w, "a", profile="flaky")
    by_namespace = add(w, "b", "batch")  # runner.namespace_profiles chose the profile
    for task_id in (by_info, by_namespace):
        assert jobs_until_terminal(w, task_id, 2) == 3
        task = w.repo.get(task_id)
        assert task.status is S.FAILED and "attempt 3 of 3" in task.message


def test_a_profile_without_retry_leaves_the_default() -> None:
    w = world()
    assert jobs_until_terminal(w, add(w, "a", profile="plain"), 2) == 2  # retry.default: attempts 2
    assert jobs_until_terminal(w, add(w, "b"), 7) == 2  # the built-in default profile: no retry key


def test_the_tasks_own_keys_win_then_the_profiles_then_the_defaults() -> None:
    w = world()
    # attempts from info; exitCodes from the profile ([2]: 7 is the default's, not inherited over it).
    assert jobs_until_terminal(w, add(w, "a", profile="flaky", retry={"attempts": 4}), 2) == 4
    assert jobs_until_terminal(w, add(w, "b", profile="flaky", retry={"attempts": 4}), 7) == 1


def test_config_refuses_bad_retry_entries_one_line_each_naming_the_field(tmp_path: Any) -> None:
    path = tmp_path / "c.yaml"
    bad = {"attempts": 0, "exitCodes": [0], "onOOM": "yes", "backof": 1}
    path.write_text(
        json.dumps({"profiles": {"a": {"retry": bad}, "b": {"retry": {"backoffSeconds": 9, "maxBackoffSeconds": 1}}}})
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.lines == [
        "profiles.a.retry.attempts: Input should be greater than or equal to 1",
        "profiles.a.retry.exitCodes.0: Input should be greater than or equal to 1",
        "profiles.a.retry.onOOM: Input should be a valid boolean",
        "profiles.a.retry.backof: Extra inputs are not permitted",
        "profiles.b.retry: maxBackoffSeconds must be at least backoffSeconds",
    ]


def test_a_task_whose_profile_a_reload_removed_falls_back_to_the_default(caplog: pytest.LogCaptureFixture) -> None:
    live = LiveProfiles(ProfileCatalog.build(PROFILES, "default", {}))
    w = World(retry=DEFAULT, policy=SubmissionPolicy(frozenset({"default"}), live))
    task_id = add(w, "a", profile="flaky")
    w.dispatch()
    live.replace(ProfileCatalog.build({"plain": {}}, "default", {}))  # SIGHUP: flaky is gone
    task = w.repo.get(task_id)
    assert task.job_name is not None
    w.runner.set_observation(task.namespace, task.job_name, exit_with(2))
    w.sync()
    retried = w.repo.get(task_id)
    assert retried.status is S.NORMAL and "attempt 1 of 2" in retried.message  # retry.default's attempts
    assert "profile flaky is not configured" in caplog.text
