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
