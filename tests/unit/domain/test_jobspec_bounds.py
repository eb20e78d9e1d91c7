"""Every value `info` can put into a Job is bounded by a rule the Job API accepts (issue 14, point 6).

Each bound at its edge (the largest value accepted, the next one refused), each grammar with good and
bad examples, the field named in every refusal, and properties over hostile input: whatever is
accepted fits the documented bounds. The expected numbers are written out here, not imported, so the
tests say what the rule is rather than repeat the code.
"""

from __future__ import annotations

import json
import re
import threading
import time
from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nightwatch.domain.errors import InvalidTaskSpec
from nightwatch.domain.jobspec import JobSpec
from nightwatch.domain.submission import SubmissionPolicy, validate_submission
from tests.support.hostile import IMAGES, UNIT, hostile_info, near_bound_info, valid_info

INT32_MAX = 2_147_483_647
MAX_QUANTITY = 9_223_372_036_854_775  # int64 max / 1000: Kubernetes reads quantities as milli-units
HEX64 = "0123456789abcdef" * 4


def spec(**info: Any) -> JobSpec:
    return JobSpec.from_info(json.dumps({"image": "busybox", **info}))


def refusal(info: dict[str, Any] | str) -> InvalidTaskSpec:
    raw = info if isinstance(info, str) else json.dumps({"image": "busybox", **info})
    with pytest.raises(InvalidTaskSpec) as refused:
        JobSpec.from_info(raw)
    return refused.value


def refused_at(info: dict[str, Any] | str) -> list[tuple[str | int, ...]]:
    return [problem.loc for problem in refusal(info).problems]


# -- numbers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "lowest", "highest", "rule"),
    [
        ("activeDeadlineSeconds", 1, INT32_MAX, "at most 2147483647"),
        ("ttlSecondsAfterFinished", 0, INT32_MAX, "at most 2147483647 (int32"),
        ("backoffLimit", 0, 100, "at most 100"),
        ("startTimeoutSeconds", 0, INT32_MAX, "at most 2147483647 (int32"),
    ],
)
def test_each_number_is_accepted_up_to_its_bound_and_refused_one_past_it(
    key: str, lowest: int, highest: int, rule: str
) -> None:
    assert spec(**{key: lowest}).model_dump(by_alias=True)[key] == lowest
    assert spec(**{key: highest}).model_dump(by_alias=True)[key] == highest
    assert refused_at({key: highest + 1}) == [("info", key)]
    assert rule in str(refusal({key: highest + 1}))
    assert refused_at({key: lowest - 1}) == [("info", key)]


@pytest.mark.parametrize(
    "key", ["activeDeadlineSeconds", "ttlSecondsAfterFinished", "backoffLimit", "startTimeoutSeconds"]
)
@pytest.mark.parametrize("value", [int("9" * 400), 2**63, 2**31, 1e20, 30.0, "30", True, None])
def test_huge_floats_strings_and_booleans_are_refused_for_every_number(key: str, value: object) -> None:
    if value is None and key != "backoffLimit":
        return  # null means "not set" for the optional ones
    assert refused_at({key: value}) == [("info", key)]


def test_nan_and_infinity_written_into_info_by_hand_are_refused() -> None:
    for token in ("NaN", "Infinity", "-Infinity"):
        assert refused_at(f'{{"image":"a","activeDeadlineSeconds":{token}}}') == [("info", "activeDeadlineSeconds")]
        assert refused_at(f'{{"image":"a","resources":{{"limits":{{"cpu":{token}}}}}}}') == [
            ("info", "resources", "limits", "cpu")
        ]


def test_the_largest_deadline_fits_the_local_supervisors_clock_and_timeouts() -> None:
    # The supervisor computes time.monotonic() + deadline and waits towards it: 400 nines overflowed.
    assert INT32_MAX <= threading.TIMEOUT_MAX
    deadline = time.monotonic() + spec(activeDeadlineSeconds=INT32_MAX).active_deadline_seconds  # type: ignore[operator]
    assert deadline == deadline and deadline < float("inf")
    assert not threading.Event().wait(timeout=min(deadline - time.monotonic(), 0.001))


