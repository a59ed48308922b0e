"""refnode's real runtime: one asyncio process around the pure core.

The runtime owns everything the core may not touch: the clock (with the skew and drift the
admin call sets), TCP for clients and peers, the write-ahead log, and timers. Its loop is the
core's contract carried out:

1. every input (a peer message, a client request, a timer) goes to the core with `now`;
2. the bundle's hard state and log changes are written to the WAL at once (unsynced);
3. once per turn of the event loop, one `sync()` makes everything written durable, and only
   then are the turn's messages and replies sent (persist before send, with group commit: all
   the requests that arrived while the disk was busy share the next sync).

Peers are reached through the addresses the configuration gives (in a faultline cluster, the
proxies of the directed links): each node dials each peer and only ever writes on that
connection, so a directed link carries one direction of traffic and a one-way partition cuts
exactly one direction. Messages to an unreachable peer are dropped: the protocol resends.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import os
import random
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from refnode.config import ClusterConfig
from refnode.core import Core, Effects
from refnode.frames import (MAX_FRAME_BYTES, FrameError, RequestError, encode_frame,
                            read_frame, validate_request)
from refnode.messages import (BAD_REQUEST, PEER_MESSAGE_TYPES, ClientReply, ClientRequest,
                              Entry, MessageError, message_from_dict)
from refnode.peerauth import AuthError, challenge, hello, peer_key, verify
from refnode.wal import LOG_NAME, WriteAheadLog

log = logging.getLogger("refnode")

PEER_QUEUE_LIMIT = 4096          # messages held for a peer whose connection is down or slow
STABLE_LINK_SECONDS = 1.0   # a link up this long was a good one
RECONNECT_DELAY = (0.01, 0.2)    # first and longest pause between dial attempts
# How long either side of a new peer connection waits for the other's part of the handshake
# (a connection made while a partition drops its bytes is given up and dialled again).
HANDSHAKE_TIMEOUT = 0.5
REFUSAL_LOG_EVERY = 60.0         # seconds between log lines about one kind of refused peer
REPLY_BUFFER_LIMIT = 1 << 20     # bytes of replies a client has not read before it is not read
# In a data directory while a node rebuilt from nothing has not yet heard a leader (it must
# not vote until then, across restarts too).
REBUILDING_NAME = "rebuilding"


@dataclass(frozen=True)
class ClientLimits:
    """What one node grants its clients (the cluster file's "client_limits"): `connections`
    open at once, `pending` requests unanswered on one connection before it is read no
    further (backpressure: a client pipelining without reading replies waits, and others are
    served meanwhile), and `idle_timeout` seconds without a request before a connection with
    nothing pending is closed."""

    connections: int = 1024
    pending: int = 256
    idle_timeout: float = 300.0

    @classmethod
    def from_dict(cls, data: Any) -> "ClientLimits":
        """Limits from the cluster file; ValueError naming a bad field."""
        data = data or {}
        if not isinstance(data, dict) or set(data) - {"connections", "pending",
                                                      "idle_timeout"}:
            raise ValueError(f"client_limits takes connections, pending and idle_timeout, "
                             f"got {data!r}")
        limits = cls(**data)
        for name in ("connections", "pending"):
            value = getattr(limits, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"client_limits.{name} must be an int >= 1, got {value!r}")
        if type(limits.idle_timeout) not in (int, float) or not limits.idle_timeout > 0:
            raise ValueError(f"client_limits.idle_timeout must be seconds > 0, got "
                             f"{limits.idle_timeout!r}")
        return limits


class NodeClock:
    """The node's own clock: a monotonic reading that the admin call can skew and make drift.

    `now()` = anchor + (monotonic - anchor's monotonic) * rate + offset; changing the rate
    re-anchors, so time never jumps except by the offset asked for."""

    def __init__(self, source=time.monotonic):
        self._source = source
        self._anchor_real = source()
        self._anchor_value = self._anchor_real
        self.rate = 1.0
        self.offset = 0.0

    def now(self) -> float:
        return (self._anchor_value + (self._source() - self._anchor_real) * self.rate
                + self.offset)

    def adjust(self, offset: float | None = None, rate: float | None = None) -> None:
        """Set the skew (seconds added) and/or the drift (clock rate; 1.0 is true time)."""
        if rate is not None:
            real = self._source()
            self._anchor_value = self._anchor_value + (real - self._anchor_real) * self.rate
            self._anchor_real = real
            self.rate = rate
        if offset is not None:
            self.offset = offset

    def seconds_until(self, deadline: float) -> float:
        """Real seconds until this clock reads `deadline`."""
        return max(0.0, (deadline - self.now()) / self.rate)


@dataclass
class NodeSpec:
    """Where one node listens and how it reaches its peers (from the cluster file)."""

    id: str
    client: tuple[str, int]
    peer: tuple[str, int]
    peers: dict[str, tuple[str, int]]
    data_dir: Path


@dataclass
class ClusterFile:
    """The cluster file every node of a cluster is started with (JSON; see `load`)."""

    config: ClusterConfig
    nodes: dict[str, NodeSpec]
    admin_token: str | None = None
    seed: int = 0
    # "group": a batch of writes shares one sync before any of it is acknowledged;
    # "every": each write is synced on its own.
    fsync: str = "group"
    # Addresses besides loopback that admin calls may come from (a harness that reaches the
    # node over a bridge, from outside the node's network namespace).
    admin_hosts: tuple[str, ...] = ()
    client_limits: ClientLimits = field(default_factory=ClientLimits)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "ClusterFile":
        """Read a cluster file; ValueError with a one-line reason if it is malformed.

        Format: {"cluster": <ClusterConfig.to_dict()>, "seed": int, "admin_token": str,
        "fsync": "group" | "every", "admin_hosts": [address, ...],
        "client_limits": {"connections": int, "pending": int, "idle_timeout": seconds},
        "nodes": {id: {"client": "host:port", "peer": "host:port",
                       "peers": {id: "host:port"}, "data_dir": path}}}
        """
        try:
            data = orjson.loads(Path(path).read_bytes())
            config = ClusterConfig.from_dict(data["cluster"])
            nodes = {}
            for node_id, spec in data["nodes"].items():
                nodes[node_id] = NodeSpec(
                    node_id, _address(spec["client"]), _address(spec["peer"]),
                    {p: _address(a) for p, a in spec.get("peers", {}).items()},
                    Path(spec["data_dir"]))
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the cluster file: {exc.strerror}") from None
        except (KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a cluster file ({type(exc).__name__}: {exc})"
                             ) from None
        fsync = data.get("fsync", "group")
        if fsync not in ("group", "every"):
            raise ValueError(f"{path}: fsync must be 'group' or 'every', got {fsync!r}")
        admin_hosts = data.get("admin_hosts", [])
        try:
            admin_hosts = tuple(str(ipaddress.ip_address(h)) for h in admin_hosts)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: admin_hosts must list IP addresses, got "
                             f"{admin_hosts!r}") from None
        try:
            limits = ClientLimits.from_dict(data.get("client_limits"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        return cls(config, nodes, data.get("admin_token"), int(data.get("seed", 0)), fsync,
                   admin_hosts, limits)


def _address(text: str) -> tuple[str, int]:
    host, port = str(text).rsplit(":", 1)
    return host, int(port)


class PeerLink:
    """The outgoing connection to one peer: a queue, a writer task, reconnection."""

    def __init__(self, node: "NodeServer", peer: str, address: tuple[str, int]):
        self.node = node
        self.peer = peer
        self.address = address
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(PEER_QUEUE_LIMIT)
        self.task: asyncio.Task | None = None

    def send(self, frame: bytes) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            pass     # the peer is far behind or away: the protocol will resend

    async def run(self) -> None:
        delay = RECONNECT_DELAY[0]
        while True:
            try:
                reader, writer = await asyncio.open_connection(*self.address)
            except OSError:
                self._drain()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_DELAY[1])
                continue
            connected_at = asyncio.get_running_loop().time()
            _nodelay(writer)
            if not await self._authenticate(reader, writer):
                writer.close()
                self._drain()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_DELAY[1])
                continue
            closed = asyncio.create_task(reader.read())   # EOF: the link went down
            try:
                while not closed.done():
                    getter = asyncio.ensure_future(self.queue.get())
                    done, _ = await asyncio.wait({getter, closed},
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        getter.cancel()
                        break
                    batch = [getter.result()]
                    while not self.queue.empty():
                        batch.append(self.queue.get_nowait())
                    writer.write(b"".join(batch))
                    await writer.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                closed.cancel()
                writer.close()
            self._drain()
            # A link that closes at once (a proxy accepts, then finds the peer down) is a
            # failed dial too: back off, rather than redial hundreds of times a second.
            if asyncio.get_running_loop().time() - connected_at < STABLE_LINK_SECONDS:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_DELAY[1])
            else:
                delay = RECONNECT_DELAY[0]

    async def _authenticate(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> bool:
        """Answer the peer's challenge (see `refnode.peerauth`); False when the connection
        gave no challenge in time (a partition dropping its bytes) or a malformed one."""
        node = self.node
        if node.peer_key is None:
            return True
        try:
            frame = await asyncio.wait_for(read_frame(reader), HANDSHAKE_TIMEOUT)
            writer.write(encode_frame(hello(node.peer_key, frame, node.id, self.peer)))
            return True
        except AuthError as exc:
            node.refused("a peer's challenge", exc)
        except (asyncio.TimeoutError, FrameError, OSError, ConnectionError,
                asyncio.IncompleteReadError):
            pass
        return False

    def _drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


class NodeServer:
    """One refnode process: the core, its WAL, its clock, its sockets."""

    def __init__(self, node_id: str, cluster: ClusterFile, *, data_dir: Path | None = None,
                 rebuild: bool = False):
        if node_id not in cluster.nodes:
            raise ValueError(f"node {node_id!r} is not in the cluster file "
                             f"({', '.join(cluster.nodes)})")
        self.id = node_id
        self.cluster = cluster
        self.spec = cluster.nodes[node_id]
        self.config = cluster.config
        self.data_dir = Path(data_dir or self.spec.data_dir)
        self.rebuild = rebuild
        self._rebuilding = False
        self.clock = NodeClock()
        # Every random choice of the node comes from the run's seed and the node's name.
        self.rng = random.Random(f"{cluster.seed}/{node_id}")
        # Peers prove they hold the cluster's secret (none: a cluster file without one, as
        # hand-written test clusters may be, trusts every peer connection).
        self.peer_key = peer_key(cluster.admin_token) if cluster.admin_token else None
        self._refusals: dict[str, float] = {}       # kind of refusal -> when last logged
        self.wal: WriteAheadLog | None = None
        self.core: Core | None = None
        self._links: dict[str, PeerLink] = {}
        self._clients: dict[int, asyncio.StreamWriter] = {}
        self._pending: dict[int, int] = {}          # client -> requests not yet answered
        self._room: dict[int, asyncio.Event] = {}   # client -> set when it may send more
        self._next_client = 0
        self._outbox: list[Effects] = []
        self._flush_scheduled = False
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._role = (None, None)
        self._commit_seen = 0           # the commit index after the last bundle handled

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT; then sync, close and return."""
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_exception)
        if self.rebuild:
            self._set_log_aside()
        self._rebuilding = (self.data_dir / REBUILDING_NAME).exists()
        self.wal = WriteAheadLog.open(self.data_dir,
                                      fsync="no-fsync" not in self.config.bugs,
                                      group_commit=self.cluster.fsync == "group")
        if self.wal.recovery.bytes_cut:
            log.warning("wal recovery cut %d bytes: %s", self.wal.recovery.bytes_cut,
                        self.wal.recovery.reason)
        entries = [Entry(e.index, e.term, **e.command) for e in self.wal.entries(1)]
        self.core = Core.restore(self.id, self.config, self.rng, self.clock.now(),
                                 self.wal.term, self.wal.vote, entries,
                                 rebuilt=self._rebuilding)
        log.info("%s starting: term %d, vote %s, %d log entries", self.id, self.wal.term,
                 self.wal.vote, len(entries))
        for peer, address in self.spec.peers.items():
            link = PeerLink(self, peer, address)
            link.task = asyncio.create_task(link.run())
            self._links[peer] = link
        client_server = await asyncio.start_server(self._serve_client, *self.spec.client,
                                                   limit=MAX_FRAME_BYTES)
        peer_server = await asyncio.start_server(self._serve_peer, *self.spec.peer,
                                                 limit=MAX_FRAME_BYTES)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        timers = asyncio.create_task(self._run_timers())
        log.info("%s ready: clients on %s:%d, peers on %s:%d", self.id, *self.spec.client,
                 *self.spec.peer)
        await self._stopping.wait()
        log.info("%s stopping", self.id)
        timers.cancel()
        for server in (client_server, peer_server):
            server.close()
        for link in self._links.values():
            link.task.cancel()
        for writer in list(self._clients.values()):
            writer.close()
        self.wal.sync()
        self.wal.close()

    # --- the core's contract --------------------------------------------------------------

    def _handle(self, effects: Effects) -> None:
        """Persist a bundle now; send its messages after the next sync (see the module)."""
        wal = self.wal
        if effects.hard_state is not None:
            wal.set_hard_state(effects.hard_state.term, effects.hard_state.vote)
        if effects.truncate_from is not None and effects.truncate_from <= wal.last_index:
            # Cutting an uncommitted conflicting suffix is routine; cutting what was committed
            # happens only in async mode or with a planted bug, and a run's reader should see it.
            committed = effects.truncate_from <= self._commit_seen
            log.log(logging.WARNING if committed else logging.INFO,
                    "%s cut its log from index %d (last index %d, commit index was %d)%s",
                    self.id, effects.truncate_from, wal.last_index, self._commit_seen,
                    ": committed entries lost" if committed else "")
            wal.truncate_from(effects.truncate_from)
        if effects.append:
            wal.append([(e.index, e.term, {"op": e.op, "key": e.key, "value": e.value})
                        for e in effects.append])
        if effects.messages or effects.replies:
            self._outbox.append(effects)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)
        self._commit_seen = self.core.commit_index
        self._wake.set()
        self._log_role()
        if self._rebuilding and not self.core.abstaining:
            # The leader's term is in the log's hard state: made durable before the node
            # may vote again, even after a restart.
            self.wal.sync()
            (self.data_dir / REBUILDING_NAME).unlink(missing_ok=True)
            self._rebuilding = False
            log.info("%s rebuilt: following %s in term %d, voting again", self.id,
                     self.core.leader, self.core.term)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.wal.needs_sync:
            self.wal.sync()
        outbox, self._outbox = self._outbox, []
        for effects in outbox:
            for message in effects.messages:
                link = self._links.get(message.dst)
                if link is not None:
                    frame = self._encode(message, f"a {message.TYPE} to {message.dst}")
                    if frame is not None:
                        link.send(frame)
            for (client, _request_id), reply in effects.replies:
                self._answered(client)
                writer = self._clients.get(client)
                if writer is not None and not writer.is_closing():
                    frame = self._encode(reply, f"a reply to client {client}")
                    if frame is not None:
                        writer.write(frame)

    def _encode(self, message, what: str) -> bytes | None:
        """`message` as a frame, or None (logged, at most once a minute per kind of message)
        when it cannot be one: a message too large for a frame is dropped alone, never with
        the rest of the outbox (the heartbeats and replies behind it)."""
        try:
            return encode_frame(message.to_dict())
        except (ValueError, TypeError) as exc:      # too large for a frame, or not JSON
            self._note(f"unsendable {what.split(' to ')[0]}",
                       f"{self.id} dropped {what}: {exc}")
            return None

    def _log_role(self) -> None:
        core = self.core
        role = (core.role, core.term)
        if role != self._role:
            self._role = role
            log.info("%s is %s in term %d (leader %s)", self.id, core.role, core.term,
                     core.leader)

    async def _run_timers(self) -> None:
        while True:
            self._wake.clear()
            delay = self.clock.seconds_until(self.core.next_deadline)
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=min(delay, 1.0))
                    continue      # something changed the deadline: recompute it
                except asyncio.TimeoutError:
                    pass
            self._handle(self.core.tick(self.clock.now()))

    # --- peers ----------------------------------------------------------------------------

    async def _serve_peer(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            sender = None
            if self.peer_key is not None:
                offer = challenge()
                writer.write(encode_frame(offer))
                hello_frame = await asyncio.wait_for(read_frame(reader), HANDSHAKE_TIMEOUT)
                sender = verify(self.peer_key, offer["nonce"], hello_frame, self.id,
                                self.spec.peers)
            while True:
                frame = await read_frame(reader)
                if frame is None:
                    break
                message = message_from_dict(frame)
                if not isinstance(message, PEER_MESSAGE_TYPES):
                    raise MessageError(f"a peer sent a {frame.get('type')!r} message")
                if sender is not None and message.src != sender:
                    raise AuthError(f"{sender} sent a message as {str(message.src)[:40]!r}",
                                    "impersonation")
                self._handle(self.core.receive(message, self.clock.now()))
        except AuthError as exc:
            self.refused("a peer connection", exc)
        except asyncio.TimeoutError:
            pass          # no hello in time: a partition, or not a peer at all
        except (FrameError, MessageError) as exc:
            log.warning("%s: dropping a peer connection: %s", self.id, exc)
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # The node is stopping. Ended quietly: a connection handler that ends cancelled
            # makes asyncio's stream callback log a traceback on every normal stop.
            pass
        finally:
            writer.close()

    def refused(self, what: str, error: AuthError) -> None:
        """Log a refused peer connection, once a minute at most for each kind of reason (a
        forger retrying in a loop must not fill the log)."""
        self._note(f"{what}: {error.kind}", f"{self.id} refused {what}: {error}")

    # --- clients --------------------------------------------------------------------------

    async def _serve_client(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        limits = self.cluster.client_limits
        if len(self._clients) >= limits.connections:
            self._note("clients", f"{self.id} refused a client connection: "
                       f"{limits.connections} are open, the most it takes")
            writer.write(encode_frame(_bad_request(None, self, "too many client connections")))
            writer.close()
            return
        self._next_client += 1
        client = self._next_client
        self._clients[client] = writer
        self._pending[client] = 0
        room = self._room[client] = asyncio.Event()
        _nodelay(writer)
        active = [asyncio.get_running_loop().time()]      # when it last sent a request
        watchdog = asyncio.create_task(self._close_when_idle(client, writer, active))
        try:
            while True:
                while self._pending[client] >= limits.pending:
                    room.clear()
                    await room.wait()
                if writer.transport.get_write_buffer_size() > REPLY_BUFFER_LIMIT:
                    await writer.drain()        # a client that does not read its replies
                frame = await read_frame(reader)
                active[0] = asyncio.get_running_loop().time()
                if frame is None:
                    # Closed for writing (or entirely): what it asked is still answered.
                    async with asyncio.timeout(self.config.request_timeout + 1.0):
                        while self._pending[client]:
                            room.clear()
                            await room.wait()
                    await writer.drain()
                    break
                self._client_frame(client, frame, writer)
        except FrameError as exc:
            # The byte stream cannot be trusted past a bad frame: say why, then hang up.
            writer.write(encode_frame(_bad_request(None, self, str(exc))))
        except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass          # the node is stopping (see _serve_peer)
        finally:
            watchdog.cancel()
            self._clients.pop(client, None)
            self._pending.pop(client, None)
            self._room.pop(client, None)
            writer.close()

    async def _close_when_idle(self, client: int, writer: asyncio.StreamWriter,
                               active: list[float]) -> None:
        """Close the connection once it has sent nothing for the idle timeout and is owed
        nothing (a read is never cut short: the reader then sees the end of the stream)."""
        loop = asyncio.get_running_loop()
        idle = self.cluster.client_limits.idle_timeout
        while True:
            await asyncio.sleep(max(active[0] + idle - loop.time(), idle / 10))
            if self._pending.get(client) == 0 and loop.time() - active[0] >= idle:
                writer.close()
                return

    def _set_log_aside(self) -> None:
        """The operator's rebuild: move the log aside (kept, for inspection) and mark the
        directory as rebuilding, durably, before the node starts from nothing."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        marker = self.data_dir / REBUILDING_NAME
        with open(marker, "wb") as f:
            os.fsync(f.fileno())
        damaged = self.data_dir / LOG_NAME
        if damaged.exists():
            aside = self.data_dir / f"{LOG_NAME}.set-aside-{time.strftime('%Y%m%dT%H%M%S')}"
            damaged.rename(aside)
            log.warning("%s rebuilding from the leader: its log is set aside as %s; it votes "
                        "again once it has heard a leader", self.id, aside.name)
        fd = os.open(self.data_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """asyncio's report of an error it caught: an accept that failed for want of file
        descriptors (a flood of connections) is one line a minute, not a traceback each time
        the loop retries it; anything else as asyncio would report it."""
        if "out of system resource" in context.get("message", ""):
            self._note("accept", f"{self.id} cannot accept connections: "
                       f"{context.get('exception') or context['message']}")
            return
        loop.default_exception_handler(context)

    def _answered(self, client: int) -> None:
        """A reply to `client` is on its way: one request fewer outstanding."""
        if self._pending.get(client):
            self._pending[client] -= 1
            self._room[client].set()

    def _note(self, kind: str, line: str) -> None:
        """Log `line` at most once a minute for each `kind` (refusals a flood repeats,
        messages too large to send)."""
        now = asyncio.get_running_loop().time()
        if now - self._refusals.get(kind, -math.inf) >= REFUSAL_LOG_EVERY:
            self._refusals[kind] = now
            log.warning("%s", line)

    def _client_frame(self, client: int, frame: dict, writer: asyncio.StreamWriter) -> None:
        try:
            request = validate_request(frame)
        except RequestError as exc:
            writer.write(encode_frame(_bad_request(exc.request_id, self, str(exc))))
            return
        if request["op"] == "admin":
            writer.write(encode_frame(self._admin(request, writer)))
            return
        core_request = ClientRequest(request["op"], request.get("key"), request.get("value"),
                                     request.get("read_mode", "leader"),
                                     request.get("min_version"), request["id"])
        self._pending[client] = self._pending.get(client, 0) + 1
        self._handle(self.core.client_request(core_request, (client, request["id"]),
                                              self.clock.now()))

    def _admin(self, request: dict, writer: asyncio.StreamWriter) -> dict:
        peer = writer.get_extra_info("peername")
        host = peer[0] if peer else ""
        token = self.cluster.admin_token
        trusted = _is_loopback(host) or host in self.cluster.admin_hosts
        if not trusted or not token or request.get("token") != token:
            return _bad_request(request["id"], self, "admin calls need the cluster's token "
                                "and a loopback connection (or one from admin_hosts)")
        self.clock.adjust(request.get("clock_offset"), request.get("clock_rate"))
        log.info("%s clock: offset %+.3f s, rate %.4f", self.id, self.clock.offset,
                 self.clock.rate)
        self._wake.set()
        return ClientReply(True, "status", self.id, self.core.term, self.core.leader,
                           {"clock_offset": self.clock.offset, "clock_rate": self.clock.rate},
                           id=request["id"]).to_dict()


def _bad_request(request_id, node: NodeServer, reason: str) -> dict:
    core = node.core
    return {"type": "reply", "ok": False, "op": "status", "node": node.id,
            "term": core.term if core else 0, "leader": core.leader if core else None,
            "value": None, "version": 0, "error": f"{BAD_REQUEST}: {reason}",
            "definite": True, "id": request_id}


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
