"""The ASGI application every replica serves: REST API, web page, /healthz, /readyz, /metrics.

Domain errors become HTTP statuses here, one handler per row of `app/errors.py` (the table the
client reads back): TaskNotFound 404, DuplicateTask and InvalidTransition 409, InvalidTaskSpec 422
(every problem as a field error), RetryableError 503 (with Retry-After), any other permanent error
409 with its message; a 503's body says only "database unavailable" (the driver's message can name
the database host; the log keeps it). The routes are one module per resource (`tasks.py`,
`summary.py`) over the dependencies in `deps.py`. The interactive docs pages are off (they load
scripts from a CDN); the schema is at /openapi.json. No route redirects (`redirect_slashes` is off:
Starlette's redirect would echo the request's Host header in its Location).

/healthz and /readyz need no token (probes have none), so they say ok or not ready and nothing
else. /metrics is served here or by `create_metrics_app` on a port of its own, open or behind a
token (`ApiSettings.metrics_are_open`).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from nightwatch import __version__
from nightwatch.app.api import logs, queues, render, schedules, summary, tasks
from nightwatch.app.api.access import AccessPolicy, unauthorized
from nightwatch.app.api.deps import ApiBackend, ApiState
from nightwatch.app.api.guard import RequestGuard
from nightwatch.app.config import ApiSettings, mask_secrets
from nightwatch.app.counts import CachedCounts
from nightwatch.app.errors import ERRORS, ErrorRow, field_errors
from nightwatch.domain.errors import InvalidTaskSpec

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], "tuple[bool, dict[str, str]]"]

UNAVAILABLE = "database unavailable"
"""The whole body of a 503 (and /readyz's reason when the database does not answer)."""

WEB_PACKAGE = "nightwatch.app.web"


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped. A request may carry lone surrogates (JSON allows
    `"\\ud800"`) that UTF-8 cannot encode: echoed in an error message, they made a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def create_app(
    backend: ApiBackend,
    settings: ApiSettings,
    *,
    reads_open: bool,
    registry: CollectorRegistry,
    readiness: ReadinessCheck,
    metrics_open: bool | None = True,
    body_timeout_seconds: float = 30.0,
) -> FastAPI:
    """The app. `metrics_open`: whether /metrics needs no token; None: /metrics is not served here
    (`create_metrics_app` serves it on a port of its own)."""
    app = FastAPI(
        title="nightwatch",
        version=__version__,
        description="Submit, list, inspect and cancel tasks. Writes need `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
        default_response_class=AsciiJSONResponse,
        redirect_slashes=False,
    )
    policy = AccessPolicy(settings, reads_open=reads_open)
    app.add_middleware(
        RequestGuard, max_body_bytes=settings.max_body_bytes, policy=policy, body_timeout=body_timeout_seconds
    )
    app.state.api = ApiState(backend, policy, CachedCounts(backend.queries, summary.SUMMARY_TTL_SECONDS))
    app.include_router(tasks.router)
    app.include_router(render.router)
    app.include_router(logs.router)
    app.include_router(queues.router)
    app.include_router(summary.router)
    app.include_router(schedules.router)
    _add_probes(app, readiness)
    if metrics_open is not None:
        _add_metrics(app, registry, AccessPolicy(settings, reads_open=metrics_open))
    _add_error_handlers(app)
    _add_web_page(app)
    return app


def create_metrics_app(
    settings: ApiSettings, *, metrics_open: bool, registry: CollectorRegistry, body_timeout_seconds: float = 30.0
) -> FastAPI:
    """/metrics alone, for a port of its own (`http.metrics_port`): the manifests let only the
    monitoring namespace reach it."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    policy = AccessPolicy(settings, reads_open=metrics_open)
    app.add_middleware(
        RequestGuard, max_body_bytes=settings.max_body_bytes, policy=policy, body_timeout=body_timeout_seconds
    )
    _add_metrics(app, registry, policy)
    return app


def _add_probes(app: FastAPI, readiness: ReadinessCheck) -> None:
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    last_logged: list[object] = [None]  # what the log last said, so a failing probe logs once, not every 5 s

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Response:
        try:
            ready, checks = readiness()
        except Exception as exc:  # a broken check is "not ready", never a 500 without a body
            ready, checks = False, {"error": repr(exc)}
        database_ok = checks.get("database", "ok") == "ok" and "error" not in checks
        if not ready and last_logged[0] != checks:
            logger.warning("not ready: %s", mask_secrets(", ".join(f"{k} {v}" for k, v in checks.items())))
        elif ready and last_logged[0] not in (None, "ready"):
            logger.info("ready again")
        last_logged[0] = "ready" if ready else dict(checks)
        # Nothing but ready or not, and why in three words: no driver message, no host name, no role.
        content: dict[str, object] = {"ready": ready}
        if not ready:
            content["detail"] = UNAVAILABLE if not database_ok else "not ready"
        return Response(json.dumps(content) + "\n", status_code=200 if ready else 503, media_type="application/json")


def _add_metrics(app: FastAPI, registry: CollectorRegistry, policy: AccessPolicy) -> None:
    @app.get("/metrics", include_in_schema=False)
    def metrics(authorization: str | None = Header(default=None)) -> Response:
        if not policy.reads_open and not policy.caller(authorization).authenticated:
            raise unauthorized("/metrics needs a bearer token (api.metrics is token)")
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _add_error_handlers(app: FastAPI) -> None:
    async def unprocessable(_request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's shape without `input`: the request's own (possibly 1 MiB) content is not echoed.
        assert isinstance(exc, RequestValidationError)
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return AsciiJSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    app.add_exception_handler(RequestValidationError, unprocessable)
    for row in ERRORS:
        app.add_exception_handler(row.error, _domain_error_handler(row))


def _domain_error_handler(row: ErrorRow) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    headers = dict(row.headers) or None

    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        detail: object = field_errors(exc.problems) if isinstance(exc, InvalidTaskSpec) else str(exc)
        if row.status >= 500:
            logger.warning("API request failed, the client may retry: %s", mask_secrets(str(exc)))
            detail = UNAVAILABLE  # the driver's message may name the database host: the log keeps it
        return AsciiJSONResponse({"detail": detail}, status_code=row.status, headers=headers)

    return handle


def _add_web_page(app: FastAPI) -> None:
    # The page is its own package; the API works (and its tests run) without it.
    if importlib.util.find_spec(WEB_PACKAGE) is None:
        logger.debug("no %s package: serving the API without the web page", WEB_PACKAGE)
        return
    web = importlib.import_module(WEB_PACKAGE)
    app.include_router(web.web_router())
