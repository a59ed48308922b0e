"""Lost writes: acknowledged data that a store later fails to show.

Three checkers:

- `check_set`: Jepsen's `set` checker. Clients add unique elements to a set and read the whole
  set; the last read is compared with what was attempted and what was acknowledged.
- `check_set_full`: Jepsen's `set-full` checker. Every element is followed through every read,
  which tells a lost element from one not yet visible, and measures how long an acknowledged
  element takes to become stably visible.
- `check_register_lost_writes`: read/write registers with unique written values: an
  acknowledged write is lost when later reads go back to a value older than it in real time.

Common conventions: only `ok` reads are observations; `fail` means the operation certainly did
not happen and `info` that it may or may not have. Keys split a history into independent sets
or registers; key None is one set or register like any other.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Hashable

from checkers.figures import jsonable, ns_to_ms, quantiles, sorted_values
from checkers.history import INFO, OK, READ_FS, Op, Operation, freeze, pair
from checkers.models import ModelError
from checkers.result import UNKNOWN, Result

ADD = "add"
MAX_EXAMPLES = 20
STABLE_LATENCY_QS = (0, 0.5, 0.95, 0.99, 1)


def _elements(read: Operation) -> list[Hashable]:
    """The elements a set read returned (None is the empty set); ModelError when the read did
    not return a collection (a register history given to a set checker)."""
    if read.output is None:
        return []
    if not isinstance(read.output, (list, tuple, set, frozenset)):
        raise ModelError(f"the set checkers need reads that return the whole set, got "
                         f"{read.describe()} (event {read.complete_index})")
    return [freeze(e) for e in read.output]


def _listing(elements) -> list:
    return jsonable(sorted_values(elements))


# --- set ---------------------------------------------------------------------------------------

def check_set(history: list[Op]) -> Result:
    """Jepsen's `set` checker, per key: adds (`f="add"`, value = the element) and reads
    (`f="read"`, value = the whole set as a list).

    - attempts: every element whose add was invoked; acknowledged: every add that ended `ok`;
      final: the `ok` read of the key that completed last.
    - lost = acknowledged - final (invalid); unexpected = final - attempts (invalid);
      recovered = final elements whose add ended `info` or `fail` (a figure: the add did
      happen); ok = final elements that were attempted.
    - Verdict: False when any key has lost or unexpected elements; else "unknown" when a key
      with adds was never read (nothing can be said about it), or when there is nothing at all;
      else True.
    - Figures: counts summed over keys, and a few recovered elements. Counterexample: per
      key, the lost and unexpected elements (at most 20 listed of each) and the final read.
    """
    operations = pair(history)
    attempts: dict[Hashable, set] = defaultdict(set)
    acknowledged: dict[Hashable, set] = defaultdict(set)
    final_read: dict[Hashable, Operation] = {}
    for op in operations:
        if op.f == ADD:
            element = freeze(op.input)
            attempts[op.key].add(element)
            if op.outcome == OK:
                acknowledged[op.key].add(element)
        elif op.f in READ_FS and op.outcome == OK:
            current = final_read.get(op.key)
            if current is None or op.complete_index > current.complete_index:
                final_read[op.key] = op

    keys = sorted_values(set(attempts) | set(final_read))
    totals = dict.fromkeys(("attempt_count", "acknowledged_count", "ok_count", "lost_count",
                            "recovered_count", "unexpected_count"), 0)
    unread_keys = []
    recovered_sample: list = []
    problems = []
    for key in keys:
        totals["attempt_count"] += len(attempts[key])
        totals["acknowledged_count"] += len(acknowledged[key])
        read = final_read.get(key)
        if read is None:
            unread_keys.append(key)
            continue
        final = set(_elements(read))
        ok = final & attempts[key]
        lost = acknowledged[key] - final
        unexpected = final - attempts[key]
        recovered = ok - acknowledged[key]
        totals["ok_count"] += len(ok)
        totals["lost_count"] += len(lost)
        totals["unexpected_count"] += len(unexpected)
        totals["recovered_count"] += len(recovered)
        recovered_sample.extend(_listing(recovered)[:MAX_EXAMPLES - len(recovered_sample)])
        if lost or unexpected:
            problems.append({"key": jsonable(key), "final_read": read.describe(),
                             "lost_count": len(lost), "lost": _listing(lost)[:MAX_EXAMPLES],
                             "unexpected_count": len(unexpected),
                             "unexpected": _listing(unexpected)[:MAX_EXAMPLES]})

    figures = {"keys": len(keys), **totals, "unread_keys": jsonable(unread_keys),
               "recovered": recovered_sample}
    if problems:
        summary = (f"{totals['lost_count']} acknowledged element(s) lost, "
                   f"{totals['unexpected_count']} unexpected")
        return Result("set", False, summary, figures, {"keys": problems})
    if not keys:
        return Result("set", UNKNOWN, "no adds and no reads: the set was never read", figures)
    if unread_keys:
        return Result("set", UNKNOWN,
                      f"{len(unread_keys)} set(s) never read (no ok read)", figures)
    return Result("set", True,
                  f"all {totals['acknowledged_count']} acknowledged element(s) present in the "
                  f"final read ({totals['recovered_count']} recovered)", figures)


# --- set-full ----------------------------------------------------------------------------------

STABLE = "stable"
LOST = "lost"
NEVER_READ = "never-read"
UNACKNOWLEDGED = "unacknowledged"


@dataclass
class _Element:
    """What the history says about one element of one set."""

    element: Hashable
    add: Operation                       # its first add
    acked_at: int | None = None          # earliest return of an ok add
    present_in: list[int] = field(default_factory=list)   # positions of reads that saw it

    @property
    def start(self) -> int:
        """From when its visibility is measured: the acknowledgement, else the invocation."""
        return self.acked_at if self.acked_at is not None else self.add.call


def check_set_full(history: list[Op], *, linearizable: bool = False) -> Result:
    """Jepsen's `set-full` checker, per key: follow every added element through every `ok`
    read (reads taken in invocation order; the last read is the latest invoked).

    An element is *known* from the earlier of its add's acknowledgement and the completion of
    the first read that saw it. Each attempted element ends in exactly one state:

    - stable: present in the last read;
    - lost: known, absent from the last read, and that read began after it was known
      (invalid); counted apart when its add was acknowledged (`lost_acknowledged_count`),
      and the invocation times of every lost element's add are in the counterexample
      (`lost_add_calls`), for telling when the damage was done;
    - never-read: known, but no read began after it was known;
    - unacknowledged: its add ended `fail` or `info` and no read ever saw it (it may never
      have happened; not a problem).

    A stable element that some read begun after it was known missed is *stale* (a figure; also
    invalid with `linearizable=True`, since a linearizable set never hides a known element).
    Stable latency runs from the acknowledgement (the invocation, for an add that was not
    acknowledged) to the invocation of the last read that missed the element, the read after
    which it was always present (0 if no read missed it after that point): like Jepsen, a
    lower bound on when the element became stably visible. Reported in milliseconds at
    quantiles 0, 0.5, 0.95, 0.99 and 1.

    Elements present in reads but never added are unexpected (invalid). Verdict: False when
    any element is lost or unexpected (or stale, with `linearizable`); "unknown" when a key
    with adds has no ok read, or there is nothing at all; else True.
    """
    operations = pair(history)
    adds: dict[Hashable, list[Operation]] = defaultdict(list)
    reads: dict[Hashable, list[Operation]] = defaultdict(list)
    for op in operations:
        if op.f == ADD:
            adds[op.key].append(op)
        elif op.f in READ_FS and op.outcome == OK:
            reads[op.key].append(op)

    for key_reads in reads.values():
        key_reads.sort(key=lambda r: (r.call, r.id))
    keys = sorted_values(set(adds) | set(reads))
    counts = dict.fromkeys((STABLE, LOST, NEVER_READ, UNACKNOWLEDGED, "stale", "unexpected"), 0)
    latencies: list[float] = []
    lost_examples: list[dict] = []
    lost_calls: list[int] = []           # when every lost element's add was invoked
    lost_acknowledged = 0
    stale_examples: list[dict] = []
    unexpected_examples: list[dict] = []
    unread_keys = []
    attempts = acknowledged = 0
    for key in keys:
        elements = _follow(adds[key], reads[key])
        attempts += len(elements)
        acknowledged += sum(1 for e in elements.values() if e.acked_at is not None)
        key_reads = reads[key]
        if not key_reads:
            unread_keys.append(key)
        read_calls = [r.call for r in key_reads]
        for e in elements.values():
            state, stale, latency = _fate(e, key_reads, read_calls)
            counts[state] += 1
            if latency is not None:
                latencies.append(ns_to_ms(latency))
            if state == LOST:
                lost_calls.append(e.add.call)
                lost_acknowledged += e.acked_at is not None
                if len(lost_examples) < MAX_EXAMPLES:
                    lost_examples.append(_lost_example(key, e, key_reads))
            if stale:
                counts["stale"] += 1
                if len(stale_examples) < MAX_EXAMPLES:
                    stale_examples.append({"key": jsonable(key), "element": jsonable(e.element),
                                           "add": e.add.describe()})
        unexpected: set = set()
        for read in key_reads:
            for element in _elements(read):
                if element not in elements and element not in unexpected:
                    unexpected.add(element)
                    counts["unexpected"] += 1
                    if len(unexpected_examples) < MAX_EXAMPLES:
                        unexpected_examples.append({"key": jsonable(key),
                                                    "element": jsonable(element),
                                                    "first_read": read.describe()})

    figures = {"keys": len(keys), "attempt_count": attempts, "acknowledged_count": acknowledged,
               "stable_count": counts[STABLE], "lost_count": counts[LOST],
               "lost_acknowledged_count": lost_acknowledged,
               "never_read_count": counts[NEVER_READ],
               "unacknowledged_count": counts[UNACKNOWLEDGED],
               "stale_count": counts["stale"], "unexpected_count": counts["unexpected"],
               "stable_latency_ms": quantiles(latencies, STABLE_LATENCY_QS),
               "unread_keys": jsonable(unread_keys)}
    bad_stale = linearizable and counts["stale"] > 0
    if counts[LOST] or counts["unexpected"] or bad_stale:
        counterexample: dict[str, Any] = {}
        if lost_examples:
            counterexample["lost"] = lost_examples
            counterexample["lost_add_calls"] = sorted(lost_calls)
        if unexpected_examples:
            counterexample["unexpected"] = unexpected_examples
        if bad_stale:
            counterexample["stale"] = stale_examples
        summary = f"{counts[LOST]} element(s) lost, {counts['unexpected']} unexpected"
        if bad_stale:
            summary += f", {counts['stale']} stale"
        return Result("set-full", False, summary, figures, counterexample)
    if not keys:
        return Result("set-full", UNKNOWN, "no adds and no reads", figures)
    if any(adds[k] for k in unread_keys):
        return Result("set-full", UNKNOWN,
                      f"{len(unread_keys)} set(s) with adds never read (no ok read)", figures)
    return Result("set-full", True,
                  f"{counts[STABLE]} stable, {counts[NEVER_READ]} never read, "
                  f"{counts['stale']} stale, none lost", figures)


def _follow(adds: list[Operation], reads: list[Operation]) -> dict[Hashable, _Element]:
    """Each attempted element with its add, acknowledgement and the reads that saw it."""
    elements: dict[Hashable, _Element] = {}
    for op in adds:
        element = freeze(op.input)
        e = elements.get(element)
        if e is None:
            e = elements[element] = _Element(element, op)
        if op.outcome == OK and (e.acked_at is None or op.ret < e.acked_at):
            e.acked_at = op.ret
    for position, read in enumerate(reads):
        for element in set(_elements(read)):
            e = elements.get(element)
            if e is not None:
                e.present_in.append(position)
    return elements


def _fate(e: _Element, reads: list[Operation],
          read_calls: list[int]) -> tuple[str, bool, int | None]:
    """(state, stale?, stable latency in ns or None) of one element; see `check_set_full`.
    `read_calls` are the reads' invocation times, in order."""
    seen_at = min((reads[p].ret for p in e.present_in), default=None)
    known = min((t for t in (e.acked_at, seen_at) if t is not None), default=None)
    if known is None:
        return UNACKNOWLEDGED, False, None
    last = len(reads) - 1
    if e.present_in and e.present_in[-1] == last:
        # the reads from `run_start` on all saw it; the one before missed it
        run_start = last
        for i in range(len(e.present_in) - 1, 0, -1):
            if e.present_in[i - 1] != e.present_in[i] - 1:
                break
            run_start -= 1
        # reads are in invocation order, so those begun after `known` are a suffix
        begun_after_known = len(reads) - bisect.bisect_right(read_calls, known)
        present_after_known = len(e.present_in) - bisect.bisect_right(
            [reads[p].call for p in e.present_in], known)
        stale = present_after_known < begun_after_known
        last_miss = run_start - 1
        latency = 0
        if last_miss >= 0:
            latency = max(0, reads[last_miss].call - e.start)
        return STABLE, stale, latency
    if last >= 0 and reads[last].call > known:
        return LOST, False, None
    return NEVER_READ, False, None


