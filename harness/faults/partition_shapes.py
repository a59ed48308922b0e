"""Network partitions as data: grudges built by pure functions.

A grudge maps a node to the nodes whose traffic it does not receive (Jepsen's convention:
"node -> nodes it drops messages from"). Every shape below is a pure function of the node list
(and of an injected random generator where the shape has a random part), so a fault schedule
is data that can be printed, stored in a history and replayed; the network backends
(`harness.networks`) turn a grudge into the directed links it cuts and apply them.
"""

from __future__ import annotations

import random
from typing import Iterable, Mapping, Sequence

from harness.networks.base import grudge_links

Grudge = dict[str, frozenset[str]]

SHAPES = ("halves", "isolate", "isolate-leader", "majorities-ring", "bridge", "one-way")


def complete_grudge(components: Iterable[Iterable[str]]) -> Grudge:
    """Every node drops traffic from every node outside its own component."""
    components = [frozenset(c) for c in components]
    everyone = frozenset().union(*components) if components else frozenset()
    grudge: Grudge = {}
    for component in components:
        for node in component:
            others = everyone - component
            if others:
                grudge[node] = others
    return grudge


def halves(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Random halves: a shuffled split into a smaller and a larger side (a minority and a
    majority when the count is odd)."""
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    middle = len(shuffled) // 2
    return complete_grudge([shuffled[:middle], shuffled[middle:]])


def isolate(nodes: Sequence[str], node: str) -> Grudge:
    """`node` alone on one side, everyone else on the other."""
    if node not in nodes:
        raise ValueError(f"cannot isolate {node!r}: not one of {', '.join(nodes)}")
    return complete_grudge([[node], [n for n in nodes if n != node]])


def majorities_ring(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Every node sees a majority (itself and its nearest neighbours on a shuffled ring), but
    no two nodes see the same majority: a classic way to get several would-be leaders."""
    ring = list(nodes)
    rng.shuffle(ring)
    n = len(ring)
    majority = n // 2 + 1
    grudge: Grudge = {}
    for i, node in enumerate(ring):
        # A window of `majority` nodes around this one (itself included).
        start = i - (majority - 1) // 2
        visible = {ring[(start + k) % n] for k in range(majority)}
        dropped = frozenset(ring) - visible
        if dropped:
            grudge[node] = dropped
    return grudge


def bridge(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Two halves that cannot see each other, and one node that sees both."""
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    if len(shuffled) < 3:
        raise ValueError("a bridge needs at least 3 nodes")
    middle = len(shuffled) // 2
    left, hub, right = shuffled[:middle], shuffled[middle], shuffled[middle + 1:]
    grudge: Grudge = {}
    for node in left:
        grudge[node] = frozenset(right)
    for node in right:
        grudge[node] = frozenset(left)
    del hub  # sees everyone: no grudge
    return grudge


def one_way(src: str, dst: str) -> Grudge:
    """Traffic from `src` no longer reaches `dst`; traffic from `dst` still reaches `src`."""
    if src == dst:
        raise ValueError("a one-way partition needs two different nodes")
    return {dst: frozenset([src])}



def reachable(nodes: Sequence[str], grudge: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """For each node, the nodes its traffic reaches under the grudge (itself excluded)."""
    cut = grudge_links(grudge)
    return {src: {dst for dst in nodes if dst != src and (src, dst) not in cut}
            for src in nodes}


def describe(grudge: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """The grudge as JSON-friendly data (for nemesis events and reports)."""
    return {node: sorted(sources) for node, sources in sorted(grudge.items())}


def connectable(nodes: Sequence[str], grudge: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """For each node, the nodes it can open a TCP connection to when every cut link drops
    all packets from its source (Jepsen's iptables partitions, the namespace network): a
    connection needs both directions, so a one-way cut stops connections either way."""
    cut = grudge_links(grudge)
    return {src: {dst for dst in nodes if dst != src and (src, dst) not in cut
                  and (dst, src) not in cut} for src in nodes}
