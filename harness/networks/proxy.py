"""The proxy network: a fault-injecting proxy on every directed link, through the Toxiproxy API.

Every directed link gets its own proxy on one Toxiproxy server (a real `toxiproxy-server` when
one is configured or on the PATH, else faultline's embedded one): `client_to_<node>` for
clients reaching a node, and `<a>_to_<b>` for node a reaching node b (node a is given the
listen address of that proxy as b's address). Faults are applied only through the Toxiproxy
HTTP API:

- a cut link drops its traffic silently (DROP: a `timeout` toxic with timeout 0 swallows the
  data) or refuses it loudly (REFUSE: the proxy is disabled, so connections are refused and
  reset);
- a slowed link carries a `latency` toxic on its upstream stream, the direction the link is
  named for (refnode's peer connections carry data one way only);
- other toxics (bandwidth, slicing, connection resets) through `add_toxic`.

Each cut and each slowdown has toxics of its own name, so undoing one leaves the others.
Unprivileged: everything listens on 127.0.0.1.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

from toxiproxy.exceptions import NotFound, ProxyExists

from harness.networks.base import DROP, LATENCY, PARTITION, REFUSE, Change, Link, Network, Placement
from harness.processes.ports import release, reserve
from harness.proxy.client import BoundProxy
from harness.proxy.process import ProxyServerProcess, start_proxy_server

PARTITION_TOXIC = "faultline_partition"
# Enough parallel API calls that cutting 20 links costs about as much as cutting 2.
API_THREADS = 8
PROXY_LOG = "proxy.log"


def client_link(node: str) -> str:
    """The name of the proxy clients use to reach `node`."""
    return f"client_to_{node}"


def peer_link(src: str, dst: str) -> str:
    """The name of the proxy `src` uses to reach `dst`."""
    return f"{src}_to_{dst}"


class ProxyNetwork(Network):
    """The link proxies of one cluster on one Toxiproxy server of its own (see the module
    docstring). `registry` records the server's process for reaping after a crash."""

    name = "proxy"

    def __init__(self, nodes: Iterable[str], run_dir: Path, registry=None, *,
                 prefer_real_proxy: bool = True, server: ProxyServerProcess | None = None):
        super().__init__(nodes, run_dir)
        self.registry = registry
        self.prefer_real_proxy = prefer_real_proxy
        self.server = server            # given: a server someone else owns and stops
        self._owns_server = server is None
        self.api = None
        self.proxies: dict[str, BoundProxy] = {}
        self._dropped: set[Link] = set()
        self._refused: set[Link] = set()
        self._state_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(API_THREADS, thread_name_prefix="toxiproxy-api")
        self._ports: list[int] = []

    @classmethod
    def features(cls) -> frozenset[str]:
        return frozenset({PARTITION, REFUSE, LATENCY})

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> dict[str, Placement]:
        """Start the proxy server and create every link proxy (one `/populate` request).

        Every port of the cluster is reserved at once, nodes' and proxies' alike, from below
        the kernel's ephemeral range (`harness.processes.ports`): ports handed out one by one could
        collide (a proxy on port 0 may get a node's chosen port), and so could two runs'."""
        if self.server is None:
            self.server = start_proxy_server(prefer_real=self.prefer_real_proxy,
                                             log_path=self.run_dir / PROXY_LOG)
            if self.registry is not None:
                self.registry.add(self.server.pid, "proxy server")
        self.api = self.server.client()
        n = len(self.nodes)
        ports = self._ports = reserve(2 * n + n * n)
        own_client = {node: f"127.0.0.1:{ports[2 * i]}" for i, node in enumerate(self.nodes)}
        own_peer = {node: f"127.0.0.1:{ports[2 * i + 1]}" for i, node in enumerate(self.nodes)}
        self.create(own_client, own_peer, listen_ports=ports[2 * n:])
        return {node: Placement(
            "127.0.0.1", ports[2 * i], ports[2 * i + 1],
            self.proxies[client_link(node)].listen,
            {peer: self.proxies[peer_link(node, peer)].listen
             for peer in self.nodes if peer != node})
            for i, node in enumerate(self.nodes)}

    def create(self, client_upstreams: dict[str, str], peer_upstreams: dict[str, str],
               listen_ports: list[int] | None = None) -> None:
        """Create every link proxy: `client_upstreams[node]` is the node's own client
        address, `peer_upstreams[node]` its own peer address; the proxies listen on
        `listen_ports` (one per link, clients' first), or on ports the server picks."""
        links = [(client_link(n), client_upstreams[n]) for n in self.nodes]
        links += [(peer_link(a, b), peer_upstreams[b]) for a, b in self.peer_links()]
        ports = listen_ports or [0] * len(links)
        if len(ports) < len(links):
            raise ValueError(f"{len(links)} links need as many ports, got {len(ports)}")
        wanted = [{"name": name, "listen": f"127.0.0.1:{port}", "upstream": upstream,
                   "enabled": True} for (name, upstream), port in zip(links, ports)]
        for proxy in self.api.post_populate(wanted):
            self.proxies[proxy.name] = proxy

    def close(self) -> None:
        """Stop the API threads and the server this network started, and give its ports
        back (idempotent)."""
        try:
            self._pool.shutdown(wait=True)
            if self.api is not None:
                self.api.close()
            if self._owns_server and self.server is not None:
                self.server.stop()
                self.server = None
        finally:
            if self._ports:
                release(self._ports)
                self._ports = []

    # --- changes ---------------------------------------------------------------------------

    def heal(self) -> None:
        """Undo every change, then reset the server as well: every proxy enabled, every
        toxic removed, whoever added it (cut connections close; nodes redial)."""
        with self._lock:
            self._cuts.clear()
            self._slow.clear()
            self._dropped.clear()
            self._refused.clear()
            self.api.reset()

    def add_toxic(self, names: Iterable[str], toxic_type: str, attributes: dict,
                  stream: str = "downstream", toxicity: float = 1.0,
                  toxic_name: str | None = None) -> list[str]:
        """Put one toxic (bandwidth, slicer, reset_peer, ...) on the named proxies; undone
        only by `heal`."""
        names = list(names)
        name = toxic_name or f"faultline_{toxic_type}_{stream}"

        def add(proxy_name: str) -> None:
            self.proxies[proxy_name].add_toxic(type=toxic_type, name=name, stream=stream,
                                               toxicity=toxicity, attributes=attributes)
        list(self._pool.map(add, names))
        return names

    def _apply_cuts(self, cuts: dict[str, set[Link]]) -> None:
        drop, refuse = cuts[DROP], cuts[REFUSE]
        calls = [(self._drop, self._dropped, link, True) for link in drop - self._dropped]
        calls += [(self._undrop, self._dropped, link, False) for link in self._dropped - drop]
        calls += [(self._refuse, self._refused, link, True) for link in refuse - self._refused]
        calls += [(self._unrefuse, self._refused, link, False)
                  for link in self._refused - refuse]

        def call(step) -> None:
            action, applied, link, adding = step
            action(peer_link(*link))
            # Each link as it is done: after a failure, the next call mends only the rest.
            # (Not under the network's lock: the caller holds it while it waits for this.)
            with self._state_lock:
                (applied.add if adding else applied.discard)(link)
        self._all(call, calls)

    def _all(self, action, items) -> None:
        """`action` on every item in parallel; the first error once all have ended."""
        futures = [self._pool.submit(action, item) for item in items]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]

    def _drop(self, name: str) -> None:
        # Both directions: node links carry one direction of traffic, client links two.
        proxy = self.proxies[name]
        for stream in ("upstream", "downstream"):
            try:
                proxy.add_toxic(type="timeout", name=f"{PARTITION_TOXIC}_{stream}",
                                stream=stream, attributes={"timeout": 0})
            except ProxyExists:        # left by an earlier attempt that failed halfway
                pass

    def _undrop(self, name: str) -> None:
        proxy = self.proxies[name]
        for stream in ("upstream", "downstream"):
            try:
                proxy.destroy_toxic(f"{PARTITION_TOXIC}_{stream}")
            except NotFound:
                pass

    def _refuse(self, name: str) -> None:
        self.proxies[name].disable()

    def _unrefuse(self, name: str) -> None:
        self.proxies[name].enable()

    def _add_slow(self, change: Change) -> None:
        name = self._slow_toxic(change)
        attributes = {"latency": change.details["latency_ms"],
                      "jitter": change.details["jitter_ms"]}
        self._all(lambda link: self.proxies[peer_link(*link)].add_toxic(
            type="latency", name=name, stream="upstream", attributes=attributes),
            change.links)

    def _remove_slow(self, change: Change) -> None:
        name = self._slow_toxic(change)

        def remove(link: Link) -> None:
            try:
                self.proxies[peer_link(*link)].destroy_toxic(name)
            except NotFound:
                pass
        self._all(remove, change.links)

    @staticmethod
    def _slow_toxic(change: Change) -> str:
        return f"faultline_latency_{change.id}"
