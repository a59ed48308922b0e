"""`faultline proxy`: the embedded Toxiproxy-compatible server on its own."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    """Add `proxy` to the `faultline` parser."""
    p = sub.add_parser(
        "proxy", help="run the embedded Toxiproxy-compatible server",
        description="Serve the Toxiproxy HTTP API (proxies, toxics, populate, reset, "
                    "version) in pure Python, so that any Toxiproxy client works without "
                    "the Go server. Stops cleanly on Ctrl-C or SIGTERM.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                                                       "127.0.0.1)")
    p.add_argument("--port", type=int, default=8474, help="API port (default 8474)")
    p.add_argument("--config", type=Path, help="a JSON file of proxies to create at start "
                                               "(as for POST /populate)")
    p.add_argument("--seed", type=int, help="seed for toxicity and jitter draws")
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(handler=proxy)


def proxy(args: argparse.Namespace) -> int:
    from harness.proxy import server

    return server.run(args.host, args.port, args.config, seed=args.seed,
                      log_level=args.log_level)
