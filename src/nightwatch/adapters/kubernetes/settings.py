"""`KubernetesSettings`: how the Kubernetes runner reaches and treats the cluster, with its defaults.

Plain pydantic, no client import: the configuration (`runner:` section) builds it from YAML and
environment variables without loading the Kubernetes library, and the runner takes it whole.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from nightwatch.domain.kueue import KueueSettings

__all__ = ["KubernetesSettings", "KueueSettings"]


class KubernetesSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    qps: float = Field(default=50.0, ge=0)
    """Client-side rate limit for the Kubernetes API; 0 turns the limiter off."""
    burst: int = Field(default=100, ge=0)
    kubeconfig: str | None = None
    """Path of a kubeconfig; unset: in-cluster config, then KUBECONFIG / ~/.kube/config."""
    context: str | None = None
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    ttl_seconds_after_finished: int = Field(default=3600, ge=0)
    """Finished Jobs are garbage-collected after this; 0 keeps them."""
    pending_diagnosis_after_seconds: float = Field(default=30.0, ge=0)
    """How long a Job may wait for its first pod before its pods are read for a root cause."""
    start_timeout_seconds: int = Field(default=0, ge=0, le=2**31 - 1)
    """A Job with no running pod this long after it started is deleted and its task Failed with the last
    known reason (FailedCreate, ImagePullBackOff, Unschedulable); 0 turns it off. A task's
    `info.startTimeoutSeconds` overrides it."""
    list_page_size: int = Field(default=1000, gt=0)
    """Jobs per list page when observing."""
    watch: bool = True
    """Follow Jobs with a watch per namespace with tasks in flight (an informer) instead of listing every
    in-flight Job on every sync tick. False: every sync tick lists every in-flight Job (the polling path,
    kept as a way out and for runners without a change feed)."""
    watch_timeout_seconds: int = Field(default=300, gt=0, le=1800)
    """Server-side timeout of one watch request; the next resumes from the last resourceVersion seen."""
    watch_recheck_seconds: float = Field(default=5.0, gt=0)
    """A Job still waiting for a pod is observed again this long after it began to wait, then after twice
    as long each time up to a minute (and a tenth of its start timeout), each Job on its own schedule
    (diagnosis, start timeout)."""
    kueue: KueueSettings | None = None
    """Kueue mode for every namespace (None: off): Jobs are created suspended for Kueue to admit."""
    kueue_namespaces: dict[str, KueueSettings] = Field(default_factory=dict)
    """Kueue mode per namespace, over `kueue` (a task's profile's `kueue` is over both)."""

    def kueue_for(self, namespace: str) -> KueueSettings | None:
        return self.kueue_namespaces.get(namespace, self.kueue)
