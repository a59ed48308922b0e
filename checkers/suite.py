"""Several checkers over one history, by name: what `faultline check` and a run's end use.

Checkers are found by name in `checkers.registry` (built-in or plug-in); each gets its own
options and the context every checker shares (`checkers.base.CheckContext`). The combined
verdict is the worst (see `checkers.result`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from checkers import registry
from checkers.base import CheckContext, Checker, traits_of
from checkers.history import Op
from checkers.result import Result, combine

DEFAULT_CHECKERS = ("linearizable", "stats")
# Options of each checker, by checker name, then option name.
CheckerOptions = Mapping[str, Mapping[str, Any]]


def choose_checkers(history: Sequence[Op]) -> list[str]:
    """The checkers fit for what `history` holds: those whose `APPLIES` says they are chosen
    for its kind (`checkers.base.traits_of`), in the registry's order. With the checkers
    faultline ships: list-append and stats for transactions; set-full and stats for a set
    workload; otherwise linearizability and stats, and the session checks too when every ok
    read and write carries a version. BrokenChecker when an installed checker cannot be
    loaded."""
    traits = traits_of(history)
    return [cls.name for cls in registry.classes() if cls.APPLIES.chosen_for(traits)]


def unknown_checkers(names: Sequence[str]) -> list[str]:
    """The names in `names` that are not checkers."""
    known = registry.entries()
    return [name for name in names if name not in known]


def make_checkers(names: Sequence[str], options: CheckerOptions | None = None) -> list[Checker]:
    """Each checker of `names`, made with its options in `options` (its defaults for those not
    given). UnknownChecker or BrokenChecker for a name, OptionError (or ModelError) for an
    option: every one refused before any history is read."""
    options = options or {}
    return [registry.find(name)(options.get(name)) for name in names]


def run_checkers(history: Sequence[Op], names: Sequence[str] = DEFAULT_CHECKERS,
                 options: CheckerOptions | None = None,
                 context: CheckContext | None = None) -> tuple[dict[str, Any], list[Result]]:
    """Run the named checkers over `history`, each with its `options` (by checker name), all
    with `context`: `judge` of `make_checkers` (whose errors it raises)."""
    return judge(history, make_checkers(names, options), context)


def judge(history: Sequence[Op], checkers: Sequence[Checker],
          context: CheckContext | None = None) -> tuple[dict[str, Any], list[Result]]:
    """Run checkers already made over `history`, all with `context`.

    Returns the `results.json` object (top-level "valid", the worst verdict, and each
    checker's result under its name) and the results themselves. Raises HistoryError and
    ModelError for histories the checkers cannot read.
    """
    context = context or CheckContext()
    results = [checker.check(history, context) for checker in checkers]
    for checker, result in zip(checkers, results):
        result.checker = checker.name
    return combine(results), results
