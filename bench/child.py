"""One measured run in a fresh interpreter: `python -m bench.child KIND --db URL --kube URL ...`.

Every side of every comparison (nightwatch's tick and the baseline it is compared with) runs in
its own process like this one, so each starts from the same state and its peak RSS is its own.
The last stdout line is a JSON object: seconds, statements, max_rss_mb and what the run did.
"""

from __future__ import annotations

import argparse
import gc
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
def _gc_timed() -> Iterator[dict[str, float]]:
    """The garbage collector's runs while inside: how many by generation, and the seconds they held
    the interpreter (a full collection walks every tracked object, and stops every thread meanwhile)."""
    seen: dict[str, float] = {"gen0": 0, "gen1": 0, "gen2": 0, "seconds": 0.0}
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            seen[f"gen{info['generation']}"] += 1
            seen["seconds"] += time.perf_counter() - started[0]

    gc.callbacks.append(callback)
    try:
        yield seen
    finally:
        gc.callbacks.remove(callback)
        seen["seconds"] = round(seen["seconds"], 3)


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
            *(["--gil"] if os.environ.get("BENCH_PYSPY_GIL") else []),
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


def _runner(kube: str, page_size: int, *, watch: bool = False) -> Any:
    from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings

    settings = KubernetesSettings(qps=0, list_page_size=page_size, watch=watch)
    return KubernetesJobRunner(api_client_for(kube, pool_maxsize=WORKERS + 4), settings)


@contextmanager
def _syncing(repo: Any, runner: Any, mode: str) -> Iterator[None]:
    """With `mode` watch or poll: the service's sync runs beside dispatch in this process (a tick
    every 2 s, or at once when the runner's change feed wakes it), as it does in `nightwatch run`."""
    if mode == "none":
        yield
        return
    import threading

    from nightwatch.adapters.clock import SystemClock
    from nightwatch.adapters.memory import FixedFence
    from nightwatch.app.usecases.sync import SyncTasks

    woken, stop = threading.Event(), threading.Event()
    sync = SyncTasks(repo, runner, SystemClock(), FixedFence(1), wake=woken.set)

    def loop() -> None:
        while not stop.is_set():
            report = sync()
            if os.environ.get("BENCH_STDERR"):  # what sync read beside dispatch (python -m bench leaves it off)
                print(f"sync {time.time():.3f} observed {report.observed} full {report.full}", file=sys.stderr)
            woken.wait(2.0)
            woken.clear()

    ticker = threading.Thread(target=loop, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        woken.set()
        ticker.join(30)


def run_dispatch(args: argparse.Namespace) -> dict[str, Any]:
    from bench.common import NAMESPACES
    from nightwatch.adapters.clock import SystemClock
    from nightwatch.adapters.memory import FixedFence
    from nightwatch.app.usecases.dispatch import DispatchSettings, DispatchTasks
    from nightwatch.domain.submission import SubmissionPolicy

    repo = _repository(args.db)
    runner = _runner(args.kube, args.page_size, watch=args.sync == "watch")
    namespaces = frozenset((args.namespace,)) if args.one_namespace else frozenset(NAMESPACES)
    settings, policy = DispatchSettings(workers=WORKERS), SubmissionPolicy(namespaces)
    dispatch = DispatchTasks(repo, runner, SystemClock(), FixedFence(1), settings, policy=policy)
    with count_statements(repo.engine) as statements, _profiled(), _syncing(repo, runner, args.sync):
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
    """The bare official client: typed V1Job models (or, with `--dict`, plain dict bodies),
    create_namespaced_job, 8 threads, no database; with `--one-namespace`, every Job in `--namespace`."""
    from kubernetes import client

    from bench.common import NAMESPACES

    batch = client.BatchV1Api(api_client_for(args.kube, pool_maxsize=WORKERS + 4))
    namespaces = (args.namespace,) if args.one_namespace else NAMESPACES

    def create_dict(i: int) -> None:
        namespace = namespaces[i % len(namespaces)]
        labels = {"app.kubernetes.io/managed-by": "nightwatch", "nightwatch.io/task-id": str(i + 1)}
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": f"t{i}", "namespace": namespace, "labels": labels},
            "spec": {
                "backoffLimit": 1,
                "ttlSecondsAfterFinished": 3600,
                "template": {
                    "metadata": {"labels": {**labels, "app": "task-job"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "task", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}],
                    },
                },
            },
        }
        batch.create_namespaced_job(namespace, job, _request_timeout=10)

    def create(i: int) -> None:
        namespace = namespaces[i % len(namespaces)]
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
        for _ in pool.map(create_dict if args.dict else create, range(args.count)):
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


