"""The general linearizability search: Wing and Gong's algorithm with Lowe's memo.

Theory of operation (as in Porcupine and Knossos' wgl):
- Every operation contributes a call entry and a return entry to one doubly linked list in time
  order (calls before returns at equal times: equal timestamps are concurrent). An operation that
  never returned for sure (`ret is None`) has its return at +infinity.
- Walking from the head, a call entry is tried: if the model allows it and the configuration
  (which operations are linearized, model state) was never seen, it is linearized: pushed on the
  stack and lifted out of the list with its return, and the walk restarts at the head.
- Reaching the return entry of an operation not yet linearized is a dead end: pop the last
  choice, put it back, and try the entry after it. An empty stack means not linearizable.
- Reaching a return at +infinity means every operation that surely completed is placed: the
  crashed ones may take effect later or never, so the history is linearizable.

Configurations are remembered as a 128-bit Zobrist hash (XOR of a random word per linearized
operation and one per model state) rather than as an exact bitset: constant size and constant
time per configuration whatever the history's length. Two different configurations share a
hash with probability about n^2 / 2^129 for n configurations (below 1e-20 for a billion), which
is far below the rate of hardware errors; the random words are seeded, so runs are repeatable.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Hashable, Sequence

from checkers.history import Operation
from checkers.models import CasRegister

_INFINITY = float("inf")
_CHECK_EVERY = 2048        # loop iterations between budget checks
# A remembered configuration costs about 78 bytes (a set slot and a 128-bit int, measured with
# tracemalloc); the rest is headroom for the stack and the entry lists.
BYTES_PER_CONFIG = 120


class BudgetExceeded(Exception):
    """The search ran out of time or memory before deciding."""

    def __init__(self, reason: str, configurations: int):
        super().__init__(reason)
        self.reason = reason
        self.configurations = configurations


@dataclass
class SearchOutcome:
    """What the search found for one partition (one key, or the whole history).

    On `linearizable is False`: `failed_op` is the index (into the ops given) of the operation
    that could not be placed, `prefix` the longest linearizable prefix found (indices in
    linearization order) and `state_before` the model state after that prefix.
    """

    linearizable: bool
    configurations: int = 0
    steps: int = 0
    failed_op: int | None = None
    prefix: list[int] = field(default_factory=list)
    state_before: Hashable = None


def _register_stepper(model: CasRegister, ops: Sequence[Operation]):
    """Precompute each op's transition as data, so the inner loop makes no method calls."""
    kinds, first, second = [], [], []
    codes = {"read": 0, "write": 1, "cas": 2, "mismatch": 3}
    for op in ops:
        kind, a, b = model.transition(op)
        kinds.append(codes[kind])
        first.append(a)
        second.append(b)
    return kinds, first, second


def search(ops: Sequence[Operation], model, *, deadline: float | None = None,
           max_configurations: int | None = None,
           clock: Callable[[], float] = time.monotonic, seed: int = 0) -> SearchOutcome:
    """Decide whether `ops` (already filtered by `model.relevant`) are linearizable.

    Raises `BudgetExceeded` when `clock()` passes `deadline` or more than `max_configurations`
    configurations would have to be remembered. Raises `ModelError` for ops the model cannot
    interpret.
    """
    n = len(ops)
    if n == 0:
        return SearchOutcome(True)

    # Entries: call of op i is 2i, its return 2i+1; HEAD is the sentinel before the first.
    head = 2 * n
    order = []
    for i, op in enumerate(ops):
        order.append((op.call, 0, 2 * i))
        order.append((_INFINITY if op.ret is None else op.ret, 1, 2 * i + 1))
    order.sort()
    nxt = [-1] * (2 * n + 1)
    prv = [-1] * (2 * n + 1)
    last = head
    for _, _, entry in order:
        nxt[last] = entry
        prv[entry] = last
        last = entry
    crashed = [op.ret is None for op in ops]

    rng = random.Random(seed)
    op_words = [rng.getrandbits(128) for _ in range(n)]
    state_words: dict[Hashable, int] = {}

    if isinstance(model, CasRegister):
        kinds, first, second = _register_stepper(model, ops)
    else:
        kinds = [4] * n
        first = second = None
    generic_step = model.step

    state = model.init()
    linearized = 0              # XOR of the words of linearized ops
    seen: set[int] = set()
    stack_entries: list[int] = []
    stack_states: list[Hashable] = []
    best_depth = -1
    best_prefix: list[int] = []
    best_failed = None
    best_state = None

    entry = nxt[head]
    steps = 0
    countdown = _CHECK_EVERY
    limit = max_configurations if max_configurations is not None else 1 << 62
    while True:
        countdown -= 1
        if countdown == 0:
            countdown = _CHECK_EVERY
            if deadline is not None and clock() > deadline:
                raise BudgetExceeded(f"time budget spent after {len(seen)} configurations",
                                     len(seen))
            if len(seen) > limit:
                raise BudgetExceeded(f"memory budget spent: {len(seen)} configurations",
                                     len(seen))
        if entry == -1:
            # Every entry was lifted: all operations are placed.
            return SearchOutcome(True, len(seen), steps)
        if not entry & 1:
            op = entry >> 1
            steps += 1
            kind = kinds[op]
            if kind == 0:
                legal = state == first[op]
                new_state = state
            elif kind == 1:
                legal = True
                new_state = second[op]
            elif kind == 2:
                legal = state == first[op]
                new_state = second[op]
            elif kind == 3:
                legal = state != first[op]
                new_state = state
            else:
                legal, new_state = generic_step(state, ops[op])
            if legal:
                word = state_words.get(new_state)
                if word is None:
                    word = state_words[new_state] = rng.getrandbits(128)
                new_linearized = linearized ^ op_words[op]
                config = new_linearized ^ word
                if config not in seen:
                    seen.add(config)
                    stack_entries.append(entry)
                    stack_states.append(state)
                    state = new_state
                    linearized = new_linearized
                    # Lift the call and its return out of the list (dancing links).
                    p, q = prv[entry], nxt[entry]
                    nxt[p] = q
                    prv[q] = p
                    ret = entry + 1
                    p, q = prv[ret], nxt[ret]
                    nxt[p] = q
                    if q != -1:
                        prv[q] = p
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
            continue
        # A return entry: its operation must have been placed by now.
        op = entry >> 1
        if crashed[op]:
            return SearchOutcome(True, len(seen), steps)
        if len(stack_entries) > best_depth:
            best_depth = len(stack_entries)
            best_prefix = stack_entries[:]
            best_failed = op
            best_state = state
        if not stack_entries:
            return SearchOutcome(False, len(seen), steps, best_failed,
                                 [e >> 1 for e in best_prefix], best_state)
        entry = stack_entries.pop()
        state = stack_states.pop()
        linearized ^= op_words[entry >> 1]
        # Put the call and its return back, in the reverse order of their lifting.
        ret = entry + 1
        p, q = prv[ret], nxt[ret]
        nxt[p] = ret
        if q != -1:
            prv[q] = ret
        p, q = prv[entry], nxt[entry]
        nxt[p] = entry
        prv[q] = entry
        entry = nxt[entry]
