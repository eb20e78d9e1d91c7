"""Kubernetes API faults while tasks flow: 500s, 429s, requests hanging past the client's timeout, and
Jobs deleted behind nightwatch's back.

Two `nightwatch run` replicas with a 2 s Kubernetes request timeout, over three Redis masters, MariaDB
and the fake API server. Each outage is a time window of the fake server (every request fails or hangs
while it lasts) opened while tasks are being inserted and dispatched; the windows last 10 s in CI and
30 s under `--long` (30 s windows would make this file take ~4 minutes). After each, the tasks must
all end, and the shared invariants hold (tests/system/invariants.py): every task terminal, at most one
201 per Job name, the fake's Jobs are exactly the tasks' Jobs, nothing in flight without a Job, every
Failed task says why, fenced writes. And: a fault never fails a task (the only Failed tasks are those
whose Job failed, or whose Job was deleted), the leader neither crashes nor steps down, and it ticks
again once the API server is back. A create that hung may have been stored after the client gave up,
as a slow real server would: the next attempt must adopt it (409 + our label), never duplicate it.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cluster import Cluster, Replica, interleavings
from tests.support.waiting import wait_until
from tests.system.invariants import (
    TaskRow,
    invariant_problems,
    outcome_problems,
    record_figures,
    replica_problems,
    task_rows,
    wait_all_terminal,
)

pytestmark = pytest.mark.timeout(300)

REQUEST_TIMEOUT = 2.0
"""NIGHTWATCH_RUNNER__REQUEST_TIMEOUT_SECONDS of the replicas; a hang lasts longer than this."""
WINDOW, LONG_WINDOW = 10.0, 30.0
FAIL_EVERY = 10
"""Every 10th task runs the fake's failing image: the only tasks allowed to end Failed (besides lost Jobs)."""
DISPATCH_WORKERS = 8
"""The default `dispatch.workers`: at most this many creates were already past the fake's fault check
when a window opened, and may still answer 201 inside it."""
LOST_MESSAGE = re.compile(
    r"^JobMissing: the Job was deleted before its outcome was read; outcome unknown "
    r"\[infrastructure failure; attempt 1 of 1\]$"
)


def task_info(n: int) -> str:
    if n % FAIL_EVERY == 0:
        return json.dumps({"image": "fail", "command": ["true"]})
    return json.dumps({"image": "busybox", "command": ["sleep", f"{0.2 + (n * 7 % 9) / 10:.1f}"]})


def sequence(name: str) -> int:
    return int(name.lstrip("t"))


@pytest.fixture(scope="module")
def cluster_options() -> dict[str, Any]:
    # No infrastructure retry: these tests check that a Job deleted behind nightwatch's back ends its
    # task Failed saying so (issue 18's default would give it another attempt instead).
    return {
        "replicas": 2,
        "extra_env": {
            "NIGHTWATCH_RUNNER__REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT),
            "NIGHTWATCH_RETRY__DEFAULT": '{"infrastructureAttempts": 0}',
        },
    }


@pytest.fixture
def steady(cluster: Cluster) -> Iterator[Cluster]:
    """Both replicas running, no fault left over, one leader; afterwards the whole history is judged."""
    assert cluster.fake is not None
    cluster.fake.faults.clear()
    cluster.fake.set_controller("timed", active_after_ms=50.0, complete_after_ms=300.0)
    cluster.restart_dead()
    wait_until(cluster.leader, 15, what="a leader")
    yield cluster
    cluster.fake.faults.clear()
    assert interleavings(cluster.creations(), cluster.events()) == []


def wrongly_failed(rows: list[TaskRow], lost_jobs: set[str], *, other_info: set[str] = frozenset()) -> list[str]:
    """Tasks Failed without a failing or lost Job, or Succeeded with one. `other_info`: names of tasks
    inserted without `task_info` (their test judges them)."""
    return outcome_problems(
        [r for r in rows if r.name not in other_info],
        lambda r: sequence(r.name) % FAIL_EVERY == 0 or (r.job_name or "") in lost_jobs,
    )


def ticking(leader: Replica, timeout: float = 20.0) -> None:
    """The leader's dispatch and sync watchers tick again (after an outage)."""
    before = leader.ticks()
    wait_until(
        lambda: all(leader.ticks().get(w, 0) > before.get(w, 0) for w in ("dispatch", "sync")),
        timeout,
        interval=0.2,
        what=f"{leader.replica_id} to go on ticking",
    )


