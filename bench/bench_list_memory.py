"""Benchmark: a replica's RSS under 50 concurrent largest-page listings (issue 14, point 2).

Not a test. Seeds a throwaway MariaDB database (created and dropped here) with rows of maximal
`info` (256 KiB of 2-byte characters each, ~786 KB once the API escapes it), starts `nightwatch run`
on it in its own process, fires `--concurrency` simultaneous `GET /api/v1/tasks?limit=500` (threads,
httpx, each response streamed and counted, never held), and samples the server's RSS (psutil)
before, at the peak and after. With `--baseline REV` it first does the same for the code of that git
revision (its `src/`, exported to a temporary directory and put first on the server's PYTHONPATH),
so old and new are measured side by side in one run. Prints one JSON line per figure:

    .venv/bin/python bench/bench_list_memory.py --baseline 76f361c [--concurrency 50] [--rows 600]

A side whose server passes `--ceiling-mb` is stopped there (and reported so): listing whole rows,
50 requests at once would take tens of GB, more than this machine has.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import sqlalchemy as sa

from nightwatch.adapters.sql import create_engine_for, init_database
from nightwatch.domain.jobspec import MAX_INFO_BYTES

REPO = Path(__file__).resolve().parent.parent
PAGE = 500
MB = 1024 * 1024


def emit(**figure: Any) -> None:
    print(json.dumps(figure), flush=True)


def maximal_info(n: int) -> str:
    """A valid info of exactly MAX_INFO_BYTES in UTF-8, of 2-byte characters."""
    head = json.dumps({"image": "busybox", "n": n, "pad": ""}, ensure_ascii=False)[:-2]
    room = MAX_INFO_BYTES - len(head.encode()) - 2
    return head + "\u00e9" * (room // 2) + "x" * (room % 2) + '"}'


def seed(url: str, rows: int) -> None:
    """Finished rows (no watcher touches them), each with maximal info and a 4000-character message."""
    engine = create_engine_for(url)
    insert = sa.text(
        "INSERT INTO task (name, namespace, info, status, user_id, message, job_name, version) "
        "VALUES (:name, 'default', :info, 'Succeeded', 1, :message, :name, 3)"
    )
    message = ("output tail " * 400)[:4000]
    for start in range(0, rows, 20):
        batch = [
            {"name": f"big-{n:05d}", "info": maximal_info(n), "message": message}
            for n in range(start, min(rows, start + 20))
        ]
        with engine.begin() as conn:
            conn.execute(insert, batch)
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def limit_memory(ceiling_mb: int) -> None:
    """In the server's child: a backstop address-space limit, so a runaway side gets MemoryError
    instead of the machine's OOM killer (which might pick MariaDB). RSS is watched more tightly."""
    cap = (ceiling_mb + 4096) * MB
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def start_server(src: Path, url: str, workdir: Path, ceiling_mb: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NIGHTWATCH_")},
        "PYTHONPATH": str(src),
        "NIGHTWATCH_DATABASE__URL": url,
        "NIGHTWATCH_RUNNER__LOCAL_STATE_DIR": str(workdir / "jobs"),
        "NIGHTWATCH_HTTP__PORT": str(port),
        "NIGHTWATCH_LOG__LEVEL": "WARNING",
    }
    log = (workdir / "run.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "nightwatch.app.cli", "run"],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: limit_memory(ceiling_mb),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server ({src}) did not start: see {workdir / 'run.log'}")
        time.sleep(0.1)


class RssSampler(threading.Thread):
    """The server's RSS every 10 ms; stops the server if it passes the ceiling."""

    def __init__(self, process: psutil.Process, ceiling_mb: int) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.ceiling = ceiling_mb * MB
        self.peak = 0
        self.killed_at: float | None = None
        self.halt = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                rss = self.process.memory_info().rss
            except psutil.NoSuchProcess:
                return
            self.peak = max(self.peak, rss)
            if rss > self.ceiling:
                self.killed_at = time.monotonic() - self.started
                self.process.kill()
                return
            time.sleep(0.01)


def fetch(base: str, results: list[dict[str, Any]], gate: threading.Barrier) -> None:
    gate.wait()
    started = time.monotonic()
    size = 0
    try:
        with httpx.Client(timeout=600) as client, client.stream("GET", f"{base}/api/v1/tasks?limit={PAGE}") as r:
            for chunk in r.iter_bytes():
                size += len(chunk)
            results.append({"status": r.status_code, "bytes": size, "seconds": time.monotonic() - started})
    except httpx.HTTPError as error:
        results.append({"status": None, "bytes": size, "error": type(error).__name__})


def measure(side: str, src: Path, url: str, concurrency: int, ceiling_mb: int) -> None:
    with tempfile.TemporaryDirectory(prefix=f"nw-bench-{side}-") as tmp:
        server, base = start_server(src, url, Path(tmp), ceiling_mb)
        try:
            watched = psutil.Process(server.pid)
            httpx.get(f"{base}/api/v1/tasks?limit=1", timeout=30).raise_for_status()  # imports, pools warm
            time.sleep(1)
            before = watched.memory_info().rss
            sampler = RssSampler(watched, ceiling_mb)
            sampler.start()
            results: list[dict[str, Any]] = []
            gate = threading.Barrier(concurrency)
            threads = [threading.Thread(target=fetch, args=(base, results, gate)) for _ in range(concurrency)]
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
            time.sleep(2)
            alive = server.poll() is None
            after = watched.memory_info().rss if alive else None
            sampler.halt.set()
            sampler.join()
            answered = [r for r in results if r["status"] == 200]
            emit(
                figure="list_memory",
                side=side,
                concurrency=concurrency,
                rss_before_mb=round(before / MB, 1),
                rss_peak_mb=round(sampler.peak / MB, 1),
                rss_after_mb=round(after / MB, 1) if after is not None else None,
                stopped_at_ceiling_mb=ceiling_mb if sampler.killed_at is not None else None,
                stopped_after_s=round(sampler.killed_at, 2) if sampler.killed_at is not None else None,
                answered=len(answered),
                page_bytes=max((r["bytes"] for r in answered), default=None),
                seconds=round(elapsed, 2),
            )
        finally:
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(15)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()


def exported_src(revision: str, into: Path) -> Path:
    """`src/` of `revision`, exported (git archive) under `into`: no worktree, no checkout."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="mysql+pymysql://root@127.0.0.1:3306")
    parser.add_argument("--rows", type=int, default=600, help="seeded rows (at least one full page)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision's code, first")
    parser.add_argument("--ceiling-mb", type=int, default=3072, help="stop a server whose RSS passes this")
    args = parser.parse_args()

    name = f"nightwatch_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(args.server)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    url = f"{args.server}/{name}"
    try:
        init_database(url)
        started = time.monotonic()
        seed(url, args.rows)
        emit(figure="seed", rows=args.rows, info_bytes=MAX_INFO_BYTES, seconds=round(time.monotonic() - started, 1))
        with tempfile.TemporaryDirectory(prefix="nw-bench-src-") as tmp:
            sides = [("baseline", exported_src(args.baseline, Path(tmp)))] if args.baseline else []
            for side, src in [*sides, ("current", REPO / "src")]:
                measure(side, src, url, args.concurrency, args.ceiling_mb)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


if __name__ == "__main__":
    main()
