"""`faultline run` and `faultline replay`: one run under faults, with live progress and a verdict.

The options of `run` are the test's own (`OPTIONS`), the system adapter's (as flags of their
own, `--replication` for refnode, or `--system-opt NAME=VALUE`), and the fault kinds'
(`--nemesis-opt NAME=VALUE`). The adapter's flags depend on the system named, so the command
line is scanned for `--system` (or the `--config` file's system) before the parser is built:
`faultline run --system NAME --help` shows that system's options.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from rich.live import Live
from rich.markup import escape
from rich.table import Table

from checkers.list_append import MODELS as LIST_APPEND_MODELS
from harness import systems, workloads
from harness.campaigns.cell import interrupt_on
from harness.cli import exits, terminal
from harness.faults import names as fault_names
from harness.faults import schedule as fault_schedule
from harness.networks import NAMES as NETWORK_NAMES
from harness.run.runner import RunProgress, RunResult, plan_schedule, run_test
from harness.run.spec import (DEFAULT_NODES, DEFAULT_SYSTEM, SpecError, TestSpec, build, from_toml,
                              parse_mix, parse_nemesis)
from harness.rundirs import store
from pluginkit.options import OptionError, format_value, parse_assignments

DEFAULTS = TestSpec()
# Options that map one to one onto TestSpec fields: (flag, field, type, help).
OPTIONS = [
    ("--system", "system", str, "system under test (faultline systems lists them)"),
    ("--network", "network", str, f"network: {'|'.join(NETWORK_NAMES)} (default: the "
     f"system's first; refnode: proxy)"),
    ("--nodes", "nodes", int, f"cluster size (default: {DEFAULT_NODES}, or the nearest the "
     f"system takes: 2 for postgres)"),
    ("--workload", "workload", str, "workload"),
    ("--nemesis", "nemesis", str, "faults, comma-separated"),
    ("--nemesis-interval", "nemesis_interval", float, "seconds between fault starts"),
    ("--time-limit", "time_limit", float, "seconds of client operations"),
    ("--concurrency", "concurrency", int, "concurrent logical clients"),
    ("--rate", "rate", float, "target operations per second, all clients together"),
    ("--keys", "keys", int, "keys the workload spreads over at a time"),
    ("--ops-per-key", "ops_per_key", int, "operations after which a key is replaced by a "
     "fresh one, as Jepsen's independent keys (0: keys never change)"),
    ("--cas-share", "cas_share", float, "share of cas operations in the register workload"),
    ("--value-size", "value_size", int, "characters in each written value, register and "
     "session workloads (0: small numbers; every value is in the history, so large ones make "
     "large runs)"),
    ("--mix", "mix", str, "share of each operation, e.g. read=0.9,write=0.1 (default: the "
     "workload's; list-append: of its micro-operations, r=0.5,append=0.5); phases of load "
     "only in a --config file ([[phases]] seconds, rate, mix)"),
    ("--op-timeout", "op_timeout", float, "seconds before an operation is indeterminate, at "
     "most (each client's patience is drawn from a quarter of it to all of it)"),
    ("--recovery-timeout", "recovery_timeout", float,
     "seconds the healed cluster has to accept writes again (else a liveness failure)"),
    ("--seed", "seed", int, "seed of every random choice (default: a new one, printed)"),
    ("--runs-dir", "runs_dir", str, "where run directories are stored"),
    ("--name", "name", str, "test name (default: system-workload[-bug])"),
]
SYSTEM_FLAG_PREFIX = "system_flag_"


def register(sub, argv: list[str] | None = None) -> None:
    """Add `run` and `replay` to the `faultline` parser; `argv` (the command line) tells
    which system's flags `run` takes."""
    p = sub.add_parser(
        "run", help="run a test under faults and check it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a test: start a cluster on a network under the harness's "
                    "control,\ndrive concurrent clients, inject faults, heal, check the "
                    "history.\nExit codes: 0 valid, 1 invalid, 2 unknown, 3 bad usage, 4 "
                    "liveness failure,\n5 could not run.")
    p.add_argument("--config", type=Path, metavar="FILE.toml",
                   help="read options from a TOML file (command-line options win)")
    for flag, name, kind, text in OPTIONS:
        default = getattr(DEFAULTS, name)
        if name == "nemesis":
            default = ",".join(default) or "none"
        shown = "" if name in ("seed", "name", "mix", "network", "nodes") else \
            f" (default: {default})"
        if name == "workload":
            # Listed when the parser is built: installed workloads count too.
            text = f"{text}: {'|'.join(workloads.names())}"
        if name == "nemesis":
            # Likewise installed fault kinds.
            text = f"{text}, from {', '.join(fault_names())}; or none"
        p.add_argument(flag, dest=name, type=kind, default=None, help=f"{text}{shown}")
    p.add_argument("--consistency-model", dest="consistency_models", action="append",
                   default=None, metavar="MODEL",
                   help=f"list-append: a consistency model to judge transactions by, "
                        f"repeatable or comma-separated; one of "
                        f"{', '.join(LIST_APPEND_MODELS)} (default strict-serializable)")
    p.add_argument("--checker", dest="checkers", action="append", default=None, metavar="NAME",
                   help="a checker to run besides the workload's, repeatable or "
                        "comma-separated (built-in or plug-in: `faultline check --help` lists "
                        "them)")
    p.add_argument("--system-opt", "--opt", dest="system_opt", action="append", default=[],
                   metavar="NAME=VALUE", help="an option of the system (repeatable); "
                   "`faultline systems NAME` lists them")
    p.add_argument("--nemesis-opt", dest="nemesis_opt", action="append", default=[],
                   metavar="NAME=VALUE", help="an option of the faults (repeatable; lists "
                   "comma-separated), listed below")
    _add_system_flags(p, _system_named(argv if argv is not None else sys.argv[1:]))
    # Listed in the group's description: the group has no flags of its own.
    p.add_argument_group(
        "fault options (--nemesis-opt NAME=VALUE, or [nemesis_options] in a --config file)",
        "\n".join(f"  {name:<16} {option.describe()}"
                  for name, option in sorted(fault_schedule.declared_options().items())))
    p.set_defaults(handler=run)

    r = sub.add_parser("replay", help="run a stored test again: same seed, same faults",
                       description="Run the test of a run directory again, with the same "
                                   "seed and the same fault schedule, into a new run "
                                   "directory.")
    r.add_argument("run_dir", type=Path, help="a run directory (or runs/latest)")
    r.set_defaults(handler=replay)


