"""Hostile task rows for the property-based tests: strategies, hypothesis profiles, a Job-body walker.

Rows come from people typing SQL, so anything can be in them. The strategies here produce what
they might type: `info` that is not JSON, JSON of the wrong type, nesting deep enough to blow a
recursive parser, huge strings, NUL and odd code points, keys that would make a Job privileged;
names and namespaces full of SQL and shell metacharacters; status strings nightwatch does not know.
`assert_only_allow_listed` checks that a Job body built from any of it has nightwatch's fixed shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from nightwatch.adapters.kubernetes.jobbody import (
    ATTEMPT_LABEL,
    CONTAINER_NAME,
    MANAGED_BY_LABEL,
    POD_APP_LABEL,
    TASK_ID_LABEL,
    build_job_body,
)
from nightwatch.domain.jobspec import MAX_INFO_BYTES, JobSpec, LaunchRequest
from nightwatch.domain.model import TaskId, TaskStatus

# -- hypothesis profiles ----------------------------------------------------------------------------
# derandomize: the same examples on every run, so CI is reproducible and a red run can be re-run;
# no example database (nothing written into the working tree); no deadline (the machine is shared).
_COMMON: dict[str, Any] = {
    "derandomize": True,
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
}
settings.register_profile("hostile-unit", max_examples=400, **_COMMON)
settings.register_profile("hostile-memory", max_examples=150, **_COMMON)
settings.register_profile("hostile-sqlite", max_examples=150, **_COMMON)
settings.register_profile("hostile-mariadb", max_examples=50, **_COMMON)
settings.register_profile("hostile-postgres", max_examples=50, **_COMMON)
settings.register_profile("hostile-processes", max_examples=12, **_COMMON)

UNIT = settings.get_profile("hostile-unit")
MEMORY = settings.get_profile("hostile-memory")
SQLITE = settings.get_profile("hostile-sqlite")
MARIADB = settings.get_profile("hostile-mariadb")
POSTGRES = settings.get_profile("hostile-postgres")
PROCESSES = settings.get_profile("hostile-processes")

# -- text -------------------------------------------------------------------------------------------
# Every code point but surrogates (a database cannot store a lone one): NUL, controls, combining
# marks, right-to-left overrides, private use, noncharacters, astral planes.
ODD_CHARS = st.characters(blacklist_categories=("Cs",))
odd_text = st.text(ODD_CHARS, max_size=60)

SHELL_METACHARACTERS = [
    "; touch PWNED",
    "$(touch PWNED)",
    "`touch PWNED`",
    "| tee PWNED",
    "&& rm -rf PWNED-dir",
    "|| touch PWNED",
    "> PWNED",
    "\ntouch PWNED\n",
    "'; touch PWNED; '",
    '"; touch PWNED; "',
    "${IFS}touch${IFS}PWNED",
    "*",
    "~",
    "$HOME",
    "\\",
]
SQL_METACHARACTERS = [
    "'; DROP TABLE task; --",
    "' OR '1'='1",
    '" OR 1=1 --',
    "a'); DELETE FROM task; --",
    "%",
    "_",
    "\\'",
    "0x4E6F726D616C",
]

# -- info -------------------------------------------------------------------------------------------
ALLOWED_INFO_KEYS = (
    "image",
    "command",
    "args",
    "env",
    "resources",
    "backoffLimit",
    "activeDeadlineSeconds",
    "ttlSecondsAfterFinished",
    "startTimeoutSeconds",
)
# The same fields by their Python names (pydantic's populate_by_name): allowed, just spelled differently.
ALLOWED_FIELD_NAMES = (
    "backoff_limit",
    "active_deadline_seconds",
    "ttl_seconds_after_finished",
    "start_timeout_seconds",
)

DANGEROUS_KEYS = (
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "privileged",
    "securityContext",
    "capabilities",
    "allowPrivilegeEscalation",
    "runAsUser",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "volumes",
    "volumeMounts",
    "hostPath",
    "nodeName",
    "nodeSelector",
    "tolerations",
    "affinity",
    "initContainers",
    "ephemeralContainers",
    "imagePullSecrets",
    "priorityClassName",
    "shareProcessNamespace",
    "hostAliases",
    "dnsPolicy",
    "envFrom",
    "valueFrom",
    "lifecycle",
    "workingDir",
    "ports",
    "parallelism",
    "completions",
    "podFailurePolicy",
    # Keys the body does use: set in `info`, they must still not reach it.
    "metadata",
    "labels",
    "annotations",
    "spec",
    "template",
    "containers",
    "restartPolicy",
    "apiVersion",
    "kind",
    "name",
    "namespace",
)

LEAK = "nw-leak-sentinel"
"""Every value under a key outside the allow-list carries this; it must never appear in a Job."""

_leaky_values = st.sampled_from(
    [
        True,
        LEAK,
        [LEAK],
        {"privileged": True, "note": LEAK},
        {"hostPath": {"path": "/", "type": LEAK}},
        [{"name": LEAK, "mountPath": "/host"}],
        {"secretKeyRef": {"name": LEAK, "key": "token"}},
        {"metadata": {"labels": {LEAK: LEAK}}},
    ]
)
_extra_keys = st.one_of(
    st.sampled_from(DANGEROUS_KEYS),
    st.text(ODD_CHARS, min_size=1, max_size=20).filter(lambda k: k not in ALLOWED_INFO_KEYS + ALLOWED_FIELD_NAMES),
)
_extras = st.dictionaries(_extra_keys, _leaky_values, max_size=6)

# Values JobSpec accepts (its bounds are in domain/jobspec.py): hostile within the rules, never outside them.
_quantity = st.one_of(
    st.integers(0, 10**6),
    st.floats(0, 1e6, allow_nan=False),
    st.sampled_from(["100m", "1", "64Mi", "1Gi", "0.5", ".5", "1e3", "2E+2", "+1", "9223372036854775"]),
    st.from_regex(r"[0-9]{1,6}(\.[0-9]{0,3})?(Ki|Mi|Gi|m|k|M|G)?", fullmatch=True),
)
_resource_names = st.sampled_from(["cpu", "memory", "ephemeral-storage", "hugepages-2Mi", "kubernetes.io/x"])
# An extended resource (vendor.com/name) is counted in whole units.
_extended_resources = st.dictionaries(
    st.sampled_from(["nvidia.com/gpu", "a.b/c"]), st.integers(0, 8) | st.just("2"), max_size=1
)
IMAGES = [
    "busybox",
    "alpine",
    "busybox:1.36",
    "python:3.12",
    "registry.example.com:5000/team/app:v1.2",
    "ghcr.io/x/y@sha256:" + "0123456789abcdef" * 4,
    "localhost/a__b--c.d:Latest_1.x-y",
    "[::1]:5000/a/b",
]
_images = st.one_of(
    st.sampled_from(IMAGES),
    st.from_regex(
        r"([a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?\.[a-z]{2,4}(:[0-9]{1,5})?/)?[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,3}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,20})?",
        fullmatch=True,
    ),
)
# Env names: any printable ASCII but '=' (Kubernetes' relaxed rule), shell metacharacters included.
_env_names = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters="="), min_size=1, max_size=20
)
_process_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60)
_process_strings = st.one_of(_process_text, st.sampled_from(SHELL_METACHARACTERS))


def _requests_within_limits(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Requests the API accepts against the limits: a request with a limit equals it, and a resource that
    cannot be overcommitted (hugepages, extended) gets a limit equal to its request."""
    requests = resources.get("requests")
    if not requests:
        return resources
    limits = resources.setdefault("limits", {})
    for name, quantity in requests.items():
        if name in limits:
            requests[name] = limits[name]
        elif name.startswith("hugepages-") or ("/" in name and "kubernetes.io/" not in name):
            limits[name] = quantity
    return resources


