"""kill: SIGKILL nodes (their whole process trees), then start them again with their data."""

from __future__ import annotations

from typing import Any

from harness.faults.base import FaultContext, NodeFault


class KillFault(NodeFault):
    name = "kill"
    START, STOP = "kill", "start"
    SUMMARY = "SIGKILL nodes, then restart them"
    # Every reach: a majority or all of the nodes down tests recovery from the logs.
    DEFAULT_TARGETS = ("one", "leader", "minority", "majority", "all")

    def start(self, ctx: FaultContext, value: dict[str, Any]) -> dict[str, Any]:
        value["nodes"] = ctx.nodes_of(value)
        ctx.hold(self.name, value["nodes"])
        for node in value["nodes"]:
            ctx.cluster.kill(node)
        return value

    def stop(self, ctx: FaultContext, started: dict[str, Any],
             value: dict[str, Any]) -> dict[str, Any]:
        value["nodes"] = ctx.restart_released(self.name, started.get("nodes", []))
        return value
