"""The allow-list of a profile's `job`: every key a Job profile may set, and how each is checked.

A profile is administrator configuration, but it still never reaches the cluster unchecked: the walk
(`job_problems`) reports every key outside the allow-list and every value of the wrong shape, one
`Problem` each with its `loc` path, and refuses outright what no task may have, whoever asks:
`hostPath` volumes, `privileged: true`, host namespaces (hostNetwork/hostPID/hostIPC) and added
capabilities. A new Job field a profile may set is one entry in `JOB_MANIFEST`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nightwatch.domain.errors import Problem

Loc = tuple[str | int, ...]

USER_FIELDS: tuple[str, ...] = (
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
"""What `info` could always set; the user fields of a profile that lists none."""
OPT_IN_USER_FIELDS: tuple[str, ...] = ("nodeSelector", "tolerations")
"""User fields only when the administrator lists them in `user_fields`."""
USER_FIELD_CHOICES = USER_FIELDS + OPT_IN_USER_FIELDS

Check = Callable[[Any, Loc], list[Problem]]


def problem_at(loc: Loc, message: str) -> list[Problem]:
    """One problem at `loc`, its message starting with the dotted path."""
    return [Problem(loc, f"{'.'.join(str(part) for part in loc)}: {message}")]


def _typed(kind: type | tuple[type, ...], what: str) -> Check:
    def check(value: Any, loc: Loc) -> list[Problem]:
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            return problem_at(loc, f"must be {what}")
        return [] if isinstance(value, kind) else problem_at(loc, f"must be {what}")

    return check


_STR = _typed(str, "a string")
_INT = _typed(int, "an integer")
_BOOL = _typed(bool, "true or false")


def _int_range(low: int, high: int) -> Check:
    def check(value: Any, loc: Loc) -> list[Problem]:
        if isinstance(value, bool) or not isinstance(value, int):
            return problem_at(loc, "must be an integer")
        return [] if low <= value <= high else problem_at(loc, f"must be from {low} to {high}")

    return check


def _one_of(*choices: str) -> Check:
    def check(value: Any, loc: Loc) -> list[Problem]:
        return [] if value in choices else problem_at(loc, f"must be one of {', '.join(choices)}")

    return check


def _only_false(why: str) -> Check:
    def check(value: Any, loc: Loc) -> list[Problem]:
        return [] if value is False else problem_at(loc, f"is refused: {why}")

    return check


def _refused(why: str) -> Check:
    return lambda value, loc: problem_at(loc, f"is refused: {why}")


def list_of(item: Check, *, max_items: int | None = None) -> Check:
    def check(value: Any, loc: Loc) -> list[Problem]:
        if not isinstance(value, list):
            return problem_at(loc, "must be a list")
        if max_items is not None and len(value) > max_items:
            return problem_at(loc, f"may hold at most {max_items} item(s)")
        return [problem for i, v in enumerate(value) for problem in item(v, (*loc, i))]

    return check


def _map_of(item: Check) -> Check:
    def check(value: Any, loc: Loc) -> list[Problem]:
        if not isinstance(value, dict):
            return problem_at(loc, "must be a mapping")
        return [problem for k, v in value.items() for problem in item(v, (*loc, str(k)))]

    return check


STRING_MAP = _map_of(_STR)


def _opaque(value: Any, loc: Loc) -> list[Problem]:
    """A structure passed through as written (affinity, podFailurePolicy, a volume source): a mapping."""
    return [] if isinstance(value, dict) else problem_at(loc, "must be a mapping")


def _obj(fields: Mapping[str, Check], *, required: Sequence[str] = ()) -> Check:
    def check(value: Any, loc: Loc) -> list[Problem]:
        if not isinstance(value, dict):
            return problem_at(loc, "must be a mapping")
        problems: list[Problem] = []
        for key in required:
            if key not in value:
                problems += problem_at((*loc, key), "is required")
        for key, item in value.items():
            rule = fields.get(key)
            if rule is None:
                problems += problem_at((*loc, str(key)), "is not a field a profile may set")
            else:
                problems += rule(item, (*loc, key))
        return problems

    return check


VOLUME_SOURCES = ("secret", "configMap", "persistentVolumeClaim", "emptyDir", "projected", "downwardAPI")


def _volume(value: Any, loc: Loc) -> list[Problem]:
    if not isinstance(value, dict):
        return problem_at(loc, "must be a mapping")
    problems: list[Problem] = [] if isinstance(value.get("name"), str) else problem_at((*loc, "name"), "is required")
    sources = [key for key in value if key != "name"]
    for key in sources:
        if key == "hostPath":
            problems += problem_at((*loc, key), "is refused: a task must not see the node's files")
        elif key not in VOLUME_SOURCES:
            problems += problem_at((*loc, key), f"is not an allowed volume source ({', '.join(VOLUME_SOURCES)})")
        else:
            problems += _opaque(value[key], (*loc, key))
    if len(sources) != 1 and not problems:
        problems += problem_at(loc, "must have exactly one volume source")
    return problems


_SECCOMP = _obj({"type": _one_of("RuntimeDefault", "Localhost"), "localhostProfile": _STR}, required=("type",))
_NO_PRIVILEGE = "a task must not be privileged"
_CONTAINER_SECURITY = _obj(
    {
        "privileged": _only_false(_NO_PRIVILEGE),
        "allowPrivilegeEscalation": _BOOL,
        "runAsNonRoot": _BOOL,
        "runAsUser": _int_range(0, 2**31 - 1),
        "runAsGroup": _int_range(0, 2**31 - 1),
        "readOnlyRootFilesystem": _BOOL,
        "seccompProfile": _SECCOMP,
        "capabilities": _obj(
            {"drop": list_of(_STR), "add": _refused("a task must not gain capabilities")},
        ),
    }
)
_POD_SECURITY = _obj(
    {
        "runAsNonRoot": _BOOL,
        "runAsUser": _int_range(0, 2**31 - 1),
        "runAsGroup": _int_range(0, 2**31 - 1),
        "fsGroup": _int_range(0, 2**31 - 1),
        "fsGroupChangePolicy": _one_of("OnRootMismatch", "Always"),
        "supplementalGroups": list_of(_int_range(0, 2**31 - 1)),
        "seccompProfile": _SECCOMP,
    }
)
_ENV_VAR = _obj({"name": _STR, "value": _STR, "valueFrom": _opaque}, required=("name",))
_CONTAINER = _obj(
    {
        "image": _STR,
        "command": list_of(_STR),
        "args": list_of(_STR),
        "env": list_of(_ENV_VAR),
        "resources": _obj(
            {
                "requests": _map_of(_typed((str, int, float), "a quantity")),
                "limits": _map_of(_typed((str, int, float), "a quantity")),
            }
        ),
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": list_of(
            _obj(
                {"name": _STR, "mountPath": _STR, "readOnly": _BOOL, "subPath": _STR},
                required=("name", "mountPath"),
            )
        ),
        "workingDir": _STR,
        "imagePullPolicy": _one_of("Always", "IfNotPresent", "Never"),
    }
)
TOLERATION = _obj(
    {
        "key": _STR,
        "operator": _one_of("Exists", "Equal"),
        "value": _STR,
        "effect": _one_of("NoSchedule", "PreferNoSchedule", "NoExecute"),
        "tolerationSeconds": _INT,
    }
)
_HOST_NAMESPACES = _refused("a task must not share the node's namespaces")
_POD_SPEC = _obj(
    {
        "serviceAccountName": _STR,
        "automountServiceAccountToken": _BOOL,
        "enableServiceLinks": _BOOL,
        "imagePullSecrets": list_of(_obj({"name": _STR}, required=("name",))),
        "nodeSelector": STRING_MAP,
        "tolerations": list_of(TOLERATION),
        "affinity": _opaque,
        "priorityClassName": _STR,
        "securityContext": _POD_SECURITY,
        "volumes": list_of(_volume),
        "containers": list_of(_CONTAINER, max_items=1),
        "hostNetwork": _HOST_NAMESPACES,
        "hostPID": _HOST_NAMESPACES,
        "hostIPC": _HOST_NAMESPACES,
    }
)
_METADATA = _obj({"labels": STRING_MAP, "annotations": STRING_MAP})
JOB_MANIFEST = _obj(
    {
        "metadata": _METADATA,
        "spec": _obj(
            {
                "backoffLimit": _int_range(0, 100),
                "activeDeadlineSeconds": _int_range(1, 2**31 - 1),
                "ttlSecondsAfterFinished": _int_range(0, 2**31 - 1),
                "suspend": _BOOL,
                "podFailurePolicy": _opaque,
                "template": _obj({"metadata": _METADATA, "spec": _POD_SPEC}),
            }
        ),
    }
)
"""The allow-list of a profile's `job`: every key a profile may set, and how it is checked."""


def job_problems(job: Any, loc: Loc = ("job",)) -> list[Problem]:
    """Every key of a profile's `job` the allow-list refuses, each with its `loc` path."""
    return JOB_MANIFEST(job, loc)


JOB_FIELD_NAMES = frozenset(
    {
        *USER_FIELD_CHOICES,
        *("metadata", "spec", "template", "containers", "labels", "annotations", "suspend", "podFailurePolicy"),
        *("serviceAccountName", "serviceAccount", "automountServiceAccountToken", "enableServiceLinks"),
        *("imagePullSecrets", "affinity", "priorityClassName", "securityContext", "volumes", "volumeMounts"),
        *("hostNetwork", "hostPID", "hostIPC", "privileged", "capabilities", "nodeName", "initContainers"),
        *("ephemeralContainers", "runtimeClassName", "hostAliases", "restartPolicy", "workingDir"),
        *("imagePullPolicy", "parallelism", "completions", "completionMode", "schedulingGates", "dnsPolicy"),
    }
)
"""Keys of `info` that name Job, pod or container fields. Any other key (the original system's
free-form extras) is kept in the row and ignored."""