def through_an_outage(cluster: Cluster, window: float, **fault: Any) -> dict[str, Any]:
    """Open a fault window of the fake while tasks flow; then wait for recovery and every task's end.

    Returns figures; asserts what holds for every kind of outage."""
    assert cluster.fake is not None
    leader = wait_until(cluster.leader, 15, what="a leader")
    started = time.time()
    fired_before = cluster.fake.faults.fired
    acquisitions = leader.metrics().get("nightwatch_lease_acquisitions_total")
    with cluster.feeding(rate_per_second=10, info=task_info):
        cluster.insert_tasks(40, info=task_info)
        wait_until(
            lambda: cluster.first_creation(started, by=leader.replica_id), 15, interval=0.05, what="dispatch to start"
        )
        # The window is the time between `opened` and `closed`, surely inside the fake's own window:
        # opened after the inject, closed `window` after a time taken before it.
        injecting = time.time()
        cluster.fake.inject(seconds=window, **fault)
        opened, closed = time.time(), injecting + window
        cluster.insert_tasks(100, info=task_info)  # a batch that meets the outage
        time.sleep(max(0.0, closed - time.time()))
        recovered = wait_until(lambda: cluster.first_creation(closed + 0.2), 60, interval=0.05, what="a create after")
        time.sleep(1.0)
    counts = wait_all_terminal(cluster, timeout=120)
    ticking(leader)
    during = [c for c in cluster.creations(opened) if c.at <= closed]
    after = cluster.creations(closed)
    errors = leader.tick_errors()
    figures = {
        "window_seconds": window,
        "fault": fault,
        "tasks_total": cluster.inserted,
        "statuses": counts,
        "faults_fired": cluster.fake.faults.fired - fired_before,
        "creates_201_in_window": sum(1 for c in during if c.created),
        "creates_409_in_window": sum(1 for c in during if not c.created),
        "creates_409_after_window": sum(1 for c in after if not c.created),
        "first_create_after_window_seconds": round(recovered.at - closed, 3),
        "leader_tick_errors": errors,
        "seconds": round(time.time() - started, 1),
    }
    rows = task_rows(cluster)
    assert invariant_problems(cluster) == []
    assert wrongly_failed(rows, set()) == [], "an API fault decided a task's outcome"
    assert replica_problems(cluster) == []
    assert cluster.leader() is leader, "the leader changed during the outage"
    assert leader.metrics().get("nightwatch_lease_acquisitions_total") == acquisitions, "the leader stepped down"
    return figures


def test_api_server_answering_500(steady: Cluster, long_run: bool) -> None:
    figures = through_an_outage(steady, LONG_WINDOW if long_run else WINDOW, kind="500")
    record_figures("api_faults_500", figures)
    assert figures["faults_fired"] > 0
    assert figures["creates_201_in_window"] <= DISPATCH_WORKERS, "Jobs were created while every request answered 500"


def test_api_server_answering_429_with_retry_after(steady: Cluster, long_run: bool) -> None:
    figures = through_an_outage(steady, LONG_WINDOW if long_run else WINDOW, kind="429", retry_after=2)
    record_figures("api_faults_429", figures)
    assert figures["faults_fired"] > 0
    assert figures["creates_201_in_window"] <= DISPATCH_WORKERS, "Jobs were created while every request answered 429"


def test_api_server_hanging_past_the_request_timeout(steady: Cluster, long_run: bool) -> None:
    """Every request hangs REQUEST_TIMEOUT + 1 s and is then served: creates land after the client gave up."""
    figures = through_an_outage(
        steady, LONG_WINDOW if long_run else WINDOW, kind="delay", delay_seconds=REQUEST_TIMEOUT + 1.0
    )
    record_figures("api_faults_hang", figures)
    assert figures["faults_fired"] > 0
    # Creates the client timed out on were stored anyway; their retries found them (409) and adopted
    # them. invariant_problems already proved that no Job name was answered 201 twice.
    assert figures["creates_409_in_window"] + figures["creates_409_after_window"] > 0


def test_jobs_deleted_behind_nightwatchs_back_fail_their_tasks(steady: Cluster) -> None:
    """Jobs deleted by someone else while their task is Pending, and while it is Running: the task ends
    Failed with a message saying the Job is gone; every other task is untouched."""
    cluster = steady
    assert cluster.fake is not None and cluster.store is not None
    store = cluster.store
    # Jobs stay pending 3 s (the task stays Pending), then run 6 s: time to delete them in either state.
    cluster.fake.set_controller("timed", active_after_ms=3000.0, complete_after_ms=300.0)
    long_job = json.dumps({"image": "busybox", "command": ["sleep", "6"]})
    started = time.time()
    lost: dict[str, str] = {}

    def ours(status: str) -> list[TaskRow]:
        return [r for r in task_rows(cluster) if r.name in names and r.status == status and r.job_name]

    def delete(rows: list[TaskRow], status: str) -> None:
        for r in rows:
            assert r.job_name is not None
            store.delete_job(r.namespace, r.job_name, "Background")
            lost[r.job_name] = status

    try:
        with cluster.feeding(rate_per_second=5, info=task_info):
            first = cluster.inserted
            cluster.insert_tasks(30, info=long_job)
            names = {f"t{n:05d}" for n in range(first, first + 30)}
            pending = wait_until(lambda: len(rows := ours("Pending")) == 30 and rows, 20, what="30 Pending tasks")
            delete(pending[:10], "Pending")
            running = wait_until(lambda: len(rows := ours("Running")) == 20 and rows, 20, what="20 Running tasks")
            delete(running[:10], "Running")
            time.sleep(1.0)
        counts = wait_all_terminal(cluster, timeout=120)
    finally:
        cluster.fake.set_controller("timed", active_after_ms=50.0, complete_after_ms=300.0)

    rows = {r.name: r for r in task_rows(cluster)}
    ended = Counter(rows[n].status for n in names)
    messages = sorted({rows[n].message or "" for n in names if rows[n].job_name in lost})
    record_figures(
        "api_faults_lost_jobs",
        {
            "deleted_while": dict(Counter(lost.values())),
            "ended": dict(ended),
            "statuses": counts,
            "messages": messages[:2],
            "seconds": round(time.time() - started, 1),
        },
    )
    assert ended == {"Failed": 20, "Succeeded": 10}
    for name in names:
        row = rows[name]
        if row.job_name in lost:
            assert row.status == "Failed" and LOST_MESSAGE.search(row.message or ""), (name, row.message)
    assert invariant_problems(cluster, lost_jobs=set(lost)) == []
    assert wrongly_failed(list(rows.values()), set(lost), other_info=names) == []
    assert replica_problems(cluster) == []
    leader = wait_until(cluster.leader, 15, what="a leader")
    ticking(leader)
