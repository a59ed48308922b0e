"""Clusters behind link proxies: partitions verified by real connections, and a real refnode
cluster that loses its leader to a partition and serves again after healing."""

from __future__ import annotations

import random
import socket
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest

from harness import partitions
from harness.cluster import Cluster
from harness.network import Network
from harness.proxy.process import start_embedded
from harness.systems.refnode import RefnodeSystem
from tests.harness.waiting import wait_for

NODES = ["n1", "n2", "n3", "n4"]


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            self.request.sendall(data)


@pytest.fixture
def echo_network():
    """Four echo servers standing in for nodes, with link proxies between them."""
    servers = []
    for _ in NODES:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
    addresses = {n: f"127.0.0.1:{s.server_address[1]}" for n, s in zip(NODES, servers)}
    with start_embedded() as proxy_server:
        network = Network(proxy_server.client(), NODES)
        topology = network.create(addresses, addresses)
        yield network, topology
        network.close()
    for server in servers:
        server.shutdown()
        server.server_close()


def _reaches(address: str, timeout: float = 0.4) -> bool:
    """Whether bytes sent to `address` come back (through the proxy and the echo server)."""
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(b"ping")
            return sock.recv(4) == b"ping"
    except OSError:
        return False


def _observed(topology) -> dict[str, set[str]]:
    links = list(topology.peer_addresses.items())
    with ThreadPoolExecutor(len(links)) as pool:
        results = list(pool.map(lambda item: _reaches(item[1]), links))
    observed = {n: set() for n in NODES}
    for ((src, dst), _), ok in zip(links, results):
        if ok:
            observed[src].add(dst)
    return observed


SHAPES = {
    "halves": lambda rng: partitions.halves(NODES, rng),
    "isolate": lambda rng: partitions.isolate(NODES, "n2"),
    "majorities-ring": lambda rng: partitions.majorities_ring(NODES, rng),
    "bridge": lambda rng: partitions.bridge(NODES, rng),
    "one-way": lambda rng: partitions.one_way("n1", "n3"),
}


@pytest.mark.parametrize("mode", ["drop", "refuse"])
def test_every_partition_shape_cuts_exactly_its_links(echo_network, mode):
    network, topology = echo_network
    assert _observed(topology) == {n: set(NODES) - {n} for n in NODES}
    for name, shape in SHAPES.items():
        grudge = shape(random.Random(3))
        network.partition(grudge, mode=mode)
        assert _observed(topology) == partitions.reachable(NODES, grudge), name
        network.heal()
        assert _observed(topology) == {n: set(NODES) - {n} for n in NODES}, name


def test_latency_toxic_on_a_link_is_felt(echo_network):
    network, topology = echo_network
    network.add_toxic(["n1_to_n2"], "latency", {"latency": 150, "jitter": 0})
    host, port = topology.peer_addresses[("n1", "n2")].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2) as sock:
        started = time.monotonic()
        sock.sendall(b"x")
        assert sock.recv(1) == b"x"
        assert time.monotonic() - started >= 0.14
    network.heal()


def test_refnode_elects_a_new_leader_when_its_leader_is_isolated(tmp_path):
    with Cluster(RefnodeSystem(), 3, tmp_path / "run", seed=5) as cluster:
        leader = wait_for(cluster.leader)
        with closing(cluster.client(leader)) as client:
            assert client.invoke("write", "k", 1)["type"] == "ok"

        cluster.network.partition(partitions.isolate(cluster.ids, leader))
        others = [n for n in cluster.ids if n != leader]
        new_leader = wait_for(lambda: _leader_among(cluster, others, not_=leader))
        with closing(cluster.client(new_leader, timeout=2.0)) as client:
            assert client.invoke("write", "k", 2)["type"] == "ok"

        cluster.network.heal()
        # After healing, the old leader follows and every node serves the latest value.
        wait_for(lambda: cluster.leader() == new_leader or None)
        for node in cluster.ids:
            with closing(cluster.client(node, timeout=2.0)) as c:
                result = wait_for(lambda: _ok(c.invoke("read", "k", None, read_mode="follower")))
                assert result["value"] == 2, node


def _ok(result):
    return result if result["type"] == "ok" and result["value"] == 2 else None


def _leader_among(cluster, nodes, not_):
    for node in nodes:
        status = cluster.system.status(cluster.layout.node(node))
        if status and status["role"] == "leader" and status["leader"] != not_:
            return status["leader"]
    return None
