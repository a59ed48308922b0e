"""A cluster of a system's nodes, as supervised processes behind a proxy on every link.

`Cluster` puts the pieces together: a Toxiproxy server (a real `toxiproxy-server` when one is
configured or on the PATH, else faultline's embedded one), the link proxies (`Network`), the
system's nodes started through the `Supervisor`, and the process faults. It is a context
manager: leaving it, normally or by an exception or Ctrl-C, ends every process it started.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from harness.network import Network
from harness.processes import GuardedProcess, ProcessError, Supervisor
from harness.proxy.process import ProxyServerProcess, start_proxy_server
from harness.systems.base import ClockControl, ClusterLayout, LeaderProbe, NodeSlot, PowerLoss

READY_TIMEOUT = 15.0


class ClusterError(RuntimeError):
    """The cluster could not be started or a fault could not be applied; says which node."""


def free_ports(count: int) -> list[int]:
    """`count` distinct ports the kernel had free a moment ago, on 127.0.0.1."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Cluster:
    """`size` nodes of `system` in `run_dir` (see the module docstring)."""

    def __init__(self, system, size: int, run_dir: Path, seed: int, *,
                 prefer_real_proxy: bool = True, options: dict[str, Any] | None = None):
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.system = system
        self.ids = [f"n{i}" for i in range(1, size + 1)]
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.prefer_real_proxy = prefer_real_proxy
        self.options = options or {}
        self.supervisor: Supervisor | None = None
        self.proxy_server: ProxyServerProcess | None = None
        self.network: Network | None = None
        self.layout: ClusterLayout | None = None
        self.client_addresses: dict[str, str] = {}

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, ready_timeout: float = READY_TIMEOUT) -> "Cluster":
        """Start the proxy server, the link proxies and every node; wait until all serve."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "nodes").mkdir(exist_ok=True)
        self.supervisor = Supervisor()
        try:
            self.proxy_server = start_proxy_server(prefer_real=self.prefer_real_proxy,
                                                   log_path=self.run_dir / "proxy.log")
            self.supervisor.registry.add(self.proxy_server.pid, "proxy server")
            self.network = Network(self.proxy_server.client(), self.ids)
            # Every port of the cluster at once, nodes' and proxies' alike: ports handed out
            # one by one could collide (a proxy on port 0 may get a node's chosen port).
            n = len(self.ids)
            ports = free_ports(2 * n + n * n)
            own_client = {node: f"127.0.0.1:{ports[2 * i]}" for i, node in enumerate(self.ids)}
            own_peer = {node: f"127.0.0.1:{ports[2 * i + 1]}"
                        for i, node in enumerate(self.ids)}
            topology = self.network.create(own_client, own_peer, listen_ports=ports[2 * n:])
            self.client_addresses = dict(topology.client_addresses)
            slots = [NodeSlot(n, ports[2 * i], ports[2 * i + 1],
                              self.run_dir / "nodes" / n, self.run_dir / "nodes" / f"{n}.log",
                              {p: topology.peer_addresses[(n, p)] for p in self.ids if p != n})
                     for i, n in enumerate(self.ids)]
            self.layout = ClusterLayout(slots, self.run_dir, self.seed, self.options)
            self.system.setup(self.layout)
            for slot in slots:
                self._start_node(slot)
            self.wait_ready(self.ids, ready_timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _start_node(self, slot: NodeSlot) -> GuardedProcess:
        slot.data_dir.mkdir(parents=True, exist_ok=True)
        return self.supervisor.start(slot.id, self.system.command(slot, self.layout),
                                     slot.log_path)

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
                    raise ClusterError(f"{n} exited while starting; see "
                                       f"{self.layout.node(n).log_path}")
            if time.monotonic() > deadline:
                raise ClusterError(f"not ready after {timeout:g} s: {', '.join(pending)}")
            time.sleep(0.02)

    def close(self) -> None:
        """End every node and the proxy server (idempotent)."""
        if self.supervisor is not None:
            self.supervisor.close()
        if self.network is not None:
            self.network.close(remove_proxies=False)
        if self.proxy_server is not None:
            self.proxy_server.stop()
            self.proxy_server = None

    def __enter__(self) -> "Cluster":
        return self.start() if self.layout is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- clients --------------------------------------------------------------------------

    def client(self, node: str, timeout: float = 1.0):
        """A client of the system talking to `node` through its client proxy."""
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


__all__ = ["Cluster", "ClusterError", "ProcessError", "free_ports"]
