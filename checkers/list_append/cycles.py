"""The search for dependency cycles, and their kinds, inside strongly connected components.

Graphs nest: ww ⊂ ww+wr ⊂ ww+wr+rw ⊂ ww+wr+rw+rt. The components of the largest graph a
requested model needs are found once over the whole history (a valid history has none, and
then nothing else runs); each component is then split into the components of the next smaller
graph, down to ww alone. At each level a component is a witness of that level's cycles:

- ww: a G0 cycle;
- ww+wr with a wr edge inside: a G1c cycle through that edge;
- ww+wr+rw with an rw edge inside: a cycle with anti-dependencies. A G-single (one rw edge)
  is searched first; then, for snapshot isolation, whether any cycle has its rw edges never
  next to each other (G-nonadjacent, Cerone and Gotsman's characterisation of generalized SI:
  the relation (ww ∪ wr) ; rw? must be acyclic), decided exactly by the components of a graph
  with two copies of each transaction, "arrived by rw" and not; failing both, a G2-item cycle;
- with real time: a cycle through a real-time edge (strict serializability), named after its
  other edges with "-realtime".

So every model's verdict is exact: a cycle of a kind it forbids exists iff one is reported.
Which cycle is shown is best effort: the shortest through the edges tried, searches being
bounded by a `Budget` of edges looked at (always at least one search per witness).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from checkers.list_append.anomalies import RT, RW, WR, WW, Case, Findings, cycle_name
from checkers.list_append.dependencies import Dependencies
from checkers.list_append.graph import Budget, path_to, shortest_paths, strongly_connected
from checkers.list_append.history import Txn

DATA = (1 << WW) | (1 << WR) | (1 << RW)
ALL = DATA | (1 << RT)
LEVELS = ((WW,), (WW, WR), (WW, WR, RW), (WW, WR, RW, RT))


@dataclass
class Stats:
    """Figures of the search: components per level and the largest one."""

    components: dict[str, int] = field(default_factory=dict)
    largest: int = 0
    budget_spent: bool = False


def find_cycles(txns: list[Txn], deps: Dependencies, kinds: tuple[int, ...], found: Findings,
                budget: Budget) -> Stats:
    """Add a `Case` for each cycle kind found in each component of the graph of `kinds`
    (one of `LEVELS`) and its sub-graphs. Cases carry `cycle` as (from, to, kind) edges
    between transactions, in order."""
    stats = Stats()
    top = LEVELS.index(tuple(kinds))
    adj = deps.adjacency(kinds)
    components = strongly_connected(adj)
    del adj
    if not components:
        return stats
    # Each edge inside a component goes with that component; edges between are dropped.
    owner = [-1] * deps.nodes
    for number, component in enumerate(components):
        for node in component:
            owner[node] = number
    inside: list[list[tuple[int, int, int]]] = [[] for _ in components]
    for kind in kinds:
        for a, b in zip(deps.src[kind], deps.dst[kind]):
            c = owner[a]
            if c >= 0 and c == owner[b]:
                inside[c].append((a, b, kind))
    del owner
    work = [(top, component, edges) for component, edges in zip(components, inside)]
    while work:
        level, nodes, edges = work.pop()
        name = "+".join(("ww", "wr", "rw", "rt")[k] for k in LEVELS[level])
        stats.components[name] = stats.components.get(name, 0) + 1
        stats.largest = max(stats.largest, len(nodes))
        component = _Component(nodes, edges, deps)
        component.witness(level, txns, found, budget)
        if level:
            work.extend((level - 1, sub_nodes, sub_edges)
                        for sub_nodes, sub_edges in component.split(LEVELS[level - 1]))
    stats.budget_spent = budget.spent
    return stats


class _Component:
    """One strongly connected component, renumbered 0..m-1 for the searches."""

    def __init__(self, nodes: list[int], edges: list[tuple[int, int, int]],
                 deps: Dependencies):
        self.nodes = nodes
        self.edges = edges
        self.local = {node: i for i, node in enumerate(nodes)}
        self.adj: list[list[tuple[int, int]]] = [[] for _ in nodes]
        for a, b, kind in edges:
            self.adj[self.local[a]].append((self.local[b], kind))
        self.free = [deps.is_time_node(node) for node in nodes]
        self.has_time = any(self.free)

    def split(self, kinds: tuple[int, ...]) -> list[tuple[list[int], list]]:
        """The components of this one's sub-graph with only `kinds` (time nodes drop out)."""
        wanted = {k for k in kinds}
        adj: list[list[int]] = [[] for _ in self.nodes]
        for a, b, kind in self.edges:
            if kind in wanted:
                adj[self.local[a]].append(self.local[b])
        parts = strongly_connected(adj)
        owner = {}
        for number, part in enumerate(parts):
            for i in part:
                owner[self.nodes[i]] = number
        inside: list[list[tuple[int, int, int]]] = [[] for _ in parts]
        for a, b, kind in self.edges:
            if kind in wanted:
                c = owner.get(a)
                if c is not None and c == owner.get(b):
                    inside[c].append((a, b, kind))
        return [([self.nodes[i] for i in part], edges) for part, edges in zip(parts, inside)]

    def witness(self, level: int, txns: list[Txn], found: Findings, budget: Budget) -> None:
        kinds = {kind for _, _, kind in self.edges}
        if level == 3:
            if self.has_time:
                cycle = self.shortest_through(RT, ALL, budget)
                self._report(cycle, txns, found)
        elif level == 2:
            if RW in kinds:
                self._anti_dependency_cycles(txns, found, budget)
        elif level == 1:
            if WR in kinds:
                self._report(self.shortest_through(WR, (1 << WW) | (1 << WR), budget),
                             txns, found)
        elif kinds:
            self._report(self.shortest_through(WW, 1 << WW, budget), txns, found)

    def _anti_dependency_cycles(self, txns: list[Txn], found: Findings,
                                budget: Budget) -> None:
        # G-single: an rw edge closed by ww and wr edges only.
        single = self.shortest_through(RW, (1 << WW) | (1 << WR), budget, exhaustive=False)
        if single is not None:
            self._report(single, txns, found)
            return
        nonadjacent = self._nonadjacent_cycle()
        if nonadjacent is not None:
            self._report(nonadjacent, txns, found)
            return
        self._report(self.shortest_through(RW, DATA, budget), txns, found)

    def shortest_through(self, kind: int, allowed: int, budget: Budget, *,
                         exhaustive: bool = True) -> list[tuple[int, int, int]] | None:
        """The shortest cycle made of an edge of `kind` closed by a path of `allowed` kinds,
        over the edges of `kind` tried (grouped by their target, one search each).

        With `exhaustive` (a cycle is known to exist) at least one search runs whatever the
        budget; without it (a search for a cycle that may not exist), searches stop when the
        budget is spent, and None may mean "not found in time".
        """
        by_target: dict[int, list[int]] = {}
        for a, b, k in self.edges:
            if k == kind:
                by_target.setdefault(self.local[b], []).append(self.local[a])
        best: list[tuple[int, int, int]] | None = None
        best_length = float("inf")
        searched = 0
        for target, sources in by_target.items():
            if budget.spent and (searched or not exhaustive):
                break
            searched += 1
            dist, parent = shortest_paths(self.adj, target, allowed, self.free, budget)
            for source in sources:
                if dist[source] == float("inf"):
                    continue
                length = dist[source] + (0 if self.free[target] else 1)
                if length < best_length:
                    best_length = length
                    best = path_to(parent, target, source) + [(source, target, kind)]
            if best is not None and best_length <= 2:
                break       # no cycle between transactions is shorter
        if best is None:
            return None
        return self._transactions(best)

    def _nonadjacent_cycle(self) -> list[tuple[int, int, int]] | None:
        """A cycle whose rw edges are never next to each other, if any (exact).

        Node 2i is transaction i reached by a ww or wr edge, 2i+1 the same reached by an rw
        edge, from which no rw edge may leave. Every edge into a node 2i+1 is an rw edge, so a
        node 2i+1 inside a component of this graph lies on a cycle through an rw edge, which
        is such a cycle; and each such cycle is a cycle of this graph.
        """
        m = len(self.nodes)
        doubled: list[list[tuple[int, int]]] = [[] for _ in range(2 * m)]
        for i, successors in enumerate(self.adj):
            for j, kind in successors:
                if kind == RW:
                    doubled[2 * i].append((2 * j + 1, RW))
                elif kind != RT:
                    doubled[2 * i].append((2 * j, kind))
                    doubled[2 * i + 1].append((2 * j, kind))
        for part in strongly_connected([[y for y, _ in out] for out in doubled]):
            start = next((x for x in part if x & 1), None)
            if start is None:
                continue
            dist, parent = shortest_paths(doubled, start, ALL)
            entries = [y for y in part if not y & 1 and dist[y] != float("inf")
                       and any(x == start for x, _ in doubled[y])]
            source = min(entries, key=lambda y: dist[y])
            walk = path_to(parent, start, source) + [(source, start, RW)]
            return self._transactions([(a // 2, b // 2, kind) for a, b, kind in walk])
        return None

    def _transactions(self, cycle: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        """A cycle of local edges as edges between transactions: runs through time nodes
        become one real-time edge, and the cycle starts at a transaction."""
        nodes = self.nodes
        free = self.free
        start = next(i for i, (a, _, _) in enumerate(cycle) if not free[a])
        cycle = cycle[start:] + cycle[:start]
        out: list[tuple[int, int, int]] = []
        origin = None
        for a, b, kind in cycle:
            if origin is None:
                origin = a
            if free[b]:
                continue
            out.append((nodes[origin], nodes[b], RT if free[a] else kind))
            origin = None
        return out

    def _report(self, cycle: list[tuple[int, int, int]] | None, txns: list[Txn],
                found: Findings) -> None:
        if cycle is None:
            return
        name = cycle_name([kind for _, _, kind in cycle])
        if not found.wants(name):
            found.count(name)
            return
        members = [a for a, _, _ in cycle]
        arrows = " ".join(f"{txns[a].name} -{('ww', 'wr', 'rw', 'rt')[kind]}->"
                          for a, _, kind in cycle) + f" {txns[cycle[0][0]].name}"
        found.add(Case(name, members, arrows, cycle=cycle))

