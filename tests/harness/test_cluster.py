"""A real refnode cluster on each network: it loses its leader to a partition, elects another,
and serves the latest value everywhere after healing; its clock can be skewed through the
admin call on both (on the namespace network the call comes over the bridge)."""

from __future__ import annotations

from contextlib import closing

import pytest

from harness.faults import partition_shapes as partitions
from harness.networks.netns import may_make_namespaces
from harness.run.cluster import Cluster
from harness.systems.refnode import RefnodeSystem
from tests.harness.waiting import wait_for

BACKENDS = ["proxy", pytest.param("netns", marks=pytest.mark.skipif(
    not may_make_namespaces(),
    reason="the namespace network needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"))]


@pytest.mark.parametrize("network", BACKENDS)
def test_refnode_elects_a_new_leader_when_its_leader_is_isolated(tmp_path, network):
    # Follower reads, so that each node answers from its own state.
    system = RefnodeSystem({"read_mode": "follower"})
    with Cluster(system, 3, tmp_path / "run", seed=5, network=network) as cluster:
        assert cluster.layout.network == network
        leader = wait_for(cluster.leader)
        with closing(cluster.client(leader)) as client:
            assert client.invoke("write", "k", 1)["type"] == "ok"

        cut = cluster.network.cut(partitions.isolate(cluster.ids, leader))
        others = [n for n in cluster.ids if n != leader]
        new_leader = wait_for(lambda: _leader_among(cluster, others, not_=leader))
        with closing(cluster.client(new_leader, timeout=2.0)) as client:
            assert client.invoke("write", "k", 2)["type"] == "ok"

        cluster.network.undo(cut)
        # After healing, the old leader follows and every node serves the latest value.
        wait_for(lambda: cluster.leader() == new_leader or None)
        for node in cluster.ids:
            with closing(cluster.client(node, timeout=2.0)) as c:
                result = wait_for(lambda: _ok(c.invoke("read", "k", None)))
                assert result["value"] == 2, node
        cluster.set_clock(leader, 1.5, 1.0)       # raises unless the node took the call


def _ok(result):
    return result if result["type"] == "ok" and result["value"] == 2 else None


def _leader_among(cluster, nodes, not_):
    for node in nodes:
        status = cluster.system.status(cluster.layout.node(node))
        if status and status["role"] == "leader" and status["leader"] != not_:
            return status["leader"]
    return None
