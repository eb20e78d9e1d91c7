"""Merge and lock rules of Job profiles, property-based: for any profile and any user `info`, no locked
field of the profile changes in the rendered Job, and nothing outside the allow-list appears in it."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nightwatch.adapters.kubernetes.jobbody import CONTAINER_NAME, build_job_body, job_labels
from nightwatch.domain.errors import InvalidTaskSpec
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.model import TaskId
from nightwatch.domain.profiles import (
    JOB_FIELD_NAMES,
    USER_FIELD_CHOICES,
    ProfileCatalog,
    job_problems,
)
from nightwatch.domain.submission import SubmissionPolicy, validate_submission

PREFIX = "registry.example/team/"
NAMES = st.sampled_from(["a", "b", "gpu", "zone", "x.io/y"])
WORDS = st.text(alphabet="abcxyz019-", min_size=1, max_size=6)
STR_MAP = st.dictionaries(NAMES, WORDS, max_size=3)
TOLERATION = st.fixed_dictionaries(
    {"key": NAMES, "operator": st.just("Exists")}, optional={"effect": st.sampled_from(["NoSchedule", "NoExecute"])}
)
ENV = st.lists(st.fixed_dictionaries({"name": st.sampled_from(["A", "B", "C", "D"]), "value": WORDS}), max_size=3)
IMAGE = st.builds(lambda name: PREFIX + name, st.sampled_from(["tool", "train:1", "app@sha256:" + "a" * 64]))

CONTAINER = st.fixed_dictionaries(
    {},
    optional={
        "image": IMAGE,
        "command": st.lists(WORDS, min_size=1, max_size=2),
        "args": st.lists(WORDS, max_size=2),
        "env": ENV,
        "resources": st.fixed_dictionaries(
            {"limits": st.dictionaries(st.sampled_from(["cpu", "memory"]), st.just("1"), min_size=1)}
        ),
        "securityContext": st.just({"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}),
        "volumeMounts": st.just([{"name": "creds", "mountPath": "/creds", "readOnly": True}]),
    },
)
POD = st.fixed_dictionaries(
    {},
    optional={
        "serviceAccountName": WORDS,
        "imagePullSecrets": st.lists(st.builds(lambda n: {"name": n}, WORDS), max_size=2),
        "nodeSelector": STR_MAP,
        "tolerations": st.lists(TOLERATION, min_size=1, max_size=2),
        "priorityClassName": WORDS,
        "automountServiceAccountToken": st.booleans(),
        "securityContext": st.just({"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}),
        "volumes": st.just([{"name": "creds", "secret": {"secretName": "creds"}}]),
        "containers": st.lists(CONTAINER, min_size=1, max_size=1),
    },
)
METADATA = st.fixed_dictionaries(
    {},
    optional={
        # including nightwatch's own labels, which must still lose to nightwatch's values
        "labels": st.dictionaries(
            st.sampled_from(["team", "app.kubernetes.io/managed-by", "nightwatch.io/task-id"]), WORDS
        ),
        "annotations": STR_MAP,
    },
)
JOB_SPEC = st.fixed_dictionaries(
    # the template and its spec always present (possibly empty), so that pod fields are drawn often
    {"template": st.fixed_dictionaries({"spec": POD})},
    optional={
        "backoffLimit": st.integers(0, 100),
        "activeDeadlineSeconds": st.integers(1, 10**6),
        "ttlSecondsAfterFinished": st.integers(0, 10**6),
        "suspend": st.booleans(),
        "podFailurePolicy": st.just(
            {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
        ),
    },
)
JOB = st.fixed_dictionaries({"spec": JOB_SPEC}, optional={"metadata": METADATA})
LIST_FIELDS = ("env", "tolerations", "nodeSelector", "resources")
PROFILE = st.fixed_dictionaries(
    {
        "job": JOB,
        # the fields merged entry by entry are drawn more often: they are where a lock is easiest to lose
        "user_fields": st.tuples(
            st.lists(st.sampled_from(USER_FIELD_CHOICES), unique=True), st.lists(st.sampled_from(LIST_FIELDS))
        ).map(lambda drawn: tuple(dict.fromkeys(drawn[0] + drawn[1]))),
    },
    optional={"images": st.just([PREFIX])},
)
INFO_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "image": st.one_of(IMAGE, st.just("busybox")),
    "command": st.lists(WORDS, min_size=1, max_size=2),
    "args": st.lists(WORDS, max_size=2),
    "env": ENV,
    "resources": st.fixed_dictionaries(
        {"limits": st.dictionaries(st.sampled_from(["cpu", "memory"]), st.just("2"), min_size=1)}
    ),
    "backoffLimit": st.integers(0, 100),
    "activeDeadlineSeconds": st.integers(1, 10**6),
    "ttlSecondsAfterFinished": st.integers(0, 10**6),
    "startTimeoutSeconds": st.integers(0, 10**6),
    "nodeSelector": STR_MAP,
    "tolerations": st.lists(TOLERATION, min_size=1, max_size=2),
    # Job fields no user may set, and free-form extras
    "serviceAccountName": WORDS,
    "securityContext": st.just({"privileged": True}),
    "volumes": st.just([{"name": "root", "hostPath": {"path": "/"}}]),
    "hostNetwork": st.just(True),
    "metadata": st.just({"labels": {"nightwatch.io/task-id": "1"}}),
    "owner": WORDS,
    "comment": WORDS,
}
INFO = st.dictionaries(st.sampled_from(sorted(INFO_VALUES)), st.none(), max_size=8).flatmap(
    lambda keys: st.fixed_dictionaries({key: INFO_VALUES[key] for key in keys})
)

SCALAR_USER_PATHS = {
    ("spec", "template", "spec", "containers", 0, "image"): "image",
    ("spec", "template", "spec", "containers", 0, "command"): "command",
    ("spec", "template", "spec", "containers", 0, "args"): "args",
    ("spec", "backoffLimit"): "backoffLimit",
    ("spec", "activeDeadlineSeconds"): "activeDeadlineSeconds",
    ("spec", "ttlSecondsAfterFinished"): "ttlSecondsAfterFinished",
}
IDENTITY_LABELS = {"app.kubernetes.io/managed-by", "nightwatch.io/task-id"}


def leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) of a manifest: dicts are walked, lists and scalars are leaves, except the
    one-container list, walked by index."""
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in leaves(item, (*path, key))]
    if path and path[-1] == "containers" and isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in leaves(item, (*path, i))]
    return [(path, value)]


