"""Finding a checker by name, as `harness.systems` finds adapters: the checkers faultline ships
(`BUILTIN`, in `checkers.builtin`), then any installed distribution's entry points in the group
`faultline.checkers`:

    [project.entry-points."faultline.checkers"]
    mycheck = "mypackage_faultline:MyChecker"

The entry point names a `checkers.base.Checker` subclass; its `name` must equal the entry
point's name. It lives here, not in the harness, because checkers import nothing of the harness
(`faultline check` runs them on any project's histories).
"""

from __future__ import annotations

from typing import Any, Mapping

from checkers.base import Checker
from pluginkit import lookup as plugins

ENTRY_POINT_GROUP = "faultline.checkers"
# Built-in checkers: name -> "module:class". The order is the order of a default choice
# (`checkers.suite.choose_checkers`): stats, which judges nothing, comes last.
BUILTIN = {"linearizable": "checkers.builtin:LinearizableChecker",
           "session": "checkers.builtin:SessionChecker",
           "set": "checkers.builtin:SetChecker",
           "set-full": "checkers.builtin:SetFullChecker",
           "lost-writes": "checkers.builtin:LostWritesChecker",
           "staleness": "checkers.builtin:StalenessChecker",
           "list-append": "checkers.builtin:ListAppendChecker",
           "election-safety": "checkers.builtin:ElectionSafetyChecker",
           "stats": "checkers.builtin:StatsChecker"}


class UnknownChecker(LookupError):
    """No checker has that name (or judges that model); the message lists those there are."""


class BrokenChecker(RuntimeError):
    """A checker exists under that name but cannot be loaded; the message says why."""


REGISTRY = plugins.Registry(BUILTIN, ENTRY_POINT_GROUP, Checker, "checker", "checkers",
                            "checker", UnknownChecker, BrokenChecker)

# The registry's questions, as this package's own functions.
entries, names, find, load = REGISTRY.entries, REGISTRY.names, REGISTRY.find, REGISTRY.load


def classes() -> list[type[Checker]]:
    """Every checker class, in the order of `entries`; BrokenChecker for the first that cannot
    be loaded (a default choice must not quietly leave out a checker a user installed)."""
    return [load(entry) for entry in entries().values()]


def for_model(model: str, conventions: Mapping[str, Any], **common: Any) -> Checker:
    """The checker that judges histories by `model` (as a corpus manifest names it: a register
    model of `checkers.models` for linearizability, "list-append" for transactions), made with
    the `conventions` stated beside the model (its options, an OptionError or ModelError for
    one it does not take) and those of `common` it declares (budget, workers: settings that
    not every checker has). UnknownChecker when no checker judges `model`."""
    judged: list[str] = []
    for entry in entries().values():        # built-ins first: a plug-in is loaded if need be
        cls = load(entry)
        if model in cls.MODELS:
            break
        judged += cls.MODELS
    else:
        raise UnknownChecker(f"unknown model {model!r}; models: {', '.join(sorted(judged))}")
    declared = {option.name for option in cls.OPTIONS}
    shared = {key: value for key, value in common.items() if key in declared}
    return cls({**shared, **cls.options_for_model(model, conventions)})
