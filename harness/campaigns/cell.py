"""One cell of a campaign, run in a process of its own: `python -m harness.campaigns.cell`.

The campaign runner (`harness.campaigns.dispatch`) starts one such process per run, on this
machine or on a Dask worker: a run has the process to itself (its threads, its signal
handling, its cleanup on Ctrl-C), and a crash of one run cannot take the campaign with it.
The cell arrives as JSON on stdin; the outcome leaves as one JSON line on stdout (`outcome`).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from harness.campaigns.matrix import INVALID, KEEPS_WRITES, LOSES_WRITES, VALID

RAN, COULD_NOT_RUN = "ran", "could-not-run"


def shows(results: dict[str, Any], expect: str) -> bool:
    """Whether a run's results show what a row expects of it: a valid verdict with the
    cluster recovered (VALID), an invalid one (INVALID), acknowledged writes lost
    (LOSES_WRITES: lost set elements that had been acknowledged, or the lost-writes checker's
    finding), or none of them lost with the cluster recovered (KEEPS_WRITES: a promise about
    acknowledged writes alone, such as synchronous replication's, which other anomalies the
    checkers find do not break; a run whose checkers judge no writes shows nothing)."""
    checkers = results.get("checkers") or {}
    if expect == VALID:
        return results.get("valid") is True and bool(
            (results.get("liveness") or {}).get("recovered"))
    if expect == INVALID:
        return results.get("valid") is False
    if expect == LOSES_WRITES:
        losses = results.get("losses") or {}
        lost_register = (checkers.get("lost-writes") or {}).get("valid") is False
        return bool(losses.get("acknowledged")) or lost_register
    if expect == KEEPS_WRITES:
        # Judged only by a checker that decided (a set with no final read is undecided).
        judges = [checkers[name] for name in ("lost-writes", "set-full") if name in checkers]
        if not judges or any(judge.get("valid") not in (True, False) for judge in judges):
            return False
        lost_writes = checkers.get("lost-writes")
        kept = (lost_writes is None or lost_writes.get("valid") is True) and \
            not (results.get("losses") or {}).get("acknowledged")
        return kept and bool((results.get("liveness") or {}).get("recovered"))
    raise ValueError(f"unknown expectation {expect!r}")


def outcome(run_dir: Path | None, results: dict[str, Any] | None, expect: str,
            error: str | None = None, elapsed: float = 0.0) -> dict[str, Any]:
    """The summary of one cell a campaign keeps: whether it ran, its verdict, whether it
    showed what its row expects, where it is stored, its first violation and a one-line
    summary of what was found (or why it could not run)."""
    if results is None:
        return {"status": COULD_NOT_RUN, "error": error or "no results", "run_dir":
                str(run_dir) if run_dir else None, "elapsed": round(elapsed, 1)}
    failing = [f"{name}: {c.get('summary', '')}" for name, c in
               (results.get("checkers") or {}).items() if c.get("valid") is False]
    liveness = results.get("liveness") or {}
    if not liveness.get("recovered") and liveness.get("reason"):
        failing.append(f"liveness: {liveness['reason']}")
    return {"status": RAN, "valid": results.get("valid"), "shows": shows(results, expect),
            "caught_by": [name for name, c in (results.get("checkers") or {}).items()
                          if c.get("valid") is False],
            "run_dir": str(run_dir), "first_violation_seconds":
            results.get("first_violation_seconds"),
            "first_violation": (results.get("first_violation") or {}).get("op"),
            "summary": "; ".join(failing)[:2000], "elapsed": round(elapsed, 1)}


def run_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """Run the cell {"label", "options", "seed", "runs_dir", "expect"} here; its outcome. A
    test that cannot run (a system missing, a node that will not start) is an outcome with
    status COULD_NOT_RUN, not an exception."""
    import time

    from harness.networks import NetworkUnavailable
    from harness.processes.supervisor import ProcessError
    from harness.proxy.process import ProxyServerError
    from harness.run.cluster import ClusterError
    from harness.run.runner import run_test
    from harness.run.spec import SpecError, build
    from harness.systems.base import SystemUnavailable

    started = time.monotonic()
    try:
        spec = build(dict(cell["options"], name=cell["label"], seed=cell["seed"],
                          runs_dir=cell["runs_dir"]), f"row {cell['label']}")
        result = run_test(spec, argv=["faultline", "campaign", cell["label"]])
    except (SpecError, ClusterError, ProcessError, ProxyServerError, SystemUnavailable,
            NetworkUnavailable) as exc:
        return outcome(None, None, cell["expect"], f"{type(exc).__name__}: {exc}",
                       time.monotonic() - started)
    return outcome(result.run_dir, result.results, cell["expect"],
                   elapsed=time.monotonic() - started)


def interrupt_on(*signals: int) -> None:
    """Make each of `signals` raise KeyboardInterrupt in this process, so that a run stops
    and cleans up as on Ctrl-C; in a fork of it, end the fork at once instead.

    Libraries fork helpers from inside a run (pyroute2 makes each namespace in a forked child
    and ends it with SIGTERM): a fork inherits the handler and a copy of the run's stack, and a
    KeyboardInterrupt there would unwind that copy through the run's own cleanup, removing the
    namespaces the run had just made (seen: campaign runs that found no namespace file)."""
    owner = os.getpid()

    def interrupt(signum, frame):
        if os.getpid() != owner:
            os._exit(128 + signum)
        raise KeyboardInterrupt

    for sig in signals:
        signal.signal(sig, interrupt)


PARENT_ENV = "FAULTLINE_CELL_PARENT"      # the pid of the process that started the cell


def end_with_parent() -> None:
    """If the campaign (or the Dask worker) that started this process dies, this process
    gets SIGINT and stops its run as on Ctrl-C, cleaning up, rather than running on as an
    orphan (Linux's parent-death signal; set here rather than between fork and exec, which
    is unsafe in a threaded parent such as a Dask worker). KeyboardInterrupt at once when
    the parent named by PARENT_ENV is gone already (it died while this one started)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGINT)
    if not parent_alive():
        raise KeyboardInterrupt


def parent_alive() -> bool:
    """Whether the process that started this cell is still its parent."""
    expected = os.environ.get(PARENT_ENV)
    return expected is None or os.getppid() == int(expected)


def main() -> int:
    """Read a cell from stdin, run it, print its outcome as one JSON line. A cell in a
    worker's scratch directory leaves nothing behind when its worker is gone."""
    # SIGINT is how the campaign stops a run (also from a parent that a shell started with
    # SIGINT ignored, which its children would inherit); SIGTERM (a CI job cancelled, a
    # service stopped) does the same. Either way the run cleans up its processes and
    # namespaces.
    interrupt_on(signal.SIGINT, signal.SIGTERM)
    cell = json.loads(sys.stdin.read())
    # Only the outcome goes to stdout (a pipe the campaign reads once the run has ended:
    # anything more could fill it and stall the run); whatever the run prints goes to stderr.
    outcome_stream, sys.stdout = sys.stdout, sys.stderr
    try:
        end_with_parent()
        found = run_cell(cell)
    except KeyboardInterrupt:
        _drop_scratch(cell)
        return 130
    if not parent_alive():
        _drop_scratch(cell)          # nobody is left to collect it
        return 130
    print(json.dumps(found), file=outcome_stream, flush=True)
    return 0


def _drop_scratch(cell: dict[str, Any]) -> None:
    if cell.get("scratch"):
        shutil.rmtree(cell["runs_dir"], ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