@st.composite
def valid_info(draw: st.DrawFn, *, with_extras: bool = False) -> dict[str, Any]:
    """An object JobSpec accepts: allow-listed fields with hostile but well-typed values, and
    (with_extras) keys outside the allow-list at every level, each carrying LEAK."""
    info: dict[str, Any] = {"image": draw(_images)}
    if draw(st.booleans()):
        info["command"] = draw(st.lists(_process_strings, max_size=4))
    if draw(st.booleans()):
        info["args"] = draw(st.lists(_process_strings, max_size=4))
    if draw(st.booleans()):
        if draw(st.booleans()):
            info["env"] = draw(st.dictionaries(_env_names, _process_text, max_size=3))
        else:
            items = st.fixed_dictionaries({"name": _env_names, "value": _process_text})
            if with_extras:
                items = st.builds(lambda item, extra: {**extra, **item}, items, _extras)
            info["env"] = draw(st.lists(items, max_size=3))
    if draw(st.booleans()):
        resources: dict[str, Any] = _requests_within_limits(
            {
                part: draw(st.dictionaries(_resource_names, _quantity, max_size=3)) | draw(_extended_resources)
                for part in draw(st.sets(st.sampled_from(["requests", "limits"])))
            }
        )
        if with_extras:
            resources = {**draw(_extras), **resources}
        info["resources"] = resources
    if draw(st.booleans()):
        info["backoffLimit"] = draw(st.integers(0, 100))
    if draw(st.booleans()):
        info["activeDeadlineSeconds"] = draw(st.integers(1, 2**31 - 1))
    if draw(st.booleans()):
        info["ttlSecondsAfterFinished"] = draw(st.integers(0, 2**31 - 1))
    if draw(st.booleans()):
        info["startTimeoutSeconds"] = draw(st.integers(0, 2**31 - 1))
    if with_extras:
        info = {**draw(_extras), **info}
    return info


