"""Both network backends, checked by real connections: every partition shape cuts exactly its
links, in drop and refuse modes; changes are undone one by one; the namespace network leaves
nothing behind.

On the proxy network a cut link (src, dst) stops the connections src dials to dst (refnode's
peer connections carry one direction each). On the namespace network a cut link drops every
packet from src at dst, as Jepsen's iptables partitions do, so a TCP connection between the
two fails whichever side dials it (`partitions.connectable`).
"""

from __future__ import annotations

import random
import socket
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.faults import partition_shapes as partitions
from harness.networks.base import DROP, REFUSE
from harness.networks.netns import NamespaceNetwork, may_make_namespaces, run_in_namespace
from harness.networks.proxy import ProxyNetwork
from harness.processes.leftovers import Registry
from harness.proxy.process import start_embedded

NODES = ["n1", "n2", "n3", "n4"]
NEEDS_ROOT = pytest.mark.skipif(not may_make_namespaces(), reason=(
    "the namespace network needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"))
BACKENDS = ["proxy", pytest.param("netns", marks=NEEDS_ROOT)]


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            self.request.sendall(data)


class EchoNetwork:
    """An echo server standing in for each node, on a network of the given backend."""

    def __init__(self, backend: str, tmp_path, proxy_server=None):
        self.backend = backend
        if backend == "proxy":
            self.network = ProxyNetwork(NODES, tmp_path, server=proxy_server)
        else:
            # The default registry: a test that dies leaves what it made to the next reaper.
            self.registry = Registry()
            self.network = NamespaceNetwork(NODES, tmp_path, self.registry)
        self.servers = []

    def __enter__(self):
        try:
            self.placements = self.network.start()
        except BaseException:
            self.__exit__()
            raise
        for node, place in self.placements.items():
            def make(place=place):
                server = socketserver.ThreadingTCPServer((place.host, place.peer_port), _Echo)
                server.daemon_threads = True
                return server
            # On the namespace network the listening socket is made inside the node's
            # namespace, and stays there.
            server = make() if place.netns is None else run_in_namespace(place.netns, make)
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            self.servers.append(server)
        return self

    def __exit__(self, *exc):
        for server in self.servers:
            server.shutdown()
            server.server_close()
        try:
            self.network.close()
        finally:
            if self.backend == "netns":
                self.registry.close()

    def reaches(self, src: str, dst: str, timeout: float = 0.4) -> bool:
        """Whether bytes src sends to dst come back (src dials from its own namespace)."""
        host, port = self.placements[src].peer_addresses[dst].rsplit(":", 1)

        def probe() -> bool:
            try:
                with socket.create_connection((host, int(port)), timeout=timeout) as sock:
                    sock.sendall(b"ping")
                    return sock.recv(4) == b"ping"
            except OSError:
                return False
        netns = self.placements[src].netns
        return probe() if netns is None else run_in_namespace(netns, probe)

    def observed(self) -> dict[str, set[str]]:
        links = self.network.peer_links()
        with ThreadPoolExecutor(len(links)) as pool:
            results = list(pool.map(lambda link: self.reaches(*link), links))
        seen = {n: set() for n in NODES}
        for (src, dst), ok in zip(links, results):
            if ok:
                seen[src].add(dst)
        return seen

    def expected(self, grudge) -> dict[str, set[str]]:
        if self.backend == "proxy":
            return partitions.reachable(NODES, grudge)
        return partitions.connectable(NODES, grudge)


@pytest.fixture(scope="module")
def proxy_server():
    with start_embedded() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def echo_network(request, tmp_path, proxy_server):
    with EchoNetwork(request.param, tmp_path, proxy_server) as network:
        yield network


SHAPES = {
    "halves": lambda rng: partitions.halves(NODES, rng),
    "isolate": lambda rng: partitions.isolate(NODES, "n2"),
    "majorities-ring": lambda rng: partitions.majorities_ring(NODES, rng),
    "bridge": lambda rng: partitions.bridge(NODES, rng),
    "one-way": lambda rng: partitions.one_way("n1", "n3"),
}
EVERYONE = {n: set(NODES) - {n} for n in NODES}


@pytest.mark.parametrize("mode", [DROP, REFUSE])
def test_every_partition_shape_cuts_exactly_its_links(echo_network, mode):
    assert echo_network.observed() == EVERYONE
    for name, shape in SHAPES.items():
        grudge = shape(random.Random(3))
        change = echo_network.network.cut(grudge, mode=mode)
        assert echo_network.observed() == echo_network.expected(grudge), name
        echo_network.network.undo(change)
        assert echo_network.observed() == EVERYONE, name


