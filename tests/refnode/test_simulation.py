"""refnode in deterministic simulation: safe configurations pass every invariant and every
history check under random faults; every planted bug is caught; async mode loses
acknowledged writes on failover while quorum and sync never do; Hypothesis drives fault
schedules and shrinks failures to schedules that replay from their seed.

Larger sweeps are marked `slow`."""

from __future__ import annotations

from dataclasses import replace as dc_replace
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, precondition, rule,
                                 run_state_machine_as_test)

from checkers.history import Op
from checkers.linearizability import check_linearizable
from checkers.lost_writes import check_register_lost_writes, check_set_full
from checkers.models import make_model
from checkers.session import check_session
from refnode.config import BUGS, READ_MODES, REPLICATION_MODES, ClusterConfig
from refnode.core import Effects, HardState
from refnode.messages import Entry
from refnode.sim import (INVARIANTS, FaultOptions, InvariantViolation, LivenessViolation,
                         SimOptions, Simulation, SimulationFailure, replay, run_random)
from refnode.sim.clock import SimClock
from refnode.sim.disk import SimDisk
from refnode.sim.invariants import ACKED_WRITE_DURABLE
from refnode.sim.scenarios import SCENARIOS, expose, write_to_isolated_leader

NODES3 = ("n1", "n2", "n3")
NODES5 = ("n1", "n2", "n3", "n4", "n5")
REGISTERS = ("r0", "r1", "r2")
SAFE = [(mode, read_mode) for mode in REPLICATION_MODES for read_mode in READ_MODES]

# What each planted bug breaks first in its scenario.
CAUGHT_BY = {
    "stale-leader-read": "linearizable-read",
    "no-fencing": "committed-not-truncated",
    "early-ack": "acked-write-durable",
    "no-fsync": "acked-write-durable",
    "lease-no-margin": "linearizable-read",
    "follower-ignores-token": "session-guarantee",
    "forget-vote": "election-safety",
}


def ops(history, keys=None):
    """History events as checker Ops, optionally only those of some keys (and the nemesis)."""
    return [Op(**e) for e in history
            if keys is None or e["process"] == "nemesis" or e["key"] in keys]


def faults_for(read_mode: str) -> FaultOptions:
    """The default nemesis; clock jumps too, except where leases need monotonic clocks."""
    weights = FaultOptions().weights
    if read_mode != "lease":
        weights += (("clock-jump", 0.5),)
    return FaultOptions(weights=weights)


def check_history(sim: Simulation) -> None:
    """What the replication mode promises, checked on the recorded history."""
    history = sim.history
    mode, read_mode = sim.cluster.replication, sim.options.read_mode
    ok = [e for e in history if e["type"] == "ok"]
    assert ok, "the run did nothing"
    if mode == "async":
        return
    session = check_session(ops(history))
    assert session.valid is True, session.summary
    if read_mode in ("leader", "lease"):
        linear = check_linearizable(ops(history, REGISTERS), make_model("cas-register"))
        assert linear.valid is True, (linear.summary, linear.counterexample)
        sets = check_set_full(ops(history, {"s0"}))
        assert sets.valid is not False, (sets.summary, sets.counterexample)


def safe_run(mode, read_mode, seed, nodes=NODES3, duration=3.0):
    cluster = ClusterConfig(nodes=nodes, replication=mode)
    options = SimOptions(read_mode=read_mode, faults=faults_for(read_mode))
    sim = run_random(cluster, seed, duration=duration, options=options)
    check_history(sim)
    return sim


# --- safe configurations under random faults ---------------------------------------------------

@pytest.mark.parametrize("mode, read_mode", SAFE)
@pytest.mark.parametrize("seed", range(10))
def test_safe_configurations_pass_under_random_faults(mode, read_mode, seed):
    sim = safe_run(mode, read_mode, seed)
    assert sim.stats["faults"] > 3


@pytest.mark.parametrize("mode", REPLICATION_MODES)
def test_five_nodes_pass_under_random_faults(mode):
    for seed in range(2):
        safe_run(mode, "leader", seed, nodes=NODES5)


@pytest.mark.slow
@pytest.mark.parametrize("mode, read_mode", SAFE)
def test_safe_configurations_pass_many_seeds(mode, read_mode):
    for seed in range(100, 300):
        safe_run(mode, read_mode, seed, duration=4.0)
    for seed in range(100, 140):
        safe_run(mode, read_mode, seed, nodes=NODES5, duration=4.0)


