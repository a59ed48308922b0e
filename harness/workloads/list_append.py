"""The list-append workload: transactions that read whole lists and append unique elements.

Each operation is one transaction, ``Invocation("txn", None, [[f, key, value], ...])``, of 1 to
`MAX_MICRO_OPS` micro-operations over the keys in use: ``["r", key, None]`` reads the whole
list at `key`, ``["append", key, element]`` appends `element`, a number no other append uses
(the workload's shared counter). The client's completion follows the contract of
`checkers.list_append.history`: ok with every read's value filled in (the list read; [] or
None for a key never appended to), fail (certainly not applied) or info (unknown), either with
the invocation's micro-operations. Because every read shows the order of the appends before
it, the list-append checker infers the dependencies between transactions and judges them by
the consistency models the test names (`consistency_models`, default strict-serializable).

The mix weighs micro-operations, not transactions: ``{"r": 1, "append": 3}`` makes three of
four micro-operations appends. Keys retire as in every workload (`ops_per_key`), counting a
transaction once against each distinct key it touches, so that no key's history holds more
than `ops_per_key` transactions.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from checkers.builtin import ListAppendChecker
from harness.workloads.base import Invocation, Mix, Workload
from pluginkit.options import Option

READ = "r"
APPEND = "append"
MAX_MICRO_OPS = 4
# Keys read by each final transaction: every list a key ever had is read in full, so a
# transaction over every key used (there may be hundreds with key retirement) would be one
# huge read, slow to answer and to retry.
FINAL_KEYS_PER_TXN = 4


class ListAppendWorkload(Workload):
    """Transactions of 1 to 4 reads and appends over a few keys (see the module docstring)."""

    name = "list-append"
    OPS = (READ, APPEND)
    checkers = ("list-append", "stats")
    model = None                 # the list-append checker judges transactions, not registers
    # The list-append checker's own option: the models it judges by (a test may choose).
    CHECK_OPTIONS: ClassVar[tuple[Option, ...]] = ListAppendChecker.OPTIONS
    NOT_TAKEN = {"value_size": "its appended elements are unique numbers, and every read "
                               "returns a whole list of them"}

    def default_mix(self) -> Mix:
        return {READ: 0.5, APPEND: 0.5}

    def next_op(self, rng: random.Random, mix: Mix | None = None) -> Invocation:
        """A transaction of 1 to `MAX_MICRO_OPS` micro-operations, each one's kind drawn from
        `mix` (default: the workload's own) and its key from the keys in use. The draws and
        the counts against the keys happen under the lock, so that a key cannot retire
        between two micro-operations of one transaction."""
        weights = mix or self.mix
        kinds = [f for f in self.OPS if weights.get(f, 0) > 0]
        shares = [weights[k] for k in kinds]
        count = rng.randint(1, MAX_MICRO_OPS)
        mops: list[list[Any]] = []
        with self._lock:
            for _ in range(count):
                f = rng.choices(kinds, shares)[0]
                key = rng.choice(self.keys)
                # Elements come straight from the counter: fresh_value takes the lock held
                # here, and appended elements are always plain numbers.
                mops.append([f, key, next(self._values) if f == APPEND else None])
            for key in dict.fromkeys(mop[1] for mop in mops):
                self._count_op(key)
        return Invocation("txn", None, mops)

    def final_ops(self) -> list[Invocation]:
        """Transactions that read every key used, `FINAL_KEYS_PER_TXN` keys each, in the order
        the keys were first used."""
        used = self.used
        return [Invocation("txn", None, [[READ, key, None]
                                         for key in used[start:start + FINAL_KEYS_PER_TXN]],
                           final=True)
                for start in range(0, len(used), FINAL_KEYS_PER_TXN)]
