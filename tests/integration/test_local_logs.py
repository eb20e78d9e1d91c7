"""Task output on the local runner, with real processes: follow while it runs, then the leader's
capture keeps the tail (invalid UTF-8 readable) and reads still work once the Job directory is gone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nightwatch.adapters.local.runner import LocalJobRunner
from nightwatch.adapters.local.settings import LocalRunnerSettings
from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryTaskLogs, MemoryTaskRepository
from nightwatch.app.usecases.logs import CaptureLogs, LogsSettings, ReadTaskLogs
from nightwatch.domain.jobspec import JobSpec, LaunchRequest
from nightwatch.domain.observation import JobPhase
from nightwatch.domain.ports import JobRef, NewTask
from tests.support.local_harness import wait_for_phase

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[LocalJobRunner]:
    runner = LocalJobRunner(LocalRunnerSettings(local_state_dir=str(tmp_path / "state")))
    yield runner
    runner.close()


def test_output_is_followed_then_kept_after_the_job_directory_is_gone(runner: LocalJobRunner) -> None:
    repo = MemoryTaskRepository()
    epoch = repo.advance_epoch()
    task = repo.add(NewTask("local-out", "default", "{}"), NOW)
    script = (
        "echo first; sleep 0.5; printf 'bad \\377\\376 bytes\\n'; head -c 3000 /dev/zero | tr '\\0' x; echo; echo last"
    )
    spec = JobSpec.model_validate({"image": "busybox", "command": ["sh", "-c", script], "backoffLimit": 0})
    runner.launch(LaunchRequest(task.id, "local-out", "default", spec))
    repo.apply([task.start("local-out", NOW)], epoch=epoch)
    settings = LogsSettings(keep_bytes=1024, poll_seconds=0.1)
    stored = MemoryTaskLogs(repo)
    reader = ReadTaskLogs(repo, runner.logs, stored, settings)
    got: list[bytes] = []
    follow = reader.follow(task.id)
    done = threading.Event()

    def read() -> None:
        got.extend(follow)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    ref = JobRef(task.id, "default", "local-out")
    wait_for_phase(runner, ref, JobPhase.SUCCEEDED)
    repo.apply([repo.get(task.id).fail("ended", NOW)], epoch=epoch)  # the leader's terminal write
    assert done.wait(10)
    followed = b"".join(got)
    assert followed.startswith(b"first\nbad \xff\xfe bytes\n") and followed.endswith(b"\nlast\n")

    report = CaptureLogs(repo, runner.logs, stored, FakeClock(NOW), FixedFence(epoch), settings)()
    assert report.captured == 1
    kept = stored.stored(task.id, 1)
    assert kept is not None and kept.truncated and len(kept.output.encode()) <= 1024
    assert kept.output.endswith("x\nlast\n")

    runner.delete(ref)  # the directory goes (a cleanup): reads fall back to what was kept
    runner.close()
    assert reader.read(repo.get(task.id)).decode() == kept.output
    assert reader.read(repo.get(task.id), tail=1) == b"last\n"
