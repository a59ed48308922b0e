"""Linearizability of a register with compare-and-set whose written values are unique, in
O(n log n).

Every value has one installer, the write or cas that wrote it (the initial value is installed
at minus infinity). A successful `cas [a b]` pins b directly after a in the order the register
takes its values; values so linked form chains, each begun by a blind write or by the initial
value, and a linearization lays the chains end to end, each one whole.

For a value v: lo(v) is its installer's call (v cannot be in place earlier), hi(v) the earliest
return among its installer and its reads (v must be in place by then), need(v) the latest call
among its reads (v must still hold then). Installing every value as early as it may be, a chain
begun no earlier than T frees the register for the next chain from max(T, C) on, where C is
the largest lo or need in the chain; it fits iff T <= D, its smallest hi, and its own values
fit (no value's hi comes before the lo's and needs that precede it in the chain). The initial
chain goes first; the others are ordered from the back: a chain whose D is at least the C of
every other chain left (the initial one's included) may go last. When no chain may, the
chains each need another to go first: not linearizable.

An indeterminate write or cas that nobody observed is dropped (had it taken effect, it could
only add constraints); one that was observed took effect, at some time after its call.

A cas that failed is dropped, or, with the model's `failed_cas="mismatch"`, it must find the
register holding another value at some moment of its span. The method checks mismatches
against the schedule it built; if that schedule breaks one, another schedule might not, and
the method says it cannot decide (the caller then runs the search).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Hashable, Sequence

from checkers.history import FAIL, OK, Operation, freeze, seconds
from checkers.models import CAS, READS, WRITES, CasRegister

_INF = float("inf")
_NEG_INF = float("-inf")
_BLIND = object()    # the predecessor of a value no cas installed (None may be a value)


@dataclass
class ChainOutcome:
    """The verdict for one key: True, False, or None when the method cannot decide. On False,
    `reason` in words, `failed_op` (index into the ops given) an op that cannot be placed,
    `conflicting` the ops that forbid it, `state_before` the value it contends with."""

    linearizable: bool | None
    reason: str = ""
    failed_op: int | None = None
    conflicting: list[int] = field(default_factory=list)
    state_before: Hashable = None


def applicable(ops: Sequence[Operation], model) -> bool:
    """Whether this method decides these ops under `model`: a cas register whose written values
    (by writes and cas, crashed ones included) are all distinct and differ from the initial
    value."""
    if not isinstance(model, CasRegister):
        return False
    written = set()
    for op in ops:
        f = op.f
        if f in READS:
            continue
        if f in WRITES:
            value = freeze(op.input)
        elif f in CAS:
            if op.outcome == FAIL:
                continue          # a failed cas writes nothing
            value = op.input
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                return False      # malformed: the search reports it
            value = freeze(value[1])
        else:
            return False
        if value in written or value == model.initial:
            return False
        written.add(value)
    return True


class _Value:
    """One value's installer, observers and bounds."""

    __slots__ = ("value", "installer", "blind", "pred", "succ", "reads", "lo", "lo_op",
                 "hi", "hi_op", "need", "need_op", "observed", "kept")

    def __init__(self, value):
        self.value = value
        self.installer: int | None = None
        self.blind = False
        self.pred = _BLIND        # the value a cas installing this one expected
        self.succ: _Value | None = None
        self.reads: list[int] = []
        self.lo, self.lo_op = _NEG_INF, None
        self.hi, self.hi_op = _INF, None
        self.need, self.need_op = _NEG_INF, None
        self.observed = False
        self.kept = False


@dataclass
class _Chain:
    values: list
    deadline: float          # D: the latest the chain may begin
    deadline_op: int | None
    frees: float             # C: the chain frees the register from max(T, C) on
    frees_op: int | None


