"""Workloads: what the clients do, and which checkers judge it; and the registry that finds a
workload by name, as `harness.systems` finds adapters.

`base` holds what every workload shares (`Invocation`, `Workload`) and says what a workload
module declares. Workloads come from two places: the modules in this package (`BUILTIN`), and
any installed distribution that declares an entry point in the group `faultline.workloads`:

    [project.entry-points."faultline.workloads"]
    queue = "myqueue_faultline:QueueWorkload"

The entry point names a `Workload` subclass; its `name` must equal the entry point's name.
Adding a workload to faultline itself is one module here and one line of `BUILTIN`.

May import: checkers, pluginkit.
"""

from __future__ import annotations

from typing import Any, Sequence

from checkers import registry
from harness.workloads.base import Invocation, Mix, Workload
from pluginkit import lookup as plugins
from pluginkit.options import OptionError

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "BrokenWorkload", "Invocation", "Mix",
           "UnknownWorkload", "Workload", "checker_options", "entries", "find", "load",
           "make_workload", "names"]

ENTRY_POINT_GROUP = "faultline.workloads"
# Built-in workloads: name -> "module:class", imported only when asked for. Once loaded, the
# module harness.workloads.set is this package's attribute `set`, which hides the builtin of
# that name in this module: nothing here may call set().
BUILTIN = {"register": "harness.workloads.register:RegisterWorkload",
           "set": "harness.workloads.set:SetWorkload",
           "session": "harness.workloads.session:SessionWorkload",
           "list-append": "harness.workloads.list_append:ListAppendWorkload"}


class UnknownWorkload(LookupError):
    """No workload has that name; the message lists the names there are."""


class BrokenWorkload(RuntimeError):
    """A workload exists under that name but cannot be loaded; the message says why."""


REGISTRY = plugins.Registry(BUILTIN, ENTRY_POINT_GROUP, Workload, "workload", "workloads",
                            "workload", UnknownWorkload, BrokenWorkload, sorted_names=True)


# The registry's questions, as this package's own functions.
entries, names, find, load = REGISTRY.entries, REGISTRY.names, REGISTRY.find, REGISTRY.load


def make_workload(name: str, keys: int, *, mix: Mix | None = None, ops_per_key: int = 0,
                  **options: Any) -> Workload:
    """A fresh workload called `name` (UnknownWorkload, BrokenWorkload as `find`) over `keys`
    keys at a time. `mix` replaces its default mix; `ops_per_key` retires a key after that
    many operations (0: never).

    `options` are the test's other workload settings by name (`cas_share`, `value_size`,
    `consistency_models`, ...). The workload's constructor gets those it declares in `TAKES`;
    its checkers get those it declares in `CHECK_OPTIONS` (an OptionError for a value they do
    not take); the rest are not its own and are left out, so that one test's settings can be
    handed to any workload. A None is "not given": the default stands."""
    cls = find(name)
    given = {key: value for key, value in options.items() if value is not None}
    workload = cls(keys, mix=mix, ops_per_key=ops_per_key,
                   **{key: value for key, value in given.items() if key in cls.TAKES})
    declared = [option.name for option in cls.CHECK_OPTIONS]
    workload.set_check_options({key: value for key, value in given.items()
                                if key in declared})
    return workload


def checker_options(workload: Workload, names: Sequence[str] | None = None,
                    **common: Any) -> dict[str, dict[str, Any]]:
    """The options of each checker judging a history of `workload` (`names`, default the
    workload's own checkers), by checker name: the workload's model, when it has one, its
    checkers' options (`CHECK_OPTIONS`), and the run's `common` ones (the budget). Each value
    goes to every checker that declares an option of its name, and to no other.

    OptionError, naming the workload and the option, for a `CHECK_OPTIONS` option that none
    of its own checkers declares: a value a test sets must reach a checker, never vanish.
    UnknownChecker or BrokenChecker (`checkers.registry`) for a name."""
    given = dict(common)
    if workload.model is not None:
        given["model"] = workload.model
    given.update(workload.check_options())
    declared = {name: {option.name for option in registry.find(name).OPTIONS}
                for name in dict.fromkeys([*workload.checkers, *(names or ())])}
    for option in workload.CHECK_OPTIONS:
        if not any(option.name in declared[name] for name in workload.checkers):
            raise OptionError(f"workload {workload.name}: its checkers' option "
                              f"{option.name!r} is declared by none of its checkers "
                              f"({', '.join(workload.checkers)})")
    return {name: {key: value for key, value in given.items() if key in declared[name]}
            for name in (workload.checkers if names is None else names)}
