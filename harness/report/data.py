"""A run directory read into plain data for its report (`read_run`), and the violation the
report puts under a magnifying glass (`find_violation`).

Reading is forgiving where the checkers are strict: a report is most wanted for a run that went
wrong (the harness killed halfway, a history cut mid-line, no results.json yet), so whatever
cannot be read is skipped and said in `RunData.problems`, never raised. Only a directory that
holds none of a run's files is refused (`NotARunDirectory`).

Times stay in nanoseconds on the history's clock, as in the files; the plots convert.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import orjson

from checkers.history import COMPLETIONS, INFO, INVOKE, NEMESIS, Operation
from harness.faults.schedule import HEAL, kind_of
from harness.rundirs import store

# A run directory holds at least one of these; a directory with none is something else.
RUN_FILES = (store.TEST_FILE, store.HISTORY_FILE, store.RESULTS_FILE)
CLUSTER_FILE = "cluster.json"
# Where in a counterexample the operations that are context rather than part of the
# violation are kept (linearizability's concurrent ops and the tail of its longest prefix).
CONTEXT_KEYS = ("concurrent", "prefix_tail")
# Where the violating operation itself is named (linearizability: "op"; sessions: "violating").
VIOLATING_KEYS = ("violating",)
# A window around the first violation: at least this much either side of it (ns), widened to
# take in the operations its counterexample names within REACH of it.
BEFORE, AFTER = 1_000_000_000, 1_000_000_000
REACH = (5_000_000_000, 2_000_000_000)
MARGIN = 250_000_000
# `Operation.describe`'s times: "[1.200000..1.201500 s]" or "[1.200000 s, never returned]".
_DESCRIPTION = re.compile(r"^process (\S+) .*\[(\d+\.\d+)(?:\.\.\d+\.\d+)? s(?:, never "
                          r"returned)?\]$")
_DESCRIPTION_SLACK = 1_000        # ns: descriptions round times to microseconds


class NotARunDirectory(ValueError):
    """A path that is not a run directory: its message is one line fit to show a user."""


@dataclass(slots=True)
class ReportOp:
    """One client operation: its invocation and its completion, if any.

    `done` is when the completion was recorded, for `info` too (a client gave up then; the
    operation may still take effect later); None when the history ends with it open, which
    counts as `info`."""

    index: int                      # the invocation's event index
    process: int | str
    f: str
    key: Any
    value: Any                      # the invocation's value
    call: int
    outcome: str = INFO
    done: int | None = None
    result: Any = None              # the completion's value
    node: str | None = None
    error: str | None = None

    def describe(self) -> str:
        """The operation in the words the checkers use (`Operation.describe`), so that a
        description in a counterexample and in the report read the same."""
        return Operation(id=self.index, process=self.process, f=self.f, key=self.key,
                         input=self.value, output=self.result if self.outcome == "ok" else None,
                         outcome=self.outcome, call=self.call,
                         ret=self.done if self.outcome != INFO else None).describe()


@dataclass(slots=True)
class FaultBand:
    """A fault in force: from when its start was applied to when its undoing began (None:
    never undone before the history ends). `value` is what the start did (nodes, links)."""

    kind: str
    f: str
    start: int
    end: int | None
    value: dict[str, Any]
    description: str


@dataclass(slots=True)
class RoleSpan:
    """A role a node reported, from when it was observed until the node's next change."""

    node: str
    role: str
    term: Any
    start: int
    end: int


@dataclass(slots=True)
class ScheduleRow:
    """One step of the fault schedule with what became of it.

    `at` is the planned time in seconds from the start of the test's clients (None for the
    steps of the final heal, which no schedule plans); `applied_at` the time on the history's
    clock (ns) its invocation was recorded, None if it never was; `outcome` "applied",
    "skipped: why", "error: what", "not reached" or "final heal"."""

    at: float | None
    kind: str
    f: str
    planned: dict[str, Any]
    applied_at: int | None
    applied: dict[str, Any] | None
    outcome: str


