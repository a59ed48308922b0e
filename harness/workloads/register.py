"""The register workload: read, write and compare-and-set over a few keys.

Judged by linearizability (each key a cas-register of the "kv" model), lost writes, staleness
and stats.
"""

from __future__ import annotations

from harness.workloads.base import Invocation, Mix, Workload

DEFAULT_CAS_SHARE = 0.1


class RegisterWorkload(Workload):
    """read / write / cas over the keys; cas expects a value recently written to its key.
    `cas_share` is the share of cas in the default mix (reads take half)."""

    name = "register"
    OPS = ("read", "write", "cas")
    checkers = ("linearizable", "lost-writes", "staleness", "stats")
    TAKES = ("cas_share", "value_size")

    def __init__(self, keys: int, mix: Mix | None = None, ops_per_key: int = 0,
                 cas_share: float = DEFAULT_CAS_SHARE, value_size: int = 0):
        self.cas_share = cas_share
        super().__init__(keys, mix, ops_per_key, value_size)
        self._recent: dict[str, int | str] = {}

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
