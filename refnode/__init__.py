"""refnode: the reference Leader and Followers store. `core` is the protocol as a pure state
machine (no I/O, no clock of its own); `runtime` runs it as a node process, `sim` in a
deterministic simulation.

May import: nothing of faultline outside this package.
"""
