"""`faultline check`: check a history file, a run directory, or every history of a manifest."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from checkers import registry
from checkers.base import CheckContext, Checker
from checkers.builtin import LinearizableChecker
from checkers.election import load_observations
from checkers.formats import FORMATS, load_history
from checkers.history import client_events
from checkers.list_append import MODELS as LIST_APPEND_MODELS
from checkers.models import FAILED_CAS, MODELS, NIL_READS
from checkers.suite import DEFAULT_CHECKERS, choose_checkers, judge, make_checkers
from harness.cli import exits, terminal
from harness.run.violations import placement
from harness.rundirs import store
from pluginkit.options import OptionError

DEFAULT_BUDGET_SECONDS = 300.0
DEFAULT_MEMORY_MIB = 2048


def register(sub) -> None:
    """Add the `check` subcommand to the `faultline` parser."""
    p = sub.add_parser(
        "check", help="check a history, a run directory or a corpus manifest", add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check a history file (JSON Lines, Jepsen EDN or Jepsen log) or a run\n"
                    "directory (its history.jsonl; results.json is written into it).\n"
                    "Exit codes: 0 valid, 1 invalid, 2 unknown (budget spent, or a run\n"
                    "interrupted before its end), 3 bad input.")
    p.add_argument("-h", "--help", action=_HelpWithCheckers,
                   help="show this help message, with the checkers installed, and exit")
    p.add_argument("path", nargs="?", help="a history file or a run directory")
    p.add_argument("--manifest", metavar="FILE",
                   help="check every history a corpus manifest lists; exit 1 on any "
                        "disagreement with its expected verdicts")
    p.add_argument("--format", choices=FORMATS, help="history format (default: detected)")
    p.add_argument("--model", choices=sorted(MODELS),
                   help="model to check against (default: a key-value map of cas-registers, "
                        "split by key)")
    p.add_argument("--initial", metavar="JSON",
                   help="the value before any write, as JSON (default: null, absent)")
    p.add_argument("--nil-read", choices=NIL_READS,
                   help="a read of nil matches any value, or means absent (default absent)")
    p.add_argument("--failed-cas", choices=FAILED_CAS,
                   help="a failed cas did not happen, or saw another value (default no-op)")
    p.add_argument("--timed-out-fail", choices=["info"],
                   help="treat a :fail whose value is :timed-out as indeterminate")
    p.add_argument("--partition", choices=["key", "none"],
                   help="check each key independently (default key)")
    p.add_argument("--tuple-keys", action=argparse.BooleanOptionalAction, default=None,
                   help="EDN values are [key value] tuples (default: detected)")
    p.add_argument("--checker", action="append", metavar="NAME",
                   help="checker to run, repeatable or comma-separated; one of those listed "
                        "below, plug-ins included (default: chosen from the operations found: "
                        "list-append and stats for transactions, set-full and stats for adds "
                        "and set reads, else linearizable and stats, with session when reads "
                        "and writes carry versions)")
    p.add_argument("--method", choices=["auto", "search", "zones", "chains", "versions"],
                   default="auto",
                   help="linearizability method (default auto: fast paths where they apply)")
    p.add_argument("--budget", type=_non_negative_float, default=DEFAULT_BUDGET_SECONDS,
                   metavar="SECONDS",
                   help=f"time for the linearizability search before the verdict is unknown "
                        f"(default {DEFAULT_BUDGET_SECONDS:g}; 0: no limit)")
    p.add_argument("--memory", type=_positive_int, default=DEFAULT_MEMORY_MIB, metavar="MIB",
                   help=f"memory for the search's configurations (default {DEFAULT_MEMORY_MIB})")
    p.add_argument("--workers", type=_positive_int, metavar="N",
                   help="worker processes for independent keys (default: by history size)")
    p.add_argument("--session-scope", choices=["key", "global"], default="key",
                   help="compare session versions per key, or across keys (a global log index)")
    p.add_argument("--consistency-model", action="append", metavar="MODEL",
                   help=f"list-append: a consistency model to judge transactions by, repeatable "
                        f"or comma-separated; one of {', '.join(LIST_APPEND_MODELS)} (default "
                        f"strict-serializable)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object with a top-level 'valid' instead of tables")
    p.set_defaults(handler=run)


class _HelpWithCheckers(argparse.Action):
    """-h/--help that lists the checkers below the options. Installed checkers are loaded
    only here, when help is asked for: not on every command line that builds the parser."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.epilog = checkers_help()
        parser.print_help()
        parser.exit()


