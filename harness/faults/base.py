"""What a fault kind is: its options, what it needs, how it plans itself and how it acts.

A fault kind is a class (`Fault`) that declares, before any run:
- its name and the two actions it records in the history (Jepsen's nemesis `f`s);
- its options (`pluginkit.options.Option`), read from the test's nemesis options;
- the adapter capabilities it needs (`harness.systems.base.CAPABILITIES`) and the network
  features it needs (`harness.networks.base`), so that a run it cannot take is refused before
  anything starts (`refusal`).

and does three things:
- `plan`: pure, from the nodes, a seeded generator and the options, the details of one
  occurrence (which nodes, which shape, which clock rate), saved in the fault schedule;
- `start`: apply one occurrence to the cluster; returns what was done (targets that depend on
  the cluster's state, such as the leader, resolved now);
- `stop`: undo that occurrence, and nothing else;

and, at the end of a run, `heal`: undo whatever a failed stop left in place.

One instance per kind serves a whole run; occurrences of one kind never overlap (the schedule
gives each kind one lane), so an instance may keep what it needs to undo its last start.

The kinds faultline ships and those plug-ins add are found by name in the registry
(`harness.faults`); this module knows none of them.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pluginkit.options import Option

# Which nodes a node fault picks: one at random, the leader, a minority, a majority, all.
TARGETS = ("one", "leader", "minority")
ALL_TARGETS = TARGETS + ("majority", "all")
TARGETS_OPTION = Option("targets", "str-list", None, "which nodes a fault of nodes picks "
                        "from (default: the kind's own, see `faultline systems`)",
                        choices=ALL_TARGETS)


@dataclass(frozen=True)
class Setting:
    """What a run offers its faults: the nodes, the system's capabilities, the network's
    name and features, the nemesis options given (checked, by name), and the system's
    declared timings and name."""

    nodes: int
    capabilities: frozenset[str]
    network: str
    network_features: frozenset[str]
    options: dict[str, Any] = field(default_factory=dict)
    network_missing: Any = None        # feature -> why the network lacks it (a callable)
    # capability -> why the system cannot use it here (it implements it, a library is absent)
    capability_missing: dict[str, str] = field(default_factory=dict)
    # The clock-rate bound the system's configuration relies on (`clock_drift_bound`).
    clock_drift: float | None = None
    # Seconds the system takes to act on a failed leader (`failure_detection`), or None.
    failure_detection: float | None = None
    # The system's name (None: any system), for a fault kind that acts on one system only.
    system: str | None = None

    def lacks(self, feature: str) -> str:
        """Why the network does not offer `feature`."""
        if self.network_missing is not None:
            return self.network_missing(feature)
        return f"the {self.network} network offers no {feature}"


@dataclass
class FaultContext:
    """What a fault acts on while a run goes: the cluster (processes, network, leader probe),
    the observer of node statuses (or None), a seeded generator for choices made at apply
    time, and an event set when the nemesis stops (long faults wait on it)."""

    cluster: Any
    observer: Any
    rng: random.Random
    cancel: threading.Event
    # node -> the fault kinds keeping it down: a fault that ends restarts only the nodes no
    # other fault still keeps down.
    holds: dict[str, set[str]] = field(default_factory=dict)

    def hold(self, kind: str, nodes: list[str]) -> None:
        """`kind` keeps `nodes` down until it releases them."""
        for node in nodes:
            self.holds.setdefault(node, set()).add(kind)

    def restart_released(self, kind: str, nodes: list[str]) -> list[str]:
        """Release `kind`'s hold on `nodes` and restart (without waiting) those that are
        down and held by no other fault; returns them."""
        free = []
        for node in nodes:
            held = self.holds.get(node, set())
            held.discard(kind)
            if not held and not self.cluster.process(node).running:
                free.append(node)
        for node in free:
            self.cluster.restart(node, wait=False)
        return free

    def up(self, nodes: list[str]) -> list[str]:
        """Those of `nodes` running and not paused: another fault may have taken the rest
        down, and overlapping faults take turns rather than fail."""
        return [n for n in nodes if self.cluster.process(n).running and
                not self.cluster.process(n).paused]

    def nodes_of(self, value: dict[str, Any]) -> list[str]:
        """The nodes a planned value names, the leader resolved now (a random node when
        there is none, as Jepsen does)."""
        if value.get("target") == "leader":
            leader = self.cluster.leader()
            return [leader] if leader else [self.rng.choice(self.cluster.ids)]
        return list(value.get("nodes") or [self.rng.choice(self.cluster.ids)])


class Fault:
    """The base of every fault kind (see the module docstring)."""

    name: ClassVar[str] = ""
    START: ClassVar[str] = ""
    STOP: ClassVar[str] = ""
    SUMMARY: ClassVar[str] = ""
    OPTIONS: ClassVar[tuple[Option, ...]] = ()
    NEEDS: ClassVar[frozenset[str]] = frozenset()      # adapter capabilities
    NETWORK: ClassVar[frozenset[str]] = frozenset()    # network features
    MIN_NODES: ClassVar[int] = 1

    @classmethod
    def refusal(cls, setting: Setting) -> str | None:
        """Why this kind cannot run in `setting`, in one line (None: it can)."""
        for capability in sorted(cls.NEEDS):
            if capability not in setting.capabilities:
                why = setting.capability_missing.get(capability)
                return (f"the {cls.name} fault needs "
                        f"{_CAPABILITY_WORDS.get(capability, capability)}" +
                        (f": {why}" if why else ""))
        for feature in sorted(cls.NETWORK):
            if feature not in setting.network_features:
                return f"the {cls.name} fault: {setting.lacks(feature)}"
        if setting.nodes < cls.MIN_NODES:
            return f"the {cls.name} fault needs at least {cls.MIN_NODES} nodes"
        return None

    @classmethod
    def plan(cls, nodes: list[str], rng: random.Random, options: dict[str, Any],
             setting: Setting, aim: str | None = None) -> dict[str, Any]:
        """The details of one occurrence (pure; JSON data). `aim`, from a combination of
        faults: the partition shape or node target to use instead of drawing one (kinds
        without either ignore it)."""
        raise NotImplementedError

    def start(self, ctx: FaultContext, value: dict[str, Any]) -> dict[str, Any]:
        """Apply one occurrence; returns `value` with what was done."""
        raise NotImplementedError

    def stop(self, ctx: FaultContext, started: dict[str, Any],
             value: dict[str, Any]) -> dict[str, Any]:
        """Undo the occurrence `started` describes (what `start` returned); returns `value`
        with what was done."""
        raise NotImplementedError

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        """At the end of the run, after the nodes are resumed and restarted: undo whatever
        of this kind's doing is still in place (a stop that failed); returns what it did."""
        return {}


