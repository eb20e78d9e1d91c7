"""One measured run in a fresh interpreter: `python -m bench.child KIND --db URL --kube URL ...`.

Every side of every comparison (nightwatch's tick and the baseline it is compared with) runs in
its own process like this one, so each starts from the same state and its peak RSS is its own.
The last stdout line is a JSON object: seconds, statements, max_rss_mb and what the run did.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import api_client_for, count_statements

WORKERS = 8


@contextmanager
def _profiled() -> Iterator[None]:
    """With BENCH_PYSPY=FILE: py-spy samples this process (every thread) only while inside."""
    output = os.environ.get("BENCH_PYSPY")
    if not output:
        yield
        return
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(os.getpid()),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            output,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # let py-spy attach
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _repository(db: str) -> Any:
    from nightwatch.adapters.sql import SqlTaskRepository, create_engine_for

    return SqlTaskRepository(create_engine_for(db, pool_size=10))


def _runner(kube: str, page_size: int) -> Any:
    from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings

    settings = KubernetesSettings(qps=0, list_page_size=page_size)
    return KubernetesJobRunner(api_client_for(kube, pool_maxsize=WORKERS + 4), settings)


def run_dispatch(args: argparse.Namespace) -> dict[str, Any]:
    from bench.common import NAMESPACES
    from nightwatch.adapters.clock import SystemClock
    from nightwatch.adapters.memory import FixedFence
    from nightwatch.app.usecases.dispatch import DispatchSettings, DispatchTasks
    from nightwatch.domain.submission import SubmissionPolicy

    repo, runner = _repository(args.db), _runner(args.kube, args.page_size)
    settings, policy = DispatchSettings(workers=WORKERS), SubmissionPolicy(frozenset(NAMESPACES))
    dispatch = DispatchTasks(repo, runner, SystemClock(), FixedFence(1), settings, policy=policy)
    with count_statements(repo.engine) as statements, _profiled():
        started = time.perf_counter()
        report = dispatch()
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "launched": report.launched + report.adopted,
        "failed": report.failed,
        "deferred": report.deferred,
        "statements": len(statements),
    }


def run_bare_create(args: argparse.Namespace) -> dict[str, Any]:
    """The bare official client: typed V1Job models, create_namespaced_job, 8 threads, no database."""
    from kubernetes import client

    from bench.common import NAMESPACES

    batch = client.BatchV1Api(api_client_for(args.kube, pool_maxsize=WORKERS + 4))

    def create(i: int) -> None:
        namespace = NAMESPACES[i % len(NAMESPACES)]
        labels = {"app.kubernetes.io/managed-by": "nightwatch", "nightwatch.io/task-id": str(i + 1)}
        job = client.V1Job(
            api_version="batch/v1",
            kind="Job",
            metadata=client.V1ObjectMeta(name=f"t{i}", namespace=namespace, labels=labels),
            spec=client.V1JobSpec(
                backoff_limit=1,
                ttl_seconds_after_finished=3600,
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={**labels, "app": "task-job"}),
                    spec=client.V1PodSpec(
                        restart_policy="Never",
                        containers=[
                            client.V1Container(name="task", image="busybox:1.36", command=["sh", "-c", "true"])
                        ],
                    ),
                ),
            ),
        )
        batch.create_namespaced_job(namespace, job, _request_timeout=10)

    started = time.perf_counter()
    with _profiled(), ThreadPoolExecutor(WORKERS) as pool:
        for _ in pool.map(create, range(args.count)):
            pass
    return {"seconds": time.perf_counter() - started, "launched": args.count, "statements": 0}


def run_sync(args: argparse.Namespace) -> dict[str, Any]:
    from nightwatch.adapters.clock import SystemClock
    from nightwatch.adapters.memory import FixedFence
    from nightwatch.app.usecases.sync import SyncTasks

    repo, runner = _repository(args.db), _runner(args.kube, args.page_size)
    # The target's window runs "from the first list call to the last row written": observe() issues
    # the first list call as soon as it is entered, so its entry time is the window's start.
    first_list: list[float] = []
    observe = runner.observe

    def timed_observe(refs: Any) -> Any:
        first_list.append(time.perf_counter())
        return observe(refs)

    runner.observe = timed_observe
    sync = SyncTasks(repo, runner, SystemClock(), FixedFence(1))
    with count_statements(repo.engine) as statements, _profiled():
        started = time.perf_counter()
        report = sync()
        ended = time.perf_counter()
        seconds = ended - started
    return {
        "seconds": seconds,
        "window_seconds": ended - first_list[0],
        "observed": report.observed,
        "changed": report.changed,
        "lost": report.lost,
        "statements": len(statements),
    }


def run_sync_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """The original system's way: one typed GET per task, one UPDATE per task, 8 threads."""
    from kubernetes import client

    from nightwatch.adapters.sql import create_engine_for

    engine = create_engine_for(args.db, pool_size=WORKERS + 2)
    utc_now = "(now() AT TIME ZONE 'UTC')" if engine.dialect.name == "postgresql" else "UTC_TIMESTAMP(6)"
    batch = client.BatchV1Api(api_client_for(args.kube, pool_maxsize=WORKERS + 4))

    def one(row: Any) -> int:
        job = batch.read_namespaced_job(row.job_name, row.namespace, _request_timeout=10)
        status, message = row.status, ""
        for condition in (job.status and job.status.conditions) or []:
            if condition.status == "True" and condition.type in ("Complete", "SuccessCriteriaMet"):
                status, message = "Succeeded", f"{condition.reason}: {condition.message}"
            elif condition.status == "True" and condition.type in ("Failed", "FailureTarget"):
                status, message = "Failed", f"{condition.reason}: {condition.message}"
        if status == row.status and job.status and job.status.active:
            status = "Running"
        if status == row.status:
            return 0
        with engine.begin() as conn:
            return int(
                conn.exec_driver_sql(
                    f"UPDATE task SET status = %s, message = %s, finished_at = {utc_now}, "
                    f"version = version + 1, updated_at = {utc_now} "
                    "WHERE id = %s AND status = %s AND version = %s",
                    (status, message, row.id, row.status, row.version),
                ).rowcount
            )

    with count_statements(engine) as statements:
        started = time.perf_counter()
        with engine.begin() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT id, namespace, job_name, status, version FROM task "
                    "WHERE status IN ('Pending', 'Running') ORDER BY id"
                )
            ).all()
        first_get = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as pool:
            changed = sum(pool.map(one, rows))
        ended = time.perf_counter()
        seconds = ended - started
    return {
        "seconds": seconds,
        "window_seconds": ended - first_get,
        "observed": len(rows),
        "changed": changed,
        "statements": len(statements),
    }


