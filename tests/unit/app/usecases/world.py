"""The use cases of one replica on the shipped in-memory adapters, wired as the application wires them.

Dispatch, sync and cancel are built by the watcher registry from a `WatcherContext` (as
`app/container.py` does), so a new watcher or constructor parameter is wired in one place; SubmitTask
and RequestCancel, which are not watchers, are built with the arguments the container gives them.
"""

from __future__ import annotations

from typing import Any

from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryJobRunner, MemoryTaskRepository
from nightwatch.app.usecases.cancel import RequestCancel
from nightwatch.app.usecases.dispatch import DispatchSettings
from nightwatch.app.usecases.submit import SubmitTask
from nightwatch.app.usecases.sync import RetrySettings
from nightwatch.app.watchers import WatcherContext, default_registry
from nightwatch.domain.errors import LeadershipLost
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.ports import NewTask
from nightwatch.domain.submission import SubmissionPolicy

S = TaskStatus
SAMPLE_1 = '{"image":"alpine","command":["sleep"],"args":["60"]}'
SAMPLE_2 = '{"image":"busybox","command":["sleep"],"args":["3600"]}'


class World:
    def __init__(
        self,
        batch_size: int = 500,
        namespaces: frozenset[str] = frozenset({"default", "demo"}),
        retry: RetrySettings | None = None,
        policy: SubmissionPolicy | None = None,
    ) -> None:
        self.repo = MemoryTaskRepository()
        self.runner = MemoryJobRunner()
        self.clock = FakeClock()
        self.fence = FixedFence(self.repo.advance_epoch())
        self.policy = policy or SubmissionPolicy(namespaces)
        settings = DispatchSettings(batch_size=batch_size, workers=4)
        context = WatcherContext(
            self.repo, self.runner, self.clock, self.fence, settings, policy=self.policy, retry=retry or RetrySettings()
        )
        watchers: dict[str, Any] = {w.name: w.run for w in default_registry(load_plugins=False).build(context, {})}
        self.submit = SubmitTask(self.repo, self.clock, self.policy)
        self.dispatch = watchers["dispatch"]
        self.sync = watchers["sync"]
        self.cancel = watchers["cancel"]
        self.release = watchers["release"]
        self.request_cancel = RequestCancel(self.repo)

    def insert(self, name: str, namespace: str = "default", info: str = SAMPLE_1) -> TaskId:
        """A row as plain SQL would write it: no validation on the way in."""
        return self.repo.add(NewTask(name, namespace, info, 1), self.clock.now()).id

    def status(self, task_id: TaskId) -> TaskStatus:
        return self.repo.get(task_id).status


class LosingFence:
    """Holds epoch 1 until `lose()`; then every check raises LeadershipLost."""

    def __init__(self) -> None:
        self.lost = False

    def lose(self) -> None:
        self.lost = True

    def epoch(self) -> int:
        if self.lost:
            raise LeadershipLost("lease lost")
        return 1
