"""RenderJob: the exact Job manifest a task gets, before or after it is submitted (`nightwatch render`,
`POST /api/v1/render`, the web form's "Preview Job").

It validates exactly as submit and dispatch do (`validate_submission`, with the profiles in force now)
and builds the body with the runner's own builder, injected by the composition root, so what it shows
is what dispatch sends. A task not stored yet has task id 0 in its labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.model import TaskId
from nightwatch.domain.ports import TaskQueries
from nightwatch.domain.submission import SubmissionPolicy, launch_request_for, validate_submission

PREVIEW_NAME = "preview"
"""The Job name of a preview that gives no task name."""

BuildJob = Callable[[LaunchRequest], dict[str, Any]]


class RenderJob:
    def __init__(self, queries: TaskQueries, policy: SubmissionPolicy, build: BuildJob) -> None:
        self._queries = queries
        self._policy = policy
        self._build = build

    def task(self, task_id: TaskId) -> dict[str, Any]:
        """The Job of a stored task, as dispatch would create it now. Raises TaskNotFound, InvalidTaskSpec."""
        return self._build(launch_request_for(self._queries.get(task_id), self._policy))

    def preview(self, name: str | None, namespace: str, info: str | Mapping[str, Any]) -> dict[str, Any]:
        """The Job a submission would get. Raises InvalidTaskSpec naming every bad field."""
        valid = validate_submission(name or PREVIEW_NAME, namespace, info, self._policy)
        request = LaunchRequest(TaskId(0), valid.name, valid.namespace, valid.spec, valid.profile, valid.placement)
        return self._build(request)

    def profiles(self) -> list[dict[str, Any]]:
        """The profiles in force, for a picker: name, the fields users may set, the allowed image prefixes."""
        catalog = self._policy.profiles.catalog()
        return [
            {
                "name": name,
                "default": name == catalog.default,
                "user_fields": list(profile.user_fields),
                "images": list(profile.images),
                "namespaces": list(profile.namespaces),
            }
            for name, profile in sorted(catalog.profiles.items())
        ]
