"""An ASGI middleware in front of every route: request size limit, JSON-only writes, safe headers.

- Bodies over the limit get 413, whether announced by Content-Length or streamed in chunks.
- Writes to /api/ with a body refuse form and multipart encodings (and anything else that is not
  JSON, a missing Content-Type included) with 415. Bearer tokens already make cross-site requests powerless; refusing the encodings an HTML
  form can send keeps it that way should anyone ever add a cookie.
- Every response says nosniff, no framing, no referrer, and a Content-Security-Policy that allows
  only this origin's scripts and styles (the web page has no inline script), unless the route set
  its own.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope["path"])
        send = _with_headers(send, api=path.startswith("/api/"))
        headers = {k.lower(): v for k, v in scope["headers"]}
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await _reply(send, 413, f"request body over the limit of {self.max_body_bytes} bytes")
            return
        # The whole body is read here, within the limit, whatever the framing (a chunked body has
        # no Content-Length): the routes then parse a body that is known to be small enough.
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_body_bytes:
                await _reply(send, 413, f"request body over the limit of {self.max_body_bytes} bytes")
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


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