_CAPABILITY_WORDS = {
    "leader-probe": "a system that can say which node leads (a leader probe)",
    "status-probe": "a system that reports each node's role and term (a status probe)",
    "clock-control": "a system whose clocks the harness can skew (clock control)",
    "power-loss": "a system that can lose unsynced writes (power loss)",
    "data-files": "a system that names its nodes' data files (data files)",
    "failover": "a system the operator fails over (failover: PostgreSQL)",
}


def plan_targets(nodes: list[str], rng: random.Random, options: dict[str, Any],
                 setting: Setting, defaults: tuple[str, ...] = TARGETS) -> dict[str, Any]:
    """A node fault's target, drawn from the `targets` option (by default from `defaults`,
    the kind's own; the leader only where the system can say which node leads), with the
    nodes it resolves to when they do not depend on the cluster's state."""
    targets = options.get("targets") or [t for t in defaults if t != "leader" or
                                         "leader-probe" in setting.capabilities]
    target = rng.choice(tuple(targets))
    out: dict[str, Any] = {"target": target}
    if target == "one":
        out["nodes"] = [rng.choice(nodes)]
    elif target == "minority":
        out["nodes"] = sorted(rng.sample(nodes, max(1, (len(nodes) - 1) // 2)))
    elif target == "majority":
        out["nodes"] = sorted(rng.sample(nodes, len(nodes) // 2 + 1))
    elif target == "all":
        out["nodes"] = list(nodes)
    return out


def targets_refusal(name: str, setting: Setting) -> str | None:
    """A node fault aimed at the leader of a system that cannot say which node leads."""
    if "leader" in (setting.options.get("targets") or ()) and \
            "leader-probe" not in setting.capabilities:
        return f"the {name} fault's target 'leader' needs {_CAPABILITY_WORDS['leader-probe']}"
    return None


# A fault meant to outlast the system's failure detection is held this many times it: long
# enough for the failure to be acted on (an election, a failover) while the fault still holds.
OUTLAST_DETECTION = (1.5, 3.0)


def held_past_detection(setting: Setting, rng: random.Random) -> float:
    """A duration that outlasts the failure detection `setting` declares (seconds; 0.0 when
    it declares none, so that `max` with a drawn duration leaves that unchanged)."""
    if not setting.failure_detection:
        return 0.0
    return setting.failure_detection * rng.uniform(*OUTLAST_DETECTION)


class NodeFault(Fault):
    """A fault that acts on nodes chosen by the `targets` option (kill, pause, clock,
    power loss): it plans a target, and refuses the leader where nobody can find it."""

    OPTIONS: ClassVar[tuple[Option, ...]] = (TARGETS_OPTION,)
    # What the kind aims at when the test does not say: Jepsen's reach (one node, the
    # leader, a minority, a majority, every node), narrowed per kind to what does damage.
    DEFAULT_TARGETS: ClassVar[tuple[str, ...]] = TARGETS

    @classmethod
    def refusal(cls, setting: Setting) -> str | None:
        return super().refusal(setting) or targets_refusal(cls.name, setting)

    @classmethod
    def plan(cls, nodes: list[str], rng: random.Random, options: dict[str, Any],
             setting: Setting, aim: str | None = None) -> dict[str, Any]:
        if aim is not None:
            options = dict(options, targets=[aim])
        return plan_targets(nodes, rng, options, setting, cls.DEFAULT_TARGETS)
