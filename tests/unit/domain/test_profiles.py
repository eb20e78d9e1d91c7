"""Job profiles by example: configuration refusals (one message per bad entry), lock messages, list merges."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from nightwatch.adapters.kubernetes.jobbody import build_job_body
from nightwatch.app.config import ConfigError, load_settings
from nightwatch.domain.errors import InvalidTaskSpec
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.model import TaskId
from nightwatch.domain.profiles import RESTRICTED_PROFILE_NAME, ProfileCatalog
from nightwatch.domain.submission import SubmissionPolicy, validate_submission

GPU: dict[str, Any] = {
    "user_fields": ["image", "command", "env", "tolerations", "nodeSelector", "resources"],
    "images": ["registry.example/ml/"],
    "job": {
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "nodeSelector": {"pool": "gpu"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [
                        {"env": [{"name": "CUDA", "value": "1"}], "resources": {"limits": {"nvidia.com/gpu": "1"}}}
                    ],
                }
            },
        }
    },
}


def catalog(**profiles: dict[str, Any]) -> ProfileCatalog:
    return ProfileCatalog.build(profiles, "default", {"ml": "gpu"} if "gpu" in profiles else {})


def render(info: dict[str, Any], namespace: str = "ml", **profiles: dict[str, Any]) -> dict[str, Any]:
    policy = SubmissionPolicy(frozenset({"default", "ml"}), catalog(**profiles))
    valid = validate_submission("t", namespace, info, policy)
    return build_job_body(LaunchRequest(TaskId(1), "t", namespace, valid.spec, valid.profile, valid.placement))


def refusals(info: dict[str, Any], namespace: str = "ml", **profiles: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidTaskSpec) as caught:
        render(info, namespace, **profiles)
    return [p.message for p in caught.value.problems]


def config_lines(tmp_path: Any, text: str) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return caught.value.lines


def test_profile_lists_come_first_then_the_users() -> None:
    body = render(
        {
            "image": "registry.example/ml/train:1",
            "tolerations": [{"key": "spot", "operator": "Exists"}],
            "env": {"EPOCHS": "3"},
            "nodeSelector": {"zone": "a"},
            "resources": {"limits": {"memory": "1Gi"}},
        },
        gpu=GPU,
    )
    pod = body["spec"]["template"]["spec"]
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists"},
    ]
    assert pod["nodeSelector"] == {"zone": "a", "pool": "gpu"}
    container = pod["containers"][0]
    assert container["env"] == [{"name": "CUDA", "value": "1"}, {"name": "EPOCHS", "value": "3"}]
    assert container["resources"] == {"limits": {"memory": "1Gi", "nvidia.com/gpu": "1"}}
    assert body["spec"]["backoffLimit"] == 0


def test_a_locked_field_is_refused_naming_the_field_and_the_profile() -> None:
    gpu = {**GPU, "user_fields": ["image", "command"]}
    assert refusals({"image": "registry.example/ml/a", "nodeSelector": {"pool": "cpu"}}, gpu=gpu) == [
        "nodeSelector is set by profile gpu and cannot be overridden"
    ]
    assert refusals({"image": "registry.example/ml/a", "backoffLimit": 4}, gpu=gpu) == [
        "backoffLimit is set by profile gpu and cannot be overridden"
    ]
    assert refusals({"image": "registry.example/ml/a", "serviceAccountName": "admin"}, gpu=gpu) == [
        "serviceAccountName cannot be set under profile gpu (users may set: image, command)"
    ]


def test_an_entry_that_would_shadow_the_profiles_is_refused() -> None:
    messages = refusals(
        {
            "image": "registry.example/ml/a",
            "env": [{"name": "CUDA", "value": "0"}],
            "nodeSelector": {"pool": "cpu"},
            "resources": {"limits": {"nvidia.com/gpu": "8"}},
        },
        gpu=GPU,
    )
    assert messages == [
        "env CUDA is set by profile gpu and cannot be overridden",
        "nodeSelector pool is set by profile gpu and cannot be overridden",
        "resources.limits.nvidia.com/gpu is set by profile gpu and cannot be overridden",
    ]


def test_unknown_profile_and_images_outside_the_prefixes_are_refused() -> None:
    assert refusals({"image": "busybox", "profile": "huge"}, gpu=GPU) == [
        "profile huge is not configured (profiles: default, gpu, restricted)"
    ]
    assert refusals({"image": "busybox"}, gpu=GPU) == [
        "image busybox is not allowed by profile gpu (allowed: registry.example/ml/)"
    ]


def test_free_form_extras_are_kept_and_ignored() -> None:
    body = render({"image": "registry.example/ml/a", "owner": "ana", "ticket": 12}, gpu=GPU)
    assert "owner" not in str(body) and "ticket" not in str(body)


def test_info_profile_wins_over_the_namespace_default() -> None:
    body = render({"image": "busybox", "command": ["true"], "profile": "default"}, gpu=GPU)
    assert "nodeSelector" not in body["spec"]["template"]["spec"]


def test_the_built_in_default_ignores_job_fields_as_nightwatch_always_did() -> None:
    body = render({"image": "busybox", "nodeSelector": {"a": "b"}, "hostNetwork": True}, namespace="default")
    assert "nodeSelector" not in body["spec"]["template"]["spec"]
    assert "hostNetwork" not in body["spec"]["template"]["spec"]


def test_the_restricted_profile_meets_pod_security_restricted() -> None:
    body = render({"image": "busybox", "profile": RESTRICTED_PROFILE_NAME}, namespace="default")
    pod = body["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert not {"hostNetwork", "hostPID", "hostIPC", "volumes"} & set(pod)


def test_nightwatch_identity_wins_over_the_profile() -> None:
    profile = {"job": {"metadata": {"labels": {"nightwatch.io/task-id": "99", "team": "ml"}}}}
    body = render({"image": "busybox", "profile": "mine"}, namespace="default", mine=profile)
    assert body["metadata"]["labels"] == {
        "team": "ml",
        "app.kubernetes.io/managed-by": "nightwatch",
        "nightwatch.io/task-id": "1",
    }


def test_config_refuses_dangerous_profiles_one_line_per_entry(tmp_path: Any) -> None:
    lines = config_lines(
        tmp_path,
        """
