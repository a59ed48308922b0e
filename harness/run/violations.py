"""The first violation of a run, in terms a person can act on.

A failing checker's counterexample names operations; this finds the earliest violating one
(`first_violation`) and, against the run's own history, says when it happened, which node
served it, and which faults were in force at that moment (`violation_context`): for a stale
read, the member that answered and the partition that had cut it off.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from checkers.history import Op
from harness.faults import schedule as nemesis
from harness.faults.schedule import HEAL

# What of a fault's recorded details says what it did, in this order.
FAULT_DETAILS = ("shape", "target", "nodes", "links", "offset", "rate", "latency_ms")


def first_violation(results: Iterable) -> dict[str, Any] | None:
    """The earliest violating operation of any failing checker, as its counterexample gives
    it (at least its `call` time), or None when nothing failed. The violating op is the
    counterexample's "op" (linearizability) or "violating" ops (sessions); failing those, the
    earliest op the counterexample names at all, or its "at" (a violation observed at a
    moment, as election safety's)."""
    earliest: dict[str, Any] | None = None

    def consider(found: dict[str, Any], call: Any) -> None:
        nonlocal earliest
        if isinstance(call, int) and (earliest is None or call < earliest["call"]):
            earliest = dict(found, call=call)

    def visit(value: Any, wanted: str | None) -> None:
        if isinstance(value, dict):
            if wanted is None:
                consider(value, value.get("call"))
                consider({}, value.get("at"))
            for name, item in value.items():
                if name == wanted and isinstance(item, dict):
                    consider(item, item.get("call"))
                visit(item, wanted)
        elif isinstance(value, list):
            for item in value:
                visit(item, wanted)

    for result in results:
        if result.valid is False and result.counterexample:
            before = earliest
            for wanted in ("op", "violating"):
                visit(result.counterexample, wanted)
            if earliest is before:
                visit(result.counterexample, None)
    return earliest


def placement(results: Sequence, events: Sequence[Op]) -> dict[str, Any]:
    """What results.json says of where the damage stands: `first_violation_seconds`,
    `first_violation` (`violation_context`) and `losses` (`losses_context`)."""
    return {"first_violation_seconds": first_violation_seconds(results),
            "first_violation": violation_context(results, events),
            "losses": losses_context(results, events)}


def first_violation_seconds(results: Iterable) -> float | None:
    """When the earliest violating operation was invoked, in seconds from the start of the
    history (None when nothing failed)."""
    found = first_violation(results)
    return None if found is None else round(found["call"] / 1e9, 3)


def violation_context(results: Sequence, events: Sequence[Op]) -> dict[str, Any] | None:
    """The first violation with what the history adds: {"seconds", "op" (its description),
    "process", "node" (that served it), "faults" (in force when it was invoked), and
    "last_fault" (the last one that had ended by then, and how long before)}; None when
    nothing failed."""
    found = first_violation(results)
    if found is None:
        return None
    context: dict[str, Any] = {"seconds": round(found["call"] / 1e9, 3)}
    if found.get("description"):
        context["op"] = found["description"]
    index = found.get("invoke_index")
    if isinstance(index, int) and 0 <= index < len(events) and \
            events[index].index == index:
        process = events[index].process
        context["process"] = process
        completion = next((e for e in events[index + 1:] if e.process == process), None)
        if completion is not None and completion.node:
            context["node"] = completion.node
    timeline = fault_intervals(events)
    context["faults"] = in_force(timeline, found["call"])
    last = last_ended(timeline, found["call"])
    if last is not None:
        # Damage often outlives its fault (a member still catching up after a partition).
        context["last_fault"] = {"fault": last[2],
                                 "ended_seconds_before": round((found["call"] - last[1]) / 1e9,
                                                               3)}
    return context


def losses_context(results: Sequence, events: Sequence[Op]) -> dict[str, Any] | None:
    """For lost set elements: how many, how many of their adds were acknowledged, between
    when their adds were invoked, and how many were added during each fault (or after the
    last one ended, with none in force); None when no set lost anything."""
    calls: list[int] = []
    lost = acknowledged = 0
    for result in results:
        if result.valid is False and result.counterexample and \
                result.counterexample.get("lost_add_calls"):
            calls += result.counterexample["lost_add_calls"]
            lost += result.figures.get("lost_count", 0)
            acknowledged += result.figures.get("lost_acknowledged_count", 0)
    if not calls:
        return None
    timeline = fault_intervals(events)
    by_fault: dict[str, int] = {}
    for call in calls:
        during = in_force(timeline, call)
        if not during:
            last = last_ended(timeline, call)
            during = [f"no fault (after {last[2]})" if last else "no fault"]
        for fault in during:
            by_fault[fault] = by_fault.get(fault, 0) + 1
    return {"lost": lost, "acknowledged": acknowledged,
            "added_between_seconds": [round(min(calls) / 1e9, 3), round(max(calls) / 1e9, 3)],
            "by_fault": dict(sorted(by_fault.items(), key=lambda kv: -kv[1]))}


Interval = tuple[int, int | None, str]      # start, end (None: never undone), description


def fault_intervals(events: Iterable[Op]) -> list[Interval]:
    """Each fault that took effect, from the moment it was applied to the moment its undoing
    began (or the final heal), described in a line ("start-partition shape=isolate
    links=n1->n2,...")."""
    active: dict[str, tuple[int, str]] = {}
    intervals: list[Interval] = []
    for event in events:
        if not event.is_nemesis:
            continue
        if event.f == HEAL:
            intervals += [(start, event.time, desc) for start, desc in active.values()]
            active.clear()
            continue
        value = event.value if isinstance(event.value, dict) else {}
        try:
            kind = nemesis.kind_of({"f": event.f, "value": value})
        except ValueError:
            continue
        starting = "of" not in value
        if starting and event.type == "info" and not value.get("error") and \
                not value.get("skipped"):
            active[kind] = (event.time, _describe(event.f, value))
        elif not starting and event.type == "invoke" and kind in active:
            start, desc = active.pop(kind)
            intervals.append((start, event.time, desc))
    intervals += [(start, None, desc) for start, desc in active.values()]
    return sorted(intervals, key=lambda i: i[0])


def in_force(timeline: list[Interval], time: int) -> list[str]:
    """The faults in force at `time`."""
    return [desc for start, end, desc in timeline
            if start <= time and (end is None or time < end)]


def last_ended(timeline: list[Interval], time: int) -> Interval | None:
    """The fault whose undoing began last before `time`, if any."""
    ended = [i for i in timeline if i[1] is not None and i[1] <= time]
    return max(ended, key=lambda i: i[1]) if ended else None


def _describe(f: str, value: dict[str, Any]) -> str:
    parts = [f]
    for name in FAULT_DETAILS:
        if name in value and value[name] not in (None, [], ""):
            item = value[name]
            text = ",".join(map(str, item)) if isinstance(item, list) else str(item)
            parts.append(f"{name}={text}")
    return " ".join(parts)
