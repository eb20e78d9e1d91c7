"""The `run` process's one HTTP port: the ASGI app (REST API, web page, /healthz, /readyz,
/metrics) served by uvicorn in a background thread.

The socket is bound in the constructor, so a taken port fails `nightwatch run` at once with an
OSError, and `port` is known before the server thread starts (port 0 picks a free one).
"""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn
from starlette.types import ASGIApp

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5
"""How long requests in flight may take to finish once the server is told to stop."""


class HttpEndpoint:
    def __init__(self, host: str, port: int, app: ASGIApp) -> None:
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
        config = uvicorn.Config(
            app,
            log_config=None,  # nightwatch's own logging configuration stays in charge
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        self._thread.start()
        logger.info("serving the API, the web page, /healthz, /readyz and /metrics on %s:%d", self._host, self.port)

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
