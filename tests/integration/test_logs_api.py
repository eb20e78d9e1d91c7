"""`GET /api/v1/tasks/{id}/logs` and `nightwatch logs` (both modes) on a live server over SQLite:
reading and following output, the same access rule as reading the task, bounded streams, output
kept after the Job is gone, invalid UTF-8 kept readable, and a CLI follow that outlives a restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from nightwatch.adapters.memory import MemoryJobLogs
from nightwatch.adapters.sql.tasklog import SqlTaskLogs
from nightwatch.app.cli import main
from nightwatch.app.client import ApiClient
from nightwatch.domain.model import TaskId
from nightwatch.domain.ports import LogCapture, NewTask, TaskRepository
from tests.support.api_server import ALICE, BOB, ApiServer, api_server
from tests.support.redis_servers import free_port
from tests.support.sql_backends import sqlite_url
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def db() -> Iterator[str]:
    with sqlite_url() as url:
        yield url


@pytest.fixture
def output() -> MemoryJobLogs:
    return MemoryJobLogs(quiet_seconds=0.2)


@pytest.fixture
def server(db: str, output: MemoryJobLogs) -> Iterator[ApiServer]:
    with api_server(db, job_logs=output, sections={"logs": {"poll_seconds": 0.05, "max_streams": 2}}) as s:
        yield s


def started(repo: TaskRepository, name: str, user_id: int = 1) -> TaskId:
    task = repo.add(NewTask(name, "default", '{"image": "alpine"}', user_id=user_id), NOW)
    repo.apply([task.start(name, NOW)], epoch=epoch_of(repo))
    return task.id


def epoch_of(repo: TaskRepository) -> int:
    with repo.engine.begin() as conn:  # type: ignore[attr-defined]
        current = conn.exec_driver_sql("SELECT epoch FROM leader_epoch WHERE id = 1").scalar()
    return int(current) if current else repo.advance_epoch()


def end(repo: TaskRepository, task_id: TaskId) -> None:
    repo.apply([repo.get(task_id).fail("exit 1", NOW)], epoch=epoch_of(repo))


def test_reads_output_with_tail_and_keeps_invalid_utf8_readable(server: ApiServer, output: MemoryJobLogs) -> None:
    task_id = started(server.repository, "reader")
    output.write("default", "reader", b"one\ntwo\n\xff\xfebad bytes\n")
    with server.client(ALICE) as http:
        whole = http.get(f"/api/v1/tasks/{task_id}/logs")
        assert whole.status_code == 200 and whole.headers["content-type"].startswith("text/plain")
        assert whole.text == "one\ntwo\n\ufffd\ufffdbad bytes\n"
        assert http.get(f"/api/v1/tasks/{task_id}/logs", params={"tail": 1}).text == "\ufffd\ufffdbad bytes\n"
        assert http.get(f"/api/v1/tasks/{task_id}/logs", params={"attempt": 2}).status_code == 409


def test_logs_need_the_same_right_as_reading_the_task(server: ApiServer, output: MemoryJobLogs) -> None:
    task_id = started(server.repository, "private", user_id=1)
    output.write("default", "private", b"secret\n")
    with server.client(BOB) as bob, server.client() as anonymous:
        assert bob.get(f"/api/v1/tasks/{task_id}").status_code == 404
        assert bob.get(f"/api/v1/tasks/{task_id}/logs").status_code == 404
        assert bob.get(f"/api/v1/tasks/{task_id}/logs", params={"follow": "true"}).status_code == 404
        assert anonymous.get(f"/api/v1/tasks/{task_id}/logs").status_code == 401


def test_a_follow_streams_until_the_task_ends(server: ApiServer, output: MemoryJobLogs) -> None:
    repo = server.repository
    task_id = started(repo, "follower")
    output.write("default", "follower", b"start\n")
    got: list[str] = []
    finished = threading.Event()

    def follow() -> None:
        with (
            server.client(ALICE) as http,
            http.stream("GET", f"/api/v1/tasks/{task_id}/logs", params={"follow": "true"}) as response,
        ):
            assert response.status_code == 200
            got.extend(response.iter_text())
        finished.set()

    threading.Thread(target=follow, daemon=True).start()
    wait_until(lambda: "start\n" in "".join(got), 5, what="the first output")
    output.write("default", "follower", b"more\n")
    wait_until(lambda: "more\n" in "".join(got), 5, what="the next output")
    assert not finished.is_set()
    output.end("default", "follower")
    end(repo, task_id)
    assert finished.wait(5)
    assert "".join(got) == "start\nmore\n"


def test_a_replica_serves_at_most_max_streams_follows(server: ApiServer, output: MemoryJobLogs) -> None:
    repo = server.repository
    ids = [started(repo, f"busy-{i}") for i in range(3)]
    for i in range(3):
        output.write("default", f"busy-{i}", b"x\n")
    with server.client(ALICE) as http:
        streams = [http.stream("GET", f"/api/v1/tasks/{i}/logs", params={"follow": "true"}) for i in ids[:2]]
        responses = [s.__enter__() for s in streams]
        assert [r.status_code for r in responses] == [200, 200]
        refused = http.get(f"/api/v1/tasks/{ids[2]}/logs", params={"follow": "true"})
        assert refused.status_code == 503 and "Retry-After" in refused.headers
        assert http.get(f"/api/v1/tasks/{ids[2]}/logs").status_code == 200  # reads are not streams
        for s in streams:
            s.__exit__(None, None, None)
        # The slots come back once the streams are gone (the server notices at its next chunk or poll).
        for i in range(2):
            output.write("default", f"busy-{i}", b"y\n")

        def admitted() -> bool:
            with http.stream("GET", f"/api/v1/tasks/{ids[2]}/logs", params={"follow": "true"}) as again:
                return again.status_code == 200

        wait_until(admitted, 10, what="a freed stream slot")


def test_a_stream_stops_at_the_byte_cap(db: str, output: MemoryJobLogs) -> None:
    with api_server(db, job_logs=output, sections={"logs": {"max_bytes_per_request": 5}}) as server:
        task_id = started(server.repository, "chatty")
        output.write("default", "chatty", b"0123456789")
        with server.client(ALICE) as http:
            followed = http.get(f"/api/v1/tasks/{task_id}/logs", params={"follow": "true"})
            assert len(followed.content) == 5  # then the stream ends, the task still running
            assert http.get(f"/api/v1/tasks/{task_id}/logs").text == "56789"  # a read: the last bytes


def test_the_kept_output_is_served_once_the_job_is_gone(server: ApiServer, output: MemoryJobLogs) -> None:
    repo = server.repository
    task_id = started(repo, "gone")
    end(repo, task_id)
    SqlTaskLogs(repo.engine).keep(  # type: ignore[attr-defined]
        LogCapture(1, task_id, 1), "kept tail\n", truncated=False, now=NOW, epoch=epoch_of(repo)
    )
    with server.client(ALICE) as http:
        assert http.get(f"/api/v1/tasks/{task_id}/logs").text == "kept tail\n"
        assert http.get(f"/api/v1/tasks/{task_id}/logs", params={"follow": "true"}).text == "kept tail\n"


def test_the_cli_prints_logs_in_both_modes(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "jobs"
    monkeypatch.setenv("NIGHTWATCH_DATABASE__URL", db)
    monkeypatch.setenv("NIGHTWATCH_RUNNER__LOCAL_STATE_DIR", str(state))
    with api_server(db, sections={"runner": {"local_state_dir": str(state), "local_multi_user": True}}) as server:
        task_id = started(server.repository, "cli-task", user_id=1)
        job = state / "default" / "cli-task"
        job.mkdir(parents=True)
        (job / "output.log").write_bytes(b"hello\nworld\n")
        capfd.readouterr()
        assert main(["logs", str(task_id), "--tail", "1"]) == 0
        assert capfd.readouterr().out == "world\n"
        assert main(["logs", "--server", server.url, "--token", ALICE, str(task_id)]) == 0
        assert capfd.readouterr().out == "hello\nworld\n"
        assert main(["logs", "--server", server.url, "--token", ALICE, "999"]) == 3
        assert main(["logs", str(task_id), "--attempt", "0"]) == 2


def test_a_cli_follow_reconnects_across_a_replica_restart_without_repeating(db: str) -> None:
    output = MemoryJobLogs(quiet_seconds=0.2)
    port = free_port()
    sections = {"logs": {"poll_seconds": 0.05}}
    got: list[bytes] = []
    done = threading.Event()
    with api_server(db, job_logs=output, sections=sections, port=port) as first:
        repo = first.repository
        task_id = started(repo, "restarting")
        output.write("default", "restarting", b"before\n")
        client = ApiClient(first.url, ALICE)

        def follow() -> None:
            got.extend(client.logs(task_id, follow=True, sleep=lambda _: time.sleep(0.1)))
            done.set()

        threading.Thread(target=follow, daemon=True).start()
        wait_until(lambda: b"before\n" in b"".join(got), 5, what="output before the restart")
    output.write("default", "restarting", b"during\n")  # while no replica serves
    time.sleep(0.3)
    assert not done.is_set()
    with api_server(db, job_logs=output, sections=sections, port=port) as second:
        output.write("default", "restarting", b"after\n")
        wait_until(lambda: b"after\n" in b"".join(got), 10, what="output after the restart")
        output.end("default", "restarting")
        end(second.repository, task_id)
        assert done.wait(10)
    client.close()
    assert b"".join(got) == b"before\nduring\nafter\n"


def test_an_unknown_task_is_404(server: ApiServer) -> None:
    with server.client(ALICE) as http:
        assert http.get("/api/v1/tasks/12345/logs").status_code == 404
        assert isinstance(http.get("/api/v1/tasks/12345/logs").json()["detail"], str)
        assert http.get("/api/v1/tasks/1/logs", params={"tail": -1}).status_code == 422
    assert httpx  # used for typing above
