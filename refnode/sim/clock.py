"""Simulated clocks: each node reads its own, with an offset, a rate, and jumps.

A clock is a line through (base_real, base_local) with slope `rate`: the node's reading at
simulated real time t is base_local + rate * (t - base_real). Changing the rate or jumping the
clock starts a new line at the current time, so readings stay continuous across rate changes
and jump exactly by the given amount on a jump.
"""

from __future__ import annotations

import math


class SimClock:
    """One node's clock; all times in float seconds."""

    __slots__ = ("base_local", "base_real", "rate")

    def __init__(self, offset: float = 0.0, rate: float = 1.0):
        if not rate > 0:
            raise ValueError(f"a clock rate must be positive, got {rate!r}")
        self.base_real = 0.0
        self.base_local = offset
        self.rate = rate

    def read(self, real: float) -> float:
        """The node's reading at simulated real time `real`."""
        return self.base_local + self.rate * (real - self.base_real)

    def to_real(self, local: float) -> float:
        """The real time at which the clock will read `local` (inf stays inf)."""
        if math.isinf(local):
            return local
        return self.base_real + (local - self.base_local) / self.rate

    def set_rate(self, real: float, rate: float) -> None:
        """From `real` on, the clock advances `rate` seconds per real second."""
        if not rate > 0:
            raise ValueError(f"a clock rate must be positive, got {rate!r}")
        self.base_local = self.read(real)
        self.base_real = real
        self.rate = rate

    def jump(self, real: float, delta: float) -> None:
        """At `real`, the reading jumps by `delta` seconds (backwards when negative)."""
        self.base_local = self.read(real) + delta
        self.base_real = real
