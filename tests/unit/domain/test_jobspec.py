"""Parsing `info` into a JobSpec, and validating names and namespaces."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import example, given

from nightwatch.domain.errors import InvalidTaskSpec, PermanentError
from nightwatch.domain.jobspec import MAX_INFO_BYTES, JobSpec
from nightwatch.domain.model import Task, TaskId, TaskStatus
from nightwatch.domain.submission import SubmissionPolicy, launch_request_for
from tests.support.hostile import (
    GOOD_INFO,
    LEAK,
    UNIT,
    assert_only_allow_listed,
    body_of,
    hostile_info,
    hostile_names,
    hostile_namespaces,
    valid_info,
)

ALLOWED = frozenset({"default", "demo"})


def row(name: str = "demo-task-1", namespace: str = "default", info: str = '{"image":"alpine"}') -> Task:
    return Task(TaskId(1), name, namespace, info, TaskStatus.NORMAL)


def test_the_original_sample_info_parses() -> None:
    spec = JobSpec.from_info('{"image":"alpine","command":["sleep"],"args":["60"]}')
    assert spec.image == "alpine" and spec.command == ("sleep",) and spec.args == ("60",)
    assert spec.backoff_limit == 1 and spec.active_deadline_seconds is None and spec.env == ()


def test_every_allowed_field_parses_from_its_camel_case_name() -> None:
    spec = JobSpec.from_info(
        json.dumps(
            {
                "image": "busybox",
                "env": [{"name": "A", "value": "1"}],
                "resources": {"limits": {"cpu": 1, "memory": "64Mi"}},
                "backoffLimit": 3,
                "activeDeadlineSeconds": 30,
                "ttlSecondsAfterFinished": 60,
            }
        )
    )
    assert spec.env[0].name == "A" and spec.env[0].value == "1"
    assert spec.resources is not None and spec.resources.limits == {"cpu": "1", "memory": "64Mi"}
    assert (spec.backoff_limit, spec.active_deadline_seconds, spec.ttl_seconds_after_finished) == (3, 30, 60)


def test_env_may_be_a_mapping() -> None:
    assert JobSpec.from_info('{"image":"a","env":{"X":"y"}}').env[0].name == "X"


def test_unknown_keys_are_dropped_from_the_spec_but_kept_in_the_row() -> None:
    info = '{"image":"a","securityContext":{"privileged":true},"volumes":[{"hostPath":{"path":"/"}}],"x":1}'
    spec = JobSpec.from_info(info)
    dumped = spec.model_dump()
    assert "securityContext" not in json.dumps(dumped) and "hostPath" not in json.dumps(dumped)
    task = row(info=info)
    launch_request_for(task, SubmissionPolicy(ALLOWED))
    assert task.info == info


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ('{"command":["sleep"]}', "image: Field required"),
        ('{"image":""}', "image"),
        ('{"image":"a","command":"sleep"}', "command: Value error, must be a list of strings"),
        ('{"image":"a","args":[60]}', "args: Value error, must be a list of strings"),
        ('{"image":"a","backoffLimit":"3"}', "backoffLimit"),
        ('{"image":"a","backoffLimit":-1}', "backoffLimit"),
        ('{"image":"a","activeDeadlineSeconds":0}', "activeDeadlineSeconds"),
        ('{"image":"a","env":[{"value":"x"}]}', "env.0.name"),
        ("not json", "info is not valid JSON"),
        ("[" * 10_000, "info is nested too deeply to parse"),
        ('{"image":"a","x":' + "[" * 10_000 + "]" * 10_000 + "}", "info is nested too deeply to parse"),
        (b'{"image":"a"}', "info must be text holding a JSON object, not bytes"),
        ("[1,2]", "info must be a JSON object, not list"),
        ("", "info is empty"),
        (None, "info is empty"),
    ],
)
def test_bad_info_is_refused_with_a_message_naming_the_problem(info: str | bytes | None, message: str) -> None:
    with pytest.raises(InvalidTaskSpec, match=message.replace(".", r"\.").replace("[", r"\[")):
        JobSpec.from_info(info)  # type: ignore[arg-type]


def test_huge_info_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidTaskSpec, match=f"limit is {MAX_INFO_BYTES}"):
        JobSpec.from_info('{"image":"a","x":"' + "y" * MAX_INFO_BYTES + '"}')


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Demo_Task", "not a DNS-1123 label"),
        ("a" * 64, "64 characters, the limit is 63"),
        ("-start", "not a DNS-1123 label"),
        ("abc\n", "not a DNS-1123 label"),
        ("", "must not be empty"),
    ],
)
def test_invalid_task_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(InvalidTaskSpec, match=message):
        launch_request_for(row(name=name), SubmissionPolicy(ALLOWED))


def test_a_63_char_name_is_fine() -> None:
    assert launch_request_for(row(name="a" * 63), SubmissionPolicy(ALLOWED)).job_name == "a" * 63


def test_namespace_not_on_the_allow_list_is_refused() -> None:
    with pytest.raises(InvalidTaskSpec, match="namespace 'kube-system' is not allowed"):
        launch_request_for(row(namespace="kube-system"), SubmissionPolicy(ALLOWED))
    assert launch_request_for(row(namespace="demo"), SubmissionPolicy(ALLOWED)).namespace == "demo"


# -- hostile input: `info`, names and namespaces straight from people typing SQL ------------------
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def parse(info: str | None) -> JobSpec | None:
    """The spec, or None when refused; anything but InvalidTaskSpec escapes and fails the test."""
    try:
        return JobSpec.from_info(info)
    except InvalidTaskSpec as refused:
        assert isinstance(refused, PermanentError)
        assert str(refused).strip(), "a refusal must say why"
        return None


@pytest.mark.hostile
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


@pytest.mark.hostile
@UNIT
@given(valid_info(with_extras=True))
def test_keys_outside_the_allow_list_never_reach_the_job(info: dict[str, object]) -> None:
    spec = parse(json.dumps(info))
    assert spec is not None, "extra keys alone must not make valid info invalid"
    assert_only_allow_listed(body_of(spec))
    assert LEAK not in spec.model_dump_json(by_alias=True)


@pytest.mark.hostile
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


@pytest.mark.hostile
def test_info_that_is_not_text_is_refused() -> None:
    # SQLite hands back a BLOB written into the TEXT column as bytes.
    with pytest.raises(InvalidTaskSpec, match="must be text"):
        JobSpec.from_info(b'{"image": "a"}')  # type: ignore[arg-type]


@pytest.mark.hostile
@UNIT
@given(hostile_names(), hostile_namespaces())
@example("abc\n", "default")
@example("abc", "default\n")
def test_a_name_or_namespace_is_accepted_only_if_it_is_exactly_a_dns_label_on_the_allow_list(
    name: str, namespace: str
) -> None:
    task = Task(TaskId(1), name, namespace, GOOD_INFO, TaskStatus.NORMAL)
    try:
        request = launch_request_for(task, SubmissionPolicy(ALLOWED))
    except InvalidTaskSpec as refused:
        assert str(refused).strip()
        return
    assert DNS1123_LABEL.fullmatch(request.job_name), repr(request.job_name)
    assert request.namespace in ALLOWED


@pytest.mark.hostile
def test_a_trailing_newline_does_not_make_a_name_valid() -> None:
    # `$` in a regex also matches before a final "\n": "abc\n" once passed as a DNS-1123 label.
    with pytest.raises(InvalidTaskSpec, match="not a DNS-1123 label"):
        launch_request_for(Task(TaskId(1), "abc\n", "default", GOOD_INFO, TaskStatus.NORMAL), SubmissionPolicy(ALLOWED))
