"""The REST API (FastAPI) and the ASGI application that serves it with the web page and probes."""

from __future__ import annotations

from nightwatch.app.api.app import create_app, create_metrics_app
from nightwatch.app.api.deps import ApiBackend

__all__ = ["ApiBackend", "create_app", "create_metrics_app"]
