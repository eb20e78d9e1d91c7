"""What a 403 Forbidden from the API server means: not always RBAC.

kube-apiserver answers 403 for four different reasons, told apart only by the Status message
(the texts are the apiserver's, Kubernetes 1.30-1.34):

| message contains                                   | source                          | nightwatch does         |
|----------------------------------------------------|---------------------------------|-------------------------|
| `exceeded quota: <q>, requested: ...`              | ResourceQuota admission         | defer (task stays Normal) |
| `not yet ready to handle request`                  | an admission plugin's caches    | defer                   |
| `... because it is being terminated`               | NamespaceLifecycle admission    | fail the task           |
| `User "..." cannot <verb> resource "..." ...`      | the RBAC authorizer             | fail, log as RBAC       |
| anything else (a webhook's denial...)              | admission                       | fail                    |

A quota frees itself when Jobs finish and are deleted, and a not-ready plugin is ready seconds later:
both are `AdmissionDeferred`, and dispatch retries with backoff. A namespace being terminated ends in
a 404 (the namespace is gone) and every Job created meanwhile is deleted with it, so retrying would
only hold the task for as long as the deletion takes, then fail it anyway with a vaguer message: it
fails at once, saying the namespace is being deleted (not an RBAC problem).
"""

from __future__ import annotations

import logging
import re

from nightwatch.domain.errors import AdmissionDeferred, JobForbidden, JobRefused

logger = logging.getLogger(__name__)

_RBAC = re.compile(r'User "[^"]*" cannot [a-z]+ resource')


def forbidden_error(message: str, what: str, namespace: str) -> Exception:
    """The domain error for a 403 with this Status `message` (see the module's table); logs the RBAC case."""
    if "exceeded quota" in message:
        return AdmissionDeferred(
            f"{what}: deferred by a ResourceQuota in namespace {namespace}: {message}",
            namespace=namespace,
            reason=AdmissionDeferred.QUOTA,
        )
    if "not yet ready to handle request" in message:
        return AdmissionDeferred(
            f"{what}: deferred, the API server's admission is not ready yet: {message}",
            namespace=namespace,
            reason=AdmissionDeferred.NOT_READY,
        )
    if "because it is being terminated" in message:
        return JobRefused(f"namespace {namespace} is being deleted: {message}")
    if _RBAC.search(message):
        logger.error(
            "%s forbidden in namespace %s: nightwatch's service account lacks RBAC there "
            "(see deploy/kubernetes/rbac.yaml): %s",
            what,
            namespace,
            message,
        )
    else:
        logger.error("%s forbidden in namespace %s by admission: %s", what, namespace, message)
    return JobForbidden(f"forbidden in namespace {namespace}: {message}")
