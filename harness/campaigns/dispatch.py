"""Running a campaign's cells: here, several at once, or as tasks on a Dask cluster.

Each cell runs in a process of its own (`python -m harness.campaigns.cell`), so runs at once
never share a process; their ports are reserved in a table shared through the state
directory (`harness.processes.ports`), their namespaces' subnets are chosen under a lock kept there
too, and each has its own run
directory. `run_here` keeps `jobs` of them
going; `run_on_dask` hands each to a Dask worker with a `faultline` resource (one run per
worker at a time), which runs it the same way and sends back its run directory, unpacked into
the local campaign directory. A cell is never dropped: whatever happens to it (a run that
cannot start, a worker lost twice, the budget spent before it began) it comes back as an
outcome saying so.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from harness.campaigns.cell import COULD_NOT_RUN, PARENT_ENV, outcome
from harness.campaigns.matrix import Cell

NOT_RUN = "not-run"
RESOURCE = "faultline"          # the Dask worker resource a run takes (workers offer 1)
Done = Callable[[Cell, dict[str, Any]], None]


def cell_process(**options) -> subprocess.Popen:
    """A process running one cell (`harness.campaigns.cell`), its cell to be written to its
    stdin; it stops its run if this process dies (see `cell.end_with_parent`). In a
    session of its own, so that a terminal's Ctrl-C reaches the campaign alone, which then
    interrupts each run exactly once (a second interrupt could cut a run's cleanup short)."""
    env = dict(os.environ, **{PARENT_ENV: str(os.getpid())})
    return subprocess.Popen([sys.executable, "-m", "harness.campaigns.cell"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                            start_new_session=True, **options)


def cell_data(cell: Cell, runs_dir: Path) -> dict[str, Any]:
    """What a cell's process needs to know, as JSON data."""
    return {"label": cell.row.label, "options": cell.row.options, "seed": cell.seed,
            "runs_dir": str(runs_dir), "expect": cell.row.expect}


def not_run(why: str) -> dict[str, Any]:
    """The outcome of a cell that was never started."""
    return {"status": NOT_RUN, "error": why, "run_dir": None, "elapsed": 0.0}


def run_here(cells: list[Cell], campaign_dir: Path, jobs: int, budget: float | None,
             on_done: Done) -> dict[str, dict[str, Any]]:
    """Run `cells` on this machine, `jobs` at a time, none started once `budget` seconds have
    passed; each outcome passed to `on_done` as it comes, and all returned by cell key. On
    Ctrl-C the running cells are interrupted and waited for (each cleans up after itself),
    then KeyboardInterrupt goes on."""
    logs = campaign_dir / "cells"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    waiting = list(cells)
    running: dict[str, tuple[Cell, subprocess.Popen, Any, float]] = {}
    outcomes: dict[str, dict[str, Any]] = {}

    def finish(cell: Cell, found: dict[str, Any]) -> None:
        outcomes[cell.key] = found
        on_done(cell, found)

    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                cell = waiting.pop(0)
                if budget is not None and time.monotonic() - started > budget:
                    finish(cell, not_run(f"the campaign's budget of {budget:g} s was spent"))
                    continue
                log = open(logs / f"{cell.row.label}-s{cell.seed}.log", "wb")
                process = cell_process(stderr=log)
                process.stdin.write(json.dumps(cell_data(cell, campaign_dir)).encode())
                process.stdin.close()
                running[cell.key] = (cell, process, log, time.monotonic())
            for key, (cell, process, log, began) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[key]
                log.close()
                finish(cell, _collected(process, Path(log.name), cell, began))
            time.sleep(0.1)
    except BaseException:
        # Ctrl-C, SIGTERM, or a failure of the campaign itself: no run is left going.
        _interrupt([process for _, process, _, _ in running.values()])
        for cell, _, log, _ in running.values():
            log.close()
        raise
    return outcomes


def _collected(process: subprocess.Popen, log: Path, cell: Cell,
               began: float) -> dict[str, Any]:
    """The outcome a cell's process printed, or why there is none (its log's last line)."""
    printed = process.stdout.read().decode("utf-8", "replace").strip().splitlines()
    process.stdout.close()
    if process.returncode == 0 and printed:
        try:
            return json.loads(printed[-1])
        except ValueError:
            pass
    from harness.run.cluster import last_log_line

    said = last_log_line(log) or f"exit code {process.returncode}"
    return outcome(None, None, cell.row.expect,
                   f"the run's process failed: {said} (see {log})", time.monotonic() - began)


def _interrupt(processes: list[subprocess.Popen], grace: float = 30.0) -> None:
    """Interrupt each run once (as Ctrl-C would), wait for them to clean up, then kill
    what is left."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            process.kill()
            process.wait()


# --- on a Dask cluster ----------------------------------------------------------------------

def run_remote(cell: dict[str, Any]) -> dict[str, Any]:
    """A Dask task: run one cell on this worker in a scratch runs directory, and return its
    outcome with the run directory packed (gzip tar bytes), the scratch removed."""
    scratch = Path(tempfile.mkdtemp(prefix="faultline-cell-"))
    try:
        cell = dict(cell, runs_dir=str(scratch), scratch=True)
        process = cell_process(stderr=subprocess.PIPE)
        out, err = process.communicate(json.dumps(cell).encode())
        printed = out.decode("utf-8", "replace").strip().splitlines()
        try:
            found = json.loads(printed[-1])
        except (IndexError, ValueError):
            lines = err.decode("utf-8", "replace").strip().splitlines()
            failed = outcome(None, None, cell["expect"], "the run's process failed on the "
                             f"worker: {lines[-1] if lines else process.returncode}")
            return {"outcome": failed, "archive": None, "worker": os.uname().nodename}
        packed = None
        if found.get("run_dir"):
            run_dir = Path(found["run_dir"])
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
                tar.add(run_dir, arcname=str(run_dir.relative_to(scratch)))
            packed = buffer.getvalue()
        return {"outcome": found, "archive": packed, "worker": os.uname().nodename}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def connect(address: str, timeout: float = 10.0):
    """A Dask client of the scheduler at `address`, whose workers offer the `faultline`
    resource; ConnectionError naming what is wrong when it cannot be reached, no worker offers
    the resource (its tasks would wait for ever), or Dask is not installed."""
    try:
        from distributed import Client
    except ImportError:
        raise ConnectionError("--scheduler needs Dask's distributed package: pip install "
                              "'faultline[dask]'") from None
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConnectionError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    if not slots(client):
        workers = len(client.scheduler_info().get("workers", {}))
        client.close()
        raise ConnectionError(f"none of the {workers} workers of the Dask scheduler at "
                              f"{address} offers the resource {RESOURCE}=1 (start them with "
                              f"--resources {RESOURCE}=1)")
    return client


def slots(client) -> int:
    """How many runs the cluster's workers take at once: their `faultline` resources."""
    workers = client.scheduler_info().get("workers", {}).values()
    return int(sum(w.get("resources", {}).get(RESOURCE, 0) for w in workers))


def run_on_dask(cells: list[Cell], campaign_dir: Path, client, budget: float | None,
                on_done: Done) -> dict[str, dict[str, Any]]:
    """Run `cells` as tasks on the Dask cluster of `client`, one per worker at a time (each
    takes the worker's `faultline` resource); run directories unpacked under `campaign_dir`.
    A cell is handed out only when a worker is free, so the budget stops every cell not yet
    started. A cell whose worker dies is run again elsewhere, up to the scheduler's
    `allowed-failures` (3 by default), then reported could-not-run (KilledWorker). Ctrl-C
    cancels the cells not yet handed out; those running on workers run to their end."""
    from distributed import as_completed

    started = time.monotonic()
    capacity = max(1, slots(client))
    waiting = list(cells)
    running: dict[Any, Cell] = {}
    outcomes: dict[str, dict[str, Any]] = {}

    def finish(cell: Cell, found: dict[str, Any]) -> None:
        outcomes[cell.key] = found
        on_done(cell, found)

    def hand_out(pending) -> None:
        while waiting and len(running) < capacity:
            cell = waiting.pop(0)
            if budget is not None and time.monotonic() - started > budget:
                finish(cell, not_run(f"the campaign's budget of {budget:g} s was spent"))
                continue
            future = client.submit(run_remote, cell_data(cell, campaign_dir),
                                   key=_task_key(cell), resources={RESOURCE: 1}, pure=False)
            running[future] = cell
            pending.add(future)

    pending = as_completed()
    try:
        hand_out(pending)
        for future in pending:
            cell = running.pop(future)
            try:
                answer = future.result()
            except Exception as exc:          # KilledWorker, a cancelled task, a lost worker
                found = outcome(None, None, cell.row.expect,
                                f"the task failed on the Dask cluster: {type(exc).__name__}: "
                                f"{exc}")
            else:
                try:
                    found = _unpacked(answer, campaign_dir)
                except (KeyError, TypeError, OSError, tarfile.TarError) as exc:
                    found = outcome(None, None, cell.row.expect, f"the run's directory did "
                                    f"not come back whole from its worker: {exc!r}")
            finish(cell, found)
            hand_out(pending)
    except KeyboardInterrupt:
        client.cancel(list(running))
        raise
    return outcomes


def _unpacked(answer: dict[str, Any], campaign_dir: Path) -> dict[str, Any]:
    """A remote outcome with its run directory unpacked under `campaign_dir` (its run_dir
    rewritten to that place)."""
    found = dict(answer["outcome"])
    if answer.get("archive"):
        with tarfile.open(fileobj=io.BytesIO(answer["archive"]), mode="r:gz") as tar:
            names = tar.getnames()
            _extract(tar, campaign_dir)
        found["run_dir"] = str(campaign_dir / names[0])
        found["worker"] = answer.get("worker")
    elif found.get("status") != COULD_NOT_RUN:
        found["run_dir"] = None
    return found


def _extract(tar: tarfile.TarFile, into: Path) -> None:
    """Unpack a worker's archive, refusing members that would land outside `into` (links,
    absolute or `..` paths): the "data" filter, or the same check by hand on a Python older
    than 3.11.4, which lacks it."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(into, filter="data")
        return
    root = into.resolve()
    for member in tar.getmembers():
        target = (into / member.name).resolve()
        if not (member.isfile() or member.isdir()) or not target.is_relative_to(root):
            raise tarfile.TarError(f"refused archive member {member.name!r}")
    tar.extractall(into)


def _task_key(cell: Cell) -> str:
    return f"faultline-{cell.row.label}-s{cell.seed}-{os.getpid()}-{time.monotonic_ns()}"
