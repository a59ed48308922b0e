"""A proxy on every link of a cluster, and network faults applied to them.

Every directed link gets its own proxy on the Toxiproxy server: `client_to_<node>` for clients
reaching a node, and `<a>_to_<b>` for node a reaching node b (node a is given the listen
address of that proxy as b's address). Faults are toxics or disabled proxies on those links,
applied only through the Toxiproxy HTTP API:

- a partition (a grudge, see `harness.partitions`) cuts each directed link (src, dst) it
  names, silently (`drop`: a `timeout` toxic with timeout 0 swallows the data) or loudly
  (`refuse`: the proxy is disabled, so connections are refused and reset);
- latency with jitter, bandwidth limits, slicing and connection resets on chosen links;
- `heal` resets the server: every proxy enabled, every toxic gone.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Mapping

from harness.partitions import links as grudge_links
from harness.proxy.client import BoundProxy, ToxiproxyClient

DROP, REFUSE = "drop", "refuse"
PARTITION_TOXIC = "faultline_partition"
# Enough parallel API calls that cutting 20 links costs about as much as cutting 2.
API_THREADS = 8


def client_link(node: str) -> str:
    """The name of the proxy clients use to reach `node`."""
    return f"client_to_{node}"


def peer_link(src: str, dst: str) -> str:
    """The name of the proxy `src` uses to reach `dst`."""
    return f"{src}_to_{dst}"


@dataclass(frozen=True)
class Topology:
    """Where the proxies listen: what clients and nodes must dial instead of each other."""

    client_addresses: dict[str, str]               # node -> proxy listen address
    peer_addresses: dict[tuple[str, str], str]     # (src, dst) -> proxy listen address


class Network:
    """The link proxies of one cluster on one Toxiproxy server."""

    def __init__(self, api: ToxiproxyClient, nodes: Iterable[str]):
        self.api = api
        self.nodes = list(nodes)
        self.proxies: dict[str, BoundProxy] = {}
        self._pool = ThreadPoolExecutor(API_THREADS, thread_name_prefix="toxiproxy-api")

    def create(self, client_upstreams: Mapping[str, str], peer_upstreams: Mapping[str, str],
               listen_ports: list[int] | None = None) -> Topology:
        """Create every link proxy (one `/populate` request).

        `client_upstreams[node]` is the node's own client address, `peer_upstreams[node]` its
        own peer address. The proxies listen on `listen_ports` (one per link, clients' first),
        or on ports the server picks. Returns the addresses to dial instead.
        """
        links = [(client_link(n), client_upstreams[n]) for n in self.nodes]
        links += [(peer_link(a, b), peer_upstreams[b])
                  for a in self.nodes for b in self.nodes if a != b]
        ports = listen_ports or [0] * len(links)
        if len(ports) < len(links):
            raise ValueError(f"{len(links)} links need as many ports, got {len(ports)}")
        wanted = [{"name": name, "listen": f"127.0.0.1:{port}", "upstream": upstream,
                   "enabled": True} for (name, upstream), port in zip(links, ports)]
        for proxy in self.api.post_populate(wanted):
            self.proxies[proxy.name] = proxy
        client = {n: self.proxies[client_link(n)].listen for n in self.nodes}
        peers = {(a, b): self.proxies[peer_link(a, b)].listen
                 for a in self.nodes for b in self.nodes if a != b}
        return Topology(client, peers)

    # --- faults ---------------------------------------------------------------------------

    def partition(self, grudge: Mapping[str, Iterable[str]], mode: str = DROP) -> list[str]:
        """Cut every directed link the grudge names; returns the proxies cut."""
        if mode not in (DROP, REFUSE):
            raise ValueError(f"partition mode must be {DROP!r} or {REFUSE!r}, got {mode!r}")
        names = sorted(peer_link(src, dst) for src, dst in grudge_links(grudge))
        action = self._drop if mode == DROP else self._refuse
        list(self._pool.map(action, names))
        return names

    def isolate_from_clients(self, nodes: Iterable[str], mode: str = DROP) -> list[str]:
        """Cut clients off from `nodes` (their client proxies)."""
        names = [client_link(n) for n in nodes]
        action = self._drop if mode == DROP else self._refuse
        list(self._pool.map(action, names))
        return names

    def add_toxic(self, names: Iterable[str], toxic_type: str, attributes: dict,
                  stream: str = "downstream", toxicity: float = 1.0,
                  toxic_name: str | None = None) -> list[str]:
        """Put one toxic (latency, bandwidth, slicer, reset_peer, ...) on the named links."""
        names = list(names)
        name = toxic_name or f"faultline_{toxic_type}_{stream}"

        def add(proxy_name: str) -> None:
            self.proxies[proxy_name].add_toxic(type=toxic_type, name=name, stream=stream,
                                               toxicity=toxicity, attributes=attributes)
        list(self._pool.map(add, names))
        return names

    def heal(self) -> None:
        """Every proxy enabled, every toxic removed (cut connections close; nodes redial)."""
        self.api.reset()

    def peer_links(self) -> list[str]:
        """Every node-to-node proxy name."""
        return [peer_link(a, b) for a in self.nodes for b in self.nodes if a != b]

    def close(self, remove_proxies: bool = True) -> None:
        """Stop the API threads; with `remove_proxies`, also remove this cluster's proxies
        from the server (pointless when the server itself is about to stop)."""
        if remove_proxies:
            for proxy in self.proxies.values():
                try:
                    proxy.destroy()
                except Exception:      # the server may already be gone: nothing to clean
                    pass
        self._pool.shutdown(wait=True)

    def _drop(self, name: str) -> None:
        # Both directions: node links carry one direction of traffic, client links two.
        proxy = self.proxies[name]
        for stream in ("upstream", "downstream"):
            proxy.add_toxic(type="timeout", name=f"{PARTITION_TOXIC}_{stream}", stream=stream,
                            attributes={"timeout": 0})

    def _refuse(self, name: str) -> None:
        self.proxies[name].disable()
