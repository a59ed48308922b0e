"""Faults on a schedule: generated from the seed as data, applied to a cluster, recorded.

`plan` is pure: from the enabled fault kinds, the nodes, the time limit and the seed it makes a
list of steps (when, what, on which nodes or links). The schedule is saved in test.json, so a
replay applies the same faults at the same moments. Targets that depend on the cluster's state
("the leader") are resolved when the step is applied, and the resolved target is recorded.

`Nemesis` applies a schedule from a thread, recording each step in the history as Jepsen does
(process "nemesis": an `invoke` when the action begins, an `info` when it has been applied),
and `heal_all` ends every fault at the end of a run.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable

from harness import partitions
from harness.network import peer_link

# Fault kind -> (start action, stop action).
ACTIONS = {
    "partition": ("start-partition", "stop-partition"),
    "kill": ("kill", "start"),
    "pause": ("pause", "resume"),
    "clock": ("skew-clock", "reset-clock"),
    "power-loss": ("power-loss", "start"),
    "latency": ("start-latency", "stop-latency"),
    "election-crash": ("crash-election", "end-election-crash"),
}
SHAPES = ("halves", "isolate", "isolate-leader", "majorities-ring", "bridge", "one-way")
TARGETS = ("one", "leader", "minority")
ALL_TARGETS = TARGETS + ("majority", "all")
CLOCK_RATES = (1.0, 0.8, 1.25)
ELECTION_LATENCY_MS = (200,)
ELECTION_WAIT = 12.0         # seconds an election-crash waits for the next leader
RESTART_STAGGER = 0.4        # seconds between the old leader's restart and the voters'
ELECTION_HOLD = 3.0          # seconds the crashed winner stays down after those restarts


def plan(faults: tuple[str, ...], nodes: list[str], time_limit: float, interval: float,
         seed: int, options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The fault schedule: a new fault every `interval` seconds, each lasting 40 to 60% of
    it, none left running at `time_limit`. One fault at a time, unless `options["overlap"]`:
    then each kind has its own cycle, a quarter interval after the previous kind's, so that
    faults of different kinds overlap (a slow clock while the leader is cut off).

    `options` may narrow the choices: "shapes" (partition shapes), "targets", "clock_rates".
    Each step is {"at": seconds, "f": action, "value": details}; details name a partition's
    shape and grudge, a target and the nodes it resolves to when they do not depend on the
    cluster's state, a clock's offset and rate, a latency."""
    options = options or {}
    rng = random.Random(f"{seed}/nemesis")
    steps: list[dict[str, Any]] = []
    if not faults:
        return steps
    lanes = [(faults, 0.0)]
    if options.get("overlap"):
        # `overlap` True staggers the lanes by a quarter interval; a number, by that fraction.
        stagger = 0.25 if options["overlap"] is True else float(options["overlap"])
        lanes = [((kind,), i * interval * stagger) for i, kind in enumerate(faults)]
    for kinds, offset in lanes:
        at = interval / 2 + offset
        while at + interval * 0.6 < time_limit:
            kind = rng.choice(kinds)
            start, stop = ACTIONS[kind]
            value = _details(kind, nodes, rng, options)
            steps.append({"at": round(at, 3), "f": start, "value": value})
            steps.append({"at": round(at + interval * rng.uniform(0.4, 0.6), 3), "f": stop,
                          "value": {"of": start, **_stop_details(value)}})
            at += interval
    steps.sort(key=lambda step: step["at"])
    return steps


