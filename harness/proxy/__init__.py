"""faultline's network faults: a Toxiproxy-compatible proxy server, and ways to drive one.

- `serve` / `run` (harness.proxy.server): the embedded server, in-process or blocking.
- `start_embedded`, `start_toxiproxy_server`, `start_proxy_server`, `find_toxiproxy_server`
  (harness.proxy.process): such a server, or a real `toxiproxy-server`, as a child process.
- `ToxiproxyClient` (harness.proxy.client): toxiproxy-python's client bound to one server.

Names are imported lazily, so that the server process does not load the HTTP client library.

May import: nothing of faultline outside this package.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "serve": "server", "run": "server", "ServerHandle": "server",
    "start_embedded": "process", "start_toxiproxy_server": "process",
    "start_proxy_server": "process", "find_toxiproxy_server": "process",
    "ProxyServerProcess": "process",
    "ToxiproxyClient": "client", "BoundProxy": "client", "ServerError": "client",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.proxy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"harness.proxy.{module}"), name)
