"""Fault kinds, one module each, found by name.

Adding a fault kind: write a `harness.faults.base.Fault` subclass in a module of its own and
add it to `KINDS` below.

May import: pluginkit, harness.networks, harness.processes, harness.systems.
"""

from __future__ import annotations

from harness.faults.base import Fault, FaultContext, Setting
from harness.faults.bitflip import BitflipFault
from harness.faults.clock import ClockFault
from harness.faults.election_crash import ElectionCrashFault
from harness.faults.failover import FailoverFault
from harness.faults.kill import KillFault
from harness.faults.latency import LatencyFault
from harness.faults.partition import PartitionFault
from harness.faults.pause import PauseFault
from harness.faults.power_loss import PowerLossFault
from harness.faults.truncate import TruncateFault

KINDS: dict[str, type[Fault]] = {cls.name: cls for cls in (
    PartitionFault, KillFault, PauseFault, ClockFault, PowerLossFault, LatencyFault,
    ElectionCrashFault, BitflipFault, TruncateFault, FailoverFault)}
NAMES = tuple(KINDS)

__all__ = ["Fault", "FaultContext", "KINDS", "NAMES", "Setting"]
