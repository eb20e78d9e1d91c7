"""`WebhookPoster` on httpx: one POST per call, bounded in time, every failure a RetryableError.

One pooled client for all receivers (keep-alive), no redirects followed (a receiver moving is a
configuration change, and a redirect would re-send a signed body somewhere else), and a timeout on
each phase so a receiver that accepts the connection and never answers costs `timeout_seconds`.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from nightwatch.domain.errors import RetryableError

_MAX_ERROR_CHARS = 200


class HttpxWebhookPoster:
    def __init__(self, *, max_connections: int = 16) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.Client(limits=limits, follow_redirects=False, headers={"User-Agent": "nightwatch"})

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float) -> None:
        try:
            response = self._client.post(url, content=body, headers=dict(headers), timeout=timeout_seconds)
        except httpx.TimeoutException:
            raise RetryableError(f"no answer within {timeout_seconds:g}s") from None
        except httpx.HTTPError as error:
            raise RetryableError(f"{type(error).__name__}: {error}"[:_MAX_ERROR_CHARS]) from None
        if not 200 <= response.status_code < 300:
            text = response.text[:_MAX_ERROR_CHARS].strip()
            raise RetryableError(f"HTTP {response.status_code}" + (f": {text}" if text else ""))

    def close(self) -> None:
        self._client.close()
