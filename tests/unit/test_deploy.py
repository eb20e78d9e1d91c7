"""The deployment artefacts grant exactly what the adapter uses, configure the kubernetes runner, and
keep tasks apart from nightwatch: two namespaces, NetworkPolicies, Redis AUTH from a Secret."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
NIGHTWATCH_NS = "nightwatch"
TASKS_NS = "nightwatch-tasks"
SUBJECT = {"kind": "ServiceAccount", "name": "nightwatch", "namespace": NIGHTWATCH_NS}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def test_roles_grant_exactly_jobs_and_pod_reads() -> None:
    expected = [
        # patch: release the nightwatch.io/outcome finalizer once a task's outcome is stored;
        # watch: the informer (adapters/kubernetes/informer.py) follows Jobs instead of relisting them
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["create", "get", "list", "watch", "delete", "patch"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        # a task's output (nightwatch logs, the tail kept once it ends)
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
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
        assert binding["subjects"] == [SUBJECT]
        # The grant is in a tasks' namespace, never in nightwatch's own.
        assert binding["metadata"]["namespace"] != NIGHTWATCH_NS
        if kind == "Role":
            assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == TASKS_NS


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
    assert env["NIGHTWATCH_LOCK__REDIS_URLS"] == '["redis://:$(REDIS_PASSWORD)@redis:6379/0"]'
    assert env["NIGHTWATCH_RUNNER__ALLOWED_NAMESPACES"] == f'["{TASKS_NS}"]'
    assert env["NIGHTWATCH_DATABASE__URL"] == {"secretKeyRef": {"name": "nightwatch-db", "key": "url"}}
    # The image listens on 0.0.0.0, which nightwatch allows only with API tokens (else: loopback only,
    # and the probes below would fail).
    assert env["NIGHTWATCH_API__TOKENS"] == {"secretKeyRef": {"name": "nightwatch-api", "key": "tokens"}}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}]
    # /metrics on its own port (issue 14), open there and absent from the API's port; Prometheus finds it.
    assert env["NIGHTWATCH_HTTP__METRICS_PORT"] == "9090"
    assert "NIGHTWATCH_API__METRICS" not in env
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics",
    }


def test_every_replica_upgrades_the_schema_before_it_runs() -> None:
    (deployment,) = docs("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (container,) = pod["containers"]
    assert init["command"] == ["nightwatch", "db", "upgrade"]
    assert (init["image"], init["imagePullPolicy"]) == (container["image"], container["imagePullPolicy"])
    database = [e for e in container["env"] if e["name"] == "NIGHTWATCH_DATABASE__URL"]
    assert init["env"] == database  # the same database, and no other Secret
    assert init["securityContext"] == container["securityContext"]
    assert init["volumeMounts"] == container["volumeMounts"]


def test_the_service_reaches_every_replicas_http_port() -> None:
    (service,) = docs("service.yaml")
    (deployment,) = docs("deployment.yaml")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http"},
        {"name": "metrics", "port": 9090, "targetPort": "metrics"},
    ]
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert "namespace" not in kustomization  # it would move the tasks' Role into nightwatch's namespace
    assert set(kustomization["resources"]) == {p.name for p in DEPLOY.glob("*.yaml")} - {
        "kustomization.yaml",
        "clusterrole-multi-namespace.yaml",
    }


def applied() -> list[dict[str, Any]]:
    """Every object `kubectl apply -k` creates."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    return [d for name in kustomization["resources"] for d in docs(name)]


def test_nightwatch_and_its_tasks_each_have_a_namespace() -> None:
    namespaces = {d["metadata"]["name"]: d for d in applied() if d["kind"] == "Namespace"}
    assert set(namespaces) == {NIGHTWATCH_NS, TASKS_NS}
    assert namespaces[NIGHTWATCH_NS]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # Job pods set no securityContext: baseline admits them and refuses privileged or host access.
    assert namespaces[TASKS_NS]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


def test_every_namespaced_object_of_nightwatch_is_in_its_namespace() -> None:
    namespaced = [d for d in applied() if d["kind"] not in CLUSTER_SCOPED]
    in_tasks_ns = {(d["kind"], d["metadata"]["name"]) for d in namespaced if d["metadata"]["namespace"] == TASKS_NS}
    # Only the Jobs grant and the tasks' network policy live with the tasks.
    assert in_tasks_ns == {
        ("Role", "nightwatch-jobs"),
        ("RoleBinding", "nightwatch-jobs"),
        ("NetworkPolicy", "nightwatch-tasks"),
    }
    for d in namespaced:
        assert d["metadata"]["namespace"] in (NIGHTWATCH_NS, TASKS_NS), d["metadata"]
    kinds = {d["kind"] for d in namespaced if d["metadata"]["namespace"] == NIGHTWATCH_NS}
    assert kinds == {"ServiceAccount", "Deployment", "Service", "NetworkPolicy"}
    (deployment,) = docs("deployment.yaml")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    # Tasks never run next to nightwatch's Secrets.
    assert NIGHTWATCH_NS not in json.loads(env["NIGHTWATCH_RUNNER__ALLOWED_NAMESPACES"])