# -- image ------------------------------------------------------------------------------------------
GOOD_IMAGES = [
    *IMAGES,
    "a",
    "nginx",
    "no-such-image",
    "library/busybox:latest",
    "docker.io/library/busybox:1.36.1-musl",
    "ghcr.io/x/y@sha256:" + HEX64,
    "ghcr.io/x/y:v1@sha256:" + HEX64,
    "Registry.Example.COM/team/app",  # the domain may be upper case, the path may not
    "localhost:5000/a-b--c/d__e",
    "192.168.1.10:5000/app:TAG_1",
    "a" * 255,
]
BAD_IMAGES = [
    "",
    "Busybox",
    "busybox ",
    " busybox",
    "busy box",
    "busybox\n",
    "busybox\x00",
    "<b>busybox</b>",
    "busybox:",
    "busybox:-x",
    "busybox:" + "t" * 129,
    "busybox@sha256:" + "0" * 31,
    "busybox@sha256",
    "a//b",
    "a/-b",
    "a..b",
    "a___b",
    "-a",
    "a-",
    "/a",
    "a/",
    "https://ghcr.io/x/y",
    "ghcr.io/x/Y",
    "\u0430lpine",  # a Cyrillic a
    "a" * 256,  # distribution's NameTotalLengthMax is 255
]


@pytest.mark.parametrize("image", GOOD_IMAGES)
def test_image_references_used_in_the_repo_and_the_grammar_are_accepted(image: str) -> None:
    assert spec(image=image).image == image


@pytest.mark.parametrize("image", BAD_IMAGES)
def test_image_text_outside_the_reference_grammar_is_refused_naming_the_field(image: str) -> None:
    assert refused_at({"image": image}) == [("info", "image")]


def test_an_image_is_at_most_1024_characters() -> None:
    longest = "a@sha256:" + "0" * (1024 - len("a@sha256:"))
    assert spec(image=longest).image == longest
    assert "limit is 1024" in str(refusal({"image": longest + "0"}))
    assert "limit is 1024" in str(refusal({"image": "x" * 200_000}))


@pytest.mark.parametrize(
    "image",
    ["a" * 1000 + "!", "a-" * 500 + "!", "a." * 500 + "!", "a/" * 500 + "A", "a__" * 300 + "!", "A-" * 500 + "/"],
)
def test_the_image_grammar_takes_linear_time_on_near_misses(image: str) -> None:
    # distribution's `[-]*` separator is exponential under a backtracking engine such as Python's re.
    started = time.perf_counter()
    refusal({"image": image[:1024]})
    assert time.perf_counter() - started < 0.05


# -- command, args, env -----------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["command", "args"])
def test_no_nul_or_lone_surrogate_in_command_or_args(key: str) -> None:
    assert getattr(spec(**{key: ["sh", "-c", "echo 'a=b' $HOME; ünïcode"]}), key)[2] == "echo 'a=b' $HOME; ünïcode"
    assert refused_at({key: ["ok", "a\x00b"]}) == [("info", key, 1)]
    assert "NUL" in str(refusal({key: ["\x00"]}))
    assert refused_at(f'{{"image":"a","{key}":["\\ud800"]}}') == [("info", key, 0)]


@pytest.mark.parametrize(
    "name", ["A", "_a", "my.env-name", "1ABC", "A B", "a:b", "~!@#$%^&*()[]{}<>?|\\'\"`", "x" * 1024]
)
def test_env_names_follow_kubernetes_relaxed_rule(name: str) -> None:
    assert spec(env=[{"name": name, "value": "v"}]).env[0].name == name


@pytest.mark.parametrize("name", ["", "A=B", "=", "A\x00", "\x00", "A\nB", "A\tB", "\x7f", "é", "\u202eA", "x" * 1025])
def test_env_names_outside_the_rule_are_refused_with_their_index(name: str) -> None:
    info = {"env": [{"name": "OK", "value": "1"}, {"name": name, "value": "v"}]}
    assert refused_at(info) == [("info", "env", 1, "name")]
    assert refused_at({"env": {name: "v"}}) == [("info", "env", 0, "name")]


