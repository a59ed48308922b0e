"""Combined faults: one fault sets the stage for the next, as Jepsen's combined nemeses do.

Two faults of different kinds that merely overlap by chance rarely line up the way the
dangerous cases need: the leader cut off *and then* the leader elected in its place killed (a
deposed leader's appends land on a follower nobody repairs; healed, two old logs outvote the
new one), or the leader's clock slowed *and then* the leader cut off (a lease that outlives
its drift allowance). A `Combination` names such a pair in a fixed order: the first fault
aimed where it does damage, the second started once the first has had time to work (a share of
the first's duration, long enough for an election) and stopped at a share of it too (past 1:
after the first has ended, a node killed across the heal).

`nemesis.plan` turns some of the first kind's cycles into a combination when both kinds are
enabled, the system can say which node leads, and the test's options leave the aims open. A
combination has the cluster to itself: no lone fault runs during it (a node killed by chance
just before would spoil it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterable

from harness import faults
from harness.faults.base import Setting, held_past_detection
from harness.faults.partition import DEFAULT_SLOW_LINK_MS
from harness.faults.steps import occurrence
from harness.networks.base import LATENCY

# The share of the first kind's cycles that become a combination when one applies; with
# several applying, shared out among them (`nemesis.plan`).
SHARE = 0.5
# A combination's first fault lasts this share of its gap (longer than a lone fault's), and
# past the system's failure detection where it declares one: the second fault must find the
# cluster after an election.
FIRST_FAULT_SHARE_RANGE = (0.6, 0.85)


@dataclass(frozen=True)
class Combination:
    name: str
    words: str                          # what it does, for the printed plan
    first: str                          # fault kinds, in order
    then: str
    first_aim: str                      # a partition shape or a node target
    then_aim: str
    then_start: tuple[float, float]     # shares of the first fault's duration
    then_stop: tuple[float, float]
    # The first fault, a cut-off leader, keeps one slow link out of it where the network can
    # slow links: its old-term messages land after the second fault has struck.
    slow_link: bool = False

    def applies(self, kinds: Iterable[str], options: dict[str, Any],
                setting: Setting) -> bool:
        """Whether this combination may run: both kinds enabled, a leader probe to aim with,
        and aims the test's options allow (given `shapes` or `targets` must include them)."""
        kinds = set(kinds)
        if not {self.first, self.then} <= kinds or "leader-probe" not in setting.capabilities:
            return False
        return all(_allowed(kind, aim, options)
                   for kind, aim in ((self.first, self.first_aim), (self.then, self.then_aim)))

    def plan(self, at: float, gap: float, nodes: list[str], rng: random.Random,
             options: dict[str, Any], setting: Setting) -> tuple[list[dict], list[tuple]]:
        """The four steps of one occurrence starting at `at` within a cycle of `gap` seconds,
        and the span each kind is busy ((kind, start, stop) each)."""
        duration = max(gap * rng.uniform(*FIRST_FAULT_SHARE_RANGE),
                       held_past_detection(setting, rng))
        then_at = at + duration * rng.uniform(*self.then_start)
        then_end = at + duration * rng.uniform(*self.then_stop)
        steps = []
        first_options = options
        if self.slow_link and LATENCY in setting.network_features:
            first_options = dict(options, slow_link_ms=DEFAULT_SLOW_LINK_MS)
        for kind, aim, start, stop, kind_options in (
                (self.first, self.first_aim, at, at + duration, first_options),
                (self.then, self.then_aim, then_at, then_end, options)):
            value = faults.find(kind).plan(nodes, rng, kind_options, setting, aim=aim)
            steps += occurrence(kind, value, start, stop, combination=self.name)
        spans = [(self.first, at, at + duration), (self.then, then_at, then_end)]
        return steps, spans


def opened(name: str | None, kind: str, f: str) -> Combination | None:
    """The combination `name` when the action `f` of `kind` is the start that opens it (how
    a schedule's combinations are counted: once each), else None."""
    combination = BY_NAME.get(name or "")
    if combination is not None and kind == combination.first and \
            f == faults.find(kind).START:
        return combination
    return None


def _allowed(kind: str, aim: str, options: dict[str, Any]) -> bool:
    chosen = options.get("shapes") if kind == "partition" else options.get("targets")
    return not chosen or aim in chosen


COMBINATIONS = (
    # The new leader, elected while the old one is cut off, killed across the heal: a
    # follower that took the deposed leader's late appends (over the slow link) has no
    # leader to repair it, and the two old logs may elect one of theirs (fencing, election
    # restrictions).
    Combination("partition-then-kill", "the leader cut off, then the new leader killed "
                "across the heal", "partition", "kill", "isolate-leader", "leader",
                then_start=(0.6, 0.9), then_stop=(1.05, 1.2), slow_link=True),
    # The leader's clock slowed (or sped) within the system's drift bound, then the leader
    # cut off: its lease must end before anyone else may be elected (leases, drift margins).
    Combination("clock-then-partition", "the leader's clock skewed, then the leader cut off",
                "clock", "partition", "leader", "isolate-leader",
                then_start=(0.1, 0.3), then_stop=(0.75, 0.95)),
    # The leader paused, then cut off once resumed: the resumed leader finds its followers
    # gone and must not answer from what it had (stale reads after a pause).
    Combination("pause-then-partition", "the leader paused past an election, then cut off",
                "pause", "partition", "leader", "isolate-leader",
                then_start=(0.7, 0.9), then_stop=(1.1, 1.3)),
)
BY_NAME = {combination.name: combination for combination in COMBINATIONS}