_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), odd_text
)
json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def wrong_typed_info(draw: st.DrawFn) -> dict[str, Any]:
    """An object with allow-listed keys whose values have the wrong type (or a wrong range)."""
    keys = draw(st.lists(st.sampled_from(ALLOWED_INFO_KEYS + ALLOWED_FIELD_NAMES), min_size=1, max_size=4))
    wrong = st.one_of(
        json_values,
        st.sampled_from([-1, 0, 101, 2**63, -(2**63) - 1, 1.5, "3", True, [], {}, [1, 2], [[["x"]]], {"a": {"b": 1}}]),
    )
    return {key: draw(wrong) for key in keys}


def _nested(depth: int, *, inside: str = "") -> str:
    return "[" * depth + inside + "]" * depth


# Built once: strings this large are cheap to sample and pointless to shrink.
_HUGE_AND_DEEP = [
    "[" * 10_000,
    "{" * 10_000,
    '{"a":' * 10_000,
    "[" * 100_000,
    _nested(10_000),
    '{"image":"a","x":' + _nested(10_000) + "}",
    '{"image":"a","command":' + _nested(5_000, inside='"sh"') + "}",
    '{"image":"a","env":' + _nested(5_000, inside='{"name":"A"}') + "}",
    '{"image":"a","resources":{"limits":' + '{"cpu":' * 5_000 + "1" + "}" * 5_000 + "}}",
    '{"image":"a","x":' + _nested(900) + "}",  # under the recursion limit: parses, then x is ignored
    '{"image":"a","args":["' + "x" * 1_000_000 + '"]}',  # 1 MB of args
    '{"image":"a","args":["' + "x" * (MAX_INFO_BYTES - 40) + '"]}',  # just under the limit: accepted
    '{"image":"' + "é" * (MAX_INFO_BYTES // 2) + '"}',  # under the limit in characters, over it in bytes
    '{"image":"a","x":"' + "\x00" * 200_000 + '"}',
    '{"image":"a","args":[' + ",".join(['"y"'] * 50_000) + "]}",
    "1" * 5_000,  # an integer too long for int() (ValueError, not a crash)
    '{"image":"a","backoffLimit":' + "9" * 5_000 + "}",
]
_BROKEN_JSON = [
    "",
    " ",
    "\n\t",
    "null",
    "{",
    "}",
    '{"image":',
    '{"image":"a",}',
    "{'image': 'a'}",
    '{"image":"a"} trailing',
    '{"image":"a"}{"image":"b"}',
    "NaN",
    "-Infinity",
    '"just a string"',
    '{"image":"\\ud800"}',  # an escaped lone surrogate: valid JSON, unencodable text
    '{"image":"a","image":"b"}',
    "\ufeff{}",
    '{"image": "a", "args": ["\\u0000"]}',
    *SQL_METACHARACTERS,
    *SHELL_METACHARACTERS,
]


# Values at and around every bound of domain/jobspec.py, and strings one character outside its grammars.
INT32_MAX = 2**31 - 1
_near_bounds = st.one_of(
    st.sampled_from([0, 1, 100, 101, INT32_MAX, INT32_MAX + 1, 2**63 - 1, 2**63, int("9" * 400), -1, 1e20, 0.5]),
    st.integers(INT32_MAX - 2, INT32_MAX + 2),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
)
_almost_images = st.one_of(
    st.sampled_from(
        [
            "Busybox",
            "busybox ",
            " busybox",
            "busy box",
            "busybox\n",
            "<script>alert(1)</script>",
            "busybox:",
            "busybox@",
            "busybox:-tag",
            "a//b",
            "a/-b",
            "a..b",
            "a___b",
            "-a",
            "a:" + "t" * 129,
            "a" * 256,
            "a@sha256:" + "0" * 31,
            "a\x00",
            "\u0430lpine",  # Cyrillic a
        ]
    ),
    st.builds(lambda image, i, c: image[:i] + c + image[i:], _images, st.integers(0, 40), ODD_CHARS),
)
_almost_env_names = st.one_of(
    _env_names, st.text(ODD_CHARS, max_size=20), st.sampled_from(["", "A=B", "=", "A\x00", "\x7f", "é", "A\nB"])
)
_almost_quantities = st.one_of(
    _quantity,
    odd_text,
    _near_bounds,
    st.sampled_from(
        [
            "",
            "-1",
            "1K",
            "1ki",
            "1e",
            "1e1.5",
            "1.2.3",
            "NaN",
            "inf",
            "0x10",
            "1 Gi",
            "1Gi ",
            "9223372036854776",
            "1e16",
            "8Ei",
            "1e9999999999",
            "1" * 65,
        ]
    ),
)


@st.composite
def near_bound_info(draw: st.DrawFn) -> dict[str, Any]:
    """An object whose values sit at, just inside or just outside the bounds JobSpec documents."""
    info: dict[str, Any] = {"image": draw(st.one_of(_images, _almost_images))}
    strings = st.one_of(_process_strings, odd_text, st.sampled_from(["\x00", "a\x00b", "=", "A=B"]))
    for key in ("command", "args"):
        if draw(st.booleans()):
            info[key] = draw(st.lists(strings, max_size=3))
    if draw(st.booleans()):
        info["env"] = draw(st.lists(st.fixed_dictionaries({"name": _almost_env_names, "value": strings}), max_size=3))
    if draw(st.booleans()):
        names = st.one_of(
            _resource_names, st.sampled_from(["CPU", "gpu", "nvidia.com/gpu", "a/b/c", "/cpu", "hugepages-"]), odd_text
        )
        info["resources"] = {"limits": draw(st.dictionaries(names, _almost_quantities, max_size=3))}
    for key in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished", "startTimeoutSeconds"):
        if draw(st.booleans()):
            info[key] = draw(_near_bounds)
    return info


def hostile_info() -> st.SearchStrategy[str | None]:
    """Anything a person might put in `info` (NULL included)."""
    return st.one_of(
        st.none(),
        st.text(ODD_CHARS, max_size=200),
        st.sampled_from(_BROKEN_JSON),
        st.sampled_from(_HUGE_AND_DEEP),
        json_values.map(json.dumps),
        wrong_typed_info().map(json.dumps),
        valid_info().map(lambda info: json.dumps(info, ensure_ascii=False)),
        valid_info(with_extras=True).map(json.dumps),
        near_bound_info().map(json.dumps),
    )


# -- names, namespaces, statuses --------------------------------------------------------------------
_NASTY_NAMES = [
    "",
    "A",
    "UPPER",
    "Demo_Task",
    "a" * 200,
    "a" * 64,
    "a" * 63,
    "-a",
    "a-",
    "a.b",
    "abc\n",
    "\nabc",
    "a b",
    "a\tb",
    "a\x00b",
    "..",
    ".",
    "../../etc/passwd",
    "a/b",
    "\uff41\uff42\uff43"  # fullwidth "abc",
    "é",
    "İ",
    "\u202eabc",
    "\U0001d51e",  # fraktur "a"
    *SQL_METACHARACTERS,
    *SHELL_METACHARACTERS,
]
_dns_labels = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)