def _system_named(argv: list[str]) -> str:
    """The system a `run` command line names: --system, else its --config file's, else the
    default (a file that cannot be read is left for the run to report)."""
    config = None
    for i, arg in enumerate(argv):
        for flag in ("--system", "--config"):
            value = None
            if arg == flag and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(flag + "="):
                value = arg.split("=", 1)[1]
            if value is not None and flag == "--system":
                return value
            if value is not None:
                config = value
    if config is not None:
        try:
            system = tomllib.loads(Path(config).read_text()).get("system", DEFAULT_SYSTEM)
        except (OSError, ValueError):
            return DEFAULT_SYSTEM
        if isinstance(system, dict):
            system = system.get("name", DEFAULT_SYSTEM)
        return system if isinstance(system, str) else DEFAULT_SYSTEM
    return DEFAULT_SYSTEM


def _add_system_flags(parser: argparse.ArgumentParser, system: str) -> None:
    """A flag for each option of the system's adapter (--replication for refnode's
    `replication`), unless it would clash with one of the run's own."""
    try:
        adapter = systems.find(system)
    except (systems.UnknownSystem, systems.BrokenAdapter):
        return                   # reported, in one line, when the spec is checked
    taken = {flag for flag, *_ in OPTIONS} | {"--config", "--consistency-model", "--checker",
                                              "--system-opt",
                                              "--opt", "--nemesis-opt", "--help"}
    group = parser.add_argument_group(f"{system} options (also --system-opt NAME=VALUE)")
    for option in adapter.OPTIONS:
        if option.flag in taken:
            continue
        metavar = "|".join(str(c) for c in option.choices) if option.choices else \
            option.type.upper()
        group.add_argument(option.flag, dest=SYSTEM_FLAG_PREFIX + option.name, default=None,
                           metavar=metavar, help=f"{option.help} (default: "
                                                 f"{format_value(option.default)})")


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
    if args.consistency_models:
        given["consistency_models"] = [part.strip() for text in args.consistency_models
                                       for part in text.split(",") if part.strip()]
    if args.checkers:
        given["checkers"] = [part.strip() for text in args.checkers
                             for part in text.split(",") if part.strip()]
    flags = {key[len(SYSTEM_FLAG_PREFIX):]: value for key, value in vars(args).items()
             if key.startswith(SYSTEM_FLAG_PREFIX) and value is not None}
    try:
        if args.system_opt or flags:
            system = given.get("system") or _system_named(
                ["--config", str(args.config)] if args.config else [])
            declared = systems.find(system).OPTIONS
            options = parse_assignments(args.system_opt, declared, "--system-opt")
            by_name = {o.name: o for o in declared}
            options.update({name: by_name[name].parse(text, f"{by_name[name].flag} ")
                            for name, text in flags.items()})
            given["system_options"] = options
        if args.nemesis_opt:
            given["nemesis_options"] = fault_schedule.parse_options(args.nemesis_opt)
    except (systems.UnknownSystem, systems.BrokenAdapter, OptionError) as exc:
        raise SpecError(str(exc)) from None
    if args.config is not None:
        return from_toml(args.config, given)
    return build(given, "--system")


