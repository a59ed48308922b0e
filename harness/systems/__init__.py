"""Systems under test: the adapter interface (`base`), the adapters faultline ships, and the
registry that finds an adapter by name.

Adapters come from two places: the modules in this package (`BUILTIN`), and any installed
distribution that declares an entry point in the group `faultline.systems`:

    [project.entry-points."faultline.systems"]
    mykv = "mykv_faultline:MyKvAdapter"

so that a user's adapter, in the user's own package, runs without editing faultline. The
entry point names an `Adapter` subclass; its `name` must equal the entry point's name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata

from harness.systems.base import Adapter

ENTRY_POINT_GROUP = "faultline.systems"
# Built-in adapters: name -> "module:class", imported only when asked for.
BUILTIN = {"refnode": "harness.systems.refnode:RefnodeSystem",
           "etcd": "harness.systems.etcd:EtcdSystem",
           "redis": "harness.systems.redis:RedisSystem",
           "postgres": "harness.systems.postgres:PostgresSystem"}


class UnknownSystem(LookupError):
    """No adapter has that name; the message lists the names there are."""


class BrokenAdapter(RuntimeError):
    """An adapter exists under that name but cannot be loaded; the message says why."""


@dataclass(frozen=True)
class Entry:
    """Where an adapter comes from: "builtin" or the distribution that declares it."""

    name: str
    target: str          # "module:attribute"
    origin: str


def entries() -> dict[str, Entry]:
    """Every adapter name known here, built-in first; an entry point never replaces a
    built-in adapter of the same name."""
    found = {name: Entry(name, target, "builtin") for name, target in BUILTIN.items()}
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in found:
            dist = getattr(point, "dist", None)
            origin = f"entry point of {dist.name}" if dist is not None else "entry point"
            found[point.name] = Entry(point.name, point.value, origin)
    return found


def names() -> list[str]:
    """The adapter names, sorted."""
    return sorted(entries())


def find(name: str) -> type[Adapter]:
    """The adapter class called `name`: UnknownSystem when there is none, BrokenAdapter when
    it cannot be imported or is not an adapter."""
    known = entries()
    if name not in known:
        raise UnknownSystem(f"unknown system {name!r}; systems: {', '.join(sorted(known))}")
    return load(known[name])


def load(entry: Entry) -> type[Adapter]:
    """Import the adapter an entry names and check that it is one."""
    module_name, _, attribute = entry.target.partition(":")
    try:
        target = importlib.import_module(module_name)
        for part in filter(None, attribute.split(".")):
            target = getattr(target, part)
    except Exception as exc:     # a third party's import error is reported, not raised
        raise BrokenAdapter(f"system {entry.name} ({entry.origin}): cannot load "
                            f"{entry.target}: {type(exc).__name__}: {exc}") from None
    if not (isinstance(target, type) and issubclass(target, Adapter)):
        raise BrokenAdapter(f"system {entry.name} ({entry.origin}): {entry.target} is not a "
                            f"subclass of harness.systems.base.Adapter")
    if target.name != entry.name:
        raise BrokenAdapter(f"system {entry.name} ({entry.origin}): the adapter calls itself "
                            f"{target.name!r}")
    return target
