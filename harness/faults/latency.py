"""latency: slow the links between nodes (all, or those out of one node), then restore them."""

from __future__ import annotations

from typing import Any

from harness.faults.base import Fault, FaultContext, Setting
from harness.networks.base import LATENCY
from pluginkit.options import Option

LATENCIES_MS = (20, 50, 100)
JITTERS_MS = (0, 20, 50)
LATENCY_OPTION = Option("latency_ms", "float-list", None, "link latencies in milliseconds to "
                        "draw from (latency: 20, 50, 100; election-crash: 200)", minimum=0)


class LatencyFault(Fault):
    name = "latency"
    START, STOP = "start-latency", "stop-latency"
    SUMMARY = "slow the links between nodes"
    OPTIONS = (
        LATENCY_OPTION,
        Option("latency_from", "str-list", None, "slow only the links out of one node: "
               "'leader' or 'one' (default: every link)", choices=("one", "leader")),
    )
    NETWORK = frozenset({LATENCY})
    MIN_NODES = 2

    @classmethod
    def refusal(cls, setting: Setting) -> str | None:
        found = super().refusal(setting)
        if not found and "leader" in (setting.options.get("latency_from") or ()) and \
                "leader-probe" not in setting.capabilities:
            return ("latency_from leader needs a system that can say which node leads (a "
                    "leader probe)")
        return found

    @classmethod
    def plan(cls, nodes, rng, options, setting, aim=None) -> dict[str, Any]:
        out = {"latency_ms": rng.choice(tuple(options.get("latency_ms") or LATENCIES_MS)),
               "jitter_ms": rng.choice(JITTERS_MS)}
        if options.get("latency_from"):
            # Only the links out of one node ("leader" or "one"): its messages arrive late.
            out["target"] = rng.choice(tuple(options["latency_from"]))
            if out["target"] == "one":
                out["nodes"] = [rng.choice(nodes)]
        return out

    def __init__(self):
        self._change = None

    def start(self, ctx: FaultContext, value: dict[str, Any]) -> dict[str, Any]:
        network = ctx.cluster.network
        links = network.peer_links()
        if value.get("target"):
            value["nodes"] = ctx.nodes_of(value)
            links = [(src, dst) for src, dst in links if src in value["nodes"]]
        self._change = network.slow(links, value["latency_ms"], value["jitter_ms"])
        value["links"] = self._change.describe()
        return value

    def stop(self, ctx: FaultContext, started: dict[str, Any],
             value: dict[str, Any]) -> dict[str, Any]:
        if self._change is not None:
            ctx.cluster.network.undo(self._change)
            self._change = None
        return value
