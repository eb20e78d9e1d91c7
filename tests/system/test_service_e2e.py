"""`nightwatch run` as a real process on a SQLite file with the local runner, driven by the CLI."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.nwprocess import Nightwatch
from tests.support.waiting import wait_until


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie has exited; only its parent's bookkeeping is left


def test_tasks_run_to_every_end_state(nw: Nightwatch) -> None:
    ok = nw.submit("ok-task", "sh", "-c", "echo all good")
    bad = nw.submit("bad-task", "sh", "-c", "echo disk full >&2; exit 3", namespace="demo")
    slow = nw.submit("slow-task", "sleep", "30", deadline="1")
    long = nw.submit("long-task", "sleep", "300")
    nw.start()

    done = nw.wait_status(ok, {"Succeeded"})
    assert "all good" in done["message"]
    failed = nw.wait_status(bad, {"Failed"})
    assert "exit code 3" in failed["message"] and "disk full" in failed["message"]
    deadline = nw.wait_status(slow, {"Failed"})
    assert "DeadlineExceeded" in deadline["message"]

    nw.wait_status(long, {"Running"})
    pid = int(wait_until(lambda: next(nw.workdir.glob("jobs/default/long-task/pid"), None), 10, what="pid").read_text())
    assert not process_gone(pid)
    assert "requested" in nw.cli("cancel", str(long)).stdout
    cancelled = nw.wait_status(long, {"Cancelled"})
    assert cancelled["finished_at"] is not None
    wait_until(lambda: process_gone(pid), 10, what="the cancelled process to exit")

    assert nw.stop() == 0


def test_cli_reports_bad_input_without_storing_anything(nw: Nightwatch) -> None:
    bad_name = nw.cli("submit", "--name", "Demo_Task", "--image", "busybox", "--", "true", check=False)
    assert bad_name.returncode == 2 and "not a DNS-1123 label" in bad_name.stderr
    bad_ns = nw.cli("submit", "--name", "x", "--namespace", "kube-system", "--image", "b", "--", "true", check=False)
    assert bad_ns.returncode == 2 and "not allowed" in bad_ns.stderr
    bad_info = nw.cli("submit", "--name", "x", "--info", '{"command": ["true"]}', check=False)
    assert bad_info.returncode == 2 and "image" in bad_info.stderr
    nw.submit("dup", "true")
    dup = nw.cli("submit", "--name", "dup", "--image", "busybox", "--", "true", check=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr
    missing = nw.cli("show", "424242", check=False)
    assert missing.returncode == 3 and "424242" in missing.stderr
    assert [t["name"] for t in nw.tasks()] == ["dup"]
    table = nw.cli("list").stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "NAME", "NAMESPACE", "STATUS"] and "dup" in table[1]


def test_metrics_and_readiness(nw: Nightwatch) -> None:
    for i in range(3):
        nw.submit(f"m-{i}", "true")
    nw.start()
    wait_until(lambda: all(t["status"] == "Succeeded" for t in nw.tasks()), 30, what="all tasks to succeed")

    def metrics() -> dict[str, float]:
        text = nw.http("/metrics")[1]
        values = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                values[f"{sample.name}{{{labels}}}"] = sample.value
        return values

    seen = wait_until(lambda: (m := metrics()).get("nightwatch_tasks{status=Succeeded}") == 3 and m, 15, what="metrics")
    assert seen["nightwatch_leader{}"] == 1
    assert seen["nightwatch_jobs_created_total{}"] == 3
    assert seen["nightwatch_tick_duration_seconds_count{watcher=dispatch}"] > 0
    assert seen["nightwatch_lease_renewals_total{}"] >= 0

    assert nw.http("/readyz")[0] == 200
    db = nw.workdir / "nightwatch.db"
    original = db.read_bytes()[:100]
    with db.open("r+b") as f:  # corrupt the header: the file is no longer a readable database
        f.write(b"\0" * 100)
    try:
        _, body = wait_until(lambda: (r := nw.http("/readyz"))[0] == 503 and r, 10, what="/readyz to fail")
        assert json.loads(body) == {"ready": False, "detail": "database unavailable"}  # no path, no driver text
    finally:
        with db.open("r+b") as f:
            f.write(original)
    wait_until(lambda: nw.http("/readyz")[0] == 200, 10, what="/readyz to recover")
    assert nw.stop() == 0


def test_sigterm_during_work_exits_cleanly_and_a_restart_finishes_the_work(nw: Nightwatch) -> None:
    ids = [nw.submit(f"w-{i}", "sleep", "1") for i in range(20)]
    nw.start()
    wait_until(lambda: any(t["status"] != "Normal" for t in nw.tasks()), 20, what="dispatch to start")
    started = time.monotonic()
    assert nw.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 10
    # Nothing half-written: every row is in a known state, with a Job name once past Normal.
    for task in nw.tasks():
        assert task["status"] in {"Normal", "Pending", "Running", "Succeeded"}
        assert task["status"] == "Normal" or task["job_name"] == task["name"]
    nw.start()
    wait_until(
        lambda: all(nw.task(i)["status"] == "Succeeded" for i in ids), 40, interval=0.5, what="all tasks to succeed"
    )
    # Each task ran exactly once, across the restart.
    for i in range(20):
        assert (nw.workdir / "jobs" / "default" / f"w-{i}").is_dir()
    assert nw.stop() == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NIGHTWATCH_RUNNER__BACKEND": "nomad"}, "runner.backend: Input should be 'local' or 'kubernetes'"),
        ({"NIGHTWATCH_WATCHERS__SYNC__INTERVAL_SECONDS": "-1"}, "watchers.sync.interval_seconds"),
        ({"NIGHTWATCH_DATABASE__URL": "oracle://u:hunter2@db/x"}, "unsupported database URL"),
        ({"NIGHTWATCH_LOCK__REDIS_URLS": "not json"}, "lock"),
        ({"NIGHTWATCH_LOCK__TTL_SECONDS": "0"}, "lock.ttl_seconds"),
    ],
)
def test_bad_configuration_exits_with_one_clear_line(tmp_path: Path, env: dict[str, str], message: str) -> None:
    nw = Nightwatch(tmp_path, env)
    result = nw.cli("run", check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


def test_yaml_configuration_file(tmp_path: Path) -> None:
    config = tmp_path / "nightwatch.yaml"
    config.write_text("runner:\n  allowed_namespaces: [team-a]\n")
    nw = Nightwatch(tmp_path, {"NIGHTWATCH_RUNNER__ALLOWED_NAMESPACES": ""})
    nw.env.pop("NIGHTWATCH_RUNNER__ALLOWED_NAMESPACES")
    ok = nw.cli("--config", str(config), "submit", "--name", "a", "--namespace", "team-a", "--image", "b", "--", "true")
    assert ok.returncode == 0
    refused = nw.cli("--config", str(config), "submit", "--name", "b", "--image", "b", "--", "true", check=False)
    assert refused.returncode == 2 and "'default' is not allowed" in refused.stderr
    assert os.path.exists(tmp_path / "nightwatch.db")