def checkers_help() -> str:
    """The checkers `--checker` takes, one a line: name, what it applies to, and where a
    plug-in comes from; one that cannot be loaded says why instead."""
    lines = ["checkers (--checker NAME; * chosen by default for the histories they apply to):"]
    for name, entry in registry.entries().items():
        try:
            cls = registry.load(entry)
        except registry.BrokenChecker as exc:
            lines.append(f"  {name:<18} cannot be loaded: {exc}")
            continue
        mark = "*" if cls.APPLIES.chosen else " "
        origin = "" if entry.origin == "builtin" else f" [{entry.origin}]"
        lines.append(f"  {name:<16}{mark}  {cls.APPLIES.text}{origin}")
    return "\n".join(lines)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    """Carry out `faultline check`; returns the exit code."""
    if args.manifest:
        if args.path:
            raise exits.UsageError("give either a PATH or --manifest, not both")
        return run_manifest(Path(args.manifest), args)
    if not args.path:
        raise exits.UsageError("check needs a PATH (a history file or a run directory) or "
                               "--manifest FILE")
    path = Path(args.path)
    run_dir = path if path.is_dir() else None
    history_path = path / store.HISTORY_FILE if run_dir else path
    if run_dir and not history_path.exists():
        raise exits.UsageError(f"{path} is a directory without a {store.HISTORY_FILE}: not a run "
                               "directory")
    stored = _stored_test(run_dir) if run_dir else {}

    names = _checker_names(args.checker) or stored.get("checkers") or \
        (list(DEFAULT_CHECKERS) if args.model else [])
    known = registry.entries()
    bad = [name for name in names if name not in known]
    if bad:
        raise exits.UsageError(f"unknown checker {', '.join(map(repr, bad))}; checkers: "
                               f"{', '.join(known)}")
    model_name, model_options = _model_choice(args, stored)
    options = _checker_options(args, stored, model_name, model_options)
    # Every option is refused before the history is read: the model's too, when the checkers
    # are yet to be chosen (the linearizability checker's flags are the model's).
    _make(["linearizable"], options)
    checkers = _make(names, options) if names else []
    context = CheckContext(source=str(history_path), observations=_observations(run_dir))

    load_options = {} if args.tuple_keys is None else {"tuple_keys": args.tuple_keys}
    with terminal.status(f"reading {history_path}", quiet=args.json):
        started = time.perf_counter()
        history = _load(history_path, args.format, load_options)
    read_seconds = time.perf_counter() - started
    if not any(True for _ in client_events(history)):
        raise exits.UsageError(f"{history_path}: no client operations (an empty history checks "
                               "nothing)")
    if not names:
        # Nothing asked for: the checkers fit for the operations the history holds.
        try:
            names = choose_checkers(history)
        except registry.BrokenChecker as exc:
            raise exits.UsageError(str(exc)) from None
        checkers = _make(names, options)
    with terminal.check_progress(f"checking {len(history):,} events with {', '.join(names)}",
                                 quiet=args.json) as context.progress:
        started = time.perf_counter()
        combined, results = judge(history, checkers, context)
    combined["history"] = str(history_path)
    list_append = [c for c in checkers if c.name == "list-append"]
    if list_append and not args.model:
        # Transactions are judged by consistency models, not by a register model.
        combined["consistency_models"] = list(list_append[0].options["consistency_models"])
    else:
        combined["model"] = {"name": model_name, **model_options}
    combined["seconds"] = {"read": round(read_seconds, 3),
                           "check": round(time.perf_counter() - started, 3)}
    interrupted = store.interruption(run_dir) if run_dir else None
    if run_dir:
        # What the run itself recorded stays; only the checkers' verdicts are new.
        recorded = _recorded_results(run_dir)
        combined.update({k: recorded[k] for k in RECORDED_BY_THE_RUN if k in recorded})
        combined.update(placement(results, history))
        if interrupted:
            _judge_interrupted(combined, interrupted)
        store.write_json(run_dir / store.RESULTS_FILE, combined)
        report_path = _rebuild_report(run_dir)
    else:
        report_path = None
    if args.json:
        print(json.dumps(combined, default=str))
    else:
        terminal.print_results(combined, results, written=run_dir / store.RESULTS_FILE if run_dir
                               else None)
        if report_path is not None:
            terminal.out.print(f"report written to {report_path}")
    if interrupted:
        # One line, on stderr when stdout is JSON: why the verdict is what it is.
        (terminal.err if args.json else terminal.out).print(
            combined["interrupted"]["reason"], markup=False, soft_wrap=True)
    if combined["valid"] is True and combined.get("liveness", {}).get("recovered") is False:
        return exits.LIVENESS           # safe, but the run's cluster never recovered
    return exit_code(combined["valid"])


