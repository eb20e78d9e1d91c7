"""Every benchmark, one command: `.venv/bin/python -m bench [--quick] [--only NAME ...]`.

Runs against the real MariaDB (throwaway databases, dropped at the end; `--postgres URL` also runs
dispatch, sync and idle on a PostgreSQL server) and the project's fake
Kubernetes API server in its own process (stopped at the end). Prints one JSON line per figure; a
complete full-size run also writes docs/benchmarks.md plus docs/benchmarks-scaling.png. Targets are ratios measured side by
side in the same run, or counts: see docs/benchmarks.md for what each is compared against.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from bench import report, targets
from bench.common import DEFAULT_SERVER, FIGURES, Databases, FakeKube, emit, figures_prefixed

POSTGRES_BENCHMARKS = ["dispatch", "sync", "idle"]
"""What `--postgres` runs a second time on PostgreSQL (the service-level figures of issue 16)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for iterating (docs show the full run)")
    parser.add_argument("--only", nargs="*", choices=targets.ALL, help="run only these benchmarks")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="MariaDB server URL (no database)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also run dispatch, sync and idle on this PostgreSQL server (URL without a database), after "
        "MariaDB, in the same run; its figures are named postgresql.<figure>",
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md (partial and quick runs never do)"
    )
    parser.add_argument("--profile", action="store_true", help="also record py-spy profiles of dispatch and sync")
    parser.add_argument("--tasks", type=int, help="override the dispatch/sync/profile size (iteration aid)")
    args = parser.parse_args(argv)

    sizes = targets.QUICK if args.quick else targets.FULL
    if args.tasks:
        sizes = dataclasses.replace(sizes, dispatch=args.tasks, sync=args.tasks)
    fake, databases = FakeKube(), Databases(args.server)
    postgres = Databases(args.postgres) if args.postgres else None
    started = time.perf_counter()
    emit("environment", mode="quick" if args.quick else "full", fake_kube=fake.url, python=sys.version.split()[0])
    try:
        bench = targets.Bench(fake, databases, sizes)
        for name in args.only or targets.ALL:
            if name == "profile" and not args.profile and not args.only:
                continue
            getattr(bench, name.replace("-", "_"))()
        if postgres is not None:
            with figures_prefixed("postgresql."):
                on_postgres = targets.Bench(fake, postgres, sizes)
                for name in args.only or POSTGRES_BENCHMARKS:
                    if name in POSTGRES_BENCHMARKS:
                        getattr(on_postgres, name)()
    finally:
        fake.stop()
        databases.drop_all()
        if postgres is not None:
            postgres.drop_all()
    emit("total", seconds=round(time.perf_counter() - started, 1))
    # Only a complete full-size run may replace the published figures; a partial or quick run says so.
    complete = not args.quick and not args.only and not args.tasks
    if complete and not args.no_docs:
        report.save(FIGURES)
        report.write(FIGURES, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