def test_refused_links_fail_fast_and_dropped_links_hang(echo_network):
    """REFUSE is loud (the connection is refused at once), DROP is silent (it times out)."""
    network = echo_network.network
    change = network.cut(partitions.one_way("n1", "n2"), mode=REFUSE)
    started = time.monotonic()
    assert not echo_network.reaches("n1", "n2", timeout=3.0)
    assert time.monotonic() - started < 1.5
    network.undo(change)
    change = network.cut(partitions.one_way("n1", "n2"), mode=DROP)
    started = time.monotonic()
    assert not echo_network.reaches("n1", "n2", timeout=1.0)
    assert time.monotonic() - started >= 0.9
    network.undo(change)


def test_undoing_one_cut_leaves_an_overlapping_one(echo_network):
    network = echo_network.network
    first = network.cut(partitions.isolate(NODES, "n1"))
    second = network.cut(partitions.one_way("n1", "n2"))          # n1 -> n2 cut by both
    network.undo(first)
    grudge = partitions.one_way("n1", "n2")
    assert echo_network.observed() == echo_network.expected(grudge)
    assert [c.id for c in network.active()] == [second.id]
    network.undo(second)
    network.undo(second)                                            # undone twice: no-op
    assert echo_network.observed() == EVERYONE


def test_undoing_latency_leaves_a_partition(tmp_path, proxy_server):
    """Ending a latency fault no longer heals a partition that overlaps it (proxy network:
    the only one with latency here)."""
    with EchoNetwork("proxy", tmp_path, proxy_server) as echo:
        network = echo.network
        cut = network.cut(partitions.isolate(NODES, "n4"))
        slow = network.slow([("n1", "n2")], 150)
        host, port = echo.placements["n1"].peer_addresses["n2"].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=2) as sock:
            started = time.monotonic()
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
            assert time.monotonic() - started >= 0.14
        network.undo(slow)
        assert echo.observed() == partitions.reachable(NODES, partitions.isolate(NODES, "n4"))
        network.undo(cut)
        assert echo.observed() == EVERYONE


@NEEDS_ROOT
def test_the_namespace_network_removes_everything_it_made(tmp_path):
    registry = Registry()
    network = NamespaceNetwork(["n1", "n2", "n3"], tmp_path, registry)
    network.start()
    assert len(network.leftovers()) == 3 + 3 + 1      # namespaces, veths, the bridge
    recorded = registry.path.read_text()
    assert network.bridge in recorded and network.namespaces["n1"] in recorded
    network.close()
    assert network.leftovers() == []
    assert network.bridge not in registry.path.read_text()
    registry.close()


@NEEDS_ROOT
def test_two_namespace_networks_at_once_get_different_subnets(tmp_path):
    with_registry = Registry()
    a = NamespaceNetwork(["n1", "n2"], tmp_path, with_registry)
    b = NamespaceNetwork(["n1", "n2"], tmp_path, with_registry)
    try:
        a_places, b_places = a.start(), b.start()
        assert a.harness_host != b.harness_host
        assert a_places["n1"].host != b_places["n1"].host
    finally:
        try:
            a.close()
        finally:
            b.close()
            with_registry.close()
    assert a.leftovers() == [] and b.leftovers() == []


def test_a_cut_that_fails_halfway_is_taken_back(echo_network, monkeypatch):
    """One link refuses to be cut: the cut raises, is not in force, and what of it had been
    applied is undone; a later cut and heal work as usual."""
    network = echo_network.network
    if echo_network.backend == "proxy":
        real = network._drop

        def drop(name):
            if name == "n2_to_n3":
                raise RuntimeError("the proxy server said no")
            real(name)
        monkeypatch.setattr(network, "_drop", drop)
    else:
        import harness.networks.netns as netns_module
        real = netns_module._set_rules
        n3 = echo_network.placements["n3"].host

        def set_rules(rules):
            if any(address == echo_network.placements["n2"].host for address, _ in rules) \
                    and n3 not in [a for a, _ in rules]:
                raise RuntimeError("nftables said no")
            real(rules)
        monkeypatch.setattr(netns_module, "_set_rules", set_rules)
    grudge = {"n2": {"n1"}, "n3": {"n2"}}        # cuts n1->n2 and n2->n3
    with pytest.raises(RuntimeError, match="said no"):
        network.cut(grudge)
    assert network.active() == []
    assert echo_network.observed() == EVERYONE
    monkeypatch.undo()
    change = network.cut(grudge)
    assert echo_network.observed() == echo_network.expected(grudge)
    network.heal()
    assert echo_network.observed() == EVERYONE
    network.undo(change)                          # healed already: nothing left to undo
