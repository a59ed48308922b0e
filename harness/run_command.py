"""`faultline run` and `faultline replay`: a fault campaign with live progress and a verdict."""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from rich.live import Live
from rich.table import Table

from harness import cli, report, store
from harness.runner import Progress, RunResult, run_test
from harness.testspec import DEFAULTS, NEMESES, WORKLOADS, SpecError, TestSpec, from_toml
from harness.testspec import parse_mix, parse_nemesis
from refnode.config import BUGS, READ_MODES, REPLICATION_MODES

# Options that map one to one onto TestSpec fields: (flag, field, type, help).
OPTIONS = [
    ("--system", "system", str, "system under test"),
    ("--nodes", "nodes", int, "cluster size"),
    ("--replication", "replication", str,
     f"replication mode: {'|'.join(REPLICATION_MODES)}"),
    ("--read-mode", "read_mode", str, f"read mode: {'|'.join(READ_MODES)}"),
    ("--workload", "workload", str, f"workload: {'|'.join(WORKLOADS)}"),
    ("--nemesis", "nemesis", str,
     f"faults, comma-separated, from {', '.join(NEMESES)}; or none"),
    ("--nemesis-interval", "nemesis_interval", float, "seconds between fault starts"),
    ("--time-limit", "time_limit", float, "seconds of client operations"),
    ("--concurrency", "concurrency", int, "concurrent logical clients"),
    ("--rate", "rate", float, "target operations per second, all clients together"),
    ("--keys", "keys", int, "keys the workload spreads over"),
    ("--cas-share", "cas_share", float, "share of cas operations in the register workload"),
    ("--mix", "mix", str, "share of each operation, e.g. read=0.9,write=0.1 (default: the "
     "workload's); phases of load only in a --config file ([[phases]] seconds, rate, mix)"),
    ("--op-timeout", "op_timeout", float, "seconds before an operation is indeterminate"),
    ("--recovery-timeout", "recovery_timeout", float,
     "seconds the healed cluster has to accept writes again (else a liveness failure)"),
    ("--seed", "seed", int, "seed of every random choice (default: a new one, printed)"),
    ("--bug", "bug", str, f"planted bug to switch on: {'|'.join(BUGS)}"),
    ("--runs-dir", "runs_dir", str, "where run directories are stored"),
    ("--name", "name", str, "test name (default: system-workload[-bug])"),
]


def register(sub) -> None:
    """Add `run` and `replay` to the `faultline` parser."""
    p = sub.add_parser(
        "run", help="run a fault campaign and check it",
        description="Run a fault campaign: start a cluster behind link proxies, drive "
                    "concurrent clients, inject faults, heal, check the history. Exit codes: "
                    "0 valid, 1 invalid, 2 unknown, 3 bad usage, 4 liveness failure.")
    p.add_argument("--config", type=Path, metavar="FILE.toml",
                   help="read options from a TOML file (command-line options win)")
    for flag, name, kind, text in OPTIONS:
        default = getattr(DEFAULTS, name)
        if name == "nemesis":
            default = ",".join(default) or "none"
        shown = "" if name in ("seed", "name", "bug", "mix") else f" (default: {default})"
        p.add_argument(flag, dest=name, type=kind, default=None, help=f"{text}{shown}")
    p.set_defaults(handler=run)

    r = sub.add_parser("replay", help="run a stored test again: same seed, same faults",
                       description="Run the test of a run directory again, with the same "
                                   "seed and the same fault schedule, into a new run "
                                   "directory.")
    r.add_argument("run_dir", type=Path, help="a run directory (or runs/latest)")
    r.set_defaults(handler=replay)


def spec_from_args(args: argparse.Namespace) -> TestSpec:
    """The TestSpec the command line (and its --config file) describes."""
    given: dict[str, Any] = {}
    for _, name, _, _ in OPTIONS:
        value = getattr(args, name)
        if value is not None:
            if name == "nemesis":
                value = parse_nemesis(value)
            elif name == "mix":
                value = parse_mix(value)
            given[name] = value
    if args.config is not None:
        spec = from_toml(args.config, given)
    else:
        spec = TestSpec(**given)
    if "name" not in given and (args.config is None or spec.name == DEFAULTS.name):
        spec.name = f"{spec.system}-{spec.workload}" + (f"-{spec.bug}" if spec.bug else "")
    return spec.validate()


def run(args: argparse.Namespace) -> int:
    """Carry out `faultline run`; returns the exit code."""
    try:
        spec = spec_from_args(args)
    except SpecError as exc:
        raise cli.UsageError(str(exc)) from None
    return execute(spec, sys.argv)


