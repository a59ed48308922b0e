"""The list-append checker: a history in, a verdict per consistency model out."""

from __future__ import annotations

import gc
import time
from typing import Any, Iterable, Sequence

from checkers.figures import jsonable
from checkers.history import Op
from checkers.list_append.anomalies import (EDGES_NEEDED, KIND_NAMES, MODELS, RT, Case,
                                            Findings, forbidden_by, verdicts)
from checkers.list_append.cycles import LEVELS, find_cycles
from checkers.list_append.dependencies import build
from checkers.list_append.direct import find_direct
from checkers.list_append.explain import explain_edge, show_key, show_value, txn_json
from checkers.list_append.graph import Budget
from checkers.list_append.history import FAIL, INFO, OK, Txn, transactions
from checkers.list_append.versions import Observations, observe
from checkers.models import ModelError
from checkers.result import UNKNOWN, Result

CHECKER = "list-append"
DEFAULT_MODELS = ("strict-serializable",)
# Edges the searches for the shortest cycles may look at, beyond the one search each witness
# needs: enough for exact answers on components of thousands of transactions, and about a
# second of work on a history where everything is one component.
SEARCH_BUDGET = 5_000_000


def check_list_append(history: Sequence[Op], models: Iterable[str] = DEFAULT_MODELS, *,
                      source: str | None = None, search_budget: int = SEARCH_BUDGET) -> Result:
    """Check a list-append history (transactions of reads and appends, see
    `checkers.list_append.history`) against each of `models` (names in `MODELS`).

    `valid` is True when every model holds, False when one does not, "unknown" when the
    history appends one element twice to a key (the inference needs unique appends, as in
    Elle). The figures give each model's verdict, the count of each anomaly found, and sizes;
    the counterexample shows the shortest dependency cycle found (each edge in words) or,
    without a cycle, the first anomaly found, with examples of every anomaly.

    Raises `HistoryError` for a history that is not a list-append history (see
    `transactions`) and `ModelError` for an unknown model name.
    """
    models = _models(models)
    # The check builds millions of objects that all stay alive to the end and form no cycles;
    # the cyclic garbage collector would rescan them again and again as they accumulate
    # (about 40% of the time at 100k transactions, growing with the history), so it is paused
    # for the check, as checkers.jsonl does while reading.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _check(history, models, source, search_budget)
    finally:
        if was_enabled:
            gc.enable()


def _check(history: Sequence[Op], models: tuple[str, ...], source: str | None,
           search_budget: int) -> Result:
    started = time.perf_counter()
    txns = transactions(history, source)
    obs = observe(txns)
    figures: dict[str, Any] = _sizes(txns)
    if obs.duplicate_appends:
        key, element, first, second = obs.duplicate_appends[0]
        figures["duplicate_appends"] = len(obs.duplicate_appends)
        return Result(CHECKER, UNKNOWN,
                      f"{show_value(element)} is appended to {show_key(key)} by both "
                      f"{txns[first].name} and {txns[second].name}: list-append inference "
                      f"needs every appended element to be unique per key", figures,
                      {"transactions": [txn_json(txns[first]), txn_json(txns[second])]})
    found = Findings()
    find_direct(txns, obs, found)
    kinds = _kinds_needed(models)
    deps = build(txns, obs, realtime=RT in kinds)
    budget = Budget(search_budget)
    stats = find_cycles(txns, deps, kinds, found, budget)
    figures["edges"] = {KIND_NAMES[k]: deps.count(k) for k in kinds}
    figures["components"] = stats.components
    figures["largest_component"] = stats.largest
    if stats.budget_spent:
        figures["cycle_search_budget_spent"] = True
    held = verdicts(found.names(), models)
    figures["models"] = held
    figures["anomalies"] = dict(sorted(found.counts.items()))
    figures["seconds"] = round(time.perf_counter() - started, 3)
    if all(held.values()):
        shown = ", ".join(models)
        allowed = ", ".join(f"{name} x{count}" for name, count in figures["anomalies"].items())
        return Result(CHECKER, True,
                      f"valid under {shown}: {figures['transactions']['ok']:,} committed "
                      f"transactions over {figures['keys']:,} key(s), no anomaly forbidden"
                      + (f" (allowed: {allowed})" if allowed else ""), figures)
    return Result(CHECKER, False, _summary(held, found), figures,
                  _counterexample(txns, obs, found, held))


def _models(models: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys([models] if isinstance(models, str) else models))
    unknown = [m for m in chosen if m not in MODELS]
    if unknown or not chosen:
        raise ModelError(f"unknown consistency model {', '.join(map(repr, unknown)) or '(none)'}"
                         f"; list-append models: {', '.join(MODELS)}")
    return chosen


def _kinds_needed(models: tuple[str, ...]) -> tuple[int, ...]:
    needed = set()
    for model in models:
        needed.update(EDGES_NEEDED[model])
    return next(level for level in LEVELS if needed <= set(level))


def _sizes(txns: list[Txn]) -> dict[str, Any]:
    outcomes = {OK: 0, FAIL: 0, INFO: 0}
    mops = 0
    keys = set()
    for txn in txns:
        outcomes[txn.outcome] += 1
        mops += len(txn.mops)
        keys.update(key for _, key, _ in txn.mops)
    return {"transactions": outcomes, "micro_ops": mops, "keys": len(keys)}


def _summary(held: dict[str, bool], found: Findings) -> str:
    broken = [m for m, ok in held.items() if not ok]
    forbidden = set().union(*(forbidden_by(m) for m in broken))
    named = ", ".join(f"{name} x{count}" for name, count in sorted(found.counts.items())
                      if name in forbidden)
    kept = [m for m, ok in held.items() if ok]
    tail = f"; holds: {', '.join(kept)}" if kept else ""
    return f"not {', '.join(broken)}: {named}{tail}"


def _counterexample(txns: list[Txn], obs: Observations, found: Findings,
                    held: dict[str, bool]) -> dict[str, Any]:
    """The shortest cycle found (or the first direct anomaly) explained, then examples."""
    forbidden = set().union(*(forbidden_by(m) for m, ok in held.items() if not ok))
    cases = [c for name in sorted(found.examples) if name in forbidden
             for c in found.examples[name]]
    cycles = [c for c in cases if c.cycle]
    lead = min(cycles, key=lambda c: len(c.cycle)) if cycles else cases[0]
    out: dict[str, Any] = {"anomaly": lead.name, "models_violated":
                           [m for m, ok in held.items() if not ok]}
    if lead.cycle:
        out["cycle"] = _steps(txns, obs, lead)
        out["edges"] = lead.text
    else:
        out["explanation"] = lead.text
    out["transactions"] = [txn_json(txns[t]) for t in dict.fromkeys(lead.txns)]
    # One line per example, so that a report prints each on its own.
    out["examples"] = [f"{c.name}: {c.text}" for c in cases]
    return jsonable(out)


def _steps(txns: list[Txn], obs: Observations, case: Case) -> list[str]:
    """Each edge of a cycle as "T1 -wr-> T2: why"."""
    return [f"{txns[a].name} -{KIND_NAMES[kind]}-> {txns[b].name}: "
            f"{explain_edge(txns, obs, a, b, kind)}" for a, b, kind in case.cycle or ()]


__all__ = ["CHECKER", "DEFAULT_MODELS", "MODELS", "check_list_append"]