def test_a_run_is_a_function_of_its_seed():
    def run(seed):
        sim = run_random(ClusterConfig(nodes=NODES3), seed, duration=2.0)
        return sim.history, sim.summary(), sim.fault_log

    assert run(11) == run(11)
    assert run(11)[0] != run(12)[0]


def test_an_explicit_schedule_replays_exactly():
    schedule = [["advance", 0.6], ["isolate-leader"], ["advance", 0.4], ["crash", "n2"],
                ["clock-rate", "n3", 1.01], ["advance", 0.3], ["heal"], ["restart", "n2"],
                ["deliver-next"], ["drop-next"], ["invoke", "write", "r0", None, "n1"],
                ["advance", 0.5]]
    cluster = ClusterConfig(nodes=NODES3)
    first = replay(cluster, 3, schedule)
    second = replay(cluster, 3, schedule)
    assert first.history == second.history and first.actions == schedule
    first.check_liveness()


def test_the_history_follows_faultlines_format():
    sim = run_random(ClusterConfig(nodes=NODES3), 2, duration=1.5)
    history = sim.history
    assert [e["index"] for e in history] == list(range(len(history)))
    assert all(isinstance(e["time"], int) for e in history)
    times = [e["time"] for e in history]
    assert times == sorted(times)
    open_ops: dict = {}
    retired = set()
    for e in history:
        if e["process"] == "nemesis":
            continue
        assert e["process"] not in retired
        if e["type"] == "invoke":
            assert e["process"] not in open_ops
            open_ops[e["process"]] = e
        else:
            invoke = open_ops.pop(e["process"])
            assert (invoke["f"], invoke["key"]) == (e["f"], e["key"])
            if e["type"] == "ok":
                assert isinstance(e["version"], int) and e["node"] in NODES3
            else:
                assert e["error"]
            if e["type"] == "info":
                retired.add(e["process"])
    assert any(e["process"] == "nemesis" for e in history)
    writes = [e["value"] for e in history if e["type"] == "invoke" and e["f"] in ("write", "add")]
    assert len(writes) == len(set(writes))


def test_violations_name_the_invariant_the_seed_and_the_step():
    with pytest.raises(InvariantViolation) as info:
        expose("stale-leader-read", seed=4)
    failure = info.value
    assert failure.invariant == "linearizable-read" and failure.seed == 4
    assert f"step {failure.step}" in str(failure) and "seed 4" in str(failure)
    assert "'linearizable-read'" in str(failure)
    assert failure.schedule and failure.schedule[0][0] == "isolate"


def test_a_cluster_that_makes_no_progress_fails_the_liveness_phase():
    sim = Simulation(ClusterConfig(nodes=NODES3), 1, SimOptions(clients=0))
    with pytest.raises(LivenessViolation) as info:
        sim.check_liveness(bound=0.05)                   # no election can finish this fast
    assert info.value.invariant == "liveness"
    assert sim.check_liveness(bound=5.0) < 5.0


# --- planted bugs are caught, their safe twins pass ----------------------------------------------

@pytest.mark.parametrize("bug", sorted(BUGS))
@pytest.mark.parametrize("seed", range(3))
def test_every_planted_bug_is_caught_by_an_invariant(bug, seed):
    with pytest.raises(InvariantViolation) as info:
        expose(bug, seed=seed)
    assert info.value.invariant == CAUGHT_BY[bug]
    expose(bug, seed=seed, bugs=set())                   # the same faults, the bug off: passes


def _buggy_history(bug, seed=0):
    options = SimOptions(clients=0, raise_on_violation=False)
    sim = expose(bug, seed=seed, options=options)
    assert {v.invariant for v in sim.violations} >= {CAUGHT_BY[bug]}
    return sim


@pytest.mark.parametrize("bug", ["stale-leader-read", "lease-no-margin"])
def test_stale_reads_show_in_the_history_as_non_linearizable(bug):
    result = check_linearizable(ops(_buggy_history(bug).history), make_model("cas-register"))
    assert result.valid is False


def test_ignored_session_tokens_show_in_the_history():
    result = check_session(ops(_buggy_history("follower-ignores-token").history))
    assert result.valid is False and result.figures["violations"]["read-your-writes"] == 1


@pytest.mark.parametrize("bug", ["early-ack", "no-fsync"])
def test_lost_acknowledged_writes_show_in_the_history(bug):
    sim = _buggy_history(bug)
    sim.complete(sim.invoke(sim.new_process(), "read", "x", node=sim.leader()))
    assert check_register_lost_writes(ops(sim.history)).valid is False


