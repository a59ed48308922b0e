"""version-integrity: a checker of faultline in a package of its own, for stores that number
their writes as tinykv does.

tinykv gives every acknowledged write a version, its place in the log, and reports with each
read the version of the write it read (0 for a key never written). Those numbers are a
promise that no other check of faultline's holds a store to: *one version, one write*.

- No two acknowledged writes share a version. A store that lost acknowledged records (a log
  not synced before a kill) counts again from where its log ends, and gives the next writes
  versions it had already given.
- A read reporting version v returns what the write of version v wrote, to the same key; a
  read reporting the initial version (0) returns nothing (the key absent). A log replayed
  wrongly (a torn record taken for a whole one) shows here.

A read of a version no acknowledged write was given (the write's acknowledgement was lost:
an indeterminate write) cannot be checked, and is counted apart. Which values are read when is
linearizability's business, not this checker's.

Installed with the example package, it is found by name, as every checker is:
`faultline check HISTORY --checker version-integrity`, or
`faultline run --system tinykv --checker version-integrity`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from checkers.base import REGISTERS, Applies, CheckContext, Checker
from checkers.history import OK, READ_FS, Op, Operation, pair
from checkers.result import Result
from pluginkit.options import Option

WRITES = ("write", "cas")


class VersionIntegrity(Checker):
    """One version, one write (see the module docstring)."""

    name = "version-integrity"
    APPLIES = Applies((REGISTERS,), "registers whose store numbers its writes: one version, "
                                    "one write")
    OPTIONS: ClassVar[tuple[Option, ...]] = (
        Option("initial_version", "int", 0, "the version a read of a key never written "
                                            "reports", minimum=0),)

    def check(self, history: Sequence[Op], context: CheckContext) -> Result:
        """Invalid at the first version given to two writes, or read with another key or
        value than its write's; valid otherwise, unknown when no read or write reported a
        version (nothing to judge)."""
        initial = self.options["initial_version"]
        ops = [op for op in pair(history, source=context.source)
               if op.outcome == OK and op.version is not None]
        writes: dict[int, Operation] = {}
        for op in ops:
            if op.f in WRITES:
                first = writes.setdefault(op.version, op)
                if first is not op:
                    return self._invalid(f"version {op.version} was given to two writes",
                                         op, first, len(ops))
        unchecked = 0
        for op in ops:
            if op.f not in READ_FS:
                continue
            if op.version == initial:
                if op.output is not None:
                    return self._invalid(f"a read at version {initial} (never written) "
                                         f"returned {op.output!r}", op, None, len(ops))
                continue
            write = writes.get(op.version)
            if write is None:
                unchecked += 1
            elif (write.key, _written(write)) != (op.key, op.output):
                return self._invalid(f"a read at version {op.version} returned "
                                     f"{op.output!r} of key {op.key!r}, but that version "
                                     f"wrote {_written(write)!r} to key {write.key!r}",
                                     op, write, len(ops))
        figures = {"versioned_operations": len(ops), "versions": len(writes),
                   "reads_of_unacknowledged_versions": unchecked}
        if not ops:
            return Result(self.name, "unknown", "no operation reported a version", figures)
        return Result(self.name, True, f"one version, one write: {len(writes)} versions, "
                                       f"{len(ops)} operations", figures)

    def _invalid(self, why: str, op: Operation, other: Operation | None,
                 count: int) -> Result:
        counterexample: dict[str, Any] = {"op": _op(op)}
        if other is not None:
            counterexample["write"] = _op(other)
        return Result(self.name, False, why, {"versioned_operations": count}, counterexample)


def _written(op: Operation) -> Any:
    """What a write or a cas wrote."""
    return op.input[1] if op.f == "cas" else op.input


def _op(op: Operation) -> dict[str, Any]:
    """An operation as a counterexample names it (its `call` places it in a run's report)."""
    return {"description": op.describe(), "process": op.process, "key": op.key,
            "version": op.version, "call": op.call, "index": op.invoke_index}