def test_env_values_may_hold_anything_a_process_environment_can() -> None:
    assert spec(env={"A": "x=y; $(z)\n\tü"}).env[0].value == "x=y; $(z)\n\tü"
    assert refused_at({"env": [{"name": "A", "value": "a\x00b"}]}) == [("info", "env", 0, "value")]


def test_a_duplicated_env_name_is_allowed_as_kubernetes_does() -> None:
    assert [e.value for e in spec(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]).env] == ["1", "2"]


# -- resources --------------------------------------------------------------------------------------
GOOD_QUANTITIES = ["0", "1", "+1", "0.5", ".5", "5.", "100m", "250u", "7n", "1k", "64Mi", "1Gi", "8Pi"]
GOOD_QUANTITIES += ["1e3", "1E3", "2e+2", "5e-3", "1.5Gi", "9P", "9223372036854775", "0" * 63 + "1"]
BAD_QUANTITIES = ["", "-1", "-0.5", "1K", "1ki", "1mi", "1e", "1e1.5", "1.2.3", "1 Gi", " 1", "1Gi ", "1Gi\n"]
BAD_QUANTITIES += ["0x10", "nan", "NaN", "inf", "Infinity", "1,5", "\u0661", "1" * 65, "<b>1</b>"]


@pytest.mark.parametrize("quantity", GOOD_QUANTITIES)
def test_quantities_in_the_kubernetes_grammar_are_accepted(quantity: str) -> None:
    assert spec(resources={"requests": {"memory": quantity}}).resources.requests == {"memory": quantity}  # type: ignore[union-attr]


@pytest.mark.parametrize("quantity", BAD_QUANTITIES)
def test_quantities_outside_the_grammar_are_refused_naming_the_resource(quantity: str) -> None:
    assert refused_at({"resources": {"limits": {"memory": quantity}}}) == [("info", "resources", "limits", "memory")]


@pytest.mark.parametrize("quantity", ["9223372036854776", "9223372036854775001m", "1e16", "1E", "8Ei", "1e99999999999"])
def test_quantities_above_int64_milli_units_are_refused(quantity: str) -> None:
    refused = refusal({"resources": {"limits": {"cpu": quantity}}})
    assert [p.loc for p in refused.problems] == [("info", "resources", "limits", "cpu")]
    assert "at most 9223372036854775" in str(refused)


def test_json_numbers_are_quantities_too_but_only_finite_and_in_range() -> None:
    limits = spec(resources={"limits": {"cpu": 1, "memory": 0.5, "ephemeral-storage": 2.0}}).resources.limits  # type: ignore[union-attr]
    assert limits == {"cpu": "1", "memory": "0.5", "ephemeral-storage": "2"}
    assert spec(resources={"limits": {"cpu": MAX_QUANTITY}}).resources.limits == {"cpu": str(MAX_QUANTITY)}  # type: ignore[union-attr]
    for value in (MAX_QUANTITY + 1, 1e20, 1e300, -1, -0.5, True, [1], {"a": 1}):
        assert refused_at({"resources": {"limits": {"cpu": value}}}) == [("info", "resources", "limits", "cpu")]


@pytest.mark.parametrize(
    "name",
    [
        "cpu",
        "memory",
        "ephemeral-storage",
        "hugepages-2Mi",
        "nvidia.com/gpu",
        "example.com/foo_bar.baz",
        "kubernetes.io/x",
    ],
)
def test_resource_names_are_standard_or_qualified(name: str) -> None:
    assert name in spec(resources={"limits": {name: "1"}}).resources.limits  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "name",
    [
        "",
        "CPU",
        "gpu",
        "cpu ",
        "hugepages-",
        "hugepages-x",
        "/cpu",
        "a/b/c",
        "Example.com/gpu",
        "x.com/-a",
        "x.com/" + "a" * 64,
        "requests.x.com/a",
        "a b/c",
        "nvidia.com/gpu\n",
    ],
)
def test_other_resource_names_are_refused_naming_the_key(name: str) -> None:
    assert refused_at({"resources": {"requests": {name: "1"}}}) == [("info", "resources", "requests", name, "[key]")]


