"""Each key's version order, inferred from what the reads returned.

Appended elements are unique per key, so a read of a list is a prefix of the key's version
order: the longest read of a key shows the whole order as far as anyone saw it, and every other
read must be a prefix of it, or no single order explains both (incompatible order). A version
is named by its last element (the empty list: `INIT`), as in Elle.

Appends no read ever showed still have a place: after every element that was read (had one
come earlier, the longest read would hold it). `predecessor` gives that place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Iterator

from checkers.list_append.history import APPEND, READ, Txn


class _Init:
    """The version before any append: the empty list."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INIT"


INIT: Any = _Init()


@dataclass(slots=True)
class Append:
    """Who appended an element to a key, and whether it was that transaction's last append to
    the key (an element that is not is an intermediate state of its transaction)."""

    txn: int
    final: bool


@dataclass(slots=True)
class KeyOrder:
    """What the reads show of one key.

    - `elements`: the version order, oldest first (the longest read, duplicates dropped);
    - `position`: each element's place in `elements`;
    - `witness`: the ok transaction whose read showed the whole order (None: nobody read the
      key, or every read was empty);
    - `longest`: that read as returned (duplicates kept), which every read must be a prefix of;
    - `first_duplicate`: the first position of `longest` that repeats an earlier element, or
      None.
    """

    elements: list = field(default_factory=list)
    position: dict = field(default_factory=dict)
    witness: int | None = None
    longest: list = field(default_factory=list)
    first_duplicate: int | None = None


@dataclass(slots=True)
class Observations:
    """Everything the version inference found, for the anomaly finders and the graph.

    - `appends[key][element]`: the `Append` of every element (ok, info and fail transactions);
    - `duplicate_appends`: (key, element, first txn id, second txn id) for elements appended
      twice: the inference needs unique appends, so such a history cannot be judged;
    - `orders[key]`: the `KeyOrder` of every key that an ok transaction read non-empty;
    - `incompatible`: (txn id, mop index) of the reads that are not a prefix of their key's
      longest read.
    """

    appends: dict[Hashable, dict[Hashable, Append]]
    duplicate_appends: list[tuple[Hashable, Hashable, int, int]]
    orders: dict[Hashable, KeyOrder]
    incompatible: set[tuple[int, int]]

    def order(self, key: Hashable) -> KeyOrder:
        """The key's order, empty when no read showed any element of it."""
        found = self.orders.get(key)
        return found if found is not None else _EMPTY

    def writer(self, key: Hashable, element: Hashable) -> Append | None:
        """The append of `element` to `key`, or None when nobody appended it."""
        by_element = self.appends.get(key)
        return None if by_element is None else by_element.get(element)

    def predecessor(self, key: Hashable, element: Hashable) -> Any:
        """The element appended just before `element` to `key`, or `INIT` when it was the
        first. For an element no read showed, the last element any read showed (it came after
        all of them)."""
        order = self.order(key)
        place = order.position.get(element)
        if place is None:
            return order.elements[-1] if order.elements else INIT
        return order.elements[place - 1] if place else INIT

    def compatible(self, txn: int, mop_index: int) -> bool:
        """Whether that read is a prefix of its key's version order."""
        return (txn, mop_index) not in self.incompatible


_EMPTY = KeyOrder()


def ok_reads(txns: list[Txn]) -> Iterator[tuple[Txn, int, Hashable, list]]:
    """Every read of an ok transaction: (txn, mop index, key, the list it returned)."""
    for txn in txns:
        if txn.ok:
            for i, (f, key, value) in enumerate(txn.mops):
                if f == READ:
                    yield txn, i, key, value


def observe(txns: list[Txn]) -> Observations:
    """Index every append and infer every key's version order from the ok reads.

    Costs one pass over the appends and two over the reads; comparing a read with the longest
    read of its key runs at C speed (list slicing and equality).
    """
    appends, duplicates = _index_appends(txns)
    orders: dict[Hashable, KeyOrder] = {}
    for txn, _, key, read in ok_reads(txns):
        if read:
            order = orders.get(key)
            if order is None:
                orders[key] = KeyOrder(witness=txn.id, longest=read)
            elif len(read) > len(order.longest):
                order.longest = read
                order.witness = txn.id
    for order in orders.values():
        seen: dict = {}
        for i, element in enumerate(order.longest):
            if element in seen:
                if order.first_duplicate is None:
                    order.first_duplicate = i
                continue
            seen[element] = len(order.elements)
            order.elements.append(element)
        order.position = seen
    incompatible = set()
    for txn, i, key, read in ok_reads(txns):
        n = len(read)
        if not n:
            continue
        longest = orders[key].longest
        # The last elements differ in almost every incompatible read: test them first.
        if n > len(longest) or read[-1] != longest[n - 1] or read != longest[:n]:
            incompatible.add((txn.id, i))
    return Observations(appends, duplicates, orders, incompatible)


def _index_appends(txns: list[Txn]):
    appends: dict[Hashable, dict[Hashable, Append]] = {}
    duplicates = []
    for txn in txns:
        last: dict[Hashable, Append] = {}
        for f, key, element in txn.mops:
            if f != APPEND:
                continue
            by_element = appends.get(key)
            if by_element is None:
                by_element = appends[key] = {}
            prior = by_element.get(element)
            if prior is not None:
                duplicates.append((key, element, prior.txn, txn.id))
                continue
            append = Append(txn.id, True)
            by_element[element] = append
            previous = last.get(key)
            if previous is not None:
                previous.final = False
            last[key] = append
    return appends, duplicates
