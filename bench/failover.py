"""Failover times of a real cluster: SIGKILL of the leader (the lease must expire) and SIGTERM (it is released).

    .venv/bin/python -m bench.failover [--runs 5] [--ttl 3] [--retry 0.5] [--tick 0.3]

Starts the same cluster as tests/system/test_failover.py (three `nightwatch run` replicas, three
private redis-server masters, a throwaway MariaDB database, the fake Kubernetes API server), feeds
tasks, and per run signals the current leader and times the first Job created by another replica.
Prints one JSON line per run and one summary line (min/median/max) per kind; everything started is
stopped by PID at the end. Needs MariaDB on 127.0.0.1:3306 (root, no password) and redis-server.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.support.cluster import Cluster, duplicate_problems, fencing_violations, handover, interleavings
from tests.support.waiting import wait_until


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per kind (default 5)")
    parser.add_argument("--ttl", type=float, default=3.0, help="lock TTL in seconds (renew: TTL/3)")
    parser.add_argument("--retry", type=float, default=0.5, help="standby retry interval in seconds")
    parser.add_argument("--tick", type=float, default=0.3, help="dispatch interval in seconds")
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {"SIGKILL": [], "SIGTERM": []}
    with tempfile.TemporaryDirectory(prefix="nightwatch-failover-") as tmp:
        cluster = Cluster(Path(tmp), ttl=args.ttl, retry=args.retry, dispatch_interval=args.tick)
        cluster.start()
        try:
            with cluster.feeding(rate_per_second=30):
                for run in range(args.runs):
                    for sig in (signal.SIGKILL, signal.SIGTERM):
                        cluster.restart_dead()
                        wait_until(cluster.leader, 15, what="a leader")
                        time.sleep(args.ttl / 3 * 1.5)  # the new replica is up; let a renewal or two pass
                        result = handover(cluster, sig)
                        result.update(run=run + 1, ttl=args.ttl, retry=args.retry, tick=args.tick)
                        results[result["signal"]].append(result["seconds"])
                        print(json.dumps(result), flush=True)
            cluster.wait_all_terminal()
            problems = interleavings(cluster.creations(), cluster.events())
            problems += fencing_violations(cluster.audit()) + duplicate_problems(cluster)
        finally:
            cluster.stop()
    for kind, times in results.items():
        summary = {
            "summary": kind,
            "runs": len(times),
            "min": min(times),
            "median": round(statistics.median(times), 3),
            "max": max(times),
            "expected_max": round(
                args.ttl + args.retry + args.tick if kind == "SIGKILL" else args.retry + args.tick, 3
            ),
        }
        print(json.dumps(summary), flush=True)
    print(json.dumps({"tasks": cluster.inserted, "problems": problems}), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
