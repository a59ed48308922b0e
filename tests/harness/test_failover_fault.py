"""The failover fault's steps, on a cluster stand-in that records what was done to it: the
leader fenced only once a follower is promoted, the old leader rebuilt and restarted when the
fault ends, a rebuild put off while the new leader is down, a failed promotion undone, and
nothing promoted when no follower is up. (The fault on real PostgreSQL: test_postgres.py.)"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

import pytest

from harness.faults.base import FaultContext
from harness.faults.failover import FailoverFault


@dataclass
class _Process:
    running: bool = True
    paused: bool = False


@dataclass
class _Slot:
    id: str


@dataclass
class _System:
    steps: list = field(default_factory=list)
    promotes: bool | None = True        # what promote says: True, False (no), None (unknown)
    cluster: object = None

    def fence(self, node, layout):
        self.steps.append(("fence", node.id))

    def unfence(self, node, layout):
        self.steps.append(("unfence", node.id))

    def promote(self, node, layout):
        self.steps.append(("promote", node.id))
        if self.promotes:
            self.cluster.current_leader = node.id
        return self.promotes

    def follow(self, node, leader, layout):
        self.steps.append(("follow", node.id, leader.id))


class _Layout:
    def node(self, node_id):
        return _Slot(node_id)


class _Cluster:
    def __init__(self, leader="n1"):
        self.ids = ["n1", "n2"]
        self.system = _System(cluster=self)
        self.layout = _Layout()
        self.processes = {n: _Process() for n in self.ids}
        self.current_leader = leader

    def leader(self):
        return self.current_leader

    def process(self, node):
        return self.processes[node]

    def kill(self, node):
        self.processes[node].running = False
        self.system.steps.append(("kill", node))

    def restart(self, node, wait=True):
        self.processes[node].running = True
        self.system.steps.append(("restart", node))

    def wait_ready(self, nodes, timeout=0):
        pass


def _context(cluster) -> FaultContext:
    return FaultContext(cluster, None, random.Random(1), threading.Event())


def test_the_leader_is_fenced_a_follower_promoted_then_the_old_leader_rebuilt():
    cluster, fault = _Cluster(), FailoverFault()
    ctx = _context(cluster)
    started = fault.start(ctx, {})
    assert started == {"nodes": ["n1"], "promoted": "n2"}
    # Fenced before the promotion: whatever becomes of it, n1 comes back only as a follower.
    assert cluster.system.steps == [("kill", "n1"), ("fence", "n1"), ("promote", "n2")]
    stopped = fault.stop(ctx, started, {"of": "failover"})
    assert stopped["nodes"] == ["n1"] and stopped["following"] == "n2"
    assert cluster.system.steps[3:] == [("follow", "n1", "n2"), ("restart", "n1")]
    assert fault.heal(ctx) == {}


def test_a_rebuild_waits_while_the_new_leader_is_down():
    cluster, fault = _Cluster(), FailoverFault()
    ctx = _context(cluster)
    started = fault.start(ctx, {})
    cluster.processes["n2"].running = False          # another fault killed the new leader
    stopped = fault.stop(ctx, started, {"of": "failover"})
    assert "deferred" in stopped and not cluster.processes["n1"].running
    assert not any(step[0] == "follow" for step in cluster.system.steps)
    # The next occurrence rebuilds it instead of failing over again.
    cluster.processes["n2"].running = True
    again = fault.start(ctx, {})
    assert again["skipped"] == "rebuilt the last failover's old leader instead"
    assert cluster.system.steps[-2:] == [("follow", "n1", "n2"), ("restart", "n1")]


def test_the_end_of_the_run_rebuilds_an_old_leader_left_down():
    cluster, fault = _Cluster(), FailoverFault()
    ctx = _context(cluster)
    started = fault.start(ctx, {})
    cluster.processes["n2"].paused = True
    fault.stop(ctx, started, {"of": "failover"})
    with pytest.raises(RuntimeError, match="n2, the new leader, is not up"):
        fault.heal(ctx)
    cluster.processes["n2"].paused = False
    assert fault.heal(ctx) == {"rejoined": ["n1"], "following": "n2"}
    assert cluster.processes["n1"].running


def test_a_promotion_that_certainly_failed_brings_the_old_leader_back_unfenced():
    cluster, fault = _Cluster(), FailoverFault()
    cluster.system.promotes = False
    ctx = _context(cluster)
    with pytest.raises(RuntimeError, match="n2 was not promoted"):
        fault.start(ctx, {})
    assert cluster.system.steps == [("kill", "n1"), ("fence", "n1"), ("promote", "n2"),
                                    ("unfence", "n1"), ("restart", "n1")]
    assert fault.stop(ctx, {}, {"of": "failover"}) == {"of": "failover"}


def test_a_promotion_that_may_yet_finish_keeps_the_old_leader_fenced_and_down():
    """Restarting the old leader while the follower may still become leader could make two
    leaders: it stays down, fenced, until the new one leads, then it is rebuilt."""
    cluster, fault = _Cluster(), FailoverFault()
    cluster.system.promotes = None
    ctx = _context(cluster)
    with pytest.raises(RuntimeError, match="kept fenced"):
        fault.start(ctx, {})
    assert not cluster.processes["n1"].running
    assert fault.stop(ctx, {}, {"of": "failover"})["deferred"].startswith("n2, the new leader")
    assert not cluster.processes["n1"].running
    cluster.current_leader = "n2"                  # the promotion finished after all
    assert fault.heal(ctx) == {"rejoined": ["n1"], "following": "n2"}
    assert cluster.system.steps[-2:] == [("follow", "n1", "n2"), ("restart", "n1")]


def test_an_old_leader_another_fault_also_holds_waits_for_it():
    cluster, fault = _Cluster(), FailoverFault()
    ctx = _context(cluster)
    ctx.hold("kill", ["n1"])                       # a kill of n1 that has not ended yet
    started = fault.start(ctx, {})
    stopped = fault.stop(ctx, started, {"of": "failover"})
    assert stopped["nodes"] == [] and not cluster.processes["n1"].running
    assert ("follow", "n1", "n2") in cluster.system.steps
    assert ctx.restart_released("kill", ["n1"]) == ["n1"]


@pytest.mark.parametrize("down, said", [
    ({"n2": "running"}, "no follower is up to promote"),
    ({"n2": "paused"}, "no follower is up to promote"),
    ({}, "no leader, and every node is up"),
])
def test_no_failover_without_a_follower_up_or_a_leader_to_replace(down, said):
    cluster, fault = _Cluster(leader="n1" if down else None), FailoverFault()
    for node, how in down.items():
        if how == "running":
            cluster.processes[node].running = False
        else:
            cluster.processes[node].paused = True
    assert fault.start(_context(cluster), {})["skipped"] == said
    assert cluster.system.steps == []


def test_with_no_leader_answering_the_node_that_is_down_is_taken_for_it():
    cluster, fault = _Cluster(leader=None), FailoverFault()
    cluster.processes["n1"].paused = True              # a paused leader answers nobody
    started = fault.start(_context(cluster), {})
    assert started == {"nodes": ["n1"], "promoted": "n2"}
    assert cluster.system.steps[0] == ("kill", "n1")
