"""DispatchTasks with queues on the in-memory adapters: priority, limits counted from the store (so a
successor leader honours them), pause, fair share, the global cap, an unknown `info.queue`."""

from __future__ import annotations

import json

from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryJobRunner, MemoryQueueStates, MemoryTaskRepository
from nightwatch.app.usecases.dispatch import DispatchSettings, DispatchTasks
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.ports import NewTask
from nightwatch.domain.queues import Queue, Queues
from nightwatch.domain.submission import SubmissionPolicy

INFO = {"image": "alpine"}


class QueueWorld:
    def __init__(self, *queues: Queue, max_in_flight: int | None = None, batch_size: int = 500) -> None:
        self.repo = MemoryTaskRepository()
        self.runner = MemoryJobRunner()
        self.clock = FakeClock()
        self.states = MemoryQueueStates()
        self.queues = Queues(queues)
        self.policy = SubmissionPolicy(frozenset({"default", "other"}), queues=self.queues.names)
        self.settings = DispatchSettings(batch_size=batch_size, workers=4, max_in_flight=max_in_flight)
        self.dispatch = self.leader()

    def leader(self) -> DispatchTasks:
        """A fresh DispatchTasks (a new leader): nothing carried over in memory."""
        self.epoch = self.repo.advance_epoch()
        fence = FixedFence(self.epoch)
        return DispatchTasks(
            self.repo,
            self.runner,
            self.clock,
            fence,
            self.settings,
            policy=self.policy,
            queues=self.queues,
            queue_states=self.states,
        )

    def add(self, name: str, *, user: int = 1, priority: int = 0, namespace: str = "default", **info: object) -> TaskId:
        body = json.dumps({**INFO, **info})
        return self.repo.add(NewTask(name, namespace, body, user, priority=priority), self.clock.now()).id

    def finish(self, task_id: TaskId, *, same_leader: bool = False) -> None:
        """The task's Job ends (a sync writes it); by a new leader unless `same_leader`."""
        task = self.repo.get(task_id)
        change = task.observe(JobObservation(JobPhase.SUCCEEDED), self.clock.now())
        assert change is not None
        if same_leader:
            self.repo.apply([change], epoch=self.epoch)
            return
        self.repo.apply([change], epoch=self.repo.advance_epoch())
        self.dispatch = self.leader()

    def in_flight(self) -> list[TaskId]:
        return [t.id for t in self.repo.list_by_status([TaskStatus.PENDING, TaskStatus.RUNNING], limit=10_000)]


def test_priority_wins_over_age_under_a_limit() -> None:
    w = QueueWorld(Queue("q", max_in_flight=2))
    old = w.add("old")
    w.add("older-low", priority=-10)
    high = w.add("high", priority=100)
    w.dispatch()
    assert sorted(w.in_flight()) == sorted([high, old])


def test_a_queue_limit_is_counted_from_the_store_so_a_new_leader_keeps_it() -> None:
    w = QueueWorld(Queue("q", max_in_flight=3))
    ids = [w.add(f"t{i}") for i in range(10)]
    assert w.dispatch().launched == 3
    assert w.leader()().launched == 0  # a successor: nothing in memory, the store says 3/3
    w.finish(ids[0])
    assert w.dispatch().launched == 1
    assert len(w.in_flight()) == 3
    assert w.repo.get(ids[1]).queue == "q"


def test_a_paused_queue_launches_nothing_new_and_resumes() -> None:
    w = QueueWorld(Queue("q", namespaces=frozenset({"default"})))
    w.add("a")
    other = w.add("b", namespace="other")
    w.states.set_paused("q", True, w.clock.now())
    assert w.dispatch().launched == 1
    assert w.in_flight() == [other]
    w.states.set_paused("q", False, w.clock.now())
    assert w.dispatch().launched == 1


def test_fair_share_gives_the_small_user_its_first_job_in_the_first_tick() -> None:
    w = QueueWorld(Queue("q", max_in_flight=4, fair_share=True), batch_size=50)
    for i in range(200):
        w.add(f"big-{i}", user=1)
    small = [w.add(f"small-{i}", user=2) for i in range(5)]
    w.dispatch()
    users = [w.repo.get(t).user_id for t in w.in_flight()]
    assert sorted(users) == [1, 1, 2, 2]
    assert small[0] in w.in_flight()


def test_fair_share_turns_follow_the_launch_order_not_the_tick() -> None:
    # Users 1 and 2 launch in one tick, in that order; user 2's Job ends, user 3 takes the next
    # slot. The next slot is user 1's turn (served before user 2), although user 2 has none in flight.
    w = QueueWorld(Queue("q", fair_share=True), max_in_flight=2)
    for user in (1, 2, 3):
        for i in range(3):
            w.add(f"u{user}-{i}", user=user)

    def launched_users() -> list[int]:
        before = set(w.in_flight())
        assert w.dispatch().launched >= 1
        return sorted(w.repo.get(t).user_id for t in set(w.in_flight()) - before)

    assert launched_users() == [1, 2]
    w.finish(next(t for t in w.in_flight() if w.repo.get(t).user_id == 2), same_leader=True)
    assert launched_users() == [3]
    w.finish(next(t for t in w.in_flight() if w.repo.get(t).user_id == 3), same_leader=True)
    assert launched_users() == [1]


def test_the_global_cap_holds_across_queues_and_no_queue() -> None:
    w = QueueWorld(Queue("q", users=frozenset({1})), max_in_flight=3)
    for i in range(3):
        w.add(f"a{i}", user=1)
        w.add(f"b{i}", user=2)
    assert w.dispatch().launched == 3
    assert w.dispatch().launched == 0


def test_info_queue_names_the_queue_and_an_unknown_one_fails_the_task_naming_it() -> None:
    w = QueueWorld(Queue("small", max_in_flight=1), Queue("big"))
    a = w.add("a", queue="small")
    b = w.add("b", queue="small")
    bad = w.add("bad", queue="nope")
    w.dispatch()
    assert w.repo.get(a).status is TaskStatus.PENDING and w.repo.get(a).queue == "small"
    assert w.repo.get(b).status is TaskStatus.NORMAL
    failed = w.repo.get(bad)
    assert failed.status is TaskStatus.FAILED and "'nope'" in failed.message


def test_kueue_held_jobs_do_not_count_against_the_limit() -> None:
    w = QueueWorld(Queue("q", max_in_flight=1))
    first = w.add("first")
    w.add("second")
    w.dispatch()
    task = w.repo.get(first)
    held = JobObservation(JobPhase.SUSPENDED, "JobSuspended", "no quota", queued_by_kueue=True)
    change = task.observe(held, w.clock.now())
    assert change is not None and change.message.startswith("Queued by Kueue: ")
    w.repo.apply([change], epoch=w.repo.advance_epoch())
    assert w.leader()().launched == 1
