"""Realistic histories from a simulated linearizable register store, for tests and benchmarks.

`generate` runs C clients against K keys: each client invokes an operation, waits a random
latency and completes it; every operation that takes effect does so at one instant inside its
interval, and reads return what the store held at that instant. The history is therefore
linearizable by construction, unless `stale_read` asks for one read to be made stale in a way no
linearization can explain. Every random choice flows from `seed`.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from checkers.history import INFO, INVOKE, OK, Op


@dataclass(frozen=True)
class Shape:
    """What history to generate.

    - `clients`, `keys`, `ops`: concurrency, number of keys, number of operations;
    - `info_share`: share of operations that crash (complete `info`); half of crashed writes
      take effect;
    - `unique_values`: every write writes a fresh value, else values are drawn from
      `small_values` choices;
    - `cas_share`, `read_share`: the mix (the rest are writes); with unique values a cas
      expects the value last written to its key (as the register workload does);
    - `versions`: completions carry the store's version (a global log index);
    - `stale_read`: make one read return a value that was surely overwritten before it began.
    """

    clients: int = 5
    keys: int = 1
    ops: int = 100
    info_share: float = 0.0
    unique_values: bool = True
    small_values: int = 5
    read_share: float = 0.5
    cas_share: float = 0.0
    versions: bool = False
    stale_read: bool = False


@dataclass
class _Planned:
    process: int
    key: str | None
    f: str
    value: object
    call: int
    ret: int
    crashed: bool
    takes_effect: bool
    point: int
    output: object = None
    ok: bool = True
    version: int | None = None


def generate(shape: Shape, seed: int) -> list[Op]:
    """A history of `shape.ops` operations, as events in time order (see module docstring)."""
    rng = random.Random(seed)
    keys = [None] if shape.keys == 1 else [f"k{i}" for i in range(shape.keys)]
    planned: list[_Planned] = []
    next_value = 1
    recent: dict = {}
    # Each client is a logical thread; a crash replaces its process by a fresh one, as in Jepsen.
    clients = [(rng.randrange(0, 1000), c, c) for c in range(shape.clients)]
    heapq.heapify(clients)
    next_process = shape.clients
    for _ in range(shape.ops):
        now, thread, process = heapq.heappop(clients)
        duration = int(rng.lognormvariate(11.5, 0.8))   # ~100 us median, long tail
        call, ret = now, now + max(duration, 1000)
        roll = rng.random()
        key = rng.choice(keys)
        if roll < shape.read_share:
            f, value = "read", None
        elif roll < shape.read_share + shape.cas_share:
            f = "cas"
            # As the register workload does: with unique values, a cas expects the value last
            # sent to its key (often still there); with small values, any of them.
            expected = recent.get(key) if shape.unique_values else \
                rng.randrange(shape.small_values)
            value = [expected, _fresh(shape, rng, next_value)]
            recent[key] = value[1]
            next_value += 1
        else:
            f, value = "write", _fresh(shape, rng, next_value)
            recent[key] = value
            next_value += 1
        crashed = rng.random() < shape.info_share
        takes_effect = not crashed or (f != "read" and rng.random() < 0.5)
        point = rng.randrange(call, ret + 1)
        planned.append(_Planned(process, key, f, value, call, ret, crashed, takes_effect, point))
        if crashed:
            process = next_process
            next_process += 1
        heapq.heappush(clients, (ret + 1 + rng.randrange(0, 20_000), thread, process))

    _apply_in_point_order(planned, initial=None)
    if shape.stale_read:
        _inject_stale_read(planned, rng)
    return _to_events(planned, shape.versions)


def _fresh(shape: Shape, rng: random.Random, counter: int) -> int:
    return counter if shape.unique_values else rng.randrange(shape.small_values)


def _apply_in_point_order(planned: list[_Planned], initial) -> None:
    """Run the operations that take effect in the order of their linearization points."""
    store: dict = {}
    versions: dict = {}
    log_index = 0
    for op in sorted((p for p in planned if p.takes_effect), key=lambda p: p.point):
        current = store.get(op.key, initial)
        if op.f == "read":
            op.output, op.version = current, versions.get(op.key, 0)
        elif op.f == "write":
            log_index += 1
            store[op.key], versions[op.key] = op.value, log_index
            op.output, op.version = op.value, log_index
        else:
            expected, new = op.value
            if current == expected:
                log_index += 1
                store[op.key], versions[op.key] = new, log_index
                op.version = log_index
            else:
                op.ok = False   # a cas that found another value fails: it did not happen
            op.output = op.value


def _inject_stale_read(planned: list[_Planned], rng: random.Random) -> None:
    """Make one ok read return a value v such that v's write returned before a later write was
    invoked, and that later write returned before the read was invoked. With unique values no
    linearization can explain it."""
    writes = [p for p in planned if p.f == "write" and not p.crashed]
    reads = [p for p in planned if p.f == "read" and not p.crashed]
    rng.shuffle(reads)
    for read in reads:
        same_key = [w for w in writes if w.key == read.key and w.ret < read.call]
        for successor in sorted(same_key, key=lambda w: -w.ret):
            older = [w for w in same_key if w.ret < successor.call and w.value != read.output]
            if older:
                victim = rng.choice(older)
                read.output, read.version = victim.value, victim.version
                return
    raise ValueError("no read could be made stale in this history; generate more operations")


def _to_events(planned: list[_Planned], with_versions: bool) -> list[Op]:
    raw = []
    for p in planned:
        raw.append((p.call, 0, p, INVOKE))
        if p.crashed:
            raw.append((p.ret, 1, p, INFO))
        else:
            raw.append((p.ret, 1, p, OK if p.ok else "fail"))
    raw.sort(key=lambda r: (r[0], r[1]))
    events = []
    for index, (time, _, p, kind) in enumerate(raw):
        if kind == INVOKE:
            value = p.value
            version = None
        elif kind == INFO:
            value, version = p.value if p.f != "read" else None, None
        else:
            value = p.output if p.f == "read" else p.value
            version = p.version if with_versions and kind == OK else None
        events.append(Op(index, time, p.process, kind, p.f, p.key, value, version=version))
    return events
