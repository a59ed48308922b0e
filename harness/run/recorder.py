"""The history of a run, recorded as it happens.

One `Recorder` per run: every client and the nemesis record events through it. It stamps each
event with the next index and the time on one monotonic clock (nanoseconds since the run
began), under one lock, so that index and time order agree; writes the event to
`history.jsonl` at once (a crash of the harness loses at most the last event); and keeps the
events in memory for the checkers and the live counts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from checkers.history import Op
from checkers.jsonl import HistoryWriter


class Recorder:
    """Thread-safe history recording (see the module docstring)."""

    def __init__(self, path: Path, clock: Callable[[], int] = time.monotonic_ns):
        self.path = Path(path)
        self._clock = clock
        self._start = clock()
        self._writer = HistoryWriter(self.path)
        self._lock = threading.Lock()
        self.events: list[Op] = []
        self.counts: Counter[str] = Counter()

    def now(self) -> int:
        """Nanoseconds since the run began."""
        return self._clock() - self._start

    def record(self, process: int | str, type: str, f: str, key: Any = None,
               value: Any = None, *, node: str | None = None, version: int | None = None,
               error: str | None = None) -> Op:
        """Stamp and append one event; returns it."""
        with self._lock:
            op = Op(len(self.events), self.now(), process, type, f, key, value, node, version,
                    error)
            self._writer.append(op)
            self.events.append(op)
            self.counts[type] += 1
            return op

    def close(self) -> None:
        """Flush and close the file (events stay available in memory)."""
        with self._lock:
            self._writer.close()