@dataclass
class RunData:
    """Everything a report shows, read from one run directory; `problems` says in words what
    was missing or unreadable."""

    run_dir: Path
    test: dict[str, Any] | None = None
    results: dict[str, Any] | None = None
    cluster: dict[str, Any] | None = None
    ops: list[ReportOp] = field(default_factory=list)
    nemesis: list[dict[str, Any]] = field(default_factory=list)
    bands: list[FaultBand] = field(default_factory=list)
    schedule: list[ScheduleRow] = field(default_factory=list)
    roles: list[RoleSpan] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    has_observations: bool = False
    end: int = 0                    # ns: the last moment the history or observations reach
    problems: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def spec(self) -> dict[str, Any]:
        """The test's configuration (test.json's "test"), or nothing."""
        test = (self.test or {}).get("test")
        return test if isinstance(test, dict) else {}


@dataclass
class Violation:
    """The first violation, as the report shows it.

    `primary`: the violating operation(s); `related`: the other operations the counterexample
    names (the writes a stale read contradicts, a lost element's add and the reads that miss
    it); `context`: operations it shows only as context (those concurrent with the violating
    one); `unmatched`: operations it names that the history does not hold. `window` is the
    stretch of the history (ns) the timeline shows, `key` the key it is restricted to (None:
    every key)."""

    checker: str
    counterexample: dict[str, Any]
    primary: list[ReportOp]
    related: list[ReportOp]
    unmatched: list[str]
    context: list[ReportOp]
    key: Any
    window: tuple[int, int]
    state_before: str | None = None
    explanation: str | None = None
    at: int | None = None           # the moment of a violation without an operation

    def timeline_ops(self, data: RunData) -> list[ReportOp]:
        """The operations of the key in question that overlap the window (an `info` one up
        to when its client gave up), and those the counterexample names that reach into it,
        in call order."""
        start, end = self.window
        named = {op.index for op in self.primary + self.related + self.context}
        return [op for op in data.ops
                if op.call < end and (
                    (op.index in named and (op.done is None or op.outcome == INFO or
                                            op.done >= start))
                    or ((self.key is None or op.key == self.key) and
                        (op.done if op.done is not None else data.end) >= start))]


