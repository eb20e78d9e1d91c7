"""The promise every reliability test checks after its fault, in one place.

Every task submitted ends in exactly one terminal state, at most one Job is ever created for it, no task
is left Pending/Running without a Job, every failure says why, and no stale leader ever wrote a row.
`invariant_problems` returns human-readable problems (an empty list: the promise held), so a test can
`assert invariant_problems(cluster) == []` and read what broke in the assertion message.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from nightwatch.domain.names import job_name_for
from tests.support.cluster import Cluster, fencing_violations
from tests.support.waiting import wait_until

TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled"})
IN_FLIGHT = frozenset({"Pending", "Running"})
MAX_LISTED = 10
"""At most this many examples per kind of problem, so one broken run does not print 500 lines."""


@dataclass(frozen=True)
class TaskRow:
    id: int
    name: str
    namespace: str
    status: str
    job_name: str | None
    message: str | None
    attempt: int = 1

    @property
    def earlier_jobs(self) -> set[str]:
        """The Job names of this task's earlier attempts (retries, issue 18): left for cleanup, not orphans."""
        return {job_name_for(self.name, k) for k in range(1, self.attempt)}


def task_rows(cluster: Cluster) -> list[TaskRow]:
    assert cluster.engine is not None
    with cluster.engine.connect() as conn:
        return [
            TaskRow(int(r.id), str(r.name), str(r.namespace), str(r.status), r.job_name, r.message, int(r.attempt))
            for r in conn.exec_driver_sql(
                "SELECT id, name, namespace, status, job_name, message, attempt FROM task ORDER BY id"
            )
        ]


def _examples(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else "")


def invariant_problems(cluster: Cluster, *, lost_jobs: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """What broke the promise, or [] when every invariant holds.

    `lost_jobs`: Job names the test deleted behind nightwatch's back on purpose (they may be absent from
    the fake store; their tasks must still be terminal, and Failed with a message).
    Checks: every task terminal; every Job name answered 201 at most once; the Jobs in the fake store are
    exactly the Jobs of tasks that have a `job_name` (minus `lost_jobs`, and minus Cancelled tasks' Jobs,
    which cancel deletes); no task Pending/Running without a Job; every Failed task has a message; the
    audit trail shows no write out of epoch order, by two writers under one epoch, or by no replica.
    """
    assert cluster.store is not None
    rows = task_rows(cluster)
    problems: list[str] = []

    if len(rows) != cluster.inserted:
        problems.append(f"{len(rows)} task rows for {cluster.inserted} tasks inserted")
    not_terminal = [f"{r.name}={r.status}" for r in rows if r.status not in TERMINAL]
    if not_terminal:
        problems.append(f"{len(not_terminal)} tasks not terminal: {_examples(not_terminal)}")

    created = Counter(c.name for c in cluster.creations() if c.created)
    duplicated = [f"{name}x{n}" for name, n in created.items() if n > 1]
    if duplicated:
        problems.append(f"{len(duplicated)} Job names answered 201 more than once: {_examples(duplicated)}")

    with cluster.store.lock:
        stored = {name for (_, name) in cluster.store.jobs}
    expected = {r.job_name for r in rows if r.job_name and r.status != "Cancelled"} - set(lost_jobs)
    cancelled_jobs = {r.job_name for r in rows if r.job_name and r.status == "Cancelled"}
    earlier = {name for r in rows for name in r.earlier_jobs}
    orphans = sorted(stored - expected - cancelled_jobs - set(lost_jobs) - earlier)
    if orphans:
        problems.append(f"{len(orphans)} Jobs in the API server belong to no task's job_name: {_examples(orphans)}")
    absent = sorted(expected - stored)
    if absent:
        problems.append(f"{len(absent)} tasks name a Job the API server does not have: {_examples(absent)}")
    never_created = sorted(name for name in expected | set(lost_jobs) if created[name] == 0)
    if never_created:
        problems.append(f"{len(never_created)} task Jobs were never answered 201: {_examples(never_created)}")

    stuck = [
        f"{r.name}={r.status}"
        for r in rows
        if r.status in IN_FLIGHT and (not r.job_name or r.job_name not in stored or r.job_name in lost_jobs)
    ]
    if stuck:
        problems.append(f"{len(stuck)} tasks Pending/Running without a Job: {_examples(stuck)}")

    # At most one Job per attempt (the 201 count above), and no Job for an attempt the row never reached.
    attempts = {job_name_for(r.name, k): r for r in rows for k in range(1, r.attempt + 1)}
    beyond = sorted(name for name in created if name not in attempts and name not in set(lost_jobs))
    if beyond:
        problems.append(f"{len(beyond)} Jobs of attempts no row reached: {_examples(beyond)}")

    silent = [r.name for r in rows if r.status == "Failed" and not (r.message or "").strip()]
    if silent:
        problems.append(f"{len(silent)} Failed tasks without a message: {_examples(silent)}")

    fencing = fencing_violations(cluster.audit())
    if fencing:
        problems.append(f"{len(fencing)} fencing violations: {_examples(fencing)}")
    return problems


def outcome_problems(rows: list[TaskRow], should_fail: Callable[[TaskRow], bool]) -> list[str]:
    """Finished tasks whose outcome is not the one their Job called for: a fault (a crash, an API error)
    must never decide whether a task Succeeded or Failed. `should_fail`: True for a task whose Job fails
    (or was deleted); Cancelled and unfinished tasks are not judged here."""
    wrong = [
        f"{r.name}={r.status} ({r.message})"
        for r in rows
        if r.status in ("Succeeded", "Failed") and (r.status == "Failed") != should_fail(r)
    ]
    return [f"{len(wrong)} tasks ended against their Job: {_examples(wrong)}"] if wrong else []


def wait_all_terminal(cluster: Cluster, timeout: float = 90.0) -> dict[str, int]:
    """Wait until every inserted task is Succeeded, Failed or Cancelled; the status counts then."""

    def done() -> dict[str, int] | None:
        counts = cluster.status_counts()
        return counts if sum(counts.get(s, 0) for s in TERMINAL) == cluster.inserted else None

    try:
        return dict(wait_until(done, timeout, interval=0.5, what="every task to be terminal"))
    except AssertionError:
        raise AssertionError(f"tasks not all terminal: {cluster.status_counts()} of {cluster.inserted}") from None


def replica_problems(cluster: Cluster, *, killed_on_purpose: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Replicas that died without the test killing them (by current replica id)."""
    return [
        f"{r.replica_id} is not running (exit code {r.process.returncode if r.process else None})"
        for r in cluster.replicas
        if not r.alive and r.replica_id not in killed_on_purpose
    ]


def record_figures(test: str, figures: dict[str, object]) -> None:
    """Print a test's figures (seen with `pytest -s`); append them as one JSON line to the file named by
    $NIGHTWATCH_RELIABILITY_REPORT when it is set, so the docs can quote the last run."""
    line = json.dumps({"test": test, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **figures}, default=str)
    print(f"\n{test}: {line}")
    path = os.environ.get("NIGHTWATCH_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(line + "\n")
