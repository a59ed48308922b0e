"""Fault scenarios that expose each planted bug, scripted against the simulator.

Each scenario drives a `Simulation` through the faults that the bug's entry in
`refnode.config.BUGS` names, with scripted client operations, and returns the simulation. Run
with the bug on, one of the simulator's invariants fires (an `InvariantViolation` is raised,
or recorded when `raise_on_violation` is False, and the history shows the damage); run with
the same configuration minus the bug, every invariant holds. `expose(bug)` picks the scenario
and the configuration; `SCENARIOS` maps each bug to its scenario.

The scenarios are deterministic for a seed but not tied to one: they wait for conditions
(a leader elected, a write acknowledged) rather than for fixed times.
"""

from __future__ import annotations

from collections.abc import Callable

from refnode.config import ClusterConfig
from refnode.core import LEADER
from refnode.sim.simulator import SimOptions, Simulation

NODES = ("n1", "n2", "n3")


def _settled_leader(sim: Simulation, other_than: str | None = None,
                    timeout: float = 5.0) -> str:
    """Run until a leader other than `other_than` has committed its term's first entry."""

    def ready() -> bool:
        leader = sim.leader()
        if leader is None or leader == other_than:
            return False
        core = sim.core(leader)
        entry = core.entry(core.commit_index)
        return entry is not None and entry.term == core.term

    if not sim.run_until_true(ready, timeout):
        raise AssertionError(f"no leader settled within {timeout}s (seed {sim.seed})")
    return sim.leader()


def _followers(sim: Simulation, leader: str) -> list[str]:
    return [n for n in sim.cluster.nodes if n != leader]


def isolated_leader_read(sim: Simulation, read_mode: str = "leader") -> Simulation:
    """Isolate the leader from its followers (clients still reach it); once a new leader has
    acknowledged a write, read from the old one. A stale answer breaks `linearizable-read`.
    Exposes stale-leader-read (`leader` reads) and, with drifting clocks, lease-no-margin."""
    old = _settled_leader(sim)
    writer = sim.new_process()
    sim.complete(sim.invoke(writer, "write", "x", node=old))
    if read_mode == "lease":
        # Cut the leader off just after a heartbeat round renewed its lease, so that the
        # followers last heard it when that round started.
        core = sim.core(old)
        renewed = core.lease_expiry
        sim.run_until_true(lambda: core.lease_expiry > renewed, 1.0)
    sim.apply(["isolate", old])
    new = _settled_leader(sim, other_than=old)
    sim.complete(sim.invoke(writer, "write", "x", node=new))
    sim.apply(["advance", 0.001])                # the read begins strictly after the write
    reader = sim.new_process()
    sim.complete(sim.invoke(reader, "read", "x", read_mode=read_mode, node=old))
    return sim


def drifting_lease_read(sim: Simulation) -> Simulation:
    """Leader clock slow and follower clocks fast, by as much as the drift bound allows; then
    `isolated_leader_read` with `lease` reads. Without the drift margin the old leader's lease
    outlives the followers' stickiness and it serves a stale lease read."""
    bound = sim.cluster.max_clock_drift
    drift = 0.95 * bound / (2 - bound)          # (1 - d) / (1 + d) stays above 1 - bound
    old = _settled_leader(sim)
    for node in sim.cluster.nodes:
        sim.apply(["clock-rate", node, 1 - drift if node == old else 1 + drift])
    sim.apply(["advance", 0.2])                  # lease rounds at the new rates
    return isolated_leader_read(sim, read_mode="lease")


def write_to_isolated_leader(sim: Simulation) -> Simulation:
    """Isolate the leader, write to it, let the others elect a new leader, heal, and read
    back. A write acknowledged by the isolated leader is lost on failover: the async mode's
    documented trade-off, and the early-ack bug in quorum mode (`acked-write-durable`)."""
    old = _settled_leader(sim)
    writer = sim.new_process()
    sim.complete(sim.invoke(writer, "write", "x", node=old))
    sim.apply(["advance", 0.001])
    sim.apply(["isolate", old])
    if writer.retired:
        writer = sim.new_process()
    sim.complete(sim.invoke(writer, "write", "x", node=old))
    elected = lambda: sim.leader() not in (None, old) and (
        sim.core(sim.leader()).term > (sim.core(old).term if sim.core(old) else 0))
    if not sim.run_until_true(elected, 5.0):
        raise AssertionError(f"no new leader within 5s (seed {sim.seed})")
    sim.apply(["heal"])                          # sync mode commits only with every node
    new = _settled_leader(sim, other_than=old)
    sim.apply(["advance", 1.0])
    sim.complete(sim.invoke(sim.new_process(), "read", "x", read_mode="leader", node=new))
    return sim


def stale_append_after_failover(sim: Simulation) -> Simulation:
    """A deposed leader's append of an older term arrives late, after a new leader committed
    entries at the same indexes. Fencing refuses it; without fencing the follower cuts
    committed entries (`committed-not-truncated`).

    One follower (`lagging`) first misses a write, so that only the other one can win the next
    election; then the leader is cut off except for a link to `lagging` that delivers a
    second late, a write goes to the old leader, the other follower wins and commits writes,
    and the old leader's delayed appends reach `lagging`."""
    old = _settled_leader(sim)
    lagging, other = _followers(sim, old)
    writer = sim.new_process()
    sim.apply(["partition", [[old, lagging]]])
    sim.complete(sim.invoke(writer, "write", "x", node=old))
    sim.apply(["heal"])
    sim.apply(["advance", 0.001])
    sim.apply(["slow-link", old, lagging, 2.0])
    sim.apply(["partition", [[old, other], [other, old], [lagging, old]]])
    sim.invoke(sim.new_process(), "write", "x", node=old)      # will end info
    new = _settled_leader(sim, other_than=old)
    for _ in range(3):
        sim.complete(sim.invoke(sim.new_process(), "write", "x", node=new))
    sim.apply(["advance", 3.0])
    return sim


