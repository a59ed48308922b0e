"""List-append histories from a simulated strict-serializable store, for tests and benchmarks.

`generate` runs C clients, each issuing transactions of 1 to `max_mops` reads and appends over
the keys in use. Every transaction that takes effect does so at one instant between its
invocation and its completion, all at once, with its reads seeing the store as it was then
(its own earlier appends included): the history is strict serializable by construction. Some
transactions fail (they never take effect), some end `info` or never complete (they take
effect or not, at random; their process is replaced by a fresh one, as in Jepsen).

`anomaly` plants one anomaly of a named kind (`GADGETS`): a few extra transactions on keys of
their own, run concurrently at a random moment, whose results no serializable store could
give. Every random choice flows from `seed`.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Any

from checkers.history import FAIL, INFO, INVOKE, OK, Op

TXN = "txn"


@dataclass(frozen=True)
class Shape:
    """What history to generate.

    - `clients`, `txns`: concurrency and number of transactions;
    - `keys`: keys in use at once; with `max_appends_per_key`, a key that has had that many
      appends is retired and a fresh key takes its place (Jepsen's list-append generator does
      the same, so that reads stay short);
    - `max_mops`: micro-operations per transaction, 1 to this; `read_share` of them reads;
    - `fail_share`, `info_share`: transactions that fail, or end info (half of these never
      complete at all);
    - `anomaly`: a name of `GADGETS`, or None for a valid history;
    - `atomic`: False makes a store without isolation: each micro-operation takes effect at
      an instant of its own (reads see other transactions' appends half done), which breaks
      every model many times over (for measuring the checker on broken histories).
    """

    clients: int = 5
    txns: int = 100
    keys: int = 3
    max_mops: int = 4
    read_share: float = 0.5
    fail_share: float = 0.05
    info_share: float = 0.05
    max_appends_per_key: int | None = None
    anomaly: str | None = None
    atomic: bool = True


MS = 1_000_000


def generate(shape: Shape, seed: int) -> list[Op]:
    """A history of `shape`, the same for the same seed."""
    rng = random.Random(seed)
    events = _serializable(shape, rng)
    if shape.anomaly is not None:
        events = _plant(events, GADGETS[shape.anomaly], rng)
    for index, op in enumerate(events):
        op.index = index
    return events


def _serializable(shape: Shape, rng: random.Random) -> list[Op]:
    store: dict[Any, list] = {}
    keys = list(range(shape.keys))
    next_key = shape.keys
    appended: dict[Any, int] = {}
    events: list[Op] = []
    queue: list[tuple[int, int, int, str, Any]] = []     # (time, seq, client, what, data)
    seq = 0
    process = list(range(shape.clients))
    next_process = shape.clients
    started = 0
    for client in range(shape.clients):
        queue.append((rng.randrange(MS), seq, client, "invoke", None))
        seq += 1
    heapq.heapify(queue)
    while queue:
        now, _, client, what, data = heapq.heappop(queue)
        if what == "invoke":
            if started >= shape.txns:
                continue
            started += 1
            mops = []
            for _ in range(rng.randint(1, shape.max_mops)):
                key = rng.choice(keys)
                if rng.random() < shape.read_share:
                    mops.append(["r", key, None])
                    continue
                appended[key] = appended.get(key, 0) + 1
                mops.append(["append", key, appended[key]])
                if shape.max_appends_per_key and appended[key] >= shape.max_appends_per_key \
                        and key in keys:
                    keys[keys.index(key)] = next_key
                    next_key += 1
            events.append(Op(0, now, process[client], INVOKE, TXN, None, mops))
            roll = rng.random()
            outcome = FAIL if roll < shape.fail_share else \
                INFO if roll < shape.fail_share + shape.info_share else OK
            applies = outcome == OK or (outcome == INFO and rng.random() < 0.5)
            txn = {"mops": mops, "outcome": outcome, "result": [None] * len(mops)}
            # Atomically: all micro-ops at one instant; otherwise each at its own, in order.
            last = now
            for i in range(len(mops)) if not shape.atomic else (None,):
                last += rng.randrange(1, 5 * MS)
                if applies:
                    heapq.heappush(queue, (last, seq, client, "apply", (txn, i)))
                    seq += 1
            heapq.heappush(queue, (last + rng.randrange(1, 5 * MS), seq, client, "complete",
                                   txn))
            seq += 1
        elif what == "apply":
            txn, only = data
            for i, (f, key, value) in enumerate(txn["mops"]):
                if only is not None and i != only:
                    continue
                if f == "r":
                    txn["result"][i] = ["r", key, list(store.get(key, ()))]
                else:
                    store.setdefault(key, []).append(value)
                    txn["result"][i] = ["append", key, value]
        else:
            outcome = data["outcome"]
            if outcome == INFO and rng.random() < 0.5:
                pass             # never completes: open at the end of the history
            elif outcome == OK:
                events.append(Op(0, now, process[client], OK, TXN, None, data["result"]))
            else:
                events.append(Op(0, now, process[client], outcome, TXN, None, data["mops"]))
            if outcome == INFO:
                process[client] = next_process
                next_process += 1
            heapq.heappush(queue, (now + rng.randrange(0, MS), seq, client, "invoke", None))
            seq += 1
    return events


# A gadget: transactions as (outcome, invoked micro-ops, completed micro-ops) over keys "x" and
# "y", renamed to keys of their own when planted. Each is the smallest history of its anomaly.
GADGETS: dict[str, list[tuple[str, list, list]]] = {
    "G0": [
        (OK, [["append", "x", 1], ["append", "y", 1]], [["append", "x", 1], ["append", "y", 1]]),
        (OK, [["append", "x", 2], ["append", "y", 2]], [["append", "x", 2], ["append", "y", 2]]),
        (OK, [["r", "x", None]], [["r", "x", [1, 2]]]),
        (OK, [["r", "y", None]], [["r", "y", [2, 1]]]),
    ],
    "G1a": [
        (FAIL, [["append", "x", 1]], [["append", "x", 1]]),
        (OK, [["r", "x", None]], [["r", "x", [1]]]),
    ],
    "G1b": [
        (OK, [["append", "x", 1], ["append", "x", 2]], [["append", "x", 1], ["append", "x", 2]]),
        (OK, [["r", "x", None]], [["r", "x", [1]]]),
    ],
    "G1c": [
        (OK, [["append", "x", 1], ["r", "y", None]], [["append", "x", 1], ["r", "y", [1]]]),
        (OK, [["append", "y", 1], ["r", "x", None]], [["append", "y", 1], ["r", "x", [1]]]),
    ],
    "G-single": [
        (OK, [["append", "x", 1], ["append", "y", 1]], [["append", "x", 1], ["append", "y", 1]]),
        (OK, [["r", "x", None], ["r", "y", None]], [["r", "x", []], ["r", "y", [1]]]),
    ],
    "G2-item": [
        (OK, [["r", "x", None], ["r", "y", None], ["append", "x", 1]],
         [["r", "x", []], ["r", "y", []], ["append", "x", 1]]),
        (OK, [["r", "x", None], ["r", "y", None], ["append", "y", 1]],
         [["r", "x", []], ["r", "y", []], ["append", "y", 1]]),
    ],
    "lost-update": [
        (OK, [["r", "x", None], ["append", "x", 1]], [["r", "x", []], ["append", "x", 1]]),
        (OK, [["r", "x", None], ["append", "x", 2]], [["r", "x", []], ["append", "x", 2]]),
    ],
    "internal": [
        (OK, [["append", "x", 1], ["r", "x", None]], [["append", "x", 1], ["r", "x", []]]),
    ],
}


def _plant(events: list[Op], gadget: list[tuple[str, list, list]], rng: random.Random
           ) -> list[Op]:
    """Insert the gadget's transactions, all concurrent, at a random moment of `events`, with
    processes and keys no other transaction uses."""
    processes = [op.process for op in events if isinstance(op.process, int)]
    first_process = max(processes, default=-1) + 1
    rename = {"x": "gadget-x", "y": "gadget-y"}
    at = rng.randrange(len(events) + 1)
    moment = events[at - 1].time if at else 0

    def renamed(mops: list) -> list:
        return [[f, rename[k], v] for f, k, v in mops]

    invokes = [Op(0, moment, first_process + i, INVOKE, TXN, None, renamed(invoked))
               for i, (_, invoked, _) in enumerate(gadget)]
    completions = [Op(0, moment, first_process + i, outcome, TXN, None,
                      renamed(completed if outcome == OK else invoked))
                   for i, (outcome, invoked, completed) in enumerate(gadget)]
    rng.shuffle(completions)
    return events[:at] + invokes + completions + events[at:]