def hostile_names() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(_NASTY_NAMES), _dns_labels, st.text(ODD_CHARS, max_size=200))


def hostile_namespaces() -> st.SearchStrategy[str]:
    nasty = [
        "default",
        "demo",
        "kube-system",
        "DEFAULT",
        "default\n",
        "default ",
        " default",
        "default;",
        "default\x00",
    ]
    return st.one_of(st.sampled_from(nasty + _NASTY_NAMES), st.text(ODD_CHARS, max_size=200))


KNOWN_STATUSES = frozenset(s.value for s in TaskStatus)
_NASTY_STATUSES = [
    "normal",
    "Normal ",
    "Normal  ",
    " Normal",
    "NORMAL",
    "Normal\n",
    "Normal\x00",
    "RUNNING",
    "running",
    "Running ",
    "pending",
    "Pending\t",
    "succeeded",
    "Cancelled ",
    "FAILED",
    "",
    " ",
    "Nörmal",
    "0",
    "null",
    "Normal'; --",
]


def unknown_statuses() -> st.SearchStrategy[str]:
    """Status strings that are not exactly a nightwatch status (at most the column's 45 characters)."""
    return st.one_of(
        st.sampled_from(_NASTY_STATUSES), st.text(ODD_CHARS, max_size=45).filter(lambda s: s not in KNOWN_STATUSES)
    )


