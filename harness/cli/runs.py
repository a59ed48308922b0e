"""`faultline runs` (list, prune, compare, index the runs of a runs directory) and
`faultline serve` (browse them in a web browser)."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import socket
import sys
import time
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from harness.cli import exits, terminal
from harness.rundirs.catalog import (DAMAGED, INCOMPLETE, INTERRUPTED, RunSummary, find_runs,
                                     format_seconds, format_size, is_run_dir, list_runs)
from harness.rundirs.compare import compare
from harness.rundirs.index import INDEX_FILE, write_index
from harness.rundirs.prune import PruneRefused, latest_target, mend_latest, parse_duration, plan
from harness.rundirs.prune import remove as remove_run
from harness.rundirs.serve import make_server, server_url

DEFAULT_RUNS_DIR = "runs"
DEFAULT_PORT = 8080
_VERDICT_MARKUP = {INCOMPLETE: "[dim]running or incomplete[/]",
                   DAMAGED: "[bold magenta]damaged[/]", INTERRUPTED: "[bold yellow]interrupted[/]"}


def register(sub) -> None:
    """Add `runs` and `serve` to the `faultline` parser."""
    p = sub.add_parser(
        "runs", help="list, prune, compare and index stored runs",
        description="List the runs of a runs directory, newest first, with their verdicts; "
                    "--prune removes old ones, --compare sets two side by side, --index "
                    "writes index.html.")
    p.add_argument("runs_dir", nargs="?", default=DEFAULT_RUNS_DIR, metavar="RUNS_DIR",
                   help=f"a runs directory (default: {DEFAULT_RUNS_DIR})")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--prune", action="store_true",
                   help="remove runs chosen by --keep and/or --older-than")
    p.add_argument("--keep", metavar="N",
                   help="with --prune: keep the N newest runs of the runs directory")
    p.add_argument("--per-test", action="store_true",
                   help="with --keep: the N newest of each test's directory instead")
    p.add_argument("--older-than", metavar="DURATION",
                   help="with --prune: remove runs started longer ago than DURATION (30m, "
                        "12h, 7d, 2w); with --keep too, the newest N stay whatever their age")
    p.add_argument("--dry-run", action="store_true",
                   help="with --prune: list what would be removed, remove nothing")
    p.add_argument("--force", action="store_true",
                   help="with --prune: remove runs modified within the last minute too (a "
                        "campaign may still be writing them)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="compare two run directories: verdicts, figures, faults, settings")
    p.add_argument("--index", action="store_true",
                   help="write RUNS_DIR/index.html (a page linking every run's report) and "
                        "print its path")
    p.set_defaults(handler=runs)

    s = sub.add_parser(
        "serve", help="browse stored runs in a web browser",
        description="Serve a runs directory read-only over HTTP: its index at /, each run's "
                    "report and raw files. Binds the loopback address unless --public.")
    s.add_argument("runs_dir", nargs="?", default=DEFAULT_RUNS_DIR, metavar="RUNS_DIR",
                   help=f"a runs directory (default: {DEFAULT_RUNS_DIR})")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to listen on (default: {DEFAULT_PORT}; 0: any free port)")
    s.add_argument("--public", action="store_true",
                   help="allow a --host other than a loopback address: anyone who reaches it "
                        "can read every run")
    s.set_defaults(handler=serve)


def runs_directory(text: str) -> Path:
    """RUNS_DIR checked; UsageError when it does not exist, is not a directory, or is a run
    itself. A directory with no runs yet (a fresh checkout's runs/) is a runs directory with
    nothing in it."""
    path = Path(text)
    if not path.exists():
        raise exits.UsageError(f"{path}: no such directory")
    if not path.is_dir():
        raise exits.UsageError(f"{path}: not a directory (RUNS_DIR is a directory of runs)")
    if is_run_dir(path):
        raise exits.UsageError(f"{path}: a run directory, not a directory of runs (give the "
                               f"directory it is in, or compare it with --compare)")
    return path


def runs(args: argparse.Namespace) -> int:
    """Carry out `faultline runs`; returns the exit code."""
    modes = [name for name, on in (("--prune", args.prune), ("--compare", args.compare),
                                   ("--index", args.index)) if on]
    if len(modes) > 1:
        raise exits.UsageError(f"{' and '.join(modes)}: one at a time")
    pruning_only = [flag for flag, on in (("--keep", args.keep is not None),
                                          ("--older-than", args.older_than is not None),
                                          ("--dry-run", args.dry_run), ("--force", args.force),
                                          ("--per-test", args.per_test)) if on]
    if pruning_only and not args.prune:
        raise exits.UsageError(f"{', '.join(pruning_only)} only go with --prune")
    if args.compare:
        return _compare(args)
    root = runs_directory(args.runs_dir)
    if args.prune:
        return _prune(root, args)
    if args.index:
        path = write_index(root)
        print(json.dumps({"index": str(path)}) if args.json else path)
        return exits.VALID
    listed = list_runs(root)
    if args.json:
        print(json.dumps({"runs_dir": str(root), "runs": [r.to_json() for r in listed]}))
    elif not listed:
        terminal.out.print(f"no runs in {escape(str(root))} (a run directory is "
                         f"<test>/<time>-s<seed>/ with test.json and history.jsonl)")
    else:
        _print_runs(root, listed)
    return exits.VALID


def _verdict_markup(run: RunSummary) -> str:
    text = _VERDICT_MARKUP.get(run.verdict) or terminal.verdict_text(
        {"valid": True, "INVALID": False}.get(run.verdict, "unknown"))
    if run.interrupted and run.verdict != INTERRUPTED:
        text += " [yellow](interrupted)[/]"        # a violation in a history cut short
    return text + (" [yellow](not recovered)[/]" if run.recovered is False else "")


def _print_runs(root: Path, listed: list[RunSummary]) -> None:
    # Light borders, and only the test and the path wrap on a narrow terminal (the figures
    # never do); piped, a run is one whole line, whatever its length, for grep and logs.
    table = Table(title=f"runs in {escape(str(root))}: {len(listed)}", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("when (UTC)", "test", "system", "workload", "seed", "verdict",
                   "1st viol.", "duration", "size", "path"):
        table.add_column(column, no_wrap=column not in ("test", "path"),
                         overflow="fold", ratio=2 if column == "path" else
                         (1 if column == "test" else None),
                         justify="right" if column in ("seed", "1st viol.", "duration",
                                                       "size") else "left")
    for run in listed:
        violation = "" if run.first_violation_seconds is None else \
            f"{run.first_violation_seconds:g} s"
        table.add_row(run.when.strftime("%Y-%m-%d %H:%M:%S"), escape(run.test),
                      escape(run.system or ""), escape(run.workload or ""),
                      "" if run.seed is None else str(run.seed), _verdict_markup(run),
                      violation, format_seconds(run.duration_seconds),
                      format_size(run.size_bytes), escape(str(run.path)))
    console = terminal.out
    if not console.is_terminal:
        unbounded = console.options.update(max_width=100_000)
        width = Measurement.get(console, unbounded, table).maximum
        console = Console(highlight=False, width=max(console.width, width))
    console.print(table)
    for run in listed:
        if run.problem:
            terminal.out.print(f"[bold magenta]damaged[/]: {escape(run.problem)}")


def _keep(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        keep = int(text)
    except ValueError:
        raise exits.UsageError(f"--keep: not a whole number: {text!r}") from None
    if keep < 1:
        raise exits.UsageError(f"--keep must be 1 or more, got {keep} (to remove every run, "
                               f"use --older-than)")
    return keep


def _prune(root: Path, args: argparse.Namespace) -> int:
    keep = _keep(args.keep)
    older_than = None
    if args.older_than is not None:
        try:
            older_than = parse_duration(args.older_than)
        except ValueError as exc:
            raise exits.UsageError(f"--older-than: {exc}") from None
    if keep is None and older_than is None:
        raise exits.UsageError("--prune needs --keep N and/or --older-than DURATION")
    if args.per_test and keep is None:
        raise exits.UsageError("--per-test goes with --keep")
    listed = list_runs(root)
    chosen = plan(listed, keep=keep, older_than=older_than, now=time.time(),
                  force=args.force, per_test=args.per_test)
    latest = latest_target(root)
    # Resolved before anything goes: a removed path resolves no more.
    real = {id(run): run.path.resolve() for run in chosen.remove}
    removed: list[RunSummary] = []
    refused: list[str] = []
    for run in chosen.remove:
        try:
            if not args.dry_run:
                remove_run(root, run.path)
        except PruneRefused as exc:
            refused.append(str(exc))
            continue
        removed.append(run)
    freed = sum(run.size_bytes for run in removed)
    latest_note = None
    if latest is not None and any(latest == real[id(run)] for run in removed):
        gone = {id(run) for run in removed}
        remaining = [run for run in listed if id(run) not in gone]
        if args.dry_run:
            latest_note = "latest would point at the newest run left" if remaining else \
                "latest would be removed: no run would be left"
        else:
            latest_note = mend_latest(root, remaining)
    if removed and not args.dry_run and (root / INDEX_FILE).exists():
        write_index(root)               # it would link the runs just removed
    if args.json:
        print(json.dumps({"runs_dir": str(root), "dry_run": args.dry_run,
                          "removed": [r.to_json() for r in removed], "freed_bytes": freed,
                          "skipped_recent": [r.to_json() for r in chosen.recent],
                          "refused": refused, "latest": latest_note}))
        return exits.VALID
    verb = "would remove" if args.dry_run else "removed"
    for run in removed:
        terminal.out.print(f"{verb} {escape(str(run.path))}  ({format_size(run.size_bytes)}, "
                         f"{run.verdict}, {run.when:%Y-%m-%d %H:%M})")
    for run in chosen.recent:
        terminal.out.print(f"[yellow]skipped[/] {escape(str(run.path))}: modified "
                         f"{max(0, time.time() - run.modified):.0f} s ago (a campaign may "
                         f"still be writing it; --force removes it)")
    for why in refused:
        terminal.out.print(f"[yellow]refused[/] {escape(why)}")
    if latest_note:
        terminal.out.print(latest_note)
    terminal.out.print(f"{verb} {len(removed)} run(s), "
                     f"{'would free' if args.dry_run else 'freed'} {format_size(freed)}; "
                     f"{len(listed) - len(removed)} left")
    return exits.VALID


def _compare(args: argparse.Namespace) -> int:
    try:
        rows = compare(Path(args.compare[0]), Path(args.compare[1]))
    except ValueError as exc:
        raise exits.UsageError(str(exc)) from None
    if args.json:
        print(json.dumps({"a": args.compare[0], "b": args.compare[1],
                          "rows": [row.to_json() for row in rows]}))
        return exits.VALID
    table = Table(title=f"A: {escape(args.compare[0])}\nB: {escape(args.compare[1])}",
                  title_justify="left")
    table.add_column("")
    table.add_column("")
    table.add_column("A", overflow="fold")
    table.add_column("B", overflow="fold")
    section = None
    for row in rows:
        shown = row.section if row.section != section else ""
        if shown and section is not None:
            table.add_section()
        section = row.section
        style = "bold yellow" if row.differs and row.item not in ("path", "when") else None
        table.add_row(shown, escape(row.item), escape(row.a),
                      f"[{style}]{escape(row.b)}[/]" if style else escape(row.b))
    terminal.out.print(table)
    return exits.VALID


def _is_loopback(host: str) -> bool:
    """Whether every address `host` stands for is a loopback one; UsageError when it names
    no address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise exits.UsageError(f"--host {host}: not an address here ({exc.strerror})") from None
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def serve(args: argparse.Namespace) -> int:
    """Carry out `faultline serve`: serve until Ctrl-C (exit INTERRUPTED)."""
    root = runs_directory(args.runs_dir)
    if not _is_loopback(args.host) and not args.public:
        raise exits.UsageError(f"--host {args.host} is not a loopback address: anyone who can "
                               f"reach it could read every run; add --public to serve it anyway")
    if not 0 <= args.port <= 65535:
        raise exits.UsageError(f"--port must be 0 to 65535, got {args.port}")
    try:
        server = make_server(root, args.host, args.port)
    except OSError as exc:
        why = "the port is in use" if exc.errno == errno.EADDRINUSE else \
            (exc.strerror or str(exc))
        print(f"faultline: could not run: cannot listen on {args.host} port {args.port}: "
              f"{why}", file=sys.stderr)
        return exits.COULD_NOT_RUN
    print(f"serving {root} at {server_url(server)} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("faultline: interrupted: stopped serving", file=sys.stderr)
        return exits.INTERRUPTED
    finally:
        server.server_close()
    return exits.VALID
