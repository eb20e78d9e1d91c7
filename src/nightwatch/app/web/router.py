"""Serve the page and its two static files from package data.

The files are read once, when the router is built (never at import time), and the page names them
with a content hash (`static/app.js?v=...`) so a browser never runs an old script against a new API.
Everything is same-origin and there is no inline script or style, so the page works under the strict
Content-Security-Policy it is sent with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

STATIC_FILES: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
"""Every file `/static/{name}` serves, with its content type. Anything else is a 404."""

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The page needs nothing beyond its own origin: no inline code, no CDN, no external fonts."""

_COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    content_type: str
    version: str


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def _load_assets() -> dict[str, _Asset]:
    assets = {}
    for name, content_type in STATIC_FILES.items():
        body = _read(f"static/{name}")
        assets[name] = _Asset(body, content_type, hashlib.sha256(body).hexdigest()[:12])
    return assets


def _render_page(assets: dict[str, _Asset]) -> bytes:
    page = _read("index.html").decode("utf-8")
    for name, asset in assets.items():
        page = page.replace(f"{{{{static:{name}}}}}", f"static/{name}?v={asset.version}")
    return page.encode("utf-8")


def web_router() -> APIRouter:
    """`GET /` (the page) and `GET /static/{name}` (its script and stylesheet)."""
    assets = _load_assets()
    page = _render_page(assets)
    router = APIRouter(include_in_schema=False)

    @router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def index() -> Response:
        headers = {**_COMMON_HEADERS, "Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"}
        return Response(page, media_type="text/html; charset=utf-8", headers=headers)

    @router.api_route("/static/{name}", methods=["GET", "HEAD"])
    def static(name: str) -> Response:
        asset = assets.get(name)
        if asset is None:
            return Response(b"not found\n", status_code=404, media_type="text/plain")
        # The page asks for ?v=<hash>, so a day's caching never serves a stale file after an upgrade.
        headers = {**_COMMON_HEADERS, "Cache-Control": "public, max-age=86400"}
        return Response(asset.body, media_type=asset.content_type, headers=headers)

    return router