def hostile_statuses() -> st.SearchStrategy[str]:
    """`Normal`, another known status written by hand, or (as often as both) an unknown one."""
    return st.one_of(
        st.just("Normal"), st.sampled_from(sorted(KNOWN_STATUSES)), st.sampled_from(_NASTY_STATUSES), unknown_statuses()
    )


@dataclass(frozen=True)
class HostileRow:
    """A row as plain SQL writes it, plus an optional status written over it after the first tick."""

    name: str
    namespace: str
    info: str | None
    status: str
    cancel_requested: bool = False
    later_status: str | None = None


@st.composite
def hostile_rows(draw: st.DrawFn) -> HostileRow:
    """A row hostile in one field (so that validation reaches the others) or in all of them."""
    focus = draw(st.sampled_from(["info", "info", "name", "namespace", "status", "status", "all"]))
    name = draw(hostile_names() if focus in ("name", "all") else _dns_labels)
    namespace = draw(hostile_namespaces() if focus in ("namespace", "all") else st.sampled_from(["default", "demo"]))
    info = draw(hostile_info() if focus in ("info", "all") else valid_info().map(json.dumps))
    status = draw(hostile_statuses() if focus in ("status", "all") else st.just("Normal"))
    return HostileRow(
        name=name,
        namespace=namespace,
        info=info,
        status=status,
        cancel_requested=draw(st.sampled_from([False, False, False, True])),
        later_status=draw(st.one_of(st.none(), st.none(), st.none(), unknown_statuses())),
    )


