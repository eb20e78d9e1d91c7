"""A real nightwatch cluster for failover tests and the failover benchmark.

Three private redis-server masters, a throwaway MariaDB database, the fake Kubernetes API server (in a
thread of this process, with its automatic controller) and N `nightwatch run` replicas as subprocesses.
Everything is started by `Cluster.start()` and stopped by PID in `Cluster.stop()`, whatever happened.

What it records, so a test can judge who did what and when:

- every Job create the fake server answered (wall time, `created_by` replica id, name, 201 or 409);
- every committed UPDATE of a task row, through a trigger into an `audit` table: the writing replica
  (each replica's connections run `SET @nw_replica = '<id>'`), the fencing epoch current in that
  transaction, the statuses and the wall time;
- each replica's JSON log (leadership gained with its epoch, stepping down) and its /metrics.

Hooks for crash tests: `RecordingStore.after_create` runs in the fake server's handler thread once a
Job is stored (or refused with 409) and before the answer leaves, so a test can SIGKILL the creating
replica between its Job create and its database write; `FakeKubeServer.on_request` sees every request
(verb and user agent) before it is served, e.g. a sync's list.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tests.fakekube.fixtures import write_kubeconfig
from tests.fakekube.server import FakeKubeServer
from tests.fakekube.store import StatusError, Store
from tests.support.nwprocess import Nightwatch
from tests.support.redis_servers import RedisServers
from tests.support.services import require_mariadb_url
from tests.support.waiting import wait_until

TASK_INFO = json.dumps({"image": "busybox", "command": ["true"]})

_AUDIT_DDL = [
    """CREATE TABLE audit (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        task_id BIGINT NOT NULL,
        old_status VARCHAR(45) NOT NULL,
        new_status VARCHAR(45) NOT NULL,
        version BIGINT NOT NULL,
        writer VARCHAR(100) NULL,
        epoch BIGINT NULL,
        at DOUBLE NOT NULL
    ) ENGINE=InnoDB""",
    """CREATE TRIGGER task_audit AFTER UPDATE ON task FOR EACH ROW
        INSERT INTO audit (task_id, old_status, new_status, version, writer, epoch, at)
        VALUES (NEW.id, OLD.status, NEW.status, NEW.version, @nw_replica,
                (SELECT epoch FROM leader_epoch WHERE id = 1), UNIX_TIMESTAMP(NOW(6)))""",
]


@dataclass(frozen=True)
class Creation:
    at: float
    """time.time() when the fake server answered."""
    replica: str
    """The replica id from the `nightwatch/<replica_id>` user agent."""
    namespace: str
    name: str
    created: bool
    """True for a 201; False for a 409 AlreadyExists."""


class RecordingStore(Store):
    """The fake's store, plus a log of every Job create with its time, creator and outcome."""

    def __init__(self) -> None:
        super().__init__()
        self.creations: list[Creation] = []
        self._log_lock = threading.Lock()
        self.after_create: Callable[[Creation], None] | None = None
        """Called (in the handler thread) with each logged create, after the Job is stored and before
        the answer is sent: what it does happens between the server's write and the client's."""

    def create_job(
        self, namespace: str, body: Any, *, created_by: str = "", admit: Callable[[str, str], None] | None = None
    ) -> dict[str, Any]:
        replica = created_by.split("/", 1)[1] if created_by.startswith("nightwatch/") else created_by
        name = str((body.get("metadata") or {}).get("name", "")) if isinstance(body, dict) else ""
        try:
            job = super().create_job(namespace, body, created_by=created_by, admit=admit)
        except StatusError as exc:
            if exc.code == 409:
                self._log(Creation(time.time(), replica, namespace, name, False))
            raise
        self._log(Creation(time.time(), replica, namespace, name, True))
        return job

    def _log(self, creation: Creation) -> None:
        with self._log_lock:
            self.creations.append(creation)
        hook = self.after_create
        if hook is not None:
            hook(creation)

    def snapshot(self) -> list[Creation]:
        with self._log_lock:
            return list(self.creations)


def recording_fake_kube(*, complete_after_ms: float = 300.0) -> tuple[FakeKubeServer, RecordingStore]:
    server = FakeKubeServer()
    store = RecordingStore()
    server.store = store
    server.controller.store = store
    server.set_controller("timed", active_after_ms=50.0, complete_after_ms=complete_after_ms)
    server.start()
    return server, store