def _outcome(bug, seed, bugs=None):
    """'caught' (an invariant fired), 'passed', or 'no-setup' (the scenario's timing did not
    work out for this seed, e.g. an unexpected election)."""
    try:
        expose(bug, seed=seed, bugs=bugs)
    except InvariantViolation as failure:
        assert failure.invariant == CAUGHT_BY[bug], failure
        return "caught"
    except AssertionError:
        return "no-setup"
    return "passed"


@pytest.mark.slow
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_scenarios_catch_their_bug_for_most_seeds(bug):
    outcomes = [_outcome(bug, seed) for seed in range(200)]
    assert outcomes.count("caught") >= 180, f"{bug}: {outcomes.count('caught')} of 200 seeds"
    for seed in range(200):
        assert _outcome(bug, seed, bugs=set()) != "caught", (bug, seed)


# Random faults (no script) that expose bugs: a nemesis and clients suited to each.
RANDOM_EXPOSURE = {
    "stale-leader-read": SimOptions(
        clients=6, client_timeout=0.25, explore=0.3,
        faults=FaultOptions(interval=(0.3, 1.0), weights=(("isolate-leader", 2), ("heal", 1)))),
    "early-ack": SimOptions(faults=FaultOptions()),
    "follower-ignores-token": SimOptions(read_mode="follower", faults=FaultOptions()),
    "no-fsync": SimOptions(faults=FaultOptions(max_down=3, weights=(
        ("power-loss", 2), ("restart", 3), ("heal", 1), ("isolate-leader", 1)))),
}


@pytest.mark.parametrize("bug", sorted(RANDOM_EXPOSURE))
def test_random_faults_find_bugs_too(bug):
    for seed in range(40):
        cluster = ClusterConfig(nodes=NODES3, bugs={bug})
        try:
            run_random(cluster, seed, duration=3.0, options=RANDOM_EXPOSURE[bug])
        except SimulationFailure:
            return
    pytest.fail(f"40 random runs never caught {bug}")


@pytest.mark.slow
@pytest.mark.parametrize("bug", sorted(RANDOM_EXPOSURE))
def test_random_faults_find_bugs_in_many_seeds(bug):
    caught = 0
    for seed in range(100):
        cluster = ClusterConfig(nodes=NODES3, bugs={bug})
        try:
            run_random(cluster, seed, duration=3.0, options=RANDOM_EXPOSURE[bug])
        except SimulationFailure:
            caught += 1
    assert caught >= 10, f"{bug} caught in {caught} of 100 random runs"


# --- async mode loses acknowledged writes on failover; quorum and sync never do ----------------

@pytest.mark.parametrize("mode", REPLICATION_MODES)
def test_only_async_loses_an_acknowledged_write_on_failover(mode):
    cluster = ClusterConfig(nodes=NODES3, replication=mode)
    options = SimOptions(clients=0, checked=frozenset(INVARIANTS), raise_on_violation=False)
    for seed in range(3):
        sim = write_to_isolated_leader(Simulation(cluster, seed, options))
        lost = check_register_lost_writes(ops(sim.history))
        if mode == "async":
            assert ACKED_WRITE_DURABLE in {v.invariant for v in sim.violations}
            assert lost.valid is False
        else:
            assert sim.violations == []
            assert lost.valid is True


def test_async_loses_acknowledged_writes_under_random_faults():
    lost = 0
    for seed in range(20):
        cluster = ClusterConfig(nodes=NODES3, replication="async")
        options = SimOptions(checked=frozenset(INVARIANTS), faults=FaultOptions())
        try:
            run_random(cluster, seed, duration=3.0, options=options)
        except InvariantViolation:
            lost += 1
    assert lost > 0
    # The same seeds in quorum and sync mode keep every promise.
    for mode in ("quorum", "sync"):
        for seed in range(20):
            cluster = ClusterConfig(nodes=NODES3, replication=mode)
            run_random(cluster, seed, duration=3.0, options=SimOptions(faults=FaultOptions()))


# --- Hypothesis: fault schedules as rules --------------------------------------------------------

node = st.sampled_from(NODES3)
# Discrete choices shrink quickly and print as short schedules.
wait = st.sampled_from([0.0, 0.05, 0.2, 0.5])


