"""Workloads: what the clients do, and which checkers judge it.

A workload hands each client its next operation (drawn from that client's own seeded random
generator), lists the final operations to run once the cluster has healed, and names the
checkers and model for the history. Written values are unique (a shared counter), so that the
checkers' fast paths apply and a lost write can be told from a later one.
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


class Workload:
    """The common part: keys, unique values, and the read mode for reads."""

    name = "workload"
    checkers: tuple[str, ...] = ()
    session = False

    def __init__(self, keys: int, read_mode: str):
        self.keys = [f"k{i}" for i in range(keys)]
        self.read_mode = read_mode
        self._values = itertools.count(1)
        self._lock = threading.Lock()

    def fresh_value(self) -> int:
        with self._lock:
            return next(self._values)

    def next_op(self, rng: random.Random) -> Invocation:
        raise NotImplementedError

    def final_ops(self) -> list[Invocation]:
        """Reads of every key once the cluster has healed (linearizable reads)."""
        return [Invocation("read", key, None, "leader") for key in self.keys]


class RegisterWorkload(Workload):
    """read / write / cas over the keys; cas expects a value recently written to its key."""

    name = "register"
    checkers = ("linearizable", "lost-writes", "staleness", "stats")
    READ = 0.5                       # then cas_share of cas, the rest writes

    def __init__(self, keys: int, read_mode: str, cas_share: float = 0.1):
        super().__init__(keys, read_mode)
        self.write_share = 1.0 - self.READ - cas_share
        self._recent: dict[str, int] = {}

    def next_op(self, rng: random.Random) -> Invocation:
        key = rng.choice(self.keys)
        roll = rng.random()
        if roll < self.READ:
            return Invocation("read", key, None, self.read_mode)
        value = self.fresh_value()
        if roll < self.READ + self.write_share:
            with self._lock:
                self._recent[key] = value
            return Invocation("write", key, value)
        with self._lock:
            expected = self._recent.get(key)
            self._recent[key] = value
        return Invocation("cas", key, [expected, value])


class SetWorkload(Workload):
    """add unique elements to a few sets; occasional reads of a whole set."""

    name = "set"
    checkers = ("set-full", "stats")
    READ = 0.1

    def next_op(self, rng: random.Random) -> Invocation:
        key = rng.choice(self.keys)
        if rng.random() < self.READ:
            return Invocation("read", key, None, self.read_mode)
        return Invocation("add", key, self.fresh_value())


class SessionWorkload(Workload):
    """writes and follower reads, with session tokens: read-your-writes, monotonic reads."""

    name = "session"
    checkers = ("session", "staleness", "stats")
    session = True

    def __init__(self, keys: int, read_mode: str):
        super().__init__(keys, "follower" if read_mode == "leader" else read_mode)

    def next_op(self, rng: random.Random) -> Invocation:
        key = rng.choice(self.keys)
        if rng.random() < 0.5:
            return Invocation("read", key, None, self.read_mode)
        return Invocation("write", key, self.fresh_value())


WORKLOADS = {w.name: w for w in (RegisterWorkload, SetWorkload, SessionWorkload)}


def make_workload(name: str, keys: int, read_mode: str, cas_share: float = 0.1) -> Workload:
    """The workload called `name`; KeyError for an unknown one."""
    if name == RegisterWorkload.name:
        return RegisterWorkload(keys, read_mode, cas_share)
    return WORKLOADS[name](keys, read_mode)
