"""Finding the cluster: in-cluster service account, or a kubeconfig (KUBECONFIG, ~/.kube/config).

Returns an `ApiClient` sized for the app's worker pool (urllib3 keeps at most `pool_maxsize`
connections; more concurrent launches than that would open and drop connections on every call).
urllib3's own retries are turned off: `ApiCaller` retries with its own bounded backoff, and two
layers of retries would multiply the attempts.

Tokens rotate: a bound service-account token lives an hour and the kubelet writes its successor to
the token file. In a pod, the client re-reads that file every minute (`load_incluster_config`), and
the old token stays valid well past that. A kubeconfig whose user has a `tokenFile` (a projected token
used through a kubeconfig, a CI runner's token) is read once by the client, so after the rotation every
call would be a 401 until restart: `load_api_client` installs a hook that re-reads the file whenever it
changes (one stat per request).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import yaml
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
            token_file = _kubeconfig_token_file(path, context)
            if token_file is not None:
                refresh_token_from_file(configuration, token_file)
                source += f", token re-read from {token_file} when it changes"
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


TOKEN_REREAD_SECONDS = 60.0
"""A token file whose stat looks unchanged is still re-read this often (as the in-cluster loader does)."""


def refresh_token_from_file(configuration: client.Configuration, token_file: Path) -> None:
    """Make every request carry the token now in `token_file`, re-read whenever the file changes
    (mtime, size or inode: the kubelet swaps a symlink), and at least every TOKEN_REREAD_SECONDS (an
    in-place rewrite within one clock tick keeps the mtime). An unreadable or empty file keeps the last token."""
    seen: dict[str, Any] = {}

    def refresh(target: client.Configuration) -> None:
        try:
            stat = token_file.stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if seen.get("stamp") == stamp and time.monotonic() - seen["at"] < TOKEN_REREAD_SECONDS:
                return
            token = token_file.read_text().strip()
        except OSError as exc:
            logger.warning("cannot re-read the Kubernetes token file %s: %s", token_file, exc)
            return
        if token:
            target.api_key["BearerToken"] = f"Bearer {token}"
            seen.update(stamp=stamp, at=time.monotonic())

    configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]  # typed None in the client


def _kubeconfig_token_file(path: str, context: str | None) -> Path | None:
    """The `tokenFile` of the user of `context` (else the current context) in the kubeconfig(s) at `path`."""
    contexts, active = config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    user_name = ((chosen or {}).get("context") or {}).get("user")
    for file in (Path(p).expanduser() for p in path.split(os.pathsep) if p):
        try:
            document: Any = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError):
            continue
        for entry in (document or {}).get("users") or ():
            if isinstance(entry, dict) and entry.get("name") == user_name:
                token_file = (entry.get("user") or {}).get("tokenFile")
                if not token_file:
                    return None
                return (file.parent / Path(token_file).expanduser()).resolve()
    return None
