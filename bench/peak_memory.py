"""The peak memory of this process, for the benchmarks that print it."""

from __future__ import annotations

import resource


def own_peak_kib() -> int:
    """This process's peak resident size in KiB: VmHWM, not ru_maxrss, which Linux carries
    over exec (a child started by a big parent would report the parent's size)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
