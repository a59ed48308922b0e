"""The adapter interface: how the harness runs one system under test (Jepsen's DB and client).

The harness owns processes, ports, networks, faults and histories; an adapter only knows its
system: how to configure a node, the command that starts it, how to tell it is ready, and how
a client talks to it. Everything an adapter needs to know about where things are comes in a
`NodeSlot`; it never chooses ports or starts processes itself, so that every process is
supervised and every link is under the harness's control.

An adapter is a class that declares what it is before any instance exists (`Adapter`): its
name, its options, the workloads it supports, the networks it can run on and the node counts
it takes. The harness reads those declarations to build the command line, to list systems
(`faultline systems`) and to refuse, before anything starts, a run the system cannot take.
Optional capabilities are separate protocols (`PowerLoss`, `ClockControl`, `LeaderProbe`,
`StatusProbe`, `Failover`, `DataFiles`): a class has a capability when it has the protocol's methods
(`capabilities_of`), and a fault that needs one is refused where it is missing.
See docs/adapters.md for a walk-through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

from pluginkit.options import Option, resolve


class SystemUnavailable(RuntimeError):
    """The system cannot run here (a binary is missing, a version is unsupported); the
    message says what to install or configure."""


@dataclass(frozen=True)
class Availability:
    """Whether a system can run on this machine: the binary found and its version, or what
    is missing and the exact command that installs it."""

    available: bool
    version: str | None = None
    detail: str = ""                 # where the binary is, or what is missing
    install: str | None = None       # the command that installs what is missing


@dataclass(frozen=True)
class NodeSlot:
    """One node's place in a cluster.

    - `host`: the address the node listens on (127.0.0.1 on the proxy network, the node's own
      address on the namespace network), with `client_port` and `peer_port`;
    - `peer_addresses`: the address the node must dial for each peer. On the proxy network
      that is the listen address of the proxy on that directed link, never the peer's own
      port; on the namespace network it is the peer's own address;
    - `netns`: the network namespace the node runs in (None on the proxy network); the
      harness starts the node's command inside it;
    - `data_dir`, `log_path`: inside the run directory.
    """

    id: str
    host: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    peer_addresses: dict[str, str] = field(default_factory=dict)
    netns: str | None = None

    @property
    def client_address(self) -> str:
        """The node's own client address (for readiness probes; clients may go through a
        proxy)."""
        return f"{self.host}:{self.client_port}"

    @property
    def peer_address(self) -> str:
        """The node's own peer address: where it listens for its peers."""
        return f"{self.host}:{self.peer_port}"


