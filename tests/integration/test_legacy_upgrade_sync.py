"""From the original Go nightwatch to this one: its MariaDB table and its unlabelled Jobs in the
fake API server, `nightwatch db upgrade`, then one sync tick: every in-flight row (Pending,
Running, Unknown) ends with its Job's real outcome, none is failed as missing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from kubernetes import client

from nightwatch.adapters.clock import SystemClock
from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings
from nightwatch.adapters.kubernetes.jobbody import TASK_ID_LABEL
from nightwatch.adapters.memory import FixedFence
from nightwatch.adapters.sql import SqlTaskRepository, create_engine_for
from nightwatch.adapters.sql.migrate import head_revision
from nightwatch.app.cli import main
from nightwatch.app.usecases.sync import SyncTasks
from nightwatch.domain.model import TaskId
from tests.fakekube.fixtures import running_fake_kube
from tests.fakekube.server import FakeKubeServer
from tests.support.legacy_table import LEGACY_DDL
from tests.support.scratch_db import scratch_mariadb

# (id, name, legacy status, the legacy Job's state in the cluster or None for no Job)
ROWS = [
    (1, "nightly-report", "Normal", None),
    (2, "waiting-for-pods", "Unknown", "active"),
    (3, "pending-done", "Pending", "succeeded"),
    (4, "running-ok", "Running", "succeeded"),
    (5, "running-broken", "Running", "failed"),
    (6, "unknown-broken", "Unknown", "failed"),
    (7, "long-ago", "Succeeded", None),
    (8, "failed-ago", "Failed", None),
    (9, "typed-by-hand", "normal", None),
    (10, "job-gone", "Running", None),
]
EXPECTED = {
    1: "Normal",
    2: "Running",
    3: "Succeeded",
    4: "Succeeded",
    5: "Failed",
    6: "Failed",
    7: "Succeeded",
    8: "Failed",
    9: "normal",
    10: "Normal",  # its Job really is gone: missing, an infrastructure failure, so its next attempt (issue 18)
}


@pytest.fixture
def kube() -> Iterator[tuple[FakeKubeServer, client.ApiClient]]:
    with running_fake_kube() as pair:
        yield pair


def legacy_job(name: str) -> dict[str, object]:
    """A Job as the original made it: no labels of nightwatch's, `app=task-job` on the pod template."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": "task-job"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "task", "image": "alpine"}]},
            },
        },
    }


def test_after_the_upgrade_one_sync_tick_gives_every_legacy_row_its_jobs_outcome(
    kube: tuple[FakeKubeServer, client.ApiClient], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server, api = kube
    batch = client.BatchV1Api(api)
    with scratch_mariadb() as url:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(LEGACY_DDL)
            for task_id, name, status, state in ROWS:
                conn.execute(
                    sa.text(
                        "INSERT INTO task (id, name, namespace, info, status) VALUES (:i, :n, 'default', :info, :s)"
                    ),
                    {"i": task_id, "n": name, "s": status, "info": '{"image": "alpine"}'},
                )
                if state is not None:
                    batch.create_namespaced_job("default", legacy_job(name))
                    server.set_job_state(
                        "default", name, state, reason="BackoffLimitExceeded" if state == "failed" else ""
                    )
        engine.dispose()

        monkeypatch.setenv("NIGHTWATCH_DATABASE__URL", url)
        assert main(["db", "upgrade"]) == 0
        assert f"from none to {head_revision()} (head)" in capsys.readouterr().out  # whatever the head is now

        repo = SqlTaskRepository(create_engine_for(url))
        try:
            runner = KubernetesJobRunner(api, KubernetesSettings(qps=0), sleep=lambda _: None)
            SyncTasks(repo, runner, SystemClock(), FixedFence(repo.advance_epoch()))()
            with repo.engine.connect() as conn:
                got = dict(conn.exec_driver_sql("SELECT id, status FROM task").all())
            assert got == EXPECTED
            assert "outcome unknown" not in (repo.get(TaskId(4)).message or "")
            # Adopted: labelled now, so the next listing finds them like any Job of nightwatch's.
            labels = batch.read_namespaced_job("waiting-for-pods", "default").metadata.labels
            assert labels[TASK_ID_LABEL] == "2"
            server.reset_counters()
            SyncTasks(repo, runner, SystemClock(), FixedFence(repo.advance_epoch()))()
            assert str(repo.get(TaskId(2)).status) == "Running"
        finally:
            repo.close()
