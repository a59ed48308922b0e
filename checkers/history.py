"""The history: the contract between the harness and the checkers.

A history is a sequence of events (`Op`), one per line of a JSON Lines file, in the order they
happened (see docs/history-format.md). Checkers rarely want raw events: they want each client
operation as one interval from its invocation to its completion. `pair` turns events into
`Operation`s and is the one place where the pairing rules live:

- every `invoke` of a process is followed by exactly one completion of that process before the
  process invokes again; anything else is a malformed history (`HistoryError`);
- a completion of type `info`, or an invocation never completed, is indeterminate: it may take
  effect at any time after its call, or never, so its return is "never" (`ret is None`);
- nemesis events are not client operations and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Iterator

INVOKE = "invoke"
OK = "ok"
FAIL = "fail"
INFO = "info"
TYPES = (INVOKE, OK, FAIL, INFO)
COMPLETIONS = (OK, FAIL, INFO)
NEMESIS = "nemesis"


class HistoryError(ValueError):
    """A history that does not follow the contract: names the source, the line and the field.

    `str(error)` is a one-line message fit to show a user, e.g.
    ``history.jsonl:12: field 'type': expected one of invoke, ok, fail, info, got 'done'``.
    """

    def __init__(self, message: str, source: str | None = None, line: int | None = None,
                 field_name: str | None = None):
        self.source = source
        self.line = line
        self.field_name = field_name
        self.reason = message
        where = source or "<history>"
        if line is not None:
            where = f"{where}:{line}"
        prefix = f"field '{field_name}': " if field_name else ""
        super().__init__(f"{where}: {prefix}{message}")


@dataclass(slots=True)
class Op:
    """One event of a history (docs/history-format.md): an invocation, a completion or a fault.

    `time` is in nanoseconds from one monotonic clock (or the position in the file when the
    source had no timestamps). `line` is where the event was read from (1-based), for messages;
    it is not part of the written format.
    """

    index: int
    time: int
    process: int | str
    type: str
    f: str
    key: Hashable | None = None
    value: Any = None
    node: str | None = None
    version: int | None = None
    error: str | None = None
    line: int | None = field(default=None, compare=False)

    @property
    def is_nemesis(self) -> bool:
        return self.process == NEMESIS

    def to_dict(self) -> dict:
        """The event as the JSON object of the history format (optional fields only when set)."""
        d = {"index": self.index, "time": self.time, "process": self.process,
             "type": self.type, "f": self.f, "key": self.key, "value": self.value}
        if self.node is not None:
            d["node"] = self.node
        if self.version is not None:
            d["version"] = self.version
        if self.error is not None:
            d["error"] = self.error
        return d


@dataclass(slots=True)
class Operation:
    """One client operation: an invocation paired with its completion.

    - `input`: the invocation's value (a write's value, a cas's [expected, new], an append's
      element; None for a read).
    - `output`: the completion's value when the outcome is `ok` (a read's result), else None.
    - `outcome`: "ok", "fail" (certainly did not happen, except where a model says a failure is
      an observation, such as a cas that found another value) or "info" (unknown).
    - `call`, `ret`: times of invocation and completion; `ret` is None when the operation never
      returned for sure (info, or still open at the end): it may take effect at any later time.
    - `version`, `node`: from the completion, when the store reported them.
    - `id`: position among the history's operations, in invocation order.
    """

    id: int
    process: int | str
    f: str
    key: Hashable | None
    input: Any
    output: Any
    outcome: str
    call: int
    ret: int | None
    version: int | None = None
    node: str | None = None
    error: str | None = None
    invoke_index: int = -1
    complete_index: int | None = None

    @property
    def value(self) -> Any:
        """The value the operation is about: a read's result, otherwise what it tried to write."""
        return self.output if self.f in READ_FS else self.input

    def describe(self) -> str:
        """A short human description with times in seconds from the start of the history,
        e.g. ``process 3 write k1 5 (ok) [1.200000..1.201500 s]``; an operation that never
        returned: ``[1.200000 s, never returned]``."""
        key = f" {self.key}" if self.key is not None else ""
        if self.f in READ_FS:
            what = f"{self.f}{key} -> {_show(self.output) if self.outcome == OK else '?'}"
        else:
            what = f"{self.f}{key} {_show(self.input)}"
        span = f"{seconds(self.call)} s, never returned" if self.ret is None else \
            f"{seconds(self.call)}..{seconds(self.ret)} s"
        return f"process {self.process} {what} ({self.outcome}) [{span}]"


