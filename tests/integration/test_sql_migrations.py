"""Alembic migrations: `db upgrade` (idempotent, several at once), `db current`, `run` on an old
schema, and `schema.sql` against what the head revision builds on MariaDB."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from nightwatch.adapters.sql.migrate import head_revision, schema_revision, upgrade
from nightwatch.adapters.sql.schema import split_statements
from nightwatch.app.cli import main
from tests.support.scratch_db import mariadb_shape, scratch_mariadb

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run_schema_sql(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in split_statements((REPO_ROOT / "schema.sql").read_text(encoding="utf-8")):
            conn.exec_driver_sql(statement)
    engine.dispose()


def test_schema_sql_matches_the_head_revision_on_mariadb() -> None:
    with scratch_mariadb() as by_script, scratch_mariadb() as by_alembic:
        _run_schema_sql(by_script)
        upgrade(by_alembic)
        assert mariadb_shape(by_alembic) == mariadb_shape(by_script)
        engine = sa.create_engine(by_alembic)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT id, epoch FROM leader_epoch").all() == [(1, 0)]
        engine.dispose()


def test_upgrade_twice_is_a_no_op_on_mariadb() -> None:
    with scratch_mariadb() as url:
        first = upgrade(url)
        shape = mariadb_shape(url)
        second = upgrade(url)
        assert (first.before, first.after) == (None, head_revision())
        assert (second.before, second.after) == (head_revision(), head_revision())
        assert mariadb_shape(url) == shape


def test_upgrade_twice_is_a_no_op_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nw.db'}"
    assert upgrade(url).before is None
    assert upgrade(url).before == head_revision()
    assert schema_revision(url).is_head


def test_concurrent_upgrades_on_mariadb_take_turns_and_end_at_head() -> None:
    with scratch_mariadb() as url:
        errors: list[BaseException] = []
        befores: list[str | None] = []
        start = threading.Barrier(4)

        def one() -> None:
            try:
                start.wait()
                befores.append(upgrade(url).before)
            except BaseException as error:  # reported by the assertion below
                errors.append(error)

        threads = [threading.Thread(target=one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert sorted(befores, key=str) == [head_revision()] * 3 + [None]
        assert schema_revision(url).is_head


def test_a_database_made_before_migrations_is_stamped_and_keeps_its_rows() -> None:
    with scratch_mariadb() as url:
        _run_schema_sql(url)  # what `nightwatch db init` did before Alembic
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO task (name, namespace, info) VALUES ('kept', 'default', '{}')")
            conn.exec_driver_sql("UPDATE leader_epoch SET epoch = 7")
        shape = mariadb_shape(url)
        done = upgrade(url)
        assert (done.before, done.after) == (None, head_revision())
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT name FROM task").scalars().all() == ["kept"]
            assert conn.exec_driver_sql("SELECT epoch FROM leader_epoch").scalar_one() == 7
        engine.dispose()
        assert mariadb_shape(url) == shape


def test_db_current_says_where_the_schema_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with scratch_mariadb() as url:
        monkeypatch.setenv("NIGHTWATCH_DATABASE__URL", url)
        assert main(["db", "current"]) == 1
        assert capsys.readouterr().out.strip() == f"none (behind head {head_revision()}: run 'nightwatch db upgrade')"
        assert main(["db", "upgrade"]) == 0
        assert capsys.readouterr().out.strip().endswith(f"from none to {head_revision()} (head)")
        assert main(["db", "init"]) == 0
        assert capsys.readouterr().out.strip().endswith(f"is at {head_revision()} (head); nothing to do")
        assert main(["db", "current"]) == 0
        assert capsys.readouterr().out.strip() == f"{head_revision()} (head)"


def test_run_refuses_a_schema_older_than_the_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with scratch_mariadb() as url:
        _run_schema_sql(url)  # tables as before migrations: no revision yet
        monkeypatch.setenv("NIGHTWATCH_DATABASE__URL", url)
        assert main(["run"]) == 2
        err = capsys.readouterr().err
        assert (
            f"database schema is at none, this nightwatch needs {head_revision()}: run 'nightwatch db upgrade'" in err
        )
