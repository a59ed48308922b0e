"""Anomaly names, which consistency models forbid which, and how a cycle is named.

The table follows Elle's `elle.consistency-model` (after Adya, Liskov and O'Neil's generalized
isolation levels, and Cerone, Bernardi and Gotsman for internal consistency):

- read committed (Adya PL-2) forbids G1 (G1a, G1b, G1c) and, through PL-1, G0, duplicate
  elements; incompatible orders imply G1a and future reads G1c, so it forbids those too;
- repeatable read (PL-2.99) adds G2-item (an item anti-dependency cycle, which G-single and
  G-nonadjacent cycles over items are) and lost update;
- snapshot isolation adds to read committed G-single and G-nonadjacent (generalized SI forbids
  every cycle whose anti-dependency edges are never adjacent), lost update and internal
  inconsistency, but allows G2-item cycles with adjacent anti-dependencies (write skew);
- serializable (PL-3) forbids all of the above;
- strict serializable also forbids the same cycles when they need real-time edges
  (`<name>-realtime`).

Elle's table has read committed and repeatable read allow internal inconsistency: a
transaction at those levels may see other transactions' commits between its own reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

# Edge kinds, as small integers: they are stored once per edge.
WW, WR, RW, RT = 0, 1, 2, 3
KIND_NAMES = ("ww", "wr", "rw", "rt")

G0 = "G0"
G1A = "G1a"
G1B = "G1b"
G1C = "G1c"
G_SINGLE = "G-single"
G_NONADJACENT = "G-nonadjacent"
G2_ITEM = "G2-item"
LOST_UPDATE = "lost-update"
INTERNAL = "internal"
FUTURE_READ = "future-read"
INCOMPATIBLE_ORDER = "incompatible-order"
DUPLICATE_ELEMENTS = "duplicate-elements"
REALTIME = "-realtime"

CYCLES = (G0, G1C, G_SINGLE, G_NONADJACENT, G2_ITEM)

STRICT_SERIALIZABLE = "strict-serializable"
SERIALIZABLE = "serializable"
SNAPSHOT_ISOLATION = "snapshot-isolation"
REPEATABLE_READ = "repeatable-read"
READ_COMMITTED = "read-committed"
MODELS = (STRICT_SERIALIZABLE, SERIALIZABLE, SNAPSHOT_ISOLATION, REPEATABLE_READ,
          READ_COMMITTED)

_READ_COMMITTED = frozenset({G0, G1A, G1B, G1C, INCOMPATIBLE_ORDER, DUPLICATE_ELEMENTS,
                             FUTURE_READ})
_REPEATABLE_READ = _READ_COMMITTED | {G_SINGLE, G_NONADJACENT, G2_ITEM, LOST_UPDATE}
_SNAPSHOT_ISOLATION = _READ_COMMITTED | {G_SINGLE, G_NONADJACENT, LOST_UPDATE, INTERNAL}
_SERIALIZABLE = _REPEATABLE_READ | _SNAPSHOT_ISOLATION
FORBIDDEN: dict[str, frozenset[str]] = {
    READ_COMMITTED: _READ_COMMITTED,
    REPEATABLE_READ: _REPEATABLE_READ,
    SNAPSHOT_ISOLATION: _SNAPSHOT_ISOLATION,
    SERIALIZABLE: _SERIALIZABLE,
    STRICT_SERIALIZABLE: _SERIALIZABLE | {name + REALTIME for name in CYCLES},
}

# Which graph a model's cycles live in: the edge kinds its search must include.
EDGES_NEEDED = {READ_COMMITTED: (WW, WR), REPEATABLE_READ: (WW, WR, RW),
                SNAPSHOT_ISOLATION: (WW, WR, RW), SERIALIZABLE: (WW, WR, RW),
                STRICT_SERIALIZABLE: (WW, WR, RW, RT)}


@dataclass
class Case:
    """One instance of an anomaly: its name, the transactions it involves (ids), what
    happened in words, and for cycles the edges ((from, to, kind) in cycle order)."""

    name: str
    txns: list[int]
    text: str
    cycle: list[tuple[int, int, int]] | None = None
    data: dict[str, Any] = field(default_factory=dict)


def forbidden_by(model: str) -> frozenset[str]:
    """The anomalies `model` forbids (a name of `MODELS`); KeyError for another name."""
    return FORBIDDEN[model]


def verdicts(found: set[str], models: tuple[str, ...]) -> dict[str, bool]:
    """Whether each model holds, given the names of the anomalies found."""
    return {model: not (found & FORBIDDEN[model]) for model in models}


def cycle_name(kinds: list[int]) -> str:
    """The name of a cycle from the kinds of its edges, in cycle order (Adya's phenomena):
    only ww: G0; ww and wr: G1c; one rw: G-single; several rw never next to each other
    (counting around the cycle): G-nonadjacent; otherwise G2-item. With a real-time edge the
    name gets "-realtime"."""
    data = [k for k in kinds if k != RT]
    realtime = len(data) != len(kinds)
    rw = data.count(RW)
    if rw == 0:
        name = G0 if WR not in data else G1C
    elif rw == 1:
        name = G_SINGLE
    else:
        name = G_NONADJACENT if _nonadjacent(kinds) else G2_ITEM
    return name + REALTIME if realtime else name


def _nonadjacent(kinds: list[int]) -> bool:
    """No two rw edges follow each other around the cycle."""
    n = len(kinds)
    return all(not (kinds[i] == RW and kinds[(i + 1) % n] == RW) for i in range(n))


MAX_EXAMPLES = 8      # cases kept per anomaly; the rest are counted


class Findings:
    """The anomalies found: how many of each, and the first `MAX_EXAMPLES` of each in full
    (a broken store can produce millions of cases; a report needs a few)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[Case]] = {}

    def add(self, case: Case) -> None:
        """Count the case, and keep it while fewer than `MAX_EXAMPLES` of its kind are."""
        self.counts[case.name] = self.counts.get(case.name, 0) + 1
        kept = self.examples.setdefault(case.name, [])
        if len(kept) < MAX_EXAMPLES:
            kept.append(case)

    def wants(self, name: str) -> bool:
        """Whether another case of `name` would be kept (callers skip building its text)."""
        return len(self.examples.get(name, ())) < MAX_EXAMPLES

    def count(self, name: str) -> None:
        """Count a case of `name` without keeping it."""
        self.counts[name] = self.counts.get(name, 0) + 1

    def note(self, name: str, build: Callable[[], Case]) -> None:
        """Count a case of `name`, building it with `build` (its text costs) only when it
        would be kept."""
        if self.wants(name):
            self.add(build())
        else:
            self.count(name)

    def names(self) -> set[str]:
        return set(self.counts)