def seconds(nanoseconds: int | float) -> str:
    """A history time (nanoseconds from its start) in seconds, to the microsecond."""
    return f"{nanoseconds / 1e9:.6f}"


READ_FS = frozenset({"read", "get", "r"})


def freeze(value: Any) -> Hashable:
    """A hashable stand-in for a JSON value: lists become tuples, dicts sorted item tuples.

    Model states and value comparisons need hashables; values from JSON or EDN may be lists.
    """
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    return value


SHOWN_ELEMENTS = 8     # a longer collection is shown by its ends and its size


def _show(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)) and len(value) > SHOWN_ELEMENTS:
        # A set read may hold thousands of elements; a description is for a person.
        head = ", ".join(_show(v) for v in value[:SHOWN_ELEMENTS // 2])
        tail = ", ".join(_show(v) for v in value[-2:])
        return f"[{head}, ... {tail}] ({len(value)} elements)"
    return str(value)


def client_events(history: Iterable[Op]) -> Iterator[Op]:
    """The events of client processes, without nemesis events."""
    return (op for op in history if op.process != NEMESIS)


def pair(history: Iterable[Op], *, source: str | None = None,
         timed_out_fail: str | None = None) -> list[Operation]:
    """Pair each client invocation with its completion, in invocation order.

    Raises `HistoryError` (naming `source` and the event's line) for a completion without an
    invocation, a second invocation before the first completed, or a completion whose `f` or
    `key` differs from its invocation's. Invocations still open at the end become `info`.
    With `timed_out_fail="info"`, a `fail` whose value or error is "timed-out" is treated as
    indeterminate (as in Jepsen's etcd histories).
    """
    open_ops: dict[Any, Operation] = {}
    operations: list[Operation] = []
    for event in history:
        process = event.process
        if process == NEMESIS:
            continue
        if event.type == INVOKE:
            if process in open_ops:
                prior = open_ops[process]
                raise HistoryError(
                    f"process {process} invokes again before its invocation at event "
                    f"{prior.invoke_index} completed", source, event.line, "type")
            operation = Operation(len(operations), process, event.f, event.key, event.value,
                                  None, INFO, event.time, None, invoke_index=event.index)
            open_ops[process] = operation
            operations.append(operation)
            continue
        operation = open_ops.pop(process, None)
        if operation is None:
            raise HistoryError(f"process {process} completes ({event.type}) without an open "
                               "invocation", source, event.line, "process")
        if event.f != operation.f:
            raise HistoryError(f"completion has f {event.f!r} but its invocation has "
                               f"{operation.f!r}", source, event.line, "f")
        if event.key != operation.key and event.key is not None:
            raise HistoryError(f"completion has key {event.key!r} but its invocation has "
                               f"{operation.key!r}", source, event.line, "key")
        operation.complete_index = event.index
        operation.version = event.version
        operation.node = event.node
        operation.error = event.error
        outcome = event.type
        if outcome == FAIL and timed_out_fail == INFO and _timed_out(event):
            outcome = INFO
        operation.outcome = outcome
        if outcome == OK:
            operation.output = event.value
            operation.ret = event.time
        elif outcome == FAIL:
            operation.output = event.value
            operation.ret = event.time
    return operations


def _timed_out(event: Op) -> bool:
    return event.value == "timed-out" or event.error == "timed-out"
