"""Tidying a runs directory: which runs to remove, removing them safely, mending `latest`.

The choice is a pure function of the runs listed and the clock (`plan`); removal (`remove`)
checks again, just before it acts, that what it removes is a run directory inside the runs
directory reached without links, so a link or a stray directory can never lead it elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness.rundirs import store
from harness.rundirs.catalog import RunSummary, is_run_dir

# A run touched more recently than this may still be written by a campaign.
RECENT_SECONDS = 60.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


class PruneRefused(Exception):
    """A path that `remove` will not touch, and why."""


def parse_duration(text: str) -> float:
    """Seconds in a duration such as 30m, 12h, 7d, 2w, 90s; ValueError saying what is
    expected otherwise (a bare number is refused: minutes and days are too easily mixed)."""
    found = _DURATION.match(text)
    if not found or float(found.group(1)) <= 0:
        raise ValueError(f"not a duration: {text!r} (expected a positive number and a unit, "
                         f"s, m, h, d or w: 30m, 12h, 7d)")
    return float(found.group(1)) * _UNITS[found.group(2)]


@dataclass
class Plan:
    """What a prune would do: `remove` the runs chosen, and leave `recent` ones (chosen, but
    modified too lately: perhaps still running) alone."""

    remove: list[RunSummary] = field(default_factory=list)
    recent: list[RunSummary] = field(default_factory=list)


def plan(runs: list[RunSummary], *, keep: int | None, older_than: float | None, now: float,
         force: bool = False, per_test: bool = False) -> Plan:
    """Choose runs to remove from `runs` (newest first, as catalog.list_runs gives them).

    A run is chosen when it is not among the `keep` newest (of the whole runs directory, or
    of its test's directory with `per_test`) and, with `older_than`, started more than that
    many seconds before `now`: both given, `keep` is a floor that age never goes under. Only
    strict run directories are chosen. Without `force`, a chosen run modified within
    RECENT_SECONDS is set aside in `recent` instead.
    """
    if keep is None and older_than is None:
        raise ValueError("nothing to prune by: give keep and/or older_than")
    result = Plan()
    seen: dict[Path | None, int] = {}
    for run in runs:
        group = run.path.parent if per_test else None
        seen[group] = seen.get(group, 0) + 1
        if keep is not None and seen[group] <= keep:
            continue
        if older_than is not None and now - run.started <= older_than:
            continue
        if not is_run_dir(run.path):
            continue
        if not force and now - run.modified < RECENT_SECONDS:
            result.recent.append(run)
        else:
            result.remove.append(run)
    return result


def remove(root: Path, run_dir: Path) -> None:
    """Remove the run directory `run_dir` of the runs directory `root`, and its test's
    directory if that is left empty; PruneRefused, touching nothing, unless `run_dir` is a
    run directory inside `root` reached without any link."""
    root, run_dir = Path(root), Path(run_dir)
    try:
        inside = run_dir.relative_to(root)
    except ValueError:
        raise PruneRefused(f"{run_dir}: not inside {root}") from None
    if not inside.parts or ".." in inside.parts:
        raise PruneRefused(f"{run_dir}: not a run directory below {root}")
    step = root
    for part in inside.parts:
        step = step / part
        if step.is_symlink():
            raise PruneRefused(f"{run_dir}: reached through the link {step}")
    if not is_run_dir(run_dir):
        raise PruneRefused(f"{run_dir}: not a run directory (needs {store.TEST_FILE} and "
                           f"{store.HISTORY_FILE})")
    real_root = root.resolve()
    if not run_dir.resolve().is_relative_to(real_root) or run_dir.resolve() == real_root:
        raise PruneRefused(f"{run_dir}: resolves outside {root}")
    # rmtree removes links inside the run as links: it never follows them out.
    shutil.rmtree(run_dir)
    parent = run_dir.parent
    if parent != root:
        try:
            parent.rmdir()              # only succeeds when nothing else is left in it
        except OSError:
            pass


def latest_target(root: Path) -> Path | None:
    """Where `root/latest` points (resolved), or None when there is no such link."""
    link = Path(root) / store.LATEST
    return Path(os.path.realpath(link)) if link.is_symlink() else None


def mend_latest(root: Path, remaining: list[RunSummary]) -> str:
    """Point `root/latest` at the newest of `remaining` (strict run directories only), or
    remove it when none is left; returns what was done, in words."""
    for run in remaining:
        if is_run_dir(run.path):
            store.update_latest(root, run.path)
            return f"latest now points at {run.path}"
    (Path(root) / store.LATEST).unlink(missing_ok=True)
    return "latest removed: no run is left"
