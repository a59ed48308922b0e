"""Processes the harness starts: each under a guard, recorded, and ended however the run ends.

`Supervisor` is the one owner of every process of a run. Its promises:
- a process started through it runs under `harness.processes.guard`, so it dies with the
  harness even if the harness is SIGKILLed;
- it is recorded in this harness's table of leftovers (`harness.processes.leftovers`), so that
  the next harness finds it if both the harness and the guard were killed;
- `close()` (also on an exception or Ctrl-C, when used as a context manager) ends them all.

Faults act on the command's own process tree through psutil: SIGKILL (`kill`), SIGSTOP and
SIGCONT (`pause`, `resume`); `stop` asks for a clean shutdown (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

import psutil

from harness.processes.leftovers import Registry, kill_tree, reap_stale, wait_gone

START_TIMEOUT = 10.0


class ProcessError(RuntimeError):
    """A process could not be started or controlled; the message says which and why."""


class GuardedProcess:
    """One command, run under a guard, with its output appended to `log_path`."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, cwd: Path | None = None,
                 env: dict[str, str] | None = None, grace: float = 5.0,
                 netns: str | None = None):
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.env = env
        self.grace = grace
        self.netns = netns                # the network namespace the command runs in
        self.pid: int | None = None       # the command's pid, not the guard's
        self._guard: subprocess.Popen | None = None

    def start(self) -> int:
        """Start the command; returns its pid. Raises ProcessError if it cannot start."""
        if self.running:
            raise ProcessError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            namespace = ["--netns", self.netns] if self.netns else []
            guard = subprocess.Popen(
                [sys.executable, "-m", "harness.processes.guard", "--grace", str(self.grace),
                 *namespace, "--", *self.argv],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=self.cwd,
                env=self.env, close_fds=True)
        self._guard = guard
        line = _read_line(guard.stdout, START_TIMEOUT)
        if not line.strip().isdigit():
            # Cutting the lifeline first: a guard that did start the command ends it.
            guard.stdin.close()
            try:
                guard.wait(timeout=2)
            except subprocess.TimeoutExpired:
                guard.kill()
                guard.wait()
            guard.stdout.close()
            raise ProcessError(f"{self.name}: could not start {self.argv[0]!r}; see "
                               f"{self.log_path}")
        self.pid = int(line)
        return self.pid

    @property
    def guard_pid(self) -> int | None:
        return self._guard.pid if self._guard else None

    @property
    def running(self) -> bool:
        """Whether the command is alive (paused counts as alive)."""
        if self._guard is None or self.pid is None:
            return False
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    @property
    def paused(self) -> bool:
        """Whether the command is stopped by SIGSTOP."""
        try:
            return psutil.Process(self.pid).status() == psutil.STATUS_STOPPED
        except (psutil.Error, ValueError, TypeError):
            return False

    def _tree(self) -> list[psutil.Process]:
        if self.pid is None:
            return []
        try:
            root = psutil.Process(self.pid)
            return [root] + root.children(recursive=True)
        except psutil.Error:
            return []

    def kill(self) -> None:
        """SIGKILL the command and everything it started; returns once they are gone."""
        tree = self._tree()
        _signal_each(tree, signal.SIGKILL)
        wait_gone(tree, timeout=5)
        self._reap_guard()

    def pause(self) -> None:
        """SIGSTOP the command's tree (it keeps its sockets and memory, and does nothing)."""
        self._signal_tree(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the command's tree."""
        self._signal_tree(signal.SIGCONT)

    def _signal_tree(self, sig: int) -> None:
        tree = self._tree()
        if not tree:
            raise ProcessError(f"{self.name} is not running")
        _signal_each(tree, sig)

    def stop(self) -> int | None:
        """Ask for a clean shutdown (SIGTERM through the guard, SIGKILL after the grace time),
        paused processes resumed first; whatever of the command's tree outlives it is
        SIGKILLed. Returns the command's exit status, or None if it was not running."""
        if self._guard is None:
            return None
        # A paused process cannot shut down, nor can it be reached by the guard's signal to
        # the command's process group once it has a session of its own (PostgreSQL's
        # backends): resume the whole tree first, and kill what is left of it at the end.
        tree = self._tree()
        _signal_each(tree, signal.SIGCONT)
        if self._guard.poll() is None:
            self._guard.send_signal(signal.SIGTERM)
        try:
            status = self._guard.wait(timeout=self.grace + 5)
        except subprocess.TimeoutExpired:
            self._guard.kill()
            status = self._guard.wait()
            kill_tree_of(self.pid)
        left = [process for process in tree if process.is_running()]
        _signal_each(left, signal.SIGKILL)
        wait_gone(left, timeout=5)
        self._close_pipes()
        return status

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the command to end; returns the guard's status (the command's)."""
        if self._guard is None:
            raise ProcessError(f"{self.name} was never started")
        return self._guard.wait(timeout=timeout)

    def _reap_guard(self) -> None:
        if self._guard is not None:
            try:
                self._guard.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._guard.kill()
                self._guard.wait()
            self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self._guard.stdin, self._guard.stdout):
            if pipe:
                try:
                    pipe.close()
                except OSError:
                    pass


def _signal_each(processes: list[psutil.Process], sig: int) -> None:
    """Send `sig` to each of `processes` still there (one gone meanwhile is no error)."""
    for process in processes:
        try:
            process.send_signal(sig)
        except psutil.Error:
            pass


def kill_tree_of(pid: int | None) -> None:
    """SIGKILL `pid` and its descendants if they still exist."""
    if pid is None:
        return
    try:
        kill_tree(psutil.Process(pid))
    except psutil.Error:
        pass


def _read_line(stream, timeout: float) -> str:
    """One line from a pipe, or '' if none came within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    fd = stream.fileno()
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


class Supervisor:
    """Owns every process of a run (see the module docstring). Thread-safe."""

    def __init__(self, registry: Registry | None = None):
        reap_stale()
        self.registry = registry or Registry()
        self._processes: dict[str, GuardedProcess] = {}
        self._lock = threading.Lock()
        self._closed = False

    def start(self, name: str, argv: Sequence[str], log_path: Path, **options) -> GuardedProcess:
        """Start (or restart, under the same name) a command; returns its handle."""
        with self._lock:
            if self._closed:
                raise ProcessError("the supervisor is closed")
            previous = self._processes.get(name)
        if previous is not None and previous.running:
            raise ProcessError(f"{name} is already running (pid {previous.pid})")
        process = GuardedProcess(name, argv, log_path, **options)
        process.start()
        with self._lock:
            self._processes[name] = process
            self.registry.add(process.guard_pid, f"{name} guard")
            self.registry.add(process.pid, name)
        return process

    def get(self, name: str) -> GuardedProcess:
        """The process started under `name`; KeyError if none."""
        return self._processes[name]

    def forget(self, process: GuardedProcess) -> None:
        """Drop a process that has ended from the registry."""
        for pid in (process.pid, process.guard_pid):
            if pid is not None:
                self.registry.remove(pid)

    def close(self, keep_registry: bool = False) -> None:
        """End every process (clean stop in parallel, then SIGKILL what remains), then remove
        the registry, unless `keep_registry` (its owner still has resources to remove)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            processes = list(self._processes.values())
        threads = [threading.Thread(target=p.stop) for p in processes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for process in processes:
            kill_tree_of(process.pid)
        if not keep_registry:
            self.registry.close()

    def __enter__(self) -> "Supervisor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
