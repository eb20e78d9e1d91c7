"""The JobLogs contract, on every adapter: memory, the local runner's output files, Kubernetes
`pods/log` (over the fake API server). Each harness can make a Job's output exist, grow and end."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings
from nightwatch.adapters.local import jobdir
from nightwatch.adapters.local.logs import LocalJobLogs
from nightwatch.adapters.memory import MemoryJobLogs
from nightwatch.domain.errors import LogsUnavailable
from nightwatch.domain.model import TaskId
from nightwatch.domain.ports import JobLogs, JobRef
from tests.fakekube.fixtures import running_fake_kube

REF = JobRef(TaskId(5), "default", "out-job")


@dataclass
class Harness:
    logs: JobLogs
    start: Callable[[], None]
    write: Callable[[bytes], None]
    end: Callable[[], None]


@contextmanager
def memory() -> Iterator[Harness]:
    logs = MemoryJobLogs(quiet_seconds=5)
    yield Harness(
        logs,
        lambda: logs.write("default", "out-job", b""),
        lambda d: logs.write("default", "out-job", d),
        lambda: logs.end("default", "out-job"),
    )


@contextmanager
def local(tmp: Path) -> Iterator[Harness]:
    job = tmp / "default" / "out-job"

    def start() -> None:
        job.mkdir(parents=True)
        (job / jobdir.OUTPUT).write_bytes(b"")

    def write(data: bytes) -> None:
        with (job / jobdir.OUTPUT).open("ab") as handle:
            handle.write(data)

    def end() -> None:
        (job / jobdir.RESULT).write_text(json.dumps({"phase": "succeeded"}))

    yield Harness(LocalJobLogs(tmp, poll_seconds=0.02), start, write, end)


@contextmanager
def kubernetes() -> Iterator[Harness]:
    with running_fake_kube() as (server, api):
        logs = KubernetesJobRunner(api, KubernetesSettings(qps=0)).logs

        def start() -> None:
            pod = {
                "metadata": {"name": "out-job-x", "labels": {"job-name": "out-job"}},
                "spec": {"containers": [{"name": "task"}]},
            }
            server.add_pod("default", pod)
            server.pod_logs.write("default", "out-job-x", b"")

        yield Harness(
            logs,
            start,
            lambda d: server.pod_logs.write("default", "out-job-x", d),
            lambda: server.pod_logs.end("default", "out-job-x"),
        )


@pytest.fixture(params=["memory", "local", "kubernetes"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    makers: dict[str, Callable[[], AbstractContextManager[Harness]]] = {
        "memory": memory,
        "local": lambda: local(tmp_path),
        "kubernetes": kubernetes,
    }
    with makers[request.param]() as h:
        yield h


def test_a_job_without_output_yet_is_unavailable(harness: Harness) -> None:
    with pytest.raises(LogsUnavailable):
        harness.logs.read(REF, tail_lines=None, limit_bytes=100)
    with pytest.raises(LogsUnavailable):
        harness.logs.follow(REF, tail_lines=None, limit_bytes=100)


def test_a_read_gives_the_last_lines_and_the_last_bytes(harness: Harness) -> None:
    harness.start()
    harness.write(b"one\ntwo\nthree\n")
    assert harness.logs.read(REF, tail_lines=None, limit_bytes=1000) == b"one\ntwo\nthree\n"
    assert harness.logs.read(REF, tail_lines=2, limit_bytes=1000) == b"two\nthree\n"
    assert harness.logs.read(REF, tail_lines=0, limit_bytes=1000) == b""
    assert harness.logs.read(REF, tail_lines=None, limit_bytes=6) == b"three\n"


def test_a_follow_sends_what_is_there_then_what_comes_and_ends_with_the_job(harness: Harness) -> None:
    harness.start()
    harness.write(b"a\n")
    got: list[bytes] = []
    stream = harness.logs.follow(REF, tail_lines=None, limit_bytes=10_000)
    reader = threading.Thread(target=lambda: got.extend(stream))
    reader.start()
    time.sleep(0.2)
    harness.write(b"b\n")
    time.sleep(0.2)
    harness.write(b"c\n")
    harness.end()
    reader.join(10)
    assert not reader.is_alive() and b"".join(got) == b"a\nb\nc\n"


def test_a_follow_sends_at_most_limit_bytes(harness: Harness) -> None:
    harness.start()
    harness.write(b"0123456789")
    harness.end()
    assert len(b"".join(harness.logs.follow(REF, tail_lines=None, limit_bytes=4))) == 4
