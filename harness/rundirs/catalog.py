"""What a runs directory holds: its run directories, each summed up without trusting it.

A runs directory is `runs/` or any `--runs-dir`: run directories sit one or two levels below it
(`<test-name>/<UTC time>-s<seed>/`, or `<UTC time>-s<seed>/` when given a test's own
directory), a little deeper in directories that group runs (`faultline validate --runs-dir D`
puts them under `D/validate-<case>/`). Symbolic links (`latest`) are never followed, so no run
is listed twice and nothing outside the runs directory is read.

Runs are read while campaigns may still be writing them, and after crashes: a summary never
raises. A run without results.json is "incomplete" (running, or cut short); one stopped by
Ctrl-C or SIGTERM (its interrupted.json) is "interrupted", checked or not, unless a violation
was found in what it recorded ("INVALID", and `interrupted` says the rest); one whose JSON
cannot be read is "damaged", with the reason.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from harness.rundirs import store

VALID, INVALID, UNKNOWN = "valid", "INVALID", "unknown"
INCOMPLETE, DAMAGED, INTERRUPTED = "incomplete", "damaged", "interrupted"
# A run directory's name: its start (UTC, to the second), its seed, and a suffix when two
# runs of one test started in the same second (store.create_run_dir).
RUN_NAME = re.compile(r"^(\d{8}T\d{6}Z)-s(-?\d+)(?:-(\d+))?$")
# How deep below a runs directory runs are looked for (see the module docstring).
MAX_DEPTH = 3
# The end of history.jsonl read for the run's duration; one event is far smaller.
TAIL_BYTES = 64 * 1024


@dataclass
class RunSummary:
    """One run as `faultline runs` lists it. `path` is as found below the runs directory
    (not resolved); `started` and `modified` are epoch seconds."""

    path: Path
    started: float
    test: str
    system: str | None = None
    workload: str | None = None
    seed: int | None = None
    verdict: str = INCOMPLETE
    recovered: bool | None = None
    first_violation_seconds: float | None = None
    duration_seconds: float | None = None
    size_bytes: int = 0
    modified: float = 0.0
    problem: str | None = None      # why the run is damaged
    interrupted: bool = False       # stopped before its end (store.INTERRUPTED_FILE)
    order: tuple = ()               # tie-breaks runs started in the same second

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.started, timezone.utc)

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON data (`faultline runs --json`)."""
        return {"when": self.when.strftime("%Y-%m-%dT%H:%M:%SZ"), "test": self.test,
                "system": self.system, "workload": self.workload, "seed": self.seed,
                "verdict": self.verdict, "recovered": self.recovered,
                "first_violation_seconds": self.first_violation_seconds,
                "duration_seconds": self.duration_seconds, "size_bytes": self.size_bytes,
                "path": str(self.path), "problem": self.problem,
                "interrupted": self.interrupted}


