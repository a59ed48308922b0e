"""What each live harness started, so that a crashed harness's leftovers are found.

Every harness that starts processes keeps one small JSON file in the state directory, named
after its own pid, listing what it started (pid and creation time, so that a reused pid is
never mistaken for ours) and the system resources it made (network namespaces, links),
recorded before they are made. `reap_stale` kills the processes of every file whose harness
is gone, removes its resources and removes the file: for processes the guard normally does
this already, and this is the second line of defence (a guard that was itself SIGKILLed, a
machine that was suspended); for resources it is the only one.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil

STATE_DIR_ENV = "FAULTLINE_STATE_DIR"


def state_dir() -> Path:
    """Where registries live: $FAULTLINE_STATE_DIR, else a per-user folder in the temp dir."""
    configured = os.environ.get(STATE_DIR_ENV)
    base = Path(configured) if configured else Path(tempfile.gettempdir()) / (
        f"faultline-{os.getuid()}")
    path = base / "live"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class Recorded:
    """A process as recorded: enough to find it again and to be sure it is the same one."""

    pid: int
    create_time: float
    name: str

    @classmethod
    def of(cls, pid: int, name: str) -> "Recorded":
        return cls(pid, psutil.Process(pid).create_time(), name)

    def alive(self) -> psutil.Process | None:
        """The process, if it still runs and is the one recorded (not a reused pid)."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.create_time) > 0.01:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            return process
        except psutil.Error:
            return None


_numbers = itertools.count(1)


class Registry:
    """One registry file of this harness (a harness may run several clusters, each with its
    own); thread-safe; removed by `close()`."""

    def __init__(self, directory: Path | None = None):
        self._owner = Recorded.of(os.getpid(), "harness")
        # The owner's start time in the name: a new harness with a dead one's pid must not
        # overwrite a record the reaper has kept.
        self.path = (directory or state_dir()) / (
            f"{os.getpid()}-{int(self._owner.create_time * 1000)}-{next(_numbers)}.json")
        self._processes: dict[int, Recorded] = {}
        self._resources: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def add(self, pid: int, name: str) -> None:
        """Record a started process (call right after starting it). One already gone (a
        command that exited at once) leaves nothing to reap and is not recorded."""
        try:
            recorded = Recorded.of(pid, name)
        except psutil.NoSuchProcess:
            return
        with self._lock:
            self._processes[pid] = recorded
            self._write()

    def remove(self, pid: int) -> None:
        """Forget a process that has ended."""
        with self._lock:
            if self._processes.pop(pid, None) is not None:
                self._write()

    def add_resource(self, kind: str, name: str, cleaner: str) -> None:
        """Record a resource about to be made (call before making it: a crash in between
        leaves a record of something that does not exist, which the reaper skips). `cleaner`
        is the "module:function" that removes one by name, idempotently: the reaper imports
        it only when a dead harness left the resource behind, and this package needs to know
        nothing of what made it. Namespaces (kind "netns") are removed before anything else."""
        if ":" not in cleaner:
            raise ValueError(f"cleaner must be 'module:function', got {cleaner!r}")
        with self._lock:
            if not any(r[:2] == (kind, name) for r in self._resources):
                self._resources.append((kind, name, cleaner))
                self._write()

    def remove_resource(self, kind: str, name: str) -> None:
        """Forget a resource that has been removed."""
        with self._lock:
            kept = [r for r in self._resources if r[:2] != (kind, name)]
            if len(kept) != len(self._resources):
                self._resources = kept
                self._write()

    def close(self) -> None:
        """Remove the file: everything recorded has been ended."""
        with self._lock:
            self._processes.clear()
            self._resources.clear()
            self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        _write_atomically(self.path, {"owner": vars(self._owner),
                                      "processes": [vars(p) for p in self._processes.values()],
                                      "resources": [list(r) for r in self._resources]})


def _write_atomically(path: Path, data: dict) -> None:
    """A reader (another harness reaping) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def reap_stale(directory: Path | None = None) -> list[Recorded]:
    """Kill the processes of every registry whose harness is no longer running.

    Returns the processes that were found alive and killed (with their children). Registries
    that cannot be read are removed: they can only be the remains of a crash mid-write.
    """
    reaped: list[Recorded] = []
    for path in (directory or state_dir()).glob("*.json"):
        try:
            data = json.loads(path.read_text())
            owner = Recorded(**data["owner"])
            processes = [Recorded(**p) for p in data["processes"]]
            resources = [tuple(map(str, record)) for record in data.get("resources", [])]
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if owner.alive() is not None:
            continue
        for recorded in processes:
            process = recorded.alive()
            if process is None:
                continue
            kill_tree(process)
            reaped.append(recorded)
        # Processes first: a namespace goes only once nothing runs in it. Links after
        # namespaces: deleting a namespace does not remove the root ends of its links.
        left = []
        for record in sorted(resources, key=lambda r: r[0] != "netns"):
            try:
                kind, name, cleaner = record
                _cleaner(cleaner)(name)
            except Exception:          # kept on record: the next start tries again
                left.append(record)
        if left:
            data.update(processes=[], resources=[list(r) for r in left])
            _write_atomically(path, data)
        else:
            path.unlink(missing_ok=True)
    return reaped


def _cleaner(target: str) -> Callable[[str], None]:
    """The function a resource's record names ("module:function")."""
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def kill_tree(process: psutil.Process, timeout: float = 3.0) -> None:
    """SIGKILL a process and all its descendants, and wait for them to be gone."""
    try:
        family = process.children(recursive=True) + [process]
    except psutil.Error:
        return
    for member in family:
        try:
            member.kill()
        except psutil.Error:
            pass
    wait_gone(family, timeout)


def wait_gone(processes: list[psutil.Process], timeout: float = 3.0) -> bool:
    """Wait until every process has exited; True if they all did within `timeout`.

    A zombie counts as gone: it holds no resources, and an orphan's zombie waits for whatever
    reaps orphans here (psutil.wait_procs would wait for that too).
    """
    deadline = time.monotonic() + timeout
    pending = list(processes)
    while pending:
        pending = [p for p in pending if _still_running(p)]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return not pending


def _still_running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