# -- the Job body's fixed shape ---------------------------------------------------------------------
class _Leaf:
    """A scalar (string or integer)."""


class _StringMap:
    """A map of user-chosen keys (resource names) to strings."""


LEAF = _Leaf()
STRING_MAP = _StringMap()
_JOB_LABELS = {MANAGED_BY_LABEL: LEAF, TASK_ID_LABEL: LEAF, ATTEMPT_LABEL: LEAF}
"""The attempt label is on a retry's Job and pods only (attempt > 1, issue 18)."""
_CONTAINER: dict[str, Any] = {
    "name": LEAF,
    "image": LEAF,
    "command": [LEAF],
    "args": [LEAF],
    "env": [{"name": LEAF, "value": LEAF}],
    "resources": {"requests": STRING_MAP, "limits": STRING_MAP},
}
JOB_SHAPE: dict[str, Any] = {
    "apiVersion": LEAF,
    "kind": LEAF,
    "metadata": {
        "name": LEAF,
        "namespace": LEAF,
        "labels": _JOB_LABELS,
        "annotations": {"nightwatch.io/start-timeout-seconds": LEAF},
        "finalizers": [LEAF],
    },
    "spec": {
        "backoffLimit": LEAF,
        "activeDeadlineSeconds": LEAF,
        "ttlSecondsAfterFinished": LEAF,
        "template": {
            "metadata": {"labels": {**_JOB_LABELS, POD_APP_LABEL: LEAF}},
            "spec": {
                "restartPolicy": LEAF,
                "automountServiceAccountToken": False,  # always exactly False: no token, no service links
                "enableServiceLinks": False,
                "containers": [_CONTAINER],
            },
        },
    },
}


def shape_violations(value: Any, shape: Any = JOB_SHAPE, path: str = "") -> list[str]:
    """Where `value` leaves `shape`: keys nightwatch never sets, or a type where another belongs."""
    if shape is False:
        return [] if value is False else [f"{path}: {value!r} where false belongs"]
    if shape is LEAF:
        ok = isinstance(value, str | int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {type(value).__name__} where a scalar belongs"]
    if shape is STRING_MAP:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            return [f"{path}: not a map of strings"]
        return []
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__} where a list belongs"]
        return [v for i, item in enumerate(value) for v in shape_violations(item, shape[0], f"{path}[{i}]")]
    if not isinstance(value, dict):
        return [f"{path}: {type(value).__name__} where an object belongs"]
    violations = [f"{path}.{key}: not a field nightwatch sets" for key in value if key not in shape]
    for key, item in value.items():
        if key in shape:
            violations.extend(shape_violations(item, shape[key], f"{path}.{key}"))
    return violations


def assert_only_allow_listed(body: Mapping[str, Any]) -> None:
    """A Job body has nightwatch's fixed shape and values, and carries nothing marked LEAK."""
    violations = shape_violations(body)
    assert not violations, violations
    pod = body["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert len(pod["containers"]) == 1 and pod["containers"][0]["name"] == CONTAINER_NAME
    assert (body["apiVersion"], body["kind"]) == ("batch/v1", "Job")
    assert LEAK not in json.dumps(body, ensure_ascii=False), "a value from outside the allow-list reached the Job"


# -- shared by the unit tests of several modules (domain/jobspec, kubernetes/jobbody, usecases/dispatch)
ALLOWED = frozenset({"default", "demo"})
GOOD_INFO = '{"image": "busybox", "command": ["true"]}'


def body_of(spec: JobSpec) -> dict[str, object]:
    return build_job_body(LaunchRequest(TaskId(7), "task", "default", spec))
