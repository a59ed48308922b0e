"""Several checkers over one history, by name: what `faultline check` and a run's end use.

Each entry of `CHECKERS` adapts one checker to a common call, `fn(history, settings)`, so that
callers can pick checkers by name. The combined verdict is the worst (see `checkers.result`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from checkers.election import check_election_safety
from checkers.history import OK, READ_FS, Op, client_events
from checkers.linearizability import Budget, KeyProgress, check_linearizable
from checkers.list_append import check_list_append
from checkers.lost_writes import check_register_lost_writes, check_set, check_set_full
from checkers.models import ADDS, WRITES, Model, make_model
from checkers.result import Result, combine
from checkers.session import check_session
from checkers.staleness import check_staleness
from checkers.stats import check_stats


@dataclass
class Settings:
    """What the checkers of a suite share: the model, the budget, the history's origin and,
    for election safety, the run's observations of node roles (None: none recorded)."""

    model: Model = field(default_factory=lambda: make_model("cas-register"))
    budget: Budget = field(default_factory=Budget)
    workers: int | None = None
    method: str = "auto"
    timed_out_fail: str | None = None
    session_scope: str = "key"
    source: str | None = None
    observations: list[dict[str, Any]] | None = None
    progress: KeyProgress | None = None     # of the linearizability check, key by key
    # list-append: the consistency models to judge transactions by
    consistency_models: tuple[str, ...] = ("strict-serializable",)


def _linearizable(history: Sequence[Op], s: Settings) -> Result:
    return check_linearizable(history, s.model, budget=s.budget, workers=s.workers,
                              method=s.method, timed_out_fail=s.timed_out_fail, source=s.source,
                              progress=s.progress)


CHECKERS: dict[str, Callable[[Sequence[Op], Settings], Result]] = {
    "linearizable": _linearizable,
    "session": lambda h, s: check_session(list(h), scope=s.session_scope),
    "set": lambda h, s: check_set(list(h)),
    "set-full": lambda h, s: check_set_full(list(h)),
    "lost-writes": lambda h, s: check_register_lost_writes(list(h)),
    "staleness": lambda h, s: check_staleness(list(h)),
    "stats": lambda h, s: check_stats(list(h)),
    "election-safety": lambda h, s: check_election_safety(s.observations),
    "list-append": lambda h, s: check_list_append(h, s.consistency_models, source=s.source),
}
DEFAULT_CHECKERS = ("linearizable", "stats")
SET_CHECKERS = ("set-full", "stats")
TXN_CHECKERS = ("list-append", "stats")


def choose_checkers(history: Sequence[Op]) -> list[str]:
    """The checkers fit for what `history` holds: list-append and stats for transactions
    (f "txn"); set-full and stats for a set workload (adds, reads of whole sets); otherwise
    linearizability and stats, and the session checks too when every ok read and write carries
    a version (as a store that reports them gives)."""
    fs: set[str] = set()
    versioned = seen = 0
    for op in client_events(history):
        fs.add(op.f)
        if op.type == OK and op.f in READ_FS | WRITES:
            seen += 1
            versioned += op.version is not None
    if fs == {"txn"}:
        return list(TXN_CHECKERS)
    if ADDS & fs and fs <= ADDS | READ_FS:
        return list(SET_CHECKERS)
    names = ["linearizable"]
    if seen and versioned == seen:
        names.append("session")
    return names + ["stats"]


def unknown_checkers(names: Sequence[str]) -> list[str]:
    """The names in `names` that are not checkers."""
    return [name for name in names if name not in CHECKERS]


def run_checkers(history: Sequence[Op], names: Sequence[str] = DEFAULT_CHECKERS,
                 settings: Settings | None = None) -> tuple[dict[str, Any], list[Result]]:
    """Run the named checkers over `history`.

    Returns the `results.json` object (top-level "valid", the worst verdict, and each
    checker's result) and the results themselves. Raises ValueError for an unknown name,
    HistoryError and ModelError for histories the checkers cannot read.
    """
    bad = unknown_checkers(names)
    if bad:
        raise ValueError(f"unknown checker {', '.join(map(repr, bad))}; checkers: "
                         f"{', '.join(CHECKERS)}")
    settings = settings or Settings()
    results = [CHECKERS[name](history, settings) for name in names]
    for name, result in zip(names, results):
        result.checker = name
    return combine(results), results
