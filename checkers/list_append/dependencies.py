"""The dependency edges between transactions (Adya's direct serialization graph, as Elle
infers it from list-append histories), and real-time edges when a model needs them.

For each key, with its version order from `versions`:

- ww: the writer of each element precedes the writer of the next one; an element no read
  showed comes after the last element any read showed;
- wr: the writer of a read's last element precedes the reader;
- rw: a reader of a version precedes the writer of the element appended right after that
  version (it did not see that append); readers of the empty list precede the first writer.

Failed transactions are in no edge: they did not happen. Info transactions are in edges when
their appends are placed; their reads are unknown, so no wr or rw edge leaves them as readers.
Reads that fit no single order (incompatible) give no rw edge: their version has no place.

Real-time edges (a completed before b was invoked) would be quadratic in number, so they go
through a chain of time nodes, one per run of completions: a -> t(a's completion),
t -> t' (the next time node), t -> b (the last time node before b's invocation). A path
a -> ... -> b through time nodes exists exactly when a completed before b was invoked. Time
nodes are numbered after the transactions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Iterable

from checkers.list_append.anomalies import RT, RW, WR, WW
from checkers.list_append.history import FAIL, INFO, OK, Txn
from checkers.list_append.versions import INIT, Observations, ok_reads


@dataclass
class Dependencies:
    """The edges, one pair of lists (sources, destinations) per kind (`WW`, `WR`, `RW`, `RT`).

    Nodes 0..`txns`-1 are transactions (node = `Txn.id`); nodes `txns`..`nodes`-1 are time
    nodes (only with real-time edges).
    """

    txns: int
    nodes: int
    src: dict[int, list[int]] = field(default_factory=lambda: {k: [] for k in (WW, WR, RW, RT)})
    dst: dict[int, list[int]] = field(default_factory=lambda: {k: [] for k in (WW, WR, RW, RT)})

    def add(self, kind: int, a: int, b: int) -> None:
        self.src[kind].append(a)
        self.dst[kind].append(b)

    def count(self, kind: int) -> int:
        return len(self.src[kind])

    def adjacency(self, kinds: Iterable[int]) -> list[list[int]]:
        """Successor lists over all nodes, with the edges of `kinds`."""
        adj: list[list[int]] = [[] for _ in range(self.nodes)]
        for kind in kinds:
            for a, b in zip(self.src[kind], self.dst[kind]):
                adj[a].append(b)
        return adj

    def is_time_node(self, node: int) -> bool:
        return node >= self.txns


def build(txns: list[Txn], obs: Observations, realtime: bool) -> Dependencies:
    """The ww, wr and rw edges, and the real-time edges when `realtime`."""
    deps = Dependencies(len(txns), len(txns))
    failed = [t.outcome == FAIL for t in txns]
    _write_edges(txns, obs, failed, deps)
    _read_edges(txns, obs, failed, deps)
    if realtime:
        _realtime_edges(txns, deps)
    return deps


def _placed(obs: Observations, failed: list[bool], key: Hashable, element: Hashable
            ) -> int | None:
    """The transaction that appended `element` to `key`, when it may have happened."""
    writer = obs.writer(key, element)
    if writer is None or failed[writer.txn]:
        return None
    return writer.txn


def _unread_appends(obs: Observations, failed: list[bool], key: Hashable):
    """(element, txn) of the appends to `key` that no read showed, failed ones left out."""
    position = obs.order(key).position
    for element, append in obs.appends.get(key, {}).items():
        if element not in position and not failed[append.txn]:
            yield element, append.txn


def _write_edges(txns: list[Txn], obs: Observations, failed: list[bool],
                 deps: Dependencies) -> None:
    for key in obs.appends:
        previous = None
        for element in obs.order(key).elements:
            writer = _placed(obs, failed, key, element)
            if writer is None:
                # Aborted or phantom elements are G1a, found elsewhere; the order goes on
                # around them.
                continue
            if previous is not None and previous != writer:
                deps.add(WW, previous, writer)
            previous = writer
        if previous is None:
            continue
        for _, writer in _unread_appends(obs, failed, key):
            if writer != previous:
                deps.add(WW, previous, writer)


def _read_edges(txns: list[Txn], obs: Observations, failed: list[bool],
                deps: Dependencies) -> None:
    # readers[key][version] = ids of the ok transactions that read that version of the key
    readers: dict[Hashable, dict[Hashable, list[int]]] = {}
    for txn, i, key, read in ok_reads(txns):
        if read:
            writer = _placed(obs, failed, key, read[-1])
            if writer is not None and writer != txn.id:
                deps.add(WR, writer, txn.id)
        if obs.compatible(txn.id, i):
            by_version = readers.get(key)
            if by_version is None:
                by_version = readers[key] = {}
            version = read[-1] if read else INIT
            found = by_version.get(version)
            if found is None:
                by_version[version] = [txn.id]
            elif found[-1] != txn.id:
                found.append(txn.id)
    for key, by_version in readers.items():
        elements = obs.order(key).elements
        for place, element in enumerate(elements):
            writer = _placed(obs, failed, key, element)
            if writer is None:
                continue
            version = elements[place - 1] if place else INIT
            for reader in by_version.get(version, ()):
                if reader != writer:
                    deps.add(RW, reader, writer)
        last = elements[-1] if elements else INIT
        last_readers = by_version.get(last, ())
        if last_readers:
            for _, writer in _unread_appends(obs, failed, key):
                for reader in last_readers:
                    if reader != writer:
                        deps.add(RW, reader, writer)


def _realtime_edges(txns: list[Txn], deps: Dependencies) -> None:
    # Invocations sort before completions at the same time: equal times are concurrent.
    events = []
    for txn in txns:
        if txn.outcome in (OK, INFO):
            events.append((txn.call, 0, txn.id))
            if txn.outcome == OK and txn.ret is not None:
                events.append((txn.ret, 1, txn.id))
    events.sort()
    node = deps.nodes
    current = None           # the newest time node
    fresh = False            # whether it has had no invocation linked from it yet
    for _, completion, txn in events:
        if completion:
            if current is None or not fresh:
                # A new time node, after the previous one: later invocations must not be
                # linked to earlier ones through it.
                if current is not None:
                    deps.add(RT, current, node)
                current = node
                node += 1
                fresh = True
            deps.add(RT, txn, current)
        elif current is not None:
            deps.add(RT, current, txn)
            fresh = False
    deps.nodes = node
