"""The SQL repository beyond the contract: races between engines, fencing, bad rows, batching cost.

Each test runs on SQLite and on the shared MariaDB (a throwaway database, emptied per test).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from nightwatch.adapters.sql import SqlTaskRepository, UnreadableTask, create_engine_for
from nightwatch.adapters.sql.batch import cas_update
from nightwatch.domain.errors import LeadershipLost, PermanentError, TaskNotFound
from nightwatch.domain.model import Task, TaskId, TaskStatus
from nightwatch.domain.ports import NewTask, WriteResult
from tests.support.sql_backends import empty_mariadb, empty_postgres, repository_at, sqlite_url

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
INFO = '{"image": "alpine", "command": ["true"]}'


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "mariadb":
        yield empty_mariadb()
    elif request.param == "postgres":
        yield empty_postgres()
    else:
        with sqlite_url() as path:
            yield path


@pytest.fixture
def repo(url: str) -> Iterator[SqlTaskRepository]:
    with repository_at(url) as repository:
        yield repository


def seed(repo: SqlTaskRepository, count: int, prefix: str = "t") -> list[TaskId]:
    """`count` Normal tasks inserted with one multi-row INSERT (fast even for thousands)."""
    rows = [
        {"name": f"{prefix}{i}", "namespace": "default", "info": INFO, "status": "Normal", "user_id": 1}
        for i in range(count)
    ]
    with repo.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO task (name, namespace, info, status, user_id) VALUES " + _values(rows)))
        ids = conn.execute(sa.text("SELECT id FROM task WHERE name LIKE :p ORDER BY id"), {"p": f"{prefix}%"})
        return [TaskId(i) for (i,) in ids]


def _values(rows: list[dict[str, object]]) -> str:
    # Test data only (no quotes inside); one statement keeps seeding fast on both backends.
    return ", ".join(
        f"('{r['name']}', '{r['namespace']}', '{r['info']}', '{r['status']}', {r['user_id']})" for r in rows
    )


def all_tasks(repo: SqlTaskRepository, statuses: list[TaskStatus]) -> list[Task]:
    return repo.list_by_status(statuses, limit=100_000)


def test_two_engines_racing_on_the_same_rows_each_row_has_exactly_one_winner(url: str) -> None:
    with repository_at(url) as a, repository_at(url) as b:
        ids = seed(a, 200)
        epoch = a.advance_epoch()
        mine = {t.id: t for t in all_tasks(a, [TaskStatus.NORMAL])}
        theirs = {t.id: t for t in all_tasks(b, [TaskStatus.NORMAL])}
        a_changes = [mine[i].start(f"job-{i}", NOW) for i in ids]
        b_changes = [theirs[i].fail("lost the race on purpose", NOW) for i in reversed(ids)]
        results: dict[str, list[WriteResult]] = {"a": [], "b": []}
        barrier = threading.Barrier(2)

        def writer(name: str, repo: SqlTaskRepository, changes: list) -> None:  # type: ignore[type-arg]
            barrier.wait()
            for start in range(0, len(changes), 20):
                results[name].append(repo.apply(changes[start : start + 20], epoch=epoch))

        threads = [
            threading.Thread(target=writer, args=("a", a, a_changes)),
            threading.Thread(target=writer, args=("b", b, b_changes)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        a_won = {i for r in results["a"] for i in r.applied}
        a_lost = {i for r in results["a"] for i in r.lost}
        b_won = {i for r in results["b"] for i in r.applied}
        b_lost = {i for r in results["b"] for i in r.lost}
        assert a_won | b_won == set(ids) and not a_won & b_won
        assert a_lost == b_won and b_lost == a_won
        stored = {t.id: t for t in all_tasks(a, [TaskStatus.PENDING, TaskStatus.FAILED])}
        assert {i for i, t in stored.items() if t.status is TaskStatus.PENDING} == a_won
        assert {i for i, t in stored.items() if t.status is TaskStatus.FAILED} == b_won
        assert all(t.version == 1 for t in stored.values())


def test_a_write_under_a_superseded_epoch_changes_nothing_even_across_chunks(url: str) -> None:
    with repository_at(url) as old_leader, repository_at(url) as new_leader:
        ids = seed(old_leader, 1200)
        old = old_leader.advance_epoch()
        tasks = all_tasks(old_leader, [TaskStatus.NORMAL])
        assert new_leader.advance_epoch() == old + 1
        with pytest.raises(LeadershipLost):
            old_leader.apply([t.start(t.name, NOW) for t in tasks], epoch=old)
        assert new_leader.count_by_status() == {"Normal": len(ids)}
        fresh = all_tasks(new_leader, [TaskStatus.NORMAL])
        assert len(new_leader.apply([t.start(t.name, NOW) for t in fresh], epoch=old + 1).applied) == len(ids)


def test_bad_rows_are_reported_and_never_break_the_listing(
    repo: SqlTaskRepository, caplog: pytest.LogCaptureFixture
) -> None:
    huge = '{"image": "alpine", "args": ["' + "x" * (10 * 1024 * 1024) + '"]}'
    insert = sa.text("INSERT INTO task (name, namespace, info, status, user_id) VALUES (:n, 'default', :i, :s, 1)")
    with repo.engine.begin() as conn:
        for name, info, status in [
            ("good-1", INFO, "Normal"),
            ("null-info", None, "Normal"),
            ("not-json", "{this is not json", "Normal"),
            ("lowercase", INFO, "normal"),
            ("weird", INFO, "Weird"),
            ("huge", huge, "Normal"),
            ("bad-date", INFO, "Normal"),
            ("good-2", INFO, "Normal"),
        ]:
            conn.execute(insert, {"n": name, "i": info, "s": status})
        ids = dict(conn.execute(sa.text("SELECT name, id FROM task")).all())
        # PostgreSQL's TIMESTAMP holds no zero date and no text: there a bad date cannot be stored at all.
        dialect = repo.engine.dialect.name
        if dialect != "postgresql":
            bad_date = "'0000-00-00 00:00:00'" if dialect != "sqlite" else "'not a date'"
            conn.execute(sa.text(f"UPDATE task SET started_at = {bad_date} WHERE name = 'bad-date'"))
    caplog.set_level(logging.WARNING)
    listed = repo.list_by_status([TaskStatus.NORMAL])
    assert [t.name for t in listed] == ["good-1", "null-info", "not-json", "huge", "bad-date", "good-2"]
    by_name = {t.name: t for t in listed}
    assert by_name["null-info"].info == "" and by_name["not-json"].info == "{this is not json"
    assert by_name["bad-date"].started_at is None
    if dialect != "postgresql":
        assert any(str(ids["bad-date"]) in r.getMessage() and "started_at" in r.getMessage() for r in caplog.records)
    assert repo.get(TaskId(ids["huge"])).info == huge
    for unknown in ("lowercase", "weird"):
        with pytest.raises(UnreadableTask) as raised:
            repo.get(TaskId(ids[unknown]))
        assert isinstance(raised.value, PermanentError) and not isinstance(raised.value, TaskNotFound)
        assert f"task {ids[unknown]} has status" in str(raised.value)
    assert repo.count_by_status() == {"Normal": 6, "normal": 1, "Weird": 1}


def test_a_batch_of_1000_changes_costs_a_handful_of_statements(repo: SqlTaskRepository) -> None:
    seed(repo, 1000)
    epoch = repo.advance_epoch()
    tasks = all_tasks(repo, [TaskStatus.NORMAL])
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(repo.engine, "before_cursor_execute", count)
    try:
        result = repo.apply([t.start(t.name, NOW) for t in tasks], epoch=epoch)
    finally:
        event.remove(repo.engine, "before_cursor_execute", count)
    assert len(result.applied) == 1000 and result.lost == ()
    assert len(statements) <= 4, statements
    assert statements.count("UPDATE") == 2  # two chunks of 500


def test_a_partly_lost_batch_costs_one_more_select_per_chunk(repo: SqlTaskRepository) -> None:
    ids = seed(repo, 10)
    epoch = repo.advance_epoch()
    tasks = all_tasks(repo, [TaskStatus.NORMAL])
    repo.apply([tasks[3].copy().fail("first", NOW)], epoch=epoch)
    statements: list[str] = []
    event.listen(repo.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    result = repo.apply([t.start(t.name, NOW) for t in tasks], epoch=epoch)
    assert result.lost == (ids[3],) and len(result.applied) == 9
    # The UPDATE, the one SELECT of the outcome, and the history INSERT of the 9 that won (issue 18).
    assert len(statements) == 3 and statements[2].startswith("INSERT INTO task_event")


def test_add_stores_aware_utc_times_and_the_engine_factory_redacts(repo: SqlTaskRepository) -> None:
    task = repo.add(NewTask("tz", "default", INFO), NOW)
    assert repo.get(task.id).created_at == NOW
    engine = create_engine_for("sqlite:///:memory:")
    assert engine.dialect.name == "sqlite"
    engine.dispose()


@pytest.mark.parametrize("make_url", [empty_mariadb, empty_postgres], ids=["mariadb", "postgres"])
def test_a_successor_advancing_the_epoch_waits_for_a_batch_in_progress(make_url: Callable[[], str]) -> None:
    """The batch's epoch check locks the epoch row until commit (InnoDB does it on its own; PostgreSQL
    by `FOR SHARE`): a new leader's `advance_epoch` cannot slip between the check and the commit."""
    url = make_url()
    with repository_at(url) as old_leader, repository_at(url) as new_leader:
        epoch = old_leader.advance_epoch()
        (task_id,) = seed(old_leader, 1)
        change = old_leader.get(task_id).start("job", datetime.now(UTC))
        sql, params = cas_update([change], epoch=epoch, now=datetime.now(UTC), dialect=old_leader.engine.dialect)
        advanced: list[int] = []
        with old_leader.engine.begin() as conn:
            assert conn.exec_driver_sql(sql, params).rowcount == 1
            successor = threading.Thread(target=lambda: advanced.append(new_leader.advance_epoch()))
            successor.start()
            successor.join(timeout=0.5)
            assert advanced == [], "advance_epoch did not wait for the batch holding the old epoch"
        successor.join(timeout=10)
        assert advanced == [epoch + 1]
        assert new_leader.get(task_id).status is TaskStatus.PENDING


@pytest.mark.parametrize("field", ["name", "namespace", "info"])
def test_a_nul_in_a_new_task_on_postgres_is_an_error_naming_the_field(field: str) -> None:
    values = {"name": "nul", "namespace": "default", "info": INFO} | {field: "a\x00b"}
    with repository_at(empty_postgres()) as repo, pytest.raises(PermanentError, match=f"{field} contains a NUL"):
        repo.add(NewTask(**values, user_id=1), datetime.now(UTC))