def at(body: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        body = body[part]
    return body


def allow_listed_part(body: dict[str, Any]) -> dict[str, Any]:
    """The body without what nightwatch itself sets (identity and fixed pod defaults), for the allow-list walk."""
    rest = copy.deepcopy(body)
    for key in ("apiVersion", "kind"):
        rest.pop(key)
    for key in ("name", "namespace", "finalizers"):
        rest["metadata"].pop(key)
    pod = rest["spec"]["template"]["spec"]
    pod.pop("restartPolicy")
    pod["containers"][0].pop("name")
    return rest


def render(profile: dict[str, Any], info: dict[str, Any]) -> tuple[dict[str, Any] | None, InvalidTaskSpec | None]:
    catalog = ProfileCatalog.build({"p": profile}, "p", {})
    try:
        valid = validate_submission("t", "default", info, SubmissionPolicy(profiles=catalog))
    except InvalidTaskSpec as exc:
        return None, exc
    request = LaunchRequest(TaskId(7), "t", "default", valid.spec, valid.profile, valid.placement)
    return build_job_body(request), None


def usable(profile: dict[str, Any]) -> bool:
    try:
        ProfileCatalog.build({"p": profile}, "p", {})
    except InvalidTaskSpec:
        return False
    return True


def info_for(profile: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly the profile's user fields (so that many tasks are accepted), sometimes anything."""
    allowed = sorted(set(profile["user_fields"]) | {"owner", "comment"})
    mostly_allowed = st.fixed_dictionaries({}, optional={key: INFO_VALUES[key] for key in allowed})
    return st.one_of(mostly_allowed, mostly_allowed, mostly_allowed, INFO)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data(), PROFILE.filter(usable))
def test_no_locked_field_changes_and_nothing_outside_the_allow_list_appears(
    data: st.DataObject, profile: dict[str, Any]
) -> None:
    info = data.draw(info_for(profile), label="info")
    if "image" in profile["user_fields"] and data.draw(st.booleans(), label="with an image"):
        info.setdefault("image", data.draw(IMAGE))
    body, refused = render(profile, info)
    event("accepted" if refused is None else "refused")
    pod = profile["job"]["spec"]["template"]["spec"]
    if refused is None and pod.get("tolerations") and info.get("tolerations"):
        event("profile and user tolerations merged")
    user_fields = set(profile["user_fields"])
    forbidden = {key for key in info if key in JOB_FIELD_NAMES and key not in user_fields}
    if refused is not None:
        named = {p.loc[1] for p in refused.problems if len(p.loc) > 1 and p.loc[0] == "info"}
        assert forbidden <= named, (forbidden, refused.problems)
        for problem in refused.problems:
            if problem.loc[:1] == ("info",) and problem.loc[1] in forbidden:
                assert str(problem.loc[1]) in problem.message and "profile p" in problem.message
        return
    assert body is not None
    assert not forbidden, f"{forbidden} are not user fields of the profile, yet the task was accepted"
    for path, value in leaves(profile["job"]):
        if path[:2] == ("metadata", "labels") and path[2] in IDENTITY_LABELS:
            continue  # nightwatch's labels win, checked below
        if SCALAR_USER_PATHS.get(path) in user_fields:
            continue  # a default the user may override
        rendered = at(body, path)
        if isinstance(value, list):
            assert rendered[: len(value)] == value, path  # the profile's list is never replaced
        else:
            assert rendered == value, path
    assert body["metadata"]["labels"] | job_labels(7) == body["metadata"]["labels"]
    assert body["metadata"]["name"] == "t" and body["metadata"]["namespace"] == "default"
    assert body["metadata"]["finalizers"] == ["nightwatch.io/outcome"]
    assert body["spec"]["template"]["spec"]["containers"][0]["name"] == CONTAINER_NAME
    assert job_problems(allow_listed_part(body), ()) == []
    image = body["spec"]["template"]["spec"]["containers"][0]["image"]
    assert not profile.get("images") or image.startswith(PREFIX)


@settings(max_examples=200, deadline=None)
@given(INFO)
def test_the_built_in_default_profile_renders_what_nightwatch_always_rendered(info: dict[str, Any]) -> None:
    info = {"image": "busybox", **info}
    try:
        valid = validate_submission("t", "default", json.dumps(info), SubmissionPolicy())
    except InvalidTaskSpec:
        return
    body = build_job_body(LaunchRequest(TaskId(7), "t", "default", valid.spec))
    pod = body["spec"]["template"]["spec"]
    assert set(pod) == {"automountServiceAccountToken", "enableServiceLinks", "restartPolicy", "containers"}
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert set(pod["containers"][0]) <= {"name", "image", "command", "args", "env", "resources"}