@dataclass(frozen=True)
class ClusterLayout:
    """The whole cluster: its nodes, the run directory, the seed, and the network: its name
    and the address the harness's own connections come from as the nodes see them (for a
    system that only lets the operator in from there)."""

    nodes: Sequence[NodeSlot]
    run_dir: Path
    seed: int
    network: str = "proxy"
    harness_host: str = "127.0.0.1"

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
    still turns any exception into "info", as Jepsen does. The one option the harness passes
    is `final=True`, on the reads after every fault has healed: read as strongly as the
    system can (a linearizable read where the adapter's own reads are weaker).
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
        """A client that talks to `node` first; `addresses` maps every node to the address
        clients dial for it (its client proxy, or its own address on the namespace network),
        for redirects to the leader."""
        ...


@runtime_checkable
class Companions(Protocol):
    """Each node has processes beside its server (Redis: a Sentinel), started once every
    node serves, in the node's namespace, supervised like nodes; faults act on the servers.
    `unsettled` says why the cluster as a whole is not ready yet (None once it is); the run
    waits for it, and a cluster that never settles cannot be run (the reason is shown)."""

    def companions(self, node: NodeSlot, layout: ClusterLayout) -> dict[str, list[str]]:
        """Name -> argv of each process to run beside `node`'s server."""
        ...

    def unsettled(self, layout: ClusterLayout) -> str | None:
        ...


@runtime_checkable
class PowerLoss(Protocol):
    """The system can lose what it had not synced, as after a power cut."""

    def lose_unsynced(self, node: NodeSlot, layout: ClusterLayout) -> dict:
        """With `node` killed, cut its data back to what it had made durable; returns what
        was cut (for the history)."""
        ...


@runtime_checkable
class DataFiles(Protocol):
    """The system can name the files that hold a node's durable state (for faults that
    damage them while the node is down: bit flips, truncation)."""

    def data_files(self, node: NodeSlot, layout: ClusterLayout) -> list[Path]:
        """The files holding `node`'s durable state (those that exist now)."""
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


@runtime_checkable
class Failover(Protocol):
    """The system fails over on the operator's word (PostgreSQL: a standby promoted), not on
    its own: the `failover` fault fences the leader, promotes another node, and when it ends
    makes the old leader follow the new one."""

    def fence(self, node: NodeSlot, layout: ClusterLayout) -> None:
        """With `node` (the old leader) killed, make sure it can come back only as a
        follower, whoever restarts it."""
        ...

    def unfence(self, node: NodeSlot, layout: ClusterLayout) -> None:
        """Undo `fence` (no follower was promoted: `node` leads still)."""
        ...

    def promote(self, node: NodeSlot, layout: ClusterLayout) -> bool | None:
        """Make the follower `node` the leader: True once it takes writes, False when it is
        certainly a follower still, None when it cannot tell (it may yet become leader)."""
        ...

    def follow(self, node: NodeSlot, leader: NodeSlot, layout: ClusterLayout) -> None:
        """With `node` down, make its data that of a follower of `leader` (what `node` had
        that `leader` lacks is dropped, as in a real failover)."""
        ...


@runtime_checkable
class Teardown(Protocol):
    """The system keeps something outside the run directory while it runs (PostgreSQL: its
    data, where its unprivileged user can reach it); the cluster calls `teardown` once every
    process has ended, to bring it into the run directory and remove what is left."""

    def teardown(self, layout: ClusterLayout) -> None: ...


CAPABILITIES: dict[str, type] = {
    "leader-probe": LeaderProbe,
    "status-probe": StatusProbe,
    "clock-control": ClockControl,
    "power-loss": PowerLoss,
    "data-files": DataFiles,
    "failover": Failover,
}


def capabilities_of(adapter: type | object) -> frozenset[str]:
    """The names of the optional capabilities an adapter class (or instance) has and can use
    on this machine (see `capability_gaps`)."""
    cls = adapter if isinstance(adapter, type) else type(adapter)
    gaps = capability_gaps(cls)
    return frozenset(name for name, protocol in CAPABILITIES.items()
                     if issubclass(cls, protocol) and name not in gaps)


def capability_gaps(adapter: type | object) -> dict[str, str]:
    """Capabilities an adapter implements but cannot use on this machine, each with why (an
    adapter says so with a `capability_gaps` classmethod: a library it needs is absent)."""
    cls = adapter if isinstance(adapter, type) else type(adapter)
    gaps = getattr(cls, "capability_gaps", None)
    return dict(gaps()) if gaps is not None else {}


class Adapter:
    """The base of every system adapter: declarations read before a run, and the options of
    one run.

    A subclass sets the class attributes and implements `System`'s methods (and any optional
    capability). `options` given to the constructor are checked against `OPTIONS`; the
    resolved values (defaults filled in) are `self.options`. `workload` is the name of the
    run's workload, for adapters whose clients behave differently per workload.
    """

    name: ClassVar[str] = ""
    SUMMARY: ClassVar[str] = ""                       # one line for `faultline systems`
    OPTIONS: ClassVar[tuple[Option, ...]] = ()
    WORKLOADS: ClassVar[tuple[str, ...]] = ("register",)
    NETWORKS: ClassVar[tuple[str, ...]] = ("proxy",)  # the first is the default
    MIN_NODES: ClassVar[int] = 1
    MAX_NODES: ClassVar[int | None] = None
    # Seconds a node has, at the end of a run, between SIGTERM and SIGKILL.
    STOP_GRACE: ClassVar[float] = 5.0

    def __init__(self, options: Mapping[str, Any] | None = None, *,
                 workload: str = "register"):
        self.options: dict[str, Any] = resolve(self.OPTIONS, options or {}, f"{self.name}: ")
        self.workload = workload

    @classmethod
    def availability(cls) -> Availability:
        """Whether the system can run here; systems that need nothing outside Python say
        yes. Must be quick: `faultline systems` asks every adapter."""
        return Availability(True)

    @classmethod
    def label(cls, options: Mapping[str, Any]) -> str:
        """Words the default test name gets after `system-workload` (refnode: its planted
        bug); empty by default."""
        return ""

    @classmethod
    def legacy_options(cls, options: Mapping[str, Any], workload: str) -> dict[str, Any]:
        """Options found at the top level of a test written before systems had options of
        their own, as this adapter takes them now (by default, unchanged)."""
        return dict(options)

    def clock_drift_bound(self) -> float | None:
        """The bound on clock-rate differences between nodes this configuration relies on
        (its leases), as a fraction, or None when it declares none. The clock fault stays
        within a declared bound unless the test asks for more: beyond it a correct system may
        fail, and the failure would say nothing about the system."""
        return None

    def failure_detection(self) -> float | None:
        """Seconds this configuration takes, at most, to act on a leader that stopped
        answering (an election timeout, a failover's down-after time), or None when unknown.
        The fault schedule holds about half its faults longer than this, so that every run
        has failovers as well as faults the system should ride out."""
        return None

    def describe(self) -> str:
        """The configuration in one line, for the run's banner: the options that differ from
        their defaults."""
        changed = [f"{o.name}={self.options[o.name]}" for o in self.OPTIONS
                   if self.options.get(o.name) != o.default]
        return ", ".join(changed) or "defaults"