def replay(args: argparse.Namespace) -> int:
    """Carry out `faultline replay RUN_DIR`."""
    try:
        stored = store.read_json(Path(args.run_dir) / store.TEST_FILE)
        spec = TestSpec.from_json(stored["test"])
    except (ValueError, KeyError, TypeError) as exc:
        raise cli.UsageError(f"{args.run_dir}: not a run directory ({exc})") from None
    report.err.print(f"replaying {args.run_dir}: seed {spec.seed}, "
                     f"{len(spec.schedule or [])} fault steps")
    return execute(spec, sys.argv)


def execute(spec: TestSpec, argv: list[str]) -> int:
    """Run `spec` with live progress and print the summary; returns the exit code."""
    if spec.seed is None:
        # Chosen here so that it is printed before anything can go wrong.
        spec.seed = secrets.randbelow(2 ** 31)
    seed_note = f"seed {spec.seed}"
    report.err.print(f"faultline run {spec.name}: {spec.nodes} nodes, {spec.replication}, "
                     f"{spec.read_mode} reads, {spec.workload} workload, faults "
                     f"{','.join(spec.nemesis) or 'none'}, {spec.time_limit:g} s {seed_note}")
    display = _LiveProgress()
    try:
        with display:
            result = run_test(spec, argv=argv, on_progress=display.update)
    except KeyboardInterrupt:
        report.err.print("interrupted: every process of the run has been ended")
        return cli.INTERRUPTED
    print_summary(result)
    return exit_code(result)


def exit_code(result: RunResult) -> int:
    """Safety first: an invalid history is INVALID even if the cluster also never recovered."""
    if result.valid is False:
        return cli.INVALID
    if not result.liveness.get("recovered", False):
        return cli.LIVENESS
    if result.valid is True:
        return cli.VALID
    return cli.UNKNOWN


class _LiveProgress:
    """One live status line on a terminal; a plain line every few seconds elsewhere."""

    PLAIN_EVERY = 5.0

    def __init__(self):
        self._live = Live(console=report.err, refresh_per_second=4, transient=True) \
            if report.err.is_terminal else None
        self._last_plain = 0.0
        self._seed_printed = False

    def __enter__(self):
        if self._live:
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live:
            self._live.__exit__(*exc)

    def update(self, p: Progress) -> None:
        counts = p.counts
        completed = counts.get("ok", 0) + counts.get("fail", 0) + counts.get("info", 0)
        rate = completed / p.elapsed if p.elapsed > 0 else 0.0
        faults = ", ".join(p.active_faults) or "none"
        line = (f"{p.phase:<16} {p.elapsed:6.1f} s  ops {completed:>7,} ({rate:,.0f}/s)  "
                f"ok {counts.get('ok', 0):,}  fail {counts.get('fail', 0):,}  "
                f"info {counts.get('info', 0):,}  faults: {faults}")
        if self._live:
            self._live.update(line)
        elif time.monotonic() - self._last_plain >= self.PLAIN_EVERY or p.phase != "running":
            self._last_plain = time.monotonic()
            report.err.print(line)


def print_summary(result: RunResult) -> None:
    """The verdict per checker, the counterexample in brief, latency and availability, where
    the run is stored and how to replay it."""
    out = report.out
    results = result.results
    table = Table(title=f"run {result.run_dir}", title_justify="left")
    table.add_column("checker")
    table.add_column("verdict")
    table.add_column("summary", overflow="fold")
    for name, r in results.get("checkers", {}).items():
        table.add_row(name, report.verdict_text(r["valid"]), r.get("summary", ""))
    live = result.liveness
    table.add_row("liveness", report.verdict_text(bool(live.get("recovered"))),
                  f"recovered in {live.get('seconds')} s" if live.get("recovered")
                  else live.get("reason", "not checked: the run did not get that far"))
    out.print(table)
    stats = results.get("checkers", {}).get("stats", {}).get("figures", {})
    latency = stats.get("latency_ms") or {}
    if latency:
        parts = []
        for f, q in sorted(latency.items()):
            if isinstance(q, dict):
                parts.append(f"{f} p50 {q.get('0.5')} p99 {q.get('0.99')}")
        out.print("latency (ms): " + "; ".join(parts))
    availability = stats.get("availability") or {}
    if availability.get("overall") is not None:
        per_f = ", ".join(f"{f} {share:.1%}" for f, share in
                          sorted((availability.get("by_f") or {}).items()) if share is not None)
        out.print(f"availability: {availability['overall']:.1%}" +
                  (f" ({per_f})" if per_f else ""))
    if results.get("first_violation_seconds") is not None:
        out.print(f"first violation at {results['first_violation_seconds']} s into the run")
    out.print(f"verdict: {report.verdict_text(result.valid)}   seed {result.seed}   "
              f"{sum(result.counts.get(k, 0) for k in ('ok', 'fail', 'info')):,} operations "
              f"in {result.elapsed:.1f} s")
    out.print(f"run directory: {result.run_dir}")
    out.print(f"replay: {result.replay_command}")
