"""What every workload shares, and what a workload module declares.

A workload hands each client its next operation (drawn from that client's own seeded random
generator), lists the final operations to run once the cluster has healed, and names the
checkers that judge the history and what those checkers need to know. Written values are
unique (a shared counter), so that the checkers' fast paths apply and a lost write can be told
from a later one. What share of each operation a workload draws is its *mix*, which a test (or
one of its phases) may change.

A workload is a `Workload` subclass in a module of its own, declaring:

- `name`: what `--workload` calls it, and the name it is registered under;
- `OPS`: the operations its mix weighs (the names `--mix` takes);
- `default_mix()`: their weights when the test gives none;
- `checkers`: the names of the checkers that judge its histories (`checkers.registry`:
  built-in or plug-in);
- `model`: the model those checkers judge each key by (`checkers.models`; the `model` option
  of the checkers that take one), or None when they use none;
- `CHECK_OPTIONS`: options of its checkers a test may set: the checkers' own declarations
  (`Checker.OPTIONS`), or options of the same names; each value goes to every one of its
  checkers that declares an option of that name;
- `TAKES`: the options its constructor takes besides keys, mix and ops_per_key (the registry
  passes it only those), and `NOT_TAKEN`: why it refuses an option others take, for the
  one-line refusal;
- `next_op` (or `make_op`, to draw the kind and key as here) and `final_ops`.
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from pluginkit.options import Option, resolve


@dataclass(frozen=True)
class Invocation:
    """One operation a client is to perform; `final`: a read after every fault has healed,
    which the system makes as strong as it can."""

    f: str
    key: str | None
    value: Any
    final: bool = False


Mix = dict[str, float]


class Workload:
    """The common part: keys, unique values, and the mix: how often each of the workload's
    operations (`OPS`) is drawn, as relative weights. How a read is made (from the leader, a
    follower, with a session) is the system adapter's business, not the workload's.

    `keys` keys are in use at a time. With `ops_per_key`, a key retires after that many
    operations and a fresh one takes its place, as Jepsen's independent-keys generator does:
    contention stays on few keys, and each key's history stays short (quick to check); the
    final reads cover every key used."""

    name: ClassVar[str] = "workload"
    OPS: ClassVar[tuple[str, ...]] = ()
    checkers: ClassVar[tuple[str, ...]] = ()
    model: ClassVar[str | None] = "kv"
    CHECK_OPTIONS: ClassVar[tuple[Option, ...]] = ()
    TAKES: ClassVar[tuple[str, ...]] = ()
    NOT_TAKEN: ClassVar[dict[str, str]] = {}

    def __init__(self, keys: int, mix: Mix | None = None, ops_per_key: int = 0,
                 value_size: int = 0):
        self.value_size = value_size
        self._key_numbers = itertools.count()
        self.keys = [self._fresh_key() for _ in range(keys)]      # in use now
        self.used = list(self.keys)                               # ever used, in order
        self.ops_per_key = ops_per_key
        self._ops_on = dict.fromkeys(self.keys, 0)
        self.mix = dict(mix) if mix else self.default_mix()
        self._values = itertools.count(1)
        self._lock = threading.Lock()
        self._check_given: dict[str, Any] = {}

    def _fresh_key(self) -> str:
        return f"k{next(self._key_numbers)}"

    def pick_key(self, rng: random.Random) -> str:
        """A key in use, drawn with `rng`; counts the operation against it and retires it
        once it has had `ops_per_key`."""
        with self._lock:
            key = rng.choice(self.keys)
            self._count_op(key)
            return key

    def _count_op(self, key: str) -> None:
        """One more operation on `key`, retiring it for a fresh key at `ops_per_key`. The
        caller holds the lock: a key's count and its replacement must not interleave with
        another client's draw."""
        if not self.ops_per_key:
            return
        self._ops_on[key] += 1
        if self._ops_on[key] >= self.ops_per_key:
            fresh = self._fresh_key()
            self.keys[self.keys.index(key)] = fresh
            self.used.append(fresh)
            self._ops_on[fresh] = 0

    def default_mix(self) -> Mix:
        """The weight of each of `OPS` when the test gives no mix."""
        raise NotImplementedError

    def check_options(self) -> dict[str, Any]:
        """The value of each of the checkers' options (`CHECK_OPTIONS`), by name: the one
        set with `set_check_options`, else its default."""
        return resolve(self.CHECK_OPTIONS, self._check_given, "")

    def set_check_options(self, given: Mapping[str, Any]) -> None:
        """Give the checkers' options other values than their defaults; OptionError, naming
        the option, for one not declared in `CHECK_OPTIONS` or a value it does not take."""
        resolve(self.CHECK_OPTIONS, given, "")
        self._check_given = dict(given)

    def fresh_value(self) -> int | str:
        """The next unique value: a number, or with `value_size` a string of that many
        characters that starts with the number (unique, and readable in a history)."""
        with self._lock:
            number = next(self._values)
        if not self.value_size:
            return number
        head = f"{number}:"
        return head + "x" * max(0, self.value_size - len(head))

    def next_op(self, rng: random.Random, mix: Mix | None = None) -> Invocation:
        """The next operation, its kind drawn from `mix` (default: the workload's own)."""
        weights = mix or self.mix
        kinds = [f for f in self.OPS if weights.get(f, 0) > 0]
        f = rng.choices(kinds, [weights[k] for k in kinds])[0]
        return self.make_op(f, self.pick_key(rng))

    def make_op(self, f: str, key: str) -> Invocation:
        """A read, or `f` (a write, an add) of a fresh value."""
        if f == "read":
            return Invocation("read", key, None)
        return Invocation(f, key, self.fresh_value())

    def final_ops(self) -> list[Invocation]:
        """Reads of every key used once the cluster has healed (as strong as the system
        can)."""
        return [Invocation("read", key, None, final=True) for key in self.used]