def check(ops: Sequence[Operation], model: CasRegister) -> ChainOutcome:
    """Decide linearizability of `ops` (one key; `applicable` holds) by the chain method."""
    values: dict[Hashable, _Value] = {}
    initial = values[model.initial] = _Value(model.initial)
    initial.kept = True
    mismatches: list[tuple[int, Hashable]] = []

    def value_of(v) -> _Value:
        found = values.get(v)
        if found is None:
            found = values[v] = _Value(v)
        return found

    for index, op in enumerate(ops):
        kind, a, b = model.transition(op)
        if kind == "read":
            holder = value_of(a)
            holder.reads.append(index)
            holder.observed = True
        elif kind == "mismatch":
            mismatches.append((index, a))
        else:
            installed = value_of(b)
            installed.installer = index
            installed.blind = kind == "write"
            if kind == "cas":
                installed.pred = a
                if op.outcome == OK:
                    value_of(a).observed = True

    # Keep every acknowledged installer, and an indeterminate one only when something saw its
    # value; a kept indeterminate cas is in turn an observer of the value it expected.
    pending = [v for v in values.values() if v.observed]
    while pending:
        holder = pending.pop()
        if holder.installer is None or holder.kept:
            continue
        holder.kept = True
        if holder.pred is not _BLIND:
            expected = value_of(holder.pred)
            if not expected.observed:
                expected.observed = True
                pending.append(expected)
    for holder in values.values():
        if holder.installer is not None and ops[holder.installer].outcome == OK:
            holder.kept = True

    failure = _link(ops, values, initial)
    if failure is not None:
        return failure
    for holder in values.values():
        _bound(ops, holder, holder is initial)

    chains, failure = _chains(ops, values, initial)
    if failure is not None:
        return failure
    order, failure = _order(ops, chains)
    if failure is not None:
        return failure
    if mismatches:
        return _check_mismatches(ops, order, values, mismatches)
    return ChainOutcome(True)


def _link(ops, values: dict, initial: _Value) -> ChainOutcome | None:
    """Check that every value observed was installed, and link each kept cas to the value it
    expected; a value two cas both succeeded from is a violation."""
    for holder in values.values():
        if holder.reads and holder is not initial and not holder.kept:
            read = min(holder.reads, key=lambda i: ops[i].call)
            return ChainOutcome(False, f"read returned {holder.value!r}, which was never "
                                       "written", read)
    for holder in sorted((v for v in values.values() if v.kept and v.pred is not _BLIND),
                         key=lambda v: ops[v.installer].call):
        expected = values[holder.pred]
        if expected is not initial and not expected.kept:
            return ChainOutcome(False, f"cas expected {expected.value!r}, which was never "
                                       "written", holder.installer)
        if expected.succ is not None:
            first = expected.succ.installer
            return ChainOutcome(
                False, f"two compare-and-sets both replaced {expected.value!r}: "
                       f"{ops[first].describe()} and {ops[holder.installer].describe()}",
                holder.installer, [first], expected.value)
        expected.succ = holder
    return None


def _bound(ops, holder: _Value, is_initial: bool) -> None:
    """Fill in lo, hi and need (with the ops that set them) for one kept value."""
    if not holder.kept:
        return
    if not is_initial:
        installer = ops[holder.installer]
        holder.lo, holder.lo_op = installer.call, holder.installer
        if installer.ret is not None:
            holder.hi, holder.hi_op = installer.ret, holder.installer
    for index in holder.reads:
        read = ops[index]
        if not is_initial and read.ret < holder.hi:
            holder.hi, holder.hi_op = read.ret, index
        if read.call > holder.need:
            holder.need, holder.need_op = read.call, index


def _chains(ops, values: dict, initial: _Value) -> tuple[list[_Chain], ChainOutcome | None]:
    """The chains, the initial one first, each with its D and C; or why one cannot fit."""
    heads = [initial] + sorted((v for v in values.values() if v.kept and v.blind),
                               key=lambda v: ops[v.installer].call)
    chains = []
    reached: set[int] = set()
    for head in heads:
        members = []
        holder = head
        while holder is not None:
            members.append(holder)
            reached.add(id(holder))
            holder = holder.succ
        chain, failure = _fit(ops, members)
        if failure is not None:
            return [], failure
        chains.append(chain)
    stray = next((v for v in values.values() if v.kept and id(v) not in reached), None)
    if stray is not None:
        # Values linked only to one another by cas, never reached from a write: a cycle.
        return [], ChainOutcome(False, f"{stray.value!r} is installed by a cas that expects a "
                                       "value only ever installed after it",
                                stray.installer, [], stray.value)
    return chains, None


def _fit(ops, members: list[_Value]) -> tuple[_Chain, ChainOutcome | None]:
    """One chain's D and C, or the value in it that cannot be in place in time."""
    earliest, earliest_op = _NEG_INF, None
    deadline, deadline_op = _INF, None
    previous = None
    for holder in members:
        if holder.lo > earliest:
            earliest, earliest_op = holder.lo, holder.lo_op
        if earliest > holder.hi:
            why = (f"value {holder.value!r} must be in place by {_t(holder.hi)} (when "
                   f"{ops[holder.hi_op].describe()} returned), but cannot be before "
                   f"{_t(earliest)} (when {ops[earliest_op].describe()} was invoked)")
            # The op invoked too late is the one that cannot be placed (as the search says).
            return None, ChainOutcome(False, why, earliest_op, [holder.hi_op],
                                      previous.value if previous else None)
        if holder.hi < deadline:
            deadline, deadline_op = holder.hi, holder.hi_op
        if holder.need > earliest:
            earliest, earliest_op = holder.need, holder.need_op
        previous = holder
    return _Chain(members, deadline, deadline_op, earliest, earliest_op), None