def _details(kind: str, nodes: list[str], rng: random.Random,
             options: dict[str, Any]) -> dict[str, Any]:
    if kind == "partition":
        shapes = tuple(options.get("shapes") or SHAPES)
        if len(nodes) < 3:
            shapes = tuple(s for s in shapes if s in ("isolate", "isolate-leader", "one-way")
                           ) or ("isolate",)
        shape = rng.choice(shapes)
        grudge = None
        if shape == "halves":
            grudge = partitions.halves(nodes, rng)
        elif shape == "isolate":
            grudge = partitions.isolate(nodes, rng.choice(nodes))
        elif shape == "majorities-ring":
            grudge = partitions.majorities_ring(nodes, rng)
        elif shape == "bridge":
            grudge = partitions.bridge(nodes, rng)
        elif shape == "one-way":
            src, dst = rng.sample(nodes, 2)
            grudge = partitions.one_way(src, dst)
        out: dict[str, Any] = {"shape": shape, "mode": "drop"}
        if grudge is not None:
            out["grudge"] = partitions.describe(grudge)
        if shape == "isolate-leader" and options.get("slow_link_ms"):
            # One link out of the cut-off leader stays, but slow: its messages arrive long
            # after the others have moved on (a deposed leader heard from late).
            out["slow_link_ms"] = options["slow_link_ms"]
        return out
    if kind == "election-crash":
        return {"latency_ms": rng.choice(tuple(options.get("latency_ms") or
                                               ELECTION_LATENCY_MS)),
                "restart_stagger": float(options.get("restart_stagger", RESTART_STAGGER)),
                "hold": float(options.get("hold", ELECTION_HOLD))}
    if kind == "latency":
        out = {"latency_ms": rng.choice(tuple(options.get("latency_ms") or (20, 50, 100))),
               "jitter_ms": rng.choice([0, 20, 50])}
        if options.get("latency_from"):
            # Only the links out of one node ("leader" or "one"): its messages arrive late.
            out["target"] = rng.choice(tuple(options["latency_from"]))
            if out["target"] == "one":
                out["nodes"] = [rng.choice(nodes)]
        return out
    target = rng.choice(tuple(options.get("targets") or TARGETS))
    out = {"target": target}
    if target == "one":
        out["nodes"] = [rng.choice(nodes)]
    elif target == "minority":
        out["nodes"] = sorted(rng.sample(nodes, max(1, (len(nodes) - 1) // 2)))
    elif target == "majority":
        out["nodes"] = sorted(rng.sample(nodes, len(nodes) // 2 + 1))
    elif target == "all":
        out["nodes"] = list(nodes)
    if kind == "clock":
        low, high = options.get("clock_offsets") or (-2.0, 2.0)
        out["offset"] = round(rng.uniform(low, high), 3)
        out["rate"] = round(rng.choice(tuple(options.get("clock_rates") or CLOCK_RATES)), 3)
    return out


def _leader_of(latest: dict[str, dict[str, Any] | None]) -> tuple[str, int] | None:
    """(node, term) of the node reporting itself leader in the highest term, if any."""
    leaders = [(st["term"], node) for node, st in latest.items()
               if st is not None and st.get("role") == "leader"]
    if not leaders:
        return None
    term, node = max(leaders)
    return node, term


def _stop_details(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k in ("target", "nodes")}


Record = Callable[..., Any]


class Nemesis:
    """Applies a schedule to a cluster from its own thread (see the module docstring)."""

    def __init__(self, cluster, schedule: list[dict[str, Any]], record: Record, seed: int,
                 observer=None):
        self.cluster = cluster
        self.observer = observer       # harness.observer.Observer, for election-crash
        self.schedule = schedule
        self.record = record
        self._rng = random.Random(f"{seed}/nemesis-targets")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        self.active: dict[str, dict[str, Any]] = {}    # start action -> resolved details
        self.errors: list[str] = []
        self._hold_until = 0.0         # an election-crash's end waits for this moment

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
            self.apply(step["f"], step["value"])

    def apply(self, f: str, value: dict[str, Any]) -> None:
        """Apply one action now, recording it (invoke, then info with what was done)."""
        self.record("nemesis", "invoke", f, value=value)
        try:
            done = self._apply(f, dict(value))
        except Exception as exc:       # a fault that cannot be applied is recorded, not fatal
            done = dict(value, error=f"{type(exc).__name__}: {exc}")
            self.errors.append(f"{f}: {exc}")
        self.record("nemesis", "info", f, value=done)

    def _apply(self, f: str, value: dict[str, Any]) -> dict[str, Any]:
        c = self.cluster
        if f == "start-partition":
            slow = None
            if value.get("grudge") is None:          # isolate-leader: resolved now
                leader = c.leader() or self._rng.choice(c.ids)
                grudge = partitions.isolate(c.ids, leader)
                if value.get("slow_link_ms"):
                    follower = self._rng.choice([n for n in c.ids if n != leader])
                    grudge[follower] = grudge[follower] - {leader}
                    slow = (leader, follower)
                value["grudge"] = partitions.describe(grudge)
            grudge = {k: frozenset(v) for k, v in value["grudge"].items()}
            if slow is not None:
                # Slow that link before cutting the others, so that the follower on it never
                # holds entries the rest lack (which would make it the certain next leader).
                value["slow_link"] = c.network.add_toxic(
                    [peer_link(*slow)], "latency", {"latency": value["slow_link_ms"],
                                                    "jitter": 0}, stream="upstream")
            value["links"] = c.network.partition(grudge, mode=value.get("mode", "drop"))
            self.active[f] = value
        elif f in ("stop-partition", "stop-latency"):
            c.network.heal()
            self.active.pop(value.get("of", ""), None)
        elif f == "start-latency":
            links = c.network.peer_links()
            if value.get("target"):
                value["nodes"] = self._resolve(value)
                links = [link for link in links
                         if any(link.startswith(f"{node}_to_") for node in value["nodes"])]
            # "upstream": the direction a link is named for (from its node to the peer).
            c.network.add_toxic(links, "latency", {"latency": value["latency_ms"],
                                                   "jitter": value["jitter_ms"]},
                                stream="upstream")
            self.active[f] = value
        elif f in ("kill", "pause", "power-loss", "skew-clock"):
            nodes = self._resolve(value)
            value["nodes"] = nodes
            for node in nodes:
                if f == "kill":
                    c.kill(node)
                elif f == "pause":
                    c.pause(node)
                elif f == "power-loss":
                    value.setdefault("cut", []).append(c.power_loss(node))
                else:
                    c.set_clock(node, value["offset"], value["rate"])
            self.active[f] = value
        elif f == "crash-election":
            self._crash_election(value)
            self.active[f] = value
        elif f == "end-election-crash":
            # The restarted nodes get their time before the crashed leader comes back.
            self._stop.wait(max(0.0, self._hold_until - time.monotonic()))
            c.network.heal()
            started = self.active.pop(value.get("of", ""), None) or {}
            value["nodes"] = [n for n in started.get("down", []) if not c.process(n).running]
            for node in value["nodes"]:
                c.restart(node, wait=False)
        elif f in ("start", "resume", "reset-clock"):
            started = self.active.pop(value.get("of", ""), None) or {}
            nodes = started.get("nodes", value.get("nodes", []))
            value["nodes"] = nodes
            for node in nodes:
                if f == "start":
                    if not c.process(node).running:
                        c.restart(node, wait=False)
                elif f == "resume":
                    c.resume(node)
                else:
                    c.set_clock(node, 0.0, 1.0)
        else:
            raise ValueError(f"unknown nemesis action {f!r}")
        return value

    def _crash_election(self, value: dict[str, Any]) -> None:
        """Crash an election's voters between their vote and the winner's first message: the
        moment at which a vote must already be on disk (Raft persists it before replying).

        With every peer link slowed by `latency_ms`, kill the leader; when the observer shows
        a new leader, kill it and every node that holds no entry of its term yet (its voters
        among them), then restart the old leader and, `restart_stagger` seconds later, those
        nodes. The new leader stays down until the fault ends, and at least `hold` seconds
        after those restarts. A voter that forgot its vote may now elect the old leader in the
        same term: two leaders in one term. A round whose winner was elected after a split
        vote (a term past the old leader's next) is skipped."""
        c, observer = self.cluster, self.observer
        if observer is None:
            raise RuntimeError(f"{c.system.name} cannot report node status")
        value.setdefault("latency_ms", ELECTION_LATENCY_MS[0])
        value.setdefault("restart_stagger", RESTART_STAGGER)
        value.setdefault("hold", ELECTION_HOLD)
        old = _leader_of(observer.latest())
        if old is None:
            value["skipped"] = "no leader"
            return
        old_node, old_term = old
        value["links"] = c.network.add_toxic(c.network.peer_links(), "latency",
                                             {"latency": value["latency_ms"], "jitter": 0},
                                             stream="upstream")
        c.kill(old_node)
        value.update(old_leader=old_node, old_term=old_term, down=[old_node])

        def new_leader(latest):
            found = _leader_of({n: st for n, st in latest.items() if n != old_node})
            return found if found and found[1] > old_term else None

        found = observer.wait_for(new_leader, ELECTION_WAIT, cancel=self._stop)
        if found is None:
            value["skipped"] = "no new leader"
            return
        winner, term = found
        value.update(leader=winner, term=term)
        if term != old_term + 1:
            # A split vote went first: the old leader's next campaign is in a term already
            # past, so this round cannot show a forgotten vote.
            value["skipped"] = f"elected in term {term} after a split vote"
            c.restart(old_node, wait=False)
            value["down"] = []
            return
        unaware = sorted(n for n, st in observer.latest().items()
                         if n not in (winner, old_node) and st is not None
                         and (st.get("last_log_term") or 0) < term)
        for node in unaware + [winner]:
            c.kill(node)
        value.update(unaware=unaware, down=[winner])
        c.restart(old_node, wait=False)
        self._hold_until = time.monotonic() + value["restart_stagger"] + value["hold"]
        if self._stop.wait(value["restart_stagger"]):
            value["down"] += unaware
            return
        for node in unaware:
            c.restart(node, wait=False)

    def _resolve(self, value: dict[str, Any]) -> list[str]:
        if value.get("target") == "leader":
            leader = self.cluster.leader()
            return [leader] if leader else [self._rng.choice(self.cluster.ids)]
        return list(value.get("nodes") or [self._rng.choice(self.cluster.ids)])

    def heal_all(self) -> None:
        """End every fault: heal the network, resume, restart what is down, reset clocks.
        Recorded like any other step."""
        c = self.cluster
        for f, value in list(self.active.items()):
            if f == "skew-clock":
                self.apply("reset-clock", {"of": f, "nodes": value.get("nodes", [])})
        self.apply("stop-partition", {"of": "start-partition", "final": True})
        paused = [n for n in c.ids if c.process(n).paused]
        if paused:
            self.apply("resume", {"of": "final", "nodes": paused})
        down = c.down()
        if down:
            self.apply("start", {"of": "final", "nodes": down})
        self.active.clear()