profiles:
  bad:
    job:
      spec:
        template:
          spec:
            hostNetwork: true
            hostPID: true
            volumes: [{name: root, hostPath: {path: /}}]
            containers:
              - securityContext: {privileged: true, capabilities: {add: [SYS_ADMIN]}}
""",
    )
    where = "profiles.bad.job.spec.template.spec"
    assert lines == [
        f"{where}.hostNetwork: is refused: a task must not share the node's namespaces",
        f"{where}.hostPID: is refused: a task must not share the node's namespaces",
        f"{where}.volumes.0.hostPath: is refused: a task must not see the node's files",
        f"{where}.containers.0.securityContext.privileged: is refused: a task must not be privileged",
        f"{where}.containers.0.securityContext.capabilities.add: is refused: a task must not gain capabilities",
    ]


def test_config_refuses_unknown_profile_names_and_keys(tmp_path: Any) -> None:
    lines = config_lines(
        tmp_path,
        """
runner:
  default_profile: nope
  namespace_profiles: {ml: gpu, team: missing}
profiles:
  gpu:
    user_fields: [image, serviceAccountName]
    jobs: {}
    job: {spec: {template: {spec: {runtimeClassName: x}}}}
""",
    )
    assert lines == [
        "profiles.gpu.jobs: Extra inputs are not permitted",
        "runner.default_profile: profile nope is not configured",
        "runner.namespace_profiles.team: profile missing is not configured",
    ]
    lines = config_lines(
        tmp_path,
        """
profiles:
  gpu:
    user_fields: [image, serviceAccountName]
    job: {spec: {template: {spec: {runtimeClassName: x}}}}
""",
    )
    assert lines == [
        "profiles.gpu.job.spec.template.spec.runtimeClassName: is not a field a profile may set",
        "profiles.gpu.user_fields.1: 'serviceAccountName' is not a user field (image, command, args, env, "
        "resources, backoffLimit, activeDeadlineSeconds, ttlSecondsAfterFinished, startTimeoutSeconds, "
        "nodeSelector, tolerations)",
    ]


def test_profiles_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTWATCH_PROFILES", '{"ml": {"images": ["registry.example/ml/"]}}')
    monkeypatch.setenv("NIGHTWATCH_RUNNER__NAMESPACE_PROFILES", '{"ml": "ml"}')
    found = load_settings().profile_catalog()
    assert found.resolve("ml").images == ("registry.example/ml/",)
    assert found.resolve("default").name == "default"


DOCS = Path(__file__).resolve().parents[3] / "docs" / "profiles.md"


def test_every_worked_example_in_the_docs_loads(tmp_path: Any) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.DOTALL)
    examples = [block for block in blocks if "profiles:" in block and "{...}" not in block]
    assert len(examples) == 4
    for i, block in enumerate(examples):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(block)
        catalog = load_settings(path).profile_catalog()
        assert set(yaml.safe_load(block)["profiles"]) <= set(catalog.profiles)


def test_a_profile_limited_to_namespaces_is_refused_elsewhere(tmp_path: Any) -> None:
    gpu = {**GPU, "namespaces": ["ml"]}
    assert render({"image": "registry.example/ml/a"}, gpu=gpu)["metadata"]["namespace"] == "ml"
    assert refusals({"image": "registry.example/ml/a", "profile": "gpu"}, namespace="default", gpu=gpu) == [
        "profile gpu cannot be used in namespace default"
    ]
    lines = config_lines(tmp_path, "runner:\n  namespace_profiles: {team: gpu}\nprofiles:\n  gpu: {namespaces: [ml]}\n")
    assert lines == ["runner.namespace_profiles.team: profile gpu is limited to namespaces ml"]


def test_a_manifest_of_the_wrong_shape_is_reported_not_a_crash(tmp_path: Any) -> None:
    lines = config_lines(tmp_path, "profiles:\n  odd:\n    job: {spec: [1], metadata: {labels: {a: 1}}}\n")
    assert lines == ["profiles.odd.job.spec: must be a mapping", "profiles.odd.job.metadata.labels.a: must be a string"]
