"""Job profiles: what an administrator fixes in a task's Job, and what a user's `info` may still set.

A `Profile` is a partial `batch/v1` Job manifest (`job`), the `info` fields users may set under it
(`user_fields`) and the image prefixes it allows (`images`). Everything else in the profile is locked.
The manifest is checked by an allow-list walk (`manifest.py`), with a `loc` path for each refusal:
host paths, privileged containers, host namespaces and added capabilities are never accepted, not even
from configuration.

Merge rules (`merge`), deterministic and pure:

1. the profile's `job` is the base;
2. a user field replaces the profile's value only if it is in `user_fields` (scalars: image, command,
   args, backoffLimit, activeDeadlineSeconds, ttlSecondsAfterFinished), and only on the first container;
3. lists and maps from the profile are never replaced: `env` and `tolerations` are the profile's entries
   then the user's; `nodeSelector` and `resources` keep the profile's keys and add the user's (a user
   entry that would shadow one of the profile's is refused by `lock_problems`);
4. nightwatch's identity (Job name, namespace, its labels and finalizer) is applied last by the runner
   and always wins.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nightwatch.domain.errors import InvalidTaskSpec, Problem
from nightwatch.domain.kueue import KueueSettings
from nightwatch.domain.manifest import (
    JOB_FIELD_NAMES,
    STRING_MAP,
    TOLERATION,
    USER_FIELD_CHOICES,
    USER_FIELDS,
    Loc,
    job_problems,
    list_of,
    problem_at,
)
from nightwatch.domain.queues import check_priority
from nightwatch.domain.retries import RetrySpec

__all__ = ["JOB_FIELD_NAMES", "USER_FIELDS", "USER_FIELD_CHOICES", "job_problems"]

DEFAULT_PROFILE_NAME = "default"


_CONTAINER_FIELDS = ("image", "command", "args", "env", "resources")
_JOB_SPEC_FIELDS = ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished")
_POD_FIELDS = ("nodeSelector", "tolerations")


# -- the profile ---------------------------------------------------------------------------------------
class Profile(BaseModel):
    """One profile, as configured under `profiles.<name>` (its name is the key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default=DEFAULT_PROFILE_NAME, exclude=True)
    job: dict[str, Any] = Field(default_factory=dict)
    """A partial batch/v1 Job manifest (see JOB_MANIFEST for what it may hold)."""
    user_fields: tuple[str, ...] = USER_FIELDS
    """The `info` fields users may set; everything else the profile sets is locked."""
    images: tuple[str, ...] = ()
    """Allowed image prefixes (`registry.example/team/`); empty: any image."""
    namespaces: tuple[str, ...] = ()
    """The namespaces whose tasks may use this profile; empty: any allowed namespace."""
    legacy_info: bool = False
    """Job fields in `info` that users may not set are ignored (nightwatch's behaviour before profiles)
    instead of refused. The built-in default profile has it, so existing rows behave as they did."""
    kueue: KueueSettings | None = None
    """Hand this profile's Jobs to Kueue (created suspended with its labels), over the namespace's and the
    global Kueue mode (`runner.kueue_namespaces`, `runner.kueue`); None: those decide."""
    retry: RetrySpec | None = None
    """The retry policy of this profile's tasks, key by key under their own `info.retry` and over the
    deployment's `retry.default` (the same keys and bounds: docs/retries.md)."""
    priority: int | None = None
    """The priority of a task submitted through nightwatch (CLI, REST, web) under this profile when the
    submitter gives none (None: 0). Rows written by plain SQL carry their own `priority` column."""

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_in_bounds(cls, value: object) -> object:
        return None if value is None else check_priority(value)

    def config_problems(self, loc: Loc) -> list[Problem]:
        """What is wrong with this profile as configured, one problem per bad entry."""
        problems = job_problems(self.job, (*loc, "job"))
        shaped = not problems  # what follows the manifest reads it, which needs its shape first
        for i, name in enumerate(self.user_fields):
            if name not in USER_FIELD_CHOICES:
                problems += problem_at(
                    (*loc, "user_fields", i), f"{name!r} is not a user field ({', '.join(USER_FIELD_CHOICES)})"
                )
        for i, prefix in enumerate(self.images):
            if not prefix or any(c.isspace() for c in prefix):
                problems += problem_at((*loc, "images", i), "must be a non-empty image prefix without blanks")
        if not shaped:
            return problems
        image = self.container().get("image")
        if "image" not in self.user_fields and not isinstance(image, str):
            problems += problem_at(
                (*loc, "user_fields"), "must list image, or the profile must set the container's image"
            )
        if not problems and isinstance(image, str) and not self.image_allowed(image):
            problems += problem_at(
                (*loc, "job", "spec", "template", "spec", "containers", 0, "image"), "is not under `images`"
            )
        return problems

    # -- what the profile sets
    def pod(self) -> dict[str, Any]:
        return dict(self.job.get("spec", {}).get("template", {}).get("spec", {}))

    def container(self) -> dict[str, Any]:
        containers = self.pod().get("containers") or [{}]
        return dict(containers[0])

    def sets(self, name: str) -> bool:
        """Whether the profile itself sets user field `name`."""
        if name in _CONTAINER_FIELDS:
            return name in self.container()
        if name in _JOB_SPEC_FIELDS:
            return name in self.job.get("spec", {})
        if name in _POD_FIELDS:
            return name in self.pod()
        return False

    def image_allowed(self, image: str) -> bool:
        return not self.images or any(image.startswith(prefix) for prefix in self.images)

    def default_image(self) -> str | None:
        image = self.container().get("image")
        return image if isinstance(image, str) else None

    # -- lock rules
    def lock_problems(self, info: Mapping[str, Any]) -> list[Problem]:
        """Every Job field of `info` this profile does not let users set, or an entry that would shadow one
        of the profile's own (`env` names, `nodeSelector` keys, `resources` names), each naming the field."""
        problems: list[Problem] = []
        for key in info:
            if key not in JOB_FIELD_NAMES:
                continue  # a free-form extra: kept in the row, never reaches a Job
            if key not in self.user_fields:
                if self.legacy_info:
                    continue
                if self.sets(key) or self._sets_anywhere(key):
                    message = f"{key} is set by profile {self.name} and cannot be overridden"
                else:
                    allowed = ", ".join(self.user_fields) or "none"
                    message = f"{key} cannot be set under profile {self.name} (users may set: {allowed})"
                problems.append(Problem(("info", key), message))
        problems += self._shadowing(info)
        return problems

    def _sets_anywhere(self, key: str) -> bool:
        return key in self.pod() or key in self.container() or key in self.job.get("spec", {})

    def _shadowing(self, info: Mapping[str, Any]) -> list[Problem]:
        problems: list[Problem] = []

        def refuse(loc: Loc, what: str) -> None:
            problems.append(Problem(("info", *loc), f"{what} is set by profile {self.name} and cannot be overridden"))

        if "env" in self.user_fields and isinstance(info.get("env"), list | dict):
            ours = {e.get("name") for e in self.container().get("env", []) if isinstance(e, dict)}
            names = (
                list(info["env"])
                if isinstance(info["env"], dict)
                else [e.get("name") if isinstance(e, dict) else None for e in info["env"]]
            )
            for i, name in enumerate(names):
                if name in ours:
                    refuse(("env", str(name) if isinstance(info["env"], dict) else i), f"env {name}")
        if "nodeSelector" in self.user_fields and isinstance(info.get("nodeSelector"), dict):
            for key in info["nodeSelector"]:
                if key in self.pod().get("nodeSelector", {}):
                    refuse(("nodeSelector", key), f"nodeSelector {key}")
        if "resources" in self.user_fields and isinstance(info.get("resources"), dict):
            ours_resources = self.container().get("resources", {})
            for kind in ("requests", "limits"):
                wanted = info["resources"].get(kind)
                if isinstance(wanted, dict):
                    for key in wanted:
                        if key in ours_resources.get(kind, {}):
                            refuse(("resources", kind, key), f"resources.{kind}.{key}")
        return problems

    def placement(self, info: Mapping[str, Any]) -> Placement:
        """The user's nodeSelector and tolerations, when this profile lets users set them. Raises
        InvalidTaskSpec naming the bad entries."""
        node_selector: dict[str, str] = {}
        tolerations: list[dict[str, Any]] = []
        problems: list[Problem] = []
        if "nodeSelector" in self.user_fields and "nodeSelector" in info:
            problems += STRING_MAP(info["nodeSelector"], ("info", "nodeSelector"))
            if not problems:
                node_selector = dict(info["nodeSelector"])
        if "tolerations" in self.user_fields and "tolerations" in info:
            found = list_of(TOLERATION)(info["tolerations"], ("info", "tolerations"))
            problems += found
            if not found:
                tolerations = [dict(t) for t in info["tolerations"]]
        if problems:
            raise InvalidTaskSpec("; ".join(p.message for p in problems), problems)
        return Placement(node_selector, tuple(tolerations))


