"""ReadTaskLogs and CaptureLogs on the memory adapters: which attempt a request means, kept output
preferred once an attempt ended, the tail kept at capture (cut at a character boundary, invalid
UTF-8 readable), and the stream slots of a replica."""

from __future__ import annotations

import pytest

from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryJobLogs, MemoryTaskLogs, MemoryTaskRepository
from nightwatch.app.usecases.logs import (
    BadAttempt,
    CaptureLogs,
    LogsSettings,
    ReadTaskLogs,
    TooManyStreams,
    job_name_for_attempt,
    last_bytes,
)
from nightwatch.domain.ports import NewTask


def setup(**settings: object) -> tuple[MemoryTaskRepository, MemoryJobLogs, ReadTaskLogs, CaptureLogs, int]:
    repo = MemoryTaskRepository()
    epoch = repo.advance_epoch()
    output = MemoryJobLogs(quiet_seconds=0.05)
    config = LogsSettings(**settings)  # type: ignore[arg-type]
    stored = MemoryTaskLogs(repo)
    reader = ReadTaskLogs(repo, output, stored, config, sleep=lambda _: None)
    capture = CaptureLogs(repo, output, stored, FakeClock(), FixedFence(epoch), config)
    return repo, output, reader, capture, epoch


def test_capture_keeps_the_last_keep_bytes_readable_and_reads_prefer_them() -> None:
    repo, output, reader, capture, epoch = setup(keep_bytes=8)
    task = repo.add(NewTask("cap", "default", "{}"), FakeClock().now())
    repo.apply([task.start("cap", FakeClock().now())], epoch=epoch)
    output.write("default", "cap", b"0123456789" + "é".encode() + b"\xff\xfe")
    repo.apply([repo.get(task.id).fail("x", FakeClock().now())], epoch=epoch)
    report = capture()
    assert report.captured == 1
    kept = MemoryTaskLogs(repo).stored(task.id, 1)
    assert kept is not None and kept.truncated and kept.output == "6789é\ufffd\ufffd"  # the last 8 bytes
    output.forget("default", "cap")  # the pod is gone: the kept tail still reads
    assert reader.read(repo.get(task.id)).decode() == kept.output
    assert capture().captured == 0  # captured once


def test_an_attempt_the_task_never_had_is_refused_with_its_field() -> None:
    repo, _, reader, _, _ = setup()
    task = repo.add(NewTask("att", "default", "{}"), FakeClock().now())
    with pytest.raises(BadAttempt, match="attempt"):
        reader.read(task, attempt=2)
    assert reader.read(task) == b""  # not dispatched yet: nothing to read
    assert job_name_for_attempt(task, 1) == "att"


def test_a_replica_serves_at_most_max_streams_and_a_closed_stream_frees_its_slot() -> None:
    repo, output, reader, _, epoch = setup(max_streams=1)
    task = repo.add(NewTask("s", "default", "{}"), FakeClock().now())
    repo.apply([task.start("s", FakeClock().now())], epoch=epoch)
    output.write("default", "s", b"x")
    first = reader.follow(task.id)
    with pytest.raises(TooManyStreams):
        reader.follow(task.id)
    first.close()  # never iterated: the slot comes back all the same
    second = reader.follow(task.id)
    assert next(second) == b"x"
    second.close()


def test_last_bytes_never_starts_inside_a_character() -> None:
    cut, truncated = last_bytes("aé".encode(), 1)
    assert truncated and cut == b""
    assert last_bytes(b"abc", 5) == (b"abc", False)