def policy(name: str) -> dict[str, Any]:
    return next(d for d in docs("networkpolicy.yaml") if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == name)


def ports_of(rules: list[dict[str, Any]]) -> set[tuple[str, int | str]]:
    return {(p.get("protocol", "TCP"), p["port"]) for rule in rules for p in rule.get("ports", ())}


def test_nightwatch_reaches_only_its_dependencies_and_takes_requests_on_its_http_and_metrics_ports() -> None:
    nw = policy("nightwatch")
    (deployment,) = docs("deployment.yaml")
    assert nw["metadata"]["namespace"] == NIGHTWATCH_NS
    assert nw["spec"]["podSelector"] == {"matchLabels": deployment["spec"]["template"]["metadata"]["labels"]}
    assert set(nw["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    egress = nw["spec"]["egress"]
    assert all(rule.get("ports") for rule in egress), "every egress rule names its ports"
    assert ports_of(egress) == {("UDP", 53), ("TCP", 53), ("TCP", 3306), ("TCP", 6379), ("TCP", 443), ("TCP", 6443)}
    ingress, scrape = nw["spec"]["ingress"]
    assert ports_of([ingress]) == {("TCP", "http")}  # the container port named http: 8080
    # From its own namespace, and from namespaces an operator labelled (the Ingress controller's); a
    # task namespace matches neither.
    assert ingress["from"] == [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"nightwatch.io/api-client": "true"}}},
    ]
    # The metrics port (9090) from the monitoring namespace's label only, not even nightwatch's own.
    assert ports_of([scrape]) == {("TCP", "metrics")}
    assert scrape["from"] == [{"namespaceSelector": {"matchLabels": {"nightwatch.io/metrics-scraper": "true"}}}]
    task_ns = next(d for d in applied() if d["kind"] == "Namespace" and d["metadata"]["name"] == TASKS_NS)
    assert not {"nightwatch.io/api-client", "nightwatch.io/metrics-scraper"} & set(task_ns["metadata"]["labels"])


PRIVATE_V4 = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}


def test_task_pods_cannot_reach_nightwatch_mysql_or_redis() -> None:
    tasks = policy("nightwatch-tasks")
    assert tasks["metadata"]["namespace"] == TASKS_NS
    assert tasks["spec"]["podSelector"] == {}  # every pod in the namespace, whatever its labels
    assert set(tasks["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert tasks["spec"]["ingress"] == []  # nothing connects to a task
    for rule in tasks["spec"]["egress"]:
        peers = rule.get("to")
        if peers is None:
            # A rule open to every address is DNS only (so not MySQL's 3306, Redis's 6379, nightwatch's 8080).
            assert ports_of([rule]) == {("UDP", 53), ("TCP", 53)}
            continue
        for peer in peers:
            # No pod or namespace selector: no in-cluster peer (nightwatch's namespace included) is allowed.
            assert set(peer) == {"ipBlock"}, peer
            block = peer["ipBlock"]
            if block["cidr"] == "0.0.0.0/0":
                # Wherever MySQL, Redis or nightwatch's pods have a private address, it is excepted.
                assert set(block["except"]) >= PRIVATE_V4
            else:
                assert block["cidr"] == "::/0" and {"fc00::/7", "fe80::/10"} <= set(block["except"])


def test_the_redis_password_comes_from_a_secret_and_no_password_is_written_down() -> None:
    (deployment,) = docs("deployment.yaml")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    password = env[names.index("REDIS_PASSWORD")]
    assert password["valueFrom"] == {"secretKeyRef": {"name": "nightwatch-redis", "key": "password"}}
    # Kubernetes expands $(REDIS_PASSWORD) only if it is defined before the variable using it.
    assert names.index("REDIS_PASSWORD") < names.index("NIGHTWATCH_LOCK__REDIS_URLS")
    for url in json.loads(env[names.index("NIGHTWATCH_LOCK__REDIS_URLS")]["value"]):
        assert url.startswith("redis://:$(REDIS_PASSWORD)@")
    # No literal credential anywhere: every URL with a user part, every secret-ish variable, is a reference.
    for d in applied():
        if d["kind"] == "Secret":
            raise AssertionError(f"a Secret is committed: {d['metadata']['name']}")
    for e in env:
        if "value" in e:
            assert not re.search(r"://[^/@]*:(?!\$\()[^@]*@", e["value"]), e
        if any(word in e["name"] for word in ("PASSWORD", "TOKEN", "DATABASE__URL")):
            assert "secretKeyRef" in e.get("valueFrom", {}), e
