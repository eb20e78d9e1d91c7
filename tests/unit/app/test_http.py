"""HttpEndpoint: uvicorn in a thread on a socket bound up front."""

from __future__ import annotations

import socket

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from nightwatch.app.http import HostAllowList, HttpEndpoint


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_serves_on_a_free_port_over_kept_alive_connections_and_stops() -> None:
    endpoint = HttpEndpoint("127.0.0.1", 0, hello)
    endpoint.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{endpoint.port}", timeout=10) as client:
            assert [client.get("/").text for _ in range(3)] == ["hello"] * 3
    finally:
        endpoint.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{endpoint.port}/", timeout=2)


def test_the_socket_says_tcp_so_asyncio_sets_nodelay_on_each_connection() -> None:
    # With proto 0 asyncio skips TCP_NODELAY, and each request on a kept-alive connection waited for
    # a delayed ACK: 44 ms instead of 0.7 ms per /healthz, measured.
    endpoint = HttpEndpoint("127.0.0.1", 0, hello)
    try:
        assert endpoint._socket.proto == socket.IPPROTO_TCP
    finally:
        endpoint.stop()


def test_a_taken_port_fails_at_once() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            HttpEndpoint("127.0.0.1", taken.getsockname()[1], hello)


@pytest.mark.parametrize(
    ("bound", "names", "accepted", "refused"),
    [
        (
            "127.0.0.1",
            [],
            ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:8080", "localhost."],
            ["evil.example", "10.0.0.5"],
        ),
        ("::1", ["nw.example"], ["[::1]", "nw.example:443", "127.0.0.1"], ["nw.example.evil", "[::2]"]),
        ("10.0.0.5", [], ["10.0.0.5:8080"], ["localhost", "127.0.0.1", "evil.example"]),
        (
            "0.0.0.0",
            ["nw.example"],
            ["nw.example", "10.1.2.3:8080", "[fd00::1]:80", "localhost"],
            ["evil.example", "nw.example.evil"],
        ),
        ("0.0.0.0", [], ["anything.example", "localhost"], []),
    ],
)
def test_the_host_allow_list(bound: str, names: list[str], accepted: list[str], refused: list[str]) -> None:
    allowed = HostAllowList.for_server(bound, names)
    for host in accepted:
        assert allowed.accepts(host.encode()), host
    for host in refused:
        assert not allowed.accepts(host.encode()), host
    assert allowed.accepts(None) is allowed.any_host  # no Host header: only where any Host goes
