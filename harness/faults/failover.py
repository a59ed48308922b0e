"""failover: the operator's failover, for systems that do not fail over by themselves.

Start: the leader is fenced (SIGKILLed, and its data marked so that it can come back only as
a follower) and a follower that is up is promoted, as an operator or a failover manager
(Patroni, repmgr) does when it holds the leader dead. When no node answers as leader (it is
down or paused by another fault), the nodes that are not up are taken for it: a failover
manager promotes precisely then. Stop: the old leader's data is rebuilt as a follower of the
new leader, and it is started again (unless another fault still keeps it down). What the old
leader had acknowledged that its follower had not received is gone: with asynchronous
replication, the checkers find it lost.
"""

from __future__ import annotations

from typing import Any

from harness.faults.base import Fault, FaultContext

REJOIN_READY = 15.0       # seconds a node has to take connections before it is promoted or
                          # its data copied


class FailoverFault(Fault):
    name = "failover"
    START, STOP = "failover", "rejoin"
    SUMMARY = "fence the leader (SIGKILL), promote a follower; then rebuild the old leader " \
              "as its follower"
    NEEDS = frozenset({"failover", "leader-probe"})
    MIN_NODES = 2

    @classmethod
    def plan(cls, nodes, rng, options, setting, aim=None) -> dict[str, Any]:
        # Which node leads, and which followers are up, is only known when it starts.
        return {}

    def __init__(self):
        self._pending: tuple[list[str], str] | None = None     # (old leaders, new leader)

    def start(self, ctx: FaultContext, value: dict[str, Any]) -> dict[str, Any]:
        cluster = ctx.cluster
        if self._pending is not None:
            # The last failover's old leader could not be rebuilt when it ended (its new
            # leader was down): rebuild it now, and leave this occurrence at that.
            old, new = self._pending
            rebuilt = self._rejoin(ctx)
            value["skipped"] = ("rebuilt the last failover's old leader instead" if rebuilt
                                else "the last failover's old leader is not rebuilt yet")
            if rebuilt:
                value.update(rejoined=ctx.restart_released(self.name, old), following=new)
            return value
        leader = cluster.leader()
        up = ctx.up(cluster.ids)
        old = [leader] if leader else [n for n in cluster.ids if n not in up]
        candidates = [n for n in up if n not in old]
        if not old or not candidates:
            value["skipped"] = ("no leader, and every node is up" if not old else
                                "no follower is up to promote")
            return value
        new = ctx.rng.choice(candidates)
        ctx.hold(self.name, old)
        for node in old:
            if cluster.process(node).running:
                cluster.kill(node)
        # Fenced before the promotion: from here on the old leaders come back only as
        # followers, rebuilt, whatever becomes of the promotion.
        self._pending = (old, new)
        for node in old:
            cluster.system.fence(cluster.layout.node(node), cluster.layout)
        promoted, why = _promote(cluster, new)
        if promoted is False:
            # Certainly nothing was promoted: the old leaders come back as they were.
            self._pending = None
            for node in old:
                cluster.system.unfence(cluster.layout.node(node), cluster.layout)
            ctx.restart_released(self.name, old)
            raise RuntimeError(f"{new} was not promoted ({why}); {', '.join(old)} restarted "
                               f"as before")
        if promoted is None:
            # It may yet finish promoting: bringing an old leader back could make two.
            raise RuntimeError(f"{new}: {why}; {', '.join(old)} kept fenced, to be rebuilt "
                               f"once {new} leads")
        value.update(nodes=old, promoted=new)
        return value

    def stop(self, ctx: FaultContext, started: dict[str, Any],
             value: dict[str, Any]) -> dict[str, Any]:
        if self._pending is None:
            return value
        old, new = self._pending
        if not self._rejoin(ctx):
            value["deferred"] = f"{new}, the new leader, is not up or does not lead: " \
                                f"{', '.join(old)} stays down"
            return value
        value["nodes"] = ctx.restart_released(self.name, old)
        value["following"] = new
        return value

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        """An old leader whose rebuild failed (its new leader was down then) is rebuilt now
        and started."""
        if self._pending is None:
            return {}
        old, new = self._pending
        if not self._rejoin(ctx):
            raise RuntimeError(f"{', '.join(old)} not rebuilt: {new}, the new leader, is "
                               f"not up or does not lead")
        for node in old:
            if not ctx.cluster.process(node).running:
                ctx.cluster.restart(node, wait=False)
        return {"rejoined": old, "following": new}

    def _rejoin(self, ctx: FaultContext) -> bool:
        """Rebuild each old leader as a follower of the new one (killing it first if another
        fault restarted it meanwhile: as fenced, it came back a follower that cannot follow).
        False, and nothing done, while the new leader is down or paused (another fault), or
        does not lead (its promotion never finished): its data cannot be copied then, and the
        old leader waits for a later try."""
        old, new = self._pending
        cluster = ctx.cluster
        if not ctx.up([new]):
            return False
        cluster.wait_ready([new], REJOIN_READY)     # a leader just restarted is recovering
        if cluster.leader() != new:                 # a promotion that never finished
            return False
        for node in old:
            if cluster.process(node).running:
                cluster.kill(node)
            cluster.system.follow(cluster.layout.node(node), cluster.layout.node(new),
                                  cluster.layout)
        self._pending = None
        return True


def _promote(cluster, new: str) -> tuple[bool | None, str]:
    """Promote `new`: (True, "") once it leads; (False, why) when it certainly does not
    (it never became ready, or says it is a follower still); (None, why) when that is not
    known (it may yet finish promoting)."""
    try:
        # A follower just restarted (by a rebuild, or another fault) is still recovering.
        cluster.wait_ready([new], REJOIN_READY)
    except Exception as exc:
        return False, f"not ready: {type(exc).__name__}: {exc}"
    try:
        promoted = cluster.system.promote(cluster.layout.node(new), cluster.layout)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if promoted is None:
        return None, "it does not say whether it was promoted"
    return bool(promoted), "" if promoted else "it is a follower still"