class Replica(Nightwatch):
    """One `nightwatch run` replica; every (re)start is a new generation with a new replica id."""

    def __init__(self, name: str, workdir: Path, env: dict[str, str], database_url: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir, env)
        self.name = name
        self.generation = 0
        self.replica_id = ""
        self.database_url = database_url
        self.frozen = False
        self.ids: list[str] = []

    def start(self, *, healthy_within: float = 20.0) -> None:
        self.generation += 1
        self.replica_id = f"{self.name}-g{self.generation}"
        self.ids.append(self.replica_id)
        tag = quote(f"SET @nw_replica='{self.replica_id}'", safe="")
        self.env["NIGHTWATCH_REPLICA_ID"] = self.replica_id
        self.env["NIGHTWATCH_DATABASE__URL"] = f"{self.database_url}?init_command={tag}"
        self.log = self.workdir / f"{self.replica_id}.log"
        self.frozen = False
        super().start(healthy_within=healthy_within)

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)
        if sig == signal.SIGSTOP:
            self.frozen = True
        elif sig == signal.SIGCONT:
            self.frozen = False

    def kill(self) -> None:
        if self.alive and self.frozen:
            self.signal(signal.SIGCONT)
        super().kill()

    def metrics(self) -> dict[str, float]:
        code, text = self.http("/metrics")
        if code != 200:
            return {}
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.labels:
                    values[sample.name] = sample.value
        return values

    def by_watcher(self, sample_name: str) -> dict[str, float]:
        """Watcher name -> the sum of a labelled sample's values (/metrics; empty when it does not answer)."""
        code, text = self.http("/metrics")
        if code != 200:
            return {}
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == sample_name and "watcher" in sample.labels:
                    watcher = sample.labels["watcher"]
                    values[watcher] = values.get(watcher, 0.0) + sample.value
        return values

    def ticks(self) -> dict[str, int]:
        """Watcher name -> ticks run by this generation."""
        return {w: int(n) for w, n in self.by_watcher("nightwatch_tick_duration_seconds_count").items()}

    def tick_errors(self) -> dict[str, int]:
        """Watcher name -> ticks of this generation that raised (and were logged, the scheduler going on)."""
        return {w: int(n) for w, n in self.by_watcher("nightwatch_tick_errors_total").items()}

    def is_leader(self) -> bool | None:
        """/metrics nightwatch_leader, or None when the replica does not answer."""
        value = self.metrics().get("nightwatch_leader")
        return None if value is None else value == 1

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log line of every generation, with `time` as a float timestamp and `replica`."""
        found = []
        for replica_id in self.ids:
            path = self.workdir / f"{replica_id}.log"
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                entry["at"] = datetime.fromisoformat(entry["time"]).timestamp()
                entry["replica"] = replica_id
                found.append(entry)
        return found


class Cluster:
    def __init__(
        self,
        base_dir: Path,
        *,
        replicas: int = 3,
        ttl: float = 3.0,
        retry: float = 0.5,
        dispatch_interval: float = 0.3,
        sync_interval: float = 0.5,
        server_url: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        """`server_url`: a MariaDB server URL without a database (default: the shared MariaDB).
        `extra_env`: more environment for every replica (e.g. a short Kubernetes request timeout)."""
        self.extra_env = dict(extra_env or {})
        self.base_dir = base_dir
        self.ttl, self.retry, self.tick = ttl, retry, dispatch_interval
        self.sync_interval = sync_interval
        self.redis = RedisServers(3, base_dir / "redis")
        self.replicas: list[Replica] = []
        self.replica_count = replicas
        self.fake: FakeKubeServer | None = None
        self.store: RecordingStore | None = None
        self.server_url = server_url or ""
        self.db_name = ""
        self.engine: sa.Engine | None = None
        self._seq = 0
        self._seq_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Cluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.server_url = self.server_url or require_mariadb_url()
        self.redis.start()
        self.db_name = f"nightwatch_failover_{secrets.token_hex(4)}"
        admin = sa.create_engine(self.server_url)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {self.db_name} CHARACTER SET utf8mb4")
        admin.dispose()
        db_url = f"{self.server_url}/{self.db_name}"
        self.fake, self.store = recording_fake_kube()
        kubeconfig = write_kubeconfig(self.base_dir / "kubeconfig", self.fake.url)
        env = {
            "KUBECONFIG": str(kubeconfig),
            "NIGHTWATCH_LOCK__BACKEND": "redis",
            "NIGHTWATCH_LOCK__REDIS_URLS": json.dumps(self.redis.urls),
            "NIGHTWATCH_LOCK__TTL_SECONDS": str(self.ttl),
            "NIGHTWATCH_LOCK__RETRY_INTERVAL_SECONDS": str(self.retry),
            "NIGHTWATCH_RUNNER__BACKEND": "kubernetes",
            "NIGHTWATCH_RUNNER__QPS": "0",
            "NIGHTWATCH_RUNNER__ALLOWED_NAMESPACES": '["default"]',
            "NIGHTWATCH_WATCHERS__DISPATCH__INTERVAL_SECONDS": str(self.tick),
            "NIGHTWATCH_WATCHERS__SYNC__INTERVAL_SECONDS": str(self.sync_interval),
            "NIGHTWATCH_WATCHERS__CANCEL__INTERVAL_SECONDS": "1",
            "NIGHTWATCH_LOG__FORMAT": "json",
            "NIGHTWATCH_SHUTDOWN_GRACE_SECONDS": "5",
            "NIGHTWATCH_DATABASE__URL": db_url,
            **self.extra_env,
        }
        self.replicas = [
            Replica(f"r{i + 1}", self.base_dir / f"r{i + 1}", env, db_url) for i in range(self.replica_count)
        ]
        self.replicas[0].cli("db", "init")
        self.engine = sa.create_engine(db_url, pool_size=2)
        with self.engine.begin() as conn:
            for ddl in _AUDIT_DDL:
                conn.exec_driver_sql(ddl)
        for replica in self.replicas:
            replica.start()
        wait_until(lambda: self.leader() is not None, 15, what="a leader")

    def stop(self) -> None:
        """Stop everything this cluster started, by PID; go on past any failure."""
        for replica in self.replicas:
            with suppress(Exception):
                replica.kill()
        if self.fake is not None:
            with suppress(Exception):
                self.fake.stop()
        with suppress(Exception):
            self.redis.stop()
        if self.engine is not None:
            self.engine.dispose()
        if self.db_name:
            with suppress(Exception):
                admin = sa.create_engine(self.server_url)
                with admin.begin() as conn:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.db_name}")
                admin.dispose()

    def restart_dead(self) -> None:
        """Start every replica that is not running (a new generation), and resume frozen ones."""
        for replica in self.replicas:
            if replica.alive and replica.frozen:
                replica.signal(signal.SIGCONT)
            if not replica.alive:
                replica.start()

    # -- observations ---------------------------------------------------------------------------
    def leader(self) -> Replica | None:
        """The one replica whose /metrics says leader (asserting there is at most one)."""
        leaders = [r for r in self.replicas if r.alive and not r.frozen and r.is_leader()]
        assert len(leaders) <= 1, f"two replicas report nightwatch_leader 1: {[r.replica_id for r in leaders]}"
        return leaders[0] if leaders else None

    def replica(self, replica_id: str) -> Replica | None:
        """The replica whose current generation is `replica_id`."""
        return next((r for r in self.replicas if r.replica_id == replica_id), None)

    def creations(self, since: float = 0.0) -> list[Creation]:
        assert self.store is not None
        return [c for c in self.store.snapshot() if c.at >= since]

    def first_creation(self, since: float, *, not_by: str | None = None, by: str | None = None) -> Creation | None:
        for c in self.creations(since):
            if c.created and (not_by is None or c.replica != not_by) and (by is None or c.replica == by):
                return c
        return None

    def audit(self) -> list[sa.Row[Any]]:
        assert self.engine is not None
        with self.engine.connect() as conn:
            return list(conn.exec_driver_sql("SELECT * FROM audit ORDER BY id"))

    def status_counts(self) -> dict[str, int]:
        assert self.engine is not None
        with self.engine.connect() as conn:
            return {
                str(s): int(n) for s, n in conn.exec_driver_sql("SELECT status, COUNT(*) FROM task GROUP BY status")
            }

    def events(self) -> list[dict[str, Any]]:
        return sorted((e for r in self.replicas for e in r.events()), key=lambda e: e["at"])

    # -- load -----------------------------------------------------------------------------------
    def insert_tasks(self, count: int, *, info: str | Callable[[int], str] = TASK_INFO) -> None:
        """Plain SQL INSERTs of `count` new Normal tasks, as a user would write them.

        `info`: the tasks' info JSON, or a function of the task's sequence number that returns it."""
        assert self.engine is not None
        with self._seq_lock:
            first, self._seq = self._seq, self._seq + count
        if count <= 0:
            return
        rows = [{"name": f"t{n:05d}", "info": info(n) if callable(info) else info} for n in range(first, first + count)]
        with self.engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO task (name, namespace, info, status) VALUES (:name, 'default', :info, 'Normal')"),
                rows,
            )

    @property
    def inserted(self) -> int:
        return self._seq

    @contextmanager
    def feeding(
        self, rate_per_second: float = 20.0, batch: int = 2, *, info: str | Callable[[int], str] = TASK_INFO
    ) -> Iterator[None]:
        """Insert tasks in small batches at about `rate_per_second` until the block ends."""
        stop = threading.Event()
        errors: list[BaseException] = []

        def feed() -> None:
            try:
                while not stop.wait(batch / rate_per_second):
                    self.insert_tasks(batch, info=info)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=feed, name="feeder", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(10)
        if errors:
            raise errors[0]

    def wait_all_terminal(self, timeout: float = 60.0) -> dict[str, int]:
        def done() -> dict[str, int] | None:
            counts = self.status_counts()
            return counts if counts.get("Succeeded", 0) == self.inserted else None

        try:
            return dict(wait_until(done, timeout, interval=0.3, what="every task to succeed"))
        except AssertionError:
            raise AssertionError(f"tasks not all Succeeded: {self.status_counts()} of {self.inserted}") from None


# -- judgements shared by the system test and the benchmark ------------------------------------
def acquisitions(events: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Replica id -> times it logged `became the leader`."""
    found: dict[str, list[float]] = {}
    for e in events:
        if str(e.get("message", "")).startswith("became the leader"):
            found.setdefault(e["replica"], []).append(e["at"])
    return found


