"""`KueueSettings`: a task's Job handed to Kueue for admission, one model for both places that set it.

The runner's configuration (`runner.kueue`, `runner.kueue_namespaces`) and a Job profile (`kueue:`) both
hold one, so it lives in the domain: a profile is pure and cannot import the Kubernetes adapter. With
one in force (the profile's over its namespace's over the global one), the Job is created suspended with
Kueue's labels; Kueue admits (unsuspends) it when its ClusterQueue has quota, nightwatch never does.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def _label_value(value: str) -> str:
    """Both names are label values on the Job: a bad one would make every launch a 422."""
    if not _LABEL_VALUE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a label value (letters, digits, '-', '_' and '.', "
            "beginning and ending with a letter or digit)"
        )
    return value


_Name = Annotated[str, Field(min_length=1, max_length=63), AfterValidator(_label_value)]


class KueueSettings(BaseModel):
    """Kueue mode for a task's Job: created suspended with Kueue's labels, admitted by Kueue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_name: _Name
    """The LocalQueue in the task's namespace (label `kueue.x-k8s.io/queue-name`)."""
    priority_class: _Name | None = None
    """A WorkloadPriorityClass (label `kueue.x-k8s.io/priority-class`)."""
    owns_admission: bool = Field(default=True, strict=True)
    """True (the default): a Job Kueue holds suspended does not count against nightwatch's own
    `max_in_flight` (Kueue decides when it runs; its task reads `Queued by Kueue: ...`). False: it does
    (its task reads `Waiting for Kueue: ...`), so a queue's limit also caps the Workloads handed to Kueue."""
