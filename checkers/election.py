"""Election safety from observed node roles: at most one leader per term.

The client history cannot show two leaders of one term directly, so a run also records what the
nodes say of themselves (an *observation* per change: time, node, role, term). This checker
reads those observations; it does not care how they were gathered (status polls, log lines).

An observation is a mapping with at least `node`, `role` and `term`; `time` (nanoseconds on the
history's clock) is used for the counterexample when present. The observations file is JSON
Lines, one observation per line (`load_observations`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from checkers.history import HistoryError
from checkers.result import Result

LEADER = "leader"


def check_election_safety(observations: Iterable[Mapping[str, Any]] | None) -> Result:
    """Election safety: no two distinct nodes were ever observed as leader in the same term.

    Verdict: False when some term had two leaders (counterexample: the earliest such term and
    its leaders, each with when it was first seen as leader there, plus "at": when the second
    one was seen); "unknown" when there are no observations or no leader was ever observed;
    else True. Figures: observations, terms with a leader, leaders per term at most.
    Raises HistoryError for an observation without node, role or an integer term."""
    if observations is None:
        return Result(checker="election-safety", valid="unknown",
                      summary="no observations of node roles were recorded")
    first_seen: dict[int, dict[str, int | None]] = {}    # term -> leader -> first time
    count = 0
    for position, obs in enumerate(observations):
        count += 1
        node, role, term = obs.get("node"), obs.get("role"), obs.get("term")
        if not isinstance(node, str) or not isinstance(role, str) or not isinstance(term, int):
            raise HistoryError(f"observation {position}: needs node (string), role (string) "
                               f"and term (integer), got {dict(obs)!r}")
        if role == LEADER:
            leaders = first_seen.setdefault(term, {})
            if node not in leaders:
                leaders[node] = obs.get("time")
    figures = {"observations": count, "terms_with_leader": len(first_seen),
               "most_leaders_in_a_term": max((len(v) for v in first_seen.values()), default=0)}
    if not first_seen:
        return Result(checker="election-safety", valid="unknown", figures=figures,
                      summary=f"no leader among {count} observation(s)")
    unsafe = sorted(term for term, leaders in first_seen.items() if len(leaders) > 1)
    if not unsafe:
        return Result(checker="election-safety", valid=True, figures=figures,
                      summary=f"one leader per term over {len(first_seen)} term(s)")
    term = unsafe[0]
    leaders = sorted(first_seen[term].items(), key=lambda kv: _order(kv[1]))
    second = leaders[1][1]
    counterexample = {"term": term, "terms_with_two_leaders": unsafe[:20],
                      "leaders": [{"node": n, "first_seen": t} for n, t in leaders]}
    if second is not None:
        counterexample["at"] = second
    names = " and ".join(n for n, _ in leaders)
    return Result(checker="election-safety", valid=False, figures=figures,
                  counterexample=counterexample,
                  summary=f"{len(unsafe)} term(s) with two leaders; term {term}: {names}")


def _order(time: int | None) -> float:
    return float("inf") if time is None else time


def load_observations(path: Path) -> list[dict[str, Any]]:
    """The observations in a JSON Lines file; HistoryError naming file:line for a bad line."""
    out = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obs = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise HistoryError(f"{path}:{number}: not JSON: {exc}") from None
            if not isinstance(obs, dict):
                raise HistoryError(f"{path}:{number}: an observation must be an object")
            out.append(obs)
    return out
