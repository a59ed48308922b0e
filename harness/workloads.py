"""Workloads: what the clients do, and which checkers judge it.

A workload hands each client its next operation (drawn from that client's own seeded random
generator), lists the final operations to run once the cluster has healed, and names the
checkers and model for the history. Written values are unique (a shared counter), so that the
checkers' fast paths apply and a lost write can be told from a later one. What share of each
operation a workload draws is its *mix*, which a test (or one of its phases) may change.
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass
from typing import Any


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

    name = "workload"
    checkers: tuple[str, ...] = ()
    OPS: tuple[str, ...] = ()

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

    def _fresh_key(self) -> str:
        return f"k{next(self._key_numbers)}"

    def pick_key(self, rng: random.Random) -> str:
        """A key in use, drawn with `rng`; counts the operation against it and retires it
        once it has had `ops_per_key`."""
        with self._lock:
            key = rng.choice(self.keys)
            if self.ops_per_key:
                self._ops_on[key] += 1
                if self._ops_on[key] >= self.ops_per_key:
                    fresh = self._fresh_key()
                    self.keys[self.keys.index(key)] = fresh
                    self.used.append(fresh)
                    self._ops_on[fresh] = 0
            return key

    def default_mix(self) -> Mix:
        raise NotImplementedError

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


class RegisterWorkload(Workload):
    """read / write / cas over the keys; cas expects a value recently written to its key."""

    name = "register"
    checkers = ("linearizable", "lost-writes", "staleness", "stats")
    OPS = ("read", "write", "cas")

    def __init__(self, keys: int, cas_share: float = 0.1, mix: Mix | None = None,
                 ops_per_key: int = 0, value_size: int = 0):
        self.cas_share = cas_share
        super().__init__(keys, mix, ops_per_key, value_size)
        self._recent: dict[str, int] = {}

    def default_mix(self) -> Mix:
        return {"read": 0.5, "write": 0.5 - self.cas_share, "cas": self.cas_share}

    def make_op(self, f: str, key: str) -> Invocation:
        if f == "read":
            return super().make_op(f, key)
        value = self.fresh_value()
        with self._lock:
            expected = self._recent.get(key)
            self._recent[key] = value
        if f == "write":
            return Invocation("write", key, value)
        return Invocation("cas", key, [expected, value])


class SetWorkload(Workload):
    """add unique elements to a few sets; occasional reads of a whole set."""

    name = "set"
    checkers = ("set-full", "stats")
    OPS = ("add", "read")

    def default_mix(self) -> Mix:
        return {"add": 0.9, "read": 0.1}


class SessionWorkload(Workload):
    """writes and reads within client sessions (each client keeps its own): read-your-writes,
    monotonic reads. The adapter makes the reads session reads (refnode: follower reads
    with the client's session token)."""

    name = "session"
    checkers = ("session", "staleness", "stats")
    OPS = ("read", "write")

    def default_mix(self) -> Mix:
        return {"read": 0.5, "write": 0.5}


WORKLOADS = {w.name: w for w in (RegisterWorkload, SetWorkload, SessionWorkload)}


def make_workload(name: str, keys: int, cas_share: float = 0.1,
                  mix: Mix | None = None, ops_per_key: int = 0,
                  value_size: int = 0) -> Workload:
    """The workload called `name` (KeyError for an unknown one); `mix` replaces its default
    mix (for the register workload, reads half the time and `cas_share` of cas);
    `ops_per_key` retires a key after that many operations (0: never); `value_size`, when
    not 0, makes each written value a string of that many characters."""
    if name == RegisterWorkload.name:
        return RegisterWorkload(keys, cas_share, mix, ops_per_key, value_size)
    return WORKLOADS[name](keys, mix, ops_per_key, value_size)
