"""Systems under test: the adapter interface (`base`), the adapters faultline ships, and the
registry that finds an adapter by name.

Adapters come from two places: the modules in this package (`BUILTIN`), and any installed
distribution that declares an entry point in the group `faultline.systems`:

    [project.entry-points."faultline.systems"]
    mykv = "mykv_faultline:MyKvAdapter"

so that a user's adapter, in the user's own package, runs without editing faultline. The
entry point names an `Adapter` subclass; its `name` must equal the entry point's name.

May import: pluginkit, refnode (from harness.systems.refnode only), harness.processes,
harness.rundirs (faultline's version), harness.networks.
"""

from __future__ import annotations

from harness.systems.base import Adapter
from pluginkit import lookup as plugins

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


REGISTRY = plugins.Registry(BUILTIN, ENTRY_POINT_GROUP, Adapter, "system", "systems", "adapter",
                            UnknownSystem, BrokenAdapter, sorted_names=True)


# The registry's questions, as this package's own functions.
entries, names, find, load = REGISTRY.entries, REGISTRY.names, REGISTRY.find, REGISTRY.load
