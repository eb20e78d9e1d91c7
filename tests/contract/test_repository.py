"""The TaskRepository contract: one suite, run against every adapter of the port.

Later adapters add themselves to `REPOSITORY_BACKENDS` (a factory that yields a fresh, empty
repository); the tests do not change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from nightwatch.adapters.memory import MemoryTaskRepository
from nightwatch.domain.errors import DuplicateTask, InvalidTransition, LeadershipLost, TaskNotFound
from nightwatch.domain.model import MAX_MESSAGE_CHARS, TaskId, TaskStatus
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.ports import (
    LISTED_CUT_MARK,
    MAX_LISTED_MESSAGE_CHARS,
    NewTask,
    TaskFilter,
    TaskPage,
    TaskRepository,
    TaskSummary,
)
from tests.support.sql_backends import mariadb_repository, postgres_repository, sqlite_repository

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
INFO = '{"image": "alpine", "command": ["sleep"], "args": ["1"]}'


@contextmanager
def memory_repository() -> Iterator[TaskRepository]:
    yield MemoryTaskRepository()


REPOSITORY_BACKENDS: dict[str, Callable[[], AbstractContextManager[TaskRepository]]] = {
    "memory": memory_repository,
    "sqlite": sqlite_repository,
    "mariadb": mariadb_repository,
    "postgres": postgres_repository,
}


@pytest.fixture(params=sorted(REPOSITORY_BACKENDS))
def repo(request: pytest.FixtureRequest) -> Iterator[TaskRepository]:
    with REPOSITORY_BACKENDS[request.param]() as repository:
        yield repository


def add(repo: TaskRepository, name: str, namespace: str = "default", info: str = INFO) -> TaskId:
    return repo.add(NewTask(name=name, namespace=namespace, info=info, user_id=7), NOW).id


def test_add_then_get_round_trips_every_field(repo: TaskRepository) -> None:
    task_id = add(repo, "demo-task-1")
    task = repo.get(task_id)
    assert (task.name, task.namespace, task.info, task.user_id) == ("demo-task-1", "default", INFO, 7)
    assert task.status is TaskStatus.NORMAL
    assert task.version == 0 and task.message == "" and task.job_name is None
    assert not task.cancel_requested
    assert task.created_at is not None


def test_duplicate_name_in_namespace_is_refused_but_other_namespace_is_fine(repo: TaskRepository) -> None:
    add(repo, "dup")
    with pytest.raises(DuplicateTask):
        add(repo, "dup")
    add(repo, "dup", namespace="other")


def test_get_unknown_id_raises_task_not_found(repo: TaskRepository) -> None:
    with pytest.raises(TaskNotFound):
        repo.get(TaskId(987654))


def test_list_by_status_is_oldest_first_and_batched(repo: TaskRepository) -> None:
    ids = [add(repo, f"t{i}") for i in range(7)]
    first = repo.list_by_status([TaskStatus.NORMAL], limit=3)
    assert [t.id for t in first] == ids[:3]
    second = repo.list_by_status([TaskStatus.NORMAL], after_id=first[-1].id, limit=3)
    assert [t.id for t in second] == ids[3:6]
    assert repo.list_by_status([TaskStatus.PENDING]) == []


def test_get_many_reads_only_the_given_ids_oldest_first(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    ids = [add(repo, f"many{i}") for i in range(5)]
    started = repo.get(ids[3])
    repo.apply([started.start("many3", NOW)], epoch=epoch)
    wanted = [ids[4], ids[1], ids[3], TaskId(987654), ids[1]]
    assert [t.id for t in repo.get_many(wanted)] == [ids[1], ids[3], ids[4]]
    assert [t.id for t in repo.get_many(wanted, statuses=[TaskStatus.PENDING])] == [ids[3]]
    assert repo.get_many(wanted, statuses=[]) == []
    assert repo.get_many([]) == []
    got = repo.get_many([ids[3]])[0]
    assert got.status is TaskStatus.PENDING and got.job_name == "many3" and got.info == INFO


def test_compare_and_set_applies_once_and_reports_the_loser(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    task_id = add(repo, "cas")
    first, second = repo.get(task_id), repo.get(task_id)
    win = repo.apply([first.start("cas", NOW)], epoch=epoch)
    lose = repo.apply([second.fail("too late", NOW)], epoch=epoch)
    assert win.applied == (task_id,) and win.lost == ()
    assert lose.applied == () and lose.lost == (task_id,)
    stored = repo.get(task_id)
    assert stored.status is TaskStatus.PENDING and stored.version == 1 and stored.job_name == "cas"
    assert stored.started_at is not None


def test_compare_and_set_checks_the_version_not_only_the_status(repo: TaskRepository) -> None:
    # Two readers of the same Pending row; the first writes Pending -> Pending (a new diagnosis), which
    # leaves the status as both read it but bumps the version. The second's write must be lost: a
    # compare-and-set on the status alone would let it overwrite a row it never saw.
    epoch = repo.advance_epoch()
    task_id = add(repo, "cas-version")
    started = repo.get(task_id)
    repo.apply([started.start("cas-version", NOW)], epoch=epoch)
    first, second = repo.get(task_id), repo.get(task_id)
    diagnosis = first.observe(JobObservation(JobPhase.PENDING, "ImagePullBackOff", "pulling alpine"), NOW)
    assert diagnosis is not None and diagnosis.expected_status is diagnosis.status is TaskStatus.PENDING
    win = repo.apply([diagnosis], epoch=epoch)
    lose = repo.apply([second.fail("stale reader", NOW)], epoch=epoch)
    assert win.applied == (task_id,) and win.lost == ()
    assert lose.applied == () and lose.lost == (task_id,)
    stored = repo.get(task_id)
    assert (stored.status, stored.version) == (TaskStatus.PENDING, 2)
    assert stored.message == "ImagePullBackOff: pulling alpine"


def test_a_message_with_a_nul_is_stored_with_a_replacement_character(repo: TaskRepository) -> None:
    # A termination message is whatever the container wrote; PostgreSQL refuses NUL in text.
    epoch = repo.advance_epoch()
    task = repo.get(add(repo, "nul-message"))
    assert repo.apply([task.fail("exit\x00code", NOW)], epoch=epoch).applied == (task.id,)
    assert repo.get(task.id).message == "exit\ufffdcode"


def test_a_batch_applies_each_row_independently(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    ids = [add(repo, f"b{i}") for i in range(5)]
    tasks = [repo.get(i) for i in ids]
    stale = repo.get(ids[2])
    repo.apply([stale.fail("first", NOW)], epoch=epoch)
    result = repo.apply([t.start(t.name, NOW) for t in tasks], epoch=epoch)
    assert set(result.applied) == {ids[0], ids[1], ids[3], ids[4]}
    assert result.lost == (ids[2],)
    assert [t.id for t in repo.list_by_status([TaskStatus.PENDING])] == [ids[0], ids[1], ids[3], ids[4]]


def test_terminal_write_stores_message_and_finish_time(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    task = repo.get(add(repo, "fin"))
    repo.apply([task.start("fin", NOW)], epoch=epoch)
    task = repo.get(task.id)
    obs = JobObservation(JobPhase.FAILED, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    change = task.observe(obs, NOW)
    assert change is not None
    repo.apply([change], epoch=epoch)
    stored = repo.get(task.id)
    assert stored.status is TaskStatus.FAILED
    assert stored.message == "BackoffLimitExceeded: Job has reached the specified backoff limit"
    assert stored.finished_at is not None and stored.info == INFO


def test_a_write_with_a_superseded_epoch_changes_nothing(repo: TaskRepository) -> None:
    old = repo.advance_epoch()
    task = repo.get(add(repo, "fenced"))
    new = repo.advance_epoch()
    assert new > old
    with pytest.raises(LeadershipLost):
        repo.apply([task.start("fenced", NOW)], epoch=old)
    assert repo.get(task.id).status is TaskStatus.NORMAL
    assert repo.apply([repo.get(task.id).start("fenced", NOW)], epoch=new).applied == (task.id,)


def test_request_cancel_flags_without_changing_status_or_version(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    a, b, c = (add(repo, n) for n in ("ca", "cb", "cc"))
    repo.request_cancel(b)
    flagged = repo.get(b)
    assert flagged.cancel_requested and flagged.status is TaskStatus.NORMAL and flagged.version == 0
    assert [t.id for t in repo.list_cancel_requested()] == [b]
    done = repo.get(c)
    repo.apply([done.fail("x", NOW)], epoch=epoch)
    with pytest.raises(InvalidTransition):
        repo.request_cancel(c)
    with pytest.raises(TaskNotFound):
        repo.request_cancel(TaskId(424242))
    assert repo.get(a).cancel_requested is False


def test_cancel_requested_rows_leave_the_list_once_terminal(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    task_id = add(repo, "gone")
    repo.request_cancel(task_id)
    repo.apply([repo.get(task_id).cancel(NOW)], epoch=epoch)
    assert repo.list_cancel_requested() == []
    assert repo.get(task_id).status is TaskStatus.CANCELLED


def test_count_by_status_uses_the_exact_strings(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    ids = [add(repo, f"c{i}") for i in range(3)]
    repo.apply([repo.get(ids[0]).start("c0", NOW)], epoch=epoch)
    counts = repo.count_by_status()
    assert counts["Normal"] == 2 and counts["Pending"] == 1


def test_epochs_are_strictly_increasing(repo: TaskRepository) -> None:
    epochs = [repo.advance_epoch() for _ in range(3)]
    assert epochs == sorted(epochs) and len(set(epochs)) == 3


def test_ping_answers_on_a_working_store(repo: TaskRepository) -> None:
    add(repo, "pinged")
    repo.ping()


def test_a_mixed_batch_keeps_each_rows_own_job_name_and_times(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    started = [repo.get(add(repo, f"mix-{i}")) for i in range(3)]
    repo.apply([t.start(f"job-{t.name}", NOW) for t in started], epoch=epoch)
    fresh = [repo.get(add(repo, f"new-{i}")) for i in range(2)]
    later = NOW.replace(hour=13)
    running = [repo.get(t.id) for t in started]
    changes = [
        running[0].observe(JobObservation(JobPhase.SUCCEEDED, "Completed", "done"), later),
        running[1].observe(JobObservation(JobPhase.FAILED, "BackoffLimitExceeded", "boom"), later),
        fresh[0].start("job-new-0", later),
        running[2].observe(JobObservation(JobPhase.ACTIVE), later),
        fresh[1].fail("bad info", later),
    ]
    result = repo.apply([c for c in changes if c is not None], epoch=epoch)
    assert len(result.applied) == 5 and result.lost == ()
    rows = {t.name: repo.get(t.id) for t in started + fresh}
    assert (rows["mix-0"].status, rows["mix-0"].job_name, rows["mix-0"].started_at) == (
        TaskStatus.SUCCEEDED,
        "job-mix-0",
        NOW,
    )
    assert rows["mix-0"].finished_at == later and rows["mix-1"].message == "BackoffLimitExceeded: boom"
    assert (rows["mix-2"].status, rows["mix-2"].started_at, rows["mix-2"].finished_at) == (
        TaskStatus.RUNNING,
        NOW,
        None,
    )
    assert (rows["new-0"].job_name, rows["new-0"].started_at) == ("job-new-0", later)
    assert (rows["new-1"].status, rows["new-1"].job_name, rows["new-1"].started_at) == (TaskStatus.FAILED, None, None)


def test_a_batch_of_identical_moves_stores_each_rows_own_start(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    tasks = [repo.get(add(repo, f"same-{i}")) for i in range(4)]
    for i, task in enumerate(tasks):  # each started at its own time
        repo.apply([task.start(task.name, NOW.replace(minute=i))], epoch=epoch)
    done = JobObservation(JobPhase.SUCCEEDED, "Completed", "done")
    changes = [repo.get(t.id).observe(done, NOW.replace(hour=14)) for t in tasks]
    repo.apply([c for c in changes if c is not None], epoch=epoch)
    for i, task in enumerate(tasks):
        row = repo.get(task.id)
        assert (row.status, row.job_name, row.started_at) == (TaskStatus.SUCCEEDED, task.name, NOW.replace(minute=i))


def _page_ids(page: TaskPage) -> list[int]:
    return [t.id for t in page.tasks]


def test_list_newest_is_newest_first_and_pages_with_before_id(repo: TaskRepository) -> None:
    ids = [add(repo, f"n{i}") for i in range(7)]
    first = repo.list_newest(TaskFilter(), limit=3)
    assert _page_ids(first) == ids[::-1][:3] and first.next_before_id == ids[4]
    second = repo.list_newest(TaskFilter(), before_id=first.next_before_id, limit=3)
    assert _page_ids(second) == ids[::-1][3:6] and second.next_before_id == ids[1]
    last = repo.list_newest(TaskFilter(), before_id=second.next_before_id, limit=3)
    assert _page_ids(last) == [ids[0]] and last.next_before_id is None
    exact = repo.list_newest(TaskFilter(), limit=7)
    assert len(exact.tasks) == 7 and exact.next_before_id is None
    assert repo.list_newest(TaskFilter(), limit=0) == TaskPage((), None)


def test_list_newest_filters_by_status_namespace_and_user(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    mine = [repo.add(NewTask(f"u1-{i}", "default", INFO, user_id=1), NOW).id for i in range(4)]
    theirs = [repo.add(NewTask(f"u2-{i}", "other", INFO, user_id=2), NOW).id for i in range(3)]
    repo.apply([repo.get(mine[1]).start("u1-1", NOW), repo.get(theirs[0]).start("u2-0", NOW)], epoch=epoch)
    repo.apply([repo.get(mine[2]).fail("bad", NOW)], epoch=epoch)

    def ids(where: TaskFilter, limit: int = 50) -> list[int]:
        return _page_ids(repo.list_newest(where, limit=limit))

    assert ids(TaskFilter(user_id=1)) == mine[::-1]
    assert ids(TaskFilter(namespace="other")) == theirs[::-1]
    assert ids(TaskFilter(statuses=frozenset({TaskStatus.PENDING}))) == [theirs[0], mine[1]]
    both = frozenset({TaskStatus.PENDING, TaskStatus.FAILED})
    assert ids(TaskFilter(statuses=both)) == [theirs[0], mine[2], mine[1]]
    assert ids(TaskFilter(statuses=both, user_id=1)) == [mine[2], mine[1]]
    assert ids(TaskFilter(statuses=both, namespace="other", user_id=2)) == [theirs[0]]
    assert ids(TaskFilter(statuses=frozenset())) == []
    assert ids(TaskFilter(user_id=3)) == []
    # Several statuses merged across pages: no row twice, none missed.
    page = repo.list_newest(TaskFilter(statuses=both), limit=2)
    assert _page_ids(page) == [theirs[0], mine[2]]
    rest = repo.list_newest(TaskFilter(statuses=both), before_id=page.next_before_id, limit=2)
    assert _page_ids(rest) == [mine[1]] and rest.next_before_id is None


def test_list_newest_pages_do_not_shift_when_rows_are_inserted(repo: TaskRepository) -> None:
    ids = [add(repo, f"s{i}") for i in range(6)]
    first = repo.list_newest(TaskFilter(), limit=3)
    newer = [add(repo, f"late{i}") for i in range(3)]
    second = repo.list_newest(TaskFilter(), before_id=first.next_before_id, limit=3)
    assert _page_ids(first) + _page_ids(second) == ids[::-1]
    assert set(newer).isdisjoint(_page_ids(second))


def test_list_newest_lists_summaries_without_info_and_with_a_bounded_message(repo: TaskRepository) -> None:
    big_info = '{"image": "alpine", "x": "' + "\u00e9" * 200_000 + '"}'
    long_id, short_id, exact_id = add(repo, "long", info=big_info), add(repo, "short"), add(repo, "exact")
    # Non-ASCII on purpose: the bound is in characters, and MySQL's SUBSTR must count them, not bytes.
    long_message = "\u00fc" * MAX_MESSAGE_CHARS
    exact_message = "\U0001f600" * MAX_LISTED_MESSAGE_CHARS
    epoch = repo.advance_epoch()
    repo.apply(
        [
            repo.get(long_id).fail(long_message, NOW),
            repo.get(short_id).fail("short and whole", NOW),
            repo.get(exact_id).fail(exact_message, NOW),
        ],
        epoch=epoch,
    )
    page = repo.list_newest(TaskFilter(), limit=10)
    assert all(type(item) is TaskSummary and not hasattr(item, "info") for item in page.tasks)
    by_id = {item.id: item for item in page.tasks}
    cut = by_id[long_id].message
    assert (
        len(cut) == MAX_LISTED_MESSAGE_CHARS and cut == long_message[: MAX_LISTED_MESSAGE_CHARS - 1] + LISTED_CUT_MARK
    )
    assert by_id[short_id].message == "short and whole"
    assert by_id[exact_id].message == exact_message  # exactly at the bound: whole, no mark
    assert (by_id[long_id].name, by_id[long_id].status, by_id[long_id].user_id) == ("long", TaskStatus.FAILED, 7)
    whole = repo.get(long_id)  # get keeps the whole task
    assert (whole.info, whole.message) == (big_info, long_message)


def test_count_by_status_of_one_user(repo: TaskRepository) -> None:
    repo.add(NewTask("a", "default", INFO, user_id=1), NOW)
    repo.add(NewTask("b", "default", INFO, user_id=1), NOW)
    repo.add(NewTask("c", "default", INFO, user_id=2), NOW)
    assert repo.count_by_status(user_id=1) == {"Normal": 2}
    assert repo.count_by_status(user_id=2) == {"Normal": 1}
    assert repo.count_by_status(user_id=3) == {}
    assert repo.count_by_status() == {"Normal": 3}


# -- not-before times: run_at, postponement (the dispatch reads of issues 18 and 19) ----------------------
def test_a_task_with_a_run_at_is_not_ready_and_comes_due_at_its_time(repo: TaskRepository) -> None:
    now_id = add(repo, "now")
    later = NOW + timedelta(minutes=5)
    later_id = repo.add(NewTask(name="later", namespace="default", info=INFO, run_at=later), NOW).id
    stored = repo.get(later_id)
    assert stored.run_at == later and stored.next_attempt_at == later and stored.attempt == 1
    assert [t.id for t in repo.list_ready()] == [now_id]
    assert repo.list_come_due(NOW) == []
    assert [t.id for t in repo.list_come_due(later)] == [later_id]


def test_come_due_is_earliest_first_then_by_id_and_bounded(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    ids = [add(repo, f"t{i}") for i in range(5)]
    offsets = [30, 10, 20, 10, 40]  # seconds
    changes = [repo.get(i).postpone(NOW + timedelta(seconds=s), NOW) for i, s in zip(ids, offsets, strict=True)]
    assert set(repo.apply(changes, epoch=epoch).applied) == set(ids)
    assert repo.list_ready() == []
    due = repo.list_come_due(NOW + timedelta(seconds=30))
    assert [t.id for t in due] == [ids[1], ids[3], ids[2], ids[0]]
    assert [t.id for t in repo.list_come_due(NOW + timedelta(hours=1), limit=2)] == [ids[1], ids[3]]
    assert repo.get(ids[4]).next_attempt_at == NOW + timedelta(seconds=40)


def test_a_postponed_task_keeps_its_time_through_a_mixed_batch_and_its_start(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    a, b = add(repo, "a"), add(repo, "b")
    until = NOW + timedelta(seconds=30)
    postponed = repo.get(a).postpone(until, NOW, message="waiting")
    started = repo.get(b).start("b-job", NOW)
    assert set(repo.apply([postponed, started], epoch=epoch).applied) == {a, b}
    assert (repo.get(a).status, repo.get(a).next_attempt_at, repo.get(a).message) == (
        TaskStatus.NORMAL,
        until,
        "waiting",
    )
    assert repo.get(b).status is TaskStatus.PENDING and repo.get(b).next_attempt_at is None
    # A postponement is a compare-and-set like any move: a stale one loses.
    assert repo.apply([postponed], epoch=epoch).lost == (a,)
    assert repo.apply([repo.get(a).start("a-job", until)], epoch=epoch).applied == (a,)
    assert repo.get(a).next_attempt_at == until and repo.list_come_due(until) == []


# -- retries and history (issue 18) -----------------------------------------------------------------
def test_a_retry_moves_to_normal_with_the_next_attempt_and_its_not_before_time(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    a, b = add(repo, "a"), add(repo, "b")
    repo.apply([repo.get(a).start("a", NOW), repo.get(b).start("b", NOW)], epoch=epoch)
    until = NOW + timedelta(seconds=20)
    retry = repo.get(a).retry(until, NOW, "evicted [infrastructure failure]", failure_class="infrastructure")
    done = repo.get(b).observe(JobObservation(JobPhase.SUCCEEDED, "Complete"), NOW)
    assert done is not None
    assert set(repo.apply([retry, done], epoch=epoch).applied) == {a, b}
    again = repo.get(a)
    assert (again.status, again.attempt, again.next_attempt_at, again.job_name) == (TaskStatus.NORMAL, 2, until, "a")
    assert repo.get(b).attempt == 1 and repo.list_come_due(until) == [again]
    # The retry is a compare-and-set like any move: a second leader's identical retry loses.
    assert repo.apply([retry], epoch=epoch).lost == (a,)
    assert repo.get(a).attempt == 2


def test_each_applied_change_and_the_creation_is_one_event_in_order(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    a, b = add(repo, "a"), add(repo, "b")
    start = repo.get(a).start("a", NOW)
    repo.apply([start, repo.get(b).start("b", NOW)], epoch=epoch)
    until = NOW + timedelta(seconds=5)
    repo.apply(
        [repo.get(a).retry(until, NOW, "exit 2", failure_class="exit_code", reason="BackoffLimitExceeded")], epoch=epoch
    )
    # A lost write leaves no event.
    assert repo.apply([start], epoch=epoch).lost == (a,)
    repo.apply([repo.get(a).start("a-r2", until)], epoch=epoch)
    events = repo.list_events(a)
    assert [(e.from_status, e.to_status, e.attempt, e.job_name) for e in events] == [
        (None, "Normal", 1, None),
        ("Normal", "Pending", 1, "a"),
        ("Pending", "Normal", 2, "a"),
        ("Normal", "Pending", 2, "a-r2"),
    ]
    retried = events[2]
    assert (retried.failure_class, retried.reason, retried.message, retried.epoch) == (
        "exit_code",
        "BackoffLimitExceeded",
        "exit 2",
        epoch,
    )
    assert events[0].epoch is None and [e.id for e in events] == sorted(e.id for e in events)
    assert [e.to_status for e in repo.list_events(b)] == ["Normal", "Pending"]
    assert [e.to_status for e in repo.list_events(a, limit=2)] == ["Normal", "Pending"]
    assert repo.list_events(a, limit=2)[-1].job_name == "a-r2"
    assert repo.list_events(TaskId(999_999)) == []


def test_a_superseded_epoch_writes_no_event(repo: TaskRepository) -> None:
    old = repo.advance_epoch()
    a = add(repo, "a")
    repo.advance_epoch()
    with pytest.raises(LeadershipLost):
        repo.apply([repo.get(a).start("a", NOW)], epoch=old)
    assert [e.to_status for e in repo.list_events(a)] == ["Normal"]


def test_count_waiting_retry_counts_normal_tasks_on_a_later_attempt(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    a, b, c = add(repo, "a"), add(repo, "b"), add(repo, "c")
    repo.apply([repo.get(t).start(str(t), NOW) for t in (a, b, c)], epoch=epoch)
    later = NOW + timedelta(seconds=9)
    repo.apply([repo.get(a).retry(later, NOW, "again"), repo.get(b).retry(later, NOW, "again")], epoch=epoch)
    assert repo.count_waiting_retry() == 2
    repo.apply([repo.get(b).start("b-r2", later)], epoch=epoch)
    assert repo.count_waiting_retry() == 1
