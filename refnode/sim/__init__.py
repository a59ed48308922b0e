"""A deterministic simulator for refnode's core: see `refnode.sim.simulator`.

    from refnode.sim import Simulation, SimOptions, run_random, replay
    sim = run_random(ClusterConfig(nodes=["n1", "n2", "n3"]), seed=7)   # faults, then liveness
    sim.history                                                          # faultline events

`refnode.sim.scenarios` scripts the faults that expose each planted bug (`expose(bug)`).
"""

from refnode.sim.invariants import (INVARIANTS, InvariantViolation, LivenessViolation,
                                    SimulationFailure, default_invariants)
from refnode.sim.simulator import (FAULT_KINDS, FaultOptions, SimOptions, Simulation, replay,
                                   run_random)

__all__ = ["FAULT_KINDS", "INVARIANTS", "FaultOptions", "InvariantViolation",
           "LivenessViolation", "SimOptions", "Simulation", "SimulationFailure",
           "default_invariants", "replay", "run_random"]
