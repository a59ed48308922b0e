"""`python -m refnode --id n1 --config cluster.json`: run one refnode node in the foreground.

Exit status: 0 after a clean shutdown (SIGTERM or SIGINT), 2 for a bad command line or cluster
file (one line on stderr says what), 1 for a failure while running (logged).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from refnode.runtime import ClusterFile, NodeServer
from refnode.wal import WalError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refnode",
                                     description="Run one node of a refnode cluster.")
    parser.add_argument("--id", required=True, help="this node's id in the cluster file")
    parser.add_argument("--config", required=True, type=Path, help="the cluster file (JSON)")
    parser.add_argument("--data-dir", type=Path,
                        help="the node's data directory (default: the cluster file's)")
    parser.add_argument("--rebuild", action="store_true",
                        help="set this node's log aside (a damaged one) and start from nothing, "
                             "catching up from the leader; it votes again only once it has "
                             "heard a leader. An operator's choice: whatever only this log "
                             "held is lost")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        cluster = ClusterFile.load(args.config)
        server = NodeServer(args.id, cluster, data_dir=args.data_dir, rebuild=args.rebuild)
    except ValueError as exc:
        print(f"refnode: error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(server.run())
    except WalError as exc:
        hint = ("; --rebuild sets it aside and catches up from the leader"
                if "left as it is" in str(exc) else "")
        print(f"refnode: error: write-ahead log: {exc}{hint}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"refnode: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
