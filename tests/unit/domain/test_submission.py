"""`validate_submission`: the one validator SubmitTask, dispatch, the REST API and the CLI share."""

from __future__ import annotations

import math

import pytest

from nightwatch.adapters.memory import FakeClock, MemoryTaskRepository
from nightwatch.app.usecases.submit import SubmitTask
from nightwatch.domain.errors import InvalidTaskSpec, Problem
from nightwatch.domain.model import Task, TaskId, TaskStatus
from nightwatch.domain.submission import SubmissionPolicy, launch_request_for, validate_submission

POLICY = SubmissionPolicy(frozenset({"default", "demo"}))
GOOD = {"image": "busybox", "command": ["true"]}


def problems_of(name: str, namespace: str, info: object) -> dict[tuple[str | int, ...], str]:
    with pytest.raises(InvalidTaskSpec) as caught:
        validate_submission(name, namespace, info, POLICY)  # type: ignore[arg-type]
    return {p.loc: p.message for p in caught.value.problems}


def test_a_valid_submission_is_stored_as_compact_json() -> None:
    valid = validate_submission("a", "demo", {"image": "busybox", "args": ["x y"]}, POLICY)
    assert valid.info == '{"image":"busybox","args":["x y"]}'
    assert valid.spec.image == "busybox"


def test_every_problem_is_reported_with_its_field_at_once() -> None:
    found = problems_of("Bad_Name", "kube-system", {"command": "not a list", "backoffLimit": -1})
    assert set(found) == {("name",), ("namespace",), ("info", "image"), ("info", "command"), ("info", "backoffLimit")}
    assert "not a DNS-1123 label" in found[("name",)]
    assert "'kube-system' is not allowed" in found[("namespace",)]


def test_the_message_names_every_problem() -> None:
    with pytest.raises(InvalidTaskSpec) as caught:
        validate_submission("Bad_Name", "default", '{"command": []}', POLICY)
    assert "task name 'Bad_Name'" in str(caught.value) and "image: Field required" in str(caught.value)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_numbers_json_cannot_carry_are_refused_once_for_every_caller(number: float) -> None:
    info = {**GOOD, "extra": number}
    found = problems_of("a", "default", info)
    assert list(found) == [("info",)]
    assert found[("info",)].startswith("info is not representable as JSON: Out of range float values")
    # SubmitTask (CLI, REST API) applies the same rule and stores nothing.
    repo = MemoryTaskRepository()
    with pytest.raises(InvalidTaskSpec):
        SubmitTask(repo, FakeClock(), POLICY)("a", "default", info)
    assert repo.count_by_status() == {}


def test_nesting_deeper_than_the_encoder_walks_is_a_problem_not_a_crash() -> None:
    deep: dict[str, object] = {"image": "busybox"}
    node = deep
    for _ in range(100_000):
        child: dict[str, object] = {}
        node["x"] = child
        node = child
    assert problems_of("a", "default", deep) == {("info",): "info is not representable as JSON: nesting too deep"}


def test_dispatch_validates_a_stored_row_exactly_as_submit_does() -> None:
    row = Task(TaskId(7), "Bad_Name", "kube-system", '{"image": ""}', TaskStatus.NORMAL)
    with pytest.raises(InvalidTaskSpec) as at_dispatch:
        launch_request_for(row, POLICY)
    with pytest.raises(InvalidTaskSpec) as at_submit:
        validate_submission(row.name, row.namespace, row.info, POLICY)
    assert at_dispatch.value.problems == at_submit.value.problems
    assert len(at_dispatch.value.problems) == 3


def test_a_raiser_that_names_no_field_files_its_message_under_info() -> None:
    assert InvalidTaskSpec("info is empty").problems == (Problem(("info",), "info is empty"),)


def test_a_name_longer_than_the_table_stores_is_a_problem_of_its_field_not_a_database_error() -> None:
    found = problems_of("a" * 46, "default", GOOD)
    assert found == {("name",): "task name is 46 characters; the task table stores at most 45"}
    assert validate_submission("a" * 45, "default", GOOD, POLICY).name == "a" * 45
    long_namespace = "n" * 50
    with pytest.raises(InvalidTaskSpec) as caught:
        validate_submission("a", long_namespace, GOOD, SubmissionPolicy(frozenset({long_namespace})))
    assert [p.loc for p in caught.value.problems] == [("namespace",)]
