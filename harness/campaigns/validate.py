"""`faultline validate`: the planted-bug matrix, proof that the harness catches what it should.

The matrix is a campaign file shipped with faultline (`harness/campaigns/validate.toml`), run by
the campaign machinery. First the plain cases (group "plain"): each planted bug run as a user
would, with only the bug, a workload, a read mode and the fault kinds given, on the default
schedule; what a user testing their own system gets. Then the tuned cases (group "tuned"):
each planted bug under the faults that expose it, over several seeds, caught (an invalid
verdict) in most of them; each safe configuration under combined faults, valid in all of
them; `async` replication shown losing acknowledged writes when its leader is cut off, as the
pattern says it may. etcd, a real system, must stay valid with linearizable reads and be
caught with serializable ones; Redis with Sentinel must be shown losing acknowledged writes
when its primary is paused or cut off, and nothing without faults; PostgreSQL must stay valid
with serializable transactions and synchronous commit, and be caught with repeatable read
(write skew) and with asynchronous commit over a failover (lost writes).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from harness.campaigns.matrix import INVALID, VALID, Campaign, Row, load

VALIDATE_FILE = Path(__file__).resolve().parent / "validate.toml"
PLAIN, TUNED = "plain", "tuned"

# What the test suite runs: two plain cases of planted bugs and one safe configuration.
# (Stale leader reads need realistic timings to be seen in a short plain run: with the
# suite's fast ones a deposed leader steps down 0.6 s after the cut, before most clients have
# given up on it. The full matrix runs it.)
REDUCED = ["plain-early-ack", "plain-no-fsync", "plain-quorum-leader"]


@lru_cache(maxsize=1)
def matrix() -> Campaign:
    """The shipped matrix; its rows' tests are checked by whoever runs them (a row this
    machine cannot run, such as one on network namespaces without root, is left out then)."""
    return load(VALIDATE_FILE, check=False)


def select(names: list[str] | None) -> list[Row]:
    """The rows named (all when None or empty); ValueError naming an unknown one."""
    rows = matrix().rows
    if not names:
        return list(rows)
    by_label = {row.label: row for row in rows}
    unknown = [n for n in names if n not in by_label]
    if unknown:
        raise ValueError(f"unknown case {', '.join(unknown)}; cases: {', '.join(by_label)}")
    return [by_label[n] for n in names]


def is_bug(row: Row) -> bool:
    """A row that must be caught (a planted bug, a real system's known weakness)."""
    return row.expect == INVALID


def is_safe(row: Row) -> bool:
    """A row that must stay valid."""
    return row.expect == VALID
