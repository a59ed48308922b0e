"""`faultline validate`: run the planted-bug matrix and print what was caught."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from harness import cli, report
from harness.networks import NAMES as NETWORK_NAMES
from harness.testspec import SpecError
from harness.validate import BUG, MATRIX, SAFE, rows_json, run_matrix, select


def register(sub) -> None:
    """Add `validate` to the `faultline` parser."""
    p = sub.add_parser(
        "validate", help="run the planted-bug matrix",
        description="For each planted bug, short runs under the faults that expose it (it "
                    "must be caught in most seeds); for each safe configuration, runs under "
                    "combined faults (valid in every seed). Cases the chosen network cannot "
                    "take are left out, and said so. Exit 0 when every target of the cases "
                    "run is met, 1 otherwise.")
    p.add_argument("cases", nargs="*", metavar="CASE",
                   help=f"cases to run (default all): {', '.join(c.label for c in MATRIX)}")
    p.add_argument("--seeds", type=int, help="seeds per case (default: the case's own)")
    p.add_argument("--time-limit", type=float, help="seconds per run (default 20)")
    p.add_argument("--first-seed", type=int, default=1, help="the first seed (default 1)")
    p.add_argument("--runs-dir", default="runs", help="where runs are stored (default runs)")
    p.add_argument("--network", choices=NETWORK_NAMES,
                   help="the network every case runs on (default: each case's system's "
                        "own: proxy for refnode, netns for etcd and redis)")
    p.add_argument("--json", action="store_true", help="print the matrix as JSON")
    p.set_defaults(handler=validate)


def validate(args: argparse.Namespace) -> int:
    try:
        cases = select(args.cases)
    except ValueError as exc:
        raise cli.UsageError(str(exc)) from None
    if args.seeds is not None and args.seeds < 1:
        raise cli.UsageError("--seeds must be 1 or more")

    def on_run(case, seed, result):
        report.err.print(f"{case.label:<26} seed {seed:<4} {_word(result.valid):<8} "
                         f"{result.elapsed:5.1f} s  {result.run_dir}")

    # Every case is checked before any run starts. One the network cannot take (the
    # namespace network has no latency here) is left out and said so, unless it was named.
    runnable = []
    for case in cases:
        try:
            spec = case.spec(args.first_seed, args.runs_dir, args.time_limit, args.network)
            found = spec.adapter().availability()
            if not found.available:
                raise SpecError(f"{spec.system} cannot run here: {found.detail}; install: "
                                f"{found.install}")
            runnable.append(case)
        except SpecError as exc:
            if args.cases:
                raise cli.UsageError(f"{case.label}: {exc}") from None
            report.err.print(f"[yellow]not run[/]: {case.label}: {exc}")
    rows = run_matrix(runnable, args.runs_dir, seeds=args.seeds, time_limit=args.time_limit,
                      first_seed=args.first_seed, network=args.network, on_run=on_run)
    if args.json:
        print(json.dumps(rows_json(rows)))
    else:
        plain = [row for row in rows if row.case.plain]
        tuned = [row for row in rows if not row.case.plain]
        if plain:
            report.out.print(_table("plain campaigns: only --bug, --workload, --read-mode "
                                    "and --nemesis given", plain))
        if tuned:
            report.out.print(_table("planted-bug matrix, each case aimed where its bug "
                                    "lives", tuned))
        for case in cases:
            if case not in runnable:
                report.out.print(f"not run here: {case.label}")
    return cli.VALID if all(row.met for row in rows) else cli.INVALID


def _table(title: str, rows: list) -> Table:
    """One table of the matrix: a row per case, every row printed, met or not."""
    table = Table(title=title, title_justify="left")
    for column in ("configuration", "expected", "result", "caught by", "first violation",
                   "target"):
        table.add_column(column)
    for row in rows:
        expected = {BUG: "caught", SAFE: "valid"}.get(row.case.kind, "loses writes")
        count = row.passed if row.case.kind == SAFE else row.caught
        result = f"{count}/{len(row.results)} " + ("valid" if row.case.kind == SAFE
                                                    else "invalid")
        first = "" if row.first_violation is None else f"{row.first_violation} s"
        table.add_row(row.case.label, expected, result, ", ".join(row.checkers), first,
                      "[green]met[/]" if row.met else "[bold red]MISSED[/]")
    return table


def _word(valid) -> str:
    return {True: "valid", False: "INVALID"}.get(valid, str(valid))
