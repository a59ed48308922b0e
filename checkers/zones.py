"""Linearizability of a register whose written values are unique, in O(n log n).

Gibbons and Korach (1997), as in wgolab/WatCA. For each value v, its cluster is the write of v
and the reads that returned v; the initial value has a virtual write at minus infinity. Let minF
be the earliest return in the cluster and maxS the latest call:
- minF < maxS gives a forward zone [minF, maxS]: v must be the register's value throughout;
- otherwise a backward zone [maxS, minF]: the whole cluster can share one instant inside it.
The history is linearizable iff
  (a) every value read was written (or is the initial value) and no read returns before its
      write is called,
  (b) no two forward zones overlap (strictly: touching ends may be ordered at one instant),
  (c) no backward zone lies strictly inside a forward zone.
A crashed write returns at +infinity; crashed reads were dropped before we get here.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Hashable, Sequence

from checkers.history import Operation, freeze, seconds
from checkers.models import CAS, READS, WRITES, CasRegister

_INF = float("inf")
_NEG_INF = float("-inf")


@dataclass
class ZoneOutcome:
    """The verdict for one key; on a violation, `reason` in words and the ops involved:
    `failed_op` (index into the ops given) is the op that cannot be placed, `conflicting` the
    ops of the value that must hold at that time, `state_before` that value."""

    linearizable: bool
    reason: str = ""
    failed_op: int | None = None
    conflicting: list[int] = field(default_factory=list)
    state_before: Hashable = None


def applicable(ops: Sequence[Operation], model) -> bool:
    """Whether the zone method decides these ops under `model`: a register (no cas), every
    written value distinct and different from the initial value."""
    if not isinstance(model, CasRegister):
        return False
    written = set()
    for op in ops:
        f = op.f
        if f in WRITES:
            value = freeze(op.input)
            if value in written or value == model.initial:
                return False
            written.add(value)
        elif f in CAS or f not in READS:
            return False
    return True


class _Cluster:
    __slots__ = ("value", "write", "reads", "min_ret", "max_call", "min_ret_op", "max_call_op")

    def __init__(self, value):
        self.value = value
        self.write = None
        self.reads = []
        self.min_ret = _INF
        self.max_call = _NEG_INF
        self.min_ret_op = None
        self.max_call_op = None

    def include(self, index: int, call, ret) -> None:
        if ret < self.min_ret:
            self.min_ret, self.min_ret_op = ret, index
        if call > self.max_call:
            self.max_call, self.max_call_op = call, index


def check(ops: Sequence[Operation], model: CasRegister) -> ZoneOutcome:
    """Decide linearizability of `ops` (one key, `applicable` holds) by the zone method."""
    clusters: dict[Hashable, _Cluster] = {}
    initial = _Cluster(model.initial)
    initial.min_ret = _NEG_INF    # the virtual write at minus infinity
    clusters[model.initial] = initial
    for index, op in enumerate(ops):
        if op.f in WRITES:
            value = freeze(op.input)
            cluster = clusters.get(value)
            if cluster is None:
                cluster = clusters[value] = _Cluster(value)
            cluster.write = index
            cluster.include(index, op.call, _INF if op.ret is None else op.ret)
    for index, op in enumerate(ops):
        if op.f in WRITES:
            continue
        value = freeze(op.output)
        cluster = clusters.get(value)
        if cluster is None or (cluster is not initial and cluster.write is None):
            return ZoneOutcome(False, f"read returned {value!r}, which was never written",
                               index, [], None)
        if cluster is not initial:
            write = ops[cluster.write]
            if op.ret < write.call:
                return ZoneOutcome(False, f"read returned {value!r} before its write began",
                                   index, [cluster.write], None)
        cluster.reads.append(index)
        cluster.include(index, op.call, op.ret)

    forward, backward = [], []
    for cluster in clusters.values():
        if cluster is initial and not cluster.reads:
            continue
        if cluster.min_ret < cluster.max_call:
            forward.append((cluster.min_ret, cluster.max_call, cluster))
        elif cluster.write is not None or cluster.reads:
            backward.append((cluster.max_call, cluster.min_ret, cluster))
    forward.sort(key=lambda z: (z[0], z[1]))

    widest = None
    for zone in forward:
        if widest is not None and zone[0] < widest[1]:
            return _conflict(ops, widest[2], zone[2], nested=False)
        if widest is None or zone[1] > widest[1]:
            widest = zone

    starts = [z[0] for z in forward]
    for start, end, cluster in backward:
        # Forward zones are disjoint now: only the one starting last before `start` can
        # contain the backward zone strictly.
        at = bisect.bisect_left(starts, start) - 1
        if at >= 0:
            f_start, f_end, holder = forward[at]
            if f_start < start and end < f_end:
                return _conflict(ops, holder, cluster, nested=True)
    return ZoneOutcome(True)


def _conflict(ops, holder: _Cluster, other: _Cluster, nested: bool) -> ZoneOutcome:
    """Describe two clusters that cannot both be satisfied.

    The op that cannot be placed is the latest-invoked op of the two clusters (for a stale
    read, the read itself); the conflicting ops are the other cluster's."""
    late, early = (holder, other) if holder.max_call >= other.max_call else (other, holder)
    failed = late.max_call_op
    members = ([early.write] if early.write is not None else []) + early.reads
    if late.min_ret_op is not None and late.min_ret_op != failed:
        members.insert(0, late.min_ret_op)
    if nested:
        reason = (f"value {other.value!r} must take effect between {_t(other.max_call)} and "
                  f"{_t(other.min_ret)}, while value {holder.value!r} must hold from "
                  f"{_t(holder.min_ret)} to {_t(holder.max_call)}")
    else:
        reason = (f"value {holder.value!r} must hold from {_t(holder.min_ret)} to "
                  f"{_t(holder.max_call)} and value {other.value!r} from {_t(other.min_ret)} "
                  f"to {_t(other.max_call)}: the spans overlap")
    return ZoneOutcome(False, reason, failed, members, early.value)


def _t(x) -> str:
    if x == _NEG_INF:
        return "the start"
    return "never" if x == _INF else f"{seconds(x)} s"
