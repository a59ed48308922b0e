"""The refnode adapter: faultline's reference store as a system under test."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import sys
from pathlib import Path
from typing import Any, Mapping

from harness.rundirs import store
from harness.systems.base import Adapter, Availability, ClusterLayout, NodeSlot
from pluginkit.options import Option, OptionError
from refnode.client import RefnodeClient
from refnode.config import BUGS, READ_MODES, REPLICATION_MODES, ClusterConfig
from refnode.wal import LOG_NAME, WalError, power_loss

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
            # The reads after healing are linearizable whatever the clients' read mode.
            outcome = c.read(key, "leader" if options.get("final") else self.read_mode)
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


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ClusterConfig)}
# The timings a real deployment would use, as etcd's defaults are (100 ms heartbeats, a 1 s
# election timeout): a deposed leader leads on for up to 2 s without a quorum, as real ones
# do, which is where stale reads and lost acknowledgements show. ClusterConfig's own (0.3 to
# 0.6 s elections, 50 ms heartbeats) keep tests fast: FAULTLINE_REFNODE_TIMINGS=fast, which
# the test suite sets, makes them the adapter's defaults.
REALISTIC_TIMINGS = {"election_timeout_min": 1.0, "election_timeout_max": 2.0,
                     "heartbeat_interval": 0.1}
TIMINGS_ENV = "FAULTLINE_REFNODE_TIMINGS"
if os.environ.get(TIMINGS_ENV, "realistic") != "fast":
    _DEFAULTS.update(REALISTIC_TIMINGS)
# ClusterConfig's timing fields, offered as options under the same names (float seconds).
_TIMINGS = (
    ("election_timeout_min", "shortest election timeout, seconds"),
    ("election_timeout_max", "longest election timeout, seconds (also how long a leader "
                             "leads without hearing from a quorum)"),
    ("heartbeat_interval", "seconds between a leader's heartbeat rounds"),
    ("max_clock_drift", "bound on clock-rate differences, as a fraction; leases are "
                        "shortened by it"),
    ("follower_read_wait", "seconds a follower waits to catch up with a session token"),
    ("request_timeout", "seconds a leader keeps a request pending before it times out"),
)


class RefnodeSystem(Adapter):
    """refnode nodes started as `python -m refnode`, configured by one cluster file.

    Options: `replication` (sync, quorum, async), `read_mode` (leader, lease, follower; the
    clients' reads), `session` (clients send their session token), `bug` (a planted bug),
    `fsync` ("group" commit or "every" write), and ClusterConfig's timings.
    """

    name = "refnode"
    SUMMARY = "faultline's reference Leader and Followers store"
    OPTIONS = (
        Option("replication", "str", "quorum", "when a write is acknowledged",
               choices=REPLICATION_MODES),
        Option("read_mode", "str", None, "how clients read (unset: leader, or follower for "
               "the session workload)", choices=READ_MODES),
        Option("session", "bool", None, "clients send their session token (unset: with the "
               "session workload)"),
        Option("bug", "str", None, "a planted bug to switch on", choices=tuple(BUGS)),
        Option("fsync", "str", "group", "sync a batch of writes at once, or every write",
               choices=("group", "every")),
        *(Option(name, "float", _DEFAULTS[name], text, minimum=0.0) for name, text in _TIMINGS),
        Option("max_append_entries", "int", _DEFAULTS["max_append_entries"],
               "most log entries in one append message", minimum=1),
        Option("max_append_bytes", "int", _DEFAULTS["max_append_bytes"],
               "most bytes of values and keys in one append message (a larger entry goes "
               "alone)", minimum=1),
    )
    WORKLOADS = ("register", "set", "session")
    NETWORKS = ("proxy", "netns")

    def __init__(self, options: Mapping[str, Any] | None = None, *,
                 workload: str = "register"):
        super().__init__(options, workload=workload)
        o = self.options
        self.read_mode = o["read_mode"] or ("follower" if workload == "session" else "leader")
        self.session = o["session"] if o["session"] is not None else workload == "session"
        try:
            self._config(("n1",))       # the timings' rules, checked before anything starts
        except ValueError as exc:
            raise OptionError(f"refnode: {exc}") from None
        self._token: str | None = None

    @classmethod
    def availability(cls) -> Availability:
        """refnode ships with faultline: always here, at faultline's version."""
        return Availability(True, version=store.versions()["faultline"],
                            detail="python -m refnode")

    @classmethod
    def label(cls, options: Mapping[str, Any]) -> str:
        """The planted bug, if any: a run with one is told apart by its name."""
        return options.get("bug") or ""

    @classmethod
    def legacy_options(cls, options: Mapping[str, Any], workload: str) -> dict[str, Any]:
        """Tests stored before refnode's options were its own always said read_mode "leader",
        which the session workload turned into follower reads: the default now."""
        options = dict(options)
        if workload == "session" and options.get("read_mode") == "leader":
            del options["read_mode"]
        return options

    def clock_drift_bound(self) -> float:
        """Its leases allow for clocks whose rates differ by up to `max_clock_drift`."""
        return float(self.options["max_clock_drift"])

    def failure_detection(self) -> float:
        """A follower campaigns within the longest election timeout of the last heartbeat,
        and a leader without a quorum steps down after it."""
        return float(self.options["election_timeout_max"])

    def describe(self) -> str:
        return f"{self.options['replication']} replication, {self.read_mode} reads" + (
            f", bug {self.options['bug']}" if self.options["bug"] else "")

    def _config(self, nodes: tuple[str, ...]) -> ClusterConfig:
        o = self.options
        return ClusterConfig(nodes=nodes, replication=o["replication"],
                             bugs=frozenset([o["bug"]] if o["bug"] else []),
                             max_append_entries=o["max_append_entries"],
                             max_append_bytes=o["max_append_bytes"],
                             **{name: o[name] for name, _ in _TIMINGS})

    def setup(self, layout: ClusterLayout) -> None:
        """Write the cluster file (validated by refnode's own ClusterConfig)."""
        config = self._config(tuple(layout.ids))
        self._token = "%032x" % random.Random(f"{layout.seed}/admin").getrandbits(128)
        nodes = {slot.id: {"client": slot.client_address, "peer": slot.peer_address,
                           "peers": dict(slot.peer_addresses), "data_dir": str(slot.data_dir)}
                 for slot in layout.nodes}
        data = {"cluster": config.to_dict(), "nodes": nodes, "seed": layout.seed,
                "admin_token": self._token, "fsync": self.options["fsync"],
                # On the namespace network the harness's admin calls come from the bridge.
                "admin_hosts": [layout.harness_host]}
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

    def data_files(self, node: NodeSlot, layout: ClusterLayout) -> list[Path]:
        """Its write-ahead log (entries, term and vote; the power-loss marker is the harness's
        bookkeeping, not the node's state)."""
        log_file = Path(node.data_dir) / LOG_NAME
        return [log_file] if log_file.exists() else []

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

