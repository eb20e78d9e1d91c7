"""`KubeApi`: how the adapter's parts reach the API server, so that none of them builds requests itself.

Launch, observation and release share one client, one `ApiCaller` (rate limit, timeout, retries) and
two request paths that bypass the generated client's models: a raw request (`request`) and a
paginated list (`list`) that follows the continue-token rules below. A ref whose namespace or Job
name is not a Kubernetes name gets no request at all (`why_no_job_can_exist`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from nightwatch.adapters.kubernetes.jobbody import MANAGED_SELECTOR
from nightwatch.adapters.kubernetes.retry import ApiCaller, api_message
from nightwatch.domain.errors import InvalidTaskSpec, RetryableError
from nightwatch.domain.names import check_dns1123_label
from nightwatch.domain.ports import JobRef

logger = logging.getLogger(__name__)

MAX_EXPIRED_CONTINUES = 3
"""Expired continue tokens tolerated per list before the namespace is left unobserved for the tick."""


class ListForbidden(RetryableError):
    """A list answered 403: nightwatch's RBAC does not (yet) allow it in that namespace."""


class KubeApi:
    def __init__(self, api_client: client.ApiClient, calls: ApiCaller, *, page_size: int) -> None:
        self.client = api_client
        self.calls = calls
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self._page_size = page_size

    def create_job(self, namespace: str, body: dict[str, Any], **options: Any) -> Any:
        """POST a Job body (a plain dict), skipping the model layer (see `request`)."""
        return self.request(
            "POST", "/apis/batch/v1/namespaces/{namespace}/jobs", {"namespace": namespace}, body=body, **options
        )

    def request(
        self,
        method: str,
        resource_path: str,
        path_params: dict[str, str],
        *,
        query: list[tuple[str, Any]] | None = None,
        body: dict[str, Any] | list[dict[str, Any]] | None = None,
        content_type: str = "application/json",
        _preload_content: bool = False,
        _request_timeout: float | tuple[float, float] | None = None,
    ) -> Any:
        """One request through the ApiClient's own request path, without the generated methods.

        The generated methods validate their arguments with pydantic (`create_namespaced_job`
        turns the body dict into a `V1Job` and back: ~15% of a launch; the first call of each
        method builds its validator) and build models from responses. `build_job_body` already
        makes the exact JSON, and the adapter reads responses as raw JSON. The URL, headers,
        authentication (token refresh included) and errors are the client's own: a non-2xx
        status raises `ApiException`. Returns the raw urllib3 response, like the generated
        methods with `_preload_content=False`.
        """
        method, url, headers, _, _ = self.client.param_serialize(
            method=method,
            resource_path=resource_path,
            path_params=path_params,
            query_params=query,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            auth_settings=["BearerToken"],
        )
        response = self.client.call_api(
            method, url, header_params=headers, body=body, _request_timeout=_request_timeout
        )
        if not 200 <= response.status <= 299:
            response.read()  # type: ignore[no-untyped-call]
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def list_jobs_or_error(self, namespace: str) -> dict[str, dict[str, Any]] | RetryableError:
        """name -> Job, for every nightwatch Job of `namespace`; the error if the namespace cannot be read."""
        try:
            return {
                name: job
                for job in self.list(namespace, "/apis/batch/v1/namespaces/{namespace}/jobs", "Jobs")
                if isinstance(name := (job.get("metadata") or {}).get("name"), str)
            }
        except RetryableError as exc:
            return exc

    def list(
        self,
        namespace: str,
        path: str,
        what: str,
        *,
        field_selector: str | None = None,
        label_selector: str | None = MANAGED_SELECTOR,
        log_forbidden: bool = True,
        versions: list[str] | None = None,
        background: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Every nightwatch object of a kind in a namespace (Events: every one the field selector
        matches, they carry no labels of ours): one list call per page.

        A continue token that expired mid-listing (410, etcd compacted its revision) is replaced by the
        fresh one the Status carries, at most MAX_EXPIRED_CONTINUES times: the remainder it gives is read
        at the current revision, so a Job that exists throughout is on some page, which is all observe
        needs (a Job missing from the list would be reported missing). Without a fresh token the list
        starts over (items already yielded may come again). A token the server calls malformed (400)
        starts the list over once. Past those bounds the namespace is not observed this tick.

        A 403 raises `ListForbidden`, logged as an RBAC problem unless `log_forbidden` is False (the
        caller then says it, as often as it sees fit); any other failure a `RetryableError`.

        `versions`, if given, gets each page's `metadata.resourceVersion` (the first is the list's: a
        watch resumes from it).
        """
        token: str | None = None
        expired = malformed = 0
        while True:
            query: list[tuple[str, Any]] = [("limit", self._page_size)]
            if label_selector:
                query.insert(0, ("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if token:
                query.append(("continue", token))
            try:
                page = self.calls.call(
                    f"list {what} in {namespace}",
                    self.request,
                    "GET",
                    path,
                    {"namespace": namespace},
                    query=query,
                    background=background,
                )
            except ApiException as exc:
                if token and exc.status == 410 and expired < MAX_EXPIRED_CONTINUES:
                    expired += 1
                    token = _fresh_continue(exc)
                    logger.info(
                        "listing %s in %s: the continue token expired, %s",
                        what,
                        namespace,
                        "going on from the server's fresh token" if token else "starting over",
                    )
                    continue
                if token and exc.status == 400 and not malformed:
                    malformed += 1
                    token = None
                    logger.warning(
                        "listing %s in %s: the server refused our continue token, starting over", what, namespace
                    )
                    continue
                message = f"cannot list {what} in {namespace}: {api_message(exc)}"
                if exc.status == 403:
                    if log_forbidden:
                        logger.error(
                            "listing %s forbidden in namespace %s: check nightwatch's RBAC: %s",
                            what,
                            namespace,
                            api_message(exc),
                        )
                    raise ListForbidden(message) from None
                raise RetryableError(message) from None
            if versions is not None:
                version = (page.get("metadata") or {}).get("resourceVersion")
                if isinstance(version, str) and version:
                    versions.append(version)
            yield from page.get("items") or ()
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return


def _fresh_continue(exc: ApiException) -> str | None:
    """The `metadata.continue` of a 410 Expired Status (the remainder at the current revision), if any."""
    try:
        status = json.loads(exc.body or "")
    except (ValueError, TypeError):
        return None
    metadata = status.get("metadata") if isinstance(status, dict) else None
    token = metadata.get("continue") if isinstance(metadata, dict) else None
    return token if isinstance(token, str) and token else None


def why_no_job_can_exist(ref: JobRef) -> str:
    """Why no Job can exist for `ref` (its namespace or name is not a Kubernetes name), or ""."""
    try:
        check_dns1123_label(ref.namespace, "namespace")
        check_dns1123_label(ref.job_name, "Job name")
    except InvalidTaskSpec as exc:
        return f"no Job can exist for this task: {exc}"
    return ""
