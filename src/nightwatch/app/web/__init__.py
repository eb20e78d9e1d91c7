"""The web page at `/`: one HTML page, one script and one stylesheet that talk to the REST API.

`web_router()` is included by the API's app factory. The page holds no data of its own: the script
reads and writes tasks through `/api/v1` with fetch, so everything the page can do, the API checks.
"""

from __future__ import annotations

from nightwatch.app.web.router import PAGE_CSP, STATIC_FILES, web_router

__all__ = ["PAGE_CSP", "STATIC_FILES", "web_router"]
