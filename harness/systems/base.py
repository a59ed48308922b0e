"""The adapter interface: how the harness runs one system under test (Jepsen's DB and client).

The harness owns processes, ports, proxies, faults and histories; an adapter only knows its
system: how to configure a node, the command that starts it, how to tell it is ready, and how
a client talks to it. Everything an adapter needs to know about where things are comes in a
`NodeSlot`; it never chooses ports or starts processes itself, so that every process is
supervised and every link goes through a proxy.

Optional capabilities are separate protocols (`PowerLoss`, `ClockControl`, `LeaderProbe`,
`StatusProbe`):
the harness checks `isinstance(system, ClockControl)` before offering a fault that needs it.
See docs/adapters.md for a walk-through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable


class SystemUnavailable(RuntimeError):
    """The system cannot run here (a binary is missing, a version is unsupported); the
    message says what to install or configure."""


@dataclass(frozen=True)
class NodeSlot:
    """One node's place in a cluster.

    - `client_port`, `peer_port`: where the node itself listens (on 127.0.0.1);
    - `peer_addresses`: the address the node must use for each peer: the listen address of the
      proxy on that directed link, never the peer's own port;
    - `data_dir`, `log_path`: inside the run directory.
    """

    id: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    peer_addresses: dict[str, str] = field(default_factory=dict)

    @property
    def client_address(self) -> str:
        """The node's own client address (for readiness probes; clients use the proxy)."""
        return f"127.0.0.1:{self.client_port}"


@dataclass(frozen=True)
class ClusterLayout:
    """The whole cluster: its nodes, the run directory, the seed, the system's options."""

    nodes: Sequence[NodeSlot]
    run_dir: Path
    seed: int
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def node(self, node_id: str) -> NodeSlot:
        for slot in self.nodes:
            if slot.id == node_id:
                return slot
        raise KeyError(node_id)


@runtime_checkable
class Client(Protocol):
    """One logical client's connection to one node (through that node's client proxy).

    `invoke` performs one operation and returns its completion as a dict with `type` ("ok",
    "fail" or "info"), `value`, and when known `version`, `node`, `error`. It must not raise
    for anything the system did (a timeout is "info", a definite refusal "fail"); the harness
    still turns any exception into "info", as Jepsen does.
    """

    def invoke(self, f: str, key: str | None, value: Any, **options: Any) -> dict: ...

    def close(self) -> None: ...


@runtime_checkable
class System(Protocol):
    """What every adapter provides."""

    name: str

    def setup(self, layout: ClusterLayout) -> None:
        """Prepare the cluster (write configuration files into each data_dir, locate
        binaries); raise SystemUnavailable when the system cannot run here."""
        ...

    def command(self, node: NodeSlot, layout: ClusterLayout) -> list[str]:
        """The argv that starts `node` in the foreground (the harness supervises it)."""
        ...

    def is_ready(self, node: NodeSlot, layout: ClusterLayout) -> bool:
        """Whether `node` serves (probed directly, not through a proxy); must not block long."""
        ...

    def client(self, node: str, addresses: dict[str, str], layout: ClusterLayout,
               timeout: float) -> Client:
        """A client that talks to `node` first; `addresses` maps every node to the listen
        address of its client proxy (for redirects to the leader)."""
        ...


@runtime_checkable
class PowerLoss(Protocol):
    """The system can lose what it had not synced, as after a power cut."""

    def lose_unsynced(self, node: NodeSlot, layout: ClusterLayout) -> dict:
        """With `node` killed, cut its data back to what it had made durable; returns what
        was cut (for the history)."""
        ...


@runtime_checkable
class ClockControl(Protocol):
    """The system's notion of time on a node can be skewed or made to drift."""

    def set_clock(self, node: NodeSlot, layout: ClusterLayout, offset: float,
                  rate: float) -> None:
        """Make `node` see time shifted by `offset` seconds and running at `rate`."""
        ...


@runtime_checkable
class LeaderProbe(Protocol):
    """The system can say which node currently leads (for faults aimed at the leader)."""

    def leader(self, layout: ClusterLayout) -> str | None:
        """The current leader's id as the nodes report it, or None if there is none."""
        ...


@runtime_checkable
class StatusReader(Protocol):
    """One node's view of itself, read again and again over one connection."""

    def read(self) -> dict | None:
        """The node's status now, or None when it does not answer in time. A status holds at
        least `role` ("leader", "follower", "candidate") and `term` (int); `vote`, `leader`
        and `last_log_term` when the system has them. Must not raise for a down node."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class StatusProbe(Protocol):
    """The system can say, node by node, what role each node holds in which term (for the
    election-safety observer and faults aimed at an election in progress)."""

    def status_reader(self, node: NodeSlot, layout: ClusterLayout,
                      timeout: float) -> StatusReader:
        """A reader of `node`'s status, asked directly (not through a proxy), each read
        waiting at most `timeout` seconds."""
        ...
