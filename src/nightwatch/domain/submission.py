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
from dataclasses import dataclass
from typing import Any

from nightwatch.domain.errors import InvalidTaskSpec, Problem
from nightwatch.domain.jobspec import JobSpec, LaunchRequest, parse_info
from nightwatch.domain.model import Task
from nightwatch.domain.names import check_dns1123_label, check_namespace_allowed
from nightwatch.domain.queues import check_priority

STORED_NAME_CHARS = 45
"""The widest name and namespace the task table stores (`VARCHAR(45)`, the original system's width).
Kubernetes allows 63; a longer name would pass every rule and then fail the insert with a database error."""


@dataclass(frozen=True, slots=True)
class SubmissionPolicy:
    """What this deployment accepts, from configuration."""

    allowed_namespaces: frozenset[str] = frozenset({"default"})
    queues: frozenset[str] = frozenset()
    """The configured queue names: an `info.queue` naming another one is refused."""


@dataclass(frozen=True, slots=True)
class Submission:
    """A task that passed validation: `info` as it is stored, and the Job spec parsed from it."""

    name: str
    namespace: str
    info: str
    spec: JobSpec
    queue: str | None = None
    """`info.queue`: the configured queue the task asks for (None: matched by the queues' lists)."""
    profile: str | None = None
    """`info.profile`, as a string: queues match on it (profiles themselves live elsewhere)."""
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
    priority: object = 0,
) -> Submission:
    """The validated task, or InvalidTaskSpec whose `problems` list every field that is wrong.

    `stored`: the row exists already (dispatch), so the width the table stores is no longer a rule.
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
    try:
        raw = encode_info(info) if isinstance(info, Mapping) else info
        spec = JobSpec.from_info(raw)
    except InvalidTaskSpec as exc:
        problems.extend(exc.problems)
    queue = profile = None
    if spec is not None and raw is not None:
        queue, profile = _queue_keys(raw, policy, problems)
    try:
        checked_priority = check_priority(priority)
    except ValueError as exc:
        problems.append(Problem(("priority",), str(exc)))
    if problems or spec is None or raw is None:
        raise InvalidTaskSpec("; ".join(p.message for p in problems), problems)
    return Submission(name, namespace, raw, spec, queue, profile, checked_priority)


def submission_for(task: Task, policy: SubmissionPolicy) -> Submission:
    """A stored task validated as at submit (dispatch's check). Raises InvalidTaskSpec."""
    return validate_submission(task.name, task.namespace, task.info, policy, stored=True, priority=task.priority)


def launch_request_for(task: Task, policy: SubmissionPolicy) -> LaunchRequest:
    """What the runner needs to launch a stored task, validated as at submit. Raises InvalidTaskSpec."""
    valid = submission_for(task, policy)
    return LaunchRequest(task.id, task.name, task.namespace, valid.spec)


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
    """`info.queue` (a configured queue's name) and `info.profile` (a string), each checked."""
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
    if profile is not None and not isinstance(profile, str):
        problems.append(Problem(("info", "profile"), f"info.profile must be a profile name, not {profile!r}"))
        profile = None
    return queue, profile


def _storable(value: str, what: str) -> str:
    if len(value) > STORED_NAME_CHARS:
        raise InvalidTaskSpec(f"{what} is {len(value)} characters; the task table stores at most {STORED_NAME_CHARS}")
    return value


def _check(problems: list[Problem], field: str, check: Callable[[], object]) -> None:
    try:
        check()
    except InvalidTaskSpec as exc:
        problems.append(Problem((field,), str(exc)))
