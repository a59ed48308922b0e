"""election-crash: crash an election's voters between their vote and the winner's first message.

That is the moment at which a vote must already be on disk (Raft persists it before replying).
With every peer link slowed, kill the leader; when the observer shows a new leader, kill it
and every node that holds no entry of its term yet (its voters among them), then restart the
old leader and, `restart_stagger` seconds later, those nodes. The new leader stays down until
the fault ends, and at least `hold` seconds after those restarts. A voter that forgot its
vote may now elect the old leader in the same term: two leaders in one term, which the
election-safety checker finds in the observer's records. A round whose winner was elected
after a split vote (a term past the old leader's next) cannot show that, and is skipped.
"""

from __future__ import annotations

import time
from typing import Any

from harness.faults.base import Fault, FaultContext
from harness.faults.latency import LATENCY_OPTION
from harness.networks.base import LATENCY
from pluginkit.options import Option

ELECTION_LATENCY_MS = (200,)
ELECTION_WAIT = 12.0         # seconds to wait for the next leader
RESTART_STAGGER = 0.4        # seconds between the old leader's restart and the voters'
ELECTION_HOLD = 3.0          # seconds the crashed winner stays down after those restarts


def leader_of(latest: dict[str, dict[str, Any] | None]) -> tuple[str, int] | None:
    """(node, term) of the node reporting itself leader in the highest term, if any."""
    leaders = [(st["term"], node) for node, st in latest.items()
               if st is not None and st.get("role") == "leader"]
    if not leaders:
        return None
    term, node = max(leaders)
    return node, term


class ElectionCrashFault(Fault):
    name = "election-crash"
    START, STOP = "crash-election", "end-election-crash"
    SUMMARY = "crash a new leader's voters before they hear from it (votes must be durable)"
    OPTIONS = (
        LATENCY_OPTION,
        Option("restart_stagger", "float", RESTART_STAGGER, "seconds between the old "
               "leader's restart and its voters'", minimum=0),
        Option("hold", "float", ELECTION_HOLD, "seconds the crashed winner stays down after "
               "the restarts", minimum=0),
    )
    NEEDS = frozenset({"status-probe"})
    NETWORK = frozenset({LATENCY})
    MIN_NODES = 3

    @classmethod
    def plan(cls, nodes, rng, options, setting, aim=None) -> dict[str, Any]:
        stagger, hold = options.get("restart_stagger"), options.get("hold")
        return {"latency_ms": rng.choice(tuple(options.get("latency_ms") or
                                               ELECTION_LATENCY_MS)),
                "restart_stagger": RESTART_STAGGER if stagger is None else float(stagger),
                "hold": ELECTION_HOLD if hold is None else float(hold)}

    def __init__(self):
        self._change = None
        self._hold_until = 0.0

    def start(self, ctx: FaultContext, value: dict[str, Any]) -> dict[str, Any]:
        c, observer = ctx.cluster, ctx.observer
        if observer is None:
            raise RuntimeError(f"{c.system.name} cannot report node status")
        value.setdefault("latency_ms", ELECTION_LATENCY_MS[0])
        value.setdefault("restart_stagger", RESTART_STAGGER)
        value.setdefault("hold", ELECTION_HOLD)
        old = leader_of(observer.latest())
        if old is None:
            value["skipped"] = "no leader"
            return value
        old_node, old_term = old
        self._change = c.network.slow(c.network.peer_links(), value["latency_ms"])
        value["links"] = self._change.describe()
        ctx.hold(self.name, [old_node])
        c.kill(old_node)
        value.update(old_leader=old_node, old_term=old_term, down=[old_node])

        def new_leader(latest):
            found = leader_of({n: st for n, st in latest.items() if n != old_node})
            return found if found and found[1] > old_term else None

        found = observer.wait_for(new_leader, ELECTION_WAIT, cancel=ctx.cancel)
        if found is None:
            value["skipped"] = "no new leader"
            return value
        winner, term = found
        value.update(leader=winner, term=term)
        if term != old_term + 1:
            # A split vote went first: the old leader's next campaign is in a term already
            # past, so this round cannot show a forgotten vote.
            value["skipped"] = f"elected in term {term} after a split vote"
            ctx.restart_released(self.name, [old_node])
            value["down"] = []
            return value
        unaware = sorted(n for n, st in observer.latest().items()
                         if n not in (winner, old_node) and st is not None
                         and (st.get("last_log_term") or 0) < term)
        ctx.hold(self.name, unaware + [winner])
        for node in unaware + [winner]:
            c.kill(node)
        value.update(unaware=unaware, down=[winner])
        ctx.restart_released(self.name, [old_node])
        self._hold_until = time.monotonic() + value["restart_stagger"] + value["hold"]
        if ctx.cancel.wait(value["restart_stagger"]):
            value["down"] += unaware
            return value
        ctx.restart_released(self.name, unaware)
        return value

    def stop(self, ctx: FaultContext, started: dict[str, Any],
             value: dict[str, Any]) -> dict[str, Any]:
        # The restarted voters get their time before the crashed leader comes back.
        ctx.cancel.wait(max(0.0, self._hold_until - time.monotonic()))
        c = ctx.cluster
        if self._change is not None:
            c.network.undo(self._change)
            self._change = None
        value["nodes"] = ctx.restart_released(self.name, started.get("down", []))
        return value
