"""Transactions and dependency edges in words, for counterexamples a person can check.

An edge is explained from the observations again rather than remembered when it is made: a
history has hundreds of thousands of edges and a counterexample a handful.
"""

from __future__ import annotations

from typing import Any, Hashable

from checkers.history import seconds
from checkers.list_append.anomalies import RT, RW, WR, WW
from checkers.list_append.history import APPEND, READ, Txn
from checkers.list_append.versions import INIT, Observations

SHOWN = 6     # elements of a list shown: its first and its last ones


def show_value(value: Any) -> str:
    """An element or key as written in a history (nil for None)."""
    return "nil" if value is None else repr(value) if isinstance(value, str) else str(value)


def show_key(key: Any) -> str:
    """A key as a name: a string without quotes (x), a number as "key 5"."""
    return key if isinstance(key, str) else f"key {show_value(key)}"


def show_list(values: list) -> str:
    """A read's list, its ends only when it is long: ``[1, 2, ... 9, 10] (40 elements)``."""
    if len(values) <= SHOWN:
        return "[" + ", ".join(show_value(v) for v in values) + "]"
    head = ", ".join(show_value(v) for v in values[:2])
    tail = ", ".join(show_value(v) for v in values[-3:])
    return f"[{head}, ... {tail}] ({len(values)} elements)"


def show_mop(mop: tuple[str, Hashable, Any]) -> str:
    """One micro-operation: ``r x [1, 2]``, ``r x ?`` (unknown), ``append x 3``."""
    f, key, value = mop
    if f == APPEND:
        return f"append {show_key(key)} {show_value(value)}"
    return f"r {show_key(key)} {'?' if value is None else show_list(value)}"


def describe_txn(txn: Txn) -> str:
    """The transaction in one line, e.g.
    ``T12 (process 3, ok, 1.200000..1.201500 s): append x 5; r y [1, 2]``."""
    span = f"{seconds(txn.call)} s, never returned" if txn.ret is None else \
        f"{seconds(txn.call)}..{seconds(txn.ret)} s"
    # No brackets around the micro-ops: terminals that render markup take "[r x ...]" for a
    # style tag.
    mops = "; ".join(show_mop(m) for m in txn.mops)
    return f"{txn.name} (process {txn.process}, {txn.outcome}, {span}): {mops}"


def txn_json(txn: Txn) -> dict[str, Any]:
    """The transaction as a counterexample entry: its name, description and where it is in
    the history (the report finds it by its invocation's index)."""
    return {"name": txn.name, "description": describe_txn(txn), "process": txn.process,
            "outcome": txn.outcome, "invoke_index": txn.invoke_index, "call": txn.call,
            "ret": txn.ret}


def explain_edge(txns: list[Txn], obs: Observations, a: int, b: int, kind: int) -> str:
    """Why transaction `a` must come before `b` by an edge of `kind`, in one sentence."""
    ta, tb = txns[a], txns[b]
    if kind == WW:
        text = _ww(ta, tb, obs, txns)
    elif kind == WR:
        text = _wr(ta, tb, obs)
    elif kind == RW:
        text = _rw(ta, tb, obs)
    else:
        text = None
    if text is None and kind != RT:
        text = f"{ta.name} precedes {tb.name} by a {('ww', 'wr', 'rw')[kind]} dependency"
    if kind == RT:
        text = (f"{ta.name} completed ({seconds(ta.ret or 0)} s) before {tb.name} was "
                f"invoked ({seconds(tb.call)} s)")
    return text


def _ww(ta: Txn, tb: Txn, obs: Observations, txns: list[Txn]) -> str | None:
    for f, key, element in tb.mops:
        if f != APPEND:
            continue
        prev = obs.predecessor(key, element)
        if prev is INIT:
            continue
        writer = obs.writer(key, prev)
        if writer is None or writer.txn != ta.id:
            continue
        order = obs.order(key)
        k, e, p = show_key(key), show_value(element), show_value(prev)
        if element in order.position:
            witness = txns[order.witness].name if order.witness is not None else "a read"
            return (f"{tb.name} appended {e} to {k} after {ta.name}'s append of {p}, "
                    f"as {witness}'s read of {k} showed")
        return (f"{tb.name} appended {e} to {k}, which no read saw, so after {ta.name}'s "
                f"append of {p}, the last element of {k} any read saw")
    return None


def _wr(ta: Txn, tb: Txn, obs: Observations) -> str | None:
    for f, key, value in tb.mops:
        if f != READ or not value:
            continue
        writer = obs.writer(key, value[-1])
        if writer is not None and writer.txn == ta.id:
            return (f"{tb.name} read {show_key(key)} = {show_list(value)}, ending with "
                    f"{ta.name}'s append of {show_value(value[-1])}")
    return None


def _rw(ta: Txn, tb: Txn, obs: Observations) -> str | None:
    for f, key, element in tb.mops:
        if f != APPEND:
            continue
        prev = obs.predecessor(key, element)
        for i, (g, k, value) in enumerate(ta.mops):
            if g != READ or k != key or value is None or not obs.compatible(ta.id, i):
                continue
            if (prev is INIT and not value) or (value and value[-1] == prev):
                shown_key, e = show_key(key), show_value(element)
                if prev is INIT:
                    return (f"{ta.name} read {shown_key} empty, and {tb.name} made the first "
                            f"append to it ({e})")
                return (f"{ta.name} read {shown_key} = {show_list(value)}, so missed "
                        f"{tb.name}'s append of {e}, the next element of {shown_key}")
    return None
