"""partition: cut links between nodes in one of Jepsen's shapes, then restore exactly them."""

from __future__ import annotations

from typing import Any

from harness.faults import partition_shapes as partitions
from harness.faults.base import Fault, FaultContext, Setting
from harness.networks.base import DROP, LATENCY, MODES, PARTITION, REFUSE
from pluginkit.options import Option

SHAPES = partitions.SHAPES
# Shapes that make sense with two nodes (the others need a third).
SMALL_SHAPES = ("isolate", "isolate-leader", "one-way")
LEADER_SHARE = 0.5          # of default partitions that cut the leader off
SLOW_LINK_SHARE = 1 / 3     # of those, on networks with latency, that keep one slow link
DEFAULT_SLOW_LINK_MS = 2000.0


class PartitionFault(Fault):
    name = "partition"
    START, STOP = "start-partition", "stop-partition"
    SUMMARY = "cut links between nodes (halves, isolate, leader, ring, bridge, one-way)"
    OPTIONS = (
        Option("shapes", "str-list", None, "partition shapes to draw from (default all)",
               choices=SHAPES),
        Option("partition_mode", "str", DROP, "drop traffic silently, or refuse it",
               choices=MODES),
        Option("slow_link_ms", "float", None, "isolate-leader keeps one link out of the "
               "leader, this slow (a deposed leader heard from late)", minimum=0),
    )
    NETWORK = frozenset({PARTITION})
    MIN_NODES = 2

    @classmethod
    def refusal(cls, setting: Setting) -> str | None:
        found = super().refusal(setting)
        if found:
            return found
        options = setting.options
        if options.get("partition_mode") == REFUSE and REFUSE not in setting.network_features:
            return f"partition_mode refuse: {setting.lacks(REFUSE)}"
        if options.get("slow_link_ms") and LATENCY not in setting.network_features:
            return f"slow_link_ms: {setting.lacks(LATENCY)}"
        if "isolate-leader" in (options.get("shapes") or ()) and \
                "leader-probe" not in setting.capabilities:
            return ("the partition shape isolate-leader needs a system that can say which "
                    "node leads (a leader probe)")
        if setting.nodes < 3 and options.get("shapes") and \
                not set(options["shapes"]) & set(SMALL_SHAPES):
            return (f"partition shapes {', '.join(options['shapes'])} need at least 3 nodes; "
                    f"with 2 use {', '.join(SMALL_SHAPES)}")
        return None

    @classmethod
    def plan(cls, nodes, rng, options, setting, aim=None) -> dict[str, Any]:
        if aim is not None:
            return cls._shaped(aim, nodes, rng, options, setting, drawn=True)
        given = options.get("shapes")
        shapes = tuple(given or (s for s in SHAPES if s != "isolate-leader" or
                                 "leader-probe" in setting.capabilities))
        if len(nodes) < 3:
            shapes = tuple(s for s in shapes if s in SMALL_SHAPES) or ("isolate",)
        if not given and "isolate-leader" in shapes and rng.random() < LEADER_SHARE:
            # The leader cut off from the others while its clients still reach it is where
            # most replication bugs show (stale reads, early acknowledgements, stale appends):
            # by default it comes up as often as all the other shapes together.
            shape = "isolate-leader"
        else:
            shape = rng.choice(shapes)
        return cls._shaped(shape, nodes, rng, options, setting, drawn=not given)

    @classmethod
    def _shaped(cls, shape, nodes, rng, options, setting, drawn: bool) -> dict[str, Any]:
        """One partition of `shape`; `drawn`: the shape was the schedule's choice, not the
        test's, so a cut-off leader may keep a slow link by the default rule."""
        grudge = None
        if shape == "halves":
            grudge = partitions.halves(nodes, rng)
        elif shape == "isolate":
            grudge = partitions.isolate(nodes, rng.choice(nodes))
        elif shape == "majorities-ring":
            grudge = partitions.majorities_ring(nodes, rng)
        elif shape == "bridge":
            grudge = partitions.bridge(nodes, rng)
        elif shape == "one-way":
            src, dst = rng.sample(nodes, 2)
            grudge = partitions.one_way(src, dst)
        out: dict[str, Any] = {"shape": shape, "mode": options.get("partition_mode") or DROP}
        if grudge is not None:
            out["grudge"] = partitions.describe(grudge)
        if shape == "isolate-leader" and drawn and "slow_link_ms" not in options and \
                LATENCY in setting.network_features and rng.random() < SLOW_LINK_SHARE:
            # Now and then one link out of the deposed leader stays, slow: its old-term
            # messages arrive after a new leader has been elected.
            options = dict(options, slow_link_ms=DEFAULT_SLOW_LINK_MS)
        if shape == "isolate-leader" and options.get("slow_link_ms"):
            # One link out of the cut-off leader stays, but slow: its messages arrive long
            # after the others have moved on (a deposed leader heard from late).
            out["slow_link_ms"] = options["slow_link_ms"]
        return out

    def __init__(self):
        self._changes: list = []

    def start(self, ctx: FaultContext, value: dict[str, Any]) -> dict[str, Any]:
        c = ctx.cluster
        slow = None
        if value.get("grudge") is None:          # isolate-leader: resolved now
            leader = c.leader() or ctx.rng.choice(c.ids)
            grudge = partitions.isolate(c.ids, leader)
            if value.get("slow_link_ms"):
                follower = ctx.rng.choice([n for n in c.ids if n != leader])
                grudge[follower] = grudge[follower] - {leader}
                slow = (leader, follower)
            value["grudge"] = partitions.describe(grudge)
        grudge = {k: frozenset(v) for k, v in value["grudge"].items()}
        self._changes = []
        if slow is not None:
            # Slow that link before cutting the others, so that the follower on it never
            # holds entries the rest lack (which would make it the certain next leader).
            change = c.network.slow([slow], value["slow_link_ms"])
            self._changes.append(change)
            value["slow_link"] = change.describe()
        change = c.network.cut(grudge, mode=value.get("mode", DROP))
        self._changes.append(change)
        value["links"] = change.describe()
        return value

    def stop(self, ctx: FaultContext, started: dict[str, Any],
             value: dict[str, Any]) -> dict[str, Any]:
        changes, self._changes = self._changes, []
        for change in changes:
            ctx.cluster.network.undo(change)
        value["links"] = [link for change in changes if change.kind == "cut"
                          for link in change.describe()]
        return value
