"""A wire-level fake Kubernetes API server (Jobs, pods and Events) for tests and benchmarks.

See `server.FakeKubeServer` for the Python hooks, `control` for the `/_fake/...` HTTP endpoints,
and `fixtures` for the `fake_kube` pytest fixture and `write_kubeconfig`.
"""

from __future__ import annotations

from tests.fakekube.controller import job_status
from tests.fakekube.server import FakeKubeServer

__all__ = ["FakeKubeServer", "job_status"]