def run(args: argparse.Namespace) -> int:
    """Carry out `faultline run`; returns the exit code."""
    try:
        spec = spec_from_args(args)
    except SpecError as exc:
        raise exits.UsageError(str(exc)) from None
    return execute(spec, sys.argv)


def replay(args: argparse.Namespace) -> int:
    """Carry out `faultline replay RUN_DIR`."""
    try:
        stored = store.read_json(Path(args.run_dir) / store.TEST_FILE)
        spec = TestSpec.from_json(stored["test"])
    except SpecError as exc:
        raise exits.UsageError(f"{args.run_dir}: cannot run its test here: {exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise exits.UsageError(f"{args.run_dir}: not a run directory ({exc})") from None
    terminal.err.print(f"replaying {args.run_dir}: seed {spec.seed}, "
                     f"{len(spec.schedule or [])} fault steps")
    return execute(spec, sys.argv)


def execute(spec: TestSpec, argv: list[str]) -> int:
    """Run `spec` with live progress and print the summary; returns the exit code."""
    if spec.seed is None:
        # Chosen here so that it is printed before anything can go wrong.
        spec.seed = secrets.randbelow(2 ** 31)
    terminal.err.print(f"faultline run {spec.name}: {spec.nodes} {spec.system} nodes "
                     f"({spec.make_system().describe()}) on the {spec.network} network, "
                     f"{spec.workload} workload, faults {','.join(spec.nemesis) or 'none'}, "
                     f"{spec.time_limit:g} s, seed {spec.seed}")
    for line in fault_schedule.describe_plan(plan_schedule(spec)):
        terminal.err.print(line, highlight=False)
    display = _LiveProgress()
    # SIGTERM (a CI job cancelled, a service stopped) stops the run as Ctrl-C does: it
    # cleans up and marks its directory interrupted rather than dying with its history whole
    # in appearance.
    interrupt_on(signal.SIGTERM)
    try:
        with display:
            result = run_test(spec, argv=argv, on_progress=display.update)
    except KeyboardInterrupt:
        terminal.err.print("interrupted: every process of the run has been ended; its "
                           "directory is marked interrupted")
        if Path(spec.runs_dir).is_dir():       # else stopped before the run had a directory
            _refresh_index(Path(spec.runs_dir))
        return exits.INTERRUPTED
    print_summary(result)
    _refresh_index(Path(spec.runs_dir))
    return exit_code(result)


def _refresh_index(runs_dir: Path) -> None:
    """Rewrite the runs directory's index.html to list the new run. The index is a
    convenience: failing to write it is one warning, never the run's verdict or exit code."""
    try:
        # Imported here, so that not even a broken index module can cost a run its verdict.
        from harness.rundirs.index import write_index
        write_index(runs_dir)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the verdict stands
        terminal.err.print(f"warning: {runs_dir}/index.html not updated: {exc}", markup=False,
                         highlight=False, soft_wrap=True)


def exit_code(result: RunResult) -> int:
    """Safety first: an invalid history is INVALID even if the cluster also never recovered."""
    if result.valid is False:
        return exits.INVALID
    if not result.liveness.get("recovered", False):
        return exits.LIVENESS
    if result.valid is True:
        return exits.VALID
    return exits.UNKNOWN


class _LiveProgress:
    """One live status line on a terminal; a plain line every few seconds elsewhere."""

    PLAIN_EVERY = 5.0

    def __init__(self):
        self._live = Live(console=terminal.err, refresh_per_second=4, transient=True) \
            if terminal.err.is_terminal else None
        self._last_plain = 0.0
        self._seed_printed = False

    def __enter__(self):
        if self._live:
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live:
            self._live.__exit__(*exc)

    def update(self, p: RunProgress) -> None:
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
            terminal.err.print(line)


def _faults_row(faults: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """The verdict table's faults row: each kind requested, how often it was applied, its
    skips and errors; flagged when a kind never took effect or had errors."""
    parts = []
    for kind, t in faults.items():
        text = f"{kind} {t['applied']}/{t['planned']}"
        aims = t.get("aims") or {}
        nodes = t.get("nodes") or {}
        extra = [", ".join(f"{aim} x{n}" for aim, n in aims.items())] if aims else []
        extra += ["on " + " ".join(f"{node} x{n}" for node, n in nodes.items())] if nodes else []
        extra += [f"{n} as {name}" for name, n in (t.get("combined") or {}).items()]
        extra += [f"{t['skipped']} skipped"] if t["skipped"] else []
        extra += [f"{len(t['errors'])} errors"] if t["errors"] else []
        parts.append(text + (f" ({', '.join(extra)})" if extra else ""))
    if any(not t["applied"] for t in faults.values()):
        verdict = "[bold yellow]not applied[/]"
    elif any(t["errors"] for t in faults.values()):
        verdict = "[yellow]errors[/]"
    else:
        verdict = "[green]applied[/]"
    return verdict, "applied/planned: " + ", ".join(parts)


def print_summary(result: RunResult) -> None:
    """The verdict per checker, the counterexample in brief, latency and availability, where
    the run is stored and how to replay it."""
    out = terminal.out
    results = result.results
    table = Table(title=f"run {result.run_dir}", title_justify="left")
    table.add_column("checker")
    table.add_column("verdict")
    table.add_column("summary", overflow="fold")
    for name, r in results.get("checkers", {}).items():
        table.add_row(name, terminal.verdict_text(r["valid"]), r.get("summary", ""))
    live = result.liveness
    table.add_row("liveness", terminal.verdict_text(bool(live.get("recovered"))),
                  f"recovered in {live.get('seconds')} s" if live.get("recovered")
                  else live.get("reason", "not checked: the run did not get that far"))
    faults = results.get("faults") or {}
    if faults:
        table.add_row("faults", *_faults_row(faults))
    out.print(table)
    for kind, tally in faults.items():
        for error in tally["errors"][:3]:
            out.print(f"[yellow]fault error[/]: {kind}: {escape(error)}")
        if not tally["applied"]:
            why = f"{tally['planned']} planned"
            if tally["skipped"]:
                why += f", skipped: {'; '.join(tally['skip_reasons'])}"
            if tally["errors"]:
                why += f", {len(tally['errors'])} errors"
            out.print(f"[bold yellow]warning[/]: the {kind} fault never took effect ({why})")
    for node, why in (live.get("down") or {}).items():
        out.print(f"[bold yellow]warning[/]: {node} was down when the run ended"
                  + (f"; its log's last line: {escape(why)}" if why else ""))
    bug = result.bug
    if bug and result.valid is True:
        out.print(f"[bold yellow]warning[/]: the planted bug {bug} was switched on, and this "
                  f"run found nothing (a longer run, or faults aimed where it lives, may)")
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
    terminal.print_context(results)
    out.print(f"verdict: {terminal.verdict_text(result.valid)}   seed {result.seed}   "
              f"{sum(result.counts.get(k, 0) for k in ('ok', 'fail', 'info')):,} operations "
              f"in {result.elapsed:.1f} s")
    out.print(f"run directory: {result.run_dir}")
    if (result.run_dir / "report.html").exists():
        out.print(f"report: {result.run_dir / 'report.html'}")
    # Whole on one line, however long, and never read as markup: it is for pasting.
    out.print(f"replay: {result.replay_command}", markup=False, soft_wrap=True)
