"""Run directories: where a run's configuration, history, results and logs are kept.

    runs/<test-name>/<UTC time>-s<seed>/   test.json, history.jsonl, results.json, nodes/,
                                           proxy.log, observations.jsonl, interrupted.json
    runs/latest                            link to the newest run

The store writes in phases (test.json before anything runs, the history as it happens,
results.json at the end), so a crash of the harness still leaves the configuration and the
history on disk; a run stopped by Ctrl-C or SIGTERM says so in interrupted.json
(`mark_interrupted`). It also words the command that replays a run (`replay_command`), for
whatever prints it: the run's summary, its report, a campaign's JUnit file.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

TEST_FILE = "test.json"
HISTORY_FILE = "history.jsonl"
RESULTS_FILE = "results.json"
OBSERVATIONS_FILE = "observations.jsonl"      # nodes' reported roles (harness.run.observer)
INTERRUPTED_FILE = "interrupted.json"         # the run was stopped before its end
LATEST = "latest"


def create_run_dir(runs_dir: Path, name: str, seed: int) -> Path:
    """A new, empty run directory for test `name` with `seed`."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return new_directory(Path(runs_dir) / name, f"{stamp}-s{seed}")


def new_directory(parent: Path, name: str) -> Path:
    """A new, empty directory `parent/name`, or `name-2`, `name-3`... when another process
    made that one first (two runs, or two campaigns, started in the same second)."""
    parent.mkdir(parents=True, exist_ok=True)
    candidate, suffix = parent / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            suffix += 1
            candidate = parent / f"{name}-{suffix}"


def update_latest(runs_dir: Path, run_dir: Path) -> Path:
    """Point runs/latest at `run_dir` (replaced atomically); returns the link."""
    link = Path(runs_dir) / LATEST
    tmp = Path(runs_dir) / f".{LATEST}.{os.getpid()}"
    target = os.path.relpath(run_dir, runs_dir)
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
    return link


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """Read a JSON file of a run; ValueError with the path if it is missing or malformed."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None


def mark_interrupted(run_dir: Path, phase: str, history_seconds: float | None,
                     events: int) -> None:
    """Say in `run_dir` that its run was stopped (Ctrl-C, SIGTERM) before its end: during
    `phase` (the run's progress phase: "running", "healing", ...), its history cut short
    after `events` events, the last at `history_seconds` (None: no event). Written as the run
    unwinds, so that no later reader takes the short history for a whole one."""
    write_json(Path(run_dir) / INTERRUPTED_FILE, {
        "interrupted": True, "phase": phase,
        "history_seconds": None if history_seconds is None else round(history_seconds, 3),
        "events": events, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def interruption(run_dir: Path) -> dict[str, Any] | None:
    """None when the run in `run_dir` was not interrupted (no interrupted.json); else what
    its marker says, with `reason`, one line for a person ("interrupted: the history was cut
    short at 4.2 s, while running"). Never raises: a marker that cannot be read still marks
    the run interrupted, and its reason says the details are lost."""
    path = Path(run_dir) / INTERRUPTED_FILE
    if not os.path.lexists(path):
        return None
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {"interrupted": True,
                "reason": f"interrupted: the history was cut short ({path.name} unreadable: "
                          f"{exc})"}
    marker = marker if isinstance(marker, dict) else {}
    seconds, phase = marker.get("history_seconds"), marker.get("phase")
    where = f"at {seconds:g} s" if isinstance(seconds, (int, float)) and \
        not isinstance(seconds, bool) else "before its first event"
    when = f", while {phase}" if isinstance(phase, str) and phase else ""
    return {**marker, "interrupted": True,
            "reason": f"interrupted: the history was cut short {where}{when}"}


def versions() -> dict[str, str]:
    """What ran: faultline's version, Python's, the platform's."""
    try:
        faultline = metadata.version("faultline")
    except metadata.PackageNotFoundError:
        faultline = "unknown"
    return {"faultline": faultline, "python": sys.version.split()[0],
            "platform": platform.platform()}


def faultline_command() -> str:
    """The command that starts the faultline running in this process, quoted for a POSIX
    shell: the `faultline` script that was run, by its resolved path, when it is one; else
    `python -m harness` with this interpreter's path. A bare `faultline` would fail when
    pasted where only `.venv/bin/faultline` exists (not on PATH: the README's way)."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "faultline" and script.is_file() \
            and os.access(script, os.X_OK):
        return shlex.quote(str(script.resolve()))
    # Not resolved: a virtual environment's python is a link, and only through the link
    # does it find the environment's packages (faultline among them).
    python = os.path.abspath(sys.executable) if sys.executable else "python3"
    return f"{shlex.quote(python)} -m harness"


def replay_command(run_dir: Path | str) -> str:
    """The shell command that replays `run_dir` (same seed, same fault schedule) with the
    faultline running now (`faultline_command`), the directory made absolute so that the
    command works pasted from any working directory."""
    return f"{faultline_command()} replay {shlex.quote(os.path.abspath(run_dir))}"
