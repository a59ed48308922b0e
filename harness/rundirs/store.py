"""Run directories: where a run's configuration, history, results and logs are kept.

    runs/<test-name>/<UTC time>-s<seed>/   test.json, history.jsonl, results.json, nodes/,
                                           proxy.log, observations.jsonl
    runs/latest                            link to the newest run

The store writes in phases (test.json before anything runs, the history as it happens,
results.json at the end), so a crash of the harness still leaves the configuration and the
history on disk.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

TEST_FILE = "test.json"
HISTORY_FILE = "history.jsonl"
RESULTS_FILE = "results.json"
OBSERVATIONS_FILE = "observations.jsonl"      # nodes' reported roles (harness.run.observer)
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


def versions() -> dict[str, str]:
    """What ran: faultline's version, Python's, the platform's."""
    try:
        faultline = metadata.version("faultline")
    except metadata.PackageNotFoundError:
        faultline = "unknown"
    return {"faultline": faultline, "python": sys.version.split()[0],
            "platform": platform.platform()}
