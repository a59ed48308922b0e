"""A cluster of a system's nodes, as supervised processes on a network the harness controls.

`Cluster` puts the pieces together: the network (`harness.networks`: a proxy on every link, or
a namespace per node), the system's nodes started through the `Supervisor`, and the process
faults. It is a context manager: leaving it, normally or by an exception or Ctrl-C, ends every
process it started and removes everything its network made.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.networks import backend
from harness.networks.base import Network
from harness.processes.supervisor import GuardedProcess, ProcessError, Supervisor
from harness.systems.base import (ClockControl, ClusterLayout, DataFiles, LeaderProbe, NodeSlot,
                                  PowerLoss, Teardown)

READY_TIMEOUT = 15.0


class ClusterError(RuntimeError):
    """The cluster could not be started or a fault could not be applied; says which node."""


class Cluster:
    """`size` nodes of `system` in `run_dir` on the network called `network` (see the module
    docstring); `network_options` go to the network's constructor (the proxy network's
    `prefer_real_proxy`)."""

    def __init__(self, system, size: int, run_dir: Path, seed: int, *,
                 network: str = "proxy", prefer_real_proxy: bool = True,
                 network_options: dict[str, Any] | None = None):
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.system = system
        self.ids = [f"n{i}" for i in range(1, size + 1)]
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.network_name = network
        self.network_options = dict(network_options or {})
        if network == "proxy":
            self.network_options.setdefault("prefer_real_proxy", prefer_real_proxy)
        self.supervisor: Supervisor | None = None
        self.network: Network | None = None
        self.layout: ClusterLayout | None = None
        self.client_addresses: dict[str, str] = {}

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, ready_timeout: float = READY_TIMEOUT) -> "Cluster":
        """Build the network and start every node; wait until all serve."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "nodes").mkdir(exist_ok=True)
        self.supervisor = Supervisor()
        try:
            self.network = backend(self.network_name)(
                self.ids, self.run_dir, self.supervisor.registry, **self.network_options)
            placements = self.network.start()
            self.client_addresses = {n: p.client_address for n, p in placements.items()}
            slots = [NodeSlot(n, p.host, p.client_port, p.peer_port,
                              self.run_dir / "nodes" / n, self.run_dir / "nodes" / f"{n}.log",
                              dict(p.peer_addresses), p.netns)
                     for n, p in placements.items()]
            self.layout = ClusterLayout(slots, self.run_dir, self.seed, self.network_name,
                                        self.network.harness_host)
            self.system.setup(self.layout)
            for slot in slots:
                self._start_node(slot)
            self.wait_ready(self.ids, ready_timeout)
            self._start_companions(ready_timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _start_node(self, slot: NodeSlot) -> GuardedProcess:
        slot.data_dir.mkdir(parents=True, exist_ok=True)
        return self.supervisor.start(slot.id, self.system.command(slot, self.layout),
                                     slot.log_path, netns=slot.netns,
                                     grace=getattr(self.system, "STOP_GRACE", 5.0))

    def _start_companions(self, timeout: float) -> None:
        """Start each node's companion processes (Redis's Sentinels), once every node serves,
        and wait until the system says the whole cluster is settled. Companions share their
        node's namespace and are supervised like nodes; faults act on the nodes alone."""
        companions = getattr(self.system, "companions", None)
        if companions is None:
            return
        started = []
        for slot in self.layout.nodes:
            for name, argv in companions(slot, self.layout).items():
                log = slot.log_path.with_name(f"{slot.id}-{name}.log")
                started.append((self.supervisor.start(
                    f"{slot.id}-{name}", argv, log, netns=slot.netns,
                    grace=getattr(self.system, "STOP_GRACE", 5.0)), log))
        reason = self.wait_settled(timeout, started)
        if reason is not None:
            raise ClusterError(f"{self.system.name} not settled after {timeout:g} s: {reason}")

    def wait_settled(self, timeout: float, watched: list = ()) -> str | None:
        """Wait until the system says the cluster has settled (a system without `unsettled`
        always has); None then, else why not once `timeout` seconds have passed. A process
        of `watched` ((process, log) pairs) that exits meanwhile is a ClusterError."""
        unsettled = getattr(self.system, "unsettled", None)
        if unsettled is None:
            return None
        deadline = time.monotonic() + timeout
        while (reason := unsettled(self.layout)) is not None:
            for process, log in watched:
                if not process.running:
                    raise ClusterError(exited_while_starting(process.name, log))
            if time.monotonic() > deadline:
                return reason
            time.sleep(0.05)
        return None

    def wait_ready(self, nodes: list[str], timeout: float = READY_TIMEOUT) -> None:
        """Wait until every node in `nodes` serves; ClusterError naming those that do not."""
        deadline = time.monotonic() + timeout
        pending = list(nodes)
        while pending:
            pending = [n for n in pending
                       if not self.system.is_ready(self.layout.node(n), self.layout)]
            if not pending:
                return
            for n in pending:
                if not self.supervisor.get(n).running:
                    raise ClusterError(exited_while_starting(n, self.layout.node(n).log_path))
            if time.monotonic() > deadline:
                raise ClusterError(f"not ready after {timeout:g} s: {', '.join(pending)}")
            time.sleep(0.02)

    def close(self) -> None:
        """End every node, let the system tidy what it kept outside the run directory
        (`Teardown`), then remove the network (idempotent). The registry goes last, and
        only when everything is gone: what could not be removed stays on record, and the
        next harness to start reaps it."""
        if self.supervisor is not None:
            self.supervisor.close(keep_registry=True)
        try:
            if isinstance(self.system, Teardown) and self.layout is not None:
                self.system.teardown(self.layout)
        finally:
            if self.network is not None:
                self.network.close()
            if self.supervisor is not None:
                self.supervisor.registry.close()

    def __enter__(self) -> "Cluster":
        return self.start() if self.layout is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- clients --------------------------------------------------------------------------

    def client(self, node: str, timeout: float = 1.0):
        """A client of the system talking to `node` (through its client proxy on the proxy
        network)."""
        return self.system.client(node, self.client_addresses, self.layout, timeout)

    # --- process faults -------------------------------------------------------------------

    def process(self, node: str) -> GuardedProcess:
        try:
            return self.supervisor.get(node)
        except KeyError:
            raise ClusterError(f"no node {node!r}; nodes: {', '.join(self.ids)}") from None

    def kill(self, node: str) -> None:
        """SIGKILL the node (its whole process tree)."""
        self.process(node).kill()

    def pause(self, node: str) -> None:
        """SIGSTOP the node."""
        self.process(node).pause()

    def resume(self, node: str) -> None:
        """SIGCONT the node."""
        self.process(node).resume()

    def restart(self, node: str, wait: bool = True) -> None:
        """Start a node that is down again, with the same data; waits until it serves."""
        if self.process(node).running:
            raise ClusterError(f"{node} is running: kill or stop it before a restart")
        self._start_node(self.layout.node(node))
        if wait:
            self.wait_ready([node])

    def power_loss(self, node: str) -> dict:
        """Kill the node and drop what it had not synced (needs the PowerLoss capability)."""
        if not isinstance(self.system, PowerLoss):
            raise ClusterError(f"{self.system.name} cannot lose unsynced writes")
        self.kill(node)
        return self.system.lose_unsynced(self.layout.node(node), self.layout)

    def data_files(self, node: str) -> list[Path]:
        """The files holding `node`'s durable state (needs the DataFiles capability)."""
        if not isinstance(self.system, DataFiles):
            raise ClusterError(f"{self.system.name} names no data files")
        return [Path(p) for p in self.system.data_files(self.layout.node(node), self.layout)]

    def set_clock(self, node: str, offset: float, rate: float = 1.0) -> None:
        """Skew or drift the node's clock (needs the ClockControl capability)."""
        if not isinstance(self.system, ClockControl):
            raise ClusterError(f"{self.system.name} has no clock control")
        self.system.set_clock(self.layout.node(node), self.layout, offset, rate)

    def leader(self) -> str | None:
        """The current leader, if the system can tell (LeaderProbe)."""
        if not isinstance(self.system, LeaderProbe):
            return None
        return self.system.leader(self.layout)

    def running(self) -> list[str]:
        """The nodes whose process is alive."""
        return [n for n in self.ids if self.process(n).running]

    def down(self) -> list[str]:
        """The nodes whose process is not alive."""
        return [n for n in self.ids if not self.process(n).running]

    def why_down(self, timeout: float = 5.0) -> dict[str, str]:
        """Each node whose process is not alive once every node serves or has exited (waiting
        up to `timeout` seconds for nodes still starting), with its log's last line: why it
        exited, when it said so."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(not self.process(n).running or
                   self.system.is_ready(self.layout.node(n), self.layout) for n in self.ids):
                break
            time.sleep(0.05)
        return {n: last_log_line(self.layout.node(n).log_path) for n in self.down()}


def exited_while_starting(name: str, log: Path) -> str:
    """Why a process that exited while starting did, in one line: its log's last line (a node
    that refuses to start, such as refnode on a damaged log, says why there), and the log."""
    last = last_log_line(log)
    said = f": {last}" if last else ""
    return f"{name} exited while starting{said} (see {log})"


def last_log_line(log: Path, limit: int = 1000) -> str:
    """The last non-blank line of a log (at most `limit` characters), or "" when there is
    none or the log cannot be read."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    return next((line for line in reversed(lines) if line), "")[:limit]


__all__ = ["Cluster", "ClusterError", "ProcessError"]
