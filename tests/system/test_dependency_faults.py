"""Dependency faults while tasks flow: MariaDB stopped and restarted; all Redis masters stopped and
restarted; each Redis master in turn stopped and restarted (a rolling restart).

One cluster for the module (three `nightwatch run` replicas, three private redis-servers, the fake
Kubernetes API server) on a private mariadbd (tests/mariadb_server.py) that the tests may stop: the
shared MariaDB is never touched. Each test feeds tasks, injects its fault, lets the dependency come
back and then checks the promise (tests/system/invariants.py): every task terminal, at most one 201
per Job, no task in flight without a Job, no stale or unfenced write, one dispatcher at a time, and
every replica still running the process it started with (recovery needs no restart).

The outages are short in CI (MariaDB 8 s, all Redis masters 5 s, 3 s per master in the rolling
restart); `--long` runs the issue's 20 s outages. Each test prints its figures and, with
NIGHTWATCH_RELIABILITY_REPORT set, appends them to that file as one JSON line.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.cluster import TASK_INFO, Cluster, interleavings
from tests.support.mariadb_server import PrivateMariaDB, private_mariadb
from tests.support.waiting import wait_until
from tests.system.invariants import invariant_problems, replica_problems, wait_all_terminal

pytestmark = pytest.mark.timeout(600)

TTL = 3.0
RETRY = 0.5
TICK = 0.3
TOLERANCE = 2.0
"""Slack for a loaded 2-core machine: process scheduling, the first tick after a fault, the database."""
FEED_RATE = 20.0
"""Tasks per second while a test runs."""
BURST = 600
"""Tasks inserted at once just before the database stops."""
DB_RETRY_SECONDS = 0.2 + 0.4 + 0.8
"""The SQL adapter's default retries (4 attempts) of a refused connection: how long a failing call lasts."""


def task_name(n: int) -> str:
    """The name `Cluster.insert_tasks` gives its n-th task (checked at module start: see `cluster`)."""
    return f"t{n:05d}"


