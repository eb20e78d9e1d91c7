"""SIGTERM while the Kubernetes API hangs: the process still ends within the grace period.

A dispatch tick whose Job creates hang (and retry) outlives `shutdown_grace_seconds`; its worker threads
would hold interpreter exit (it joins them) for as long as the retries last. The lease is released and
the tick's writes are fenced, so the process must leave at the end of the grace period, exit code 0.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakekube.fixtures import write_kubeconfig
from tests.fakekube.server import FakeKubeServer
from tests.support.nwprocess import Nightwatch
from tests.support.waiting import wait_until

GRACE = 1.0
REQUEST_TIMEOUT = 4.0
"""Four attempts per create, each hanging this long: ~16 s of retries without the fix."""


@pytest.fixture
def fake() -> Iterator[FakeKubeServer]:
    server = FakeKubeServer().start()
    yield server
    server.stop()


def test_sigterm_during_hanging_creates_exits_within_the_grace_period(tmp_path: Path, fake: FakeKubeServer) -> None:
    nw = Nightwatch(
        tmp_path,
        {
            "KUBECONFIG": str(write_kubeconfig(tmp_path / "kubeconfig", fake.url)),
            "NIGHTWATCH_RUNNER__BACKEND": "kubernetes",
            "NIGHTWATCH_RUNNER__QPS": "0",
            "NIGHTWATCH_RUNNER__REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT),
            "NIGHTWATCH_SHUTDOWN_GRACE_SECONDS": str(GRACE),
        },
    )
    fake.inject("delay", verb="create", delay_seconds=REQUEST_TIMEOUT + 2, seconds=120)
    for n in range(4):
        nw.submit(f"hang-{n}", "true")
    nw.start()
    try:
        wait_until(lambda: fake.counters.get("create", 0) > 0, 20, what="a Job create in flight")
        assert nw.process is not None
        started = time.monotonic()
        nw.process.send_signal(signal.SIGTERM)
        code = nw.process.wait(30)
        took = time.monotonic() - started
    finally:
        nw.kill()
    assert code == 0
    assert took < GRACE + 3.0, f"exit took {took:.1f} s after SIGTERM with a {GRACE} s grace period"
    assert "exiting anyway" in nw.log.read_text()
