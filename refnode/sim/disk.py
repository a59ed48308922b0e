"""Simulated disks: what a node wrote, and what of it has been synced.

A write (`write(effects)`) lands in the page cache: a restart after a process crash sees it.
`begin_sync`/`finish_sync` model fsync explicitly: a sync covers the writes made before it
began and completes later; only then are they durable. Power loss (`lose_unsynced`) throws the
page cache away: the node restarts from what was durable.
"""

from __future__ import annotations

from typing import Any

from refnode.core import Effects, HardState
from refnode.messages import Entry


class SimDisk:
    """One node's persisted hard state and log, as written and as synced."""

    def __init__(self) -> None:
        self.hard_state = HardState(0, None)      # as written (page cache)
        self.log: list[Entry] = []                # as written; log[i - 1] has index i
        self.durable_hard_state = HardState(0, None)
        self.durable_log: list[Entry] = []
        self._unsynced: list[tuple[str, Any]] = []
        self.write_seq = 0                        # writes made
        self.synced_seq = 0                       # writes durable
        self.syncs = 0

    @property
    def dirty(self) -> bool:
        return self.synced_seq < self.write_seq

    def write(self, effects: Effects) -> int:
        """Apply a bundle's persistence to the page cache; returns the write sequence number
        that must be synced before the bundle's messages may go out."""
        if effects.hard_state is not None:
            self.hard_state = effects.hard_state
            self._record(("hard", effects.hard_state))
        if effects.truncate_from is not None:
            del self.log[effects.truncate_from - 1:]
            self._record(("truncate", effects.truncate_from))
        if effects.append:
            first = effects.append[0].index
            if first != len(self.log) + 1:
                raise AssertionError(f"append at index {first} to a log of {len(self.log)}")
            self.log.extend(effects.append)
            self._record(("append", list(effects.append)))
        return self.write_seq

    def _record(self, op: tuple[str, Any]) -> None:
        self._unsynced.append(op)
        self.write_seq += 1

    def begin_sync(self) -> int:
        """Start a sync: it will cover every write made so far. Returns its target."""
        return self.write_seq

    def finish_sync(self, target: int) -> None:
        """The sync begun at `target` completed: those writes are durable."""
        count = target - self.synced_seq
        if count <= 0:
            return
        for kind, arg in self._unsynced[:count]:
            if kind == "hard":
                self.durable_hard_state = arg
            elif kind == "truncate":
                del self.durable_log[arg - 1:]
            else:
                self.durable_log.extend(arg)
        del self._unsynced[:count]
        self.synced_seq = target
        self.syncs += 1

    def lose_unsynced(self) -> int:
        """Power loss: the page cache is gone; returns how many writes were lost."""
        lost = self.write_seq - self.synced_seq
        self._unsynced = []
        self.write_seq = self.synced_seq
        self.hard_state = self.durable_hard_state
        self.log = list(self.durable_log)
        return lost
