"""The Kubernetes adapter: JobRunner on the official client, and how to find the cluster."""

from __future__ import annotations

from nightwatch.adapters.kubernetes.config import KubernetesConfigError, load_api_client
from nightwatch.adapters.kubernetes.jobbody import build_job_body
from nightwatch.adapters.kubernetes.ratelimit import TokenBucket
from nightwatch.adapters.kubernetes.runner import KubernetesJobRunner

__all__ = ["KubernetesConfigError", "KubernetesJobRunner", "TokenBucket", "build_job_body", "load_api_client"]