class SimulatedCluster(RuleBasedStateMachine):
    """A 3-node cluster with background clients. Every rule is a fault (or a nudge of the
    network, or a client operation) followed by some simulated time; the simulator checks its
    invariants after every event, and teardown requires liveness."""

    bugs: frozenset = frozenset()
    modes = REPLICATION_MODES
    read_modes = READ_MODES
    client_options: ClassVar[dict] = {"clients": 3}
    last: tuple | None = None          # (cluster, seed, options) of the latest example

    def __init__(self):
        super().__init__()
        self.sim: Simulation | None = None
        self.failed = False

    @initialize(seed=st.integers(0, 2**31), data=st.data())
    def start(self, seed, data):
        mode = data.draw(st.sampled_from(self.modes), label="mode")
        read_mode = data.draw(st.sampled_from(self.read_modes), label="read_mode")
        cluster = ClusterConfig(nodes=NODES3, replication=mode, bugs=self.bugs)
        options = SimOptions(read_mode=read_mode, **self.client_options)
        type(self).last = (cluster, seed, options)
        self.sim = Simulation(cluster, seed, options)
        self.act("advance", 0.5)

    def act(self, *action, then: float = 0.0):
        try:
            self.sim.apply(list(action))
            if then:
                self.sim.apply(["advance", then])
        except BaseException:
            self.failed = True
            raise

    @rule(n=node, then=wait)
    def isolate(self, n, then):
        self.act("isolate", n, then=then)

    @rule(then=wait)
    def isolate_leader(self, then):
        self.act("isolate-leader", then=then)

    @rule(order=st.permutations(NODES3), cut=st.integers(1, 2), then=wait)
    def split(self, order, cut, then):
        self.act("split", [sorted(order[:cut]), sorted(order[cut:])], then=then)

    @rule(link=st.permutations(NODES3), then=wait)
    def one_way(self, link, then):
        self.act("partition", [link[:2]], then=then)

    @rule(link=st.permutations(NODES3), delay=st.sampled_from([0.05, 0.3, 1.0]), then=wait)
    def slow_link(self, link, delay, then):
        self.act("slow-link", link[0], link[1], delay, then=then)

    @rule(then=wait)
    def heal(self, then):
        self.act("heal", then=then)

    @rule(n=node, then=wait)
    def crash(self, n, then):
        self.act("crash", n, then=then)

    @rule(n=node, then=wait)
    def power_loss(self, n, then):
        self.act("power-loss", n, then=then)

    @rule(n=node, then=wait)
    def restart(self, n, then):
        self.act("restart", n, then=then)

    @rule(n=node, rate=st.sampled_from([0.98, 0.99, 1.01, 1.02]),
          then=wait)
    def clock_rate(self, n, rate, then):
        self.act("clock-rate", n, rate, then=then)

    @precondition(lambda self: self.sim is not None and self.sim.options.read_mode != "lease")
    @rule(n=node, delta=st.sampled_from([-0.5, -0.1, 0.1, 0.5]), then=wait)
    def clock_jump(self, n, delta, then):
        self.act("clock-jump", n, delta, then=then)

    @rule(p=st.sampled_from([0.0, 0.05, 0.3]), then=wait)
    def loss(self, p, then):
        self.act("loss", p, then=then)

    @rule(p=st.sampled_from([0.0, 0.1]), then=wait)
    def duplicate(self, p, then):
        self.act("duplicate", p, then=then)

    @rule()
    def deliver_next(self):
        self.act("deliver-next")

    @rule()
    def drop_next(self):
        self.act("drop-next")

    @rule(f=st.sampled_from(["read", "write", "cas", "add"]), key=st.sampled_from(["r0", "s0"]),
          at=st.none() | node, then=wait)
    def invoke(self, f, key, at, then):
        self.act("invoke", f, key, None, at, then=then)

    @rule(seconds=st.sampled_from([0.05, 0.2, 0.5, 1.0]))
    def advance(self, seconds):
        self.act("advance", seconds)

    def teardown(self):
        if self.sim is not None and not self.failed:
            self.sim.check_liveness(10.0)


HYPOTHESIS = {"deadline": None, "suppress_health_check": list(HealthCheck)}


def test_hypothesis_fault_schedules_keep_every_invariant():
    run_state_machine_as_test(SimulatedCluster, settings=settings(
        max_examples=200, stateful_step_count=25, **HYPOTHESIS))


@pytest.mark.slow
def test_hypothesis_fault_schedules_keep_every_invariant_long():
    run_state_machine_as_test(SimulatedCluster, settings=settings(
        max_examples=1000, stateful_step_count=40, **HYPOTHESIS))