def power_loss_after_ack(sim: Simulation) -> Simulation:
    """Let the OS write back the first term's state, acknowledge a few writes, then cut the
    power of every node at once and restart them all: whatever was acknowledged must still be
    there. Exposes no-fsync."""
    _settled_leader(sim)
    sim.run_until(sim.options.os_flush_interval + 0.05)
    leader = _settled_leader(sim)
    writer = sim.new_process()
    for _ in range(3):
        sim.complete(sim.invoke(writer, "write", "x", node=leader))
        sim.apply(["advance", 0.001])
    for node in sim.cluster.nodes:
        sim.apply(["power-loss", node])
    for node in sim.cluster.nodes:
        sim.apply(["restart", node])
    _settled_leader(sim)
    sim.apply(["advance", 0.5])
    return sim


def cut_off_follower_reads(sim: Simulation) -> Simulation:
    """Cut one follower off from the leader (clients reach everyone); a client writes through
    the leader, then reads from that follower with its session token. Exposes
    follower-ignores-token (`session-guarantee`)."""
    leader = _settled_leader(sim)
    follower = _followers(sim, leader)[0]
    sim.apply(["partition", [[leader, follower], [follower, leader]]])
    session = sim.new_process()
    sim.complete(sim.invoke(session, "write", "x", node=leader))
    sim.apply(["advance", 0.001])
    sim.complete(sim.invoke(session, "read", "x", read_mode="follower", node=follower))
    return sim


def restarted_voter(sim: Simulation) -> Simulation:
    """Two leaders in one term through a forgotten vote: while n2 is down, n1 campaigns and
    wins term 1 with n3's vote; n3 restarts before it hears from n1 (and n1 is cut off from
    it and from n2); n2 comes back and campaigns in term 1 too, its vote request reaching n3
    through a slow link after n3's boot-quiet period. A voter that remembers its vote
    refuses; one that forgot it elects a second leader of term 1 (`election-safety`)."""
    a, b, c = sim.cluster.nodes[:3]
    quiet = sim.cluster.election_timeout_min
    sim.apply(["crash", b])
    sim.apply(["partition", [[a, b]]])
    sim.apply(["slow-link", b, c, 0.9 * quiet])
    sim.run_until(quiet + 0.001)
    sim.apply(["campaign", a])
    if not sim.run_until_true(lambda: sim.core(a).role == LEADER, 1.0):
        raise AssertionError(f"{a} was not elected (seed {sim.seed})")
    sim.apply(["crash", c])
    sim.apply(["partition", [[a, c]]])
    sim.apply(["restart", c])
    sim.apply(["advance", 0.11 * quiet])        # the request lands just after the quiet period
    sim.apply(["restart", b])
    sim.apply(["campaign", b])
    sim.apply(["advance", 2 * quiet])
    return sim


Scenario = Callable[[Simulation], Simulation]

SCENARIOS: dict[str, Scenario] = {
    "stale-leader-read": isolated_leader_read,
    "no-fencing": stale_append_after_failover,
    "early-ack": write_to_isolated_leader,
    "no-fsync": power_loss_after_ack,
    "lease-no-margin": drifting_lease_read,
    "follower-ignores-token": cut_off_follower_reads,
    "forget-vote": restarted_voter,
}


def cluster_for(bug: str, *, bugs: frozenset[str] | set[str] | None = None,
                replication: str = "quorum") -> ClusterConfig:
    """The configuration `expose(bug)` runs: three nodes, default timings except where the
    scenario needs room (lease-no-margin: a drift bound of 0.3, election timeouts of
    0.3-0.4 s, a 20 ms heartbeat; forget-vote: election timeouts of 1-3 s). `bugs` defaults
    to {bug}; pass an empty set for the safe twin."""
    changes: dict = {}
    if bug == "lease-no-margin":
        changes = {"max_clock_drift": 0.3, "election_timeout_max": 0.4,
                   "heartbeat_interval": 0.02}
    elif bug == "forget-vote":
        changes = {"election_timeout_min": 1.0, "election_timeout_max": 3.0}
    return ClusterConfig(nodes=NODES, replication=replication,
                         bugs=frozenset({bug} if bugs is None else bugs), **changes)


def expose(bug: str, *, seed: int = 0, bugs: frozenset[str] | set[str] | None = None,
           replication: str = "quorum", options: SimOptions | None = None) -> Simulation:
    """Run the scenario that exposes `bug` (with `bugs`, default {bug}, switched on) and
    return the simulation. Options default to no background clients."""
    if bug not in SCENARIOS:
        raise ValueError(f"no scenario for {bug!r}; scenarios: {', '.join(SCENARIOS)}")
    options = options or SimOptions(clients=0)
    sim = Simulation(cluster_for(bug, bugs=bugs, replication=replication), seed, options)
    return SCENARIOS[bug](sim)
