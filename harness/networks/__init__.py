"""The networks a cluster can run on, behind one interface (`base.Network`).

- `proxy` (`harness.networks.proxy`): a fault-injecting TCP proxy on every directed link,
  driven through the Toxiproxy HTTP API; unprivileged. Each node is told its own address for
  each peer, so this suits systems that take one (refnode).
- `netns` (`harness.networks.netns`): each node in a Linux network namespace of its own, with
  its own address on a bridge; faults are packet filters inside the namespaces. Needs root
  (CAP_SYS_ADMIN and CAP_NET_ADMIN); suits real systems whose members all dial one shared
  address per peer.

May import: harness.processes, harness.proxy.
"""

from __future__ import annotations

import importlib

from harness.networks.base import Network, NetworkUnavailable

BACKENDS = {"proxy": "harness.networks.proxy:ProxyNetwork",
            "netns": "harness.networks.netns:NamespaceNetwork"}
NAMES = tuple(BACKENDS)


def backend(name: str) -> type[Network]:
    """The network class called `name` (KeyError for an unknown one)."""
    module, _, attribute = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


__all__ = ["BACKENDS", "NAMES", "Network", "NetworkUnavailable", "backend"]
