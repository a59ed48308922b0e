"""`faultline validate`: the planted-bug matrix, proof that the harness catches what it should.

First the plain campaigns (`PLAIN`): each planted bug run as a user would, with only the bug,
a workload, a read mode and the fault kinds given, on the default schedule; what a user
testing their own system gets. Then the tuned cases: each planted bug runs under the faults
that expose it, over several seeds, and must be caught (an invalid verdict) in most of them;
each safe configuration runs under combined faults and must be valid in all of them; `async`
replication is shown losing acknowledged writes when its leader crashes, as the pattern says
it may. etcd, a real system, must stay valid with
linearizable reads and be caught with serializable ones; Redis with Sentinel must be shown
losing acknowledged writes when its primary is paused or cut off, and nothing without faults.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Callable

from harness.runner import RunResult, run_test
from harness.testspec import TestSpec

BUG, SAFE, SHOWN = "bug", "safe", "shown"     # must be caught / must pass / loss is shown


@dataclass(frozen=True)
class Case:
    """One row of the matrix: a configuration, what it must show, over how many seeds."""

    label: str
    kind: str
    options: dict[str, Any]
    seeds: int
    needed: int            # runs that must come out as `kind` requires
    plain: bool = False    # a plain campaign: only what a user would give (the headline)

    def spec(self, seed: int, runs_dir: str, time_limit: float | None,
             network: str | None = None) -> TestSpec:
        """The case's test with `seed`, on `network` (default: refnode's, the proxies)."""
        options = dict(self.options)
        if time_limit is not None:
            options["time_limit"] = time_limit
        if network is not None:
            options["network"] = network
        return TestSpec(name=f"validate-{self.label}", seed=seed, runs_dir=runs_dir,
                        **options).validate()

    @property
    def bug(self) -> str | None:
        """The planted bug the case switches on, if any."""
        return self.options.get("system_options", {}).get("bug")


def _refnode(options: dict[str, Any], **system_options) -> dict[str, Any]:
    """Test options with refnode options merged into their system options."""
    merged = dict(options)
    merged["system_options"] = {**options.get("system_options", {}), **system_options}
    return merged


def _bug(bug: str, seeds: int = 5, needed: int = 4, **options) -> Case:
    # One key and a brisk rate: a fault's window of damage holds many conflicting operations.
    # No cas: on a violation the zone method decides at once, where a search with crashed
    # operations could run out of budget.
    base = {"time_limit": 20.0, "keys": 1, "rate": 400.0, "cas_share": 0.0}
    return Case(bug, BUG, _refnode(dict(base, **options), bug=bug), seeds, needed)


def _safe(label: str, seeds: int = 10, **options) -> Case:
    return Case(label, SAFE, dict({"time_limit": 20.0, "nemesis": ("partition", "kill",
                                                                    "pause")}, **options),
                seeds, seeds)


LEADER_CUT_OFF = {"shapes": ["isolate-leader"]}
# Half the cycles are wasted when the follower on the slow link is the one elected (fencing
# is a follower's rule), hence the longer run.
# The new leader is killed just before the deposed leader's appends (2 s late) land: the
# follower stays a follower for one election timeout, which is when fencing matters.
STALE_APPENDS = dict(
    workload="set", nemesis=("partition", "kill"), nemesis_interval=6.0,
    nemesis_options={"shapes": ["isolate-leader"], "slow_link_ms": 2000,
                     "targets": ["leader"], "overlap": 1.9 / 6})
# Slow peer links leave room between a vote and the winner's first message, and a wide range
# of election timeouts makes split votes rare. The old leader restarts a little before the
# voters, so that its campaign (in the very term it missed) tends to reach them after their
# quiet period on boot and before their own timeout. In trials (5 seeds of 60 s) 30 of 35
# rounds ended with two leaders in one term; 4 were lost to split votes.
ELECTION_CRASHES = dict(
    nemesis=("election-crash",), nemesis_interval=8.0, time_limit=30.0,
    nemesis_options={"latency_ms": [200], "restart_stagger": 0.4, "hold": 3.0},
    system_options={"election_timeout_min": 1.0, "election_timeout_max": 2.5})
LEASE_UNDER_DRIFT = dict(
    nemesis=("clock", "partition"), nemesis_interval=5.0, op_timeout=0.5, time_limit=40.0,
    system_options={"read_mode": "lease", "max_clock_drift": 0.5, "election_timeout_min": 1.0,
                    "election_timeout_max": 1.2, "heartbeat_interval": 0.1},
    nemesis_options={"overlap": True, "clock_rates": [0.6], "clock_offsets": [0.0, 0.0],
                     "targets": ["leader"], **LEADER_CUT_OFF})
MATRIX = [
    # A deposed leader steps down after election_timeout_max without a quorum: a longer one
    # widens the window in which it still answers reads.
    _bug("stale-leader-read", nemesis=("partition",), nemesis_interval=4.0,
         nemesis_options=LEADER_CUT_OFF, system_options={"election_timeout_max": 1.5}),
    # The leader is cut off but for one slow link to a follower; the new leader is killed
    # before the deposed leader's old-term appends land on that follower, which (without
    # fencing) lets them overwrite what the new leader had committed; healed, the two old
    # logs elect a leader without those entries. A set, not a register: the overwriting
    # entries hold writes that never completed, which a register history may order last.
    _bug("no-fencing", time_limit=45.0, **STALE_APPENDS),
    # A leader cut off from its followers acknowledges writes it only sent: the new leader
    # never had them, and the final read of the set shows them gone.
    _bug("early-ack", workload="set", nemesis=("partition",), nemesis_interval=4.0,
         nemesis_options=LEADER_CUT_OFF, system_options={"election_timeout_max": 1.5}),
    # Power loss of every node: what was acknowledged but never synced is gone everywhere. A
    # register would hide the loss under the next write; a set's final read shows it.
    _bug("no-fsync", workload="set", nemesis=("power-loss",), nemesis_interval=5.0,
         nemesis_options={"targets": ["all"]}),
    # The leader's clock runs at 0.6 (no jump: a lease cannot survive a clock that jumps)
    # while the drift bound says 0.5: with the margin its lease ends before anyone else may be
    # elected, without it well after. Long, narrow election timeouts make that window longer
    # than a client's operation timeout.
    _bug("lease-no-margin", **LEASE_UNDER_DRIFT),
    _bug("follower-ignores-token", workload="session", nemesis=("partition",),
         nemesis_interval=4.0, nemesis_options={"shapes": ["isolate"]}),
    # Voters crashed between their vote and the winner's first message forget the vote and
    # elect the restarted old leader in the same term; the observer sees both leaders.
    _bug("forget-vote", **ELECTION_CRASHES),
    _safe("sync-leader", system_options={"replication": "sync"}),
    _safe("quorum-leader", system_options={"replication": "quorum"}),
    _safe("quorum-lease", system_options={"read_mode": "lease"}),
    # The control for no-fencing: the same slow link and kills, with fencing: valid.
    _safe("quorum-stale-appends-fenced", seeds=5,
          **dict(STALE_APPENDS, keys=1, rate=400.0, time_limit=45.0)),
    # The control for forget-vote: the same crashed elections, votes kept: one leader a term.
    _safe("quorum-election-crash", seeds=5, **ELECTION_CRASHES),
    # The control for lease-no-margin: the same drifting clock and partitions, the margin
    # kept: valid.
    _safe("quorum-lease-drift-within-bound", seeds=5,
          **dict(LEASE_UNDER_DRIFT, keys=1, rate=400.0, cas_share=0.0)),
    _safe("quorum-follower-session", workload="session"),
    # An async leader acknowledges what only its own log has: cut off, it acknowledges
    # writes the new leader never gets, and healing rolls them back.
    # etcd, a correct real system, plainly configured: linearizable reads under every fault
    # it takes (the leader targeted too) must stay valid; its known weakness, serializable
    # reads answered by members from their own state, must be found stale under partitions.
    Case("etcd-linearizable", SAFE, {"system": "etcd", "time_limit": 60.0,
                                     "nemesis": ("partition", "kill", "pause")}, 10, 10),
    Case("etcd-serializable", BUG, {"system": "etcd", "time_limit": 60.0,
                                    "nemesis": ("partition",),
                                    "system_options": {"read": "serializable"}}, 5, 4),
    # Redis with Sentinel, plainly configured, clients with an application's patience (5 s):
    # pauses and partitions of the primary lose acknowledged adds (Jepsen's finding); without
    # faults, nothing is lost.
    Case("redis-primary-faults", SHOWN, dict(
        system="redis", workload="set", time_limit=60.0, nemesis=("pause", "partition"),
        nemesis_interval=10.0, op_timeout=5.0,
        nemesis_options={"targets": ["leader"], "shapes": ["isolate-leader"]}), 5, 4),
    Case("redis-no-faults", SAFE, dict(system="redis", workload="set", time_limit=60.0,
                                       nemesis=()), 5, 5),
    Case("async-leader-cut-off", SHOWN, {"time_limit": 20.0, "nemesis": ("partition",),
                                         "nemesis_interval": 4.0,
                                         "nemesis_options": LEADER_CUT_OFF, "keys": 1,
                                         "rate": 400.0, "cas_share": 0.0,
                                         "system_options": {"replication": "async",
                                                            "election_timeout_max": 1.5}},
         5, 1),
]
def _plain(label: str, kind: str, nemesis: tuple[str, ...], seeds: int = 5,
           needed: int | None = None, **options) -> Case:
    """A plain campaign: 60 s with the default schedule, given only what a user testing this
    configuration would give (the bug, a workload, a read mode, the fault kinds)."""
    system_options = {k: options.pop(k) for k in ("bug", "read_mode", "replication")
                      if k in options}
    return Case(f"plain-{label}", kind,
                dict(time_limit=60.0, nemesis=nemesis, system_options=system_options,
                     **options),
                seeds, seeds if needed is None else needed, plain=True)


# The headline: each planted bug as a user would run it, with no tuning. The targets are the
# issue's (each bug caught in 4 of 5 seeds of 60 s; each safe configuration valid 10 of 10).
PLAIN = [
    _plain("stale-leader-read", BUG, ("partition",), needed=4, bug="stale-leader-read"),
    _plain("no-fencing", BUG, ("partition", "kill"), needed=4, bug="no-fencing",
           workload="set"),
    _plain("early-ack", BUG, ("partition", "kill"), needed=4, bug="early-ack", workload="set"),
    _plain("no-fsync", BUG, ("power-loss",), needed=4, bug="no-fsync", workload="set"),
    _plain("lease-no-margin", BUG, ("clock", "partition"), needed=4, bug="lease-no-margin",
           read_mode="lease"),
    _plain("follower-ignores-token", BUG, ("partition",), needed=4,
           bug="follower-ignores-token", workload="session", read_mode="follower"),
    _plain("forget-vote", BUG, ("election-crash",), needed=4, bug="forget-vote"),
    _plain("quorum-leader", SAFE, ("partition", "kill", "pause"), seeds=10),
    # Clocks within the drift bound refnode declares: a correct lease survives them.
    _plain("quorum-lease", SAFE, ("partition", "kill", "pause", "clock"), seeds=10,
           read_mode="lease"),
    _plain("quorum-follower-session", SAFE, ("partition", "kill", "pause"), seeds=10,
           workload="session", read_mode="follower"),
    _plain("async", SHOWN, ("partition", "kill"), needed=3, replication="async"),
]
MATRIX = PLAIN + MATRIX

# What the test suite runs: two plain campaigns of planted bugs and one safe configuration.
# (Stale leader reads need realistic timings to be seen in a short plain run: with the
# suite's fast ones a deposed leader steps down 0.6 s after the cut, before most clients have
# given up on it. The full matrix runs it.)
REDUCED = ["plain-early-ack", "plain-no-fsync", "plain-quorum-leader"]


@dataclass
class Row:
    """The outcome of one case over its seeds."""

    case: Case
    results: list[RunResult] = field(default_factory=list)

    @property
    def caught(self) -> int:
        return sum(1 for r in self.results if r.valid is False)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results
                   if r.valid is True and r.liveness.get("recovered"))

    @property
    def needed(self) -> int:
        """The case's target, scaled to the seeds actually run (at least one)."""
        return max(1, -(-self.case.needed * len(self.results) // self.case.seeds))

    @property
    def met(self) -> bool:
        if self.case.kind == SAFE:
            return self.passed >= self.needed
        return self.caught >= self.needed

    @property
    def checkers(self) -> list[str]:
        """The checkers that found violations, over all seeds."""
        names: set[str] = set()
        for r in self.results:
            for name, c in r.results.get("checkers", {}).items():
                if c.get("valid") is False:
                    names.add(name)
        return sorted(names)

    @property
    def first_violation(self) -> float | None:
        times = [r.results.get("first_violation_seconds") for r in self.results]
        times = [t for t in times if t is not None]
        return round(statistics.median(times), 1) if times else None


def select(names: list[str] | None) -> list[Case]:
    """The cases named (all when None); ValueError for an unknown name."""
    if not names:
        return list(MATRIX)
    by_label = {case.label: case for case in MATRIX}
    unknown = [n for n in names if n not in by_label]
    if unknown:
        raise ValueError(f"unknown case {', '.join(unknown)}; cases: "
                         f"{', '.join(by_label)}")
    return [by_label[n] for n in names]


def run_matrix(cases: list[Case], runs_dir: str, *, seeds: int | None = None,
               time_limit: float | None = None, first_seed: int = 1,
               network: str | None = None,
               on_run: Callable[[Case, int, RunResult], None] | None = None) -> list[Row]:
    """Run every case over its seeds (or `seeds` each), on `network` (default: refnode's);
    returns a row per case."""
    rows = []
    for case in cases:
        row = Row(case)
        for i in range(seeds or case.seeds):
            seed = first_seed + i
            result = run_test(case.spec(seed, runs_dir, time_limit, network))
            row.results.append(result)
            if on_run is not None:
                on_run(case, seed, result)
        rows.append(row)
    return rows


def rows_json(rows: list[Row]) -> list[dict[str, Any]]:
    """The matrix as JSON data."""
    return [{"case": r.case.label, "kind": r.case.kind, "runs": len(r.results),
             "caught": r.caught, "passed": r.passed, "met": r.met, "checkers": r.checkers,
             "first_violation_seconds": r.first_violation,
             "run_dirs": [str(x.run_dir) for x in r.results]} for r in rows]

