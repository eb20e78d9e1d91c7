"""The queue-aware reads of the LeaderStore port, and the QueueStates port, on every adapter
(memory, SQLite, MariaDB, PostgreSQL): priority order and its paging, the users with ready work,
their heads, the in-flight counts by (queue, user), a task's position, and paused queues."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from nightwatch.adapters.memory import MemoryQueueStates, MemoryTaskRepository
from nightwatch.adapters.sql import SqlTaskRepository
from nightwatch.adapters.sql.queues import SqlQueueStates
from nightwatch.adapters.sql.tables import task
from nightwatch.domain.model import TaskId
from nightwatch.domain.ports import NewTask, QueueStates, TaskRepository
from tests.contract.test_repository import REPOSITORY_BACKENDS

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
INFO = '{"image": "alpine"}'


@pytest.fixture(params=sorted(REPOSITORY_BACKENDS))
def repo(request: pytest.FixtureRequest) -> Iterator[TaskRepository]:
    with REPOSITORY_BACKENDS[request.param]() as repository:
        yield repository


def states_for(repo: TaskRepository) -> QueueStates:
    if isinstance(repo, MemoryTaskRepository):
        return MemoryQueueStates()
    assert isinstance(repo, SqlTaskRepository)
    return SqlQueueStates(repo.engine)


def add(repo: TaskRepository, name: str, *, user: int = 7, priority: int = 0, namespace: str = "default") -> TaskId:
    return repo.add(NewTask(name, namespace, INFO, user_id=user, priority=priority), NOW).id


def start(repo: TaskRepository, task_id: TaskId, queue: str | None, when: datetime = NOW) -> None:
    task = repo.get(task_id)
    assert repo.apply([task.start(f"job-{task_id}", when, queue=queue)], epoch=0).applied == (task_id,)


def test_ready_is_highest_priority_first_then_oldest_and_pages_across_priorities(repo: TaskRepository) -> None:
    low = add(repo, "low", priority=-5)
    a = add(repo, "a")
    high = add(repo, "high", priority=10)
    b = add(repo, "b")
    high2 = add(repo, "high2", priority=10)
    assert [t.id for t in repo.list_ready()] == [high, high2, a, b, low]
    assert repo.get(high).priority == 10
    first = repo.list_ready(limit=3)
    assert [t.id for t in first] == [high, high2, a]
    rest = repo.list_ready(after_id=first[-1].id, after_priority=first[-1].priority, limit=3)
    assert [t.id for t in rest] == [b, low]
    # Without a priority position, after_id skips old ids at every priority (the id cursor of before).
    assert [t.id for t in repo.list_ready(after_id=a)] == [high, high2, b]


def test_users_with_ready_work_are_listed_once_each_and_their_heads_are_their_oldest(repo: TaskRepository) -> None:
    for i in range(5):
        add(repo, f"big-{i}", user=3)
    small = add(repo, "small", user=9)
    started = add(repo, "started", user=11)
    start(repo, started, None)
    assert repo.list_ready_users() == [3, 9]
    assert repo.list_ready_users(after_user=3) == [9]
    assert repo.list_ready_users(limit=1) == [3]
    heads = repo.list_ready_of_users([3, 9, 11], per_user=2)
    assert sorted((t.user_id, t.name) for t in heads) == [(3, "big-0"), (3, "big-1"), (9, "small")]
    assert small in {t.id for t in heads}


def test_in_flight_is_counted_by_queue_and_user_and_leaves_out_kueue_held_jobs(repo: TaskRepository) -> None:
    ids = [add(repo, f"t{i}", user=1 + i % 2) for i in range(6)]
    start(repo, ids[0], "team-a", NOW - timedelta(minutes=5))
    start(repo, ids[1], "team-a")
    start(repo, ids[2], "team-a")
    start(repo, ids[3], None)
    start(repo, ids[4], "team-a")
    held = repo.get(ids[4])
    repo.apply([held.observe(_suspended_by_kueue(), NOW)], epoch=0)  # type: ignore[list-item]
    counts = repo.count_in_flight(started_since=NOW - timedelta(minutes=1))
    assert dict(counts.by_queue_user) == {("team-a", 1): 2, ("team-a", 2): 1, (None, 2): 1}
    assert counts.started_last_minute.get("team-a") == 2
    assert repo.get(ids[1]).queue == "team-a"


def test_an_in_flight_row_written_by_hand_without_a_message_counts(repo: TaskRepository) -> None:
    # `message` is nullable: a Pending row from the original system or typed in SQL has none, and the
    # Kueue test (message LIKE 'Queued by Kueue: %') must not turn NULL into "not in flight".
    if not isinstance(repo, SqlTaskRepository):
        pytest.skip("the memory adapter's tasks always have a message")
    ids = [add(repo, f"t{i}") for i in range(3)]
    start(repo, ids[0], "team-a")
    start(repo, ids[1], "team-a")
    with repo.engine.begin() as conn:
        conn.execute(sa.update(task).where(task.c.id.in_(ids[:2])).values(message=None))
        conn.execute(sa.update(task).where(task.c.id == ids[2]).values(status="Running", queue="team-a", message=None))
    counts = repo.count_in_flight(started_since=NOW - timedelta(minutes=1))
    assert dict(counts.by_queue_user) == {("team-a", 7): 3}


def test_the_position_counts_the_ready_tasks_ranked_ahead(repo: TaskRepository) -> None:
    a = add(repo, "a")
    add(repo, "b", namespace="other")
    c = add(repo, "c")
    add(repo, "d", priority=5, user=2)
    assert repo.count_ready_ahead(repo.get(a)) == 1
    assert repo.count_ready_ahead(repo.get(c)) == 3
    assert repo.count_ready_ahead(repo.get(c), namespaces=frozenset({"default"})) == 2
    assert repo.count_ready_ahead(repo.get(c), users=frozenset({2})) == 1


def test_a_paused_queue_is_seen_by_another_reader_until_resumed(repo: TaskRepository) -> None:
    states = states_for(repo)
    assert states.paused() == frozenset()
    states.set_paused("team-a", True, NOW)
    states.set_paused("team-a", True, NOW)  # idempotent
    states.set_paused("team-b", False, NOW)
    assert states.paused() == frozenset({"team-a"})
    if isinstance(states, SqlQueueStates):
        assert SqlQueueStates(states.engine).paused() == frozenset({"team-a"})  # another replica's view
    states.set_paused("team-a", False, NOW)
    assert states.paused() == frozenset()


def _suspended_by_kueue() -> object:
    from nightwatch.domain.observation import JobObservation, JobPhase

    return JobObservation(JobPhase.SUSPENDED, "JobSuspended", "waiting for quota", queued_by_kueue=True)


def test_the_skip_scan_finds_more_users_than_one_recursive_statement_walks(repo: TaskRepository) -> None:
    # 950 users: past the 900 users one statement finds (MariaDB stops a recursion at 1000 by default).
    for user in range(950):
        add(repo, f"u{user}", user=user)
    users = repo.list_ready_users(limit=2000)
    assert users == list(range(950))
    assert repo.list_ready_users(after_user=899, limit=3) == [900, 901, 902]