def read_run(run_dir: Path) -> RunData:
    """Read `run_dir` into a `RunData`; never raises for a missing, empty or damaged file
    (that goes into `problems`). Raises NotARunDirectory when `run_dir` is not a directory
    or holds none of test.json, history.jsonl, results.json."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NotARunDirectory(f"{run_dir}: not a directory")
    if not any((run_dir / name).is_file() for name in RUN_FILES):
        raise NotARunDirectory(f"{run_dir}: not a run directory (none of "
                               f"{', '.join(RUN_FILES)})")
    data = RunData(run_dir=run_dir)
    data.test = _read_json_file(run_dir / store.TEST_FILE, data.problems,
                                "the configuration, seed and fault schedule are not known")
    data.results = _read_json_file(run_dir / store.RESULTS_FILE, data.problems,
                                   "the run was not checked (yet): no verdict; "
                                   "`faultline check` on this directory makes one")
    interrupted = store.interruption(run_dir)
    if interrupted:
        data.problems.append(f"{interrupted['reason']} (Ctrl-C or SIGTERM): what the report "
                             "shows is the part the run recorded")
    cluster_path = run_dir / CLUSTER_FILE
    if cluster_path.exists():
        data.cluster = _read_json_file(cluster_path, data.problems, "")
    _read_history(run_dir / store.HISTORY_FILE, data)
    data.bands = fault_bands(data.nemesis)
    data.schedule = schedule_rows(data.spec.get("schedule"), data.nemesis)
    _read_observations(run_dir / store.OBSERVATIONS_FILE, data)
    data.nodes = _nodes(data)
    data.files = _files(run_dir)
    return data


def _read_json_file(path: Path, problems: list[str], consequence: str) -> dict | None:
    name = path.name
    if not path.exists():
        problems.append(f"no {name}" + (f": {consequence}" if consequence else ""))
        return None
    try:
        value = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        problems.append(f"{name} is unreadable ({exc})" +
                        (f": {consequence}" if consequence else ""))
        return None
    if not isinstance(value, dict):
        problems.append(f"{name} holds {type(value).__name__}, not a JSON object")
        return None
    return value


def _lines(path: Path) -> Iterator[tuple[int, dict | None]]:
    """(line number, decoded object or None when the line is not a JSON object) for each
    non-blank line of a JSON Lines file."""
    with open(path, "rb") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield number, None
                continue
            yield number, value if isinstance(value, dict) else None


def _read_history(path: Path, data: RunData) -> None:
    """Pair the history's client events into operations and keep its nemesis events; an
    event that is not one (a line cut short by a crash) is skipped and counted."""
    if not path.exists():
        data.problems.append(f"no {path.name}: no operations to show")
        return
    bad: list[int] = []
    unpaired = 0
    open_ops: dict[Any, ReportOp] = {}
    ops = data.ops
    last = 0
    try:
        for number, event in _lines(path):
            if event is None:
                bad.append(number)
                continue
            time, process, kind, f = (event.get("time"), event.get("process"),
                                      event.get("type"), event.get("f"))
            if type(time) is not int or not isinstance(f, str) or \
                    kind not in (INVOKE, *COMPLETIONS) or \
                    not (type(process) is int or process == NEMESIS):
                bad.append(number)
                continue
            last = max(last, time)
            if process == NEMESIS:
                data.nemesis.append(event)
            elif kind == INVOKE:
                if process in open_ops:
                    unpaired += 1          # invoked again without completing: left open
                op = ReportOp(index=event.get("index", number - 1), process=process, f=f,
                              key=event.get("key"), value=event.get("value"), call=time)
                open_ops[process] = op
                ops.append(op)
            else:
                op = open_ops.pop(process, None)
                if op is None:
                    unpaired += 1
                    continue
                op.outcome, op.done, op.result = kind, time, event.get("value")
                op.node, op.error = event.get("node"), event.get("error")
    except OSError as exc:
        data.problems.append(f"{path.name} could not be read to the end ({exc})")
    data.end = max(data.end, last)
    if bad:
        data.problems.append(f"{path.name}: {len(bad)} line(s) are not history events and "
                             f"were skipped (first: line {bad[0]})")
    if unpaired:
        data.problems.append(f"{path.name}: {unpaired} completion(s) or invocation(s) without "
                             f"their other half")
    if not ops:
        data.problems.append(f"{path.name} holds no client operations: nothing to plot")


def fault_bands(nemesis: list[dict[str, Any]]) -> list[FaultBand]:
    """The faults in force, from the nemesis events: a start's `info` (applied, without an
    error, not skipped) opens a band, the `invoke` of its kind's stop or of the final heal
    closes it; the rules of `harness.run.violations.fault_intervals`, keeping what the report
    needs besides (the kind, the nodes)."""
    active: dict[str, FaultBand] = {}
    bands: list[FaultBand] = []
    for event in nemesis:
        f, time = event["f"], event["time"]
        if f == HEAL:
            for band in active.values():
                band.end = time
            bands += active.values()
            active.clear()
            continue
        value = event.get("value") if isinstance(event.get("value"), dict) else {}
        kind = _kind(f, value)
        starting = "of" not in value
        if starting and event["type"] == INFO and not value.get("error") and \
                not value.get("skipped"):
            active[kind] = FaultBand(kind, f, time, None, value, describe_fault(f, value))
        elif not starting and event["type"] == INVOKE and kind in active:
            band = active.pop(kind)
            band.end = time
            bands.append(band)
    bands += active.values()
    return sorted(bands, key=lambda band: band.start)


def _kind(f: str, value: dict[str, Any]) -> str:
    try:
        return kind_of({"f": f, "value": value})
    except ValueError:
        # An action no built-in kind knows (a fault from elsewhere): its start names it.
        return str(value.get("of", f))


# What of a fault's details says what it did, in this order (as `harness.run.violations`).
_FAULT_DETAILS = ("shape", "target", "nodes", "links", "offset", "rate", "latency_ms")


def describe_fault(f: str, value: dict[str, Any]) -> str:
    """A fault action in one line: "start-partition shape=isolate links=n1->n2,...", the
    words of results.json's first violation."""
    parts = [f]
    for name in _FAULT_DETAILS:
        item = value.get(name)
        if item not in (None, [], ""):
            parts.append(f"{name}=" + (",".join(map(str, item)) if isinstance(item, list)
                                       else str(item)))
    return " ".join(parts)


