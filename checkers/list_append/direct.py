"""Anomalies seen without a dependency graph: in single reads, single transactions, or pairs
of transactions that read the same version.

- incompatible-order: a read that is not a prefix of its key's longest read;
- duplicate-elements: a read that holds one element twice;
- G1a (aborted read): a read holding an element that only a failed transaction appended, or
  that no transaction appended at all;
- G1b (intermediate read): a read ending with an element that another transaction appended
  but then followed with another append to the same key;
- internal: a read that disagrees with its own transaction's earlier reads and appends of the
  key (Cerone et al.'s INT axiom, as Elle checks it);
- future-read: a read holding an element its own transaction appends only later;
- lost-update: two ok transactions that read the same version of a key and both appended to
  it afterwards (one of the appends cannot have seen the other).

Each finder adds `Case`s to a `Findings`; texts are built only for the cases kept.
"""

from __future__ import annotations

from typing import Any, Hashable

from checkers.list_append.anomalies import (DUPLICATE_ELEMENTS, FUTURE_READ, G1A, G1B,
                                            INCOMPATIBLE_ORDER, INTERNAL, LOST_UPDATE, Case,
                                            Findings)
from checkers.list_append.explain import show_key, show_list, show_value
from checkers.list_append.history import APPEND, FAIL, READ, Txn
from checkers.list_append.versions import INIT, Observations, ok_reads


def find_direct(txns: list[Txn], obs: Observations, found: Findings) -> None:
    """Run every finder of this module over the transactions."""
    order_cases(txns, obs, found)
    aborted_reads(txns, obs, found)
    intermediate_reads(txns, obs, found)
    internal_cases(txns, found)
    lost_updates(txns, found)


def order_cases(txns: list[Txn], obs: Observations, found: Findings) -> None:
    """incompatible-order and duplicate-elements."""
    for txn, i, key, read in ok_reads(txns):
        if not read:
            continue
        order = obs.orders[key]
        if not obs.compatible(txn.id, i):
            other = txns[order.witness]
            found.note(INCOMPATIBLE_ORDER, lambda: Case(
                INCOMPATIBLE_ORDER, [txn.id, other.id],
                f"{txn.name} read {show_key(key)} = {show_list(read)}, which is not a prefix "
                f"of {other.name}'s read {show_list(order.longest)}: no one order of appends "
                f"gives both", data={"key": key}))
            duplicated = len(set(read)) != len(read)
        else:
            # A prefix of the longest read repeats an element iff it reaches its first repeat.
            duplicated = order.first_duplicate is not None and len(read) > order.first_duplicate
        if duplicated:
            found.note(DUPLICATE_ELEMENTS, lambda: Case(
                DUPLICATE_ELEMENTS, [txn.id],
                f"{txn.name} read {show_key(key)} = {show_list(read)}, which holds "
                f"{show_value(_repeated(read))} more than once; each element is appended "
                f"once", data={"key": key}))


def aborted_reads(txns: list[Txn], obs: Observations, found: Findings) -> None:
    """G1a: reads of elements appended only by failed transactions, or by none."""
    # Every compatible read is a prefix of its key's longest read, so the longest read's
    # elements are checked once and a read is aborted iff it reaches the first bad one:
    # linear in the number of reads, not in the total length of what they returned.
    first_bad: dict[Hashable, int] = {}
    for key, order in obs.orders.items():
        for position, element in enumerate(order.longest):
            if _bad(txns, obs, key, element):
                first_bad[key] = position
                break
    for txn, i, key, read in ok_reads(txns):
        if not read:
            continue
        if obs.compatible(txn.id, i):
            bad = first_bad.get(key)
            if bad is None or len(read) <= bad:
                continue
            element = read[bad]
        else:
            element = next((e for e in read if _bad(txns, obs, key, e)), _NONE)
            if element is _NONE:
                continue
        if not found.wants(G1A):
            found.count(G1A)
            continue
        writer = obs.writer(key, element)
        k, e = show_key(key), show_value(element)
        if writer is None:
            found.add(Case(G1A, [txn.id], f"{txn.name} read {k} = {show_list(read)}, holding "
                                          f"{e}, which no transaction appended",
                           data={"key": key}))
        else:
            w = txns[writer.txn]
            found.add(Case(G1A, [txn.id, w.id],
                           f"{txn.name} read {k} = {show_list(read)}, holding {e}, which "
                           f"{w.name} appended in a transaction that failed",
                           data={"key": key}))


