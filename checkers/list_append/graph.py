"""Graph algorithms on small-integer graphs: strongly connected components and shortest paths.

Nodes are 0..n-1 and a graph is a list of successor lists, which is what the dependency graph
of a list-append history is built as. Both algorithms are iterative (no recursion limit to
reach on a history of a million transactions) and linear in nodes plus edges.

No graph library: Tarjan's algorithm over Python lists checks 100,000 transactions in about a
second, and building a library's graph from the same lists would cost about as much as that.
"""

from __future__ import annotations

from collections import deque
from typing import Sequence


def strongly_connected(adj: Sequence[Sequence[int]]) -> list[list[int]]:
    """The strongly connected components of two or more nodes (Tarjan, iterative).

    `adj[v]` lists the successors of node v. Components come out in reverse topological
    order of the condensation; single nodes are left out (the graphs here have no self-loops,
    so a single node is never a cycle).
    """
    n = len(adj)
    index = [0] * n          # 0: not visited yet; otherwise visiting order, from 1
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 1
    for root in range(n):
        if index[root]:
            continue
        if not adj[root]:
            # Most nodes of a valid history's graph are sinks or sources: skip the frames.
            index[root] = counter
            counter += 1
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        nodes = [root]
        iters = [iter(adj[root])]
        while nodes:
            v = nodes[-1]
            for w in iters[-1]:
                if not index[w]:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = True
                    nodes.append(w)
                    iters.append(iter(adj[w]))
                    break
                if on_stack[w] and index[w] < low[v]:
                    low[v] = index[w]
            else:
                # Every successor of v is done: v is finished.
                nodes.pop()
                iters.pop()
                if nodes:
                    u = nodes[-1]
                    if low[v] < low[u]:
                        low[u] = low[v]
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack[w] = False
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        components.append(component)
    return components


class Budget:
    """How many more edges searches may look at; shared by the searches of one check so that a
    history whose components are huge still finishes."""

    def __init__(self, edges: int):
        self.left = edges

    def spend(self, edges: int) -> None:
        self.left -= edges

    @property
    def spent(self) -> bool:
        return self.left <= 0


def shortest_paths(adj: Sequence[Sequence[tuple[int, int]]], start: int, allowed: int,
                   free: Sequence[bool] | None = None, budget: Budget | None = None
                   ) -> tuple[list[float], list[tuple[int, int] | None]]:
    """Distances and parents of the shortest paths from `start` (a 0-1 breadth-first search).

    `adj[v]` lists (successor, kind) pairs; only edges whose kind's bit is set in `allowed`
    (bit 1 << kind) are followed. Entering a node v costs 1, or 0 when `free[v]` (the time
    nodes of real-time chains, which stand for no transaction). Returns `dist` (inf where
    unreached) and `parent[v] = (predecessor, kind of the edge taken)`.
    """
    n = len(adj)
    inf = float("inf")
    dist: list[float] = [inf] * n
    parent: list[tuple[int, int] | None] = [None] * n
    dist[start] = 0
    queue = deque([start])
    scanned = 0
    while queue:
        u = queue.popleft()
        du = dist[u]
        edges = adj[u]
        scanned += len(edges)
        for v, kind in edges:
            if not (allowed >> kind) & 1:
                continue
            cost = 0 if free is not None and free[v] else 1
            if du + cost < dist[v]:
                dist[v] = du + cost
                parent[v] = (u, kind)
                if cost:
                    queue.append(v)
                else:
                    queue.appendleft(v)
    if budget is not None:
        budget.spend(scanned + n)
    return dist, parent


def path_to(parent: Sequence[tuple[int, int] | None], start: int, goal: int
            ) -> list[tuple[int, int, int]]:
    """The edges (from, to, kind) of the path `shortest_paths` found from `start` to `goal`."""
    edges = []
    v = goal
    while v != start:
        step = parent[v]
        if step is None:
            raise ValueError(f"node {goal} was not reached from {start}")
        u, kind = step
        edges.append((u, v, kind))
        v = u
    edges.reverse()
    return edges
