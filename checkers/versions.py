"""Linearizability of a register whose store reports versions, in one sweep.

When every write reports the version it created (refnode: the log index) and every read the
version it saw, the versions propose the write order. The history is linearizable with that
order iff every read's version belongs to a write of the same value (or to the initial value),
versions are unique per write, a cas found its predecessor's value, no read returns before the
write it saw is invoked, and for every op b, with M the largest version among the ops that
returned before b was invoked, a write has a version > M and a read a version >= M.

Finding that order is proof of linearizability. Failing it proves only that the store's
versions are inconsistent, not that no other order exists, so the caller falls back to a method
that decides on values alone (`confirms_violation` is False).
"""

from __future__ import annotations

from typing import Sequence

from checkers.history import Operation, freeze
from checkers.models import CAS, READS, WRITES, CasRegister

INITIAL_VERSION = 0


def applicable(ops: Sequence[Operation], model) -> bool:
    """Whether the sweep can run: a register model, and every op that surely completed reports
    a version (crashed writes may lack one)."""
    if not isinstance(model, CasRegister):
        return False
    for op in ops:
        if op.ret is not None and op.version is None:
            return False
        if op.f not in READS and op.f not in WRITES and op.f not in CAS:
            return False
        if op.outcome == "fail":     # a failed cas as an observation: no version to place
            return False
    return bool(ops)


def consistent(ops: Sequence[Operation], model: CasRegister) -> bool:
    """True iff the versions give a linearization of `ops` (see the module docstring)."""
    value_of = {INITIAL_VERSION: model.initial}
    writer_of: dict[int, Operation] = {}
    crashed_by_value: dict = {}
    for op in ops:
        if op.f in READS:
            continue
        if op.version is None:      # a crashed write: placed only if some read saw it
            value = _new_value(op)
            crashed_by_value[value] = None if value in crashed_by_value else op
            continue
        if op.version in value_of:
            return False
        value_of[op.version] = _new_value(op)
        writer_of[op.version] = op

    placed: list[tuple[Operation, float]] = []
    for op in ops:
        version = op.version
        if op.f in READS:
            seen = freeze(op.output)
            if version not in value_of:
                crashed = crashed_by_value.get(seen)
                if crashed is None or version is None:
                    return False
                value_of[version] = seen
                writer_of[version] = crashed
                placed.append((crashed, version))
                crashed_by_value[seen] = None
            if value_of[version] != seen:
                return False
            writer = writer_of.get(version)
            if writer is not None and op.ret < writer.call:
                return False
        if version is not None:
            placed.append((op, version))

    ordered_versions = sorted(value_of)
    for before, after in zip(ordered_versions, ordered_versions[1:]):
        op = writer_of.get(after)
        if op is None or op.f not in CAS:
            continue
        expected = freeze(op.input[0])
        if expected == value_of[before]:
            continue
        # A crashed write that no read saw may still have taken effect just before the cas
        # (it has a log index of its own that nobody reported): place it there.
        crashed = crashed_by_value.get(expected)
        if crashed is None or (crashed.f in CAS
                               and freeze(crashed.input[0]) != value_of[before]):
            return False
        crashed_by_value[expected] = None
        placed.append((crashed, after - 0.5))

    events = []
    for op, version in placed:
        events.append((op.call, 0, version, op.f in READS))
        if op.ret is not None:
            events.append((op.ret, 1, version, False))
    events.sort(key=lambda e: (e[0], e[1]))
    highest = INITIAL_VERSION
    for _, is_return, version, is_read in events:
        if is_return:
            if version > highest:
                highest = version
        elif is_read:
            if version < highest:
                return False
        elif version <= highest:
            return False
    return True


def _new_value(op: Operation):
    return freeze(op.input[1]) if op.f in CAS else freeze(op.input)
