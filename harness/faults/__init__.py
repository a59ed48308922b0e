"""Fault kinds, one module each, and the registry that finds a fault kind by name, as
`harness.systems` finds adapters.

`base` says what a fault kind is (`Fault`, `NodeFault`) and what it is given (`Setting`,
`FaultContext`); `schedule` plans and applies faults, `combinations` pairs them, `steps`
writes a schedule's steps. Fault kinds come from two places: the modules in this package
(`BUILTIN`), and any installed distribution that declares an entry point in the group
`faultline.faults`:

    [project.entry-points."faultline.faults"]
    torn-write = "tinykv_fault:TornWriteFault"

so that a user's fault, in the user's own package, runs without editing faultline
(docs/faults.md). The entry point names a `Fault` subclass; its `name` must equal the entry
point's name. Adding a fault kind to faultline itself is one module here and one line of
`BUILTIN`.

Nothing here keeps the names it has seen (`pluginkit.lookup`): a plug-in installed after
faultline was imported is found.

May import: pluginkit, harness.networks, harness.processes, harness.systems.
"""

from __future__ import annotations

from harness.faults.base import Fault, FaultContext, Setting
from pluginkit import lookup as plugins
from pluginkit.lookup import PluginEntry

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "REGISTRY", "BrokenFault", "Fault", "FaultContext",
           "Setting", "UnknownFault", "classes", "entries", "find", "load", "names"]

ENTRY_POINT_GROUP = "faultline.faults"
# Built-in fault kinds: name -> "module:class", imported only when asked for. The order is
# the one every list of fault kinds shows (`faultline run --help`, `faultline systems`).
BUILTIN = {"partition": "harness.faults.partition:PartitionFault",
           "kill": "harness.faults.kill:KillFault",
           "pause": "harness.faults.pause:PauseFault",
           "clock": "harness.faults.clock:ClockFault",
           "power-loss": "harness.faults.power_loss:PowerLossFault",
           "latency": "harness.faults.latency:LatencyFault",
           "election-crash": "harness.faults.election_crash:ElectionCrashFault",
           "bitflip": "harness.faults.bitflip:BitflipFault",
           "truncate": "harness.faults.truncate:TruncateFault",
           "failover": "harness.faults.failover:FailoverFault"}


class UnknownFault(LookupError):
    """No fault kind has that name; the message lists the names there are."""


class BrokenFault(RuntimeError):
    """A fault kind exists under that name but cannot be loaded; the message says why."""


class _FaultRegistry(plugins.Registry):
    def load(self, entry: PluginEntry) -> type[Fault]:
        """Import the fault kind an entry names and check that it is one. A plug-in may share
        an option's name with a built-in kind only with the same declaration: nemesis options
        are one namespace (`--nemesis-opt targets=...` reaches every kind that declares
        `targets`), and a second meaning would silently replace the first."""
        cls = super().load(entry)
        if entry.origin != "builtin":
            for option in cls.OPTIONS:
                for name in self.builtin:
                    theirs = {o.name: o for o in self.find(name).OPTIONS}
                    if theirs.get(option.name, option) != option:
                        raise BrokenFault(f"fault kind {entry.name} ({entry.origin}): its "
                                          f"option {option.name!r} is declared otherwise by "
                                          f"the built-in kind {name}; choose another name")
        return cls


REGISTRY = _FaultRegistry(BUILTIN, ENTRY_POINT_GROUP, Fault, "fault kind", "fault kinds",
                          "fault", UnknownFault, BrokenFault)

# The registry's questions, as this package's own functions.
entries, names, find, load = REGISTRY.entries, REGISTRY.names, REGISTRY.find, REGISTRY.load


def classes() -> dict[str, type[Fault]]:
    """Every fault kind that loads, by name, in the order of `entries`. A broken plug-in is
    left out: it must not cost the kinds that work their options or their help; naming it
    (`find`) says what is wrong with it."""
    found = {}
    for name, entry in entries().items():
        try:
            found[name] = load(entry)
        except BrokenFault:
            continue
    return found
