"""What the nodes say of themselves during a run: roles and terms, polled and recorded.

Election safety (one leader per term) cannot be read from client operations, so while a run
goes an `Observer` asks every node for its status, from one thread per node (a paused node's
slow answer must not hide the others), and appends each *change* of what a node reports
(role, term, vote, leader, last log term) to `observations.jsonl`, stamped on the history's
clock. `checkers.election` reads that file. The nemesis also uses the latest statuses to aim
faults at an election in progress (`wait_for`).

Polling can miss a role held for less than a poll interval; a missed observation can only hide
a violation, never invent one.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import orjson

from harness.systems.base import StatusProbe

FIELDS = ("role", "term", "vote", "leader", "last_log_term")
POLL_INTERVAL = 0.02
STATUS_TIMEOUT = 0.2

T = TypeVar("T")


class Observer:
    """Polls each node of `cluster` every `interval` seconds (see the module docstring).

    `clock` gives the time in nanoseconds on the history's clock (the recorder's `now`)."""

    def __init__(self, cluster, path: Path, clock: Callable[[], int],
                 interval: float = POLL_INTERVAL):
        if not isinstance(cluster.system, StatusProbe):
            raise TypeError(f"{cluster.system.name} cannot report node status")
        self.cluster = cluster
        self.path = Path(path)
        self._clock = clock
        self.interval = interval
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._file = open(self.path, "ab")
        self._latest: dict[str, dict[str, Any] | None] = {n: None for n in cluster.ids}
        self._reported: dict[str, tuple] = {}
        self.records: list[dict[str, Any]] = []     # what the file holds, for the checker

    def start(self) -> "Observer":
        for node in self.cluster.ids:
            thread = threading.Thread(target=self._poll, args=(node,), daemon=True,
                                      name=f"observer-{node}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop polling and close the file (idempotent)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads = []
        with self._lock:
            if not self._file.closed:
                self._file.close()
            self._changed.notify_all()

    def latest(self) -> dict[str, dict[str, Any] | None]:
        """Each node's last status (None: it did not answer its last poll)."""
        with self._lock:
            return dict(self._latest)

    def wait_for(self, condition: Callable[[dict[str, dict[str, Any] | None]], T | None],
                 timeout: float, cancel: threading.Event | None = None) -> T | None:
        """Wait until `condition(latest statuses)` returns something other than None, and
        return it; None after `timeout` seconds, when `cancel` is set or the observer stops."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = condition(dict(self._latest))
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set() or (cancel is not None and cancel.is_set()):
                    return None
                self._changed.wait(min(left, 0.05))

    def _poll(self, node: str) -> None:
        slot = self.cluster.layout.node(node)
        reader = self.cluster.system.status_reader(slot, self.cluster.layout, STATUS_TIMEOUT)
        try:
            while not self._stop.is_set():
                status = reader.read()
                self._note(node, status)
                self._stop.wait(self.interval)
        finally:
            reader.close()

    def _note(self, node: str, status: dict[str, Any] | None) -> None:
        with self._lock:
            self._latest[node] = status
            if status is not None:
                seen = tuple(status.get(f) for f in FIELDS)
                if self._reported.get(node) != seen and not self._file.closed:
                    self._reported[node] = seen
                    record = {"time": self._clock(), "node": node,
                              **{f: status.get(f) for f in FIELDS}}
                    # One line per change, flushed: a harness crash loses at most this one.
                    self._file.write(orjson.dumps(record) + b"\n")
                    self._file.flush()
                    self.records.append(record)
            self._changed.notify_all()