def is_run_dir(path: Path) -> bool:
    """A run directory, strictly: a real directory (not a link) holding test.json and
    history.jsonl as regular files. Only these may be removed or compared."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        return all(stat.S_ISREG(os.lstat(Path(path) / name).st_mode)
                   for name in (store.TEST_FILE, store.HISTORY_FILE))
    except OSError:
        return False


def _looks_like_run(path: Path) -> bool:
    """A directory a run has begun to write (test.json comes first, then the history)."""
    return any(os.path.lexists(path / name) for name in (store.TEST_FILE, store.HISTORY_FILE))


def find_runs(root: Path) -> list[Path]:
    """Every run directory below `root` (to MAX_DEPTH levels), including ones a campaign has
    just begun; links and hidden directories are not entered, nor are runs themselves."""
    found: list[Path] = []
    level = [Path(root)]
    for _ in range(MAX_DEPTH):
        below: list[Path] = []
        for directory in level:
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue                     # unreadable: nothing to list there
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                path = Path(directory) / entry.name
                (found if _looks_like_run(path) else below).append(path)
        level = below
    return found


def list_runs(root: Path) -> list[RunSummary]:
    """The runs below `root`, newest first."""
    runs = [summarize(path) for path in find_runs(root)]
    runs.sort(key=lambda r: (r.started, r.order, str(r.path)), reverse=True)
    return runs


def summarize(run_dir: Path) -> RunSummary:
    """What `faultline runs` shows of one run directory; never raises."""
    run_dir = Path(run_dir)
    name = RUN_NAME.match(run_dir.name)
    test_mtime = _mtime_ns(run_dir / store.TEST_FILE)
    started = _started(name, test_mtime, run_dir)
    summary = RunSummary(path=run_dir, started=started, test=run_dir.parent.name,
                         seed=int(name.group(2)) if name else None,
                         order=(int(name.group(3) or 1) if name else 0, test_mtime or 0))
    summary.size_bytes, summary.modified = _usage(run_dir)
    summary.duration_seconds = history_seconds(run_dir / store.HISTORY_FILE)

    test, problem = _read_json(run_dir / store.TEST_FILE)
    if isinstance(test, dict):
        spec = test.get("test") if isinstance(test.get("test"), dict) else {}
        system = test.get("system") if isinstance(test.get("system"), dict) else {}
        summary.test = str(spec.get("name") or summary.test)
        summary.system = system.get("name") or spec.get("system")
        summary.workload = spec.get("workload")
        if isinstance(spec.get("seed"), int):
            summary.seed = spec["seed"]
    elif problem is None:
        problem = f"{run_dir / store.TEST_FILE}: " + \
            ("missing" if test is None else "not a JSON object")

    results, results_problem = _read_json(run_dir / store.RESULTS_FILE)
    if results is None and results_problem is None:
        summary.verdict = INCOMPLETE                # no results.json yet
    elif not isinstance(results, dict):
        problem = problem or results_problem or \
            f"{run_dir / store.RESULTS_FILE}: not a JSON object"
    else:
        summary.verdict = {True: VALID, False: INVALID}.get(results.get("valid"), UNKNOWN)
        liveness = results.get("liveness")
        if isinstance(liveness, dict) and isinstance(liveness.get("recovered"), bool):
            summary.recovered = liveness["recovered"]
        if isinstance(results.get("first_violation_seconds"), (int, float)):
            summary.first_violation_seconds = results["first_violation_seconds"]
    summary.interrupted = os.path.lexists(run_dir / store.INTERRUPTED_FILE)
    if summary.interrupted and summary.verdict != INVALID:
        # Cut short: what it recorded may look valid, but its end (and recovery) never came.
        summary.verdict = INTERRUPTED
    if problem:
        summary.verdict, summary.problem = DAMAGED, problem
    return summary


def read_run_json(path: Path) -> Any:
    """A run's JSON file, or None when it is missing; ValueError naming the file when it
    cannot be read or parsed."""
    data, problem = _read_json(path)
    if problem:
        raise ValueError(problem)
    return data


def _read_json(path: Path) -> tuple[Any, str | None]:
    """(data, None); (None, None) when the file is missing; (None, why) when unreadable."""
    try:
        return orjson.loads(Path(path).read_bytes()), None
    except FileNotFoundError:
        return None, None
    except (OSError, orjson.JSONDecodeError) as exc:
        return None, f"{path}: unreadable ({exc})"


def _started(name: re.Match | None, test_mtime: int | None, run_dir: Path) -> float:
    """When the run began: the time in its name, else when test.json (written first) was."""
    if name:
        try:
            return datetime.strptime(name.group(1), "%Y%m%dT%H%M%SZ").replace(
                tzinfo=timezone.utc).timestamp()
        except ValueError:
            pass
    if test_mtime is not None:
        return test_mtime / 1e9
    try:
        return os.lstat(run_dir).st_mtime
    except OSError:
        return 0.0


def _mtime_ns(path: Path) -> int | None:
    try:
        return os.lstat(path).st_mtime_ns
    except OSError:
        return None


def _usage(run_dir: Path) -> tuple[int, float]:
    """(bytes the run takes on disk, the newest modification time among its own files and
    its nodes' logs: what a campaign still running keeps touching)."""
    try:
        own = os.lstat(run_dir)
        total, newest = _blocks(own), own.st_mtime
    except OSError:
        total, newest = 0, 0.0
    pending = [(run_dir, 0)]
    while pending:
        directory, depth = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += _blocks(info)
            if depth <= 1:
                newest = max(newest, info.st_mtime)
            if stat.S_ISDIR(info.st_mode):
                pending.append((Path(entry.path), depth + 1))
    return total, newest


def _blocks(info: os.stat_result) -> int:
    """Bytes on disk, not length: what removing a file gives back (sparse files, the whole
    blocks of small ones)."""
    return info.st_blocks * 512 if hasattr(info, "st_blocks") else info.st_size


def history_seconds(path: Path) -> float | None:
    """Seconds from the history's start to its last complete event (the test's operations,
    healing and final reads), read from the file's end; None when there is none."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read()
    except OSError:
        return None
    # A campaign may be writing the last line: take the last one that parses.
    for line in reversed(tail.split(b"\n")):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and isinstance(event.get("time"), (int, float)):
            return round(event["time"] / 1e9, 3)
    return None


def format_size(size: int) -> str:
    """Bytes for a person: 812 B, 3.4 KiB, 41.0 MiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def format_seconds(seconds: float | None) -> str:
    """A duration for a person: 5.9 s, 4 min 12 s, or an empty string when unknown."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
