"""Run the fake API server as its own process: `python -m tests.fakekube --port 0`.

The first line on stdout is the server's URL (a benchmark reads it); the server runs until killed.
"""

from __future__ import annotations

import argparse
import signal
import sys

from tests.fakekube.server import FakeKubeServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakekube", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--controller", default="off", choices=["off", "timed", "complete"])
    parser.add_argument("--active-after-ms", type=float, default=50.0)
    parser.add_argument("--complete-after-ms", type=float, default=200.0)
    args = parser.parse_args(argv)
    server = FakeKubeServer(args.host, args.port)
    if args.controller != "off":
        server.set_controller(
            args.controller, active_after_ms=args.active_after_ms, complete_after_ms=args.complete_after_ms
        )
    print(server.url, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
