"""Systems under test: the adapter interface (`base`), the adapters faultline ships, and the
registry that finds an adapter by name.

Adapters come from two places: the modules in this package (`BUILTIN`), and any installed
distribution that declares an entry point in the group `faultline.systems`:

    [project.entry-points."faultline.systems"]
    mykv = "mykv_faultline:MyKvAdapter"

so that a user's adapter, in the user's own package, runs without editing faultline. The
entry point names an `Adapter` subclass; its `name` must equal the entry point's name.

May import: pluginkit, refnode (its adapter only), harness.processes, harness.rundirs (faultline's
version), harness.networks.
"""

from __future__ import annotations

from harness.systems.base import Adapter
from pluginkit import lookup as plugins
from pluginkit.lookup import PluginEntry

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


def entries() -> dict[str, PluginEntry]:
    """Every adapter name known here, built-in first; an entry point never replaces a
    built-in adapter of the same name."""
    return plugins.entries(BUILTIN, ENTRY_POINT_GROUP)


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


def load(entry: PluginEntry) -> type[Adapter]:
    """Import the adapter an entry names and check that it is one."""
    return plugins.load(entry, Adapter, "system", "adapter", BrokenAdapter)