@dataclass(frozen=True, slots=True)
class Placement:
    """The scheduling fields a user set, when the profile lets them (nodeSelector, tolerations)."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()


NO_PLACEMENT = Placement()

BUILTIN_DEFAULT = Profile(name=DEFAULT_PROFILE_NAME, legacy_info=True)
"""The profile of every task when none is configured: the Jobs nightwatch always made."""

RESTRICTED_EXAMPLE: dict[str, Any] = {
    "job": {
        "spec": {
            "template": {
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "runAsNonRoot": True,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            }
                        }
                    ],
                }
            }
        }
    }
}
"""A profile a Pod Security `restricted` namespace admits (also in deploy/nightwatch.example.yaml)."""

RESTRICTED_PROFILE_NAME = "restricted"
BUILTIN_PROFILES: Mapping[str, Profile] = {
    DEFAULT_PROFILE_NAME: BUILTIN_DEFAULT,
    RESTRICTED_PROFILE_NAME: Profile.model_validate({**RESTRICTED_EXAMPLE, "name": RESTRICTED_PROFILE_NAME}),
}
"""Always in the catalog unless a configured profile of the same name replaces one."""


# -- the catalog ---------------------------------------------------------------------------------------
class ProfileSource(Protocol):
    def catalog(self) -> ProfileCatalog:
        """The profiles in force now (one consistent snapshot per call)."""
        ...


@dataclass(frozen=True, slots=True)
class ProfileCatalog:
    """Every profile by name, the default one and the namespace defaults. Immutable: a reload builds a
    new one, and whoever holds a `ProfileSource` swaps one reference."""

    profiles: Mapping[str, Profile] = field(default_factory=lambda: dict(BUILTIN_PROFILES))
    default: str = DEFAULT_PROFILE_NAME
    namespaces: Mapping[str, str] = field(default_factory=dict)

    def catalog(self) -> ProfileCatalog:
        return self

    def resolve(self, namespace: str, requested: object = None) -> Profile:
        """The profile of a task: `info.profile`, else its namespace's, else the default.
        Raises InvalidTaskSpec naming an unknown profile."""
        if requested is None:
            requested = self.namespaces.get(namespace, self.default)
        elif not isinstance(requested, str):
            raise _bad_profile("profile must be a string naming a configured profile")
        profile = self.profiles.get(requested)
        if profile is None:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise _bad_profile(f"profile {requested} is not configured (profiles: {known})")
        if profile.namespaces and namespace not in profile.namespaces:
            raise _bad_profile(f"profile {requested} cannot be used in namespace {namespace}")
        return profile

    @classmethod
    def build(
        cls, profiles: Mapping[str, Mapping[str, Any] | Profile], default: str, namespaces: Mapping[str, str]
    ) -> ProfileCatalog:
        """A catalog from configuration; the built-in `default` unless one of that name is configured.
        Raises InvalidTaskSpec with one problem per bad entry (`loc` from `profiles`/`runner`)."""
        built: dict[str, Profile] = dict(BUILTIN_PROFILES)
        problems: list[Problem] = []
        for name, raw in profiles.items():
            try:
                data = raw.model_dump() if isinstance(raw, Profile) else dict(raw)
                profile = Profile.model_validate({**data, "name": name})
            except ValidationError as exc:
                for error in exc.errors():
                    problems += problem_at(("profiles", name, *error["loc"]), error["msg"])
                continue
            found = profile.config_problems(("profiles", name))
            problems += found
            if not found:
                built[name] = profile
        known = set(built) | set(profiles)
        if default not in known:
            problems += problem_at(("runner", "default_profile"), f"profile {default} is not configured")
        for namespace, name in namespaces.items():
            if name not in known:
                problems += problem_at(("runner", "namespace_profiles", namespace), f"profile {name} is not configured")
            elif name in built and built[name].namespaces and namespace not in built[name].namespaces:
                problems += problem_at(
                    ("runner", "namespace_profiles", namespace),
                    f"profile {name} is limited to namespaces {', '.join(built[name].namespaces)}",
                )
        if problems:
            raise InvalidTaskSpec("; ".join(p.message for p in problems), problems)
        return cls(built, default, dict(namespaces))


def _bad_profile(message: str) -> InvalidTaskSpec:
    return InvalidTaskSpec(message, [Problem(("info", "profile"), message)])


# -- the merge -----------------------------------------------------------------------------------------
def merge(profile: Profile, spec: Any, placement: Placement = NO_PLACEMENT) -> dict[str, Any]:
    """The profile's `job` with the user's fields applied (see the module docstring), without
    nightwatch's identity (name, namespace, its labels and finalizer) or its pod defaults.

    `spec` is the task's JobSpec; only the fields the user set (`model_fields_set`) and the profile
    allows are applied."""
    job: dict[str, Any] = copy.deepcopy(profile.job)
    job_spec = job.setdefault("spec", {})
    pod = job_spec.setdefault("template", {}).setdefault("spec", {})
    containers = pod.setdefault("containers", [{}])
    container = containers[0]
    allowed = set(profile.user_fields)
    given = {_ALIASES.get(name, name) for name in spec.model_fields_set}
    mine = given & allowed

    if "image" in mine or "image" not in container:
        container["image"] = spec.image
    for name in ("command", "args"):
        value = list(getattr(spec, name))
        if name in mine and value:
            container[name] = value
    if "env" in mine and spec.env:
        container["env"] = [*container.get("env", []), *({"name": e.name, "value": e.value} for e in spec.env)]
    if "resources" in mine and spec.resources is not None:
        resources = container.setdefault("resources", {})
        for kind in ("requests", "limits"):
            wanted = dict(getattr(spec.resources, kind))
            if wanted:
                resources[kind] = {**wanted, **resources.get(kind, {})}
        if not resources:
            del container["resources"]
    if "backoffLimit" in mine or "backoffLimit" not in job_spec:
        job_spec["backoffLimit"] = spec.backoff_limit
    for name, attr in (
        ("activeDeadlineSeconds", "active_deadline_seconds"),
        ("ttlSecondsAfterFinished", "ttl_seconds_after_finished"),
    ):
        if name in mine and getattr(spec, attr) is not None:
            job_spec[name] = getattr(spec, attr)
    if "nodeSelector" in allowed and placement.node_selector:
        pod["nodeSelector"] = {**placement.node_selector, **pod.get("nodeSelector", {})}
    if "tolerations" in allowed and placement.tolerations:
        pod["tolerations"] = [*pod.get("tolerations", []), *(dict(t) for t in placement.tolerations)]
    return job


_ALIASES = {
    "backoff_limit": "backoffLimit",
    "active_deadline_seconds": "activeDeadlineSeconds",
    "ttl_seconds_after_finished": "ttlSecondsAfterFinished",
    "start_timeout_seconds": "startTimeoutSeconds",
}

LOCAL_RUNNER_HONOURS = frozenset({"image", "command", "args", "env", "activeDeadlineSeconds", "backoffLimit"})


def ignored_by_local_runner(profile: Profile) -> list[str]:
    """The fields this profile sets that a local process cannot honour (reported in the task message)."""
    ignored: list[str] = []
    if profile.job.get("metadata"):
        ignored.append("metadata")
    for key in profile.job.get("spec", {}):
        if key not in ("template", *LOCAL_RUNNER_HONOURS):
            ignored.append(key)
    template = profile.job.get("spec", {}).get("template", {})
    if template.get("metadata"):
        ignored.append("template.metadata")
    ignored += [key for key in profile.pod() if key != "containers"]
    ignored += [key for key in profile.container() if key not in LOCAL_RUNNER_HONOURS]
    if profile.kueue is not None:
        ignored.append("kueue")
    return ignored
