"""Finding the cluster: in-cluster service account, or a kubeconfig (KUBECONFIG, ~/.kube/config).

Returns an `ApiClient` sized for the app's worker pool (urllib3 keeps at most `pool_maxsize`
connections; more concurrent launches than that would open and drop connections on every call).
urllib3's own retries are turned off: `ApiCaller` retries with its own bounded backoff, and two
layers of retries would multiply the attempts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from nightwatch.domain.errors import PermanentError

logger = logging.getLogger(__name__)

_SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class KubernetesConfigError(PermanentError):
    """No usable cluster configuration was found (a one-line message says where we looked)."""


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and _SERVICE_ACCOUNT_TOKEN.exists()


def load_api_client(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    pool_maxsize: int = 16,
    user_agent: str | None = None,
) -> client.ApiClient:
    """An ApiClient for the configured cluster. Raises KubernetesConfigError.

    An explicit `kubeconfig` or `context` means a kubeconfig; otherwise the in-cluster service
    account when running in a pod; otherwise KUBECONFIG (read now, not at import) or ~/.kube/config.
    """
    configuration = client.Configuration()
    try:
        if kubeconfig is None and context is None and _in_cluster():
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            source = "in-cluster service account"
        else:
            path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
            if not any(Path(p).expanduser().is_file() for p in path.split(os.pathsep) if p):
                raise KubernetesConfigError(
                    f"no Kubernetes configuration: not in a cluster and no kubeconfig at {path}"
                )
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context, client_configuration=configuration
            )
            source = f"kubeconfig {path}" + (f" (context {context})" if context else "")
    except ConfigException as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KubernetesConfigError(f"invalid Kubernetes configuration: {first_line}") from None
    configuration.connection_pool_maxsize = max(1, pool_maxsize)
    configuration.retries = False
    api = client.ApiClient(configuration)
    if user_agent:
        api.user_agent = user_agent
    logger.info("Kubernetes API at %s (from %s)", configuration.host, source)
    return api
