"""A schedule firing every 2 seconds (a seconds field) while the leader is SIGKILLed around its fire
times, again and again: two `nightwatch run` replicas over three Redis masters, MariaDB and the fake
Kubernetes API server. Afterwards every slot from the schedule's creation to its `last_slot_at` has
exactly one task or is counted as missed (none is, with catch_up 100 and handovers of ~2 s), no two
tasks share a slot, and the schedule's counters add up to the slots the calendar names."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from nightwatch.adapters.apscheduler import ApschedulerCalendar
from tests.support.cluster import Cluster
from tests.support.waiting import wait_until
from tests.system.invariants import record_figures

pytestmark = pytest.mark.timeout(300)

CRON = "*/2 * * * * *"
KILLS = 6


@pytest.fixture(scope="module")
def cluster_options() -> dict[str, Any]:
    return {
        "replicas": 2,
        "ttl": 1.5,
        "retry": 0.3,
        "extra_env": {"NIGHTWATCH_WATCHERS__SPAWN__INTERVAL_SECONDS": "0.2"},
    }


def schedule_row(cluster: Cluster) -> sa.Row[Any]:
    assert cluster.engine is not None
    with cluster.engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM schedule WHERE name = 'every2s'")).one()


def slot_tasks(cluster: Cluster, schedule_id: int) -> list[datetime]:
    assert cluster.engine is not None
    with cluster.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT slot_at FROM task WHERE schedule_id = :s"), {"s": schedule_id}).all()
    return [r.slot_at.replace(tzinfo=UTC) for r in rows]


def test_sigkill_of_the_leader_around_fire_times_runs_every_slot_once(cluster: Cluster) -> None:
    rng = random.Random(int(os.environ.get("NIGHTWATCH_CRASH_SEED", str(random.randrange(1 << 30)))))
    cluster.replicas[0].cli(
        "schedule", "create", "--name", "every2s", "--cron", CRON, "--info", '{"image":"busybox"}', "--catch-up", "100"
    )
    created = schedule_row(cluster)
    for _ in range(KILLS):
        leader = wait_until(cluster.leader, 30, interval=0.1, what="a leader")
        # Just before, at, or just after an even second: the moments the spawner writes.
        now = time.time()
        next_slot = (int(now) // 2 + 1) * 2
        time.sleep(max(0.0, next_slot - now + rng.uniform(-0.15, 0.25)))
        assert leader.process is not None
        os.kill(leader.pid, signal.SIGKILL)
        leader.process.wait(10)
        leader.kill()
        leader.start()
        time.sleep(rng.uniform(0.5, 2.0))
    # Let the successor catch up past a moment after the last kill.
    horizon = datetime.now(UTC)
    wait_until(lambda: schedule_row(cluster).last_slot_at.replace(tzinfo=UTC) >= horizon, 30, what="catch-up")
    # Paused, the schedule stands still (a step planned before the pause is refused by its version),
    # so its row and its tasks are read in step.
    cluster.replicas[0].cli("schedule", "pause", "every2s")

    row = schedule_row(cluster)
    # From its creation: the spawner may have fired a slot before the row above was read.
    start = created.created_at.replace(tzinfo=UTC)
    end = row.last_slot_at.replace(tzinfo=UTC)
    expected = ApschedulerCalendar().slots(CRON, "UTC", start, until=end, limit=100_000)
    tasks = slot_tasks(cluster, int(row.id))
    per_slot = Counter(tasks)
    figures = {
        "slots": len(expected),
        "tasks": len(tasks),
        "fired": int(row.fired),
        "missed": int(row.missed),
        "skipped": int(row.skipped),
        "kills": KILLS,
    }
    record_figures("schedule_failover", figures)
    assert [s for s, n in per_slot.items() if n > 1] == []  # no two tasks share a slot
    assert set(tasks) <= set(expected)
    assert int(row.fired) + int(row.missed) + int(row.skipped) == len(expected)
    assert int(row.fired) == len(tasks)
    # catch_up 100 covers any handover: every slot ran.
    assert sorted(tasks) == expected and int(row.missed) == 0
