"""Basic statistics of a history: what was attempted, what succeeded, how fast.

These are the figures a person reads first after a run (did anything work at all, how much
failed under the faults, what the latencies were), as Jepsen's `stats` and `perf` checkers
report them. They judge nothing: availability is not safety, and a history in which nothing
succeeded is still consistent (the summary says so; a run's liveness check judges recovery).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from checkers.figures import ns_to_ms, quantiles
from checkers.history import FAIL, INFO, OK, Op, pair
from checkers.result import Result

LATENCY_QS = (0.5, 0.95, 0.99, 1)
OUTCOMES = (OK, FAIL, INFO)


def check_stats(history: list[Op]) -> Result:
    """Counts, latencies, availability and throughput of the client operations of `history`
    (nemesis events are counted apart and otherwise ignored).

    Figures:
    - `count`: operations; `by_type`: counts of ok / fail / info (an invocation never completed
      counts as info); `by_f`: the same per `f`;
    - `latency_ms`: per `f`, quantiles 0.5, 0.95, 0.99 and max of the latency of ok operations
      (completion time minus invocation time), in milliseconds;
    - `availability`: the share of operations with a completion event that completed ok,
      overall and per `f` (None when nothing completed);
    - `throughput_per_s`: ok operations per second over the history's span (first to last
      event); None when the span is empty;
    - `nemesis_events`: the number of nemesis events.

    Verdict: always True (figures, not a judgement); the summary says when no operation
    succeeded.
    """
    history = list(history)
    operations = pair(history)
    times = [event.time for event in history]
    nemesis_events = sum(1 for event in history if event.is_nemesis)

    by_f: dict[str, Counter] = defaultdict(Counter)
    completed: Counter = Counter()
    latencies: dict[str, list[float]] = defaultdict(list)
    for op in operations:
        by_f[op.f][op.outcome] += 1
        if op.complete_index is not None:
            completed[op.f] += 1
        if op.outcome == OK:
            latencies[op.f].append(ns_to_ms(op.ret - op.call))

    by_type = {outcome: sum(c[outcome] for c in by_f.values()) for outcome in OUTCOMES}
    all_completed = sum(completed.values())
    span = max(times) - min(times) if times else 0
    figures = {
        "count": len(operations),
        "by_type": by_type,
        "by_f": {f: {outcome: c[outcome] for outcome in OUTCOMES}
                 for f, c in sorted(by_f.items())},
        "latency_ms": {f: quantiles(latencies[f], LATENCY_QS) for f in sorted(by_f)},
        "availability": {
            "overall": _share(by_type[OK], all_completed),
            "by_f": {f: _share(c[OK], completed[f]) for f, c in sorted(by_f.items())},
        },
        "throughput_per_s": round(by_type[OK] / (span / 1e9), 3) if span > 0 else None,
        "nemesis_events": nemesis_events,
    }
    if by_type[OK] == 0:
        return Result("stats", True, "no operation succeeded (the history tests little)",
                      figures)
    return Result("stats", True,
                  f"{by_type[OK]} ok, {by_type[FAIL]} fail, {by_type[INFO]} info "
                  f"of {len(operations)} operations", figures)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None
