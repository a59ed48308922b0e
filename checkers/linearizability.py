"""The linearizability checker: chooses a method per key, in parallel where it pays.

For each partition (each key when the model splits by key, by P-compositionality):
1. the version sweep, when the store reported versions (linear; proof when it succeeds);
2. the zone method, when written values are unique and there is no cas (O(n log n); decides);
3. the chain method, when written values are unique, with cas (O(n log n); decides, except
   when a failed cas read as a mismatch is not explained by the schedule it builds);
4. otherwise the general WGL search, under a time and memory budget.
A key whose search runs out of budget is "unknown"; any key that is not linearizable makes the
history invalid, and its counterexample is reported.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

from checkers import chains, versions, wgl, zones
from checkers.figures import jsonable
from checkers.history import Op, Operation, pair
from checkers.models import Model, ModelError
from checkers.result import UNKNOWN, Result, worst

DEFAULT_MEMORY_BYTES = 2 * 1024 ** 3
# Below this many operations, starting worker processes costs more than it saves.
PARALLEL_MIN_OPS = 40_000
CONTEXT_OPS = 12   # concurrent ops shown around a counterexample
PREFIX_SEARCH_SECONDS = 2.0
PREFIX_SEARCH_CONFIGS = 2_000_000


@dataclass
class Budget:
    """How long the search may take and how much it may remember, over the whole history."""

    seconds: float | None = None
    memory_bytes: int = DEFAULT_MEMORY_BYTES


# progress(ops_done, ops_total, keys_done, keys_total), called as keys are decided.
KeyProgress = Callable[[int, int, int, int], None]


def check_linearizable(history: Sequence[Op], model: Model, *, budget: Budget | None = None,
                       workers: int | None = None, method: str = "auto",
                       timed_out_fail: str | None = None, source: str | None = None,
                       progress: KeyProgress | None = None) -> Result:
    """Decide whether `history` is linearizable under `model`.

    - `method`: "auto" (fast paths where they apply), or force "search", "zones", "chains",
      "versions"
      (a forced method that does not apply is a ModelError).
    - `workers`: worker processes for independent keys; None chooses by history size.
    - `progress`: told the operations and keys decided so far, as keys are decided.
    Returns a Result with valid True, False or "unknown" (budget spent), figures (ops, keys,
    methods used, configurations explored, seconds) and, on False, a counterexample naming the
    key, the op that cannot be placed, the longest linearizable prefix with the model state
    before that op, and the ops concurrent with it. Raises HistoryError for malformed histories
    and ModelError for ops the model cannot interpret.
    """
    started = time.perf_counter()
    budget = budget or Budget()
    with _gc_paused():
        operations = pair(history, source=source, timed_out_fail=timed_out_fail)
        relevant = [op for op in operations if model.relevant(op)]
        partitions = _partition(relevant, model.split_by_key)
        deadline = None if budget.seconds is None else time.monotonic() + budget.seconds
        outcomes, searches = _fast_paths(partitions, model, method)
        tell = _Tally(partitions, progress)
        tell(outcomes)
        if not any(o["valid"] is False for o in outcomes):
            if workers is None:
                workers = _choose_workers(searches)
            if workers > 1 and len(searches) > 1:
                outcomes += _run_parallel(searches, model, deadline, budget, workers, tell)
            else:
                workers = 1
                max_configs = budget.memory_bytes // wgl.BYTES_PER_CONFIG
                for key, ops in searches:
                    outcome = _search_partition(key, ops, model, deadline, max_configs)
                    outcomes.append(outcome)
                    tell([outcome])
                    if outcome["valid"] is False:
                        break

    verdict = worst(o["valid"] for o in outcomes)
    methods: dict[str, int] = {}
    for o in outcomes:
        methods[o["method"]] = methods.get(o["method"], 0) + 1
    figures: dict[str, Any] = {
        "operations": len(operations),
        "checked_operations": len(relevant),
        "keys": len(partitions),
        "methods": methods,
        "configurations": sum(o.get("configurations", 0) for o in outcomes),
        "workers": workers or 1,
        "seconds": round(time.perf_counter() - started, 3),
    }
    unknown_keys = [o["key"] for o in outcomes if o["valid"] == UNKNOWN]
    if unknown_keys:
        figures["unknown_keys"] = [jsonable(k) for k in unknown_keys[:20]]
    counterexample = None
    if verdict is False:
        failing = next(o for o in outcomes if o["valid"] is False)
        if failing["method"] != "search":
            _add_search_prefix(failing, partitions[failing["key"]], model)
        counterexample = _counterexample(failing, partitions[failing["key"]], model)
        summary = (f"not linearizable: key {jsonable(failing['key'])}: "
                   f"{counterexample['explanation']}")
    elif verdict == UNKNOWN:
        reasons = {o.get("reason") for o in outcomes if o["valid"] == UNKNOWN}
        summary = (f"undecided on {len(unknown_keys)} of {len(partitions)} keys: "
                   + "; ".join(sorted(r for r in reasons if r)))
    else:
        summary = (f"linearizable: {len(relevant)} operations on {len(partitions)} keys "
                   f"({', '.join(f'{m}: {c}' for m, c in sorted(methods.items()))})")
    return Result("linearizable", verdict, summary, figures, counterexample)


class _Tally:
    """Counts decided keys and their operations for a progress callback (or does nothing)."""

    def __init__(self, partitions: dict, progress: KeyProgress | None):
        self.sizes = {key: len(ops) for key, ops in partitions.items()}
        self.total_ops = sum(self.sizes.values())
        self.progress = progress
        self.ops = self.keys = 0

    def __call__(self, outcomes: list[dict]) -> None:
        if self.progress is None:
            return
        for outcome in outcomes:
            self.ops += self.sizes.get(outcome["key"], 0)
            self.keys += 1
        self.progress(self.ops, self.total_ops, self.keys, len(self.sizes))


def _partition(ops: list[Operation], split: bool) -> dict[Hashable, list[Operation]]:
    if not split:
        return {None: ops} if ops else {}
    parts: dict[Hashable, list[Operation]] = {}
    for op in ops:
        parts.setdefault(op.key, []).append(op)
    return parts


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: checking builds millions of small objects and no
    cycles, and collections that rescan them all would double the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _choose_workers(searches: list) -> int:
    total = sum(len(ops) for _, ops in searches)
    if total < PARALLEL_MIN_OPS or len(searches) < 2:
        return 1
    return max(1, min(len(searches), os.cpu_count() or 1))


def _fast_paths(partitions: dict, model, method: str) -> tuple[list[dict], list]:
    """Decide every partition a fast path applies to, in this process (they are linear or
    O(n log n): worker processes would cost more than they save). Returns the outcomes and the
    (key, ops) partitions left for the search."""
    outcomes, searches = [], []
    for key, ops in partitions.items():
        outcome: dict[str, Any] = {"key": key}
        if method in ("auto", "versions") and versions.applicable(ops, model):
            if versions.consistent(ops, model):
                outcome.update(valid=True, method="versions")
                outcomes.append(outcome)
                continue
            outcome["versions_inconsistent"] = True
        elif method == "versions":
            raise ModelError("the versions method needs a register whose ops all carry "
                             "versions")
        if method in ("auto", "zones") and zones.applicable(ops, model):
            _decided(outcome, zones.check(ops, model), "zones")
            if outcome["valid"] is False:
                return [outcome], []
            outcomes.append(outcome)
            continue
        if method == "zones":
            raise ModelError("the zones method needs a register without cas and with unique "
                             "written values")
        if method in ("auto", "chains") and chains.applicable(ops, model):
            found = chains.check(ops, model)
            if found.linearizable is not None:
                _decided(outcome, found, "chains")
                if outcome["valid"] is False:
                    return [outcome], []
                outcomes.append(outcome)
                continue
            # Undecided (a failed cas the schedule built does not explain): the search decides.
        elif method == "chains":
            raise ModelError("the chains method needs a cas register with unique written "
                             "values")
        searches.append((key, ops))
    return outcomes, searches


def _decided(outcome: dict, found, method: str) -> None:
    """Record a fast path's verdict (a ZoneOutcome or ChainOutcome) in `outcome`, with what
    a violation names."""
    outcome.update(valid=found.linearizable, method=method)
    if found.linearizable is False:
        outcome.update(failed_op=found.failed_op, explanation=found.reason,
                       conflicting=found.conflicting, state_before=found.state_before)


def _search_partition(key, ops, model, deadline, max_configs) -> dict:
    """Decide one partition by the search; a small picklable dict (it may cross processes)."""
    out: dict[str, Any] = {"key": key, "method": "search"}
    try:
        found = wgl.search(ops, model, deadline=deadline, max_configurations=max_configs)
    except wgl.BudgetExceeded as exc:
        out.update(valid=UNKNOWN, reason=exc.reason, configurations=exc.configurations)
        return out
    out.update(valid=found.linearizable, configurations=found.configurations)
    if not found.linearizable:
        out.update(failed_op=found.failed_op, prefix=found.prefix,
                   state_before=found.state_before,
                   explanation="no linearization can place this operation")
    return out


# Worker processes inherit the partitions by fork instead of receiving them pickled: for a
# million operations, pickling alone would cost seconds.
_SHARED: dict[str, Any] = {}


def _worker(index: int) -> dict:
    key, ops = _SHARED["tasks"][index]
    return _search_partition(key, ops, _SHARED["model"], _SHARED["deadline"],
                             _SHARED["max_configs"])


def _run_parallel(tasks, model, deadline, budget: Budget, workers: int,
                  tell: _Tally) -> list[dict]:
    import multiprocess

    context = multiprocess.get_context("fork")
    _SHARED.update(tasks=tasks, model=model, deadline=deadline,
                   max_configs=budget.memory_bytes // workers // wgl.BYTES_PER_CONFIG)
    # Largest partitions first, so that the last worker to finish is not handed the biggest.
    order = sorted(range(len(tasks)), key=lambda i: -len(tasks[i][1]))
    outcomes = []
    try:
        with context.Pool(workers) as pool:
            for outcome in pool.imap_unordered(_worker, order):
                outcomes.append(outcome)
                tell([outcome])
                if outcome["valid"] is False:
                    pool.terminate()
                    break
    finally:
        _SHARED.clear()
    return outcomes


def _add_search_prefix(outcome: dict, ops: list[Operation], model) -> None:
    """A fast path names the conflict; the search adds the longest linearizable prefix and
    the state it leaves, when it can find them quickly (crashed ops can make it slow)."""
    try:
        found = wgl.search(ops, model, deadline=time.monotonic() + PREFIX_SEARCH_SECONDS,
                           max_configurations=PREFIX_SEARCH_CONFIGS)
    except wgl.BudgetExceeded:
        return
    if not found.linearizable:
        outcome.update(failed_op=found.failed_op, prefix=found.prefix,
                       state_before=found.state_before)


def _counterexample(outcome: dict, ops: list[Operation], model) -> dict:
    failed = ops[outcome["failed_op"]]
    prefix = [ops[i] for i in outcome.get("prefix", [])]
    conflicting = [ops[i] for i in outcome.get("conflicting", [])]
    concurrent = [op for op in ops if op is not failed and _overlaps(op, failed)]
    concurrent.sort(key=lambda op: op.call)
    state = outcome.get("state_before")
    return {
        "key": jsonable(outcome["key"]),
        "method": outcome["method"],
        "explanation": outcome["explanation"],
        "op": _op_json(failed),
        "state_before": model.describe_state(state) if hasattr(model, "describe_state")
        else repr(state),
        "prefix_length": len(prefix),
        "prefix_tail": [_op_json(op) for op in prefix[-CONTEXT_OPS:]],
        "conflicting": [_op_json(op) for op in conflicting[:CONTEXT_OPS]],
        "concurrent": [_op_json(op) for op in concurrent[:CONTEXT_OPS]],
    }


def _overlaps(a: Operation, b: Operation) -> bool:
    a_ret = float("inf") if a.ret is None else a.ret
    b_ret = float("inf") if b.ret is None else b.ret
    return not (a_ret < b.call or b_ret < a.call)


def _op_json(op: Operation) -> dict:
    return {"process": jsonable(op.process), "f": op.f, "key": jsonable(op.key),
            "input": op.input, "output": op.output, "outcome": op.outcome,
            "call": op.call, "ret": op.ret, "invoke_index": op.invoke_index,
            "node": op.node, "description": op.describe()}
