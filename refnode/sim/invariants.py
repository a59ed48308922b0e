"""The invariants the simulator checks after every step, and the failures it raises.

Safety invariants (names as they appear in `InvariantViolation.invariant`):

- `election-safety`: at most one leader per term, ever (across restarts).
- `log-matching`: an (index, term) pair identifies one entry and one predecessor term, so two
  logs holding the same (index, term) agree on everything before it.
- `committed-agreement`: every node's log, up to its commit index, holds exactly the entries
  committed anywhere (every entry ever committed is remembered).
- `committed-not-truncated`: no node ever cuts a committed entry from its log.
- `leader-completeness`: every leader holds every entry committed in its term or earlier.
- `acked-write-durable`: every write acknowledged to a client stays in the log of every
  leader of the acknowledging term or later.
- `linearizable-read`: a `leader` or `lease` read returns at least the version of every write
  acknowledged (to any client) before the read was invoked.
- `session-guarantee`: a read returns at least the version of every earlier write and read of
  the same key by the same client process (read-your-writes, monotonic reads).

`election-safety` and `log-matching` hold in every replication mode. The others are what
`sync` and `quorum` promise; `async` mode gives them up by design (a failover may lose
acknowledged writes), so they are off there unless asked for (`checked=`), which is how the
simulator shows that loss.

The liveness check (`liveness`) belongs to the simulator's final phase.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from refnode.core import LEADER, Core, Effects
from refnode.messages import Entry

ELECTION_SAFETY = "election-safety"
LOG_MATCHING = "log-matching"
COMMITTED_AGREEMENT = "committed-agreement"
COMMITTED_NOT_TRUNCATED = "committed-not-truncated"
LEADER_COMPLETENESS = "leader-completeness"
ACKED_WRITE_DURABLE = "acked-write-durable"
LINEARIZABLE_READ = "linearizable-read"
SESSION_GUARANTEE = "session-guarantee"
LIVENESS = "liveness"

ALL_MODES = (ELECTION_SAFETY, LOG_MATCHING)
DURABILITY = (COMMITTED_AGREEMENT, COMMITTED_NOT_TRUNCATED, LEADER_COMPLETENESS,
              ACKED_WRITE_DURABLE, LINEARIZABLE_READ, SESSION_GUARANTEE)
INVARIANTS = ALL_MODES + DURABILITY


def default_invariants(replication: str) -> frozenset[str]:
    """The invariants a replication mode promises (see the module text)."""
    if replication == "async":
        return frozenset(ALL_MODES)
    return frozenset(INVARIANTS)


class SimulationFailure(AssertionError):
    """A simulation found a failure; `str()` names what, at which step, and the seed."""

    kind = "failure"

    def __init__(self, invariant: str, detail: str, *, seed: Any = None, step: int = 0,
                 time: float = 0.0, schedule: list | None = None):
        self.invariant = invariant
        self.detail = detail
        self.seed = seed
        self.step = step
        self.time = time
        self.schedule = list(schedule or [])
        super().__init__(f"{self.kind} {invariant!r} violated at step {step} "
                         f"(t={time:.6f}s, seed {seed!r}): {detail}")


class InvariantViolation(SimulationFailure):
    """A safety invariant was broken."""

    kind = "invariant"


class LivenessViolation(SimulationFailure):
    """After every fault was healed, the cluster made no progress within the bound."""

    kind = "liveness"


@dataclass
class _Committed:
    entry: Entry
    term: int           # the term in which the commit was first seen


@dataclass
class _Acked:
    index: int
    entry: Entry
    term: int           # the acknowledging leader's term
    node: str


@dataclass
class _LeaderWatch:
    key: tuple          # (incarnation, term): reset when either changes
    committed_upto: int = 0
    acked_pos: int = 0


@dataclass
class Invariants:
    """Incremental checks over the simulated cluster. `report(name, detail)` is called for
    each violation (the simulator raises or records it)."""

    checked: frozenset[str]
    report: Callable[[str, str], None]
    leaders: dict[int, str] = field(default_factory=dict)
    entries: dict[tuple[int, int], tuple[Entry, int]] = field(default_factory=dict)
    committed: dict[int, _Committed] = field(default_factory=dict)
    acked: list[_Acked] = field(default_factory=list)
    _agreed: dict[str, tuple[int, int]] = field(default_factory=dict)
    _watch: dict[str, _LeaderWatch] = field(default_factory=dict)
    # client observations
    _acked_version: dict[str, int] = field(default_factory=dict)
    _session: dict[tuple[Any, str], int] = field(default_factory=dict)

    def on(self, name: str) -> bool:
        return name in self.checked

    # --- node hooks -----------------------------------------------------------------------------

    def before_persist(self, node: str, disk_log: list[Entry], effects: Effects) -> None:
        """A bundle is about to change `node`'s log (its written image is `disk_log`)."""
        cut = effects.truncate_from
        if cut is not None and self.on(COMMITTED_NOT_TRUNCATED):
            for index in range(cut, len(disk_log) + 1):
                record = self.committed.get(index)
                if record is not None and _same(record.entry, disk_log[index - 1]):
                    self.report(COMMITTED_NOT_TRUNCATED,
                                f"{node} cut committed entry {_show(record.entry)} "
                                f"(log cut from {cut})")
                    break

    def after_persist(self, node: str, core: Core, effects: Effects) -> None:
        """Check the entries a bundle appended against every entry seen with that (index, term)."""
        if not effects.append or not self.on(LOG_MATCHING):
            return
        for entry in effects.append:
            before = core.entry(entry.index - 1)
            prev_term = before.term if before is not None else 0
            key = (entry.index, entry.term)
            seen = self.entries.get(key)
            if seen is None:
                self.entries[key] = (entry, prev_term)
            elif not _same(seen[0], entry) or seen[1] != prev_term:
                self.report(LOG_MATCHING,
                            f"{node} holds {_show(entry)} after term {prev_term}, but "
                            f"{_show(seen[0])} after term {seen[1]} was seen before")

    def on_acked(self, node: str, core: Core, version: int) -> None:
        """`node` acknowledged a write whose entry is at index `version` of its log."""
        entry = core.entry(version)
        if entry is not None:
            self.acked.append(_Acked(version, entry, core.term, node))

    def after_step(self, cores: Iterable[tuple[str, int, Core]]) -> None:
        """Check every live node (name, incarnation, core) after a step."""
        for node, incarnation, core in cores:
            if core.role == LEADER and self.on(ELECTION_SAFETY):
                other = self.leaders.setdefault(core.term, node)
                if other != node:
                    self.report(ELECTION_SAFETY,
                                f"{other} and {node} were both leader in term {core.term}")
            if self.on(COMMITTED_AGREEMENT):
                self._check_agreement(node, incarnation, core)
            if core.role == LEADER:
                self._check_leader(node, incarnation, core)

    def _check_agreement(self, node: str, incarnation: int, core: Core) -> None:
        seen_incarnation, upto = self._agreed.get(node, (incarnation, 0))
        if seen_incarnation != incarnation:
            upto = 0
        commit = core.commit_index
        upto = min(upto, commit)
        for index in range(upto + 1, commit + 1):
            entry = core.entry(index)
            record = self.committed.get(index)
            if record is None:
                self.committed[index] = _Committed(entry, core.term)
            elif not _same(record.entry, entry):
                self.report(COMMITTED_AGREEMENT,
                            f"{node} committed {_show(entry)} where {_show(record.entry)} "
                            f"was committed before")
                break
        self._agreed[node] = (incarnation, commit)

    def _check_leader(self, node: str, incarnation: int, core: Core) -> None:
        key = (incarnation, core.term)
        watch = self._watch.get(node)
        if watch is None or watch.key != key:
            watch = self._watch[node] = _LeaderWatch(key)
        if self.on(ACKED_WRITE_DURABLE):
            while watch.acked_pos < len(self.acked):
                ack = self.acked[watch.acked_pos]
                watch.acked_pos += 1
                if ack.term > core.term:
                    continue                    # a later leader's: this one is stale
                held = core.entry(ack.index)
                if held is None or not _same(held, ack.entry):
                    self.report(ACKED_WRITE_DURABLE,
                                f"leader {node} (term {core.term}) lacks {_show(ack.entry)}, "
                                f"acknowledged by {ack.node} in term {ack.term}; it holds "
                                f"{_show(held) if held else 'nothing'} there")
                    break
        if self.on(LEADER_COMPLETENESS):
            index = watch.committed_upto + 1
            while index in self.committed:
                record = self.committed[index]
                if record.term > core.term:
                    break
                held = core.entry(index)
                if held is None or not _same(held, record.entry):
                    self.report(LEADER_COMPLETENESS,
                                f"leader {node} (term {core.term}) lacks committed "
                                f"{_show(record.entry)}; it holds "
                                f"{_show(held) if held else 'nothing'} there")
                    break
                watch.committed_upto = index
                index += 1

    # --- client hooks ---------------------------------------------------------------------------

    def required_version(self, key: str) -> int:
        """The highest version of `key` acknowledged to any client so far."""
        return self._acked_version.get(key, 0)

    def on_write_ok(self, process: Any, key: str, version: int) -> None:
        if version > self._acked_version.get(key, 0):
            self._acked_version[key] = version
        session = (process, key)
        if version > self._session.get(session, 0):
            self._session[session] = version

    def on_read_ok(self, process: Any, key: str, version: int, mode: str, required: int,
                   node: str | None) -> None:
        if mode in ("leader", "lease") and self.on(LINEARIZABLE_READ) and version < required:
            self.report(LINEARIZABLE_READ,
                        f"a {mode} read of {key!r} served by {node} returned version {version}, "
                        f"but version {required} was acknowledged before the read began")
        session = (process, key)
        earlier = self._session.get(session, 0)
        if self.on(SESSION_GUARANTEE) and version < earlier:
            self.report(SESSION_GUARANTEE,
                        f"process {process}'s {mode} read of {key!r} served by {node} returned "
                        f"version {version}, below version {earlier} it had already seen")
        if version > earlier:
            self._session[session] = version


def _same(a: Entry, b: Entry) -> bool:
    return a is b or a == b


def _show(entry: Entry) -> str:
    what = entry.op if entry.key is None else f"{entry.op} {entry.key}={entry.value!r}"
    return f"entry {entry.index} (term {entry.term}, {what})"
