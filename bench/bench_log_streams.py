"""Benchmark: 50 concurrent log follows on the leading replica do not slow dispatch or sync (issue 22).

Not a test. One process plays the replica: dispatch and sync of `--tasks` tasks (SQLite file,
KubernetesJobRunner against the fake API server in its own process), and the REST API on an HTTP
endpoint of its own serving `--streams` follows (`GET /tasks/{id}/logs?follow=true`) of running
tasks whose pods write a line every 50 ms. The same dispatch + sync run is timed twice, without and
with the streams open, and the replica's RSS sampled; prints one JSON line per figure and exits 1
if a tick is more than 1.5x slower with streams or RSS grew by more than `--rss-limit-mb`:

    .venv/bin/python -m bench.bench_log_streams [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from dependency_injector import providers

from bench.common import FakeKube, api_client_for
from nightwatch.adapters.clock import SystemClock
from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings
from nightwatch.adapters.memory import FixedFence
from nightwatch.adapters.sql import SqlTaskRepository, create_engine_for, init_database
from nightwatch.app.container import build_container
from nightwatch.app.http import HttpEndpoint
from nightwatch.app.usecases.dispatch import DispatchSettings, DispatchTasks
from nightwatch.app.usecases.sync import SyncTasks
from nightwatch.domain.ports import NewTask

TOKEN = "bench-log-streams-token-0123456789"
INFO = '{"image": "busybox", "command": ["sleep", "60"]}'
MB = 2**20


def emit(**figure: Any) -> None:
    print(json.dumps(figure), flush=True)


def rss_mb() -> float:
    """This process's resident set, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed_run(
    repo: SqlTaskRepository, runner: KubernetesJobRunner, fake: FakeKube, tasks: int, epoch: int
) -> dict[str, float]:
    """Dispatch `tasks` Normal tasks to Pending, then sync them to Running: every tick timed."""
    clock, fence = SystemClock(), FixedFence(epoch)
    dispatch = DispatchTasks(repo, runner, clock, fence, DispatchSettings(batch_size=500, workers=8))
    sync = SyncTasks(repo, runner, clock, fence)
    dispatch_ticks: list[float] = []
    while repo.count_by_status().get("Normal", 0):
        started = time.perf_counter()
        dispatch()
        dispatch_ticks.append(time.perf_counter() - started)
    fake.set_all("active")  # every Job of the run (and the streams' Jobs, already active)
    sync_ticks: list[float] = []
    for _ in range(5):
        started = time.perf_counter()
        sync()
        sync_ticks.append(time.perf_counter() - started)
    assert repo.count_by_status().get("Running", 0) >= tasks
    return {
        "dispatch_total_s": sum(dispatch_ticks),
        "dispatch_tick_median_s": statistics.median(dispatch_ticks),
        "sync_tick_median_s": statistics.median(sync_ticks),
    }


