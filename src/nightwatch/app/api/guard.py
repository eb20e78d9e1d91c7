"""An ASGI middleware in front of every route: authentication before any body is read, request size
and time limits, JSON-only writes, safe headers.

- A write (POST, PUT, PATCH, DELETE), and any request that carries a body, needs a valid bearer
  token before a byte of its body is read: without one it gets its 401 at once, and the connection
  is closed (a client need not send, and the server never buffers, an anonymous megabyte).
- Bodies over the limit get 413, whether announced by Content-Length or streamed in chunks.
- The whole body must arrive within `body_timeout` seconds of the headers (a client sending a byte
  a second holds a connection, not a replica): else 408, and the connection is closed.
- Writes to /api/ with a body refuse form and multipart encodings (and anything else that is not
  JSON, a missing Content-Type included) with 415. Bearer tokens already make cross-site requests powerless; refusing the encodings an HTML
  form can send keeps it that way should anyone ever add a cookie.
- Every response says nosniff, no framing, no referrer, and a Content-Security-Policy that allows
  only this origin's scripts and styles (the web page has no inline script), unless the route set
  its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nightwatch.app.api.access import AccessPolicy

logger = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        b"frame-ancestors 'none'; form-action 'self'",
    ),
)


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, policy: AccessPolicy, body_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.policy = policy
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope["path"])
        send = _with_headers(send, api=path.startswith("/api/"))
        headers = {k.lower(): v for k, v in scope["headers"]}
        length = headers.get(b"content-length")
        has_body = b"transfer-encoding" in headers or (length is not None and length != b"0")
        if scope["method"] in WRITE_METHODS or has_body:
            refusal = self._unauthenticated(headers.get(b"authorization"))
            if refusal is not None:
                await _reply(send, refusal.status_code, str(refusal.detail), refusal.headers, close=has_body)
                return
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await _reply(send, 413, f"request body over the limit of {self.max_body_bytes} bytes", close=True)
            return
        # The whole body is read here, within the limits, whatever the framing (a chunked body has
        # no Content-Length): the routes then parse a body that is known to be small enough.
        body = bytearray()
        try:
            async with asyncio.timeout(self.body_timeout):
                more = True
                while more:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client went away
                    body += message.get("body", b"")
                    more = bool(message.get("more_body", False))
                    if len(body) > self.max_body_bytes:
                        await _reply(
                            send, 413, f"request body over the limit of {self.max_body_bytes} bytes", close=True
                        )
                        return
        except TimeoutError:
            logger.info(
                "dropped a request whose body took over %.0f s (%d bytes by then)", self.body_timeout, len(body)
            )
            await _reply(send, 408, f"the request body took over {self.body_timeout:g} s", close=True)
            return
        if body and scope["method"] in WRITE_METHODS and path.startswith("/api/"):
            content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if not _is_json(content_type):
                await _reply(send, 415, "send JSON (Content-Type: application/json); form encodings are refused")
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _unauthenticated(self, authorization: bytes | None) -> HTTPException | None:
        """The 401 for a request that needs a token and has no valid one, else None."""
        try:
            caller = self.policy.caller(None if authorization is None else authorization.decode("latin-1"))
            self.policy.require_writer(caller)
        except HTTPException as refusal:
            return refusal
        return None


def _is_json(content_type: bytes) -> bool:
    return content_type == b"application/json" or (
        content_type.startswith(b"application/") and content_type.endswith(b"+json")
    )


def _with_headers(send: Send, *, api: bool) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            extra = [*SECURITY_HEADERS, *([(b"cache-control", b"no-store")] if api else [])]
            # A route that set its own (the web page's CSP, a static file's caching) keeps it: two
            # CSP headers would both be enforced.
            headers += [(name, value) for name, value in extra if name not in present]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _reply(
    send: Send, status: int, detail: str, extra: Mapping[str, str] | None = None, *, close: bool = False
) -> None:
    """Answer without the routes. `close`: the body was not read, so the connection cannot carry
    another request (and must not wait for the rest of this one)."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (extra or {}).items()]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