class TolerantFeeder:
    """Inserts tasks like a careful user while the database may be down.

    A batch whose INSERT fails is kept and inserted again on the next round, until it commits; the
    retry is an INSERT IGNORE because a COMMIT cut by the outage may have gone through, and the task
    names are unique. So `cluster.inserted` (which counts a batch when it is handed out) equals the
    number of committed rows once `flush()` returns.
    """

    def __init__(self, cluster: Cluster, rate_per_second: float = FEED_RATE, batch: int = 2) -> None:
        self.cluster = cluster
        self.interval = batch / rate_per_second
        self.batch = batch
        self.failed_attempts = 0
        self._backlog: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="tolerant-feeder", daemon=True)
        self._errors: list[BaseException] = []

    def _feed(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                self._round()
        except BaseException as exc:  # surfaced by stop()
            self._errors.append(exc)

    def _round(self) -> None:
        if self._backlog:
            try:
                self._insert_again(self._backlog)
                self._backlog = []
            except sa.exc.OperationalError:
                self.failed_attempts += 1
                return
        first = self.cluster.inserted
        try:
            self.cluster.insert_tasks(self.batch)
        except sa.exc.OperationalError:
            self.failed_attempts += 1
            self._backlog = list(range(first, first + self.batch))

    def _insert_again(self, numbers: list[int]) -> None:
        assert self.cluster.engine is not None
        rows = [{"name": task_name(n), "info": TASK_INFO} for n in numbers]
        with self.cluster.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT IGNORE INTO task (name, namespace, info, status) VALUES (:name, 'default', :info, 'Normal')"
                ),
                rows,
            )

    def start(self) -> TolerantFeeder:
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop feeding and insert whatever is still owed (the database must be up by now)."""
        self._stop.set()
        self._thread.join(30)
        if self._errors:
            raise self._errors[0]
        if self._backlog:
            wait_until(self._flush_backlog, timeout, interval=0.5, what="the feeder's failed inserts to commit")

    def _flush_backlog(self) -> bool:
        try:
            self._insert_again(self._backlog)
        except sa.exc.OperationalError:
            return False
        self._backlog = []
        return True


@contextmanager
def feeding(cluster: Cluster, rate_per_second: float = FEED_RATE) -> Iterator[TolerantFeeder]:
    feeder = TolerantFeeder(cluster, rate_per_second).start()
    try:
        yield feeder
    finally:
        feeder.stop()


def record(figures: dict[str, Any]) -> None:
    """Print the figures; append them as one JSON line to $NIGHTWATCH_RELIABILITY_REPORT if set."""
    print(f"\n{json.dumps(figures)}")
    path = os.environ.get("NIGHTWATCH_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(json.dumps(figures) + "\n")


# -- the cluster ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMariaDB]:
    with private_mariadb(Path(tmp_path_factory.mktemp("mariadb"))) as server:
        yield server


@pytest.fixture(scope="module")
def cluster_options(mariadb: PrivateMariaDB) -> dict[str, Any]:
    return {"ttl": TTL, "retry": RETRY, "dispatch_interval": TICK, "server_url": mariadb.server_url}


@pytest.fixture(scope="module", autouse=True)
def tasks_named_like_task_name(cluster: Cluster) -> None:
    """Once, on the fresh cluster: Cluster.insert_tasks names its rows as task_name() does."""
    cluster.insert_tasks(1)
    assert cluster.engine is not None
    with cluster.engine.connect() as conn:
        names = [str(n) for (n,) in conn.exec_driver_sql("SELECT name FROM task")]
    assert names == [task_name(0)], f"Cluster.insert_tasks names tasks {names}, not like task_name()"


@pytest.fixture
def steady(cluster: Cluster, mariadb: PrivateMariaDB) -> Iterator[Cluster]:
    """Every dependency up, three live replicas, one leader; afterwards every dependency up again."""
    mariadb.start()
    for server in cluster.redis.servers:
        server.start()
    cluster.restart_dead()
    wait_until(cluster.leader, 20, what="a leader")
    yield cluster
    mariadb.start()  # a failed test must not leave the next one without its database
    for server in cluster.redis.servers:
        server.start()


def replica_ids(cluster: Cluster) -> dict[str, str]:
    return {r.name: r.replica_id for r in cluster.replicas}


def check_promise(cluster: Cluster, generations: dict[str, str]) -> dict[str, int]:
    """Wait for every task to be terminal, then assert the whole promise; the final status counts."""
    counts = wait_all_terminal(cluster, timeout=120)
    assert invariant_problems(cluster) == []
    assert replica_problems(cluster) == []
    assert replica_ids(cluster) == generations, "a replica was restarted: recovery needed a new process"
    assert interleavings(cluster.creations(), cluster.events()) == []
    return counts


def ready_codes(cluster: Cluster) -> list[int]:
    """Every replica's /readyz status, asked in parallel (a check waits out the adapter's DB retries)."""
    with ThreadPoolExecutor(len(cluster.replicas)) as pool:
        return list(pool.map(lambda r: r.http("/readyz")[0], cluster.replicas))


def duplicates(cluster: Cluster) -> int:
    created = [c.name for c in cluster.creations() if c.created]
    return len(created) - len(set(created))


# -- MariaDB ----------------------------------------------------------------------------------------
def test_mariadb_stopped_and_restarted(steady: Cluster, mariadb: PrivateMariaDB, long_run: bool) -> None:
    outage = 20.0 if long_run else 8.0
    generations = replica_ids(steady)
    leader = wait_until(steady.leader, 10, what="a leader")
    leader_id = leader.replica_id
    assert ready_codes(steady) == [200, 200, 200]
    with feeding(steady) as feeder:
        wait_until(lambda: steady.first_creation(time.time() - 1.0, by=leader_id), 15, what="dispatch to flow")
        # A burst, so the database goes away in the middle of a dispatch tick: Jobs created whose rows
        # cannot be written (the next tick after the outage must adopt them, not create them again).
        burst_at = time.time()
        steady.insert_tasks(BURST)
        wait_until(lambda: len(steady.creations(burst_at)) >= BURST // 10, 30, interval=0.01, what="the burst to start")
        down_at = time.time()
        mariadb.stop()
        stopped_at = time.time()
        not_ready = wait_until(
            lambda: all(code == 503 for code in ready_codes(steady)),
            DB_RETRY_SECONDS * 3 + 10,
            interval=0.2,
            what="every replica to report not ready",
        )
        not_ready_after = time.time() - down_at
        leader_during = steady.leader()
        alive_during = [r.replica_id for r in steady.replicas if r.alive]
        time.sleep(max(0.0, down_at + outage - time.time()))
        alive_at_end = [r.replica_id for r in steady.replicas if r.alive]
        started_again_at = time.time()
        mariadb.start()
        up_at = time.time()
        assert steady.engine is not None
        steady.engine.dispose()  # the test's own pool holds connections the restart killed
        resumed = wait_until(
            lambda: steady.first_creation(up_at), 30, interval=0.05, what="a Job created after restart"
        )
        ready_again = wait_until(
            lambda: ready_codes(steady) == [200, 200, 200], 30, interval=0.2, what="every replica ready"
        )
        ready_after = time.time() - up_at
        time.sleep(2.0)
    counts = check_promise(steady, generations)

    assert not_ready and ready_again
    assert alive_during == alive_at_end == [r.replica_id for r in steady.replicas], "a replica died without its DB"
    # Jobs created while the database was down: only launches already in flight when it stopped (their
    # rows could not be written: the next tick adopts those Jobs). Nothing new was read, so nothing
    # else may have been created once the in-flight tick had failed.
    settle = DB_RETRY_SECONDS + TICK + TOLERANCE + 2.0
    during = [c for c in steady.creations(down_at) if c.at < started_again_at]
    late = [c for c in during if c.at > stopped_at + settle]
    assert late == [], f"Jobs created {settle:.1f} s into the database outage: {late[:5]}"
    leader_events = [e for e in leader.events() if e["replica"] == leader_id and down_at <= e["at"] < up_at]
    warned = [e["message"] for e in leader_events if e["level"] == "WARNING" and "database unavailable" in e["message"]]
    assert warned, f"{leader_id} logged no clear warning while the database was down: {leader_events[-5:]}"
    # Logged as an outage (a warning per watcher when it starts, a reminder a minute), not as a flood.
    noise = [e["message"] for e in leader_events if e["level"] == "WARNING"]
    assert len(noise) <= 3 * (2 + outage / 60) + 5, f"{len(noise)} warnings in {outage:.0f} s: {noise[:20]}"
    back = [e["message"] for e in leader.events() if e["replica"] == leader_id and e["at"] >= up_at]
    assert any("work again after" in m for m in back), f"{leader_id} did not log that its ticks work again"
    errors = [e for e in steady.events() if e["level"] in ("ERROR", "CRITICAL") and down_at <= e["at"]]
    # SQLAlchemy's pool logs at ERROR when it cannot roll back a connection the server dropped; that is
    # the library's, expected in an outage. nightwatch's own code must not report an outage as an error.
    crashes = [e for e in errors if e["logger"].startswith("nightwatch")]
    figures = {
        "test": "mariadb_outage",
        "outage_seconds": round(up_at - down_at, 3),
        "recover_seconds": round(resumed.at - up_at, 3),
        "not_ready_after_seconds": round(not_ready_after, 3),
        "ready_after_seconds": round(ready_after, 3),
        "tasks": steady.inserted,
        "failed_inserts": feeder.failed_attempts,
        "stop_seconds": round(stopped_at - down_at, 3),
        "jobs_created_during_outage": len([c for c in during if c.created]),
        "last_create_into_outage_seconds": round(max((c.at for c in during), default=down_at) - down_at, 3),
        "adopted_after_outage": len([c for c in steady.creations(up_at) if not c.created]),
        "duplicates": duplicates(steady),
        "leader_before": leader_id,
        "leader_during": leader_during.replica_id if leader_during else None,
        "leader_warnings_during_outage": len(noise),
        "errors_logged": len(crashes),
        "library_errors_logged": len(errors) - len(crashes),
        "counts": counts,
    }
    record(figures)
    assert crashes == [], f"errors logged after the database stopped: {[e['message'] for e in crashes[:5]]}"


# -- Redis ------------------------------------------------------------------------------------------
def leader_ids(cluster: Cluster) -> list[str]:
    """Replica ids whose /metrics say leader right now (asked in parallel)."""
    with ThreadPoolExecutor(len(cluster.replicas)) as pool:
        answers = list(pool.map(lambda r: r.is_leader(), cluster.replicas))
    return [r.replica_id for r, lead in zip(cluster.replicas, answers, strict=True) if lead]


def created_between(cluster: Cluster, start: float, end: float) -> bool:
    first = cluster.first_creation(start)
    return first is not None and first.at < end


def test_all_redis_masters_stopped_and_restarted(steady: Cluster, long_run: bool) -> None:
    outage = 20.0 if long_run else 5.0
    assert outage > TTL, "Redlock: masters without persistence may come back only after one TTL"
    generations = replica_ids(steady)
    leader = wait_until(steady.leader, 10, what="a leader")
    leader_id = leader.replica_id
    with feeding(steady) as feeder:
        wait_until(lambda: steady.first_creation(time.time() - 1.0, by=leader_id), 15, what="dispatch to flow")
        down_at = time.time()
        for server in steady.redis.servers:
            server.stop()
        wait_until(lambda: leader_ids(steady) == [], TTL + TOLERANCE, interval=0.05, what="the leader to step down")
        stepped_down_at = time.time()
        # Nobody leads while there is no quorum: check all through the outage, not once.
        while time.time() < down_at + outage:
            assert leader_ids(steady) == [], "a replica leads without any Redis master"
            time.sleep(0.2)
        up_at = time.time()
        for server in steady.redis.servers:
            server.start()  # empty: these masters keep nothing on disk
        resumed = wait_until(
            lambda: steady.first_creation(up_at), RETRY + TICK + 10, interval=0.05, what="a Job created after restart"
        )
        new_leader = wait_until(lambda: leader_ids(steady), 10, interval=0.05, what="a leader again")
        time.sleep(2.0)
    # In-flight launches that passed their fence check just before the step-down may still land; nothing
    # after that. The step-down itself is bounded by the lease (TTL) from the last renewal.
    quiet_from = stepped_down_at + 0.5
    quiet = [c for c in steady.creations(quiet_from) if c.at < up_at]
    counts = check_promise(steady, generations)
    stepped = [
        e
        for e in leader.events()
        if e["replica"] == leader_id and e["at"] >= down_at and e["message"].startswith("stepping down")
    ]
    gained = [e for e in steady.events() if e["at"] >= up_at and e["message"].startswith("became the leader")]
    figures = {
        "test": "redis_all_masters_outage",
        "outage_seconds": round(up_at - down_at, 3),
        "step_down_seconds": round(stepped_down_at - down_at, 3),
        "recover_seconds": round(resumed.at - up_at, 3),
        "leader_gained_seconds": round(gained[0]["at"] - up_at, 3) if gained else None,
        "tasks": steady.inserted,
        "failed_inserts": feeder.failed_attempts,
        "jobs_created_without_quorum": len([c for c in quiet if c.created]),
        "duplicates": duplicates(steady),
        "leader_before": leader_id,
        "leader_after": new_leader[0],
        "counts": counts,
    }
    record(figures)
    assert quiet == [], f"{len(quiet)} Job creates while no replica held the lease: {quiet[:5]}"
    assert stepped, f"{leader_id} did not log that it stepped down"
    assert len(gained) == 1, f"leadership after the restart: {[(e['replica'], e['message']) for e in gained]}"


def test_one_redis_master_at_a_time_stopped_and_restarted(steady: Cluster, long_run: bool) -> None:
    """A rolling restart: each master in turn stopped, then started again empty. A quorum is up all the
    time, so the leader keeps its lease throughout (which needs each renewal to put the token back on
    the master that came back: otherwise the second stop would take the lease with it)."""
    outage = 20.0 if long_run else 3.0
    generations = replica_ids(steady)
    leader = wait_until(steady.leader, 10, what="a leader")
    leader_id = leader.replica_id
    losses_before = len([e for e in steady.events() if e["message"].startswith("stepping down")])
    leaders_seen: set[str] = set()
    windows: list[tuple[float, float]] = []

    def watch_leaders(until: float) -> None:
        while time.time() < until:
            leaders_seen.update(leader_ids(steady))
            time.sleep(0.2)

    with feeding(steady) as feeder:
        wait_until(lambda: steady.first_creation(time.time() - 1.0, by=leader_id), 15, what="dispatch to flow")
        for server in steady.redis.servers:
            down_at = time.time()
            server.stop()
            watch_leaders(down_at + outage)
            up_at = time.time()
            server.start()  # empty: it keeps nothing on disk
            windows.append((down_at, up_at))
            watch_leaders(up_at + TTL)  # at least two renewals before the next master goes
        resumed = wait_until(
            lambda: steady.first_creation(windows[-1][1]), 10, interval=0.05, what="a Job created after the restarts"
        )
    counts = check_promise(steady, generations)
    losses = [e for e in steady.events() if e["message"].startswith("stepping down")][losses_before:]
    dispatching = [created_between(steady, down + 1.0, up) for down, up in windows]
    figures = {
        "test": "redis_rolling_restart",
        "outage_seconds_per_master": outage,
        "masters_restarted": len(windows),
        "recover_seconds": round(resumed.at - windows[-1][1], 3),
        "tasks": steady.inserted,
        "failed_inserts": feeder.failed_attempts,
        "leaders_seen": sorted(leaders_seen),
        "step_downs": len(losses),
        "dispatched_in_every_outage": all(dispatching),
        "duplicates": duplicates(steady),
        "counts": counts,
    }
    record(figures)
    assert losses == [], f"the leader stepped down although a quorum of masters was up: {losses}"
    assert leaders_seen == {leader_id}, f"leadership moved with a quorum of masters up: {sorted(leaders_seen)}"
    assert all(dispatching), f"dispatch stopped while one master was down (per master: {dispatching})"
