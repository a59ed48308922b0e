"""Faults on a schedule: generated from the seed as data, applied to a cluster, recorded.

`plan` is pure: from the enabled fault kinds (found by name in `harness.faults`, plug-ins
included), the nodes, the time limit and the seed it makes a list of steps (when, which kind,
which action, on which nodes or links).
The schedule is saved in test.json, so a replay applies the same faults at the same moments.
Targets that depend on the cluster's state ("the leader") are resolved when the step is
applied, and the resolved target is recorded.

`Nemesis` applies a schedule from a thread, recording each step in the history as Jepsen does
(process "nemesis": an `invoke` when the action begins, an `info` when it has been applied,
with an `error` when it could not be), counts what each kind did (`report`), and `heal_all`
ends every fault at the end of a run: each kind undoes its own, then a sweep restores anything
left (the network, paused and stopped nodes).
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable, Iterable

from harness import faults as registry
from harness.faults import combinations
from harness.faults.base import FaultContext, Setting, held_past_detection
from harness.faults.steps import occurrence, stop_details
from pluginkit.options import Option, OptionError, parse_assignments

OVERLAP = Option("overlap", "float", None, "faults of different kinds at once: each kind "
                 "its own cycle, started this fraction of an interval after the previous "
                 "kind's (default, and true: 0.25; false: one fault at a time)", minimum=0)
DEFAULT_OVERLAP = 0.25
HEAL = "heal"                # the final sweep's action in the history


def declared_options(kinds: Iterable[str] | None = None) -> dict[str, Option]:
    """The nemesis options of the given fault kinds (when None, of every kind that loads,
    plug-ins included), and the scheduler's own, by name. UnknownFault or BrokenFault
    (`harness.faults.find`) for a kind given that is not one."""
    declared = {OVERLAP.name: OVERLAP}
    classes = registry.classes() if kinds is None else \
        {kind: registry.find(kind) for kind in kinds}
    for cls in classes.values():
        for option in cls.OPTIONS:
            declared[option.name] = option
    return declared


def resolve_options(kinds: Iterable[str], given: dict[str, Any],
                    flag: str = "nemesis option") -> dict[str, Any]:
    """The nemesis options `given`, checked: each must belong to one of `kinds` (or to the
    scheduler) and have a value its declaration accepts. Returns the checked values (only
    those given; each kind applies its own defaults)."""
    kinds = list(kinds)
    mine = declared_options(kinds)
    everyone = declared_options()
    checked: dict[str, Any] = {}
    for name, value in given.items():
        if name not in everyone:
            raise OptionError(f"unknown {flag} {name!r}; options: "
                              f"{', '.join(sorted(everyone))}")
        if name not in mine:
            owners = [kind for kind, cls in registry.classes().items()
                      if any(o.name == name for o in cls.OPTIONS)]
            raise OptionError(f"{flag} {name} is for the {' and '.join(owners)} fault, which "
                              f"the test's faults ({', '.join(kinds) or 'none'}) do not include")
        if name == OVERLAP.name and isinstance(value, bool):
            # `overlap = true` in TOML: the default stagger; false: one fault at a time.
            checked[name] = DEFAULT_OVERLAP if value else False
            continue
        checked[name] = mine[name].check(value, f"{flag} ")
    return checked


def parse_options(texts: Iterable[str], flag: str = "--nemesis-opt") -> dict[str, Any]:
    """`['shapes=isolate,halves', 'overlap=true']` from the command line, typed by the
    declarations of every fault kind (`overlap=true` stands for the default stagger, as
    `overlap = true` does in a TOML file)."""
    texts = list(texts)
    plain = [t for t in texts if t.partition("=")[0].strip() != OVERLAP.name]
    values = parse_assignments(plain, declared_options().values(), flag)
    for text in texts:
        if text.partition("=")[0].strip() == OVERLAP.name:
            word = text.partition("=")[2].strip().lower()
            if word in ("true", "false"):
                values[OVERLAP.name] = word == "true"
            else:
                values[OVERLAP.name] = OVERLAP.parse(word, f"{flag} ")
    return values


def full_setting(nodes: int) -> Setting:
    """A setting with every capability and network feature (for planning without a run)."""
    from harness.networks.base import LATENCY, PARTITION, REFUSE
    from harness.systems.base import CAPABILITIES

    return Setting(nodes, frozenset(CAPABILITIES), "proxy",
                   frozenset({PARTITION, REFUSE, LATENCY}))


# A fault's gap to the next of its lane, as a share of the interval, and its duration, as a
# share of that gap: drawn, so that one run holds faults shorter and longer than the system's
# failure detection (a pause the leader survives, one that costs it its leadership).
GAP_RANGE = (0.6, 1.4)
FAULT_SHARE_RANGE = (0.25, 0.85)
# Where the system declares how long it takes to act on a failed leader, this share of the
# faults is held past that (and its gap widened to fit): a drawn duration is as often shorter
# as longer than an election, and a fault that ends before one is noticed says little about
# failover. Measured on refnode's stale leader reads (docs/benchmarks.md).
OUTLASTING_SHARE = 0.5


def plan(faults: tuple[str, ...], nodes: list[str], time_limit: float, interval: float,
         seed: int, options: dict[str, Any] | None = None,
         setting: Setting | None = None) -> list[dict[str, Any]]:
    """The fault schedule: faults about every `interval` seconds (each gap drawn from 0.6 to
    1.4 intervals), each lasting a quarter to most of its gap, none left running at
    `time_limit`; where `setting` declares the system's failure detection, half of them held
    past it instead (1.5 to 3 times it; a combination always). With several kinds, each kind
    has its own cycle, started a fraction of an interval (`options["overlap"]`, default 0.25)
    after the previous kind's, so that faults of different kinds overlap as in Jepsen's
    combined nemeses, and some cycles of a kind that opens a combination
    (`harness.faults.combinations`: the leader cut off then the new leader killed, ...) become one
    (half of them, shared out among the combinations that apply); `overlap = false` runs one
    fault at a time instead, without combinations. Occurrences of one kind never overlap, and
    a combination runs alone: lone faults it would overlap are dropped. The same seed gives
    the same schedule for the same system configuration (a change of its failure detection
    changes the schedule).

    Each step is {"at": seconds, "fault": kind, "f": action, "value": details}, and
    "combination": its name for the steps of one; each kind plans its own details
    (`Fault.plan`) from `options`, within what `setting` offers. UnknownFault or BrokenFault
    (`harness.faults.find`) for a kind in `faults` that is not one."""
    options = options or {}
    setting = setting or full_setting(len(nodes))
    rng = random.Random(f"{seed}/nemesis")
    if not faults:
        return []
    classes = {kind: registry.find(kind) for kind in faults}
    stagger = options.get("overlap")
    if stagger is None and len(faults) > 1:
        stagger = DEFAULT_OVERLAP
    lanes = [(faults, 0.0)]
    combos: list[combinations.Combination] = []
    if stagger is not None and stagger is not False:
        lanes = [((kind,), i * interval * float(stagger)) for i, kind in enumerate(faults)]
        combos = [c for c in combinations.COMBINATIONS if c.applies(faults, options, setting)]
    episodes: list[tuple[bool, list[dict[str, Any]], list[tuple[str, float, float]]]] = []
    for kinds, offset in lanes:
        at = interval / 2 + offset
        while True:
            gap = interval * rng.uniform(*GAP_RANGE)
            duration = gap * rng.uniform(*FAULT_SHARE_RANGE)
            if setting.failure_detection and rng.random() < OUTLASTING_SHARE:
                duration = max(duration, held_past_detection(setting, rng))
                gap = max(gap, duration / FAULT_SHARE_RANGE[1])
            if at + duration >= time_limit:
                break
            kind = rng.choice(kinds)
            opening = [c for c in combos if c.first == kind]
            # Shared out among the combinations that apply: with several, each is rarer,
            # and lone overlapping faults keep about half the run.
            if opening and rng.random() < combinations.SHARE / len(combos):
                steps, spans = rng.choice(opening).plan(at, gap, nodes, rng, options, setting)
                end = max(end for _, _, end in spans)
                if end < time_limit:
                    episodes.append((True, steps, spans))
                    at += max(gap, (end - at) / FAULT_SHARE_RANGE[1])
                    continue
            value = classes[kind].plan(nodes, rng, options, setting)
            episodes.append((False, occurrence(kind, value, at, at + duration),
                             [(kind, at, at + duration)]))
            at += gap
    steps = [step for _, episode_steps, _ in _one_at_a_time_per_kind(episodes)
             for step in episode_steps]
    steps.sort(key=lambda step: step["at"])
    return steps


def _one_at_a_time_per_kind(episodes):
    """The episodes to keep so that no two occurrences of one kind overlap and nothing else
    runs during a combination: combinations first (they are the rarer and the more telling),
    then lone faults, each in time order."""
    kept, busy, combined = [], [], []
    for episode in sorted(episodes, key=lambda e: (not e[0], e[2][0][1])):
        is_combination, _, spans = episode
        start = min(s for _, s, _ in spans)
        end = max(e for _, _, e in spans)
        if any(kind == k and s0 <= e and s <= e0
               for kind, s0, e0 in spans for k, s, e in busy):
            continue
        if not is_combination and any(s <= end and start <= e for s, e in combined):
            continue
        kept.append(episode)
        busy.extend(spans)
        if is_combination:
            combined.append((start, end))
    return kept


def describe_plan(schedule: list[dict[str, Any]]) -> list[str]:
    """The schedule as a person reads it before a run: per kind, how many faults, aimed at
    what (partition shapes, node targets), and how long they are held."""
    if not schedule:
        return ["fault plan: no faults"]
    kinds: dict[str, dict[str, Any]] = {}
    opened: dict[str, float] = {}
    for step in schedule:
        kind = kind_of(step)
        entry = kinds.setdefault(kind, {"aims": {}, "held": []})
        if step["f"] == registry.find(kind).START:
            value = step.get("value", {})
            aim = value.get("shape") or value.get("target") or "-"
            if value.get("slow_link_ms"):
                aim += " with a slow link"
            entry["aims"][aim] = entry["aims"].get(aim, 0) + 1
            opened[kind] = step["at"]
        elif kind in opened:
            entry["held"].append(step["at"] - opened.pop(kind))
    count = sum(sum(e["aims"].values()) for e in kinds.values())
    lines = [f"fault plan: {count} faults, the first at {schedule[0]['at']:g} s"]
    for kind, entry in kinds.items():
        aims = ", ".join(f"{aim} x{n}" for aim, n in
                         sorted(entry["aims"].items(), key=lambda kv: -kv[1]))
        held = entry["held"]
        span = f"; held {min(held):.1f} to {max(held):.1f} s" if held else ""
        lines.append(f"  {kind} x{sum(entry['aims'].values())}: {aims}{span}")
    combined: dict[str, int] = {}
    for step in schedule:
        combo = combinations.opened(step.get("combination"), kind_of(step), step["f"])
        if combo is not None:
            combined[combo.name] = combined.get(combo.name, 0) + 1
    for name, count in combined.items():
        lines.append(f"  combined x{count}: {combinations.BY_NAME[name].words} ({name}; "
                     f"counted above too)")
    return lines


def kind_of(step: dict[str, Any]) -> str:
    """The fault kind of a step (schedules stored before steps named their kind are read by
    their actions: a start's `f`, a stop's `of`; those were all built-in kinds)."""
    if "fault" in step:
        return step["fault"]
    action = step.get("value", {}).get("of", step["f"])
    for kind in registry.BUILTIN:
        if registry.find(kind).START == action:
            return kind
    raise ValueError(f"unknown nemesis action {step['f']!r}")


Record = Callable[..., Any]


class Nemesis:
    """Applies a schedule to a cluster from its own thread (see the module docstring)."""

    def __init__(self, cluster, schedule: list[dict[str, Any]], record: Record, seed: int,
                 observer=None, requested: Iterable[str] = ()):
        self.cluster = cluster
        self.schedule = schedule
        self.record = record
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        self.ctx = FaultContext(cluster, observer, random.Random(f"{seed}/nemesis-targets"),
                                self._stop)
        kinds = list(dict.fromkeys([*requested, *(kind_of(s) for s in schedule)]))
        self.faults = {kind: registry.find(kind)() for kind in kinds}
        self.active: dict[str, dict[str, Any]] = {}     # kind -> what its start did
        self._tally = {kind: {"planned": sum(1 for s in schedule if kind_of(s) == kind and
                                             s["f"] == self.faults[kind].START),
                              "applied": 0, "skipped": [], "errors": [], "aims": {},
                              "nodes": {}, "combined": {}} for kind in kinds}

    def start(self, started_at: float) -> None:
        """Run the schedule; `started_at` is the monotonic time the step times count from."""
        self._started_at = started_at
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop applying the schedule (steps not yet due are skipped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        for step in self.schedule:
            delay = self._started_at + step["at"] - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            if self._stop.is_set():
                return
            self.apply(kind_of(step), step["f"], step["value"], step.get("combination"))

    def apply(self, kind: str, f: str, value: dict[str, Any],
              combination: str | None = None) -> dict[str, Any]:
        """Apply one action of `kind` now, recording it (invoke, then info with what was
        done, or with an `error`); returns what was recorded. `combination`: the name of the
        combination the step belongs to (counted, with the kind that opens it)."""
        fault = self.faults[kind]
        tally = self._tally[kind]
        self.record("nemesis", "invoke", f, value=value)
        done = dict(value)
        try:
            if f == fault.START:
                # Kept before it is done: a start that fails halfway is still undone.
                self.active[kind] = done
                done = fault.start(self.ctx, done)
                self.active[kind] = done
                if done.get("skipped"):
                    tally["skipped"].append(done["skipped"])
                else:
                    tally["applied"] += 1
                    _count_aim(tally, done, self.cluster.ids)
                    combo = combinations.opened(combination, kind, f)
                    if combo is not None:
                        tally["combined"][combo.name] = tally["combined"].get(combo.name, 0) + 1
            else:
                started = self.active.pop(kind, None) or value
                done = fault.stop(self.ctx, started, done)
        except Exception as exc:       # a fault that cannot be applied is recorded, not fatal
            done = dict(done, error=f"{type(exc).__name__}: {exc}")
            tally["errors"].append(f"{f}: {type(exc).__name__}: {exc}")
        self.record("nemesis", "info", f, value=done)
        return done

    def heal_all(self) -> None:
        """End every fault: each active kind undoes its own, then a sweep heals the network,
        resumes paused nodes, restarts stopped ones, and lets each kind undo what its stops
        could not (`Fault.heal`). Recorded like any other step."""
        for kind, started in list(self.active.items()):
            fault = self.faults[kind]
            self.apply(kind, fault.STOP, {"of": fault.START, "final": True,
                                          **stop_details(started)})
        self.record("nemesis", "invoke", HEAL, value={"final": True})
        found: dict[str, Any] = {"final": True}
        steps = [self._heal_network, self._resume_paused, self._restart_down,
                 *(lambda f=fault: f.heal(self.ctx) for fault in self.faults.values())]
        for step in steps:          # each tried, whatever the one before it did
            try:
                found.update(step())
            except Exception as exc:
                found.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}")
        self.ctx.holds.clear()
        self.record("nemesis", "info", HEAL, value=found)
        self.active.clear()

    def _heal_network(self) -> dict[str, Any]:
        network = self.cluster.network
        left = [link for change in network.active() for link in change.describe()]
        network.heal()
        return {"network": left} if left else {}

    def _resume_paused(self) -> dict[str, Any]:
        paused = [n for n in self.cluster.ids if self.cluster.process(n).paused]
        for node in paused:
            self.cluster.resume(node)
        return {"resumed": paused}

    def _restart_down(self) -> dict[str, Any]:
        down = self.cluster.down()
        for node in down:
            self.cluster.restart(node, wait=False)
        return {"restarted": down}

    def report(self) -> dict[str, dict[str, Any]]:
        """Per fault kind: how many occurrences were planned, applied, skipped (with why),
        and every error, start or stop; what they aimed at and which nodes they hit; and how
        many of the combinations this kind opens were applied. A kind requested but never
        applied shows 0."""
        return {kind: {"planned": t["planned"], "applied": t["applied"],
                       "skipped": len(t["skipped"]), "skip_reasons": sorted(set(t["skipped"])),
                       "errors": list(t["errors"]), "aims": dict(t["aims"]),
                       "nodes": dict(sorted(t["nodes"].items())),
                       "combined": dict(t["combined"])}
                for kind, t in self._tally.items()}


def _count_aim(tally: dict[str, Any], done: dict[str, Any], ids: list[str]) -> None:
    """Count what an applied fault aimed at (its shape or target) and the nodes it hit (a
    node fault's nodes; a partition's nodes that hear from none of the others in `ids`)."""
    aim = done.get("shape") or done.get("target")
    if aim:
        tally["aims"][aim] = tally["aims"].get(aim, 0) + 1
    hit = list(done.get("nodes") or [])
    grudge = done.get("grudge")
    if not hit and isinstance(grudge, dict):
        everyone = set(ids)
        hit = [node for node, blocked in grudge.items()
               if set(blocked) >= everyone - {node}]
    for node in hit:
        tally["nodes"][node] = tally["nodes"].get(node, 0) + 1
