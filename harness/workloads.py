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
    """One operation a client is to perform."""

    f: str
    key: str | None
    value: Any
    read_mode: str | None = None


Mix = dict[str, float]


class Workload:
    """The common part: keys, unique values, the read mode for reads, and the mix: how often
    each of the workload's operations (`OPS`) is drawn, as relative weights."""

    name = "workload"
    checkers: tuple[str, ...] = ()
    session = False
    OPS: tuple[str, ...] = ()

    def __init__(self, keys: int, read_mode: str, mix: Mix | None = None):
        self.keys = [f"k{i}" for i in range(keys)]
        self.read_mode = read_mode
        self.mix = dict(mix) if mix else self.default_mix()
        self._values = itertools.count(1)
        self._lock = threading.Lock()

    def default_mix(self) -> Mix:
        raise NotImplementedError

    def fresh_value(self) -> int:
        with self._lock:
            return next(self._values)

    def next_op(self, rng: random.Random, mix: Mix | None = None) -> Invocation:
        """The next operation, its kind drawn from `mix` (default: the workload's own)."""
        weights = mix or self.mix
        kinds = [f for f in self.OPS if weights.get(f, 0) > 0]
        f = rng.choices(kinds, [weights[k] for k in kinds])[0]
        return self.make_op(f, rng.choice(self.keys))

    def make_op(self, f: str, key: str) -> Invocation:
        """A read in the workload's read mode, or `f` (a write, an add) of a fresh value."""
        if f == "read":
            return Invocation("read", key, None, self.read_mode)
        return Invocation(f, key, self.fresh_value())

    def final_ops(self) -> list[Invocation]:
        """Reads of every key once the cluster has healed (linearizable reads)."""
        return [Invocation("read", key, None, "leader") for key in self.keys]


class RegisterWorkload(Workload):
    """read / write / cas over the keys; cas expects a value recently written to its key."""

    name = "register"
    checkers = ("linearizable", "lost-writes", "staleness", "stats")
    OPS = ("read", "write", "cas")

    def __init__(self, keys: int, read_mode: str, cas_share: float = 0.1,
                 mix: Mix | None = None):
        self.cas_share = cas_share
        super().__init__(keys, read_mode, mix)
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
    """writes and follower reads, with session tokens: read-your-writes, monotonic reads."""

    name = "session"
    checkers = ("session", "staleness", "stats")
    session = True
    OPS = ("read", "write")

    def __init__(self, keys: int, read_mode: str, mix: Mix | None = None):
        super().__init__(keys, "follower" if read_mode == "leader" else read_mode, mix)

    def default_mix(self) -> Mix:
        return {"read": 0.5, "write": 0.5}


WORKLOADS = {w.name: w for w in (RegisterWorkload, SetWorkload, SessionWorkload)}


def make_workload(name: str, keys: int, read_mode: str, cas_share: float = 0.1,
                  mix: Mix | None = None) -> Workload:
    """The workload called `name` (KeyError for an unknown one); `mix` replaces its default
    mix (for the register workload, reads half the time and `cas_share` of cas)."""
    if name == RegisterWorkload.name:
        return RegisterWorkload(keys, read_mode, cas_share, mix)
    return WORKLOADS[name](keys, read_mode, mix)
