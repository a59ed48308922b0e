"""The set workload: unique elements added to a few sets, and reads of whole sets.

Judged by Jepsen's set-full checker (every acknowledged add present in every later read, the
final ones included) and stats.
"""

from __future__ import annotations

from harness.workloads.base import Mix, Workload


class SetWorkload(Workload):
    """add unique elements to a few sets; occasional reads of a whole set."""

    name = "set"
    OPS = ("add", "read")
    checkers = ("set-full", "stats")
    NOT_TAKEN = {"value_size": "its reads return whole sets, which large elements would make "
                               "too large to read"}

    def default_mix(self) -> Mix:
        return {"add": 0.9, "read": 0.1}
