"""`faultline validate`: run the planted-bug matrix (a campaign shipped with faultline) and
print what was caught."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from rich.markup import escape

from harness.campaigns.matrix import Campaign
from harness.campaigns.validate import PLAIN, TUNED, VALIDATE_FILE, matrix, select
from harness.cli import exits, terminal
from harness.cli.campaign import check_runs_dir, execute, exit_code, tables
from harness.networks import NAMES as NETWORK_NAMES
from harness.run.spec import SpecError

TITLES = {PLAIN: "plain cases: only --bug, --workload, --read-mode and --nemesis given",
          TUNED: "planted-bug matrix, each case aimed where its bug lives"}


def register(sub) -> None:
    """Add `validate` to the `faultline` parser."""
    p = sub.add_parser(
        "validate", help="run the planted-bug matrix",
        description=f"For each planted bug, runs under the default schedule (the plain "
                    f"campaigns) and under the faults that expose it (it must be caught in "
                    f"most seeds); for each safe configuration, runs under combined faults "
                    f"(valid in every seed). The matrix is the campaign file {VALIDATE_FILE}. "
                    f"Cases this machine or the chosen network cannot take are left out, and "
                    f"said so. Exit 0 when every case ran and met its target, 1 when a case "
                    f"missed it, 5 when cases could not run (and none missed).")
    p.add_argument("cases", nargs="*", metavar="CASE",
                   help=f"cases to run (default all): "
                        f"{', '.join(r.label for r in matrix().rows)}")
    p.add_argument("--seeds", type=int, help="seeds per case (default: the case's own; a "
                   "bug's target scaled to them)")
    p.add_argument("--time-limit", type=float, help="seconds per run (default: the case's)")
    p.add_argument("--first-seed", type=int, default=1, help="the first seed (default 1)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"),
                   help="where the matrix's directory goes (default runs)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at once (default 1: the matrix measures how fast bugs are "
                        "caught, and runs at once slow each other down)")
    p.add_argument("--network", choices=NETWORK_NAMES,
                   help="the network every case runs on (default: each case's system's "
                        "own: proxy for refnode, netns for etcd and redis)")
    p.add_argument("--json", action="store_true", help="print the matrix as JSON")
    p.set_defaults(handler=validate)


def validate(args: argparse.Namespace) -> int:
    """Carry out `faultline validate`; returns the exit code."""
    try:
        rows = select(args.cases)
    except ValueError as exc:
        raise exits.UsageError(str(exc)) from None
    if args.seeds is not None and args.seeds < 1:
        raise exits.UsageError("--seeds must be 1 or more")
    if args.jobs < 1:
        raise exits.UsageError("--jobs must be 1 or more")
    if args.time_limit is not None and not (math.isfinite(args.time_limit) and
                                            args.time_limit > 0):
        raise exits.UsageError("--time-limit must be a positive, finite number of seconds")
    if args.first_seed < 0:
        raise exits.UsageError("--first-seed must be 0 or more")
    check_runs_dir(args.runs_dir)
    rows = [row.with_options(time_limit=args.time_limit, network=args.network)
            .with_seeds(args.seeds or len(row.seeds), args.first_seed) for row in rows]
    # Every case is checked before any run starts. One the network cannot take (the
    # namespace network has no latency here) is left out and said so, unless it was named.
    runnable = []
    for row in rows:
        try:
            spec = row.spec(row.seeds[0], str(args.runs_dir))
            found = spec.adapter().availability()
            if not found.available:
                raise SpecError(f"{spec.system} cannot run here: {found.detail}; install: "
                                f"{found.install}")
            runnable.append(row)
        except SpecError as exc:
            if args.cases:
                raise exits.UsageError(f"{row.label}: {exc}") from None
            terminal.err.print(f"[yellow]not run[/]: {row.label}: {escape(str(exc))}")
    if not runnable:
        terminal.err.print("faultline: could not run: no case of the matrix can run here")
        return exits.COULD_NOT_RUN
    campaign = Campaign("validate", runnable, jobs=args.jobs, source=str(VALIDATE_FILE))
    campaign_dir, summary = execute(campaign, args.runs_dir)
    if args.json:
        print(json.dumps(summary))
    else:
        for table in tables(campaign, summary, TITLES):
            terminal.out.print(table)
        for row in rows:
            if row not in runnable:
                terminal.out.print(f"not run here: {row.label}")
        terminal.out.print(f"runs: {campaign_dir}")
    code = exit_code(summary)
    if code == exits.VALID and len(runnable) < len(rows):
        return exits.COULD_NOT_RUN          # cases were left out: not the whole matrix
    return code
