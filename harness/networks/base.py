"""What every network backend offers the cluster and the faults.

A backend places the nodes (where each listens, what its clients and peers dial, which
namespace it runs in) and changes the network on request. Each change (a cut, a slowdown) is
a `Change` that the fault which made it undoes by itself: ending a latency fault leaves a
partition that overlaps it in place. The backend keeps the sum of the changes in force and
applies it, so two faults that cut the same link keep it cut until both have ended.

Links are directed pairs of node ids (src, dst): traffic from src to dst. A grudge (see
`harness.faults.partition_shapes`) names the links to cut.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping


def grudge_links(grudge: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
    """The directed links (src, dst) a grudge cuts."""
    return {(src, dst) for dst, sources in grudge.items() for src in sources}


DROP, REFUSE = "drop", "refuse"
MODES = (DROP, REFUSE)
# What a backend may be able to do; faults name the ones they need.
PARTITION, LATENCY = "partition", "latency"

Link = tuple[str, str]


class NetworkUnavailable(RuntimeError):
    """The backend cannot be used here (privileges, kernel); the message says why and what
    to use instead, in one line."""


@dataclass(frozen=True)
class Placement:
    """Where one node lives on the network (see `harness.systems.base.NodeSlot`)."""

    host: str                        # the address the node listens on
    client_port: int
    peer_port: int
    client_address: str              # what clients dial to reach the node
    peer_addresses: dict[str, str]   # peer -> what this node dials to reach it
    netns: str | None = None         # the namespace the node's processes run in


@dataclass
class Change:
    """One change to the network, made by one fault and undone by it alone."""

    id: int
    kind: str                            # "cut" or "slow"
    links: list[Link]
    details: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> list[str]:
        """The links as 'src->dst', for the history."""
        return [f"{src}->{dst}" for src, dst in self.links]


class Network:
    """The base of the backends: bookkeeping of changes; the subclass applies them.

    Subclasses implement `start`, `_apply_cuts` (make the links cut in each mode exactly
    the given sets, keeping track of what is really applied even when a step fails, so that
    the next call mends it), `_add_slow`/`_remove_slow` (which must tolerate links without
    the slowdown) and `close`, and set `name`, `harness_host` and `features`."""

    name: ClassVar[str] = ""
    harness_host: str = "127.0.0.1"     # where the harness's connections come from

    def __init__(self, nodes: Iterable[str], run_dir: Path):
        self.nodes = list(nodes)
        self.run_dir = Path(run_dir)
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._cuts: dict[int, Change] = {}
        self._slow: dict[int, Change] = {}

    # --- what a backend can do here --------------------------------------------------------

    @classmethod
    def check_usable(cls) -> None:
        """Raise NetworkUnavailable when this backend cannot run here."""

    @classmethod
    def features(cls) -> frozenset[str]:
        """What the backend can do on this machine (PARTITION, REFUSE, LATENCY)."""
        return frozenset()

    @classmethod
    def missing(cls, feature: str) -> str:
        """Why `feature` is not offered here, in a few words."""
        return f"the {cls.name} network offers no {feature}"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> dict[str, Placement]:
        """Build the network; returns where each node lives."""
        raise NotImplementedError

    def close(self) -> None:
        """Remove everything the backend made (idempotent)."""
        raise NotImplementedError

    # --- changes ---------------------------------------------------------------------------

    def cut(self, grudge: Mapping[str, Iterable[str]], mode: str = DROP) -> Change:
        """Cut every directed link the grudge names: silently (DROP) or loudly (REFUSE).
        A cut that fails is not in force: what of it was applied is taken back (as far as
        that can be done) before the error is raised."""
        if mode not in MODES:
            raise ValueError(f"partition mode must be {DROP!r} or {REFUSE!r}, got {mode!r}")
        with self._lock:
            change = Change(next(self._ids), "cut", sorted(grudge_links(grudge)),
                            {"mode": mode})
            self._cuts[change.id] = change
            try:
                self._apply_cuts(self.cut_links())
            except Exception:
                del self._cuts[change.id]
                self._quietly(lambda: self._apply_cuts(self.cut_links()))
                raise
        return change

    def slow(self, links: Iterable[Link], latency_ms: float, jitter_ms: float = 0) -> Change:
        """Delay the traffic on each directed link by `latency_ms` (plus up to `jitter_ms`).
        A slowdown that fails is taken back before the error is raised."""
        with self._lock:
            change = Change(next(self._ids), "slow", sorted(links),
                            {"latency_ms": latency_ms, "jitter_ms": jitter_ms})
            try:
                self._add_slow(change)
            except Exception:
                self._quietly(lambda: self._remove_slow(change))
                raise
            self._slow[change.id] = change
        return change

    def undo(self, change: Change) -> None:
        """Undo one change (and nothing else); a change already undone is ignored."""
        with self._lock:
            if self._cuts.pop(change.id, None) is not None:
                self._apply_cuts(self.cut_links())
            elif self._slow.pop(change.id, None) is not None:
                self._remove_slow(change)

    def heal(self) -> None:
        """Undo every change in force."""
        with self._lock:
            for change in list(self._slow.values()):
                self.undo(change)
            self._cuts.clear()
            self._apply_cuts(self.cut_links())

    @staticmethod
    def _quietly(action) -> None:
        # Taking back a failed change: its own error is the one to report, and `heal`
        # tries again at the end of the run.
        try:
            action()
        except Exception:
            pass

    def active(self) -> list[Change]:
        """The changes in force."""
        with self._lock:
            return list(self._cuts.values()) + list(self._slow.values())

    def cut_links(self) -> dict[str, set[Link]]:
        """The links cut now, by mode (a link cut both ways counts under both)."""
        counts: dict[str, Counter] = {mode: Counter() for mode in MODES}
        for change in self._cuts.values():
            counts[change.details["mode"]].update(change.links)
        return {mode: set(c) for mode, c in counts.items()}

    def peer_links(self) -> list[Link]:
        """Every directed link between two nodes."""
        return [(a, b) for a in self.nodes for b in self.nodes if a != b]

    # --- for subclasses --------------------------------------------------------------------

    def _apply_cuts(self, cuts: dict[str, set[Link]]) -> None:
        raise NotImplementedError

    def _add_slow(self, change: Change) -> None:
        raise NotImplementedError

    def _remove_slow(self, change: Change) -> None:
        raise NotImplementedError
