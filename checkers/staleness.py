"""Staleness: how far behind the latest acknowledged writes the reads were.

A read is stale when writes to its key had already been acknowledged before it began and it
saw an older version. Two measures, after k-atomicity and delta-atomicity (Golab, Li and Shah,
PODC 2011): how many such newer versions it missed, and for how long the oldest of them had
been acknowledged. Stores that promise only eventual or bounded staleness (follower reads,
lease reads) are judged by these figures, not by a yes/no verdict, so staleness is invalid only
against limits the caller gives.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from typing import Hashable

from checkers.figures import jsonable, ns_to_ms, quantiles
from checkers.history import OK, READ_FS, Op, Operation, pair
from checkers.result import UNKNOWN, Result
from checkers.session import WRITE_FS

QS = (0.5, 0.9, 0.99, 1)
MAX_EXAMPLES = 10


@dataclass
class _Staleness:
    read: Operation
    versions_behind: int
    time_behind: int                 # ns
    oldest_missed: Operation | None  # the missed write that returned first


def check_staleness(history: list[Op], *, max_versions_behind: int | None = None,
                    max_time_behind_ms: float | None = None) -> Result:
    """Measure, for every `ok` read with a version, per key:

    - versions behind: the number of distinct versions of `ok` writes (`write`, `cas`, `put`,
      `append`, `add`) of its key that returned before the read was invoked and are newer than
      the version it saw;
    - time behind: the read's invocation time minus the earliest return among those writes
      (0 when there are none).

    Figures: reads checked, reads skipped for lack of a version, stale reads (versions behind
    > 0) and their share, quantiles 0.5, 0.9, 0.99 and max of both measures (time in ms).

    Verdict: True (staleness is a measure, not a violation), unless `max_versions_behind` or
    `max_time_behind_ms` is given and some read exceeds it (strictly): then False, with up to
    10 of the worst such reads as counterexample. When there are ok reads but none reports a
    version, nothing is measured: "unknown" if limits were given (the judgement asked for
    cannot be made), else True with a summary that says so (a store that reports no versions,
    such as Redis, must not make every run's verdict unknown). O(n log n): per key, writes
    are swept in order of return against reads in order of invocation, with Fenwick trees
    over version ranks.
    """
    operations = pair(history)
    reads: dict[Hashable, list[Operation]] = defaultdict(list)
    writes: dict[Hashable, list[Operation]] = defaultdict(list)
    skipped = 0
    for op in operations:
        if op.outcome != OK:
            continue
        if op.f in READ_FS:
            if op.version is None:
                skipped += 1
            else:
                reads[op.key].append(op)
        elif op.f in WRITE_FS and op.version is not None:
            writes[op.key].append(op)

    measured: list[_Staleness] = []
    for key, key_reads in reads.items():
        measured.extend(_measure(key_reads, writes.get(key, [])))

    stale = [m for m in measured if m.versions_behind > 0]
    figures = {"reads_checked": len(measured), "reads_skipped_without_version": skipped,
               "stale_reads": len(stale),
               "stale_share": round(len(stale) / len(measured), 6) if measured else None,
               "versions_behind": quantiles((m.versions_behind for m in measured), QS),
               "time_behind_ms": quantiles((ns_to_ms(m.time_behind) for m in measured), QS)}
    if not measured:
        if skipped:
            limited = max_versions_behind is not None or max_time_behind_ms is not None
            return Result("staleness", UNKNOWN if limited else True,
                          "not measured: staleness needs read versions, and no read reports "
                          "one", figures)
        return Result("staleness", True, "no ok reads to measure", figures)

    def too_stale(m: _Staleness) -> bool:
        return ((max_versions_behind is not None and m.versions_behind > max_versions_behind)
                or (max_time_behind_ms is not None
                    and ns_to_ms(m.time_behind) > max_time_behind_ms))

    worst_reads = sorted((m for m in measured if too_stale(m)),
                         key=lambda m: (-m.versions_behind, -m.time_behind, m.read.id))
    figures["reads_over_limit"] = len(worst_reads)
    summary = (f"{len(stale)} of {len(measured)} reads stale; at most "
               f"{figures['versions_behind']['max']} version(s), "
               f"{figures['time_behind_ms']['max']} ms behind")
    if worst_reads:
        limits = {"max_versions_behind": max_versions_behind,
                  "max_time_behind_ms": max_time_behind_ms}
        return Result("staleness", False,
                      f"{len(worst_reads)} read(s) over the staleness limit; {summary}",
                      figures, {"limits": limits,
                                "reads": [_example(m) for m in worst_reads[:MAX_EXAMPLES]]})
    return Result("staleness", True, summary, figures)


def _measure(reads: list[Operation], writes: list[Operation]) -> list[_Staleness]:
    """Staleness of one key's reads against that key's acknowledged, versioned writes."""
    first_return: dict[int, Operation] = {}      # version -> its write that returned first
    for w in writes:
        known = first_return.get(w.version)
        if known is None or w.ret < known.ret:
            first_return[w.version] = w
    versions = sorted(first_return)
    rank = {v: i for i, v in enumerate(versions)}
    n = len(versions)
    counts = _CountTree(n)
    # earliest return among versions ranked >= i, as a prefix over reversed ranks
    earliest = _MinTree(n)
    by_return = sorted(first_return.values(), key=lambda w: w.ret)

    out = []
    inserted = 0
    for r in sorted(reads, key=lambda r: r.call):
        while inserted < n and by_return[inserted].ret < r.call:
            w = by_return[inserted]
            counts.add(rank[w.version])
            earliest.lower(n - 1 - rank[w.version], (w.ret, w.id, w))
            inserted += 1
        newer_from = bisect.bisect_right(versions, r.version)   # ranks of versions > r's
        behind = inserted - counts.prefix(newer_from)
        oldest = earliest.prefix(n - newer_from) if behind else None
        out.append(_Staleness(r, behind, r.call - oldest[0] if oldest else 0,
                              oldest[2] if oldest else None))
    return out


def _example(m: _Staleness) -> dict:
    example = {"read": m.read.describe(), "id": m.read.id, "key": jsonable(m.read.key),
               "version": m.read.version, "versions_behind": m.versions_behind,
               "time_behind_ms": ns_to_ms(m.time_behind)}
    if m.oldest_missed is not None:
        example["oldest_missed_write"] = {"id": m.oldest_missed.id,
                                          "version": m.oldest_missed.version,
                                          "op": m.oldest_missed.describe()}
    return example


class _CountTree:
    """Fenwick tree of counts: add one at a position, count positions < i."""

    def __init__(self, size: int):
        self._tree = [0] * (size + 1)

    def add(self, position: int) -> None:
        i = position + 1
        while i < len(self._tree):
            self._tree[i] += 1
            i += i & -i

    def prefix(self, end: int) -> int:
        total, i = 0, end
        while i > 0:
            total += self._tree[i]
            i -= i & -i
        return total


class _MinTree:
    """Fenwick tree of minima: lower the value at a position, least value at positions < i
    (None when all are unset). Values only ever decrease, which is all a min tree supports."""

    def __init__(self, size: int):
        self._tree: list = [None] * (size + 1)

    def lower(self, position: int, value) -> None:
        i = position + 1
        while i < len(self._tree):
            if self._tree[i] is None or value < self._tree[i]:
                self._tree[i] = value
            i += i & -i

    def prefix(self, end: int):
        best, i = None, end
        while i > 0:
            if self._tree[i] is not None and (best is None or self._tree[i] < best):
                best = self._tree[i]
            i -= i & -i
        return best
