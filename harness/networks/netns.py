"""The namespace network: each node in a Linux network namespace of its own.

Real systems give every member one address per peer, shared by all (etcd's member list, Redis
replicas and Sentinels, PostgreSQL standbys), so one proxy per directed link cannot be wired
in. Here each node runs in its own network namespace with its own address on a bridge the
harness creates in its own namespace; clients connect from there, through the bridge.

    root namespace:  bridge fl<tag>b  10.213.X.1/24  (the harness and its clients)
    faultline-<tag>-n1:  eth0 10.213.X.2/24  (veth, root end fl<tag>v1 on the bridge)
    faultline-<tag>-n2:  eth0 10.213.X.3/24  ...

A cut link (src, dst) is a packet filter in dst's namespace (an nftables rule on its input
hook) that drops whatever comes from src's address, or refuses it (an ICMP port unreachable,
so connections are refused): Jepsen's iptables partitions, where a grudge drops traffic from
the listed sources. Dropping packets from src breaks TCP both ways between the two (neither
side's handshake completes), as it does under Jepsen. Clients are never cut: the filters
match node addresses only.

Addresses come from 10.213.0.0/16, one /24 per cluster, chosen under a lock among those no
interface of the root namespace uses. Everything is named after the cluster's tag (the
harness's pid and a counter), recorded in the harness's registry before it is made, removed
by `close()`, and reaped at the next start if the harness died first.

Latency needs the kernel's netem queueing discipline; it is not offered on this network (see
`missing`), so no fault can fail for want of it mid-run. Needs root (CAP_SYS_ADMIN and
CAP_NET_ADMIN), a kernel with nf_tables, and the pyroute2 library (netlink for namespaces,
links, addresses and nftables).
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import itertools
import os
import platform
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from harness.networks.base import (DROP, PARTITION, REFUSE, Change, Link, Network,
                                   NetworkUnavailable, Placement)
from harness.processes.leftovers import state_dir

SUPERNET = ipaddress.ip_network("10.213.0.0/16")
CLIENT_PORT, PEER_PORT = 7000, 7001
NAMESPACE_PREFIX = "faultline-"
LINK_PREFIX = "fl"
TABLE, CHAIN = "faultline", "input"
CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21
NFPROTO_IPV4 = 2
NF_DROP, NF_ACCEPT = 0, 1
NFT_REJECT_ICMP_UNREACH, ICMP_PORT_UNREACHABLE = 0, 3

_counter = itertools.count(1)
T = TypeVar("T")
# What removes a leftover of each kind, by name: recorded with it, for the next harness to
# reap should this one be killed before it removes its own.
CLEANERS = {"netns": f"{__name__}:remove_namespace", "link": f"{__name__}:remove_link"}


def may_make_namespaces() -> bool:
    """Whether this process may create network namespaces and links: it holds both
    CAP_SYS_ADMIN (to make and enter a namespace) and CAP_NET_ADMIN (links, addresses,
    packet filters), as root usually does though not in every container; or it is root where
    that cannot be read."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                effective = int(line.split()[1], 16)
                return all(effective >> bit & 1 for bit in (CAP_NET_ADMIN, CAP_SYS_ADMIN))
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


def netem_available() -> bool:
    """Whether the kernel has the netem queueing discipline, loaded, built in or loadable."""
    if Path("/sys/module/sch_netem").exists():
        return True
    modules = Path("/lib/modules") / platform.release()
    try:
        if "sch_netem" in (modules / "modules.builtin").read_text():
            return True
    except OSError:
        pass
    return any(modules.glob("kernel/net/sched/sch_netem.ko*"))


def run_in_namespace(name: str, action: Callable[[], T]) -> T:
    """Call `action` in a thread that has joined namespace `name`, and return its result.

    A thread's network namespace is its own (setns acts on the calling thread), so the rest of
    the harness stays where it is; sockets made inside `action` stay in `name` for life."""
    return run_in_namespaces([(name, action)])[0]


