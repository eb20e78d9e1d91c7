"""Benchmark: rows/s marking 10,000 tasks Pending with batched apply() vs one apply() per task.

Not a test. Runs both ways side by side in one run, on a throwaway database on each --server
(MariaDB or PostgreSQL; created and dropped here), and prints one JSON line per figure:

    .venv/bin/python bench/bench_sql_batch.py [--server mysql+pymysql://root@127.0.0.1:3306 ...] [--rows 10000]
    .venv/bin/python bench/bench_sql_batch.py --server mysql+pymysql://root@127.0.0.1:3306 \
        postgresql+psycopg://postgres@127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import event

from nightwatch.adapters.sql import SqlTaskRepository, create_engine_for, init_database
from nightwatch.adapters.sql.tables import EPOCH_ROW_ID, leader_epoch, metadata
from nightwatch.domain.model import StatusChange, TaskStatus

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def seed(repo: SqlTaskRepository, rows: int) -> None:
    with repo.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE TABLE task")
        if sa.inspect(conn).has_table("task_event"):  # the history (issue 18): each round starts empty
            conn.exec_driver_sql("TRUNCATE TABLE task_event")
        for start in range(0, rows, 1000):
            values = ", ".join(
                f"('t{i}', 'default', '{{}}', 'Normal', 1)" for i in range(start, min(rows, start + 1000))
            )
            conn.exec_driver_sql(f"INSERT INTO task (name, namespace, info, status, user_id) VALUES {values}")


def changes(repo: SqlTaskRepository) -> list[StatusChange]:
    return [t.start(t.name, NOW) for t in repo.list_by_status([TaskStatus.NORMAL], limit=1_000_000)]


def measure(repo: SqlTaskRepository, label: str, batches: list[list[StatusChange]], epoch: int) -> None:
    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(repo.engine, "before_cursor_execute", count)
    started = time.perf_counter()
    applied = sum(len(repo.apply(batch, epoch=epoch).applied) for batch in batches)
    seconds = time.perf_counter() - started
    event.remove(repo.engine, "before_cursor_execute", count)
    rows = sum(len(b) for b in batches)
    assert applied == rows, f"{label}: only {applied} of {rows} applied"
    figure = {
        "figure": label,
        "backend": repo.engine.dialect.name,
        "rows": rows,
        "apply_calls": len(batches),
        "statements": statements,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1),
    }
    print(json.dumps(figure), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", nargs="+", default=["mysql+pymysql://root@127.0.0.1:3306"])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--batched-only", action="store_true", help="skip the (slow) one-apply-per-task figure")
    args = parser.parse_args()
    for server in args.server:
        run(server, args.rows, args.batch, single=not args.batched_only)


def run(server: str, rows: int, batch: int, *, single: bool = True) -> None:
    name = f"nightwatch_bench_{secrets.token_hex(4)}"
    postgres = server.startswith("postgres")
    admin = (
        sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT") if postgres else sa.create_engine(server)
    )
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}" + ("" if postgres else " CHARACTER SET utf8mb4"))
    url = f"{server}/{name}"
    try:
        if postgres:  # init_database runs the MySQL schema.sql; PostgreSQL's comes from the metadata
            engine = create_engine_for(url)
            with engine.begin() as conn:
                metadata.create_all(conn)
                conn.execute(sa.insert(leader_epoch).values(id=EPOCH_ROW_ID, epoch=0))
            engine.dispose()
        else:
            init_database(url)
        repo = SqlTaskRepository(create_engine_for(url))
        epoch = repo.advance_epoch()
        seed(repo, rows)
        todo = changes(repo)
        measure(
            repo,
            f"batched apply ({batch} per call)",
            [todo[i : i + batch] for i in range(0, len(todo), batch)],
            epoch,
        )
        if single:
            seed(repo, rows)
            todo = changes(repo)
            measure(repo, "one apply per task", [[c] for c in todo], epoch)
        repo.close()
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if postgres else ""))
        admin.dispose()


if __name__ == "__main__":
    main()