def interleavings(creations: list[Creation], events: list[dict[str, Any]]) -> list[str]:
    """Job creations by a replica after another replica had started creating, with no leadership
    regained in between: two dispatchers at once. Empty when exactly one replica dispatched at a time."""
    gained = acquisitions(events)
    superseded_at: dict[str, float] = {}
    problems: list[str] = []
    last: Creation | None = None
    for c in sorted((c for c in creations if c.created), key=lambda c: c.at):
        if last is not None and c.replica != last.replica:
            since = superseded_at.pop(c.replica, None)
            if since is not None and not any(since <= t <= c.at for t in gained.get(c.replica, [])):
                problems.append(
                    f"{c.replica} created {c.name} at {c.at:.3f}, {c.at - since:.3f} s after another replica "
                    "took over, without regaining leadership"
                )
            superseded_at[last.replica] = c.at
        last = c
    return problems


def fencing_violations(audit: list[Any]) -> list[str]:
    """Committed task writes out of epoch order, by two writers under one epoch, or by no replica."""
    problems: list[str] = []
    owner: dict[int, str] = {}
    highest = 0
    for row in audit:
        if row.writer is None or row.epoch is None:
            problems.append(f"audit {row.id}: task {row.task_id} written outside any replica/epoch")
            continue
        if row.epoch < highest:
            problems.append(f"audit {row.id}: {row.writer} wrote under epoch {row.epoch} after epoch {highest}")
        highest = max(highest, row.epoch)
        if owner.setdefault(row.epoch, row.writer) != row.writer:
            problems.append(f"epoch {row.epoch} written by both {owner[row.epoch]} and {row.writer}")
    return problems