def run_in_namespaces(actions: list[tuple[str, Callable[[], T]]]) -> list[T]:
    """Each (namespace, action) at once, each in a thread of its own inside its namespace;
    their results in order. The first error is raised once all have ended. (At once, because
    the kernel makes each change to a packet filter wait for a grace period of its own.)"""
    from pyroute2 import netns

    outcomes: list[dict[str, Any]] = [{} for _ in actions]

    def enter_and_run(name: str, action: Callable[[], T], outcome: dict[str, Any]) -> None:
        try:
            netns.setns(name, flags=0)
            outcome["value"] = action()
        except BaseException as exc:     # handed back to the caller's thread
            outcome["error"] = exc

    threads = [threading.Thread(target=enter_and_run, args=(name, action, outcome),
                                name=f"netns-{name}", daemon=True)
               for (name, action), outcome in zip(actions, outcomes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for outcome in outcomes:
        if "error" in outcome:
            raise outcome["error"]
    return [outcome["value"] for outcome in outcomes]


def remove_namespace(name: str) -> None:
    """Remove a network namespace if it exists (the registry's cleaner)."""
    from pyroute2 import netns

    if name in netns.listnetns():
        try:
            netns.remove(name)
        except FileNotFoundError:         # gone meanwhile
            pass


def remove_link(name: str) -> None:
    """Delete a link of the root namespace if it exists (the registry's cleaner)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            try:
                ipr.link("del", index=found[0])
            except NetlinkError as exc:
                # The root end of a namespace's link goes by itself some time after the
                # namespace: it may have gone between the lookup and the deletion.
                if exc.code != errno.ENODEV:
                    raise


class NamespaceNetwork(Network):
    """A bridge and a namespace per node (see the module docstring). `registry` records
    every namespace and link before it is made."""

    name = "netns"

    def __init__(self, nodes: Iterable[str], run_dir: Path, registry=None):
        super().__init__(nodes, run_dir)
        if len(self.nodes) > 250:
            raise ValueError("the namespace network takes at most 250 nodes")
        self.registry = registry
        # The harness's pid, then which of its clusters: "1a2-3" (pid and count could run
        # together otherwise); short, as link names have 15 characters at most.
        self.tag = f"{os.getpid():x}-{next(_counter):x}"
        self.bridge = f"{LINK_PREFIX}{self.tag}b"
        self.namespaces = {node: f"{NAMESPACE_PREFIX}{self.tag}-{node}" for node in self.nodes}
        self.veths = {node: f"{LINK_PREFIX}{self.tag}v{i}"
                      for i, node in enumerate(self.nodes, 1)}
        self.addresses: dict[str, str] = {}
        self.harness_host = ""
        self._rules: dict[str, list[tuple[str, str]] | None] = {n: [] for n in self.nodes}
        self._made: list[tuple[str, str]] = []      # (kind, name), in the order made

    # --- what this backend can do here -----------------------------------------------------

    @classmethod
    def check_usable(cls) -> None:
        if platform.system() != "Linux":
            raise NetworkUnavailable("--network netns needs Linux network namespaces")
        if not may_make_namespaces():
            raise NetworkUnavailable("--network netns needs root (CAP_SYS_ADMIN and "
                                     "CAP_NET_ADMIN) to create network namespaces")
        try:
            import pyroute2  # noqa: F401
        except ImportError:
            raise NetworkUnavailable("--network netns needs the pyroute2 package (pip install "
                                     "pyroute2)") from None

    @classmethod
    def features(cls) -> frozenset[str]:
        return frozenset({PARTITION, REFUSE})

    @classmethod
    def missing(cls, feature: str) -> str:
        if feature == "latency":
            if not netem_available():
                return "latency on the netns network needs the kernel's netem, which this " \
                       "kernel lacks"
            return "latency is not offered on the netns network yet"
        return super().missing(feature)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> dict[str, Placement]:
        """Make the bridge, the namespaces and their links, and an empty packet filter in
        each namespace; returns where each node lives."""
        from pyroute2 import IPRoute, NetNS, netns

        with IPRoute() as ipr:
            subnet = self._make_bridge(ipr)
            hosts = subnet.hosts()
            self.harness_host = str(next(hosts))
            bridge = ipr.link_lookup(ifname=self.bridge)[0]
            for node in self.nodes:
                self.addresses[node] = str(next(hosts))
                name, veth = self.namespaces[node], self.veths[node]
                self._record("netns", name)
                netns.create(name)
                self._record("link", veth)
                ipr.link("add", ifname=veth, kind="veth",
                         peer={"ifname": "eth0", "net_ns_fd": name})
                ipr.link("set", index=ipr.link_lookup(ifname=veth)[0], master=bridge,
                         state="up")
                with NetNS(name) as ns:
                    eth0 = ns.link_lookup(ifname="eth0")[0]
                    ns.addr("add", index=eth0, address=self.addresses[node],
                            prefixlen=subnet.prefixlen)
                    ns.link("set", index=eth0, state="up")
                    ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
                try:
                    run_in_namespace(name, _make_filter)
                except Exception as exc:
                    raise NetworkUnavailable(f"no packet filter in namespace {name} (the "
                                             f"kernel needs nf_tables): {exc}") from None
        return {node: Placement(
            self.addresses[node], CLIENT_PORT, PEER_PORT,
            f"{self.addresses[node]}:{CLIENT_PORT}",
            {peer: f"{self.addresses[peer]}:{PEER_PORT}" for peer in self.nodes
             if peer != node},
            self.namespaces[node]) for node in self.nodes}

    def _make_bridge(self, ipr) -> ipaddress.IPv4Network:
        """Choose a free /24 and put the bridge on it, under a lock shared by every harness
        on the machine (two clusters must never pick the same subnet)."""
        with open(state_dir().parent / "netns.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = [ipaddress.ip_network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}",
                                         strict=False) for a in ipr.get_addr(family=2)]
            for subnet in SUPERNET.subnets(new_prefix=24):
                if not any(subnet.overlaps(u) for u in used):
                    break
            else:
                raise NetworkUnavailable(f"no free /24 left in {SUPERNET} for another "
                                         f"namespace network")
            self._record("link", self.bridge)
            ipr.link("add", ifname=self.bridge, kind="bridge")
            index = ipr.link_lookup(ifname=self.bridge)[0]
            ipr.addr("add", index=index, address=str(next(subnet.hosts())),
                     prefixlen=subnet.prefixlen)
            ipr.link("set", index=index, state="up")
        return subnet

    def _record(self, kind: str, name: str) -> None:
        if self.registry is not None:
            self.registry.add_resource(kind, name, CLEANERS[kind])
        self._made.append((kind, name))

    def close(self) -> None:
        """Remove the namespaces, then the root ends of their links and the bridge (they
        outlive the namespaces otherwise), forgetting each in the registry once it is gone.
        What cannot be removed stays on record, for the next start to reap; the first such
        error is raised once everything else has been tried."""
        errors = []
        for kind, name in sorted(self._made, key=lambda r: r[0] != "netns"):
            try:
                (remove_namespace if kind == "netns" else remove_link)(name)
            except Exception as exc:
                errors.append(exc)
                continue
            self._made.remove((kind, name))
            if self.registry is not None:
                self.registry.remove_resource(kind, name)
        if errors:
            raise errors[0]

    def leftovers(self) -> list[str]:
        """Namespaces and links of this cluster that still exist (empty after `close`)."""
        from pyroute2 import IPRoute, netns

        names = set(netns.listnetns())
        found = [n for n in self.namespaces.values() if n in names]
        with IPRoute() as ipr:
            found += [link for link in [self.bridge, *self.veths.values()]
                      if ipr.link_lookup(ifname=link)]
        return found

    # --- changes ---------------------------------------------------------------------------

    def _apply_cuts(self, cuts: dict[str, set[Link]]) -> None:
        wanted: dict[str, list[tuple[str, str]]] = {n: [] for n in self.nodes}
        for mode in (DROP, REFUSE):
            for src, dst in sorted(cuts[mode]):
                wanted[dst].append((self.addresses[src], mode))
        changed = [node for node, rules in wanted.items() if rules != self._rules[node]]

        def rewrite(node: str) -> None:
            _set_rules(wanted[node])
            # Each node as it is done: after a failure, the next call mends only the rest.
            self._rules[node] = wanted[node]
        run_in_namespaces([(self.namespaces[node], lambda n=node: rewrite(n))
                           for node in changed])

    def heal(self) -> None:
        """Undo every change, rewriting every node's filter whatever is believed of it."""
        with self._lock:
            self._cuts.clear()
            self._slow.clear()
            self._rules = {node: None for node in self.nodes}
            self._apply_cuts(self.cut_links())

    def _add_slow(self, change: Change) -> None:
        raise NetworkUnavailable(self.missing("latency"))

    def _remove_slow(self, change: Change) -> None:
        pass


# --- nftables, inside one namespace (called through run_in_namespace) -----------------------

def _nftables():
    from pyroute2.nftables.main import NFTables

    return NFTables(nfgen_family=NFPROTO_IPV4)


def _make_filter() -> None:
    """A table with an input chain that accepts everything until rules are added."""
    nft = _nftables()
    try:
        nft.table("add", name=TABLE)
        nft.chain("add", table=TABLE, name=CHAIN, hook="input", type="filter",
                  policy=NF_ACCEPT)
    finally:
        nft.close()


def _set_rules(rules: list[tuple[str, str]]) -> None:
    """Replace the chain's rules: one per (source address, mode); drops come first."""
    from pyroute2.nftables.expressions import genex, ipv4addr, verdict

    nft = _nftables()
    try:
        nft.rule("del", table=TABLE, chain=CHAIN)
        for address, mode in rules:
            action = verdict(code=NF_DROP) if mode == DROP else [genex("reject", {
                "type": NFT_REJECT_ICMP_UNREACH, "icmp_code": ICMP_PORT_UNREACHABLE})]
            nft.rule("add", table=TABLE, chain=CHAIN,
                     expressions=(ipv4addr(src=address), action))
    finally:
        nft.close()
