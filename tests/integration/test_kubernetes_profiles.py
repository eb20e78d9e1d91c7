"""Job profiles end to end against the fake API server: the Job the server stores is, field for field,
what `nightwatch render` printed for the same task; a locked field is refused at submit (exit 2) and,
in a row written by SQL, fails the task at dispatch with a message naming the field and the profile."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nightwatch.adapters.memory import FixedFence
from nightwatch.app.cli import main
from nightwatch.app.config import load_settings
from nightwatch.app.container import build_container
from nightwatch.app.usecases.dispatch import DispatchTasks
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.ports import NewTask
from tests.fakekube.fixtures import write_kubeconfig
from tests.fakekube.server import FakeKubeServer

PROFILES: dict[str, Any] = {
    "gpu": {
        "user_fields": ["image", "command", "args", "env", "tolerations"],
        "images": ["registry.example/ml/"],
        "job": {
            "metadata": {"labels": {"team": "ml"}, "annotations": {"cost-center": "42"}},
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": 3600,
                "podFailurePolicy": {
                    "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}}]
                },
                "template": {
                    "metadata": {"labels": {"workload": "training"}},
                    "spec": {
                        "serviceAccountName": "trainer",
                        "imagePullSecrets": [{"name": "registry-ml"}],
                        "priorityClassName": "batch-high",
                        "nodeSelector": {"pool": "gpu"},
                        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}}],
                        "containers": [
                            {
                                "env": [{"name": "CUDA_VISIBLE_DEVICES", "value": "all"}],
                                "resources": {"limits": {"nvidia.com/gpu": "1"}},
                                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }
                        ],
                    },
                },
            },
        },
    }
}
TASK_INFO = {
    "image": "registry.example/ml/train:2",
    "command": ["python", "train.py"],
    "args": ["--epochs", "3"],
    "env": {"EPOCHS": "3"},
    "tolerations": [{"key": "spot", "operator": "Exists"}],
    "owner": "ana",  # a free-form extra: kept in the row, not in the Job
}


@pytest.fixture
def config(tmp_path: Path) -> Iterator[tuple[Path, FakeKubeServer]]:
    server = FakeKubeServer().start()
    try:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        path = tmp_path / "nightwatch.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "database": {"url": f"sqlite:///{tmp_path / 'nw.db'}"},
                    "runner": {
                        "backend": "kubernetes",
                        "kubeconfig": str(kubeconfig),
                        "allowed_namespaces": ["default", "ml"],
                        "namespace_profiles": {"ml": "gpu"},
                        "qps": 0,
                    },
                    "profiles": PROFILES,
                }
            )
        )
        yield path, server
    finally:
        server.stop()


def dispatch_once(config_file: Path) -> None:
    container = build_container(load_settings(config_file), load_plugins=False)
    try:
        ctx = container.watcher_context()
        fence = FixedFence(ctx.repository.advance_epoch())
        DispatchTasks(ctx.repository, ctx.runner, ctx.clock, fence, ctx.dispatch, policy=ctx.policy)()
    finally:
        container.shutdown_resources()


def without_server_fields(job: dict[str, Any]) -> dict[str, Any]:
    """The stored Job minus what the API server populates itself."""
    job = copy.deepcopy(job)
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation"):
        job["metadata"].pop(key, None)
    job.pop("status", None)
    for key in ("completions", "parallelism"):
        job["spec"].pop(key, None)
    labels = job["spec"]["template"]["metadata"]["labels"]
    for key in ("controller-uid", "batch.kubernetes.io/job-name", "job-name"):
        labels.pop(key, None)
    return job


def cli(config_file: Path, *args: str) -> int:
    return main(["--config", str(config_file), *args])


def test_the_stored_job_is_what_render_printed(
    config: tuple[Path, FakeKubeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    config_file, server = config
    assert cli(config_file, "submit", "--name", "train", "--namespace", "ml", "--info", json.dumps(TASK_INFO)) == 0
    capsys.readouterr()
    assert cli(config_file, "render", "1", "--json") == 0
    rendered = json.loads(capsys.readouterr().out)
    assert cli(config_file, "render", "1") == 0
    assert yaml.safe_load(capsys.readouterr().out) == rendered  # YAML by default, the same manifest

    dispatch_once(config_file)
    stored = without_server_fields(server.store.jobs[("ml", "train")])
    assert stored == rendered
    pod = stored["spec"]["template"]["spec"]
    assert [t["key"] for t in pod["tolerations"]] == ["nvidia.com/gpu", "spot"]
    assert pod["serviceAccountName"] == "trainer" and pod["automountServiceAccountToken"] is False
    assert stored["metadata"]["labels"] == {
        "team": "ml",
        "app.kubernetes.io/managed-by": "nightwatch",
        "nightwatch.io/task-id": "1",
    }
    assert "owner" not in json.dumps(stored)


def test_a_preview_renders_before_submitting(
    config: tuple[Path, FakeKubeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    config_file, _server = config
    info = json.dumps(TASK_INFO)
    assert cli(config_file, "render", "--namespace", "ml", "--info", info, "--name", "train", "--json") == 0
    preview = json.loads(capsys.readouterr().out)
    assert preview["metadata"]["labels"]["nightwatch.io/task-id"] == "0"  # not stored yet
    assert preview["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "gpu"}


def test_a_locked_field_is_refused_at_submit(
    config: tuple[Path, FakeKubeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    config_file, _server = config
    info = json.dumps({**TASK_INFO, "nodeSelector": {"pool": "cpu"}})
    assert cli(config_file, "submit", "--name", "train", "--namespace", "ml", "--info", info) == 2
    assert "info.nodeSelector: nodeSelector is set by profile gpu and cannot be overridden" in capsys.readouterr().err
    assert cli(config_file, "render", "--namespace", "ml", "--info", info) == 2


def test_a_row_written_by_sql_with_a_locked_field_fails_at_dispatch(config: tuple[Path, FakeKubeServer]) -> None:
    config_file, server = config
    container = build_container(load_settings(config_file), load_plugins=False)
    try:
        from nightwatch.adapters.sql import init_database

        init_database(load_settings(config_file).database.url)
        repository = container.repository()
        info = json.dumps({**TASK_INFO, "backoffLimit": 5})
        task = repository.add(NewTask("by-sql", "ml", info, 0), container.clock().now())
    finally:
        container.shutdown_resources()
    dispatch_once(config_file)
    container = build_container(load_settings(config_file), load_plugins=False)
    try:
        failed = container.repository().get(TaskId(task.id))
    finally:
        container.shutdown_resources()
    assert failed.status is TaskStatus.FAILED
    assert failed.message == "backoffLimit is set by profile gpu and cannot be overridden"
    assert server.store.jobs == {}
