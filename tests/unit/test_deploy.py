"""The deployment artefacts grant exactly what the adapter uses and configure the kubernetes runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def test_roles_grant_exactly_jobs_and_pod_reads() -> None:
    expected = [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "delete"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    ]
    for name, kind in (("rbac.yaml", "Role"), ("clusterrole-multi-namespace.yaml", "ClusterRole")):
        role = next(d for d in docs(name) if d["kind"] == kind)
        assert role["rules"] == expected
        binding = next(d for d in docs(name) if d["kind"] == "RoleBinding")
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": kind,
            "name": role["metadata"]["name"],
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "nightwatch", "namespace": "default"}]


def test_deployment_runs_three_kubernetes_replicas() -> None:
    (deployment,) = docs("deployment.yaml")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "nightwatch"
    (container,) = pod["containers"]
    assert container["image"] == "nightwatch:latest" and container["command"] == ["nightwatch", "run"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["NIGHTWATCH_RUNNER__BACKEND"] == "kubernetes"
    assert env["NIGHTWATCH_LOCK__BACKEND"] == "redis"
    assert env["NIGHTWATCH_LOCK__REDIS_URLS"] == '["redis://redis:6379/0"]'
    assert env["NIGHTWATCH_RUNNER__ALLOWED_NAMESPACES"] == '["default"]'
    assert env["NIGHTWATCH_DATABASE__URL"] == {"secretKeyRef": {"name": "nightwatch-db", "key": "url"}}
    # The image listens on 0.0.0.0, which nightwatch allows only with API tokens (else: loopback only,
    # and the probes below would fail).
    assert env["NIGHTWATCH_API__TOKENS"] == {"secretKeyRef": {"name": "nightwatch-api", "key": "tokens"}}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]


def test_the_service_reaches_every_replicas_http_port() -> None:
    (service,) = docs("service.yaml")
    (deployment,) = docs("deployment.yaml")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {p.name for p in DEPLOY.glob("*.yaml")} - {
        "kustomization.yaml",
        "clusterrole-multi-namespace.yaml",
    }
