"""Queues: which waiting tasks dispatch launches this tick, and why the others wait.

A queue is a named share of the cluster from configuration (`queues:`): the tasks it holds (by
namespace, user and profile lists, or named by `info.queue`), how many of them may be in flight
(`max_in_flight`, Pending + Running, counted from the database so a successor leader never exceeds
it), how many may start per minute, whether it is paused (a row in `queue_state`), and whether its
slots are shared between users round-robin (`fair_share`).

`select` is the whole admission decision, pure: dispatch reads a bounded window of candidates and
the in-flight counts, calls it, and launches what it returns in that order. Priority orders
everything (higher first, then oldest); inside a fair-share queue the next launch goes to the user
served longest ago (then the one with the fewest tasks in flight, then the best candidate), so a
user with 50,000 queued tasks and one with 5 alternate.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from nightwatch.domain.model import TaskId

PRIORITY_MIN = -1000
PRIORITY_MAX = 1000
"""A task's priority bounds: negative for backfills, 0 by default, higher first."""

MAX_QUEUE_NAME_CHARS = 63
"""A queue name is stored in `task.queue` and `queue_state.name` (VARCHAR(63))."""


class QueueSettings(BaseModel):
    """One entry of the `queues:` configuration section (a mapping from queue name to this)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespaces: list[str] = Field(default_factory=list)
    """Tasks in these namespaces (empty: any)."""
    users: list[int] = Field(default_factory=list)
    """Tasks of these user ids (empty: any)."""
    profiles: list[str] = Field(default_factory=list)
    """Tasks whose `info.profile` is one of these (empty: any, with or without a profile)."""
    max_in_flight: int | None = Field(default=None, ge=0)
    """Pending + Running tasks of this queue at most (None: no limit; 0 holds every task)."""
    max_starts_per_minute: int | None = Field(default=None, ge=0)
    """Launches in any minute at most (counted from the in-flight rows started in the last minute)."""
    fair_share: bool = False
    """Share the slots between users round-robin by their tasks in flight."""

    def queue(self, name: str) -> Queue:
        return Queue(
            name,
            frozenset(self.namespaces),
            frozenset(self.users),
            frozenset(self.profiles),
            self.max_in_flight,
            self.max_starts_per_minute,
            self.fair_share,
        )


def check_queue_name(name: str) -> str:
    """A queue name as configured: 1..63 characters of [A-Za-z0-9._-]; raises ValueError."""
    if not 1 <= len(name) <= MAX_QUEUE_NAME_CHARS or not all(c.isascii() and (c.isalnum() or c in "._-") for c in name):
        raise ValueError(f"queue name {name!r} must be 1 to {MAX_QUEUE_NAME_CHARS} letters, digits, '.', '_' or '-'")
    return name


def queues_from(settings: Mapping[str, QueueSettings], max_in_flight: int | None = None) -> Queues:
    """The `Queues` of a validated `queues:` section, in its order (the first match wins)."""
    return Queues(tuple(entry.queue(name) for name, entry in settings.items()), max_in_flight)


@dataclass(frozen=True, slots=True)
class Queue:
    """One configured queue. An empty list matches every value of its field."""

    name: str
    namespaces: frozenset[str] = frozenset()
    users: frozenset[int] = frozenset()
    profiles: frozenset[str] = frozenset()
    max_in_flight: int | None = None
    max_starts_per_minute: int | None = None
    fair_share: bool = False

    def matches(self, namespace: str, user_id: int, profile: str | None) -> bool:
        return (
            (not self.namespaces or namespace in self.namespaces)
            and (not self.users or user_id in self.users)
            and (not self.profiles or (profile is not None and profile in self.profiles))
        )


@dataclass(frozen=True, slots=True)
class Queues:
    """The configured queues in their configuration order (the first match wins), and the global cap."""

    queues: tuple[Queue, ...] = ()
    max_in_flight: int | None = None
    """`dispatch.max_in_flight`: every in-flight task counts, in a queue or not."""

    @property
    def enabled(self) -> bool:
        """Whether dispatch needs to count and select at all (else it streams in priority order)."""
        return bool(self.queues) or self.max_in_flight is not None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(q.name for q in self.queues)

    @property
    def fair_share(self) -> bool:
        return any(q.fair_share for q in self.queues)

    def get(self, name: str | None) -> Queue | None:
        return next((q for q in self.queues if q.name == name), None)

    def room(self, in_flight: InFlight) -> float:
        """Launches `select` can make now at most (inf: no bound): the global cap's free slots, and
        when a queue matches every task (all its lists empty), so that every task is in a configured
        queue, the sum of the queues' free slots. Dispatch reads a window this size, not a batch."""
        room = float("inf")
        if self.max_in_flight is not None:
            room = max(self.max_in_flight - in_flight.total, 0)
        if any(not (q.namespaces or q.users or q.profiles) for q in self.queues):
            room = min(room, sum(_free(q, in_flight) for q in self.queues))
        return room

    def resolve(self, namespace: str, user_id: int, *, queue: str | None, profile: str | None) -> str | None:
        """The queue a task belongs to: the one its `info.queue` names (validated to exist), else the
        first whose lists match it, else None (no queue: only the global cap applies)."""
        if queue is not None:
            return queue
        return next((q.name for q in self.queues if q.matches(namespace, user_id, profile)), None)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A waiting task that could launch now: validated, its queue resolved."""

    task_id: TaskId
    user_id: int
    priority: int
    queue: str | None

    @property
    def rank(self) -> tuple[int, int]:
        """Dispatch order: higher priority first, then the oldest (lowest id)."""
        return (-self.priority, self.task_id)


@dataclass(frozen=True, slots=True)
class InFlight:
    """What is in flight now, from the database: tasks counted by (queue, user), and starts in the
    last minute by queue. Kueue-suspended Jobs are left out when Kueue owns admission."""

    by_queue_user: Mapping[tuple[str | None, int], int] = field(default_factory=dict)
    started_last_minute: Mapping[str | None, int] = field(default_factory=dict)
    paused: frozenset[str] = frozenset()

    @property
    def total(self) -> int:
        return sum(self.by_queue_user.values())

    def of_queue(self, name: str | None) -> int:
        return sum(n for (q, _), n in self.by_queue_user.items() if q == name)

    def of_user(self, name: str | None, user_id: int) -> int:
        return self.by_queue_user.get((name, user_id), 0)


def _free(queue: Queue | None, in_flight: InFlight) -> float:
    """Launches the queue may still make this tick (inf: unlimited)."""
    if queue is None:
        return float("inf")
    if queue.name in in_flight.paused:
        return 0
    free = float("inf")
    if queue.max_in_flight is not None:
        free = min(free, queue.max_in_flight - in_flight.of_queue(queue.name))
    if queue.max_starts_per_minute is not None:
        free = min(free, queue.max_starts_per_minute - in_flight.started_last_minute.get(queue.name, 0))
    return max(free, 0)


class _Stream:
    """The candidates of one queue in the order that queue launches them."""

    def __init__(
        self,
        queue: Queue | None,
        candidates: list[Candidate],
        in_flight: InFlight,
        free: float,
        last_served: Mapping[int, int],
    ) -> None:
        self.free = free
        self._fair = queue is not None and queue.fair_share
        candidates.sort(key=lambda c: c.rank)
        if not self._fair:
            self._plain = candidates
            self._next = 0
            return
        name = queue.name if queue is not None else None
        self._by_user: dict[int, list[Candidate]] = defaultdict(list)
        for c in candidates:
            self._by_user[c.user_id].append(c)
        for tasks in self._by_user.values():
            tasks.reverse()  # pop() from the end gives the best
        # Round-robin on launches: the next launch goes to the user served longest ago (never: first,
        # so a newcomer does not wait behind everyone), then to the one with the fewest in flight,
        # then to the best candidate. Rotating on launches rather than on in-flight counts keeps the
        # launches even when some users' Jobs end sooner than others' (bench/bench_queues.py).
        self._turn = max(last_served.values(), default=0) + 1
        self._heap = [
            (last_served.get(u, -1), in_flight.of_user(name, u), tasks[-1].rank, u)
            for u, tasks in self._by_user.items()
        ]
        heapq.heapify(self._heap)

    def head(self) -> Candidate | None:
        if self.free <= 0:
            return None
        if not self._fair:
            return self._plain[self._next] if self._next < len(self._plain) else None
        return self._by_user[self._heap[0][3]][-1] if self._heap else None

    def take(self) -> Candidate:
        self.free -= 1
        if not self._fair:
            self._next += 1
            return self._plain[self._next - 1]
        _, count, _, user = heapq.heappop(self._heap)
        tasks = self._by_user[user]
        taken = tasks.pop()
        if tasks:
            self._turn += 1  # served now: behind every user not yet served this round
            heapq.heappush(self._heap, (self._turn, count + 1, tasks[-1].rank, user))
        return taken


def select(
    candidates: Iterable[Candidate],
    in_flight: InFlight,
    queues: Queues,
    budget: int,
    *,
    last_served: Mapping[int, int] | None = None,
) -> list[Candidate]:
    """The candidates to launch now, in launch order: at most `budget` (and within the global cap),
    none from a paused queue, none past a queue's `max_in_flight` or `max_starts_per_minute`.

    Across queues the best-ranked head goes first; inside a fair-share queue users take turns: the
    user served longest ago goes first (`last_served`: user -> a number that grows with each launch;
    missing: never), ties to the one with the fewest in flight. A candidate listed twice counts once.
    """
    served = last_served or {}
    if queues.max_in_flight is not None:
        budget = min(budget, queues.max_in_flight - in_flight.total)
    by_queue: dict[str | None, list[Candidate]] = defaultdict(list)
    seen: set[TaskId] = set()
    for c in candidates:
        if c.task_id not in seen:
            seen.add(c.task_id)
            by_queue[c.queue].append(c)
    streams = [
        _Stream(queues.get(name), tasks, in_flight, _free(queues.get(name), in_flight), served)
        for name, tasks in by_queue.items()
    ]
    chosen: list[Candidate] = []
    while len(chosen) < budget:
        heads = [(head.rank, i) for i, s in enumerate(streams) if (head := s.head()) is not None]
        if not heads:
            break
        chosen.append(streams[min(heads)[1]].take())
    return chosen


@dataclass(frozen=True, slots=True)
class Waiting:
    """Why a `Normal` task has not started: the time it waits for, or its queue's state."""

    reason: str

    def __str__(self) -> str:
        return self.reason


