"""`nightwatch db upgrade` on the original Go nightwatch's `task` table (MariaDB): in place, every
row and id kept, the result the same as `schema.sql`; `Unknown` read as `Pending`."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from nightwatch.adapters.sql import SqlTaskRepository, create_engine_for
from nightwatch.adapters.sql.migrate import head_revision, upgrade
from nightwatch.adapters.sql.migrations.legacy import UNKNOWN_MESSAGE
from nightwatch.adapters.sql.schema import split_statements
from nightwatch.domain.model import TaskStatus
from tests.support.legacy_table import LEGACY_DDL, LEGACY_STATUSES
from tests.support.scratch_db import mariadb_shape, scratch_mariadb

REPO_ROOT = Path(__file__).resolve().parents[2]


def _legacy(url: str, rows: int = 0) -> sa.Engine:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(LEGACY_DDL)
        for i, status in enumerate(LEGACY_STATUSES, start=1):
            conn.execute(
                sa.text(
                    "INSERT INTO task (id, name, namespace, info, status, user_id) VALUES (:id, :n, 'default', '{}', :s, 3)"
                ),
                {"id": i * 10, "n": f"legacy-{status.lower()}-{i}", "s": status},
            )
        # The original left updated_at NULL until a row's first update.
        conn.exec_driver_sql("UPDATE task SET updated_at = '2024-05-01 10:00:00' WHERE status = 'Failed'")
        if rows:
            conn.exec_driver_sql(
                "INSERT INTO task (name, namespace, info, status, user_id) "
                'SELECT CONCAT(\'bulk-\', seq), \'default\', \'{"image":"alpine","command":["true"]}\', '
                "ELT(1 + MOD(seq, 6), 'Normal', 'Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'), MOD(seq, 10) "
                f"FROM seq_1_to_{rows}"
            )
    return engine


def test_the_original_table_is_upgraded_in_place_to_the_schema_sql_shape() -> None:
    with scratch_mariadb() as url, scratch_mariadb() as reference:
        engine = _legacy(url)
        with engine.connect() as conn:
            before = conn.exec_driver_sql(
                "SELECT id, name, namespace, info, user_id, created_at FROM task ORDER BY id"
            ).all()
        done = upgrade(url)
        assert (done.before, done.after) == (None, head_revision())
        ref = sa.create_engine(reference)
        with ref.begin() as conn:
            for statement in split_statements((REPO_ROOT / "schema.sql").read_text(encoding="utf-8")):
                conn.exec_driver_sql(statement)
        ref.dispose()
        assert mariadb_shape(url) == mariadb_shape(reference)
        with engine.connect() as conn:
            after = conn.exec_driver_sql(
                "SELECT id, name, namespace, info, user_id, created_at FROM task ORDER BY id"
            ).all()
            statuses = dict(conn.exec_driver_sql("SELECT name, status FROM task").all())
            unknown = conn.exec_driver_sql("SELECT message, version FROM task WHERE name = 'legacy-unknown-6'").one()
            failed_updated = conn.exec_driver_sql("SELECT updated_at FROM task WHERE status = 'Failed'").scalar_one()
            epochs = conn.exec_driver_sql("SELECT id, epoch FROM leader_epoch").all()
        assert after == before
        assert statuses["legacy-unknown-6"] == "Pending" and tuple(unknown) == (UNKNOWN_MESSAGE, 0)
        assert statuses["legacy-normal-7"] == "normal"  # an unknown status stays as typed, and apart
        assert str(failed_updated).startswith("2024-05-01 10:00:00")
        assert [tuple(e) for e in epochs] == [(1, 0)]
        engine.dispose()
        repo = SqlTaskRepository(create_engine_for(url))
        try:
            assert [t.name for t in repo.list_by_status([TaskStatus.NORMAL])] == ["legacy-normal-1"]
            assert sorted(t.name for t in repo.list_by_status([TaskStatus.PENDING])) == [
                "legacy-pending-2",
                "legacy-unknown-6",
            ]
            created = repo.list_by_status([TaskStatus.RUNNING])[0]
            assert created.id == 30 and created.version == 0 and created.created_at is not None
        finally:
            repo.close()
        assert upgrade(url).before == head_revision()  # and again: nothing to do


def test_a_hundred_thousand_row_original_table_upgrades_in_place() -> None:
    with scratch_mariadb() as url:
        engine = _legacy(url, rows=100_000)
        started = time.perf_counter()
        upgrade(url)
        elapsed = time.perf_counter() - started
        with engine.connect() as conn:
            count = conn.exec_driver_sql("SELECT COUNT(*) FROM task").scalar_one()
            pending = conn.exec_driver_sql("SELECT COUNT(*) FROM task WHERE status = 'Pending'").scalar_one()
        engine.dispose()
        assert count == 100_000 + len(LEGACY_STATUSES)
        assert pending == sum(1 for seq in range(1, 100_001) if seq % 6 in (1, 5)) + 2  # Pending and Unknown
        print(f"\nupgrading the original 100,000-row task table on MariaDB took {elapsed:.2f} s")
        with open("/tmp/nightwatch-legacy-upgrade-figure.txt", "w") as figure:
            figure.write(f"{elapsed:.2f}\n")