def _order(ops, chains: list[_Chain]) -> tuple[list[_Chain], ChainOutcome | None]:
    """An order of the chains (initial first) in which each begins by its D; or the two
    chains that each need the other to go first."""
    first, rest = chains[0], chains[1:]
    # Remaining chains by D, latest first, and by C, a max-heap; both lazily pruned.
    by_deadline = sorted(range(len(rest)), key=lambda i: -rest[i].deadline)
    by_frees = [(-rest[i].frees, i) for i in range(len(rest))]
    heapq.heapify(by_frees)
    placed = [False] * len(rest)
    backwards: list[_Chain] = []
    cursor = 0
    left = len(rest)
    while left:
        while placed[by_frees[0][1]]:
            heapq.heappop(by_frees)
        top = by_frees[0][1]
        bound = max(first.frees, rest[top].frees)
        progressed = False
        while cursor < len(by_deadline) and (placed[by_deadline[cursor]] or
                                             rest[by_deadline[cursor]].deadline >= bound):
            i = by_deadline[cursor]
            cursor += 1
            if not placed[i]:
                placed[i] = True
                backwards.append(rest[i])
                left -= 1
                progressed = True
        if progressed:
            continue
        # Only the chain with the largest C might go last, if its D passes the others' C.
        heapq.heappop(by_frees)
        while by_frees and placed[by_frees[0][1]]:
            heapq.heappop(by_frees)
        second = rest[by_frees[0][1]] if by_frees else first
        other_bound = max(first.frees, second.frees)
        if rest[top].deadline >= other_bound:
            placed[top] = True
            backwards.append(rest[top])
            left -= 1
            continue
        return [], _cycle(ops, rest[top], second if second.frees >= first.frees else first)
    return [first] + backwards[::-1], None


def _cycle(ops, late: _Chain, blocker: _Chain) -> ChainOutcome:
    """`late` must begin by its D, but `blocker` holds the register until after it, and
    (when `blocker` is not the initial chain) the reverse holds too."""
    head = late.values[0]
    reason = (f"value {head.value!r} (or a value its chain installs) must be in place by "
              f"{_t(late.deadline)} (when {ops[late.deadline_op].describe()} returned), "
              f"but {blocker.values[-1].value!r}'s chain holds the register until "
              f"{_t(blocker.frees)} (when {ops[blocker.frees_op].describe()} was invoked)")
    conflicting = [late.deadline_op]
    if late.frees_op is not None and blocker.deadline_op is not None and \
            late.frees > blocker.deadline:
        reason += (f", and the other way round: {late.values[-1].value!r} must hold until "
                   f"{_t(late.frees)}, after {blocker.values[0].value!r} must be in place "
                   f"({_t(blocker.deadline)})")
        conflicting.append(blocker.deadline_op)
    return ChainOutcome(False, reason, blocker.frees_op, conflicting, blocker.values[-1].value)


def _check_mismatches(ops, order: list[_Chain], values: dict,
                      mismatches: list[tuple[int, Hashable]]) -> ChainOutcome:
    """Valid if the earliest-first schedule in `order` lets every mismatch see another value;
    otherwise undecided (another schedule might)."""
    start: dict[Hashable, float] = {}
    end: dict[Hashable, float] = {}
    free = _NEG_INF
    sequence = [holder for chain in order for holder in chain.values]
    for holder, following in zip(sequence, sequence[1:] + [None]):
        at = max(free, holder.lo)
        start[holder.value] = at
        free = max(at, holder.need)
        if following is None:
            end[holder.value] = _INF
    for holder, following in zip(sequence, sequence[1:]):
        end[holder.value] = start[following.value]
    for index, expected in mismatches:
        if expected not in start:
            continue          # never in place: any moment sees another value
        op = ops[index]
        ret = _INF if op.ret is None else op.ret
        if start[expected] < op.call and end[expected] > ret:
            return ChainOutcome(None, f"a failed cas expecting {expected!r} falls inside "
                                      "that value's span in the schedule built")
    return ChainOutcome(True)


def _t(time: float) -> str:
    """A history time for a person: seconds from the start of the history."""
    return f"{seconds(time)} s"