class EarlyAckCluster(SimulatedCluster):
    bugs = frozenset({"early-ack"})
    modes = ("quorum",)
    read_modes = ("leader",)
    client_options: ClassVar[dict] = {"clients": 2, "think_time": (0.01, 0.05)}


def test_hypothesis_shrinks_a_planted_bug_to_a_schedule_that_replays_from_its_seed():
    with pytest.raises(SimulationFailure) as info:
        run_state_machine_as_test(EarlyAckCluster, settings=settings(
            max_examples=300, stateful_step_count=6, database=None, derandomize=True,
            report_multiple_bugs=False, print_blob=False,
            phases=(Phase.generate, Phase.shrink), **HYPOTHESIS))
    failure = info.value
    assert failure.invariant in ("acked-write-durable", "committed-agreement",
                                 "leader-completeness")
    # Shrunk to a few actions, e.g. a leader, a crash or a partition of it, and time (the
    # background clients write throughout), possibly followed by the liveness phase.
    assert len(failure.schedule) <= 4, failure.schedule
    cluster, seed, options = EarlyAckCluster.last
    assert seed == failure.seed
    with pytest.raises(InvariantViolation) as again:
        replay(cluster, seed, failure.schedule, options)
    assert (again.value.invariant, again.value.step) == (failure.invariant, failure.step)


# --- the simulated pieces ------------------------------------------------------------------------

def test_a_simulated_clock_drifts_and_jumps():
    clock = SimClock(offset=5.0)
    assert clock.read(1.0) == 6.0
    clock.set_rate(1.0, 2.0)
    assert clock.read(2.0) == 8.0 and clock.to_real(8.0) == 2.0
    clock.jump(2.0, -1.0)
    assert clock.read(2.0) == 7.0 and clock.read(3.0) == 9.0


def test_a_simulated_disk_loses_what_was_not_synced():
    disk = SimDisk()
    e = lambda i, t: Entry(i, t, "noop")
    disk.write(Effects(HardState(1, "a"), None, [e(1, 1), e(2, 1)]))
    target = disk.begin_sync()
    disk.write(Effects(HardState(2, None), 2, [e(2, 2)]))
    assert disk.dirty and disk.log == [e(1, 1), e(2, 2)]
    disk.finish_sync(target)                           # covers only the first bundle
    assert disk.durable_log == [e(1, 1), e(2, 1)] and disk.dirty
    assert disk.lose_unsynced() == 3
    assert disk.hard_state == HardState(1, "a") and disk.log == [e(1, 1), e(2, 1)]
    assert not disk.dirty


def test_persist_before_send_holds_replies_until_the_sync():
    sim = Simulation(ClusterConfig(nodes=NODES3), 0, SimOptions(clients=0, fsync_latency=0.01))
    sim.run_for(1.0)
    leader = sim.leader()
    handle = sim.invoke(sim.new_process(), "write", "k", node=leader)
    sim.run_for(0.015)                                  # leader sync, follower syncs pending
    assert not handle.done
    sim.apply(["power-loss", leader])                   # nothing was acknowledged
    sim.complete(handle)
    assert handle.type == "info"


def test_no_fsync_acknowledges_before_the_sync():
    cluster = ClusterConfig(nodes=NODES3, bugs={"no-fsync"})
    sim = Simulation(cluster, 0, SimOptions(clients=0, fsync_latency=0.01))
    sim.run_for(1.2)
    handle = sim.invoke(sim.new_process(), "write", "k", node=sim.leader())
    sim.run_for(0.015)
    assert handle.type == "ok" and all(n.disk.dirty for n in sim.nodes.values())


def test_options_are_validated():
    with pytest.raises(ValueError, match="read_mode"):
        SimOptions(read_mode="fast")
    with pytest.raises(ValueError, match="unknown invariant"):
        SimOptions(checked=frozenset({"no-such"}))
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultOptions(weights=(("earthquake", 1),))
    sim = Simulation(ClusterConfig(nodes=NODES3), 0, SimOptions(clients=0))
    with pytest.raises(ValueError, match="unknown action"):
        sim.apply(["meteor"])
    with pytest.raises(ValueError, match="unknown node"):
        sim.apply(["crash", "n9"])
    assert dc_replace(SimOptions(), clients=1).clients == 1


def test_every_bug_has_a_scenario():
    assert set(SCENARIOS) == set(BUGS) == set(CAUGHT_BY)
