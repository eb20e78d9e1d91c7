"""The Kubernetes adapter: JobRunner on the official client, and how to find the cluster.

The client library is imported on first use of a name that needs it, not by importing this package:
the configuration imports `settings` (plain pydantic) for every command, cluster or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nightwatch.adapters.kubernetes.settings import KubernetesSettings

if TYPE_CHECKING:
    from nightwatch.adapters.kubernetes.config import KubernetesConfigError, load_api_client
    from nightwatch.adapters.kubernetes.jobbody import build_job_body
    from nightwatch.adapters.kubernetes.ratelimit import TokenBucket
    from nightwatch.adapters.kubernetes.runner import KubernetesJobRunner

__all__ = [
    "KubernetesConfigError",
    "KubernetesJobRunner",
    "KubernetesSettings",
    "TokenBucket",
    "build_job_body",
    "load_api_client",
]

_LAZY = {
    "KubernetesConfigError": "config",
    "load_api_client": "config",
    "build_job_body": "jobbody",
    "TokenBucket": "ratelimit",
    "KubernetesJobRunner": "runner",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