def duplicate_problems(cluster: Cluster) -> list[str]:
    """Zero duplicate Jobs: one Job per task name, and exactly one 201 per task."""
    assert cluster.store is not None
    created = [c for c in cluster.creations() if c.created]
    names = [c.name for c in created]
    problems = []
    if len(names) != len(set(names)):
        problems.append(f"{len(names) - len(set(names))} Job names created more than once")
    if len(created) != cluster.inserted:
        problems.append(f"{len(created)} creates answered 201 for {cluster.inserted} tasks")
    with cluster.store.lock:
        jobs = len(cluster.store.jobs)
    if jobs != cluster.inserted:
        problems.append(f"{jobs} Jobs exist for {cluster.inserted} tasks")
    return problems


def handover(cluster: Cluster, sig: int, *, timeout: float = 20.0) -> dict[str, Any]:
    """Signal the leader (SIGKILL or SIGTERM) while tasks flow; time until another replica creates a Job.

    Returns the old and new replica ids, `seconds` (signal to the first Job created by the new leader)
    and `gained_seconds` (signal to the new leader's `became the leader` log line).
    """
    leader = wait_until(cluster.leader, 15, what="a leader")
    old = leader.replica_id
    wait_until(lambda: cluster.first_creation(time.time() - 1.0, by=old), 10, what=f"{old} to be dispatching")
    started = time.time()
    if sig == signal.SIGKILL:
        leader.kill()
    else:
        leader.signal(sig)
    first = wait_until(
        lambda: cluster.first_creation(started, not_by=old), timeout, interval=0.02, what="another replica to dispatch"
    )
    if sig != signal.SIGKILL:
        assert leader.process is not None
        code = leader.process.wait(15)
        leader.process = None
        assert code == 0, f"{old} exited {code} after signal {sig}"
    gained = [t for t in acquisitions(cluster.events()).get(first.replica, []) if t >= started]
    return {
        "signal": signal.Signals(sig).name,
        "old": old,
        "new": first.replica,
        "seconds": round(first.at - started, 3),
        "gained_seconds": round(gained[0] - started, 3) if gained else None,
    }
