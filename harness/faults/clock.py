"""clock: skew a node's clock by an offset and make it run at another rate, then reset it."""

from __future__ import annotations

from typing import Any

from harness.faults.base import TARGETS_OPTION, FaultContext, NodeFault
from harness.options import Option

CLOCK_RATES = (1.0, 0.8, 1.25)
CLOCK_OFFSETS = (-2.0, 2.0)


class Clock(NodeFault):
    name = "clock"
    START, STOP = "skew-clock", "reset-clock"
    SUMMARY = "skew and drift nodes' clocks, then reset them"
    OPTIONS = (
        TARGETS_OPTION,
        Option("clock_rates", "float-list", None, "clock rates to draw from (default "
               "1.0, 0.8, 1.25)", minimum=0.01),
        Option("clock_offsets", "float-list", None, "low and high clock offset in seconds "
               "(default -2, 2)", length=2),
    )
    NEEDS = frozenset({"clock-control"})

    @classmethod
    def plan(cls, nodes, rng, options, setting) -> dict[str, Any]:
        out = super().plan(nodes, rng, options, setting)
        low, high = options.get("clock_offsets") or CLOCK_OFFSETS
        out["offset"] = round(rng.uniform(low, high), 3)
        out["rate"] = round(rng.choice(tuple(options.get("clock_rates") or CLOCK_RATES)), 3)
        return out

    def start(self, ctx: FaultContext, value: dict[str, Any]) -> dict[str, Any]:
        value["nodes"] = ctx.nodes_of(value)
        for node in value["nodes"]:
            ctx.cluster.set_clock(node, value["offset"], value["rate"])
        return value

    def stop(self, ctx: FaultContext, started: dict[str, Any],
             value: dict[str, Any]) -> dict[str, Any]:
        # A node that is down now restarts with a true clock anyway.
        value["nodes"] = [n for n in started.get("nodes", [])
                          if ctx.cluster.process(n).running]
        for node in value["nodes"]:
            ctx.cluster.set_clock(node, 0.0, 1.0)
        return value
