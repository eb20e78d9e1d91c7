"""The one validator of a task: name, namespace and `info`, against the deployment's `SubmissionPolicy`.

SubmitTask (the CLI and the REST API) runs it before a row is stored, and dispatch runs it again on
every row it launches (rows written by plain SQL were never checked), so a task is accepted exactly
when it can become a Job. It reports every problem at once, each with the field it concerns
(`loc`), so a form can show them next to their fields and a failed task's message names them all.

JSON edge cases are decided here, once: `info` given as an object is stored as compact JSON;
NaN and Infinity (which JSON cannot carry) and nesting deeper than the parser can walk are refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nightwatch.domain.errors import InvalidTaskSpec, Problem
from nightwatch.domain.jobspec import JobSpec, LaunchRequest, parse_info
from nightwatch.domain.model import Task
from nightwatch.domain.names import check_dns1123_label, check_namespace_allowed, job_name_for
from nightwatch.domain.profiles import BUILTIN_DEFAULT, NO_PLACEMENT, Placement, Profile, ProfileCatalog, ProfileSource
from nightwatch.domain.queues import check_priority

STORED_NAME_CHARS = 45
"""The widest name and namespace the task table stores (`VARCHAR(45)`, the original system's width).
Kubernetes allows 63; a longer name would pass every rule and then fail the insert with a database error."""


@dataclass(frozen=True, slots=True)
class SubmissionPolicy:
    """What this deployment accepts, from configuration."""

    allowed_namespaces: frozenset[str] = frozenset({"default"})
    profiles: ProfileSource = field(default_factory=ProfileCatalog)
    """The Job profiles; read once per validation, so a reload swaps them between two tasks, never within one."""
    queues: frozenset[str] = frozenset()
    """The configured queue names: an `info.queue` naming another one is refused."""


@dataclass(frozen=True, slots=True)
class Submission:
    """A task that passed validation: `info` as it is stored, and the Job spec parsed from it."""

    name: str
    namespace: str
    info: str
    spec: JobSpec
    profile: Profile = BUILTIN_DEFAULT
    placement: Placement = NO_PLACEMENT
    queue: str | None = None
    """`info.queue`: the configured queue the task asks for (None: matched by the queues' lists)."""
    info_profile: str | None = None
    """`info.profile` as the task wrote it (None: not set): queues match on it, as dispatch's selection
    reads it (`claimed_queue`)."""
    priority: int = 0


def encode_info(info: Mapping[str, Any]) -> str:
    """`info` as the column stores it (compact JSON). Raises InvalidTaskSpec for what JSON cannot carry."""
    try:
        return json.dumps(info, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        reason = "nesting too deep"
    except (ValueError, TypeError) as exc:
        reason = str(exc)
    message = f"info is not representable as JSON: {reason}"
    raise InvalidTaskSpec(message, [Problem(("info",), message)])


def validate_submission(
    name: str,
    namespace: str,
    info: str | Mapping[str, Any] | None,
    policy: SubmissionPolicy,
    *,
    stored: bool = False,
    priority: object = None,
) -> Submission:
    """The validated task, or InvalidTaskSpec whose `problems` list every field that is wrong.

    `stored`: the row exists already (dispatch), so the width the table stores is no longer a rule.
    `priority`: None (the submitter gave none) is the task's profile's `priority`, else 0.
    """
    problems: list[Problem] = []
    fits = (lambda value, _what: value) if stored else _storable
    _check(problems, "name", lambda: fits(check_dns1123_label(name, "task name"), "task name"))
    _check(
        problems,
        "namespace",
        lambda: fits(check_namespace_allowed(namespace, policy.allowed_namespaces), "namespace"),
    )
    raw: str | None = None
    spec: JobSpec | None = None
    profile: Profile | None = None
    placement = NO_PLACEMENT
    try:
        raw = encode_info(info) if isinstance(info, Mapping) else info
        data = parse_info(raw)
        profile = policy.profiles.catalog().resolve(namespace, data.get("profile"))
        problems.extend(profile.lock_problems(data))
        try:
            placement = profile.placement(data)
        except InvalidTaskSpec as exc:
            problems.extend(exc.problems)
        default_image = profile.default_image()
        if default_image is not None and "image" not in data:
            data = {**data, "image": default_image}  # the profile's image, which the user may not override
        spec = JobSpec.from_data(data)
        if not profile.image_allowed(spec.image):
            message = (
                f"image {spec.image} is not allowed by profile {profile.name} (allowed: {', '.join(profile.images)})"
            )
            problems.append(Problem(("info", "image"), message))
    except InvalidTaskSpec as exc:
        problems.extend(exc.problems)
    queue = info_profile = None
    if spec is not None and raw is not None:
        queue, info_profile = _queue_keys(raw, policy, problems)
    if priority is None:
        priority = profile.priority if profile is not None and profile.priority is not None else 0
    try:
        checked_priority = check_priority(priority)
    except ValueError as exc:
        problems.append(Problem(("priority",), str(exc)))
    if problems or spec is None or raw is None or profile is None:
        raise InvalidTaskSpec("; ".join(p.message for p in problems), problems)
    return Submission(name, namespace, raw, spec, profile, placement, queue, info_profile, checked_priority)


def submission_for(task: Task, policy: SubmissionPolicy) -> Submission:
    """A stored task validated as at submit (dispatch's check). Raises InvalidTaskSpec."""
    return validate_submission(task.name, task.namespace, task.info, policy, stored=True, priority=task.priority)


def launch_request_for(task: Task, policy: SubmissionPolicy) -> LaunchRequest:
    """What the runner needs to launch a stored task, validated as at submit. Raises InvalidTaskSpec."""
    return launch_request_of(task, submission_for(task, policy))


def launch_request_of(task: Task, valid: Submission) -> LaunchRequest:
    """The launch request of a stored task already validated (`submission_for`): this attempt's Job
    name, the task's profile and placement."""
    return LaunchRequest(
        task.id,
        job_name_for(task.name, task.attempt),
        task.namespace,
        valid.spec,
        valid.profile,
        valid.placement,
        attempt=max(1, task.attempt),
    )


def claimed_queue(info: str | None) -> tuple[str | None, str | None]:
    """`info.queue` and `info.profile` as dispatch's selection reads them, before (and far cheaper
    than) the whole validation, which runs on the tasks selected; never raises: anything unreadable
    is (None, None), and the validation then fails the task with the reason."""
    try:
        data = json.loads(info) if isinstance(info, str) else None
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    queue, profile = data.get("queue"), data.get("profile")
    return (queue if isinstance(queue, str) else None, profile if isinstance(profile, str) else None)


def _queue_keys(raw: str, policy: SubmissionPolicy, problems: list[Problem]) -> tuple[str | None, str | None]:
    """`info.queue` (a configured queue's name, checked) and `info.profile` if a string (the profile
    resolution checks it and reports a bad one)."""
    info = parse_info(raw)  # JobSpec.from_info accepted it: an object
    queue, profile = info.get("queue"), info.get("profile")
    if queue is not None:
        if not isinstance(queue, str):
            problems.append(Problem(("info", "queue"), f"info.queue must be a queue name, not {queue!r}"))
            queue = None
        elif queue not in policy.queues:
            known = ", ".join(sorted(policy.queues)) or "none are configured"
            problems.append(Problem(("info", "queue"), f"info.queue {queue!r} is not a configured queue ({known})"))
            queue = None
    return queue, profile if isinstance(profile, str) else None


def _storable(value: str, what: str) -> str:
    if len(value) > STORED_NAME_CHARS:
        raise InvalidTaskSpec(f"{what} is {len(value)} characters; the task table stores at most {STORED_NAME_CHARS}")
    return value


def _check(problems: list[Problem], field: str, check: Callable[[], object]) -> None:
    try:
        check()
    except InvalidTaskSpec as exc:
        problems.append(Problem((field,), str(exc)))
