"""Fault kinds, one module each, found by name.

Adding a fault kind: write a `harness.faults.base.Fault` subclass in a module of its own and
add it to `KINDS` below.

May import: pluginkit, harness.networks, harness.processes, harness.systems.
"""

from __future__ import annotations

from harness.faults.base import Fault, FaultContext, Setting
from harness.faults.bitflip import Bitflip
from harness.faults.clock import Clock
from harness.faults.election_crash import ElectionCrash
from harness.faults.failover import Failover
from harness.faults.kill import Kill
from harness.faults.latency import Latency
from harness.faults.partition import Partition
from harness.faults.pause import Pause
from harness.faults.power_loss import PowerLoss
from harness.faults.truncate import Truncate

KINDS: dict[str, type[Fault]] = {cls.name: cls for cls in (
    Partition, Kill, Pause, Clock, PowerLoss, Latency, ElectionCrash, Bitflip, Truncate,
    Failover)}
NAMES = tuple(KINDS)

__all__ = ["Fault", "FaultContext", "KINDS", "NAMES", "Setting"]
