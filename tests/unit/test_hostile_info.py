"""Hostile input at the unit level: `info`, names and namespaces straight from people typing SQL.

Properties: parsing `info` fails only with InvalidTaskSpec (never RecursionError, AttributeError ...),
whatever the input; every accepted spec becomes a Job body of nightwatch's fixed shape, with nothing
from outside the allow-list in it; and on the in-memory adapters a tick over a mix of hostile and
good rows never raises, fails each bad row with a message and leaves the good ones unharmed.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from nightwatch.adapters.kubernetes.jobbody import build_job_body
from nightwatch.adapters.memory import FakeClock, MemoryJobRunner, MemoryTaskRepository
from nightwatch.app.usecases.cancel import CancelTasks
from nightwatch.app.usecases.common import FixedFence
from nightwatch.app.usecases.dispatch import DispatchSettings, DispatchTasks
from nightwatch.app.usecases.sync import SyncTasks
from nightwatch.domain.errors import DuplicateTask, InvalidTaskSpec, PermanentError
from nightwatch.domain.jobspec import JobSpec, LaunchRequest, launch_request_for
from nightwatch.domain.model import Task, TaskId, TaskStatus
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.ports import NewTask
from tests.support.hostile import (
    LEAK,
    MEMORY,
    UNIT,
    HostileRow,
    assert_only_allow_listed,
    hostile_info,
    hostile_names,
    hostile_namespaces,
    hostile_rows,
    shape_violations,
    valid_info,
)

ALLOWED = frozenset({"default", "demo"})
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
GOOD_INFO = '{"image": "busybox", "command": ["true"]}'


def parse(info: str | None) -> JobSpec | None:
    """The spec, or None when refused; anything but InvalidTaskSpec escapes and fails the test."""
    try:
        return JobSpec.from_info(info)
    except InvalidTaskSpec as refused:
        assert isinstance(refused, PermanentError)
        assert str(refused).strip(), "a refusal must say why"
        return None


def body_of(spec: JobSpec) -> dict[str, object]:
    return build_job_body(LaunchRequest(TaskId(7), "task", "default", spec))


@UNIT
@given(hostile_info())
@example("[" * 10_000)
@example('{"image":"a","x":' + "[" * 10_000 + "]" * 10_000 + "}")
@example('{"image":"a","args":["' + "x" * 1_000_000 + '"]}')
def test_any_info_is_either_a_spec_of_the_allowed_shape_or_refused_with_a_message(info: str | None) -> None:
    spec = parse(info)
    if spec is not None:
        assert_only_allow_listed(body_of(spec))
        assert LEAK not in spec.model_dump_json(by_alias=True)  # what the local runner writes to spec.json


@UNIT
@given(valid_info(with_extras=True))
def test_keys_outside_the_allow_list_never_reach_the_job(info: dict[str, object]) -> None:
    spec = parse(json.dumps(info))
    assert spec is not None, "extra keys alone must not make valid info invalid"
    assert_only_allow_listed(body_of(spec))
    assert LEAK not in spec.model_dump_json(by_alias=True)


@pytest.mark.parametrize(
    "info",
    [
        "[" * 10_000,
        '{"a":' * 10_000,
        '{"image":"a","x":' + "[" * 10_000 + "]" * 10_000 + "}",
    ],
    ids=["arrays", "objects", "valid-but-deep"],
)
def test_nesting_deeper_than_the_parser_can_follow_is_refused_not_a_recursion_error(info: str) -> None:
    with pytest.raises(InvalidTaskSpec, match="nested too deeply"):
        JobSpec.from_info(info)


def test_info_that_is_not_text_is_refused() -> None:
    # SQLite hands back a BLOB written into the TEXT column as bytes.
    with pytest.raises(InvalidTaskSpec, match="must be text"):
        JobSpec.from_info(b'{"image": "a"}')  # type: ignore[arg-type]


def test_the_shape_walker_sees_a_key_nightwatch_never_sets() -> None:
    body = body_of(JobSpec(image="a"))
    body["spec"]["template"]["spec"]["hostNetwork"] = True  # type: ignore[index]
    body["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}  # type: ignore[index]
    assert shape_violations(body) == [
        ".spec.template.spec.hostNetwork: not a field nightwatch sets",
        ".spec.template.spec.containers[0].securityContext: not a field nightwatch sets",
    ]


@UNIT
@given(hostile_names(), hostile_namespaces())
@example("abc\n", "default")
@example("abc", "default\n")
def test_a_name_or_namespace_is_accepted_only_if_it_is_exactly_a_dns_label_on_the_allow_list(
    name: str, namespace: str
) -> None:
    task = Task(TaskId(1), name, namespace, GOOD_INFO, TaskStatus.NORMAL)
    try:
        request = launch_request_for(task, ALLOWED)
    except InvalidTaskSpec as refused:
        assert str(refused).strip()
        return
    assert DNS1123_LABEL.fullmatch(request.job_name), repr(request.job_name)
    assert request.namespace in ALLOWED


def test_a_trailing_newline_does_not_make_a_name_valid() -> None:
    # `$` in a regex also matches before a final "\n": "abc\n" once passed as a DNS-1123 label.
    with pytest.raises(InvalidTaskSpec, match="not a DNS-1123 label"):
        launch_request_for(Task(TaskId(1), "abc\n", "default", GOOD_INFO, TaskStatus.NORMAL), ALLOWED)


# -- a whole tick on the memory adapters ------------------------------------------------------------
_rows = st.lists(hostile_rows(), max_size=12)


@MEMORY
@given(_rows, st.integers(1, 4), st.randoms(use_true_random=False))
def test_a_tick_over_hostile_rows_fails_each_with_a_message_and_leaves_good_rows_alone(
    hostile: list[HostileRow], good_count: int, random: object
) -> None:
    repo, runner, clock = MemoryTaskRepository(), MemoryJobRunner(), FakeClock()
    fence = FixedFence(repo.advance_epoch())
    # Small batches, so paging past bad rows is exercised.
    dispatch = DispatchTasks(repo, runner, clock, fence, DispatchSettings(ALLOWED, batch_size=3, workers=2))
    sync = SyncTasks(repo, runner, clock, fence, page_size=3, write_batch_size=2)
    cancel = CancelTasks(repo, runner, clock, fence, batch_size=3)

    # The memory store holds only known statuses: a row's status and later status are SQL-level
    # hostility, covered by the SQL tests; here every row is Normal (and maybe being cancelled).
    good = [HostileRow(f"good-{i}", "default", GOOD_INFO, "Normal") for i in range(good_count)]
    entries = [("good", row) for row in good] + [
        ("hostile", row) for row in hostile if not row.name.startswith("good-")
    ]
    random.shuffle(entries)  # type: ignore[attr-defined]
    kinds: dict[TaskId, str] = {}
    for kind, row in entries:
        try:
            # NewTask is what plain SQL would write: no validation, `info` may even be NULL.
            task = repo.add(NewTask(row.name, row.namespace, row.info, 1), clock.now())  # type: ignore[arg-type]
        except DuplicateTask:
            continue
        if row.cancel_requested:
            repo.request_cancel(task.id)
        kinds[task.id] = kind

    for _ in range(2):
        dispatch()
        for job in list(runner.jobs.values()):
            assert job.spec is not None
            assert_only_allow_listed(
                build_job_body(LaunchRequest(job.task_id or TaskId(0), job.name, job.namespace, job.spec))
            )
            runner.set_observation(job.namespace, job.name, JobObservation(JobPhase.SUCCEEDED, "Completed", "ok"))
        sync()
        cancel()

    for task_id, kind in kinds.items():
        task = repo.get(task_id)
        if kind == "good":
            assert task.status is TaskStatus.SUCCEEDED, task
        else:
            assert task.status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED), task
            if task.status is TaskStatus.FAILED:
                assert task.message.strip(), task
