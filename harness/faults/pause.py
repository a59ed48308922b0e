"""pause: SIGSTOP nodes (they keep their sockets and memory and do nothing), then SIGCONT."""

from __future__ import annotations

from typing import Any

from harness.faults.base import (TARGETS_OPTION, Fault, FaultContext, Setting, plan_targets,
                                 targets_refusal)


class Pause(Fault):
    name = "pause"
    START, STOP = "pause", "resume"
    SUMMARY = "SIGSTOP nodes, then SIGCONT them"
    OPTIONS = (TARGETS_OPTION,)

    @classmethod
    def refusal(cls, setting: Setting) -> str | None:
        return super().refusal(setting) or targets_refusal(cls.name, setting)

    @classmethod
    def plan(cls, nodes, rng, options, setting) -> dict[str, Any]:
        return plan_targets(nodes, rng, options, setting)

    def start(self, ctx: FaultContext, value: dict[str, Any]) -> dict[str, Any]:
        value["nodes"] = ctx.nodes_of(value)
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
