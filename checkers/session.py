"""Session guarantees (Terry et al., 1994) checked from the versions a store reports.

A session is a process: in a Jepsen-style history a process whose operation ends `info` never
issues another one, so everything a process did is one session, in invocation order. The
store's `version` of an operation (refnode: the log index of the write that produced the value
read or written) orders what the session saw, and the four guarantees become comparisons with
the highest versions the session has read and written so far:

- read-your-writes: a read's version >= every earlier write's version;
- monotonic reads: a read's version >= every earlier read's version;
- monotonic writes: a write's version > every earlier write's version;
- writes-follow-reads: a write's version > every earlier read's version.

Only `ok` operations count: a failed one did not happen, and an indeterminate one reported no
version. Versions are compared per key unless the store's versions are one log index across
keys (`scope="global"`).
"""

from __future__ import annotations

from typing import Iterable

from checkers.figures import jsonable
from checkers.history import OK, READ_FS, Op, Operation, pair
from checkers.result import UNKNOWN, Result

READ_YOUR_WRITES = "read-your-writes"
MONOTONIC_READS = "monotonic-reads"
MONOTONIC_WRITES = "monotonic-writes"
WRITES_FOLLOW_READS = "writes-follow-reads"
GUARANTEES = (READ_YOUR_WRITES, MONOTONIC_READS, MONOTONIC_WRITES, WRITES_FOLLOW_READS)

#: Operations that change a key's value; an ok cas is a write.
WRITE_FS = frozenset({"write", "cas", "put", "append", "add"})
SCOPES = ("key", "global")
MAX_EXAMPLES = 10


def check_session(history: list[Op], *, guarantees: Iterable[str] = GUARANTEES,
                  scope: str = "key") -> Result:
    """Check the session guarantees named in `guarantees` (default: all four) for every
    process of `history`, from the versions of its `ok` reads (`read`, `get`) and writes
    (`write`, `cas`, `put`, `append`, `add`).

    - `scope="key"` compares versions within one key of a session; `scope="global"` compares
      them across all keys of the session, which is right only when versions are one log index
      for the whole store (refnode's are).
    - Verdict: False when any checked guarantee is broken; "unknown" when no operation reports
      a version (the guarantees cannot be judged without them, and are not guessed); True
      otherwise, including when there is nothing to check. Operations without a version among
      others that have one are skipped and counted.
    - Figures: sessions, ops checked, ops skipped, violations per guarantee.
    - Counterexample: per broken guarantee, up to 10 violations, each naming the process, the
      key, the violating operation and the earlier operation it contradicts (the one with the
      highest version of its kind so far).

    Raises ValueError for an unknown guarantee or scope, HistoryError for a malformed history.
    """
    wanted = _wanted_guarantees(guarantees)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")

    operations = [op for op in pair(history)
                  if op.outcome == OK and (op.f in READ_FS or op.f in WRITE_FS)]
    versioned = [op for op in operations if op.version is not None]
    skipped = len(operations) - len(versioned)
    figures = {"scope": scope, "guarantees": list(wanted),
               "sessions": len({op.process for op in versioned}),
               "ops_checked": len(versioned), "ops_skipped_without_version": skipped}
    if operations and not versioned:
        figures["violations"] = {g: None for g in wanted}
        return Result("session", UNKNOWN,
                      "session guarantees need versions, and no operation reports one",
                      figures)

    violations = _sweep(versioned, wanted, scope)
    figures["violations"] = {g: len(violations[g]) for g in wanted}
    broken = [g for g in wanted if violations[g]]
    if not broken:
        checked = f"{len(versioned)} ops in {figures['sessions']} sessions"
        if skipped:
            checked += f" ({skipped} without a version skipped)"
        return Result("session", True, f"{', '.join(wanted)} hold over {checked}", figures)
    summary = "; ".join(f"{g}: {len(violations[g])} violation(s)" for g in broken)
    counterexample = {g: violations[g][:MAX_EXAMPLES] for g in broken}
    return Result("session", False, summary, figures, counterexample)


def _wanted_guarantees(guarantees: Iterable[str]) -> tuple[str, ...]:
    if isinstance(guarantees, str):
        guarantees = (guarantees,)
    chosen = set(guarantees)
    unknown = chosen - set(GUARANTEES)
    if unknown:
        raise ValueError(f"unknown guarantee(s) {sorted(unknown)}; "
                         f"known: {', '.join(GUARANTEES)}")
    return tuple(g for g in GUARANTEES if g in chosen)


def _sweep(versioned: list[Operation], wanted: tuple[str, ...],
           scope: str) -> dict[str, list[dict]]:
    """One pass in invocation order (session order within each process), keeping per session
    (and key) the operation with the highest version read and the highest written."""
    highest_write: dict[tuple, Operation] = {}
    highest_read: dict[tuple, Operation] = {}
    violations: dict[str, list[dict]] = {g: [] for g in GUARANTEES}

    def violated(guarantee: str, earlier: Operation, later: Operation) -> None:
        if guarantee in wanted:
            violations[guarantee].append(_violation(earlier, later))

    for op in versioned:
        session = (op.process, op.key) if scope == "key" else (op.process,)
        written = highest_write.get(session)
        read = highest_read.get(session)
        if op.f in READ_FS:
            if written is not None and written.version > op.version:
                violated(READ_YOUR_WRITES, written, op)
            if read is not None and read.version > op.version:
                violated(MONOTONIC_READS, read, op)
            if read is None or op.version > read.version:
                highest_read[session] = op
        else:
            if written is not None and written.version >= op.version:
                violated(MONOTONIC_WRITES, written, op)
            if read is not None and read.version >= op.version:
                violated(WRITES_FOLLOW_READS, read, op)
            if written is None or op.version > written.version:
                highest_write[session] = op
    return violations


def _violation(earlier: Operation, later: Operation) -> dict:
    return {"process": jsonable(later.process), "key": jsonable(later.key),
            "earlier": _op_json(earlier), "violating": _op_json(later)}


def _op_json(op: Operation) -> dict:
    return {"id": op.id, "key": jsonable(op.key), "version": op.version, "call": op.call,
            "ret": op.ret, "op": op.describe()}