def test_an_extended_resource_is_counted_in_whole_units() -> None:
    assert spec(resources={"limits": {"nvidia.com/gpu": 2}}).resources.limits == {"nvidia.com/gpu": "2"}  # type: ignore[union-attr]
    assert spec(resources={"limits": {"nvidia.com/gpu": "1000m"}}) is not None
    refused = refusal({"resources": {"limits": {"nvidia.com/gpu": "0.5"}}})
    assert [p.loc for p in refused.problems] == [("info", "resources", "limits")]
    assert "nvidia.com/gpu: must be a whole number" in str(refused)


# -- through the one validator ----------------------------------------------------------------------
def test_validate_submission_reports_each_bad_field_with_its_loc() -> None:
    info = {
        "image": "Not An Image",
        "args": ["ok", "nul\x00"],
        "env": [{"name": "A=B", "value": "1"}],
        "resources": {"limits": {"cpu": 1e20}},
        "activeDeadlineSeconds": int("9" * 400),
        "ttlSecondsAfterFinished": 2**31,
    }
    with pytest.raises(InvalidTaskSpec) as refused:
        validate_submission("task", "default", info, SubmissionPolicy())
    assert {p.loc for p in refused.value.problems} == {
        ("info", "image"),
        ("info", "args", 1),
        ("info", "env", 0, "name"),
        ("info", "resources", "limits", "cpu"),
        ("info", "activeDeadlineSeconds"),
        ("info", "ttlSecondsAfterFinished"),
    }
    messages = {p.loc: p.message for p in refused.value.problems}
    assert messages[("info", "env", 0, "name")].startswith("invalid info: env.0.name: ")
    assert "int32" in messages[("info", "ttlSecondsAfterFinished")]
    assert "\x00" not in str(refused.value)  # the offending value is not echoed