def _fake_control(kube: str, method: str, path: str, body: Any = None) -> Any:
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(kube + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read() or b"null")


def run_watch(args: argparse.Namespace) -> dict[str, Any]:
    """The watch-based sync as the service runs it (woken by changes, else every 2 s), in one namespace
    of `count` Running tasks: at rest for `rest_seconds`, then 200 Jobs finished 20 at a time (latency),
    then every other Job at once (burst). With `--poll`: only the rest phase, with the watch off."""
    import threading

    from nightwatch.adapters.clock import SystemClock
    from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings
    from nightwatch.adapters.kubernetes.informer import ChangeQueue
    from nightwatch.adapters.memory import FixedFence
    from nightwatch.app.usecases.sync import SyncTasks

    repo = _repository(args.db)
    runner = KubernetesJobRunner(
        api_client_for(args.kube, pool_maxsize=WORKERS + 4),
        KubernetesSettings(qps=0, list_page_size=args.page_size, watch=not args.poll),
    )
    applied: dict[int, float] = {}
    apply = repo.apply
    trace: list[str] = []  # with BENCH_STDERR: when each read and write of the burst ran, to stderr

    def timed_apply(changes: Any, *, epoch: int) -> Any:
        t0 = time.time()
        result = apply(changes, epoch=epoch)
        at = time.time()
        trace.append(f"apply {t0:.3f} {len(changes)} {at - t0:.3f}")
        for task_id in result.applied:
            applied[int(task_id)] = at
        return result

    repo.apply = timed_apply
    get_many = repo.get_many

    def traced_get_many(ids: Any, **kw: Any) -> Any:
        t0 = time.time()
        rows = get_many(ids, **kw)
        trace.append(f"get {t0:.3f} {len(ids)} {time.time() - t0:.3f}")
        return rows

    repo.get_many = traced_get_many
    heard: list[float] = [0.0]  # when the informer last queued a change (its last event that mattered)
    queue_add = ChangeQueue.add

    def timed_add(queue: ChangeQueue, ids: Any) -> None:
        queue_add(queue, ids)
        if ids:
            heard[0] = time.time()

    ChangeQueue.add = timed_add  # type: ignore[method-assign]
    woken, stop = threading.Event(), threading.Event()
    sync = SyncTasks(repo, runner, SystemClock(), FixedFence(1), wake=woken.set)
    full_reads: list[int] = [0]
    idle_ticks: list[int] = [0]

    def loop() -> None:  # what the service's ticker does: every 2 s, or at once when woken
        while not stop.is_set():
            report = sync()
            full_reads[0] += int(report.full)
            idle_ticks[0] = 0 if report.full or report.observed else idle_ticks[0] + 1
            woken.wait(2.0)
            woken.clear()

    gc.freeze()  # as `nightwatch run` does once it is built
    ticker = threading.Thread(target=loop, daemon=True)
    ticker.start()
    # The term's full pass, then the informer's first list (every task queued once) settle first.
    settle = time.monotonic() + (5 if args.poll else 120)  # polling: every tick is a full pass
    while (args.poll or idle_ticks[0] < 2) and time.monotonic() < settle:
        time.sleep(0.1)
    statements: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    sa.event.listen(repo.engine, "before_cursor_execute", listener)
    _fake_control(args.kube, "POST", "/_fake/reset-counters")
    bytes_before = _fake_control(args.kube, "GET", "/_fake/watch")["bytes"]
    reads_before = full_reads[0]
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    time.sleep(args.rest_seconds)
    cpu = time.process_time() - cpu_before
    wall = time.perf_counter() - wall_before
    sa.event.remove(repo.engine, "before_cursor_execute", listener)
    counters = _fake_control(args.kube, "GET", "/_fake/counters")["verbs"]
    per_minute = 60.0 / wall
    # A statement that reads every in-flight row: the full pass's status scan (get_many reads by id).
    scans = [s for s in statements if s.startswith("SELECT") and "status" in s and " IN (" not in s.split("WHERE")[-1]]
    result: dict[str, Any] = {
        "rest_seconds": round(wall, 1),
        "rest_cpu_percent": round(100 * cpu / wall, 2),
        "rest_list_calls_per_minute": round(counters.get("list", 0) * per_minute, 2),
        "rest_api_calls": counters,
        "rest_watch_mb_per_minute": round(
            (_fake_control(args.kube, "GET", "/_fake/watch")["bytes"] - bytes_before) * per_minute / 1e6, 4
        ),
        "rest_statements": len(statements),
        "rest_in_flight_scans": len(scans),
        "rest_full_passes": full_reads[0] - reads_before,
    }
    if args.poll:
        stop.set()
        return result
    # Latency: 200 Jobs finished 20 at a time, each change timed to its row's write.
    changed_at: dict[int, float] = {}
    names = [(i + 1, f"t{i}") for i in range(args.count)]
    for start in range(0, 200, 20):
        for task_id, name in names[start : start + 20]:
            changed_at[task_id] = time.time()
            _fake_control(args.kube, "POST", f"/_fake/jobs/{args.namespace}/{name}/state", {"state": "succeeded"})
        time.sleep(0.5)
    deadline = time.time() + 30
    while time.time() < deadline and not all(t in applied for t in changed_at):
        time.sleep(0.05)
    latencies = sorted(applied.get(t, float("inf")) - at for t, at in changed_at.items())
    result["latency_p50"] = round(latencies[len(latencies) // 2], 3)
    result["latency_p99"] = round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3)
    result["latency_max"] = round(latencies[-1], 3)
    # Burst: every other Job at once.
    rest = [t for t, _ in names[200:]]
    with _profiled(), _gc_timed() as collections:
        # Every Job finishes in the store first, then the fake streams all the events at once (`at_once`):
        # timed from that moment, as a real apiserver would have them, not from while the fake is slowly
        # still finishing them (which charges ours with the fake's own work, or hides ours under it).
        started = time.time()
        finished = float(
            _fake_control(args.kube, "POST", "/_fake/jobs/state", {"state": "succeeded", "at_once": True})[
                "released_wall"
            ]
        )
        returned = time.time()
        deadline = time.time() + 300
        while time.time() < deadline and not all(t in applied for t in rest):
            time.sleep(0.02)
    last = max(applied.get(t, float("inf")) for t in rest)
    result["burst_tasks"] = len(rest)
    result["burst_seconds_from_request"] = round(last - started, 3)
    result["burst_fake_seconds"] = round(finished - started, 3)
    result["burst_seconds"] = round(last - finished, 3)
    result["burst_last_event_seconds"] = round(heard[0] - finished, 3)
    result["burst_written_before_return"] = sum(1 for t in rest if applied.get(t, float("inf")) <= returned)
    if os.environ.get("BENCH_STDERR"):
        print("\n".join(trace[-60:]), file=sys.stderr)
        print(
            f"started {started:.3f} finished {finished:.3f} returned {returned:.3f} heard {heard[0]:.3f} last {last:.3f}",
            file=sys.stderr,
        )
    result["burst_written"] = sum(1 for t in rest if t in applied)
    result["burst_gc"] = {**collections, "seconds": round(collections["seconds"], 3)}
    stop.set()
    return result


KINDS = {
    "dispatch": run_dispatch,
    "bare-create": run_bare_create,
    "sync": run_sync,
    "sync-baseline": run_sync_baseline,
    "idle": run_idle,
    "watch": run_watch,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--db", default="")
    parser.add_argument("--kube", required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--namespace", default="ns0")
    parser.add_argument("--rest-seconds", type=float, default=60.0)
    parser.add_argument("--poll", action="store_true")
    parser.add_argument("--dict", action="store_true", help="bare-create: plain dict bodies")
    parser.add_argument("--one-namespace", action="store_true", help="every Job in --namespace")
    parser.add_argument("--sync", choices=("none", "watch", "poll"), default="none", help="dispatch: sync beside it")
    args = parser.parse_args()
    result = KINDS[args.kind](args)
    result["max_rss_mb"] = round(_max_rss_mb(), 1)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
