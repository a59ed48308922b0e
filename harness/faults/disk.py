"""What the faults that damage a node's data files share: take the node down, damage, restart.

A disk fault kills its target nodes, damages the files the adapter names as holding their
durable state (`harness.systems.base.DataFiles`), and restarts them when it ends. Each damage is
drawn when the schedule is planned (a seed per occurrence), so a replay damages the same bytes
of the same files. A system that notices the damage should refuse to start with a clear error;
one that serves on must not serve lost acknowledged writes as valid reads.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, ClassVar

from harness.faults.base import FaultContext, NodeFault


class DiskFault(NodeFault):
    """The common part of `bitflip` and `truncate` (see the module docstring)."""

    NEEDS = frozenset({"data-files"})
    # One node's damaged disk must be survived; a majority's may cost availability.
    DEFAULT_TARGETS: ClassVar[tuple[str, ...]] = ("one", "minority")

    @classmethod
    def plan(cls, nodes, rng, options, setting, aim=None) -> dict[str, Any]:
        out = super().plan(nodes, rng, options, setting, aim)
        out["seed"] = rng.getrandbits(32)
        return out

    def damage(self, path: Path, rng: random.Random) -> dict[str, Any]:
        """Damage one file; returns what was done (JSON data)."""
        raise NotImplementedError

    def start(self, ctx: FaultContext, value: dict[str, Any]) -> dict[str, Any]:
        value["nodes"] = ctx.nodes_of(value)
        ctx.hold(self.name, value["nodes"])
        damaged = []
        for node in value["nodes"]:
            ctx.cluster.kill(node)
            rng = random.Random(f"{value.get('seed', 0)}/{node}")
            for path in ctx.cluster.data_files(node):
                if path.stat().st_size:
                    damaged.append({"node": node, "file": str(path),
                                    **self.damage(path, rng)})
        value["damaged"] = damaged
        return value

    def stop(self, ctx: FaultContext, started: dict[str, Any],
             value: dict[str, Any]) -> dict[str, Any]:
        value["nodes"] = ctx.restart_released(self.name, started.get("nodes", []))
        return value