def run_idle(args: argparse.Namespace) -> dict[str, Any]:
    """`ticks` dispatch + sync ticks with nothing to do; statements of the last tick, median time."""
    from bench.common import NAMESPACES
    from nightwatch.adapters.clock import SystemClock
    from nightwatch.adapters.memory import FixedFence
    from nightwatch.app.usecases.dispatch import DispatchSettings, DispatchTasks
    from nightwatch.app.usecases.sync import SyncTasks
    from nightwatch.domain.submission import SubmissionPolicy

    repo, runner = _repository(args.db), _runner(args.kube, args.page_size)
    clock, fence = SystemClock(), FixedFence(1)
    policy = SubmissionPolicy(frozenset(NAMESPACES))
    dispatch = DispatchTasks(repo, runner, clock, fence, DispatchSettings(), policy=policy)
    sync = SyncTasks(repo, runner, clock, fence)
    times, per_tick = [], []
    for _ in range(args.ticks):
        with count_statements(repo.engine) as statements:
            started = time.perf_counter()
            dispatch()
            sync()
            times.append(time.perf_counter() - started)
        per_tick.append(len(statements))
    return {"seconds": statistics.median(times), "statements": max(per_tick), "ticks": args.ticks}


KINDS = {
    "dispatch": run_dispatch,
    "bare-create": run_bare_create,
    "sync": run_sync,
    "sync-baseline": run_sync_baseline,
    "idle": run_idle,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--db", default="")
    parser.add_argument("--kube", required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    result = KINDS[args.kind](args)
    result["max_rss_mb"] = round(_max_rss_mb(), 1)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
