"""`JobLogs` on the API server: the log of container `task` in the pod of a task's Job (`pods/log`).

The pods of a Job are found by the `job-name` label the Job controller puts on them (one list per
read); with `backoffLimit` a Job may have made several, and the newest (by creation time, then name)
is the current try. A follow is one long `pods/log?follow=true` request read in chunks with a read
timeout, so a silent container or a cut connection ends the stream instead of blocking forever; the
caller (`ReadTaskLogs`) reconnects while the task runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from nightwatch.adapters.kubernetes.api import KubeApi, why_no_job_can_exist
from nightwatch.adapters.kubernetes.jobbody import CONTAINER_NAME
from nightwatch.adapters.kubernetes.retry import api_message
from nightwatch.domain.errors import LogsUnavailable, RetryableError
from nightwatch.domain.ports import JobRef

logger = logging.getLogger(__name__)

_LOG_PATH = "/api/v1/namespaces/{namespace}/pods/{name}/log"
CHUNK_BYTES = 16 * 1024


class KubernetesJobLogs:
    def __init__(
        self,
        api: KubeApi,
        *,
        request_timeout_seconds: float,
        read_timeout_seconds: float = 30.0,
        background: bool = False,
    ) -> None:
        """`background`: its requests take only the rate limiter's spare tokens (capturing every finished
        attempt's output must not delay a create; a user reading a log goes first)."""
        self._api = api
        self._timeout = request_timeout_seconds
        self._read_timeout = read_timeout_seconds
        self._background = background

    def read(self, ref: JobRef, *, tail_lines: int | None, limit_bytes: int) -> bytes:
        pod = self._newest_pod(ref)
        # limitBytes counts from the start, and we want the end: stream it, keeping the last bytes only
        # (memory stays bounded by limit_bytes whatever the log's size).
        response = self._open(ref, pod, _query(tail_lines, follow=False), timeout=self._timeout)
        kept = bytearray()
        try:
            for chunk in response.stream(CHUNK_BYTES, decode_content=True):
                kept += chunk
                if len(kept) > 2 * limit_bytes + CHUNK_BYTES:
                    del kept[: len(kept) - limit_bytes]
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise RetryableError(f"the log of pod {ref.namespace}/{pod} was cut: {error}") from None
        finally:
            response.release_conn()
        return bytes(kept[-limit_bytes:]) if limit_bytes > 0 else b""

    def follow(self, ref: JobRef, *, tail_lines: int | None, limit_bytes: int) -> Iterator[bytes]:
        pod = self._newest_pod(ref)
        query = [*_query(tail_lines, follow=True), ("limitBytes", max(limit_bytes, 1))]
        response = self._open(ref, pod, query, timeout=(self._timeout, self._read_timeout))
        return self._chunks(response)

    @staticmethod
    def _chunks(response: Any) -> Iterator[bytes]:
        try:
            yield from response.stream(CHUNK_BYTES, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            # A cut stream or a read timeout: the output so far was sent; the caller looks again.
            logger.debug("log stream ended: %s", error)
        finally:
            response.release_conn()

    def _newest_pod(self, ref: JobRef) -> str:
        impossible = why_no_job_can_exist(ref)
        if impossible:
            raise LogsUnavailable(impossible)
        pods = list(
            self._api.list(
                ref.namespace,
                "/api/v1/namespaces/{namespace}/pods",
                "pods",
                label_selector=f"job-name={ref.job_name}",
                background=self._background,
            )
        )
        named = [p for p in pods if isinstance((p.get("metadata") or {}).get("name"), str)]
        if not named:
            raise LogsUnavailable(f"Job {ref.namespace}/{ref.job_name} has no pod (yet, or any more)")
        newest = max(named, key=lambda p: (str(p["metadata"].get("creationTimestamp") or ""), p["metadata"]["name"]))
        return str(newest["metadata"]["name"])

    def _open(self, ref: JobRef, pod: str, query: list[tuple[str, Any]], *, timeout: Any) -> Any:
        self._api.calls.throttle(background=self._background)
        try:
            return self._api.request(
                "GET",
                _LOG_PATH,
                {"namespace": ref.namespace, "name": pod},
                query=[("container", CONTAINER_NAME), *query],
                _request_timeout=timeout,
            )
        except ApiException as error:
            if error.status in (400, 404):
                # 404: the pod went; 400: its container is not running yet ("waiting to start").
                raise LogsUnavailable(f"no log for pod {ref.namespace}/{pod}: {api_message(error)}") from None
            raise RetryableError(f"cannot read the log of pod {ref.namespace}/{pod}: {api_message(error)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise RetryableError(f"cannot read the log of pod {ref.namespace}/{pod}: {error}") from None


def _query(tail_lines: int | None, *, follow: bool) -> list[tuple[str, Any]]:
    query: list[tuple[str, Any]] = []
    if follow:
        query.append(("follow", "true"))
    if tail_lines is not None:
        query.append(("tailLines", max(tail_lines, 0)))
    return query
