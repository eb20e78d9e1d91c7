"""What every benchmark shares: the fake API server process, throwaway databases, seeding, counting.

The fake Kubernetes API server always runs in its own process (`python -m tests.fakekube`), so it
never competes with nightwatch for the benchmark's interpreter lock; it is driven over HTTP
through its `/_fake/...` control endpoints. Figures are printed as one JSON line each and kept in
`FIGURES` for the report.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "mysql+pymysql://root@127.0.0.1:3306"
NAMESPACES = tuple(f"ns{i}" for i in range(10))
INFO = '{"image":"busybox:1.36","command":["sh","-c","true"]}'

FIGURES: list[dict[str, Any]] = []
_PREFIX = [""]


def emit(figure: str, **values: Any) -> dict[str, Any]:
    """Print one figure as a JSON line and keep it for the report."""
    line = {"figure": _PREFIX[-1] + figure, **values}
    FIGURES.append(line)
    print(json.dumps(line), flush=True)
    return line


@contextmanager
def figures_prefixed(prefix: str) -> Iterator[None]:
    """Figures emitted inside are named `prefix + figure` (the PostgreSQL run's `postgresql.dispatch...`),
    so the report, which reads the unprefixed MariaDB names, is not changed by them."""
    _PREFIX.append(prefix)
    try:
        yield
    finally:
        _PREFIX.pop()


# -- the fake API server -----------------------------------------------------------------------
class FakeKube:
    """`python -m tests.fakekube --port 0` in a child process, and its control endpoints."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakekube", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.stop()
            raise RuntimeError("the fake API server did not start")

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        self.control("POST", "/_fake/reset", {})

    def reset_counters(self) -> None:
        self.control("POST", "/_fake/reset-counters", {})

    def counters(self) -> dict[str, Any]:
        return dict(self.control("GET", "/_fake/counters"))

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "/_fake/jobs"))

    def bulk_create(self, namespace: str, jobs: list[dict[str, Any]], state: str = "pending") -> None:
        for start in range(0, len(jobs), 5000):
            self.control(
                "POST", "/_fake/jobs", {"namespace": namespace, "jobs": jobs[start : start + 5000], "state": state}
            )

    def set_all(self, state: str) -> int:
        return int(self.control("POST", "/_fake/jobs/state", {"state": state})["jobs"])

    def rss_mb(self) -> float:
        import psutil

        return float(psutil.Process(self.process.pid).memory_info().rss) / 2**20

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- databases ---------------------------------------------------------------------------------
class Databases:
    """Throwaway databases (`nightwatch_bench_<random>`) on a MariaDB or a PostgreSQL server (URL without
    a database), every one dropped by `drop_all()`."""

    def __init__(self, server: str = DEFAULT_SERVER) -> None:
        self.server = server
        self.names: list[str] = []
        self.postgres = sa.engine.make_url(server).get_backend_name() == "postgresql"

    def create(self) -> str:
        from nightwatch.adapters.sql import init_database

        name = f"nightwatch_bench_{secrets.token_hex(4)}"
        admin = sa.create_engine(self.server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if self.postgres:
                conn.exec_driver_sql(f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")
            else:
                conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        admin.dispose()
        self.names.append(name)
        url = f"{self.server}/{name}"
        init_database(url)
        return url

    def drop_all(self) -> None:
        admin = sa.create_engine(self.server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in self.names:
                # PostgreSQL refuses to drop a database with open sessions (the Bench's own engine).
                force = " WITH (FORCE)" if self.postgres else ""
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
        admin.dispose()
        self.names.clear()


def reset_table(engine: Engine, epoch: int = 1) -> None:
    with engine.begin() as conn:
        # Ids restart at 1 (job_bodies relies on it): MariaDB's TRUNCATE resets AUTO_INCREMENT itself.
        restart = " RESTART IDENTITY" if engine.dialect.name == "postgresql" else ""
        conn.exec_driver_sql(f"TRUNCATE TABLE task{restart}")
        conn.exec_driver_sql(f"UPDATE leader_epoch SET epoch = {int(epoch)} WHERE id = 1")


def seed(
    engine: Engine,
    count: int,
    status: str,
    *,
    first: int = 0,
    in_flight: bool = False,
    namespaces: tuple[str, ...] = NAMESPACES,
) -> None:
    """`count` rows named t<i> over `namespaces`, with multi-row INSERTs of 2,000 rows."""
    job = ", job_name, started_at" if in_flight else ""
    with engine.begin() as conn:
        for start in range(first, first + count, 2000):
            rows = []
            for i in range(start, min(first + count, start + 2000)):
                extra = f", 't{i}', '2026-03-01 00:00:00'" if in_flight else ""
                rows.append(f"('t{i}', '{namespaces[i % len(namespaces)]}', '{INFO}', '{status}', 1{extra})")
            conn.exec_driver_sql(
                f"INSERT INTO task (name, namespace, info, status, user_id{job}) VALUES {', '.join(rows)}"
            )


def job_bodies(first: int, count: int, namespace: str) -> list[dict[str, Any]]:
    """The Jobs nightwatch would have created for tasks first..first+count in `namespace` (ids = i+1)."""
    from nightwatch.adapters.kubernetes.jobbody import build_job_body
    from nightwatch.domain.jobspec import JobSpec, LaunchRequest
    from nightwatch.domain.model import TaskId

    spec = JobSpec.from_info(INFO)
    return [
        build_job_body(LaunchRequest(TaskId(i + 1), f"t{i}", namespace, spec))
        for i in range(first, first + count)
        if NAMESPACES[i % len(NAMESPACES)] == namespace
    ]


@contextmanager
def count_statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement sent through `engine` while inside (a before_cursor_execute listener)."""
    seen: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def api_client_for(url: str, *, pool_maxsize: int = 16, user_agent: str = "nightwatch-bench") -> Any:
    """The tests' client for the fake server (urllib3 retries off, as in production), named for the bench."""
    from tests.fakekube.fixtures import api_client_for as client_for_fake

    return client_for_fake(url, user_agent=user_agent, pool_maxsize=pool_maxsize)


def run_child(args: list[str], timeout: float = 900, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`python -m bench.child ARGS` in a fresh interpreter; its last stdout line is a JSON result."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "bench.child", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.child {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    if os.environ.get("BENCH_STDERR"):
        sys.stderr.write(done.stderr[-20000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def now() -> float:
    return time.perf_counter()
