"""Benchmark: dispatch through a fair-share queue against dispatch with no queue, side by side in one run.

Not a test. On a throwaway SQLite file (or MariaDB with --mariadb URL): N `Normal` rows from U users
(user 1 holds half of them, the others share the rest), one fair-share queue with max_in_flight 500,
Jobs finishing at random (each in-flight task ends with probability --finish per tick), launches
through the memory runner with --latency seconds per create (8 workers, like an API server's round
trip). Prints one JSON line per figure:

- `throughput`: launches per second of dispatch time, queue vs no queue, the no-queue run reading
  the same number of tasks per tick as the queue run launched on average (so both pay the same
  per-launch cost and the ratio is the queue's overhead);
- `fairness`: Jain's index of launches per user in each window of 1,000 launches, over the users
  with queued work at the window's start (min and mean);
- `newcomer`: a user who submits 5 tasks mid-run, behind user 1's tens of thousands: ticks until
  its first launch;
- `flat`: statements and peak traced memory of one queue tick at 1,000 and at N waiting rows.

    .venv/bin/python bench/bench_queues.py            # quick: 20,000 rows, 200 users
    .venv/bin/python bench/bench_queues.py --full     # 100,000 rows, 1,000 users
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryJobRunner, MemoryQueueStates
from nightwatch.adapters.sql import SqlTaskRepository, create_engine_for, init_database
from nightwatch.app.usecases.dispatch import DispatchSettings, DispatchTasks
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.model import TaskStatus
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.ports import LaunchResult, NewTask
from nightwatch.domain.queues import Queue, Queues
from nightwatch.domain.submission import SubmissionPolicy

INFO = '{"image":"alpine"}'
QUEUE = Queue("batch", max_in_flight=500, fair_share=True)
WINDOW = 1000


class SlowRunner(MemoryJobRunner):
    """The memory runner with a fixed round trip per create, as an API server has."""

    def __init__(self, latency: float) -> None:
        super().__init__()
        self._latency = latency

    def launch(self, request: LaunchRequest) -> LaunchResult:
        time.sleep(self._latency)
        return super().launch(request)


def emit(figure: str, **values: Any) -> None:
    print(json.dumps({"figure": figure, **values}), flush=True)


def seed(engine: sa.Engine, rows: int, users: int) -> None:
    """Half the rows are user 1's, the rest round-robin over users 2..users."""
    task = sa.table(
        "task", sa.column("name"), sa.column("namespace"), sa.column("info"), sa.column("status"), sa.column("user_id")
    )
    others = max(users - 1, 1)
    values = [
        {
            "name": f"t{i}",
            "namespace": "default",
            "info": INFO,
            "status": "Normal",
            "user_id": 1 if i % 2 == 0 else 2 + (i // 2) % others,
        }
        for i in range(rows)
    ]
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM task")
        for start in range(0, rows, 5000):
            conn.execute(sa.insert(task), values[start : start + 5000])


def finish_some(repo: SqlTaskRepository, rng: random.Random, p: float, epoch: int, clock: FakeClock) -> None:
    in_flight = repo.list_by_status([TaskStatus.PENDING, TaskStatus.RUNNING], limit=100_000)
    changes = []
    for task in in_flight:
        if rng.random() < p:
            change = task.observe(JobObservation(JobPhase.SUCCEEDED), clock.now())
            if change is not None:
                changes.append(change)
    repo.apply(changes, epoch=epoch)


def run(
    url: str,
    *,
    rows: int,
    users: int,
    launches: int,
    latency: float,
    finish: float,
    queued: bool,
    batch: int = 500,
    newcomer_at: int | None = None,
) -> dict[str, Any]:
    engine = create_engine_for(url)
    seed(engine, rows, users)
    repo = SqlTaskRepository(engine)
    clock = FakeClock()
    epoch = repo.advance_epoch()
    settings = DispatchSettings(batch_size=batch, workers=8, max_tasks_per_tick=batch)
    queues = Queues((QUEUE,)) if queued else Queues()
    dispatch = DispatchTasks(
        repo,
        SlowRunner(latency),
        clock,
        FixedFence(epoch),
        settings,
        policy=SubmissionPolicy(queues=queues.names),
        queues=queues,
        queue_states=MemoryQueueStates(),
    )
    rng = random.Random(7)
    spent, done, ticks = 0.0, 0, 0
    order: list[int] = []  # user of each launch, in launch order
    waiting_users: list[set[int]] = []  # per launch window start: users with queued work
    newcomer = users + 1
    newcomer_tick: int | None = None
    newcomer_first: int | None = None
    while done < launches:
        if queued and len(order) // WINDOW >= len(waiting_users):
            waiting_users.append(set(repo.list_ready_users(limit=100_000)))
        if newcomer_at is not None and ticks == newcomer_at:
            for i in range(5):
                repo.add(NewTask(f"small-{i}", "default", INFO, newcomer), clock.now())
            newcomer_tick = ticks
        before = {t.id for t in repo.list_by_status([TaskStatus.PENDING], limit=100_000)}
        start = time.perf_counter()
        report = dispatch()
        spent += time.perf_counter() - start
        ticks += 1
        new = [t for t in repo.list_by_status([TaskStatus.PENDING], limit=100_000) if t.id not in before]
        new.sort(key=lambda t: t.started_at or clock.now())
        order.extend(t.user_id for t in new)
        if newcomer_tick is not None and newcomer_first is None and any(t.user_id == newcomer for t in new):
            newcomer_first = ticks - newcomer_tick
        done += report.launched
        if report.launched == 0 and not queued:
            break
        finish_some(repo, rng, finish, epoch, clock)
        clock.advance(1)
    repo.close()
    return {
        "launches": done,
        "ticks": ticks,
        "seconds": round(spent, 3),
        "per_second": round(done / spent, 1) if spent else None,
        "per_tick": round(done / ticks, 1),
        "order": order,
        "waiting_users": waiting_users,
        "newcomer_ticks": newcomer_first,
    }


def jain(counts: list[int]) -> float:
    total, squares = sum(counts), sum(c * c for c in counts)
    return total * total / (len(counts) * squares) if squares else 1.0


def fairness(order: list[int], waiting: list[set[int]]) -> list[float]:
    """Jain's index of each full window, over the users with queued work at its start. A window of
    1,000 launches cannot reach more than 1,000 users: the index is over the min(users, 1000)
    users served first by round-robin, i.e. over all of them when they number at most 1,000."""
    found = []
    for w in range(len(order) // WINDOW):
        launched = Counter(order[w * WINDOW : (w + 1) * WINDOW])
        users = waiting[w] if w < len(waiting) else set(launched)
        counts = [launched.get(u, 0) for u in users]
        if len(counts) > WINDOW:
            counts = sorted(counts, reverse=True)[:WINDOW]
        found.append(jain(counts))
    return found


def one_tick(url: str, rows: int, users: int) -> dict[str, Any]:
    """Statements and peak traced memory of one queue tick with `rows` waiting, the queue full but
    for 50 slots."""
    engine = create_engine_for(url)
    seed(engine, rows, users)
    repo = SqlTaskRepository(engine)
    clock = FakeClock()
    epoch = repo.advance_epoch()
    queues = Queues((QUEUE,))
    with engine.begin() as conn:  # 450 in flight
        conn.exec_driver_sql(
            "UPDATE task SET status = 'Pending', queue = 'batch' WHERE id IN "
            "(SELECT id FROM task ORDER BY id LIMIT 450)"
        )
    dispatch = DispatchTasks(
        repo,
        MemoryJobRunner(),
        clock,
        FixedFence(epoch),
        DispatchSettings(),
        policy=SubmissionPolicy(queues=queues.names),
        queues=queues,
        queue_states=MemoryQueueStates(),
    )
    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine, "before_cursor_execute", count)
    tracemalloc.start()
    launched = dispatch().launched
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    event.remove(engine, "before_cursor_execute", count)
    repo.close()
    return {"waiting": rows - 450, "launched": launched, "statements": statements, "peak_kib": round(peak / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="100,000 rows from 1,000 users (default: 20,000 from 200)")
    parser.add_argument("--mariadb", metavar="URL", help="a MariaDB database URL to use instead of a SQLite file")
    parser.add_argument("--latency", type=float, default=0.005, help="seconds per Job create (default 0.005)")
    parser.add_argument("--finish", type=float, default=0.2, help="chance an in-flight task ends per tick")
    args = parser.parse_args()
    rows, users = (100_000, 1_000) if args.full else (20_000, 200)
    launches = 20_000 if args.full else 5_000
    with tempfile.TemporaryDirectory(prefix="nightwatch-bench-queues-") as tmp:
        url = args.mariadb or f"sqlite:///{Path(tmp) / 'bench.db'}"
        init_database(url)
        mode = {"rows": rows, "users": users, "database": url.split(":")[0], "quick": not args.full}
        queued = run(
            url,
            rows=rows,
            users=users,
            launches=launches,
            latency=args.latency,
            finish=args.finish,
            queued=True,
            newcomer_at=10,
        )
        per_tick = max(1, round(queued["per_tick"]))
        plain = run(
            url,
            rows=rows,
            users=users,
            launches=queued["launches"],
            latency=args.latency,
            finish=args.finish,
            queued=False,
            batch=per_tick,
        )
        emit(
            "throughput",
            **mode,
            queue_per_second=queued["per_second"],
            no_queue_per_second=plain["per_second"],
            ratio=round(queued["per_second"] / plain["per_second"], 3),
            launches=queued["launches"],
            launches_per_tick=per_tick,
        )
        windows = fairness(queued["order"], queued["waiting_users"])
        emit(
            "fairness",
            **mode,
            windows=len(windows),
            jain_min=round(min(windows), 4),
            jain_mean=round(sum(windows) / len(windows), 4),
        )
        emit("newcomer", **mode, first_launch_after_ticks=queued["newcomer_ticks"])
        small, large = one_tick(url, 1_450, users), one_tick(url, rows, users)
        emit("flat", **mode, small=small, large=large)


if __name__ == "__main__":
    main()