def _rebuild_report(run_dir: Path) -> Path | None:
    """The run's report.html, following the new verdicts; one that cannot be built (even
    for want of its modules) is a warning line and None, never another exit code."""
    try:
        from harness.report.html import build_quietly
    except Exception as exc:  # noqa: BLE001 - results.json is written; the verdict stands
        logging.getLogger("faultline.report").warning(
            "faultline: warning: no report.html for %s: %s: %s", run_dir,
            type(exc).__name__, exc)
        return None
    return build_quietly(run_dir)


def _judge_interrupted(combined: dict[str, Any], interrupted: dict[str, Any]) -> None:
    """The verdict of a run cut short (store.interruption): a violation found in the part of
    the history there is stands, as invalid; anything else is unknown, never valid, for what
    the missing end (and the recovery never tried) might have shown. results.json says so in
    its `interrupted`, whose `reason` is one line for a person."""
    if combined["valid"] is False:
        reason = f"{interrupted['reason']}; the violation found in it stands"
    else:
        combined["valid"] = "unknown"
        reason = f"{interrupted['reason']}; the verdict is unknown"
    combined["interrupted"] = {**interrupted, "reason": reason}


# Parts of a run's results.json that only the run could know, kept by a re-check.
RECORDED_BY_THE_RUN = ("liveness", "seed", "faults")


def _recorded_results(run_dir: Path) -> dict[str, Any]:
    """The run's own results.json, or nothing if it has none (a run cut short)."""
    try:
        recorded = store.read_json(run_dir / store.RESULTS_FILE)
    except ValueError:
        return {}
    return recorded if isinstance(recorded, dict) else {}


def exit_code(valid) -> int:
    """The documented exit code for a verdict."""
    if valid is True:
        return exits.VALID
    if valid is False:
        return exits.INVALID
    return exits.UNKNOWN


def _checker_names(values: list[str] | None) -> list[str]:
    names: list[str] = []
    for value in values or []:
        names.extend(n.strip() for n in value.split(",") if n.strip())
    return names


def _checker_options(args, stored: dict, model_name: str, model_options: dict[str, Any]):
    """The options of a checker by its name, as a function: the command line's flags for the
    checkers they belong to, over the options the run recorded in its test.json (its
    workload's choices, such as the consistency models), each of which goes to any checker
    that declares an option of its name, as it did in the run."""
    recorded = {key: value for key, value in stored.items() if key not in ("checkers", "model")}
    flags: dict[str, dict[str, Any]] = {
        "linearizable": {**LinearizableChecker.options_for_model(model_name, model_options),
                         "budget": args.budget, "memory": args.memory, "workers": args.workers,
                         "method": args.method, "timed_out_fail": args.timed_out_fail},
        "session": {"scope": args.session_scope},
        "list-append": {"consistency_models": _checker_names(args.consistency_model) or None},
    }

    def options(name: str) -> dict[str, Any]:
        declared = {option.name for option in registry.find(name).OPTIONS}
        given = {key: value for key, value in recorded.items() if key in declared}
        given.update({key: value for key, value in flags.get(name, {}).items()
                      if value is not None})
        return given
    return options