_NONE: Any = object()


def _bad(txns: list[Txn], obs: Observations, key: Hashable, element: Hashable) -> bool:
    writer = obs.writer(key, element)
    return writer is None or txns[writer.txn].outcome == FAIL


def intermediate_reads(txns: list[Txn], obs: Observations, found: Findings) -> None:
    """G1b: a read ending with another transaction's append that was not its last to the
    key. (Elle's rule: the read's last element names the state it saw.)"""
    for txn, _, key, read in ok_reads(txns):
        if not read:
            continue
        writer = obs.writer(key, read[-1])
        if writer is None or writer.final or writer.txn == txn.id:
            continue
        if not found.wants(G1B):
            found.count(G1B)
            continue
        w = txns[writer.txn]
        later = [v for f, k, v in w.mops if f == APPEND and k == key]
        later = later[later.index(read[-1]) + 1:]
        found.add(Case(G1B, [txn.id, w.id],
                       f"{txn.name} read {show_key(key)} = {show_list(read)}, ending with "
                       f"{w.name}'s append of {show_value(read[-1])}, which {w.name} followed "
                       f"with {', '.join(show_value(v) for v in later)}: an intermediate state",
                       data={"key": key}))


def internal_cases(txns: list[Txn], found: Findings) -> None:
    """internal and future-read, transaction by transaction (ok transactions only)."""
    for txn in txns:
        if not txn.ok or len(txn.mops) < 2:
            continue
        # key -> what the next read of it must show: (prefix or None when unknown, suffix)
        expected: dict[Hashable, tuple[list | None, list]] = {}
        read_so_far: dict[Hashable, list] = {}
        for f, key, value in txn.mops:
            state = expected.get(key)
            if f == APPEND:
                if state is None:
                    expected[key] = (None, [value])
                else:
                    state[1].append(value)
                for read in read_so_far.get(key, ()):
                    if value in read:
                        _future(txn, key, value, read, found)
                        break
                continue
            if state is not None:
                prefix, suffix = state
                if prefix is not None:
                    wrong = value != prefix + suffix
                    shown = show_list(prefix + suffix)
                else:
                    wrong = len(value) < len(suffix) or value[len(value) - len(suffix):] != suffix
                    shown = "a list ending " + show_list(suffix)
                if wrong:
                    found.note(INTERNAL, lambda: Case(
                        INTERNAL, [txn.id],
                        f"{txn.name} read {show_key(key)} = {show_list(value)} where its own "
                        f"earlier reads and appends say {shown}", data={"key": key}))
            expected[key] = (value, [])
            read_so_far.setdefault(key, []).append(value)


def _future(txn: Txn, key: Hashable, value: Any, read: list, found: Findings) -> None:
    found.note(FUTURE_READ, lambda: Case(
        FUTURE_READ, [txn.id],
        f"{txn.name} read {show_key(key)} = {show_list(read)}, holding {show_value(value)}, "
        f"which it appends only afterwards", data={"key": key}))


def lost_updates(txns: list[Txn], found: Findings) -> None:
    """lost-update: ok transactions that read the same version of a key before appending to
    it; two of them cannot both have built on that version."""
    groups: dict[tuple[Hashable, Any], list[int]] = {}
    for txn in txns:
        if not txn.ok:
            continue
        first: dict[Hashable, Any] = {}
        for f, key, value in txn.mops:
            if key in first:
                mark = first[key]
                if f == APPEND and mark is not _APPENDED_FIRST and mark is not _DONE:
                    groups.setdefault((key, mark), []).append(txn.id)
                    first[key] = _DONE
                continue
            # The transaction's first micro-operation on the key: a read names the version
            # it started from; an append first means it built on nothing it read.
            first[key] = (value[-1] if value else INIT) if f == READ else _APPENDED_FIRST
    for (key, version), members in groups.items():
        if len(members) < 2:
            continue
        if not found.wants(LOST_UPDATE):
            found.count(LOST_UPDATE)
            continue
        names = [txns[m].name for m in members]
        shown = "the empty version" if version is INIT else \
            f"the version ending {show_value(version)}"
        found.add(Case(LOST_UPDATE, members,
                       f"{', '.join(names)} all read {shown} of {show_key(key)} and then "
                       f"appended to it: each append overwrote a state the others built on",
                       data={"key": key}))


_DONE: Any = object()
_APPENDED_FIRST: Any = object()


def _repeated(values: list) -> Any:
    seen = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    return None