def _lost_example(key: Hashable, e: _Element, reads: list[Operation]) -> dict:
    example = {"key": jsonable(key), "element": jsonable(e.element), "add": e.add.describe(),
               "call": e.add.call, "missing_from": reads[-1].describe()}
    if e.present_in:
        example["last_seen_in"] = reads[e.present_in[-1]].describe()
    return example


# --- registers ---------------------------------------------------------------------------------

REGISTER_WRITE_FS = frozenset({"write", "put"})
CAS = "cas"
_NEVER = float("inf")
_BEGINNING = float("-inf")


@dataclass
class _Written:
    """A value and the operation that wrote it (None for the initial value)."""

    op: Operation | None
    ret: float                      # when it had surely been written; -inf for the initial value


def check_register_lost_writes(history: list[Op]) -> Result:
    """Acknowledged register writes that vanished, for read/write(/cas) histories in which
    every written value is unique per key (a read then names the write it saw).

    Rule, per key. An `ok` write (or `ok` cas) w of value v is *lost* iff both:

    1. no `ok` read invoked after w returned returns v; and
    2. some `ok` read r invoked after w returned returns a value u whose write returned
       before w was invoked (strictly earlier in real time), or the initial value (a read of
       nil, when no write wrote nil).

    r then shows the register back at a state that w had overwritten, and v never comes back:
    w vanished, or r was served from a stale copy (a follower's serializable read), which the
    history alone cannot tell apart; either way the history is not linearizable. (Writes
    concurrent with w may legitimately overwrite it; they do not count, since they did not
    return before w began.) Values written more than once (by `ok` or
    `info` ops) are ambiguous: writes of them are not judged and reads of them prove nothing.

    Also reported, not a violation: acknowledged writes whose value no `ok` read ever returned
    (normal when reads are sparse, worth a look when they are not).

    Verdict: False when some write is lost; "unknown" when there are ok writes but no ok read;
    else True. Counterexample: up to 20 lost writes, each with the read that proves it and the
    older write that read saw.
    """
    operations = pair(history)
    by_key: dict[Hashable, list[Operation]] = defaultdict(list)
    for op in operations:
        if op.f in READ_FS or op.f in REGISTER_WRITE_FS or op.f == CAS:
            by_key[op.key].append(op)

    lost: list[dict] = []
    lost_count = writes_checked = reads_checked = ambiguous = 0
    unobserved: list[dict] = []
    for key in sorted_values(by_key):
        found = _lost_in_register(by_key[key])
        lost_count += len(found.lost)
        lost.extend(_lost_register_example(key, *w)
                    for w in found.lost[:MAX_EXAMPLES - len(lost)])
        writes_checked += found.writes_checked
        reads_checked += found.reads_checked
        ambiguous += found.ambiguous_values
        if found.unobserved:
            unobserved.append({"key": jsonable(key), "count": found.unobserved})

    figures = {"keys": len(by_key), "writes_checked": writes_checked,
               "reads_checked": reads_checked, "lost_count": lost_count,
               "ambiguous_values": ambiguous,
               "unobserved_count": sum(u["count"] for u in unobserved),
               "unobserved_by_key": unobserved}
    if lost_count:
        # The register went back before each of them: a lost write, or a read served from a
        # stale copy (a follower read); the history alone cannot tell the two apart.
        return Result("register-lost-writes", False,
                      f"{lost_count} acknowledged write(s) lost or read stale: later reads "
                      f"went back to older values", figures, {"lost": lost})
    if writes_checked and not reads_checked:
        return Result("register-lost-writes", UNKNOWN,
                      "acknowledged writes but no ok read to observe them", figures)
    return Result("register-lost-writes", True,
                  f"no lost writes among {writes_checked} acknowledged write(s); "
                  f"{figures['unobserved_count']} never observed", figures)


