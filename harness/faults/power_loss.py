"""power-loss: kill nodes and cut their data back to what they had synced, then restart them."""

from __future__ import annotations

from typing import Any

from harness.faults.base import FaultContext, NodeFault


class PowerLossFault(NodeFault):
    name = "power-loss"
    START, STOP = "power-loss", "start"
    SUMMARY = "kill nodes and lose what they had not synced, then restart them"
    # One node's lost tail is repaired by the others; a majority's is what loses data.
    DEFAULT_TARGETS = ("leader", "majority", "all")
    NEEDS = frozenset({"power-loss"})

    def start(self, ctx: FaultContext, value: dict[str, Any]) -> dict[str, Any]:
        value["nodes"] = ctx.nodes_of(value)
        ctx.hold(self.name, value["nodes"])
        value["cut"] = [ctx.cluster.power_loss(node) for node in value["nodes"]]
        return value

    def stop(self, ctx: FaultContext, started: dict[str, Any],
             value: dict[str, Any]) -> dict[str, Any]:
        value["nodes"] = ctx.restart_released(self.name, started.get("nodes", []))
        return value
