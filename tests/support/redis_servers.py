"""Private `redis-server` processes for tests that must kill, freeze or restart a Redis master.

The shared Redis at 127.0.0.1:6379 belongs to everyone and is never stopped; these servers belong to
the test that started them, listen on free ports, keep their files in a temp dir and are stopped by
PID (never by name). Reused by the Redlock tests and the multi-replica system tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.support.services import in_ci, require_service

SHARED_REDIS_HOST = "127.0.0.1"
SHARED_REDIS_PORT = 6379


def require_shared_redis() -> str:
    """The shared Redis URL if it is reachable; otherwise fail (CI=true) or skip, like every service."""
    require_service(SHARED_REDIS_HOST, SHARED_REDIS_PORT, "Redis")
    return f"redis://{SHARED_REDIS_HOST}:{SHARED_REDIS_PORT}/0"


def redis_server_binary() -> str:
    """The redis-server executable; missing, it fails the test under CI=true and skips it elsewhere."""
    path = shutil.which("redis-server")
    if path is not None:
        return path
    if in_ci():
        pytest.fail("redis-server is not installed (CI=true: integration services must be available)", pytrace=False)
    pytest.skip("redis-server is not installed")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One private redis-server: start, kill, freeze (SIGSTOP), resume, restart on the same port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart, on the same port) and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)]
        argv += ["--logfile", str(self.workdir / "redis.log")]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server on port {self.port} exited: {log}")
                try:
                    if client.ping():
                        return
                except (redis.RedisError, OSError):
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"redis-server on port {self.port} did not answer") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL by PID: a crash, no goodbye to clients."""
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM by PID (SIGKILL if it lingers)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.resume()  # a stopped process would not act on SIGTERM
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (the worst kind of dead)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()


class RedisServers:
    """N private redis-servers under one directory."""

    def __init__(self, count: int, base_dir: Path) -> None:
        self.servers = [RedisServer(base_dir / f"redis-{i}") for i in range(count)]

    def __getitem__(self, index: int) -> RedisServer:
        return self.servers[index]

    def __len__(self) -> int:
        return len(self.servers)

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self) -> None:
        try:
            for server in self.servers:
                for attempt in range(3):
                    try:
                        server.start()
                        break
                    except RuntimeError:
                        # Another process may have taken the free port between probe and bind.
                        if attempt == 2:
                            raise
                        server.port = free_port()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@contextmanager
def redis_servers(count: int, base_dir: Path) -> Iterator[RedisServers]:
    """Start `count` private redis-servers; stop them (by PID) on exit, whatever happened."""
    group = RedisServers(count, base_dir)
    group.start()
    try:
        yield group
    finally:
        group.stop()
