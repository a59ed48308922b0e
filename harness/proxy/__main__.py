"""`python -m harness.proxy`: the embedded Toxiproxy-compatible server, standalone.

    python -m harness.proxy --host 127.0.0.1 --port 8474 [--config FILE]

Prints `faultline proxy listening on HOST:PORT` as the first line of stdout once the API answers
(`--port 0` picks a free port), logs one line per API change and per connection event to
stderr, and exits 0 on SIGTERM or SIGINT after closing every proxy and connection.
"""

from __future__ import annotations

import argparse
import sys

from harness.proxy.server import VERSION, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness.proxy",
        description="A Toxiproxy-compatible fault-injecting TCP proxy server (HTTP API).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address of the HTTP API (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8474,
                        help="port of the HTTP API; 0 picks a free one (default 8474)")
    parser.add_argument("--config", metavar="FILE",
                        help="JSON array of proxies to create at start, as POST /populate")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the toxicity draws and jitter, to replay a run")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="INFO logs API changes and connections (default); WARNING only "
                             "problems")
    parser.add_argument("--lifeline", action="store_true",
                        help="exit when stdin closes (the parent holding the pipe has gone)")
    parser.add_argument("--version", action="version", version=VERSION)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args.host, args.port, args.config, seed=args.seed, lifeline=args.lifeline,
               log_level=args.log_level)


if __name__ == "__main__":
    sys.exit(main())
