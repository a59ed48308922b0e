"""Transactions of a list-append history, checked against the workload's contract.

A transaction is one client operation with f "txn" whose value is a list of micro-operations:
``["r", key, null]`` reads the whole list at `key`, ``["append", key, element]`` appends one
element. The invocation carries the micro-operations as issued; an `ok` completion carries the
same list with every read's value filled in (a list; null is read as the empty list, as Elle
reads Jepsen's nil). `fail` means the transaction certainly did not take effect, `info` that it
may have; the reads of either are unknown, so only the invocation's micro-operations are kept.

Anything else (another f, a value that is not a list of micro-operations, a completion that
disagrees with its invocation) is bad input: a `HistoryError` naming the event's line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Sequence

from checkers.history import FAIL, INFO, OK, HistoryError, Op, Operation, pair

TXN = "txn"
READ = "r"
APPEND = "append"
MICRO_OPS = (READ, APPEND)


@dataclass(slots=True)
class Txn:
    """One transaction: its outcome, its times and its micro-operations.

    - `id`: position among the history's transactions (also its node in the dependency graph).
    - `mops`: ``(f, key, value)`` tuples in order; a read's value is the list it returned
      (ok transactions) or None (fail, info: unknown).
    - `call`, `ret`: times of invocation and completion; `ret` is None when the transaction
      never completed for sure (info, or still open at the end of the history).
    - `invoke_index`: the invocation's event index, which names the transaction ("T12").
    """

    id: int
    process: int | str
    outcome: str
    call: int
    ret: int | None
    invoke_index: int
    complete_index: int | None
    mops: list[tuple[str, Hashable, Any]]

    @property
    def name(self) -> str:
        """The transaction's name in explanations: T and its invocation's event index."""
        return f"T{self.invoke_index}"

    @property
    def ok(self) -> bool:
        return self.outcome == OK


def transactions(history: Sequence[Op], source: str | None = None) -> list[Txn]:
    """The transactions of `history`, in invocation order, checked against the contract above.

    Raises `HistoryError` (naming `source`, the event's line and the field) for a client
    operation whose f is not "txn", a value that is not a list of ``[f, key, value]``
    micro-operations with f "r" or "append", an unhashable key or element, a read that
    returned something other than a list, and an ok completion whose micro-operations differ
    from its invocation's (other than in the reads' values).
    """
    operations = pair(history, source=source)
    out: list[Txn] = []
    for operation in operations:
        if operation.f != TXN:
            raise _error(history, operation.invoke_index, source, "f",
                         f"the list-append checker reads transactions (f {TXN!r}), got "
                         f"f {operation.f!r}")
        mops = _invoked_mops(history, operation, source)
        if operation.outcome == OK:
            mops = _completed_mops(history, operation, mops, source)
        out.append(Txn(len(out), operation.process, operation.outcome, operation.call,
                       operation.ret if operation.outcome != INFO else None,
                       operation.invoke_index, operation.complete_index, mops))
    return out


def _invoked_mops(history: Sequence[Op], operation: Operation, source: str | None
                  ) -> list[tuple[str, Hashable, Any]]:
    value = operation.input
    index = operation.invoke_index
    if type(value) is not list:
        raise _error(history, index, source, "value",
                     f"a transaction's value must be a list of micro-operations, got "
                     f"{_short(value)}")
    mops = []
    for mop in value:
        if type(mop) is not list or len(mop) != 3:
            raise _error(history, index, source, "value",
                         f"a micro-operation must be [f, key, value], got {_short(mop)}")
        f, key, element = mop
        if f not in MICRO_OPS:
            raise _error(history, index, source, "value",
                         f"micro-operations are 'r' and 'append', got {_short(f)}")
        if not _hashable(key):
            raise _error(history, index, source, "value",
                         f"a micro-operation's key must be a string or a number, got "
                         f"{_short(key)}")
        if f == APPEND:
            if not _hashable(element):
                raise _error(history, index, source, "value",
                             f"an appended element must be a string or a number, got "
                             f"{_short(element)}")
            mops.append((APPEND, key, element))
        else:
            # What an invocation says a read returned means nothing: it has not run yet.
            mops.append((READ, key, None))
    return mops


def _completed_mops(history: Sequence[Op], operation: Operation,
                    invoked: list[tuple[str, Hashable, Any]], source: str | None
                    ) -> list[tuple[str, Hashable, Any]]:
    value = operation.output
    index = operation.complete_index
    if type(value) is not list or len(value) != len(invoked):
        raise _error(history, index, source, "value",
                     f"an ok transaction must carry its {len(invoked)} micro-operation(s) "
                     f"with the reads filled in, got {_short(value)}")
    mops = []
    for mop, (f, key, element) in zip(value, invoked):
        if type(mop) is not list or len(mop) != 3 or mop[0] != f or mop[1] != key:
            raise _error(history, index, source, "value",
                         f"micro-operation {_short(mop)} differs from the invocation's "
                         f"{_short([f, key, element])}")
        if f == APPEND:
            if mop[2] != element:
                raise _error(history, index, source, "value",
                             f"append {_short(mop)} differs from the invocation's "
                             f"{_short([f, key, element])}")
            mops.append((APPEND, key, element))
            continue
        read = mop[2]
        if read is None:
            read = []
        elif type(read) is not list:
            raise _error(history, index, source, "value",
                         f"a read must return a list, got {_short(mop)}")
        # Reads hold millions of elements in all: their types are checked at C speed.
        if not _SCALARS.issuperset(map(type, read)):
            item = next(x for x in read if not _hashable(x))
            raise _error(history, index, source, "value",
                         f"a read's elements must be strings or numbers, got "
                         f"{_short(item)} in {_short(mop)}")
        mops.append((READ, key, read))
    return mops


# Elements and keys are compared and indexed; JSON lists and objects cannot be.
_SCALARS = frozenset({int, str, float, bool, type(None)})


def _hashable(value: Any) -> bool:
    return type(value) in _SCALARS


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _error(history: Sequence[Op], index: int | None, source: str | None, field_name: str,
           message: str) -> HistoryError:
    return HistoryError(message, source, _line(history, index), field_name)


def _line(history: Sequence[Op], index: int | None) -> int | None:
    """The line of the event with `index`, for messages (found only on this error path)."""
    if index is None:
        return None
    if 0 <= index < len(history) and history[index].index == index:
        return history[index].line
    return next((op.line for op in history if op.index == index), None)


__all__ = ["APPEND", "FAIL", "INFO", "OK", "READ", "TXN", "Txn", "transactions"]
