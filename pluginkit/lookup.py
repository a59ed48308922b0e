"""Finding a plugin class by name: the ones faultline ships, and those any installed
distribution declares as an entry point. Systems (`harness.systems`), workloads
(`harness.workloads`), fault kinds (`harness.faults`) and checkers (`checkers.registry`) are
all found this way: each is a `Registry` naming its entry point group, its built-in classes,
the base class a plugin must subclass and its own errors.

Nothing is cached: each question asks the installed distributions again, so that a plugin
installed after faultline was imported is found.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata
from typing import Mapping


@dataclass(frozen=True)
class PluginEntry:
    """Where a plugin comes from: "builtin" or the distribution that declares it."""

    name: str
    target: str          # "module:attribute"
    origin: str


def entries(builtin: dict[str, str], group: str) -> dict[str, PluginEntry]:
    """Every plugin name known here: `builtin` (name -> "module:attribute") first, then the
    entry points of `group`; an entry point never replaces a built-in of the same name."""
    found = {name: PluginEntry(name, target, "builtin") for name, target in builtin.items()}
    for point in metadata.entry_points(group=group):
        if point.name not in found:
            dist = getattr(point, "dist", None)
            origin = f"entry point of {dist.name}" if dist is not None else "entry point"
            found[point.name] = PluginEntry(point.name, point.value, origin)
    return found


def load(entry: PluginEntry, base: type, kind: str, noun: str, broken: type[Exception]) -> type:
    """Import the class `entry` names and check that it subclasses `base` and calls itself
    by the entry's name; `broken` (an exception class) says why not, naming the plugin as
    "`kind` NAME (origin)" and the class as "the `noun`"."""
    module_name, _, attribute = entry.target.partition(":")
    where = f"{kind} {entry.name} ({entry.origin})"
    try:
        target = importlib.import_module(module_name)
        for part in filter(None, attribute.split(".")):
            target = getattr(target, part)
    except Exception as exc:     # a third party's import error is reported, not raised
        raise broken(f"{where}: cannot load {entry.target}: {type(exc).__name__}: "
                     f"{exc}") from None
    if not (isinstance(target, type) and issubclass(target, base)):
        raise broken(f"{where}: {entry.target} is not a subclass of "
                     f"{base.__module__}.{base.__qualname__}")
    if target.name != entry.name:
        raise broken(f"{where}: the {noun} calls itself {target.name!r}")
    return target


@dataclass(frozen=True)
class Registry:
    """The plugins of one kind, found by name.

    - `builtin`: the ones faultline ships, name -> "module:attribute", imported only when
      asked for;
    - `group`: the entry point group through which a distribution adds one;
    - `base`: the class each must subclass; its `name` must equal the entry's;
    - `kind` and `kinds`: what one and many are called in messages ("system", "systems");
    - `noun`: what the class is called in messages ("the adapter calls itself ...");
    - `unknown`, `broken`: the exceptions for a name nobody declares, and for one that cannot
      be loaded;
    - `sorted_names`: list every name in sorted order; else the built-in ones in `builtin`'s
      order, then the plugins by name.
    """

    builtin: Mapping[str, str]
    group: str
    base: type
    kind: str
    kinds: str
    noun: str
    unknown: type[Exception]
    broken: type[Exception]
    sorted_names: bool = False

    def entries(self) -> dict[str, PluginEntry]:
        """Every name known here, the built-in ones first, then the plugins by name; an entry
        point never replaces a built-in of the same name."""
        found = entries(dict(self.builtin), self.group)
        plugged = sorted(name for name in found if name not in self.builtin)
        return {name: found[name] for name in [*self.builtin, *plugged]}

    def names(self) -> list[str]:
        """The names, sorted or in the order of `entries` (see `sorted_names`)."""
        known = list(self.entries())
        return sorted(known) if self.sorted_names else known

    def find(self, name: str) -> type:
        """The class called `name`: `unknown` when there is none (listing the names there
        are), `broken` when it cannot be imported or is not one."""
        if isinstance(name, str) and name in self.builtin:
            # No entry point may replace a built-in: no need to ask the distributions.
            return self.load(PluginEntry(name, self.builtin[name], "builtin"))
        known = self.entries()
        if not isinstance(name, str) or name not in known:
            listed = sorted(known) if self.sorted_names else list(known)
            raise self.unknown(f"unknown {self.kind} {name!r}; {self.kinds}: "
                               f"{', '.join(listed)}")
        return self.load(known[name])

    def load(self, entry: PluginEntry) -> type:
        """Import the class `entry` names and check that it is one (`load`)."""
        return load(entry, self.base, self.kind, self.noun, self.broken)
