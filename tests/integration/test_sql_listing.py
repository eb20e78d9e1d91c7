"""The SQL side of the API's newest-first listing: bad rows, NULL users, query plans, old tables.

SQLite and the shared MariaDB (a throwaway database, emptied per test), like test_sql_repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from nightwatch.adapters.sql import SqlTaskRepository, init_database
from nightwatch.adapters.sql.tables import task
from nightwatch.domain.model import TaskStatus
from nightwatch.domain.ports import TaskFilter
from tests.support.sql_backends import empty_mariadb, repository_at, sqlite_url

INFO = '{"image": "alpine"}'


@pytest.fixture(params=["sqlite", "mariadb"])
def repo(request: pytest.FixtureRequest) -> Iterator[SqlTaskRepository]:
    if request.param == "mariadb":
        with repository_at(empty_mariadb()) as repository:
            yield repository
    else:
        with sqlite_url() as url, repository_at(url) as repository:
            yield repository


def insert(repo: SqlTaskRepository, rows: list[dict[str, Any]]) -> None:
    with repo.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO task (name, namespace, info, status, user_id) VALUES (:name, :ns, :info, :status, :user)"
            ),
            [{"ns": "default", "info": INFO, "user": 1, **row} for row in rows],
        )


def test_unreadable_rows_are_skipped_without_ending_the_listing_early(repo: SqlTaskRepository) -> None:
    statuses = ["Normal", "normal", "Weird", "Normal", "Running", "Normal"]
    insert(repo, [{"name": f"r{i}", "status": s} for i, s in enumerate(statuses)])
    seen: list[str] = []
    page = repo.list_newest(TaskFilter(), limit=2)
    while True:
        seen += [t.name for t in page.tasks]
        if page.next_before_id is None:
            break
        page = repo.list_newest(TaskFilter(), before_id=page.next_before_id, limit=2)
    assert seen == ["r5", "r4", "r3", "r0"]


def test_a_null_user_id_reads_as_user_0_in_filters_and_counts(repo: SqlTaskRepository) -> None:
    insert(
        repo, [{"name": "by-hand", "status": "Normal", "user": None}, {"name": "zero", "status": "Normal", "user": 0}]
    )
    insert(repo, [{"name": "one", "status": "Normal", "user": 1}])
    assert [t.name for t in repo.list_newest(TaskFilter(user_id=0)).tasks] == ["zero", "by-hand"]
    assert repo.count_by_status(user_id=0) == {"Normal": 2}


def test_listing_queries_walk_an_index_without_sorting_on_mariadb() -> None:
    with repository_at(empty_mariadb()) as repo:
        statuses = ["Succeeded", "Failed", "Running", "Normal"]
        insert(
            repo,
            [{"name": f"p{i}", "status": statuses[i % 4], "user": i % 50, "ns": f"ns{i % 20}"} for i in range(4000)],
        )
        with repo.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE TABLE task")
        # EXPLAIN's `rows` ignores the LIMIT, so the check is on the index chosen and on no sort.
        wheres = {
            "PRIMARY": TaskFilter(),
            "ix_task_user_id_id": TaskFilter(user_id=7),
            "ix_task_namespace_id": TaskFilter(namespace="ns3"),
            "ix_task_status_id": TaskFilter(statuses=frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED})),
        }
        for index, where in wheres.items():
            for statement, params in captured(repo, lambda w=where: repo.list_newest(w, before_id=3000, limit=50)):
                with repo.engine.connect() as conn:
                    plan = conn.exec_driver_sql("EXPLAIN " + statement, params).mappings().all()
                (row,) = plan
                assert "filesort" not in str(row["Extra"]).lower(), row
                assert row["key"] == index, row


def captured(repo: SqlTaskRepository, work: Any) -> list[tuple[str, Any]]:
    statements: list[tuple[str, Any]] = []

    def keep(_conn: object, _cursor: object, statement: str, params: Any, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    event.listen(repo.engine, "before_cursor_execute", keep)
    try:
        work()
    finally:
        event.remove(repo.engine, "before_cursor_execute", keep)
    assert statements
    return statements


def test_init_database_adds_the_listing_indexes_to_an_older_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    old = sa.MetaData()
    sa.Table(
        "task",
        old,
        *[sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable) for c in task.c],
        sa.Index("ix_task_status_id", "status", "id"),
    )
    old.create_all(engine)
    init_database(url)
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("task")}
    engine.dispose()
    assert {"ix_task_status_id", "ix_task_user_id_id", "ix_task_namespace_id"} <= indexes
