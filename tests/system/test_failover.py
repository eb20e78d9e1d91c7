"""Failover with real processes: three `nightwatch run` replicas, three Redis masters, MariaDB, fake Kubernetes.

One cluster for the module (starting it costs seconds); every test brings it back to three running
replicas, feeds tasks while it injects its fault, and judges the whole recorded history so far:
one dispatcher at a time (the fake server's creation log against each replica's leadership log),
fenced database writes (an audit trigger records writer and epoch of every committed UPDATE),
and at the end every task Succeeded with exactly one Job each. 2,000 tasks flow over the module.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cluster import (
    Cluster,
    duplicate_problems,
    fencing_violations,
    handover,
    interleavings,
)
from tests.support.waiting import wait_until

TTL = 3.0
RETRY = 0.5
TICK = 0.3
TOLERANCE = 1.5
"""Slack for a loaded 2-core machine: process scheduling, the first tick after resume, the database."""
TOTAL_TASKS = 2000
DISPATCH_WORKERS = 8
"""The default `dispatch.workers`."""


@pytest.fixture(scope="module")
def cluster_options() -> dict[str, Any]:
    return {"ttl": TTL, "retry": RETRY, "dispatch_interval": TICK}


@pytest.fixture
def steady(cluster: Cluster) -> Iterator[Cluster]:
    """Three live replicas and a quorum of masters, one leader; afterwards, the history is judged."""
    for server in cluster.redis.servers:
        server.start()
    cluster.restart_dead()
    wait_until(cluster.leader, 15, what="a leader")
    yield cluster
    assert interleavings(cluster.creations(), cluster.events()) == []
    assert fencing_violations(cluster.audit()) == []


def test_exactly_one_replica_dispatches(steady: Cluster) -> None:
    started = time.time()
    with steady.feeding(rate_per_second=40):
        steady.insert_tasks(300)
        time.sleep(4)
    leaders = [r.is_leader() for r in steady.replicas]
    assert leaders.count(True) == 1 and leaders.count(False) == 2, leaders
    creators = {c.replica for c in steady.creations(started) if c.created}
    assert creators == {next(r.replica_id for r, lead in zip(steady.replicas, leaders, strict=True) if lead)}
    steady.wait_all_terminal()


def test_sigkill_of_the_leader(steady: Cluster) -> None:
    with steady.feeding(rate_per_second=40):
        result = handover(steady, signal.SIGKILL)
    print(f"\nSIGKILL failover: {result}")
    assert result["seconds"] <= TTL + RETRY + TICK + TOLERANCE, result


def test_sigterm_of_the_leader_hands_over_at_once(steady: Cluster) -> None:
    with steady.feeding(rate_per_second=40):
        result = handover(steady, signal.SIGTERM)
    print(f"\nSIGTERM handover: {result}")
    assert result["seconds"] <= RETRY + TICK + TOLERANCE, result
    stopped = next(r for r in steady.replicas if r.ids[-1] == result["old"])
    assert any(
        "stepping down: shutting down" in e["message"] for e in stopped.events() if e["replica"] == result["old"]
    )


def test_a_leader_frozen_past_its_lease_is_fenced(steady: Cluster) -> None:
    old = wait_until(steady.leader, 10, what="a leader")
    old_id = old.replica_id
    with steady.feeding(rate_per_second=40):
        # Freeze it in the middle of a big dispatch tick: launches queued in its worker pool.
        steady.insert_tasks(400)
        wait_until(lambda: steady.first_creation(time.time() - 0.5, by=old_id), 10, interval=0.01, what="dispatch")
        frozen_at = time.time()
        old.signal(signal.SIGSTOP)
        successor = wait_until(
            lambda: steady.first_creation(frozen_at, not_by=old_id), TTL + RETRY + TICK + 10, what="a successor"
        )
        time.sleep(max(0.0, frozen_at + TTL + 1.0 - time.time()))
        resumed_at = time.time()
        old.signal(signal.SIGCONT)
        wait_until(lambda: old.is_leader() is False, 5, interval=0.05, what=f"{old_id} to report nightwatch_leader 0")
        time.sleep(2.0)  # room for anything the old leader had queued to show up
    print(f"\nfrozen {old_id} at {frozen_at:.3f}; {successor.replica} took over after {successor.at - frozen_at:.3f} s")
    # A worker that had passed its fence check when the process froze sends its one request on resume
    # (check-then-act: the API server has no fencing). At most one per dispatch worker, at once, and
    # idempotent: the successor created those Jobs long ago, so they answer 409 and create nothing.
    late = [c for c in steady.creations(resumed_at) if c.replica == old_id]
    print(
        f"create calls by {old_id} after it resumed: {[(c.name, round(c.at - resumed_at, 3), c.created) for c in late]}"
    )
    assert len(late) <= DISPATCH_WORKERS, f"{old_id} called create {len(late)} times after it resumed"
    assert all(c.at - resumed_at < 1.0 for c in late), f"{old_id} went on dispatching after it resumed: {late}"
    assert not any(c.created for c in late), f"{old_id} created a Job after it resumed: {late}"
    late_writes = [row for row in steady.audit() if row.writer == old_id and row.at >= resumed_at]
    assert late_writes == [], f"{old_id} wrote {len(late_writes)} rows after it resumed"
    # It steps down from the leadership it held when it was frozen: on resume as a rule, but on a loaded
    # machine (CI with other work) its renewal can already have failed in the moment before SIGSTOP landed.
    mine = [e for e in old.events() if e["replica"] == old_id]
    gained = max(e["at"] for e in mine if e["message"].startswith("became the leader"))
    assert any(e["message"].startswith("stepping down") and e["at"] >= gained for e in mine), (
        f"{old_id} did not log that it stepped down"
    )
    assert steady.leader() is not old


def test_redis_masters_lost_and_back(steady: Cluster) -> None:
    leader = wait_until(steady.leader, 10, what="a leader")
    with steady.feeding(rate_per_second=30):
        # One master down: the quorum (2 of 3) holds; the same leader goes on dispatching.
        steady.redis[0].kill()
        time.sleep(TTL)
        assert steady.leader() is leader
        assert steady.first_creation(time.time() - 1.5, by=leader.replica_id) is not None
        # Two down: no quorum; the leader steps down within the TTL and nobody dispatches.
        steady.redis[1].kill()
        lost_at = time.time()
        wait_until(lambda: leader.is_leader() is False, TTL, interval=0.05, what="the leader to step down")
        stepped_down = time.time()
        print(f"\nno quorum: {leader.replica_id} stepped down after {stepped_down - lost_at:.3f} s")
        time.sleep(TTL)  # Redlock: wait one TTL before a master without persistence comes back
        quiet = steady.creations(stepped_down + 0.1)
        assert [c for c in quiet if c.at < time.time()] == [], "Jobs were created without a Redis quorum"
        assert all(r.is_leader() is False for r in steady.replicas)
        back_at = time.time()
        steady.redis[0].start()
        steady.redis[1].start()
        resumed = wait_until(
            lambda: steady.first_creation(back_at), TTL + RETRY + TICK + TOLERANCE, interval=0.05, what="dispatch"
        )
    print(f"quorum back: {resumed.replica} dispatched after {resumed.at - back_at:.3f} s")
    quiet = [c for c in steady.creations(stepped_down + 0.1) if c.at < back_at]
    assert quiet == [], f"{len(quiet)} Jobs created while there was no Redis quorum"


def test_every_task_succeeds_once(steady: Cluster) -> None:
    with steady.feeding(rate_per_second=40):
        while steady.inserted < TOTAL_TASKS - 100:
            steady.insert_tasks(min(100, TOTAL_TASKS - 100 - steady.inserted))
            time.sleep(0.1)
        time.sleep(1)
    steady.insert_tasks(max(0, TOTAL_TASKS - steady.inserted))
    counts = steady.wait_all_terminal(timeout=60)
    assert counts == {"Succeeded": steady.inserted} and steady.inserted >= TOTAL_TASKS
    assert duplicate_problems(steady) == []
    leaders = [r.is_leader() for r in steady.replicas]
    assert leaders.count(True) == 1, leaders
    print(f"\n{steady.inserted} tasks, {len(steady.creations())} create calls, {len(steady.audit())} row writes")


def test_a_leader_frozen_with_an_open_watch_writes_nothing_it_heard_after_thaw(steady: Cluster) -> None:
    """The watch is on: while frozen, the successor finishes the old leader's tasks and their Job events
    pile up in its open stream's socket. On thaw it reads them, but it steps down and writes none of them,
    and its watch streams end."""
    old = wait_until(steady.leader, 10, what="a leader")
    old_id = old.replica_id
    assert steady.fake is not None
    journal = steady.fake.store.watch
    agent = f"nightwatch/{old_id}"
    with steady.feeding(rate_per_second=40):
        steady.insert_tasks(200)
        wait_until(lambda: journal.open_by.get(agent, 0) > 0, 10, interval=0.05, what=f"a watch by {old_id}")
        frozen_at = time.time()
        old.signal(signal.SIGSTOP)
        wait_until(lambda: steady.first_creation(frozen_at, not_by=old_id), TTL + RETRY + TICK + 10, what="a successor")
        time.sleep(max(0.0, frozen_at + TTL + 2.0 - time.time()))  # Jobs finish meanwhile: events queue up
        resumed_at = time.time()
        old.signal(signal.SIGCONT)
        wait_until(lambda: old.is_leader() is False, 5, interval=0.05, what=f"{old_id} to report nightwatch_leader 0")
        wait_until(lambda: journal.open_by.get(agent, 0) == 0, 5, interval=0.05, what=f"{old_id}'s watch to end")
        time.sleep(2.0)  # room for anything it had queued to show up
    late_writes = [row for row in steady.audit() if row.writer == old_id and row.at >= resumed_at]
    assert late_writes == [], f"{old_id} wrote {len(late_writes)} rows after it resumed"
    assert journal.open_by.get(agent, 0) == 0, f"{old_id} watches again as a standby"
    steady.wait_all_terminal()
