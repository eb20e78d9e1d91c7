"""Print the EXPLAIN of every queue-aware dispatch read on MariaDB and PostgreSQL (docs/queues.md).

Not a test. Seeds a throwaway database on each server with --rows Normal rows from --users users
(plus 450 in flight and --history finished rows before them), analyzes it, and prints each plan:

    .venv/bin/python bench/explain_queues.py [--rows 100000] [--users 1000]
"""

from __future__ import annotations

import argparse
import re
import secrets

import sqlalchemy as sa

from nightwatch.adapters.sql import init_database

NORMAL = "status = 'Normal' AND LENGTH(status) = 6"
NORMAL_T = "t.status = 'Normal' AND LENGTH(t.status) = 6"
QUERIES = {
    "ready, one priority level (id order)": (
        f"SELECT id FROM task WHERE {NORMAL} AND next_attempt_at IS NULL AND priority = 0 AND id > 0"
        " ORDER BY {ready_order} LIMIT 500"
    ),
    "next priority level below": (
        f"SELECT priority FROM task WHERE {NORMAL} AND next_attempt_at IS NULL AND priority < 0"
        " ORDER BY {ready_desc} LIMIT 1"
    ),
    "come due (unchanged, 0002)": (
        f"SELECT id FROM task WHERE {NORMAL} AND next_attempt_at IS NOT NULL"
        " AND next_attempt_at <= '2026-03-01 00:00:00' ORDER BY next_attempt_at, id LIMIT 500"
    ),
    "users with ready work (skip scan)": (
        "WITH RECURSIVE ready_users(user_id, step) AS ("
        f" SELECT (SELECT t.user_id FROM task t WHERE {NORMAL_T}"
        " AND t.next_attempt_at IS NULL ORDER BY t.next_attempt_at, t.user_id LIMIT 1), 1"
        f" UNION ALL SELECT (SELECT t.user_id FROM task t WHERE {NORMAL_T}"
        " AND t.next_attempt_at IS NULL AND t.user_id > r.user_id ORDER BY t.next_attempt_at, t.user_id LIMIT 1),"
        " r.step + 1"
        " FROM ready_users r WHERE r.user_id IS NOT NULL AND r.step < 900"
        ") SELECT user_id FROM ready_users WHERE user_id IS NOT NULL ORDER BY user_id"
    ),
    "one user's heads (one UNION ALL arm)": (
        f"SELECT id FROM (SELECT id FROM task WHERE {NORMAL} AND next_attempt_at IS NULL AND user_id = 1"
        " ORDER BY {ready_order} LIMIT 5) AS heads_0"
    ),
    "in flight by (queue, user)": (
        "SELECT queue, user_id, COUNT(*), SUM(CASE WHEN started_at >= '2026-03-01 00:00:00' THEN 1 ELSE 0 END)"
        " FROM task WHERE ((status = 'Pending' AND LENGTH(status) = 7) OR (status = 'Running' AND LENGTH(status) = 7))"
        " AND NOT (status = 'Pending' AND message IS NOT NULL AND message LIKE 'Queued by Kueue%')"
        " GROUP BY queue, user_id"
    ),
    "position of one task (detail view)": (
        f"SELECT COUNT(*) FROM task WHERE {NORMAL} AND next_attempt_at IS NULL"
        " AND (priority > 0 OR (priority = 0 AND id < 250000))"
    ),
}


def seed(engine: sa.Engine, rows: int, users: int, history: int) -> None:
    """`history` finished rows first (the lowest ids, as in a table in use), then 450 in flight, then
    the Normal ones (user 1 holds half; every tenth has priority -5)."""

    def row(i: int) -> str:
        status = "Succeeded" if i < history else "Pending" if i < history + 450 else "Normal"
        queue = "'batch'" if status != "Normal" else "NULL"
        user = 1 if i % 2 else 2 + i % (users - 1)
        return f"('t{i}', 'default', '{{}}', '{status}', {user}, {0 if i % 10 else -5}, {queue})"

    with engine.begin() as conn:
        total = history + 450 + rows
        for start in range(0, total, 10_000):
            values = ", ".join(row(i) for i in range(start, min(total, start + 10_000)))
            conn.exec_driver_sql(
                f"INSERT INTO task (name, namespace, info, status, user_id, priority, queue) VALUES {values}"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--history", type=int, default=200_000, help="finished rows before them")
    args = parser.parse_args()
    name = f"nightwatch_explain_{secrets.token_hex(4)}"
    for server, admin_url, url, explain, analyze in (
        (
            "MariaDB",
            "mysql+pymysql://root@127.0.0.1:3306",
            f"mysql+pymysql://root@127.0.0.1:3306/{name}",
            "EXPLAIN ",
            "ANALYZE TABLE task",
        ),
        (
            "PostgreSQL",
            "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
            f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
            "EXPLAIN ",
            "ANALYZE task",
        ),
    ):
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        try:
            init_database(url)
            engine = sa.create_engine(url)
            seed(engine, args.rows, args.users, args.history)
            with engine.begin() as conn:
                conn.exec_driver_sql(analyze)
                version = conn.exec_driver_sql("SELECT version()").scalar()
                print(
                    f"## {server} ({str(version).split(' on ')[0]}): {args.rows} Normal rows from {args.users}"
                    f" users, 450 in flight, {args.history} finished\n"
                )
                for title, sql in QUERIES.items():
                    pg = server == "PostgreSQL"
                    sql = sql.replace("{ready_order}", "next_attempt_at, id" if pg else "id")
                    sql = sql.replace("{ready_desc}", "next_attempt_at DESC, priority DESC" if pg else "priority DESC")
                    if server == "PostgreSQL":  # the repository guards PAD SPACE on MySQL/MariaDB only
                        sql = re.sub(r" AND LENGTH\((t\.)?status\) = \d", "", sql)
                    else:  # and steers only PostgreSQL's ready reads with next_attempt_at (repository.py)
                        sql = re.sub(
                            r"SELECT t\.user_id (FROM .*?) ORDER BY t\.next_attempt_at, t\.user_id LIMIT 1",
                            r"SELECT MIN(t.user_id) \1",
                            sql,
                        )
                    print(f"### {title}\n```")
                    # PyMySQL and psycopg read % as a parameter mark even without parameters.
                    result = conn.exec_driver_sql(explain + sql.replace("%", "%%"))
                    keys = list(result.keys())
                    for row in result:
                        if server == "PostgreSQL":
                            print(row[0])
                        else:
                            print(" | ".join(f"{k}={v}" for k, v in zip(keys, row, strict=True) if v is not None))
                    print("```\n")
            engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(
                    f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if server == "PostgreSQL" else "")
                )
            admin.dispose()


if __name__ == "__main__":
    main()
