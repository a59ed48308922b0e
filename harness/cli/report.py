"""`faultline report RUN_DIR`: (re)build a run's report.html and print where it is."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli import exits


def register(sub) -> None:
    """Add the `report` subcommand to the `faultline` parser."""
    p = sub.add_parser(
        "report", help="build a run directory's report.html",
        description="Build RUN_DIR/report.html from the run's files: verdicts and figures, "
                    "latency and throughput over time with the faults as bands, the "
                    "operations around the first violation, the fault schedule, node roles. "
                    "One self-contained file that opens from disk. Runs and `faultline "
                    "check` of a run build it already; this rebuilds it. Exit codes: 0 "
                    "built, 3 not a run directory.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (runs/<test>/<time>-s"
                                                      "<seed>, or runs/latest)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Carry out `faultline report`; returns the exit code."""
    from harness.report.data import NotARunDirectory
    from harness.report.html import write_report

    try:
        path = write_report(Path(args.run_dir))
    except NotARunDirectory as exc:
        raise exits.UsageError(str(exc)) from None
    print(path)
    return exits.VALID