def schedule_rows(schedule: Any, nemesis: list[dict[str, Any]]) -> list[ScheduleRow]:
    """The schedule's steps beside the nemesis events that carried them out.

    The nemesis applies the steps in order, each as an invoke and an info, then ends with the
    final heal's steps (marked "final"); so the n-th invocation that is not the final heal's
    is the n-th step."""
    steps = [s for s in schedule if isinstance(s, dict)] if isinstance(schedule, list) else []
    invokes = [i for i, e in enumerate(nemesis) if e["type"] == INVOKE]
    scheduled = [i for i in invokes if not _final(nemesis[i])]
    rows: list[ScheduleRow] = []
    for number, step in enumerate(steps):
        f = str(step.get("f", "?"))
        value = step.get("value") if isinstance(step.get("value"), dict) else {}
        kind = str(step.get("fault") or _kind(f, value))
        at = step.get("at")
        if number < len(scheduled):
            where = scheduled[number]
            applied_at, applied, outcome = _carried_out(nemesis, where)
            rows.append(ScheduleRow(at, kind, f, value, applied_at, applied, outcome))
        else:
            rows.append(ScheduleRow(at, kind, f, value, None, None, "not reached"))
    # Steps recorded beyond the schedule (none given, or a history from another schedule),
    # then the final heal's.
    for where in scheduled[len(steps):] + [i for i in invokes if _final(nemesis[i])]:
        event = nemesis[where]
        value = event.get("value") if isinstance(event.get("value"), dict) else {}
        applied_at, applied, outcome = _carried_out(nemesis, where)
        if _final(event):
            outcome = "final heal" if outcome == "applied" else f"final heal, {outcome}"
        rows.append(ScheduleRow(None, _kind(event["f"], value) if event["f"] != HEAL else HEAL,
                                event["f"], value, event["time"], applied, outcome))
    return rows


def _final(event: dict[str, Any]) -> bool:
    value = event.get("value")
    return event["f"] == HEAL or (isinstance(value, dict) and bool(value.get("final")))


def _carried_out(nemesis: list[dict[str, Any]], where: int
                 ) -> tuple[int, dict[str, Any] | None, str]:
    """When the invocation at `where` was recorded, what its info says was done, and how it
    went."""
    invoke = nemesis[where]
    info = next((e for e in nemesis[where + 1:]
                 if e["type"] == INFO and e["f"] == invoke["f"]), None)
    if info is None:
        return invoke["time"], None, "no outcome recorded"
    done = info.get("value") if isinstance(info.get("value"), dict) else {}
    if done.get("error"):
        return invoke["time"], done, f"error: {done['error']}"
    if done.get("skipped"):
        return invoke["time"], done, f"skipped: {done['skipped']}"
    return invoke["time"], done, "applied"


def _read_observations(path: Path, data: RunData) -> None:
    """Role spans per node from observations.jsonl (each line a change a node reported)."""
    if not path.exists():
        return
    records: list[dict[str, Any]] = []
    bad = 0
    try:
        for _, record in _lines(path):
            if record is None or type(record.get("time")) is not int or \
                    not isinstance(record.get("node"), str):
                bad += 1
                continue
            records.append(record)
    except OSError as exc:
        data.problems.append(f"{path.name} could not be read ({exc})")
        return
    if bad:
        data.problems.append(f"{path.name}: {bad} line(s) unreadable and skipped")
    data.has_observations = bool(records)
    if not records:
        return
    records.sort(key=lambda r: r["time"])
    data.end = max(data.end, records[-1]["time"])
    last: dict[str, dict[str, Any]] = {}
    for record in records:
        node = record["node"]
        before = last.get(node)
        if before is not None:
            data.roles.append(RoleSpan(node, str(before.get("role")), before.get("term"),
                                       before["time"], record["time"]))
        last[node] = record
    for node, record in last.items():
        data.roles.append(RoleSpan(node, str(record.get("role")), record.get("term"),
                                   record["time"], max(data.end, record["time"])))


