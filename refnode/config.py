"""A refnode cluster's configuration, and the planted bugs it can switch on.

One `ClusterConfig` describes the whole cluster: every node reads the same one (a JSON file for
the real runtime, an object for the simulator). The protocol core takes its rules' parameters
from here and nowhere else.

Times are float seconds throughout refnode's core: the runtime passes a monotonic clock reading
(`time.monotonic()`, possibly skewed by the admin interface), the simulator passes each node's
simulated clock. Only differences of times matter to the core, never their origin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

REPLICATION_MODES = ("sync", "quorum", "async")
READ_MODES = ("leader", "lease", "follower")


@dataclass(frozen=True, slots=True)
class Bug:
    """A planted defect: its name (`--bug NAME`), what it breaks, and the fault that shows it."""

    name: str
    defect: str
    exposed_by: str


BUGS: dict[str, Bug] = {bug.name: bug for bug in (
    Bug("stale-leader-read",
        "the leader answers `leader` reads from its own state without a quorum round",
        "a partition that isolates the leader while a new leader takes writes: the old leader "
        "serves stale reads (linearizability violation)"),
    Bug("no-fencing",
        "followers accept append messages from a leader of an older term",
        "a partition plus a slow link: the deposed leader's delayed appends overwrite entries "
        "the new leader committed (lost or overwritten writes)"),
    Bug("early-ack",
        "in `quorum` mode the leader counts entries it has sent as replicated, so it "
        "acknowledges writes before a majority has them",
        "a partition (or a crash) of the leader right after it acknowledges: the new leader "
        "lacks acknowledged writes"),
    Bug("no-fsync",
        "the runtime acknowledges log writes without syncing them to disk (the core is "
        "unchanged; runtimes read `config.bugs`)",
        "power loss of a majority right after acknowledgements: the synced logs lack "
        "acknowledged writes"),
    Bug("lease-no-margin",
        "the leader lease ignores the clock-drift bound (lease = round start + minimum "
        "election timeout)",
        "clock drift within the bound (leader slow, followers fast) and a partition of the "
        "leader: lease reads return stale values"),
    Bug("follower-ignores-token",
        "follower reads ignore the request's `min_version` session token",
        "a follower cut off from the leader while clients read from it: read-your-writes and "
        "monotonic-reads violations"),
    Bug("forget-vote",
        "the hard state persisted omits the vote (the persisted vote is always None)",
        "a voter that restarts after voting and then hears another candidate of the same "
        "term: two leaders in one term"),
)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class ClusterConfig:
    """The configuration of one refnode cluster (all times in float seconds).

    - `nodes`: node ids in a fixed order (the order is the tie-break wherever one is needed).
    - `replication`: "sync" (a write is acknowledged when every node's log has it), "quorum"
      (a majority, leader included) or "async" (the leader's own log).
    - `election_timeout_min` / `election_timeout_max`: each election timeout is drawn
      uniformly from this range. The minimum is also the leader-stickiness window (no vote
      while a leader was heard within it) and the basis of the lease; the maximum is how long
      a leader keeps leading without hearing from a quorum.
    - `heartbeat_interval`: how often a leader starts a heartbeat round; must be well below
      the minimum election timeout.
    - `max_clock_drift`: the bound, as a fraction, on how much any two nodes' clock rates may
      differ; leases are shortened by it (lease = round start + min timeout * (1 - drift)).
    - `follower_read_wait`: how long a node waits for its applied index to reach a request's
      `min_version` before it answers with an error.
    - `request_timeout`: how long a leader keeps a write or a `leader` read pending before it
      answers "timeout" (indeterminate for writes).
    - `max_append_entries`: most log entries in one append message.
    - `max_append_bytes`: most bytes of entry values and keys in one append message (an entry
      larger than that still goes, alone): with the 256 KiB a value may have, every append
      fits in one frame.
    - `bugs`: names from `BUGS` to switch on; empty in every safe run.

    Construction validates everything and raises ValueError with a one-line reason.
    """

    nodes: tuple[str, ...]
    replication: str = "quorum"
    election_timeout_min: float = 0.300
    election_timeout_max: float = 0.600
    heartbeat_interval: float = 0.050
    max_clock_drift: float = 0.05
    follower_read_wait: float = 1.0
    request_timeout: float = 5.0
    max_append_entries: int = 64
    max_append_bytes: int = 256 * 1024
    bugs: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        nodes = self.nodes
        if isinstance(nodes, str) or not isinstance(nodes, Iterable):
            raise ValueError(f"nodes must be a list of node ids, got {nodes!r}")
        nodes = tuple(nodes)
        if not nodes:
            raise ValueError("nodes must name at least one node")
        for node in nodes:
            if not isinstance(node, str) or not node:
                raise ValueError(f"every node id must be a non-empty string, got {node!r}")
        if len(set(nodes)) != len(nodes):
            raise ValueError(f"node ids must be unique, got {list(nodes)}")
        object.__setattr__(self, "nodes", nodes)

        if self.replication not in REPLICATION_MODES:
            raise ValueError(f"replication must be one of {', '.join(REPLICATION_MODES)}, "
                             f"got {self.replication!r}")
        for name in ("election_timeout_min", "election_timeout_max", "heartbeat_interval",
                     "follower_read_wait", "request_timeout"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.election_timeout_max < self.election_timeout_min:
            raise ValueError(f"election_timeout_max ({self.election_timeout_max}) must not be "
                             f"below election_timeout_min ({self.election_timeout_min})")
        if self.heartbeat_interval >= self.election_timeout_min:
            raise ValueError(f"heartbeat_interval ({self.heartbeat_interval}) must be below "
                             f"election_timeout_min ({self.election_timeout_min})")
        drift = self.max_clock_drift
        if not _is_number(drift) or not 0 <= drift < 1:
            raise ValueError(f"max_clock_drift must be a fraction in [0, 1), got {drift!r}")
        object.__setattr__(self, "max_clock_drift", float(drift))
        for name in ("max_append_entries", "max_append_bytes"):
            count = getattr(self, name)
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise ValueError(f"{name} must be a positive integer, got {count!r}")

        bugs = self.bugs
        if isinstance(bugs, str) or not isinstance(bugs, Iterable):
            raise ValueError(f"bugs must be a list of bug names, got {bugs!r}")
        bugs = frozenset(bugs)
        unknown = sorted(b for b in bugs if b not in BUGS)
        if unknown:
            raise ValueError(f"unknown bug {unknown[0]!r}; bugs: {', '.join(sorted(BUGS))}")
        object.__setattr__(self, "bugs", bugs)

    @property
    def quorum(self) -> int:
        """The size of a majority of the nodes."""
        return len(self.nodes) // 2 + 1

    def peers_of(self, node: str) -> tuple[str, ...]:
        """Every node but `node`, in configuration order; ValueError for an unknown node."""
        if node not in self.nodes:
            raise ValueError(f"unknown node {node!r}; nodes: {', '.join(self.nodes)}")
        return tuple(n for n in self.nodes if n != node)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON object (lists for tuples and sets, bugs sorted)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "nodes":
                value = list(value)
            elif f.name == "bugs":
                value = sorted(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterConfig:
        """Build a configuration from a JSON object; unknown fields and wrong types are a
        ValueError naming the field. Missing fields take their defaults, except `nodes`."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a cluster configuration must be a JSON object, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in data if k not in known)
        if unknown:
            raise ValueError(f"unknown configuration field {unknown[0]!r}; "
                             f"fields: {', '.join(sorted(known))}")
        if "nodes" not in data:
            raise ValueError("configuration field 'nodes' is required")
        values = dict(data)
        for name in ("nodes", "bugs"):
            if name in values and not isinstance(values[name], (list, tuple)):
                raise ValueError(f"configuration field {name!r} must be a list, "
                                 f"got {values[name]!r}")
        return cls(**values)

    def with_changes(self, **changes: Any) -> ClusterConfig:
        """A copy with some fields replaced (validated like any construction)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return ClusterConfig(**values)
