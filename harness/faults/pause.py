"""pause: SIGSTOP nodes (they keep their sockets and memory and do nothing), then SIGCONT."""

from __future__ import annotations

from typing import Any

from harness.faults.base import FaultContext, NodeFault


class PauseFault(NodeFault):
    name = "pause"
    START, STOP = "pause", "resume"
    SUMMARY = "SIGSTOP nodes, then SIGCONT them"
    # A paused leader resumed after a new one was elected is the classic stale leader.
    DEFAULT_TARGETS = ("one", "leader", "minority", "majority")

    def start(self, ctx: FaultContext, value: dict[str, Any]) -> dict[str, Any]:
        value["nodes"] = ctx.up(ctx.nodes_of(value))
        if not value["nodes"]:
            value["skipped"] = "its nodes were down or paused already (another fault)"
            return value
        for node in value["nodes"]:
            ctx.cluster.pause(node)
        return value

    def stop(self, ctx: FaultContext, started: dict[str, Any],
             value: dict[str, Any]) -> dict[str, Any]:
        # A node killed meanwhile (by another fault) has nothing to resume.
        value["nodes"] = [n for n in started.get("nodes", []) if ctx.cluster.process(n).paused]
        for node in value["nodes"]:
            ctx.cluster.resume(node)
        return value
