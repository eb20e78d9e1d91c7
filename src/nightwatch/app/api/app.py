"""The ASGI application every replica serves: REST API, web page, /healthz, /readyz, /metrics.

Domain errors become HTTP statuses here, one handler per row of `app/errors.py` (the table the
client reads back): TaskNotFound 404, DuplicateTask and InvalidTransition 409, InvalidTaskSpec 422
(every problem as a field error), RetryableError 503 (with Retry-After), any other permanent error
409 with its message. The routes are one module per resource (`tasks.py`, `summary.py`) over the
dependencies in `deps.py`. The interactive docs pages are off (they load scripts from a CDN); the
schema is at /openapi.json.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from nightwatch import __version__
from nightwatch.app.api import summary, tasks
from nightwatch.app.api.access import AccessPolicy
from nightwatch.app.api.deps import ApiBackend, ApiState
from nightwatch.app.api.guard import RequestGuard
from nightwatch.app.config import ApiSettings
from nightwatch.app.counts import CachedCounts
from nightwatch.app.errors import ERRORS, ErrorRow, field_errors
from nightwatch.domain.errors import InvalidTaskSpec

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], "tuple[bool, dict[str, str]]"]

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
) -> FastAPI:
    app = FastAPI(
        title="nightwatch",
        version=__version__,
        description="Submit, list, inspect and cancel tasks. Writes need `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
        default_response_class=AsciiJSONResponse,
    )
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    policy = AccessPolicy(settings, reads_open=reads_open)
    app.state.api = ApiState(backend, policy, CachedCounts(backend.queries, summary.SUMMARY_TTL_SECONDS))
    app.include_router(tasks.router)
    app.include_router(summary.router)
    _add_operations(app, registry, readiness)
    _add_error_handlers(app)
    _add_web_page(app)
    return app


def _add_operations(app: FastAPI, registry: CollectorRegistry, readiness: ReadinessCheck) -> None:
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Response:
        try:
            ready, checks = readiness()
        except Exception as exc:  # a broken check is "not ready", never a 500 without a body
            ready, checks = False, {"error": repr(exc)}
        body = json.dumps({"ready": ready, "checks": checks}) + "\n"  # the same bytes as before the API
        return Response(body, status_code=200 if ready else 503, media_type="application/json")

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
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
        if row.status >= 500:
            logger.warning("API request failed, the client may retry: %s", exc)
        detail: object = field_errors(exc.problems) if isinstance(exc, InvalidTaskSpec) else str(exc)
        return AsciiJSONResponse({"detail": detail}, status_code=row.status, headers=headers)

    return handle


def _add_web_page(app: FastAPI) -> None:
    # The page is its own package; the API works (and its tests run) without it.
    if importlib.util.find_spec(WEB_PACKAGE) is None:
        logger.debug("no %s package: serving the API without the web page", WEB_PACKAGE)
        return
    web = importlib.import_module(WEB_PACKAGE)
    app.include_router(web.web_router())
