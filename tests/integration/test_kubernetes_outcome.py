"""No outcome lost, against the fake API server with its TTL-after-finished controller on.

The whole leader loop on the Kubernetes runner (dispatch, sync, cancel, release as the watcher registry
builds them) and an in-memory task table: a Job the cluster deletes as soon as it finishes (TTL 0), or
while nightwatch is down, keeps its outcome (nightwatch's finalizer) until a sync has written it; a
create during the Foreground deletion of another Job of that name waits instead of failing; a cancel
lets go of the Job. `ROWS` collects what each row said, for docs/reliability.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings
from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryTaskRepository
from nightwatch.app.cli import main
from nightwatch.app.usecases.cancel import RequestCancel
from nightwatch.app.watchers import WatcherContext, default_registry
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.ports import NewTask
from nightwatch.domain.submission import SubmissionPolicy
from tests.fakekube.fixtures import api_client_for, write_kubeconfig
from tests.fakekube.server import FakeKubeServer
from tests.support.waiting import wait_until

S = TaskStatus


class Leader:
    """One leader's watchers on the Kubernetes runner, ticked by hand (a tick that never runs is
    nightwatch being down)."""

    def __init__(self, fake: FakeKubeServer) -> None:
        self.fake = fake
        self.repo = MemoryTaskRepository()
        self.clock = FakeClock()
        self.runner = KubernetesJobRunner(api_client_for(fake.url), KubernetesSettings(qps=0), sleep=lambda _: None)
        context = WatcherContext(
            self.repo,
            self.runner,
            self.clock,
            FixedFence(self.repo.advance_epoch()),
            policy=SubmissionPolicy(frozenset({"default"})),
        )
        self.watchers: dict[str, Callable[[], Any]] = {
            w.name: w.run for w in default_registry(load_plugins=False).build(context, {})
        }
        self.request_cancel = RequestCancel(self.repo)

    def insert(self, name: str, **info: Any) -> TaskId:
        body = json.dumps({"image": "alpine", **info})
        return self.repo.add(NewTask(name, "default", body, 1), self.clock.now()).id

    def tick(self, name: str) -> Any:
        return self.watchers[name]()

    def row(self, task_id: TaskId) -> str:
        task = self.repo.get(task_id)
        return f"{task.status}: {task.message}" if task.message else str(task.status)


@pytest.fixture
def leader() -> Iterator[Leader]:
    fake = FakeKubeServer().start()
    one = Leader(fake)
    try:
        yield one
    finally:
        one.runner.close()
        fake.stop()


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def collected(fake: FakeKubeServer, *names: str) -> Callable[[], bool]:
    return lambda: all(("default", n) in fake.controller.collected for n in names)


def test_a_success_the_ttl_controller_deletes_at_once_is_recorded_as_succeeded(leader: Leader) -> None:
    fake = leader.fake
    fake.set_controller("timed", active_after_ms=0, complete_after_ms=100, collect_finished=True)
    ok = leader.insert("ttl-zero", ttlSecondsAfterFinished=0)
    leader.tick("dispatch")
    # The Job finishes and its TTL (0 s) passes long before the next sync tick (2 s by default).
    wait_for(collected(fake, "ttl-zero"), "the TTL controller to delete the Job")
    report = leader.tick("sync")
    assert leader.row(ok) == "Succeeded: CompletionsReached: Reached expected number of succeeded pods"
    assert report.released == 1
    assert fake.store.jobs == {}  # released: the cluster collected it


def test_jobs_finished_and_collected_while_nightwatch_was_down_keep_their_outcome(leader: Leader) -> None:
    fake = leader.fake
    ok = leader.insert("down-ok", ttlSecondsAfterFinished=0)
    bad = leader.insert("down-bad", image="fail", ttlSecondsAfterFinished=1)
    leader.tick("dispatch")
    # nightwatch is down: no sync tick while the Jobs run, finish and pass their TTL.
    fake.set_controller("timed", active_after_ms=0, complete_after_ms=100, collect_finished=True)
    wait_for(collected(fake, "down-ok", "down-bad"), "the TTL controller to delete both Jobs")
    leader.tick("sync")  # nightwatch is back
    assert leader.row(ok).startswith("Succeeded: CompletionsReached")
    assert leader.row(bad).startswith("Failed: BackoffLimitExceeded: Job has reached the specified backoff limit")
    assert fake.store.jobs == {}


def test_a_create_during_a_foreground_deletion_waits_then_launches_once(leader: Leader) -> None:
    fake = leader.fake
    # An older Job of that name, from a task whose row is gone, being deleted by the TTL controller
    # (Foreground) but still held by nightwatch's finalizer.
    old_body = {
        "metadata": {
            "name": "reused",
            "labels": {"app.kubernetes.io/managed-by": "nightwatch", "nightwatch.io/task-id": "999"},
            "finalizers": ["nightwatch.io/outcome"],
        },
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "task", "image": "a"}]}}},
    }
    fake.store.create_job("default", old_body)
    fake.store.delete_job("default", "reused", "Foreground")
    task_id = leader.insert("reused")
    leader.tick("dispatch")
    assert leader.row(task_id) == "Normal"  # not adopted, not Failed: it waits for the old Job to go
    assert fake.job("default", "reused")["metadata"]["labels"]["nightwatch.io/task-id"] == "999"
    assert leader.tick("release").released == 1  # the old Job's row is gone: nobody waits for its outcome
    leader.tick("dispatch")
    assert leader.row(task_id) == "Pending"
    assert fake.job("default", "reused")["metadata"]["labels"]["nightwatch.io/task-id"] == str(task_id)
    assert fake.counters["create"] == 2  # one refused (409 being deleted), one created


def test_cancel_of_a_running_task_lets_go_of_its_job(leader: Leader) -> None:
    fake = leader.fake
    task_id = leader.insert("long")
    leader.tick("dispatch")
    fake.set_job_state("default", "long", "active")
    leader.tick("sync")
    assert leader.row(task_id) == "Running"
    leader.request_cancel(task_id)
    leader.tick("cancel")
    assert leader.row(task_id) == "Cancelled: cancelled on request"
    assert fake.store.jobs == {}  # deleted and released: not left dying on our own finalizer


def test_a_job_deleted_before_it_finished_says_its_outcome_is_unknown(leader: Leader) -> None:
    fake = leader.fake
    task_id = leader.insert("deleted")
    leader.tick("dispatch")
    fake.set_job_state("default", "deleted", "active")
    leader.tick("sync")
    fake.delete_job("default", "deleted")  # kubectl delete job: held, it never finishes now
    leader.tick("sync")
    # A Job deleted behind nightwatch's back is an infrastructure failure (issue 18): the default
    # policy gives the task its next attempt, and the message still says the outcome is unknown.
    assert leader.row(task_id).startswith(
        "Normal: JobMissing: the Job was deleted before its outcome was read; outcome unknown "
        "[infrastructure failure; attempt 1 of 4; retrying: attempt 2 not before "
    )
    # Released (it was held) once the tick has caught up, in the background: then it is gone.
    wait_until(lambda: fake.store.jobs == {}, 5, what="the deleted Job to be released and gone")


def test_release_finalizers_command_lets_go_of_every_job_with_all(leader: Leader, tmp_path: Path) -> None:
    fake = leader.fake
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", fake.url)
    config = tmp_path / "nightwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite:///{tmp_path / 'nw.db'}"},
                "runner": {"backend": "kubernetes", "kubeconfig": str(kubeconfig), "allowed_namespaces": ["default"]},
            }
        )
    )
    leader.insert("left-behind")
    leader.tick("dispatch")  # a Job held for a row of another database: this one has no such row
    fake.set_job_state("default", "left-behind", "active")
    assert main(["--config", str(config), "jobs", "release-finalizers"]) == 0
    assert fake.job("default", "left-behind")["metadata"]["finalizers"] == ["nightwatch.io/outcome"]  # running
    assert main(["--config", str(config), "jobs", "release-finalizers", "--all", "--namespace", "default"]) == 0
    assert "finalizers" not in fake.job("default", "left-behind")["metadata"]
