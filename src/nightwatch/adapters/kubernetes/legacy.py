"""Jobs the original Go nightwatch launched: adopted by name on the first observation after the upgrade.

Those Jobs carry none of nightwatch's labels (only `app=task-job` on their pod template), so the
labelled listing `observe` makes does not see them, and their tasks (upgraded in place to
Pending/Running) would be failed as missing. For a task whose Job the listing lacks, the Job is
read once by name; when it is the original's (no task-id label, the `app=task-job` pod template)
it gets nightwatch's labels (one merge patch) and is observed like any other from then on: later
listings find it. A Job that is another's, or absent, is left to be reported missing as before.
The cost is one GET per task whose Job is not listed, which happens once per such task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes.client.exceptions import ApiException

from nightwatch.adapters.kubernetes.jobbody import POD_APP_LABEL, POD_APP_VALUE, TASK_ID_LABEL, job_labels
from nightwatch.adapters.kubernetes.retry import api_message
from nightwatch.domain.errors import RetryableError
from nightwatch.domain.ports import JobRef

logger = logging.getLogger(__name__)

JOB_PATH = "/apis/batch/v1/namespaces/{namespace}/jobs/{name}"

Call = Callable[..., Any]
"""`ApiCaller.call`: (what, fn, *args, **kwargs) -> parsed JSON, with retries."""


def is_legacy_job(job: dict[str, Any]) -> bool:
    labels = (job.get("metadata") or {}).get("labels") or {}
    template = ((job.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return TASK_ID_LABEL not in labels and (template.get("labels") or {}).get(POD_APP_LABEL) == POD_APP_VALUE


def adopt_legacy_jobs(
    call: Call, request: Call, refs: Sequence[JobRef], jobs: dict[str, dict[str, Any]]
) -> tuple[list[JobRef], dict[str, dict[str, Any]]]:
    """The refs to observe and the listed Jobs with any legacy Job of theirs adopted.

    A ref whose Job cannot be read this time (not a 404) is held back: no observation this tick,
    rather than a wrong "missing".
    """
    kept: list[JobRef] = []
    for ref in refs:
        if ref.job_name in jobs:
            kept.append(ref)
            continue
        where = f"{ref.namespace}/{ref.job_name}"
        params = {"namespace": ref.namespace, "name": ref.job_name}
        try:
            job = call(f"read Job {where}", request, "GET", JOB_PATH, params)
            if isinstance(job, dict) and is_legacy_job(job):
                job = call(
                    f"label Job {where}",
                    request,
                    "PATCH",
                    JOB_PATH,
                    params,
                    body={"metadata": {"labels": job_labels(int(ref.task_id))}},
                    content_type="application/merge-patch+json",
                )
                logger.info("adopted Job %s of the original nightwatch for task %s", where, ref.task_id)
                jobs = {**jobs, ref.job_name: job}
        except ApiException as exc:
            if exc.status != 404:
                logger.warning("not observing task %s: cannot read Job %s: %s", ref.task_id, where, api_message(exc))
                continue
        except RetryableError as exc:
            logger.warning("not observing task %s: %s", ref.task_id, exc)
            continue
        kept.append(ref)
    return kept, jobs
