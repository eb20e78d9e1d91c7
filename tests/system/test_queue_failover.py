"""A queue limit across failovers, with real processes: three `nightwatch run` replicas (Redis lease,
MariaDB, fake Kubernetes) under `queues: {q: {max_in_flight: 20}}`. The leader is killed twice while
tasks flow; sampled throughout, the database never shows more than 20 of the queue's tasks in flight
(each successor counts them from the database, not from memory), and every task still succeeds."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.cluster import Cluster
from tests.support.waiting import wait_until

LIMIT = 20
TASKS = 200


@pytest.fixture(scope="module")
def cluster_options() -> dict[str, Any]:
    return {
        "ttl": 3.0,
        "retry": 0.5,
        "dispatch_interval": 0.3,
        "extra_env": {"NIGHTWATCH_QUEUES": json.dumps({"q": {"max_in_flight": LIMIT}})},
    }


@pytest.mark.timeout(300)
def test_a_queue_limit_holds_through_two_leader_kills(cluster: Cluster) -> None:
    assert cluster.engine is not None
    engine = cluster.engine
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        query = sa.text("SELECT COUNT(*) FROM task WHERE status IN ('Pending', 'Running') AND queue = 'q'")
        while not stop.wait(0.05):
            with engine.connect() as conn:
                peak = max(peak, int(conn.execute(query).scalar_one()))

    sampler = threading.Thread(target=sample, name="sampler", daemon=True)
    sampler.start()
    try:
        cluster.insert_tasks(TASKS)
        kills = 0
        while kills < 2 and cluster.status_counts().get("Normal", 0) > 0:
            time.sleep(0.5)
            leader = wait_until(cluster.leader, 30, what="a leader")
            leader.kill()
            kills += 1
            time.sleep(1.0)
            cluster.restart_dead()
            wait_until(cluster.leader, 30, what="a new leader")
        counts = cluster.wait_all_terminal(timeout=180)
    finally:
        stop.set()
        sampler.join(5)
    assert kills == 2, "the tasks ran out before the second kill"
    assert counts.get("Succeeded") == TASKS
    assert 0 < peak <= LIMIT, f"{peak} of queue q's tasks were in flight at once; the limit is {LIMIT}"
