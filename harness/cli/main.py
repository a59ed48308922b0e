"""The `faultline` command line: one parser, one subcommand per module, one error policy.

A user mistake (bad option, unreadable or malformed history) ends with one line on stderr
saying what was wrong and where, and exit code BAD_INPUT; never a traceback. Ctrl-C ends with
INTERRUPTED after whatever the subcommand cleans up on the way out.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from checkers.history import HistoryError
from checkers.models import ModelError
from harness.cli import campaign, check, proxy, report, run, runs, systems, validate
from harness.cli.exits import BAD_INPUT, COULD_NOT_RUN, INTERNAL_ERROR, INTERRUPTED, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage, which here means "unknown": report it as bad input."""

    def error(self, message: str):  # noqa: D401 - argparse's signature
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(BAD_INPUT)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The full parser, with every subcommand registered; `argv` is the command line it is
    for (`run` takes the flags of the system it names)."""
    parser = _Parser(prog="faultline",
                     description="Fault-injection testing and history checking for replicated "
                                 "stores.")
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error, print the whole traceback")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    check.register(sub)
    report.register(sub)
    run.register(sub, argv)
    validate.register(sub)
    campaign.register(sub)
    systems.register(sub)
    proxy.register(sub)
    runs.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `faultline` script; returns the process exit code."""
    from harness.networks import NetworkUnavailable
    from harness.processes.supervisor import ProcessError
    from harness.proxy.process import ProxyServerError
    from harness.run.cluster import ClusterError
    from harness.systems.base import SystemUnavailable

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ClusterError, ProcessError, ProxyServerError, SystemUnavailable,
            NetworkUnavailable) as exc:
        # The test could not be carried out (a node or the proxy server would not start).
        print(f"faultline: could not run: {exc}", file=sys.stderr)
        return COULD_NOT_RUN
    except (HistoryError, ModelError, UsageError) as exc:
        print(f"faultline: error: {exc}", file=sys.stderr)
        return BAD_INPUT
    except OSError as exc:
        # A file that cannot be read or written: the user's environment, not a bug here.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"faultline: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        print("faultline: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - anything else is a bug here, not a verdict
        if args.debug:
            traceback.print_exc()
        where = _innermost_frame(exc)
        print(f"faultline: internal error: {type(exc).__name__}: {exc} (at {where}; "
              f"{'' if args.debug else 'rerun with --debug for the traceback; '}"
              f"please report it)", file=sys.stderr)
        return INTERNAL_ERROR


def _innermost_frame(exc: BaseException) -> str:
    """file:line of the innermost frame of `exc`'s traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown place"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno}"