def _nodes(data: RunData) -> list[str]:
    """The cluster's nodes: as cluster.json or test.json say, else as the history shows."""
    names = (data.cluster or {}).get("cluster", {}).get("nodes") \
        if isinstance((data.cluster or {}).get("cluster"), dict) else None
    if not names and isinstance(data.spec.get("nodes"), int):
        names = [f"n{i}" for i in range(1, data.spec["nodes"] + 1)]
    found = set(names or [])
    found |= {span.node for span in data.roles}
    found |= {op.node for op in data.ops if isinstance(op.node, str)}
    return sorted(found, key=_natural)


def _natural(name: str) -> tuple:
    """n2 before n10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _files(run_dir: Path) -> list[str]:
    """The run's files worth a link, relative to the run directory."""
    names = [store.TEST_FILE, store.HISTORY_FILE, store.RESULTS_FILE, store.OBSERVATIONS_FILE,
             store.INTERRUPTED_FILE, CLUSTER_FILE, "proxy.log"]
    found = [name for name in names if (run_dir / name).is_file()]
    nodes = run_dir / "nodes"
    if nodes.is_dir():
        found += sorted((f"nodes/{p.name}" for p in nodes.glob("*.log")), key=_natural)
    return found


# --- the first violation -----------------------------------------------------------------

class _OpIndex:
    """Finds the operations a counterexample names: by event index, by process and call time,
    by call time alone, or by a description's process and call time."""

    def __init__(self, ops: list[ReportOp]):
        self.by_index = {op.index: op for op in ops}
        self.by_call: dict[int, list[ReportOp]] = {}
        self.calls: dict[Any, tuple[list[int], list[ReportOp]]] = {}
        for op in ops:
            self.by_call.setdefault(op.call, []).append(op)
            calls, found = self.calls.setdefault(op.process, ([], []))
            calls.append(op.call)           # ops come in call order
            found.append(op)

    def at(self, process: Any, call: int, slack: int = 0) -> ReportOp | None:
        calls, found = self.calls.get(process, ([], []))
        i = bisect.bisect_left(calls, call - slack)
        if i < len(calls) and calls[i] <= call + slack:
            return found[i]
        return None

    def described(self, text: str) -> ReportOp | None | bool:
        """The op `text` describes; None if it describes one the history lacks; False if
        `text` is no description."""
        match = _DESCRIPTION.match(text)
        if not match:
            return False
        process: Any = match.group(1)
        if process.isdigit():
            process = int(process)
        return self.at(process, round(float(match.group(2)) * 1e9), _DESCRIPTION_SLACK)


def find_violation(data: RunData) -> Violation | None:
    """The first violation of the run, or None when results.json names none (a valid run, an
    unknown verdict, a run not checked yet).

    Of the failing checkers with a counterexample, the one whose violating operation was
    invoked first (as `harness.run.violations.first_violation` chooses). Its violating operation
    is the counterexample's "op" (linearizability) or "violating" (sessions); a counterexample
    without one (lost set elements) has its earliest named operation for it."""
    checkers = (data.results or {}).get("checkers")
    if not isinstance(checkers, dict):
        return None
    index = _OpIndex(data.ops)
    found: list[Violation] = []
    for name, result in checkers.items():
        if not isinstance(result, dict) or result.get("valid") is not False or \
                not isinstance(result.get("counterexample"), dict):
            continue
        violation = _violation(name, result["counterexample"], index, data)
        if violation is not None:
            found.append(violation)
    if not found:
        return None

    def first(v: Violation) -> int:
        return v.primary[0].call if v.primary else (v.at if v.at is not None else 2 ** 63)
    # The run's own first violation, where results.json names it, is the one to show: the
    # words of the terminal summary and of the report agree.
    named = (data.results or {}).get("first_violation")
    if isinstance(named, dict):
        for v in found:
            if named.get("op") and any(op.describe() == named["op"] for op in v.primary):
                return v
        seconds = named.get("seconds")
        if isinstance(seconds, (int, float)):
            close = [v for v in found if abs(first(v) - seconds * 1e9) <= 1e6]
            if close:
                return min(close, key=first)
    return min(found, key=first)


