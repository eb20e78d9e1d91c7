"""SQL repositories for the contract suite and the integration tests.

SQLite: a fresh file per repository. MariaDB and PostgreSQL: one throwaway database per test
session each (`nightwatch_test_<random>`, dropped at exit), emptied before each repository is
handed out. Every schema is made by `init_database`, i.e. the Alembic migrations, on all three.
"""

from __future__ import annotations

import atexit
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from nightwatch.adapters.sql import SqlTaskRepository, create_engine_for, init_database
from nightwatch.domain.ports import TaskRepository
from tests.support.services import require_mariadb_url, require_postgres_url

_session_db_url: str | None = None
_session_pg_url: str | None = None


def mariadb_database_url() -> str:
    """The URL of this session's throwaway database, created (with the schema) on first use."""
    global _session_db_url
    if _session_db_url is None:
        server = require_mariadb_url()
        name = f"nightwatch_test_{secrets.token_hex(4)}"
        admin = sa.create_engine(server)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        admin.dispose()
        atexit.register(_drop_database, server, name)
        _session_db_url = f"{server}/{name}"
        init_database(_session_db_url)
    return _session_db_url


def _drop_database(server: str, name: str) -> None:
    admin = sa.create_engine(server)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    finally:
        admin.dispose()


def empty_mariadb() -> str:
    """This session's database URL, with empty tables (epoch back to 0)."""
    url = mariadb_database_url()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in ("task", "schedule", "task_event", "outbox", "task_log", "queue_state"):
            conn.exec_driver_sql(f"TRUNCATE TABLE {table}")
        conn.exec_driver_sql("UPDATE leader_epoch SET epoch = 0 WHERE id = 1")
    engine.dispose()
    return url


def postgres_database_url() -> str:
    """The URL of this session's throwaway PostgreSQL database, created (with the schema) on first use."""
    global _session_pg_url
    if _session_pg_url is None:
        server = require_postgres_url()
        name = f"nightwatch_test_{secrets.token_hex(4)}"
        _postgres_admin(server, f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")
        atexit.register(_postgres_admin, server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        _session_pg_url = f"{server}/{name}"
        init_database(_session_pg_url)
    return _session_pg_url


def _postgres_admin(server: str, statement: str) -> None:
    # CREATE/DROP DATABASE cannot run in a transaction block.
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        admin.dispose()


def empty_postgres() -> str:
    """This session's PostgreSQL database URL, with empty tables (ids and epoch back to start)."""
    url = postgres_database_url()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "TRUNCATE TABLE task, schedule, task_event, outbox, task_log, queue_state RESTART IDENTITY"
        )
        conn.exec_driver_sql("UPDATE leader_epoch SET epoch = 0 WHERE id = 1")
    engine.dispose()
    return url


@contextmanager
def sqlite_url() -> Iterator[str]:
    """A fresh, initialised SQLite file database."""
    with tempfile.TemporaryDirectory(prefix="nightwatch-sqlite-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'nightwatch.db'}"
        init_database(url)
        yield url


@contextmanager
def repository_at(url: str) -> Iterator[SqlTaskRepository]:
    repo = SqlTaskRepository(create_engine_for(url))
    try:
        yield repo
    finally:
        repo.close()


@contextmanager
def sqlite_repository() -> Iterator[TaskRepository]:
    with sqlite_url() as url, repository_at(url) as repo:
        yield repo


@contextmanager
def mariadb_repository() -> Iterator[TaskRepository]:
    with repository_at(empty_mariadb()) as repo:
        yield repo


@contextmanager
def postgres_repository() -> Iterator[TaskRepository]:
    with repository_at(empty_postgres()) as repo:
        yield repo
