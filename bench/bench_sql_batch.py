"""Benchmark: rows/s marking 10,000 tasks Pending with batched apply() vs one apply() per task.

Not a test. Runs both ways side by side in one run, on a throwaway MariaDB database (created and
dropped here), and prints one JSON line per figure:

    .venv/bin/python bench/bench_sql_batch.py [--server mysql+pymysql://root@127.0.0.1:3306] [--rows 10000]
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
from nightwatch.domain.model import StatusChange, TaskStatus

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def seed(repo: SqlTaskRepository, rows: int) -> None:
    with repo.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE TABLE task")
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
    parser.add_argument("--server", default="mysql+pymysql://root@127.0.0.1:3306")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    name = f"nightwatch_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(args.server)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    url = f"{args.server}/{name}"
    try:
        init_database(url)
        repo = SqlTaskRepository(create_engine_for(url))
        epoch = repo.advance_epoch()
        seed(repo, args.rows)
        todo = changes(repo)
        measure(
            repo,
            f"batched apply ({args.batch} per call)",
            [todo[i : i + args.batch] for i in range(0, len(todo), args.batch)],
            epoch,
        )
        seed(repo, args.rows)
        todo = changes(repo)
        measure(repo, "one apply per task", [[c] for c in todo], epoch)
        repo.close()
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


if __name__ == "__main__":
    main()