def waiting_reason(
    *,
    run_at: datetime | None,
    next_attempt_at: datetime | None,
    queue: Queue | None,
    in_flight: InFlight | None,
    now: datetime,
    position: int | None = None,
) -> Waiting | None:
    """Why a Normal task waits, most specific first (None: nothing holds it; the next tick takes it).

    The time reasons need no count; the queue reasons need `in_flight` (None skips them, for a list
    page); the position (1 = next) only for one task's detail view.
    """
    if run_at is not None and run_at > now:
        return Waiting(f"run_at {run_at.isoformat()}")
    if next_attempt_at is not None and next_attempt_at > now:
        return Waiting(f"retry at {next_attempt_at.isoformat()}")
    if queue is None or in_flight is None:
        return None
    if queue.name in in_flight.paused:
        return Waiting(f"paused: queue {queue.name}")
    if queue.max_in_flight is not None:
        used = in_flight.of_queue(queue.name)
        if used >= queue.max_in_flight:
            return Waiting(f"queue {queue.name} at its limit {used}/{queue.max_in_flight}")
    if position is not None:
        return Waiting(f"position {position} in queue {queue.name}")
    return None


def check_priority(value: object) -> int:
    """A priority as stored; raises ValueError naming the bounds."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"priority must be an integer from {PRIORITY_MIN} to {PRIORITY_MAX}, not {value!r}")
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise ValueError(f"priority {value} is outside {PRIORITY_MIN}..{PRIORITY_MAX}")
    return value


def ranked(candidates: Sequence[Candidate]) -> list[Candidate]:
    """`candidates` in dispatch order (higher priority, then oldest)."""
    return sorted(candidates, key=lambda c: c.rank)
