"""The refnode adapter: faultline's reference store as a system under test."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from harness.systems.base import ClusterLayout, NodeSlot
from refnode.client import RefnodeClient
from refnode.config import ClusterConfig
from refnode.wal import WalError, power_loss

CLUSTER_FILE = "cluster.json"


class RefnodeClientAdapter:
    """The harness's client role over refnode's client library."""

    def __init__(self, client: RefnodeClient, read_mode: str):
        self._client = client
        self.read_mode = read_mode

    def invoke(self, f: str, key: str | None, value: Any, **options: Any) -> dict:
        """Perform one operation; returns its completion (type, value, version, node, error)."""
        c = self._client
        if f == "read":
            outcome = c.read(key, options.get("read_mode", self.read_mode))
        elif f == "write":
            outcome = c.write(key, value)
        elif f == "cas":
            outcome = c.cas(key, value[0], value[1])
        elif f == "add":
            outcome = c.add(key, value)
        else:
            raise ValueError(f"refnode has no operation {f!r}")
        # As in Jepsen, a completion repeats what was asked, except a read's result.
        return {"type": outcome.type, "value": outcome.value if f == "read" else value,
                "version": outcome.version, "node": outcome.node, "error": outcome.error}

    def close(self) -> None:
        self._client.close()


class RefnodeStatusReader:
    """A node's status, read again and again over one connection (reconnects after errors)."""

    def __init__(self, client: RefnodeClient):
        self._client = client

    def read(self) -> dict | None:
        outcome = self._client.status()
        if outcome.type != "ok":
            self._client.close()       # the next read starts on a fresh connection
            return None
        return outcome.value

    def close(self) -> None:
        self._client.close()


class RefnodeSystem:
    """refnode nodes started as `python -m refnode`, configured by one cluster file.

    Options: `replication` (sync, quorum, async), `read_mode` (leader, lease, follower; the
    clients' default), `session` (clients send their session token), `bugs` (planted bugs),
    `fsync` ("group" commit or "every" write), and any other `ClusterConfig` field
    (timeouts, drift bound).
    """

    name = "refnode"

    def __init__(self, replication: str = "quorum", read_mode: str = "leader",
                 session: bool = False, bugs: tuple[str, ...] = (), fsync: str = "group",
                 **config: Any):
        self.replication = replication
        self.fsync = fsync
        self.read_mode = read_mode
        self.session = session
        self.bugs = tuple(bugs)
        self.config_options = config
        self._token: str | None = None

    def setup(self, layout: ClusterLayout) -> None:
        """Write the cluster file (validated by refnode's own ClusterConfig)."""
        config = ClusterConfig(nodes=tuple(layout.ids), replication=self.replication,
                               bugs=frozenset(self.bugs), **self.config_options)
        self._token = "%032x" % random.Random(f"{layout.seed}/admin").getrandbits(128)
        nodes = {slot.id: {"client": slot.client_address,
                           "peer": f"127.0.0.1:{slot.peer_port}",
                           "peers": dict(slot.peer_addresses), "data_dir": str(slot.data_dir)}
                 for slot in layout.nodes}
        data = {"cluster": config.to_dict(), "nodes": nodes, "seed": layout.seed,
                "admin_token": self._token, "fsync": self.fsync}
        (layout.run_dir / CLUSTER_FILE).write_text(json.dumps(data, indent=1))

    def command(self, node: NodeSlot, layout: ClusterLayout) -> list[str]:
        return [sys.executable, "-m", "refnode", "--id", node.id, "--config",
                str(layout.run_dir / CLUSTER_FILE)]

    def is_ready(self, node: NodeSlot, layout: ClusterLayout) -> bool:
        return self.status(node) is not None

    def status(self, node: NodeSlot, timeout: float = 0.3) -> dict | None:
        """The node's status, asked directly (not through a proxy); None if it does not answer."""
        with RefnodeClient({node.id: node.client_address}, timeout=timeout) as client:
            outcome = client.status()
        return outcome.value if outcome.type == "ok" else None

    def status_reader(self, node: NodeSlot, layout: ClusterLayout,
                      timeout: float) -> "RefnodeStatusReader":
        """A reader of the node's status over one kept connection (StatusProbe)."""
        return RefnodeStatusReader(RefnodeClient({node.id: node.client_address},
                                                 timeout=timeout))

    def client(self, node: str, addresses: dict[str, str], layout: ClusterLayout,
               timeout: float) -> RefnodeClientAdapter:
        client = RefnodeClient(addresses, node, timeout=timeout, session=self.session,
                               admin_token=self._token)
        return RefnodeClientAdapter(client, self.read_mode)

    # --- capabilities ---------------------------------------------------------------------

    def lose_unsynced(self, node: NodeSlot, layout: ClusterLayout) -> dict:
        """Cut a killed node's log back to what it had synced (refnode.wal.power_loss)."""
        try:
            cut = power_loss(Path(node.data_dir))
        except (WalError, FileNotFoundError) as exc:
            return {"node": node.id, "error": str(exc)}
        return {"node": node.id, "bytes_cut": cut.bytes_cut}

    def set_clock(self, node: NodeSlot, layout: ClusterLayout, offset: float,
                  rate: float) -> None:
        """Skew or drift a node's clock through its admin call (direct, not proxied)."""
        with RefnodeClient({node.id: node.client_address}, timeout=1.0,
                           admin_token=self._token) as client:
            outcome = client.set_clock(node.id, offset=offset, rate=rate)
        if outcome.type != "ok":
            raise RuntimeError(f"{node.id}: clock not set: {outcome.error}")

    def leader(self, layout: ClusterLayout) -> str | None:
        """The leader a majority of nodes name, asked directly; None without a majority."""
        votes: dict[str, int] = {}
        for slot in layout.nodes:
            status = self.status(slot, timeout=0.2)
            if status and status.get("leader"):
                votes[status["leader"]] = votes.get(status["leader"], 0) + 1
        if not votes:
            return None
        leader, count = max(votes.items(), key=lambda kv: kv[1])
        return leader if count > len(layout.nodes) // 2 else None