@dataclass
class _RegisterFindings:
    lost: list[tuple[Operation, Operation, _Written]] = field(default_factory=list)
    writes_checked: int = 0
    reads_checked: int = 0
    ambiguous_values: int = 0
    unobserved: int = 0


def _written_value(op: Operation) -> Any:
    if op.f == CAS:
        if isinstance(op.input, (list, tuple)) and len(op.input) == 2:
            return op.input[1]
        return None
    return op.input


def _lost_in_register(ops: list[Operation]) -> _RegisterFindings:
    """Apply `check_register_lost_writes`'s rule to one key's operations, in O(n log n)."""
    found = _RegisterFindings()
    writers: dict[Hashable, list[Operation]] = defaultdict(list)
    for op in ops:
        if op.f not in READ_FS and op.outcome in (OK, INFO):
            writers[freeze(_written_value(op))].append(op)
    found.ambiguous_values = sum(1 for w in writers.values() if len(w) > 1)

    def written(value: Hashable) -> _Written | None:
        """Who wrote `value`, if that is unambiguous."""
        ws = writers.get(value)
        if ws is None:
            return _Written(None, _BEGINNING) if value is None else None
        if len(ws) > 1:
            return None
        w = ws[0]
        return _Written(w, w.ret if w.ret is not None else _NEVER)

    reads = sorted((op for op in ops if op.f in READ_FS and op.outcome == OK),
                   key=lambda r: r.call)
    found.reads_checked = len(reads)
    calls = [r.call for r in reads]
    last_read_of: dict[Hashable, int] = {}
    sources: list[_Written | None] = []
    for r in reads:
        value = freeze(r.output)
        last_read_of[value] = max(last_read_of.get(value, r.call), r.call)
        sources.append(written(value))
    # oldest[i]: among reads i.., the one whose value was surely written earliest
    oldest: list[tuple[float, int]] = [(_NEVER, -1)] * (len(reads) + 1)
    for i in range(len(reads) - 1, -1, -1):
        source = sources[i]
        here = (source.ret, i) if source is not None else (_NEVER, -1)
        oldest[i] = min(here, oldest[i + 1])

    for w in ops:
        if w.f in READ_FS or w.outcome != OK:
            continue
        value = freeze(_written_value(w))
        if len(writers[value]) > 1:
            continue
        found.writes_checked += 1
        if value not in last_read_of:
            found.unobserved += 1
        if last_read_of.get(value, _BEGINNING) > w.ret:
            continue                      # v was seen after w returned: not lost
        after = bisect.bisect_right(calls, w.ret)
        written_at, i = oldest[after]
        if i >= 0 and written_at < w.call:
            found.lost.append((w, reads[i], sources[i]))
    return found


def _lost_register_example(key: Hashable, w: Operation, read: Operation,
                           source: _Written) -> dict:
    return {"key": jsonable(key), "write": w.describe(), "write_id": w.id,
            "read": read.describe(), "read_id": read.id,
            "read_value_written_by": (source.op.describe() if source.op is not None
                                      else "the initial value")}
