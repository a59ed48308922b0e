"""Finding a plugin class by name: the ones faultline ships, and those any installed
distribution declares as an entry point. Systems (`harness.systems`) and workloads
(`harness.workloads`) are both found this way; each registry names its entry point group,
its built-in classes, the base class a plugin must subclass and its own errors.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata


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
