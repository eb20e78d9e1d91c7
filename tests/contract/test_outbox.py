"""The Outbox and TaskLogStore contract, on every storage adapter (memory, SQLite, MariaDB, PostgreSQL).

The outbox rows are written by `LeaderStore.apply` itself, so these tests drive `apply` and read
the outbox back: an event exists exactly when its status write won.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from nightwatch.adapters.memory import MemoryOutbox, MemoryTaskLogs, MemoryTaskRepository
from nightwatch.adapters.sql.outbox import SqlOutbox
from nightwatch.adapters.sql.tasklog import SqlTaskLogs
from nightwatch.domain.errors import LeadershipLost
from nightwatch.domain.model import JobObservation, JobPhase, StatusChange, TaskStatus
from nightwatch.domain.notifications import RETRYING, DeliveryOutcome, DeliveryState
from nightwatch.domain.ports import Outbox, TaskLogStore, TaskRepository
from tests.contract.test_repository import NOW, REPOSITORY_BACKENDS, add


@pytest.fixture(params=sorted(REPOSITORY_BACKENDS))
def repo(request: pytest.FixtureRequest) -> Iterator[TaskRepository]:
    with REPOSITORY_BACKENDS[request.param]() as repository:
        yield repository


def outbox_of(repo: TaskRepository) -> Outbox:
    if isinstance(repo, MemoryTaskRepository):
        return MemoryOutbox(repo)
    return SqlOutbox(repo.engine)  # type: ignore[attr-defined]


def logs_of(repo: TaskRepository) -> TaskLogStore:
    if isinstance(repo, MemoryTaskRepository):
        return MemoryTaskLogs(repo)
    return SqlTaskLogs(repo.engine)  # type: ignore[attr-defined]


def retry_of(change: StatusChange) -> StatusChange:
    """Running -> Normal, next attempt (the retries branch's move, written by hand here)."""
    return replace(change, status=TaskStatus.NORMAL, attempt=change.attempt, finished_at=None, message="retrying")


def test_a_terminal_write_records_one_event_and_a_start_none(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    outbox = outbox_of(repo)
    task = repo.get(add(repo, "ev-1"))
    repo.apply([task.start("ev-1", NOW)], epoch=epoch)
    assert outbox.due(NOW + timedelta(hours=1)) == []
    task = repo.get(task.id)
    repo.apply([task.fail("boom", NOW)], epoch=epoch)
    [entry] = outbox.due(NOW + timedelta(hours=1))
    assert (entry.task_id, entry.event, entry.message, entry.attempt) == (task.id, "Failed", "boom", 1)
    assert entry.state is DeliveryState.PENDING and entry.tries == 0 and entry.delivered_to == frozenset()


def test_a_lost_compare_and_set_records_no_event(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    outbox = outbox_of(repo)
    task_id = add(repo, "ev-lost")
    first, second = repo.get(task_id), repo.get(task_id)
    repo.apply([first.cancel(NOW)], epoch=epoch)
    assert repo.apply([second.fail("too late", NOW)], epoch=epoch).lost == (task_id,)
    assert [e.event for e in outbox.recent()] == ["Cancelled"]


def test_a_superseded_epoch_records_no_event(repo: TaskRepository) -> None:
    old = repo.advance_epoch()
    task = repo.get(add(repo, "ev-fenced"))
    repo.advance_epoch()
    with pytest.raises(LeadershipLost):
        repo.apply([task.fail("stale leader", NOW)], epoch=old)
    assert outbox_of(repo).recent() == []


def test_a_retry_records_a_retrying_event_without_a_log_capture(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    task = repo.get(add(repo, "ev-retry"))
    repo.apply([task.start("ev-retry", NOW)], epoch=epoch)
    task = repo.get(task.id)
    repo.apply([retry_of(task.fail("oom", NOW))], epoch=epoch)
    [entry] = outbox_of(repo).recent()
    assert entry.event == RETRYING and repo.get(task.id).status is TaskStatus.NORMAL
    assert logs_of(repo).uncaptured() == []


def test_a_big_batch_records_every_winner(repo: TaskRepository) -> None:
    # More rows than one chunk (500): one INSERT per chunk, every winner recorded once.
    epoch = repo.advance_epoch()
    ids = [add(repo, f"big-{i}") for i in range(620)]
    stale = repo.get(ids[3])
    repo.apply([repo.get(ids[3]).cancel(NOW)], epoch=epoch)
    tasks = [repo.get(i) for i in ids]
    changes = [t.fail("batch", NOW) for t in tasks if t.status is TaskStatus.NORMAL]
    changes.insert(3, stale.fail("lost", NOW))  # read before its cancel: loses
    result = repo.apply(changes, epoch=epoch)
    assert len(result.applied) == 619 and result.lost == (ids[3],)
    events = outbox_of(repo).recent(limit=1000)
    assert len(events) == 620 and sorted(e.task_id for e in events) == sorted(ids)


def test_one_batch_of_mixed_changes_records_each_rows_own_event_message_and_attempt(repo: TaskRepository) -> None:
    # The SQL insert copies from the rows just written and renders a value per row only where the
    # batch disagrees: a batch mixing ends, a retry and a start must still give each row its own.
    epoch = repo.advance_epoch()
    ids = [add(repo, f"mixed-{i}") for i in range(4)]
    repo.apply([repo.get(i).start(f"mixed-{i}", NOW) for i in ids[:3]], epoch=epoch)
    ok, bad, again = (repo.get(i) for i in ids[:3])
    changes = [
        ok.observe(JobObservation(JobPhase.SUCCEEDED, message="all done"), NOW),
        bad.fail("boom", NOW),
        again.retry(NOW + timedelta(minutes=1), NOW, "oom, retrying"),
        repo.get(ids[3]).start("mixed-3", NOW),
    ]
    assert all(c is not None for c in changes)
    repo.apply([c for c in changes if c is not None], epoch=epoch)
    events = {e.task_id: (e.event, e.message, e.attempt) for e in outbox_of(repo).recent()}
    assert events == {
        ok.id: ("Succeeded", "all done", 1),
        bad.id: ("Failed", "boom", 1),
        again.id: (RETRYING, "oom, retrying", 2),
    }
    assert sorted((c.task_id, c.attempt) for c in logs_of(repo).uncaptured()) == [(ok.id, 1), (bad.id, 1)]


def test_due_keeps_each_tasks_events_in_order_and_honours_exclude_and_not_before(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    outbox = outbox_of(repo)
    a = repo.get(add(repo, "ord-a"))
    b = repo.get(add(repo, "ord-b"))
    repo.apply([a.start("ord-a", NOW)], epoch=epoch)
    a = repo.get(a.id)
    repo.apply([retry_of(a.fail("first try", NOW))], epoch=epoch)
    a = repo.get(a.id)
    repo.apply([a.fail("second try", NOW)], epoch=epoch)
    repo.apply([b.cancel(NOW)], epoch=epoch)
    later = NOW + timedelta(hours=1)
    due = outbox.due(later)
    # a's second event waits behind its first; b's is independent.
    assert [(e.task_id, e.event) for e in due] == [(a.id, RETRYING), (b.id, "Cancelled")]
    first = due[0]
    assert [e.task_id for e in outbox.due(later, exclude=frozenset({first.id}))] == [b.id]
    retry_at = later + timedelta(minutes=5)
    outcome = DeliveryOutcome(first.id, DeliveryState.PENDING, 1, frozenset({"k1"}), retry_at, "HTTP 500")
    outbox.record([outcome], epoch=epoch)
    assert [e.task_id for e in outbox.due(later)] == [b.id]  # a's first waits for its time, its second behind it
    [again, _] = outbox.due(retry_at)
    assert (again.id, again.tries, again.delivered_to, again.last_error) == (first.id, 1, frozenset({"k1"}), "HTTP 500")
    outbox.record([DeliveryOutcome(first.id, DeliveryState.DELIVERED, 2, frozenset({"k1"}), None)], epoch=epoch)
    assert [(e.task_id, e.event) for e in outbox.due(retry_at)] == [(a.id, "Failed"), (b.id, "Cancelled")]
    assert [e.state for e in outbox.recent(state=DeliveryState.DELIVERED)] == [DeliveryState.DELIVERED]


def test_recording_needs_the_current_epoch_and_changes_only_pending_entries(repo: TaskRepository) -> None:
    old = repo.advance_epoch()
    outbox = outbox_of(repo)
    task = repo.get(add(repo, "rec"))
    repo.apply([task.fail("x", NOW)], epoch=old)
    [entry] = outbox.due(NOW + timedelta(hours=1))
    new = repo.advance_epoch()
    with pytest.raises(LeadershipLost):
        outbox.record([DeliveryOutcome(entry.id, DeliveryState.DELIVERED, 1, frozenset(), None)], epoch=old)
    assert outbox.recent()[0].state is DeliveryState.PENDING
    outbox.record([DeliveryOutcome(entry.id, DeliveryState.FAILED, 8, frozenset(), None, "gave up")], epoch=new)
    outbox.record([DeliveryOutcome(entry.id, DeliveryState.DELIVERED, 9, frozenset(), None)], epoch=new)
    [final] = outbox.recent()
    assert (final.state, final.tries, final.last_error) == (DeliveryState.FAILED, 8, "gave up")


def test_a_finished_attempt_is_captured_once_and_kept(repo: TaskRepository) -> None:
    epoch = repo.advance_epoch()
    logs = logs_of(repo)
    task = repo.get(add(repo, "cap"))
    repo.apply([task.fail("x", NOW)], epoch=epoch)
    [capture] = logs.uncaptured()
    assert (capture.task_id, capture.attempt) == (task.id, 1)
    assert logs.stored(task.id, 1) is None
    logs.keep(capture, "line 1\nend \ufffd\n", truncated=True, now=NOW, epoch=epoch)
    assert logs.uncaptured() == []
    kept = logs.stored(task.id, 1)
    assert kept is not None and (kept.output, kept.truncated) == ("line 1\nend \ufffd\n", True)
    logs.keep(capture, "replaced", truncated=False, now=NOW, epoch=epoch)  # a second capture replaces
    again = logs.stored(task.id, 1)
    assert again is not None and again.output == "replaced"
    with pytest.raises(LeadershipLost):
        logs.keep(capture, "stale", truncated=False, now=NOW, epoch=epoch - 1)