def follow_many(base: str, task_ids: list[str]) -> int:
    """The followers' side (`--follow BASE ID...`): one thread per stream until stdin closes, then one
    JSON line with the bytes each received and how many streams were still open."""
    received = [0] * len(task_ids)
    done = threading.Event()
    open_now = [0]
    lock = threading.Lock()

    def follow(index: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=None) as http:
            params = {"follow": "true"}
            with http.stream("GET", f"/api/v1/tasks/{task_ids[index]}/logs", params=params) as response:
                with lock:
                    open_now[0] += 1
                try:
                    for chunk in response.iter_raw():
                        received[index] += len(chunk)
                        if done.is_set():
                            return
                finally:
                    with lock:
                        open_now[0] -= 1

    for i in range(len(task_ids)):
        threading.Thread(target=follow, args=(i,), daemon=True).start()
    sys.stdin.read()
    still_open = open_now[0]
    done.set()
    print(json.dumps({"received": received, "open": still_open}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--follow":
        return follow_many(sys.argv[2], sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one cycle per side instead of three")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--rss-limit-mb", type=float, default=100.0)
    parser.add_argument("--cycles", type=int, default=3, help="dispatch + sync runs per side (medians)")
    args = parser.parse_args(argv)
    if args.quick:
        args.cycles = 1

    fake = FakeKube()
    workdir = Path(tempfile.mkdtemp(prefix="nw-bench-logs-"))
    url = f"sqlite:///{workdir}/nw.db"
    init_database(url)
    engine = create_engine_for(url)
    repo = SqlTaskRepository(engine)
    runner = KubernetesJobRunner(api_client_for(fake.url, pool_maxsize=32), KubernetesSettings(qps=0))
    container = build_container(
        {
            "database": {"url": url},
            "runner": {"backend": "kubernetes", "allowed_namespaces": ["default", "bench"]},
            "api": {"tokens": [{"token": TOKEN, "user_id": 1, "admin": True}]},
            "logs": {"max_streams": args.streams + 8, "poll_seconds": 1.0},
        },
        load_plugins=False,
    )
    container.repository.override(providers.Object(repo))
    container.job_logs.override(providers.Object(runner.logs))
    endpoint = HttpEndpoint("127.0.0.1", 0, container.web_app())
    endpoint.start()
    base = f"http://127.0.0.1:{endpoint.port}"
    try:
        epoch = repo.advance_epoch()
        # The streams' tasks: running, each with a pod that writes a line every 50 ms.
        followed = []
        for i in range(args.streams):
            task = repo.add(NewTask(f"log-{i}", "bench", INFO), time_now())
            repo.apply([task.start(f"log-{i}", time_now())], epoch=epoch)
            fake.control(
                "POST",
                "/_fake/pods/bench",
                {
                    "metadata": {"name": f"log-{i}-p", "labels": {"job-name": f"log-{i}"}},
                    "spec": {"containers": [{"name": "task"}]},
                },
            )
            fake.control("POST", f"/_fake/podlogs/bench/log-{i}-p", {"data": "started\n"})
            followed.append(task.id)
        # Their Jobs exist and run, so sync keeps them in flight (and observes them, as in production).
        fake.bulk_create(
            "bench",
            [
                {
                    "metadata": {
                        "name": f"log-{i}",
                        "labels": {
                            "app.kubernetes.io/managed-by": "nightwatch",
                            "nightwatch.io/task-id": str(followed[i]),
                        },
                    },
                    "spec": {
                        "template": {
                            "spec": {"containers": [{"name": "task", "image": "busybox"}], "restartPolicy": "Never"}
                        }
                    },
                }
                for i in range(args.streams)
            ],
            state="active",
        )

        def baseline_tasks(offset: int) -> None:
            # Last cycle's tasks are done with: terminal rows stay (as in production), never read again.
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "UPDATE task SET status = 'Succeeded' WHERE status = 'Running' AND namespace = 'default'"
                )
            for i in range(args.tasks):
                repo.add(NewTask(f"t{offset + i}", "default", INFO), time_now())

        def cycles(count: int) -> dict[str, float]:
            """`count` dispatch + sync runs of fresh tasks; the median of each figure."""
            runs = []
            for _ in range(count):
                # The same cluster each run: only this run's Jobs (and the streams' ones) to list.
                fake.control("POST", "/_fake/jobs/clear", {"namespace": "default"})
                baseline_tasks(next_name[0])
                next_name[0] += args.tasks
                runs.append(timed_run(repo, runner, fake, args.tasks, epoch))
            return {key: statistics.median(run[key] for run in runs) for key in runs[0]}

        next_name = [0]
        cycles(1)  # warm-up: imports, pools, the first statements' compilation
        rss_before = rss_mb()
        quiet = cycles(args.cycles)
        emit(figure="log_streams.without", tasks=args.tasks, **quiet, rss_mb=round(rss_mb(), 1))

        # The followers are another process (as users are): their clients cost the replica nothing.
        followers = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_log_streams", "--follow", base, *map(str, followed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        # The pods' output is written by the fake itself (its own process), a line every 50 ms.
        pods = [f"log-{i}-p" for i in range(args.streams)]
        fake.control("POST", "/_fake/podlogs-ticker", {"namespace": "bench", "pods": pods, "every_ms": 50})
        time.sleep(3.0)
        peak = rss_mb()
        busy = cycles(args.cycles)
        peak = max(peak, rss_mb())
        assert followers.stdin is not None and followers.stdout is not None
        followers.stdin.close()  # tells the followers to report and stop
        counts = json.loads(followers.stdout.readline())
        followers.wait(30)
        open_streams = sum(1 for n in counts["received"] if n > len("started\n"))  # lines flowed, not only the first
        emit(
            figure="log_streams.with",
            tasks=args.tasks,
            streams=open_streams,
            streams_open_at_end=counts["open"],
            bytes_streamed=sum(counts["received"]),
            **busy,
            rss_mb=round(peak, 1),
        )
        ratios = {key: busy[key] / quiet[key] for key in quiet}
        ok = (
            all(r <= 1.5 for r in ratios.values())
            and peak - rss_before <= args.rss_limit_mb
            and open_streams == args.streams
        )
        emit(
            figure="log_streams.ratio",
            **{k: round(v, 2) for k, v in ratios.items()},
            rss_growth_mb=round(peak - rss_before, 1),
            target="<= 1.5x",
            ok=ok,
        )
        return 0 if ok else 1
    finally:
        endpoint.stop()
        container.shutdown_resources()
        fake.stop()


def time_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


if __name__ == "__main__":
    raise SystemExit(main())
