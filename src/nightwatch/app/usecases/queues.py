"""The queue commands (pause, resume, list) and "why is it waiting", for the CLI and the REST API.

Pausing writes the `queue_state` table, which every replica's dispatch reads each tick, so it holds
through failovers and takes effect within one tick. The waiting reason is computed on read, never
stored: one task's detail view pays for the in-flight counts and one COUNT for its position; a
list page says only what its rows show (a run_at or retry time), at no extra query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from nightwatch.domain.errors import InvalidTaskSpec, QueueNotFound
from nightwatch.domain.model import Task, TaskStatus
from nightwatch.domain.ports import Clock, QueueStates, TaskQueries, TaskSummary
from nightwatch.domain.queues import InFlight, Queues, waiting_reason
from nightwatch.domain.submission import SubmissionPolicy, submission_for


@dataclass(frozen=True, slots=True)
class QueueView:
    """One configured queue as `queue list` and `GET /api/v1/queues` show it."""

    name: str
    paused: bool
    in_flight: int
    max_in_flight: int | None
    max_starts_per_minute: int | None
    fair_share: bool


class QueueAdmin:
    """Pause, resume and list the configured queues (admin only at the API)."""

    def __init__(self, queues: Queues, states: QueueStates, queries: TaskQueries, clock: Clock) -> None:
        self._queues = queues
        self._states = states
        self._queries = queries
        self._clock = clock

    def pause(self, name: str) -> QueueView:
        """Raises QueueNotFound for a name that is not configured; RetryableError."""
        self._states.set_paused(self._known(name), True, self._clock.now())
        return self.view(name)

    def resume(self, name: str) -> QueueView:
        self._states.set_paused(self._known(name), False, self._clock.now())
        return self.view(name)

    def view(self, name: str) -> QueueView:
        found = [v for v in self.list() if v.name == self._known(name)]
        return found[0]

    def list(self) -> list[QueueView]:
        paused = self._states.paused()
        counts = self._queries.count_in_flight(started_since=self._clock.now() - timedelta(minutes=1))
        return [
            QueueView(
                q.name,
                q.name in paused,
                counts.of_queue(q.name),
                q.max_in_flight,
                q.max_starts_per_minute,
                q.fair_share,
            )
            for q in self._queues.queues
        ]

    def _known(self, name: str) -> str:
        if self._queues.get(name) is None:
            known = ", ".join(sorted(self._queues.names)) or "none are configured"
            raise QueueNotFound(f"no queue named {name!r} ({known})")
        return name


class ExplainWaiting:
    """Why a `Normal` task has not started yet (None for any other task, or one the next tick takes)."""

    def __init__(
        self, queues: Queues, states: QueueStates, queries: TaskQueries, clock: Clock, policy: SubmissionPolicy
    ) -> None:
        self._queues = queues
        self._states = states
        self._queries = queries
        self._clock = clock
        self._policy = policy

    def detail(self, task: Task) -> str | None:
        """The full reason: a time, a paused queue, a queue at its limit, or the task's position."""
        if task.status is not TaskStatus.NORMAL:
            return None
        now = self._clock.now()
        reason = waiting_reason(
            run_at=task.run_at, next_attempt_at=task.next_attempt_at, queue=None, in_flight=None, now=now
        )
        if reason is not None or not self._queues.enabled:
            return str(reason) if reason is not None else None
        try:
            valid = submission_for(task, self._policy)
        except InvalidTaskSpec:
            return None  # dispatch fails it on its next tick, with the message
        queue = self._queues.get(
            self._queues.resolve(task.namespace, task.user_id, queue=valid.queue, profile=valid.info_profile)
        )
        if queue is None:
            return None
        in_flight = self._queries.count_in_flight(started_since=now - timedelta(minutes=1))
        in_flight = InFlight(in_flight.by_queue_user, in_flight.started_last_minute, self._states.paused())
        # The position counts the ready tasks ahead that the queue's lists select (an `info.queue` or
        # a profile elsewhere is not visible to a COUNT): exact for queues chosen by namespace/user.
        ahead = self._queries.count_ready_ahead(task, namespaces=queue.namespaces, users=queue.users)
        reason = waiting_reason(
            run_at=None, next_attempt_at=None, queue=queue, in_flight=in_flight, now=now, position=ahead + 1
        )
        return str(reason) if reason is not None else None

    def listed(self, task: TaskSummary) -> str | None:
        """What a list row shows at no extra query: a run_at or retry time still to come."""
        if task.status is not TaskStatus.NORMAL:
            return None
        reason = waiting_reason(
            run_at=task.run_at,
            next_attempt_at=task.next_attempt_at,
            queue=None,
            in_flight=None,
            now=self._clock.now(),
        )
        return str(reason) if reason is not None else None
