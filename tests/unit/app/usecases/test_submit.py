"""SubmitTask: a submission is validated before it is inserted."""

from __future__ import annotations

import json

import pytest

from nightwatch.domain.errors import (
    DuplicateTask,
    InvalidTaskSpec,
)
from tests.unit.app.usecases.world import SAMPLE_1, S, World


def test_submit_validates_before_inserting(world: World) -> None:
    task = world.submit("demo-task-1", "default", {"image": "alpine", "command": ["sleep"], "args": ["60"]})
    assert task.status is S.NORMAL and json.loads(task.info)["image"] == "alpine"
    with pytest.raises(DuplicateTask):
        world.submit("demo-task-1", "default", SAMPLE_1)
    for name, ns, info, message in [
        ("Bad_Name", "default", SAMPLE_1, "DNS-1123"),
        ("ok", "kube-system", SAMPLE_1, "not allowed"),
        ("ok", "default", '{"args":["1"]}', "image"),
        ("ok", "default", "{not json", "not valid JSON"),
    ]:
        with pytest.raises(InvalidTaskSpec, match=message):
            world.submit(name, ns, info)
    assert world.repo.count_by_status() == {"Normal": 1}


def test_submit_refuses_requests_above_limits_naming_the_field(world: World) -> None:
    info = {"image": "alpine", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "1"}}}
    with pytest.raises(InvalidTaskSpec, match=r"resources\.requests\.cpu: 2 must be less than or equal") as refused:
        world.submit("greedy", "default", info)
    assert [p.loc for p in refused.value.problems] == [("info", "resources", "requests", "cpu")]
    assert world.repo.count_by_status() == {}


def test_a_sql_row_with_requests_above_limits_fails_at_dispatch_with_the_field(world: World) -> None:
    task_id = world.insert("greedy", info='{"image":"alpine","resources":{"requests":{"cpu":"2"},"limits":{"cpu":1}}}')
    assert world.dispatch().failed == 1
    assert world.status(task_id) is S.FAILED
    assert (
        "resources.requests.cpu: 2 must be less than or equal to the cpu limit of 1" in world.repo.get(task_id).message
    )
    assert not world.runner.jobs
