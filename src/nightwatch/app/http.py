"""The `run` process's HTTP ports: the ASGI app (REST API, web page, /healthz, /readyz, and /metrics
unless it has a port of its own) served by uvicorn in a background thread per port.

The socket is bound in the constructor, so a taken port fails `nightwatch run` at once with an
OSError, and `port` is known before the server thread starts (port 0 picks a free one).

What a client may hold, and for how long (`HttpSettings`):
- its request line and headers: `max_header_bytes`, complete within `header_timeout_seconds` of
  connecting or of the previous response. uvicorn has no such timeout (its keep-alive timer stops at
  the first byte of the next request), so `_HeaderTimeoutProtocol` adds one to uvicorn's h11
  protocol, which is why the server is told `http=` that class rather than left to pick httptools;
- its body: within `body_timeout_seconds` of the headers (`api/guard.py`, which also authenticates a
  request before reading its body);
- an idle kept-alive connection: `keep_alive_seconds`;
- a connection at all: `max_connections` at once; a request beyond them gets 503 at once.

Every request's Host must be one this server answers to (`HostAllowList`): a DNS-rebinding page
(evil.example resolving to 127.0.0.1) sends its own name, and gets 400.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from nightwatch.app.config import HttpSettings, is_loopback

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5
"""How long requests in flight may take to finish once the server is told to stop."""

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


@dataclass(frozen=True, slots=True)
class HostAllowList:
    """The Host header values (without port) a server answers to. `ip_literals`: any IP address too
    (bound to a wildcard address, the machine's addresses are not known up front; a page whose origin
    is an IP address is that address's own, so no rebinding). None of this applies when `any_host`."""

    names: frozenset[str]
    ip_literals: bool = False
    any_host: bool = False

    @classmethod
    def for_server(cls, bound: str, configured: Iterable[str]) -> HostAllowList:
        names = {name.lower().strip("[]") for name in configured}
        bound = bound.strip("[]").lower()
        if bound in WILDCARD_HOSTS:  # loopback listens too: localhost is no one else's name
            return cls(frozenset(names | {"localhost"}), ip_literals=True, any_host=not names)
        names.add(bound)
        if is_loopback(bound):
            names |= {"localhost", "127.0.0.1", "::1"}
        return cls(frozenset(names))

    def accepts(self, host_header: bytes | None) -> bool:
        if self.any_host:
            return True
        if host_header is None:
            return False
        name = _host_name(host_header.decode("latin-1"))
        if name in self.names:
            return True
        if self.ip_literals:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                return False
            return True
        return False


def _host_name(value: str) -> str:
    """`example.com:8080` -> `example.com`, `[::1]:8080` -> `::1`, lower case, no trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):
        name = value[1 : value.find("]")] if "]" in value else value
    else:
        name = value.rpartition(":")[0] if value.count(":") == 1 else value
    return name.rstrip(".")


class HostCheck:
    """ASGI middleware: 400 for a request whose Host the allow-list does not accept."""

    def __init__(self, app: ASGIApp, allowed: HostAllowList) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.allowed.accepts(dict(scope["headers"]).get(b"host")):
            body = json.dumps({"detail": "unknown Host header (http.allowed_hosts lists the names served)"}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _header_timeout_protocol(timeout: float) -> type[H11Protocol]:
    class _HeaderTimeoutProtocol(H11Protocol):
        """uvicorn's h11 protocol, plus: a request's headers must be complete within `timeout` of the
        connection opening or of the previous response ending, or the connection is closed."""

        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if not self._waiting_for_a_request():
                self._disarm_header_timer()  # a request's headers arrived: the body has its own timeout

        def on_response_complete(self) -> None:
            self._arm_header_timer()  # first: this may parse a pipelined request, which disarms it
            super().on_response_complete()

        def _waiting_for_a_request(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm_header_timer(self) -> None:
            self._disarm_header_timer()
            self._header_timer = self.loop.call_later(timeout, self._headers_too_slow)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self._waiting_for_a_request() and not self.transport.is_closing():
                logger.info("closed a connection whose request headers took over %.0f s", timeout)
                self.transport.close()

    return _HeaderTimeoutProtocol


class HttpEndpoint:
    def __init__(self, host: str, port: int, app: ASGIApp, *, settings: HttpSettings | None = None) -> None:
        settings = settings or HttpSettings()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
        # without it every request on a kept-alive connection waited ~40 ms (Nagle vs delayed ACK).
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host.strip("[]"), port))
        except OSError:
            self._socket.close()
            raise
        self._host = host
        self._port = int(self._socket.getsockname()[1])
        self.allowed_hosts = HostAllowList.for_server(host, settings.allowed_hosts)
        config = uvicorn.Config(
            HostCheck(app, self.allowed_hosts),
            log_config=None,  # nightwatch's own logging configuration stays in charge
            access_log=False,
            lifespan="off",
            server_header=False,
            http=_header_timeout_protocol(settings.header_timeout_seconds),
            h11_max_incomplete_event_size=settings.max_header_bytes,
            timeout_keep_alive=settings.keep_alive_seconds,
            limit_concurrency=settings.max_connections,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name=f"http-{self._port}", daemon=True)

    @property
    def port(self) -> int:
        return self._port

    def start(self, what: str = "the API, the web page, /healthz, /readyz and /metrics") -> None:
        self._thread.start()
        logger.info("serving %s on %s:%d", what, self._host, self.port)
        if self.allowed_hosts.any_host:
            logger.warning(
                "listening on %s with no http.allowed_hosts: any Host header is answered, so a page "
                "whose name resolves to this machine (DNS rebinding) can read what anonymous reads allow; "
                "list the names clients use in http.allowed_hosts",
                self._host,
            )

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(SHUTDOWN_GRACE_SECONDS + 5)
        self._socket.close()

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except Exception:
            logger.exception("the HTTP server stopped unexpectedly")


class HttpServer:
    """What `nightwatch run` serves: the main port, and /metrics's own port when one is configured."""

    def __init__(self, host: str, settings: HttpSettings, app: ASGIApp, metrics_app: ASGIApp | None) -> None:
        self.main = HttpEndpoint(host, settings.port, app, settings=settings)
        self.metrics: HttpEndpoint | None = None
        if metrics_app is not None and settings.metrics_port is not None:
            try:
                self.metrics = HttpEndpoint(host, settings.metrics_port, metrics_app, settings=settings)
            except OSError:
                self.main.stop()
                raise

    def start(self) -> None:
        if self.metrics is None:
            self.main.start()
            return
        self.main.start("the API, the web page, /healthz and /readyz")
        self.metrics.start("/metrics")

    def stop(self) -> None:
        for endpoint in (self.main, self.metrics):
            if endpoint is not None:
                endpoint.stop()
