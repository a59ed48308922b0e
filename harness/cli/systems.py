"""`faultline systems`: the system adapters known here, whether each can run on this machine,
and what each takes (options, workloads, networks, faults); and the fault kinds known here,
with where each comes from."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from harness import faults, networks, systems
from harness.cli import exits, terminal
from harness.systems.base import Adapter, capabilities_of, capability_gaps
from pluginkit.lookup import PluginEntry
from pluginkit.options import format_value


def register(sub) -> None:
    """Add `systems` to the `faultline` parser."""
    p = sub.add_parser(
        "systems", help="list the systems faultline can test",
        description="List the system adapters (built in, and installed through the "
                    "faultline.systems entry point): whether each can run here, with the "
                    "command that installs what is missing, and its options, workloads, "
                    "networks and faults; then the fault kinds (built in, and installed "
                    "through the faultline.faults entry point). With a NAME, that system's "
                    "options in full.")
    p.add_argument("name", nargs="?", help="one system, in detail")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(handler=list_systems)


def describe(entry: PluginEntry) -> dict[str, Any]:
    """What `faultline systems` says of one adapter, as JSON data."""
    try:
        adapter = systems.load(entry)
    except systems.BrokenAdapter as exc:
        return {"name": entry.name, "origin": entry.origin, "available": False,
                "detail": str(exc)}
    availability = adapter.availability()
    return {
        "name": entry.name, "origin": entry.origin, "summary": adapter.SUMMARY,
        "available": availability.available, "version": availability.version,
        "detail": availability.detail, "install": availability.install,
        "networks": list(adapter.NETWORKS), "workloads": list(adapter.WORKLOADS),
        "nodes": [adapter.MIN_NODES, adapter.MAX_NODES],
        "capabilities": sorted(capabilities_of(adapter)),
        "faults": {network: fault_kinds(adapter, network) for network in adapter.NETWORKS},
        "options": [{"name": o.name, "type": o.type, "default": o.default,
                     "choices": list(o.choices) if o.choices else None, "help": o.help}
                    for o in adapter.OPTIONS]}


def fault_kinds(adapter: type[Adapter], network: str) -> dict[str, str | None]:
    """Each fault kind, and why the adapter cannot take it on `network` (None: it can)."""
    backend = networks.backend(network)
    nodes = max(3, adapter.MIN_NODES)         # a cluster the adapter takes
    if adapter.MAX_NODES is not None:
        nodes = min(nodes, adapter.MAX_NODES)
    setting = faults.Setting(nodes, capabilities_of(adapter), network, backend.features(),
                             {}, backend.missing, capability_gaps(adapter),
                             system=adapter.name)
    refusals: dict[str, str | None] = {}
    for kind, entry in faults.entries().items():
        try:
            refusals[kind] = faults.load(entry).refusal(setting)
        except faults.BrokenFault as exc:      # a plug-in that cannot load runs nowhere
            refusals[kind] = str(exc)
    return refusals


def describe_fault(entry: PluginEntry) -> dict[str, Any]:
    """What `faultline systems` says of one fault kind, as JSON data: where it comes from,
    what it does, its options; or why it cannot be loaded."""
    try:
        cls = faults.load(entry)
    except faults.BrokenFault as exc:
        return {"name": entry.name, "origin": entry.origin, "broken": str(exc)}
    return {"name": entry.name, "origin": entry.origin, "summary": cls.SUMMARY,
            "options": [o.name for o in cls.OPTIONS]}


def list_systems(args: argparse.Namespace) -> int:
    known = systems.entries()
    if args.name is not None and args.name not in known:
        raise exits.UsageError(f"unknown system {args.name!r}; systems: "
                               f"{', '.join(sorted(known))}")
    names = [args.name] if args.name else sorted(known)
    rows = [describe(known[name]) for name in names]
    if args.json:
        print(json.dumps(rows if args.name is None else rows[0], indent=1))
        return exits.VALID
    table = Table(title="systems", title_justify="left")
    for column in ("system", "can run here", "networks", "workloads", "faults", "options"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["name"], _availability(row), ", ".join(row.get("networks", [])),
                      ", ".join(row.get("workloads", [])), _faults(row),
                      ", ".join(o["name"] for o in row.get("options", [])))
    terminal.out.print(table)
    if args.name is not None and "options" in rows[0]:
        _print_options(rows[0])
    if args.name is None:
        _print_fault_kinds([describe_fault(entry) for entry in faults.entries().values()])
    return exits.VALID


def _availability(row: dict[str, Any]) -> str:
    if row["available"]:
        version = f" ({row['version']})" if row.get("version") else ""
        return f"[green]yes[/]{version}"
    install = f"; install: {row['install']}" if row.get("install") else ""
    return f"[bold red]no[/]: {row.get('detail', '')}{install}"


def _faults(row: dict[str, Any]) -> str:
    parts = []
    for network, kinds in row.get("faults", {}).items():
        offered = [kind for kind, refusal in kinds.items() if refusal is None]
        parts.append(f"{network}: {', '.join(offered) or 'none'}")
    return "; ".join(parts)


def _print_fault_kinds(rows: list[dict[str, Any]]) -> None:
    table = Table(title="fault kinds (--nemesis)", title_justify="left")
    for column in ("fault", "from"):
        table.add_column(column, no_wrap=True)      # a name and its origin read whole
    for column in ("what it does", "options"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if "broken" in row:
            table.add_row(row["name"], row["origin"], f"[bold red]cannot load[/]: "
                          f"{escape(row['broken'])}", "")
        else:
            table.add_row(row["name"], row["origin"], row["summary"],
                          ", ".join(row["options"]))
    terminal.out.print(table)


def _print_options(row: dict[str, Any]) -> None:
    table = Table(title=f"{row['name']} options (--system-opt NAME=VALUE, or \\[system] in a "
                        f"--config file)", title_justify="left")
    for column in ("option", "type", "default", "choices", "meaning"):
        table.add_column(column, overflow="fold")
    for o in row["options"]:
        table.add_row(o["name"], o["type"], format_value(o["default"]),
                      ", ".join(str(c) for c in o["choices"] or []), o["help"])
    terminal.out.print(table)
    for network, kinds in row["faults"].items():
        for kind, refusal in kinds.items():
            if refusal is not None:
                terminal.out.print(f"not on {network}: {refusal}")
