"""Run `nightwatch` as real processes for end-to-end and system tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_until

NIGHTWATCH = [sys.executable, "-m", "nightwatch.app.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nightwatch:
    """One working directory and environment; `cli(...)` runs commands, `start()` runs the service."""

    def __init__(self, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("NIGHTWATCH_")},
            "NIGHTWATCH_DATABASE__URL": f"sqlite:///{workdir / 'nightwatch.db'}",
            "NIGHTWATCH_RUNNER__LOCAL_STATE_DIR": str(workdir / "jobs"),
            "NIGHTWATCH_RUNNER__ALLOWED_NAMESPACES": '["default","demo"]',
            "NIGHTWATCH_HTTP__PORT": str(self.port),
            "NIGHTWATCH_WATCHERS__DISPATCH__INTERVAL_SECONDS": "0.2",
            "NIGHTWATCH_WATCHERS__SYNC__INTERVAL_SECONDS": "0.3",
            "NIGHTWATCH_WATCHERS__CANCEL__INTERVAL_SECONDS": "0.2",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "run.log"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*NIGHTWATCH, *args], cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(f"nightwatch {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def submit(self, name: str, *command: str, namespace: str = "default", **options: str) -> int:
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
        out = self.cli("submit", "--name", name, "--namespace", namespace, "--image", "busybox", *flags, "--", *command)
        return int(out.stdout.split()[2])

    def task(self, task_id: int) -> dict[str, Any]:
        return dict(json.loads(self.cli("show", str(task_id)).stdout))

    def tasks(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.cli("list", "--json", "--limit", "100000").stdout.splitlines()]

    def start(self, *, healthy_within: float = 20.0) -> None:
        self.process = subprocess.Popen(
            [*NIGHTWATCH, "run"], cwd=self.workdir, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT
        )
        wait_until(lambda: self.http("/healthz")[0] == 200, healthy_within, what="/healthz")

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def wait_status(self, task_id: int, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
        return dict(
            wait_until(
                lambda: (t := self.task(task_id))["status"] in statuses and t,
                timeout,
                interval=0.2,
                what=f"task {task_id} to reach {statuses}",
            )
        )
