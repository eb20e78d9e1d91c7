"""schema.sql against the adapter's metadata, on a live MariaDB and on SQLite.

The canonical DDL and the SQLAlchemy tables are written by hand in two places; these tests are
what keeps them the same, and keep the original system's sample INSERTs working.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from nightwatch.adapters.sql import SqlTaskRepository, create_engine_for, init_database
from nightwatch.adapters.sql.schema import schema_sql, split_statements
from nightwatch.adapters.sql.tables import metadata
from nightwatch.domain.errors import PermanentError, RetryableError
from nightwatch.domain.model import TaskStatus
from tests.support.services import require_mariadb_url
from tests.support.sql_backends import sqlite_url

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_INSERTS = [
    """INSERT INTO task (name, namespace, info, status, user_id) VALUES ('demo-task-1', 'default', '{"image":"alpine","command":["sleep"],"args":["60"]}', 'Normal', 1)""",
    """INSERT INTO task (name, namespace, info, status, user_id) VALUES ('demo-task-2', 'demo', '{"image":"busybox","command":["sleep"],"args":["3600"]}', 'Normal', 1)""",
]
HAND_WRITTEN_LOWERCASE = (
    "INSERT INTO task (name, namespace, info, status, user_id) VALUES ('by-hand', 'default', '{}', 'normal', 1)"
)


def test_the_packaged_schema_is_the_canonical_one() -> None:
    assert schema_sql() == (REPO_ROOT / "schema.sql").read_text(encoding="utf-8")


@pytest.fixture
def fresh_mariadb() -> Iterator[sa.Engine]:
    """An empty throwaway database of its own (the schema tests create the tables themselves)."""
    server = require_mariadb_url()
    name = f"nightwatch_schema_{secrets.token_hex(4)}"
    admin = sa.create_engine(server)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    engine = create_engine_for(f"{server}/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


def run_schema_sql(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for statement in split_statements((REPO_ROOT / "schema.sql").read_text(encoding="utf-8")):
            conn.exec_driver_sql(statement)


def _type(compiled: str) -> str:
    # Display widths (BIGINT(20)) are cosmetic; BOOLEAN is TINYINT(1) on MySQL.
    compiled = re.sub(r"^(BIGINT|INTEGER|TINYINT)\(\d+\)", r"\1", compiled.upper())
    return "TINYINT" if compiled in ("BOOL", "BOOLEAN") else compiled


def _default(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip("'").lower().replace("(6)", "").replace("()", "")


def test_schema_sql_matches_the_metadata_column_by_column(fresh_mariadb: sa.Engine) -> None:
    run_schema_sql(fresh_mariadb)
    run_schema_sql(fresh_mariadb)  # twice: harmless
    inspector = sa.inspect(fresh_mariadb)
    dialect = fresh_mariadb.dialect
    assert set(inspector.get_table_names()) == set(metadata.tables)
    for table in metadata.sorted_tables:
        live = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert list(live) == [c.name for c in table.c], table.name
        for column in table.c:
            got = live[column.name]
            where = f"{table.name}.{column.name}"
            assert _type(got["type"].compile(dialect=dialect)) == _type(column.type.compile(dialect=dialect)), where
            assert got["nullable"] == column.nullable, where
            expected_default = None
            if column.server_default is not None:
                arg = getattr(column.server_default, "arg", None)
                expected_default = _default(arg if isinstance(arg, str) else sa.text(str(arg.compile(dialect=dialect))))
            assert _default(got.get("default")) == expected_default, where
        live_indexes = {
            (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table.name)
        }
        meta_indexes = {(i.name, tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes}
        meta_indexes |= {
            (u.name, tuple(c.name for c in u.columns), True)
            for u in table.constraints
            if isinstance(u, sa.UniqueConstraint)
        }
        assert live_indexes == meta_indexes, table.name
        assert inspector.get_pk_constraint(table.name)["constrained_columns"] == [c.name for c in table.primary_key]
    with fresh_mariadb.connect() as conn:
        collations = dict(
            conn.exec_driver_sql(
                "SELECT table_name, table_collation FROM information_schema.tables WHERE table_schema = DATABASE()"
            ).all()
        )
        status_collation = conn.exec_driver_sql(
            "SELECT collation_name FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = 'task' AND column_name = 'status'"
        ).scalar_one()
        epochs = conn.exec_driver_sql("SELECT id, epoch FROM leader_epoch").all()
    assert all(str(c).startswith("utf8mb4") for c in collations.values())
    assert status_collation == "utf8mb4_bin"
    assert [tuple(r) for r in epochs] == [(1, 0)]


def test_sample_inserts_run_unchanged_and_lowercase_status_is_not_dispatched_on_mariadb(
    fresh_mariadb: sa.Engine,
) -> None:
    run_schema_sql(fresh_mariadb)
    _check_samples_and_case(fresh_mariadb)


def test_sample_inserts_run_unchanged_and_lowercase_status_is_not_dispatched_on_sqlite() -> None:
    with sqlite_url() as url:
        engine = create_engine_for(url)
        try:
            _check_samples_and_case(engine)
        finally:
            engine.dispose()


def _check_samples_and_case(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for statement in [*SAMPLE_INSERTS, HAND_WRITTEN_LOWERCASE]:
            conn.exec_driver_sql(statement)
    repo = SqlTaskRepository(engine)
    listed = repo.list_by_status([TaskStatus.NORMAL])
    assert [t.name for t in listed] == ["demo-task-1", "demo-task-2"]
    first = listed[0]
    assert first.version == 0 and first.message == "" and not first.cancel_requested
    assert first.created_at is not None and first.created_at.tzinfo is not None
    assert repo.count_by_status() == {"Normal": 2, "normal": 1}


def test_metadata_creates_the_sqlite_schema_and_init_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nw.db'}"
    assert init_database(url) == f"created tables leader_epoch, outbox, queue_state, schedule, task, task_event, task_log in {url}"
    assert "nothing to do" in init_database(url)
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        for table in metadata.sorted_tables:
            assert [c["name"] for c in inspector.get_columns(table.name)] == [c.name for c in table.c]
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT id, epoch FROM leader_epoch").all() == [(1, 0)]
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    finally:
        engine.dispose()


def test_init_database_on_mariadb_describes_what_it_did(fresh_mariadb: sa.Engine) -> None:
    url = fresh_mariadb.url.render_as_string(hide_password=False)
    first = init_database(url)
    assert first.startswith(
        "created tables leader_epoch, outbox, queue_state, schedule, task, task_event, task_log in mysql+pymysql://root@127.0.0.1"
    )
    assert "nothing to do" in init_database(url)


def test_init_database_errors_are_one_line_domain_errors() -> None:
    with pytest.raises(PermanentError) as bad:
        init_database("not a url at all")
    assert "\n" not in str(bad.value)
    with pytest.raises(RetryableError) as refused:
        init_database("mysql+pymysql://root:hunter2@127.0.0.1:1/nightwatch")
    message = str(refused.value)
    assert "\n" not in message and "hunter2" not in message and "***" in message
