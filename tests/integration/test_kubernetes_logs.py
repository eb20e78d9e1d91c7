"""KubernetesJobLogs over the wire (tests/fakekube/podlogs.py): the newest pod of the Job by its
`job-name` label, container `task`, tailLines, limitBytes, follow, a pod not there yet, a cut
stream; and ReadTaskLogs following a running task across a cut until it ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings
from nightwatch.adapters.memory import MemoryTaskLogs, MemoryTaskRepository
from nightwatch.app.usecases.logs import LogsSettings, ReadTaskLogs
from nightwatch.domain.errors import LogsUnavailable
from nightwatch.domain.model import TaskId
from nightwatch.domain.ports import JobRef, NewTask
from tests.fakekube.fixtures import running_fake_kube
from tests.fakekube.server import FakeKubeServer

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
REF = JobRef(TaskId(1), "default", "logs-job")


@pytest.fixture
def kube() -> Iterator[tuple[FakeKubeServer, client.ApiClient]]:
    with running_fake_kube() as pair:
        yield pair


def runner_on(api: client.ApiClient) -> KubernetesJobRunner:
    return KubernetesJobRunner(api, KubernetesSettings(qps=0), sleep=lambda _: None)


def add_pod(server: FakeKubeServer, name: str, created: str, job: str = "logs-job", **spec: Any) -> None:
    server.add_pod(
        "default",
        {
            "metadata": {"name": name, "labels": {"job-name": job}, "creationTimestamp": created},
            "spec": {"containers": [{"name": "task", "image": "alpine"}], **spec},
        },
    )


def test_reads_the_newest_pod_of_the_job_with_tail_and_byte_limit(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    logs = runner_on(api).logs
    add_pod(server, "logs-job-old", "2026-01-01T10:00:00Z")
    add_pod(server, "logs-job-new", "2026-01-01T11:00:00Z")
    add_pod(server, "other-job-pod", "2026-01-01T12:00:00Z", job="other-job")
    server.pod_logs.write("default", "logs-job-old", b"first try\n")
    server.pod_logs.write("default", "logs-job-new", b"one\ntwo\nthree\n")
    assert logs.read(REF, tail_lines=None, limit_bytes=1000) == b"one\ntwo\nthree\n"
    assert logs.read(REF, tail_lines=2, limit_bytes=1000) == b"two\nthree\n"
    assert logs.read(REF, tail_lines=None, limit_bytes=6) == b"three\n"  # the last bytes
    reads = [r for r in server.requests if r.path.endswith("/log")]
    assert all(r.query.get("container") == "task" for r in reads)
    assert all("/pods/logs-job-new/" in r.path for r in reads)


def test_no_pod_yet_and_a_container_not_started_are_unavailable(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    logs = runner_on(api).logs
    with pytest.raises(LogsUnavailable, match="no pod"):
        logs.read(REF, tail_lines=None, limit_bytes=100)
    add_pod(server, "logs-job-a", "2026-01-01T10:00:00Z")
    with pytest.raises(LogsUnavailable, match="waiting to start"):
        logs.read(REF, tail_lines=None, limit_bytes=100)


def test_follow_streams_until_the_container_ends(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    logs = runner_on(api).logs
    add_pod(server, "logs-job-f", "2026-01-01T10:00:00Z")
    server.pod_logs.write("default", "logs-job-f", b"a\nb\n")
    got: list[bytes] = []
    stream = logs.follow(REF, tail_lines=1, limit_bytes=10_000)

    def read() -> None:
        got.extend(stream)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.2)
    server.pod_logs.write("default", "logs-job-f", b"c\n")
    time.sleep(0.2)
    server.pod_logs.end("default", "logs-job-f")
    reader.join(5)
    assert not reader.is_alive() and b"".join(got) == b"b\nc\n"
    follows = [r for r in server.requests if r.path.endswith("/log")]
    assert follows[-1].query.get("follow") == "true" and follows[-1].query.get("tailLines") == "1"


def test_follow_honours_limit_bytes_and_a_cut_ends_the_segment(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    logs = runner_on(api).logs
    add_pod(server, "logs-job-c", "2026-01-01T10:00:00Z")
    server.pod_logs.write("default", "logs-job-c", b"0123456789")
    assert b"".join(logs.follow(REF, tail_lines=None, limit_bytes=4)) == b"0123"
    stream = logs.follow(REF, tail_lines=None, limit_bytes=10_000)
    assert next(stream) == b"0123456789"
    server.pod_logs.cut("default", "logs-job-c")
    assert list(stream) == []  # cut mid-way: the segment ends, no error


def test_read_task_logs_follows_a_running_task_across_a_cut_without_repeating(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    repo = MemoryTaskRepository()
    epoch = repo.advance_epoch()
    task = repo.add(NewTask("logs-job", "default", "{}"), NOW)
    repo.apply([task.start("logs-job", NOW)], epoch=epoch)
    reader = ReadTaskLogs(repo, runner_on(api).logs, MemoryTaskLogs(repo), LogsSettings(poll_seconds=0.05))
    got: list[bytes] = []
    follow = reader.follow(task.id)
    done = threading.Event()

    def read() -> None:
        got.extend(follow)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    time.sleep(0.3)  # no pod yet: the follow looks again every poll
    add_pod(server, "logs-job-x", "2026-01-01T10:00:00Z")
    server.pod_logs.write("default", "logs-job-x", b"line 1\n")
    time.sleep(0.3)
    server.pod_logs.cut("default", "logs-job-x")
    time.sleep(0.1)
    server.pod_logs.write("default", "logs-job-x", b"line 2\n")
    time.sleep(0.3)
    assert not done.is_set()  # still running: the follow reconnected
    server.pod_logs.end("default", "logs-job-x")
    repo.apply([repo.get(task.id).fail("exit 1", NOW)], epoch=epoch)
    assert done.wait(5)
    assert b"".join(got) == b"line 1\nline 2\n"
    assert server.pod_logs.follows_open == 0


def test_captured_logs_wait_for_spare_tokens_and_a_users_read_does_not(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    """Capturing every finished attempt's output (a pod list and a log read per Job) at the default 50
    qps put creates behind it; it takes only the tokens above half the burst, a user's read any."""
    server, api = kube
    slept: list[float] = []
    runner = KubernetesJobRunner(api, KubernetesSettings(qps=20, burst=6), sleep=slept.append)
    add_pod(server, "logs-job-a", "2026-01-01T10:00:00Z")
    server.pod_logs.write("default", "logs-job-a", b"out\n")
    assert runner.logs.read(REF, tail_lines=None, limit_bytes=100) == b"out\n"  # 2 of 6 tokens
    assert slept == []
    assert runner.captured_logs.read(REF, tail_lines=None, limit_bytes=100) == b"out\n"
    assert slept and all(s > 0 for s in slept)  # it waited for tokens above the reserve of 2.5
    slept.clear()
    assert runner.logs.read(REF, tail_lines=None, limit_bytes=100) == b"out\n"  # not behind it
    assert slept == []