def _violation(checker: str, ce: dict[str, Any], index: _OpIndex,
               data: RunData) -> Violation | None:
    primary: dict[int, ReportOp] = {}
    related: dict[int, ReportOp] = {}
    context: dict[int, ReportOp] = {}
    unmatched: list[str] = []

    def note(op: ReportOp | None, role: dict[int, ReportOp], text: str) -> None:
        if op is None:
            if text and text not in unmatched and role is not context:
                unmatched.append(text)
            return
        role[op.index] = op

    def visit(value: Any, path: tuple) -> None:
        if any(p in CONTEXT_KEYS for p in path):
            role = context
        elif path[:1] == ("op",) or any(p in VIOLATING_KEYS for p in path):
            role = primary
        else:
            role = related
        if isinstance(value, dict):
            op = None
            if type(value.get("invoke_index")) is int:
                op = index.by_index.get(value["invoke_index"])
            elif type(value.get("call")) is int:
                if "process" in value:
                    op = index.at(value["process"], value["call"])
                else:
                    candidates = index.by_call.get(value["call"], [])
                    op = candidates[0] if len(candidates) == 1 else None
            if op is not None:
                note(op, role, "")
            for name, item in value.items():
                visit(item, path + (name,))
        elif isinstance(value, list):
            for item in value:
                visit(item, path)
        elif isinstance(value, str):
            op = index.described(value)
            if op is not False:
                note(op, role, value)

    visit(ce, ())
    for number in primary:
        related.pop(number, None)
    for number in list(primary) + list(related):
        context.pop(number, None)
    primary_ops = sorted(primary.values(), key=lambda op: op.call)
    related_ops = sorted(related.values(), key=lambda op: op.call)
    if not primary_ops and related_ops:
        # No operation is called the violating one (lost elements): the earliest named is
        # where the damage first shows.
        primary_ops = [related_ops.pop(0)]
    at = ce.get("at") if type(ce.get("at")) is int else None
    if not primary_ops and at is None:
        return None
    centre = primary_ops[0] if primary_ops else None
    key = ce.get("key", centre.key if centre is not None else None)
    if centre is not None and key is None:
        key = centre.key
    state = ce.get("state_before")
    explanation = ce.get("explanation")
    return Violation(checker=checker, counterexample=ce, primary=primary_ops,
                     related=related_ops, unmatched=unmatched,
                     context=sorted(context.values(), key=lambda op: op.call), key=key,
                     window=_window(centre, at, related_ops, data),
                     state_before=None if state is None else str(state),
                     explanation=explanation if isinstance(explanation, str) else None, at=at)


def _window(centre: ReportOp | None, at: int | None, related: list[ReportOp],
            data: RunData) -> tuple[int, int]:
    """A few seconds around the violating operation (or moment), widened to take in the
    operations named with it that lie within reach."""
    t0 = centre.call if centre is not None else (at or 0)
    start, end = t0 - BEFORE, t0 + AFTER
    if centre is not None and centre.done is not None:
        end = max(end, centre.done + MARGIN)
    for op in related:
        if t0 - REACH[0] <= op.call <= t0 + REACH[1]:
            start = min(start, op.call - MARGIN)
            end = max(end, (op.done or op.call) + MARGIN)
    return max(0, start), min(max(data.end, t0), end)
