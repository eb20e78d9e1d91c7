"""`nightwatch run` reloads its Job profiles on SIGHUP without a restart; a bad file keeps the old ones
and the log says why. Seen through GET /api/v1/profiles of the running service."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.nwprocess import NIGHTWATCH, Nightwatch
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]


def profile_names(nw: Nightwatch) -> set[str]:
    status, body = nw.http("/api/v1/profiles")
    return {p["name"] for p in json.loads(body)} if status == 200 else set()


def test_sighup_swaps_the_profiles_and_a_bad_file_keeps_them(nw: Nightwatch, tmp_path: Path) -> None:
    config = tmp_path / "nightwatch.yaml"
    config.write_text("profiles:\n  gpu: {}\n")
    nw.process = subprocess.Popen(
        [*NIGHTWATCH, "--config", str(config), "run"],
        cwd=nw.workdir,
        env=nw.env,
        stdout=nw.log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    wait_until(lambda: nw.http("/healthz")[0] == 200, 20, what="/healthz")
    assert profile_names(nw) == {"default", "restricted", "gpu"}

    config.write_text("profiles:\n  gpu: {}\n  tpu: {}\n")
    nw.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "tpu" in profile_names(nw), 10, what="the reloaded profiles")

    config.write_text("profiles:\n  broken:\n    job: {spec: {template: {spec: {hostPID: true}}}}\n")
    nw.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "profiles not reloaded" in nw.log.read_text(), 10, what="the refusal in the log")
    assert "hostPID: is refused" in nw.log.read_text()
    assert profile_names(nw) == {"default", "restricted", "gpu", "tpu"}
    assert nw.process.poll() is None  # still running
    assert nw.stop() == 0
