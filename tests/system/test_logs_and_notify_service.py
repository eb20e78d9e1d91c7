"""`nightwatch run` end to end with webhooks and output: a task's end reaches a real receiver (signed),
and its output is kept, so `nightwatch logs` still prints it once the local Job directory is gone."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nwprocess import Nightwatch
from tests.support.receiver import Receiver
from tests.support.waiting import wait_until

pytestmark = pytest.mark.system

SECRET = "service-webhook-secret-0123"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        r.secrets["/done"] = SECRET
        yield r


def test_a_finished_task_is_notified_and_its_output_kept(tmp_path: Path, receiver: Receiver) -> None:
    hooks = [{"url": receiver.url("/done"), "secret": SECRET, "events": ["Succeeded", "Failed"]}]
    nw = Nightwatch(
        tmp_path,
        env={
            "NIGHTWATCH_NOTIFY__WEBHOOKS": json.dumps(hooks),
            "NIGHTWATCH_NOTIFY__LINK_BASE_URL": "http://nightwatch.example",
            "NIGHTWATCH_WATCHERS__NOTIFY__INTERVAL_SECONDS": "0.2",
            "NIGHTWATCH_WATCHERS__CAPTURE_LOGS__INTERVAL_SECONDS": "0.2",
        },
    )
    nw.start()
    try:
        ok = nw.submit("svc-ok", "sh", "-c", "echo hello from the task")
        bad = nw.submit("svc-bad", "sh", "-c", "echo about to fail; exit 3")
        nw.wait_status(ok, {"Succeeded"})
        nw.wait_status(bad, {"Failed"})
        wait_until(lambda: len(receiver.at("/done")) == 2, 30, what="both notifications")
        by_task = {r.body["task_id"]: r for r in receiver.at("/done")}
        assert by_task[ok].body["status"] == "Succeeded" and by_task[bad].body["status"] == "Failed"
        assert all(r.signed_ok for r in by_task.values())
        assert by_task[ok].body["link"] == f"http://nightwatch.example/?task={ok}"
        listed = [json.loads(line) for line in nw.cli("notify", "list", "--json").stdout.splitlines()]
        assert {(r["task_id"], r["state"]) for r in listed} == {(ok, "delivered"), (bad, "delivered")}

        def kept() -> bool:
            rows = nw.cli("logs", str(ok)).stdout
            return "hello from the task" in rows

        wait_until(kept, 30, what="the output of the finished task")
        nw.stop()
        shutil.rmtree(tmp_path / "jobs")  # the Job directories are gone: what was kept remains
        assert "hello from the task" in nw.cli("logs", str(ok)).stdout
        assert "about to fail" in nw.cli("logs", str(bad)).stdout
    finally:
        nw.kill()
