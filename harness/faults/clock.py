"""clock: skew a node's clock by an offset and make it run at another rate, then reset it."""

from __future__ import annotations

import math
from typing import Any

from harness.faults.base import TARGETS_OPTION, FaultContext, NodeFault
from pluginkit.options import Option

CLOCK_RATES = (1.0, 0.8, 1.25)
CLOCK_OFFSETS = (-2.0, 2.0)
NO_JUMPS = (0.0, 0.0)


def default_skews(bound: float | None) -> tuple[tuple[float, ...], tuple[float, float]]:
    """The clock rates and the offset range a clock fault draws from when the test does not
    say. A system that declares a drift bound (its leases rely on it) gets clocks at that
    bound, slow and fast, and no jumps: the edge of what it promises to survive, where a
    missing margin shows, and nothing past it, where a correct system may fail too. Others get
    jumps of up to 2 s and rates 20% off."""
    if bound is None:
        return CLOCK_RATES, CLOCK_OFFSETS
    # Rounded inwards (plans keep three decimals): a rate rounded outwards would break the
    # bound by a hair.
    return (math.ceil((1.0 - bound) * 1000) / 1000,
            math.floor(1000 / (1.0 - bound)) / 1000), NO_JUMPS


class ClockFault(NodeFault):
    name = "clock"
    START, STOP = "skew-clock", "reset-clock"
    SUMMARY = "skew and drift nodes' clocks, then reset them"
    OPTIONS = (
        TARGETS_OPTION,
        Option("clock_rates", "float-list", None, "clock rates to draw from (default "
               "1.0, 0.8, 1.25; for a system that declares a drift bound b, 1-b and "
               "1/(1-b))", minimum=0.01),
        Option("clock_offsets", "float-list", None, "low and high clock offset in seconds "
               "(default -2, 2; for a system that declares a drift bound, no jumps)",
               length=2),
    )
    NEEDS = frozenset({"clock-control"})

    @classmethod
    def plan(cls, nodes, rng, options, setting, aim=None) -> dict[str, Any]:
        out = super().plan(nodes, rng, options, setting, aim)
        rates, offsets = default_skews(setting.clock_drift)
        low, high = options.get("clock_offsets") or offsets
        out["offset"] = round(rng.uniform(low, high), 3)
        out["rate"] = round(rng.choice(tuple(options.get("clock_rates") or rates)), 3)
        return out

    def __init__(self):
        self._skewed: dict[str, int | None] = {}    # node -> the process that was skewed

    def start(self, ctx: FaultContext, value: dict[str, Any]) -> dict[str, Any]:
        value["nodes"] = ctx.up(ctx.nodes_of(value))
        if not value["nodes"]:
            value["skipped"] = "its nodes were down or paused (another fault)"
            return value
        for node in value["nodes"]:
            self._skewed[node] = ctx.cluster.process(node).pid
            ctx.cluster.set_clock(node, value["offset"], value["rate"])
        return value

    def stop(self, ctx: FaultContext, started: dict[str, Any],
             value: dict[str, Any]) -> dict[str, Any]:
        value["nodes"] = self._reset(ctx, started.get("nodes", []))
        return value

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        """Reset the clocks a stop could not (a node paused at the time, say)."""
        return {"reset_clocks": self._reset(ctx, list(self._skewed))} if self._skewed else {}

    def _reset(self, ctx: FaultContext, nodes: list[str]) -> list[str]:
        """Reset each node's clock; a node restarted since it was skewed has a true clock
        already, and one paused meanwhile (by another fault) is left for `heal`. Every node
        is tried; the first error is raised after (and its node stays on the list for
        `heal`)."""
        done, errors = [], []
        for node in nodes:
            process = ctx.cluster.process(node)
            if node not in self._skewed:
                continue
            if not process.running or process.pid != self._skewed[node]:
                del self._skewed[node]
                continue
            if process.paused:
                continue      # paused by another fault: `heal` resets it at the end
            try:
                ctx.cluster.set_clock(node, 0.0, 1.0)
            except Exception as exc:
                errors.append(exc)
                continue
            del self._skewed[node]
            done.append(node)
        if errors:
            raise errors[0]
        return done