def _make(names: list[str], options) -> list[Checker]:
    """The named checkers, made with their options; a name or an option they refuse is bad
    input, in one line."""
    try:
        return make_checkers(names, {name: options(name) for name in names})
    except (registry.UnknownChecker, registry.BrokenChecker, OptionError) as exc:
        raise exits.UsageError(str(exc)) from None


def _model_choice(args, stored: dict) -> tuple[str, dict[str, Any]]:
    model = dict(stored.get("model") or {})
    name = args.model or model.pop("name", None) or "kv"
    options = {k: v for k, v in model.items() if k != "name"} if not args.model else {}
    if args.initial is not None:
        try:
            options["initial"] = json.loads(args.initial)
        except json.JSONDecodeError:
            raise exits.UsageError(f"--initial must be JSON (e.g. 0, null, '\"\"'), got "
                                   f"{args.initial!r}") from None
    for option in ("nil_read", "failed_cas", "partition"):
        value = getattr(args, option)
        if value is not None:
            options[option] = value
    return name, options


def _load(path: Path, format_name: str | None, options: dict) -> list:
    try:
        return load_history(path, format_name, **options)
    except TypeError as exc:      # an option the format does not take
        raise exits.UsageError(str(exc)) from None


def _observations(run_dir: Path | None) -> list | None:
    """A run's observations of node roles, None when it has none (or for a history file)."""
    path = run_dir / store.OBSERVATIONS_FILE if run_dir else None
    return load_observations(path) if path is not None and path.exists() else None


def _stored_test(run_dir: Path) -> dict:
    """The checking choices a run recorded in its test.json, if any."""
    test_file = run_dir / store.TEST_FILE
    if not test_file.exists():
        return {}
    try:
        test = json.loads(test_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise exits.UsageError(f"{test_file}: not readable JSON ({exc})") from None
    check = test.get("check") if isinstance(test, dict) else None
    return check if isinstance(check, dict) else {}


def run_manifest(manifest_path: Path, args) -> int:
    """Check every history of a corpus manifest against its expected verdict.

    Returns VALID when every verdict agrees, INVALID when any disagrees (or is unknown).
    """
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = manifest["histories"]
        if not isinstance(entries, list):
            raise TypeError("'histories' is not a list")
    except FileNotFoundError:
        raise exits.UsageError(f"{manifest_path}: no such manifest") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise exits.UsageError(f"{manifest_path}: not a corpus manifest ({exc})") from None

    rows = []
    with terminal.progress(len(entries), "checking corpus", quiet=args.json) as advance:
        for position, entry in enumerate(entries):
            rows.append(_check_manifest_entry(manifest_path, position, entry, args))
            advance()
    disagreements = sum(1 for row in rows if not row["agrees"])
    summary = {"valid": disagreements == 0, "histories": len(rows),
               "disagreements": disagreements, "rows": rows}
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        terminal.print_manifest(rows)
    return exits.VALID if disagreements == 0 else exits.INVALID


def _check_manifest_entry(manifest_path: Path, position: int, entry: Any, args) -> dict:
    """One history of a manifest, judged by the checker of the model its entry names (a
    register model: linearizability; "list-append": the list-append checker), under the
    conventions the entry states beside the model."""
    where = f"{manifest_path}: entry {position}"
    if not isinstance(entry, dict) or "file" not in entry or "expected" not in entry:
        raise exits.UsageError(f"{where}: needs 'file' and 'expected'")
    options = dict(entry.get("options") or {})
    model_name = options.pop("model", "cas-register")
    history_path = manifest_path.parent / entry["file"]
    started = time.perf_counter()
    history = load_history(history_path, entry.get("format"))
    try:
        checker = registry.for_model(model_name, options, budget=args.budget,
                                     memory=args.memory, workers=args.workers,
                                     method=args.method)
    except (registry.UnknownChecker, registry.BrokenChecker, OptionError) as exc:
        raise exits.UsageError(f"{where}: {exc}") from None
    combined, results = judge(history, [checker], CheckContext(source=str(history_path)))
    found = combined["valid"]
    return {"file": entry["file"], "model": model_name, "expected": entry["expected"],
            "found": found, "agrees": found == entry["expected"],
            "method": ",".join(results[0].figures.get("methods", {})),
            "seconds": round(time.perf_counter() - started, 3),
            "summary": results[0].summary}