# -- properties -------------------------------------------------------------------------------------
_QUANTITY_GRAMMAR = re.compile(r"\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?")
_FACTORS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_FACTORS |= {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10**3, "M": 10**6}
_FACTORS |= {"G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "": 1}


def assert_a_quantity_kubernetes_can_hold(text: str) -> None:
    match = _QUANTITY_GRAMMAR.fullmatch(text)
    assert match is not None and len(text) <= 64, text
    number, suffix = match[1], match[3] or ""
    with localcontext() as exact:
        exact.prec = 200
        if suffix[:1] in "eE" and suffix:
            exponent = int(suffix[1:])
            value = (
                Decimal(0) if Decimal(number) == 0 or exponent < -100 else Decimal(number).scaleb(min(exponent, 100))
            )
        else:
            value = Decimal(number) * _FACTORS[suffix]
        assert 0 <= value <= MAX_QUANTITY, text


def assert_within_documented_bounds(spec: JobSpec) -> None:
    assert 0 <= spec.backoff_limit <= 100
    assert spec.active_deadline_seconds is None or 1 <= spec.active_deadline_seconds <= INT32_MAX
    assert spec.ttl_seconds_after_finished is None or 0 <= spec.ttl_seconds_after_finished <= INT32_MAX
    assert spec.start_timeout_seconds is None or 0 <= spec.start_timeout_seconds <= INT32_MAX
    assert 1 <= len(spec.image) <= 1024 and re.fullmatch(r"[A-Za-z0-9._:/@\[\]+-]+", spec.image), spec.image
    for item in (*spec.command, *spec.args, *(e.value for e in spec.env)):
        assert "\x00" not in item
    for env in spec.env:
        assert 1 <= len(env.name) <= 1024 and "=" not in env.name and "\x00" not in env.name
        assert all(0x20 <= ord(c) <= 0x7E for c in env.name), env.name
    if spec.resources is not None:
        for quantity in (*spec.resources.requests.values(), *spec.resources.limits.values()):
            assert_a_quantity_kubernetes_can_hold(quantity)


@UNIT
@given(st.one_of(near_bound_info().map(json.dumps), hostile_info()))
def test_whatever_is_accepted_fits_the_documented_bounds(info: str | None) -> None:
    try:
        accepted = JobSpec.from_info(info)
    except InvalidTaskSpec as refused:
        assert refused.problems or str(refused).startswith("info ")
        assert all(p.loc[0] == "info" for p in refused.problems)
        return
    assert_within_documented_bounds(accepted)


@UNIT
@given(valid_info())
def test_values_inside_every_bound_are_accepted(info: dict[str, Any]) -> None:
    assert_within_documented_bounds(JobSpec.from_info(json.dumps(info)))


@UNIT
@given(
    st.integers(),
    st.sampled_from(["activeDeadlineSeconds", "ttlSecondsAfterFinished", "backoffLimit", "startTimeoutSeconds"]),
)
def test_an_integer_is_accepted_exactly_when_it_is_inside_its_range(value: int, key: str) -> None:
    low, high = {
        "activeDeadlineSeconds": (1, INT32_MAX),
        "ttlSecondsAfterFinished": (0, INT32_MAX),
        "startTimeoutSeconds": (0, INT32_MAX),
    }.get(key, (0, 100))
    try:
        spec(**{key: value})
    except InvalidTaskSpec as refused:
        assert [p.loc for p in refused.problems] == [("info", key)]
        assert not low <= value <= high
    else:
        assert low <= value <= high


# -- requests against limits (core ValidateResourceRequirements) -------------------------------------
@pytest.mark.parametrize(
    ("requests", "limits"),
    [
        ({"cpu": "500m"}, {"cpu": 1}),
        ({"cpu": "1"}, {"cpu": "1000m"}),
        ({"memory": "1G"}, {"memory": "1Gi"}),
        ({"memory": "64Mi"}, {}),
        ({"nvidia.com/gpu": 2}, {"nvidia.com/gpu": "2"}),
        ({"hugepages-2Mi": "4Mi"}, {"hugepages-2Mi": "4Mi"}),
    ],
)
def test_requests_up_to_their_limits_are_accepted(requests: dict[str, Any], limits: dict[str, Any]) -> None:
    assert spec(resources={"requests": requests, "limits": limits}).resources is not None


@pytest.mark.parametrize(
    ("requests", "limits", "rule"),
    [
        ({"cpu": "2"}, {"cpu": "1500m"}, "2 must be less than or equal to the cpu limit of 1500m"),
        ({"memory": "1Gi"}, {"memory": "1G"}, "1Gi must be less than or equal to the memory limit of 1G"),
        ({"ephemeral-storage": "1e3"}, {"ephemeral-storage": "999"}, "less than or equal to the ephemeral-storage"),
        ({"nvidia.com/gpu": 1}, {"nvidia.com/gpu": 2}, "must be equal to the nvidia.com/gpu limit of 2"),
        ({"nvidia.com/gpu": 1}, {}, "nvidia.com/gpu cannot be overcommitted: set a limit"),
        ({"hugepages-2Mi": "2Mi"}, {"hugepages-2Mi": "4Mi"}, "must be equal to the hugepages-2Mi limit"),
    ],
)
def test_requests_above_their_limits_are_refused_naming_the_request(
    requests: dict[str, Any], limits: dict[str, Any], rule: str
) -> None:
    refused = refusal({"resources": {"requests": requests, "limits": limits}})
    [name] = requests
    assert [p.loc for p in refused.problems] == [("info", "resources", "requests", name)]
    assert f"resources.requests.{name}: " in str(refused) and rule in str(refused)


def test_requests_above_limits_are_refused_at_submit_and_at_dispatch_alike() -> None:
    info = {"image": "busybox", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}
    with pytest.raises(InvalidTaskSpec) as refused:
        validate_submission("t", "default", info, SubmissionPolicy())
    assert [p.loc for p in refused.value.problems] == [("info", "resources", "requests", "cpu")]
    assert "resources.requests.cpu: 2 must be less than or equal to the cpu limit of 1" in str(refused.value)
