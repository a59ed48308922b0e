"""The session workload: writes and reads within client sessions.

Judged by the session checker (read-your-writes, monotonic reads), staleness and stats.
"""

from __future__ import annotations

from harness.workloads.base import Mix, Workload


class SessionWorkload(Workload):
    """writes and reads within client sessions (each client keeps its own): read-your-writes,
    monotonic reads. The adapter makes the reads session reads (refnode: follower reads
    with the client's session token)."""

    name = "session"
    OPS = ("read", "write")
    checkers = ("session", "staleness", "stats")
    TAKES = ("value_size",)

    def default_mix(self) -> Mix:
        return {"read": 0.5, "write": 0.5}
