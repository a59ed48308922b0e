"""The data path: one proxied connection, its two links, and the toxic chain on each link.

Theory of operation
-------------------
A `Connection` joins two sockets, the client's (accepted by the proxy's listener) and the
server's (dialled to the proxy's upstream). Each socket is an asyncio protocol, a `Side`. Bytes
flow over two `Link`s: `upstream` (client -> server) and `downstream` (server -> client).

A link without a running toxic is the fast path: `Side.data_received` hands the bytes straight
to the other socket's `transport.write`, with no allocation, no timestamp and no task; TCP flow
control is the transports' own (a full write buffer pauses reading on the other side).

A link with running toxics has a chain: `Stub` -> `Stub` -> ... -> `Sink`. Each stub is one
toxic running on this link (its coroutine in a task of its own, so that toxics pipeline as in
Toxiproxy: a latency after a bandwidth limit delays without slowing the rate). Stubs pass
`Chunk`s forward with non-blocking `push`; the link bounds the bytes queued in its stubs and
pauses reading from its source while they exceed a high-water mark.

Toxicity is decided per connection, when a toxic starts on it (connection opened, toxic added or
updated): a toxic that loses the draw gets no stub on this connection at all.

Rebuilding the chain under traffic keeps every byte and the order of bytes: everything happens
synchronously in one event-loop step. A removed stub is cancelled, and what it held or had
queued moves to its successor before anything newer can arrive there; an updated stub puts what
it held back at the head of its own queue and starts again with the new attributes.

A toxic ends a connection by closing it (pending output flushed, then FIN) or by resetting it
(SO_LINGER 0, so the peer on the link's destination side sees a RST).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.proxy.toxics import DOWNSTREAM, UPSTREAM, Chunk, Toxic

if TYPE_CHECKING:  # pragma: no cover
    import random

    from harness.proxy.proxies import Proxy

log = logging.getLogger("harness.proxy")
ORDINARY_END = "both sides closed"     # a connection that ended as connections do

# Bytes queued inside a link's toxic chain above which its source stops being read, and below
# which reading resumes. Transport write buffers have their own limits on top of these.
QUEUE_HIGH = 256 * 1024
QUEUE_LOW = 64 * 1024

_TIMED_OUT = object()
_LINGER_ZERO = struct.pack("ii", 1, 0)


def _set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def _resolve(future: asyncio.Future, value: object = None) -> None:
    if not future.done():
        future.set_result(value)


def split_host_port(address: str) -> tuple[str, int]:
    """`"host:port"` or `"[v6]:port"` as (host, port); raises ValueError when malformed."""
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ValueError(f"address {address}: missing port in address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"address {address}: invalid port") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"address {address}: invalid port")
    return host, number


def join_host_port(host: str, port: int) -> str:
    """The inverse of `split_host_port`: IPv6 hosts go in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Stub:
    """One toxic running on one link of one connection: its queue, its task, its state.

    The methods below are what a toxic's `run` may use.
    """

    def __init__(self, link: Link, toxic: Toxic):
        self.link = link
        self.toxic = toxic
        self.rng: random.Random = link.conn.proxy.rng
        self.state: dict = {}
        self.queue: deque[Chunk] = deque()
        self.held: Chunk | None = None
        self.next: Stub | Sink = link.sink
        self._task: asyncio.Task | None = None
        self._waiter: asyncio.Future | None = None
        self._loop = link.loop

    # -- used by the link -------------------------------------------------------------------

    def push(self, chunk: Chunk) -> None:
        """Queue a chunk from the predecessor (never blocks)."""
        self.queue.append(chunk)
        if chunk.data is not None:
            self.link.queued += len(chunk.data)
        waiter = self._waiter
        if waiter is not None:
            _resolve(waiter)

    def start(self) -> None:
        """Run the toxic on this link, in a task of its own."""
        self._task = self._loop.create_task(self._run(), name=f"toxic {self.toxic.name}")

    async def _run(self) -> None:
        try:
            await self.toxic.run(self)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in a toxic must not take the server down
            log.exception("proxy %s: toxic %s failed", self.link.conn.proxy.name,
                          self.toxic.name)
            self.link.conn.close("toxic failed")

    def halt(self) -> None:
        """Stop the task; whatever it held goes back to the head of its queue."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.held is not None:
            self.queue.appendleft(self.held)
            if self.held.data is not None:
                self.link.queued += len(self.held.data)
            self.held = None

    def drain(self) -> list[Chunk]:
        """Halt, then give up every chunk still inside, oldest first."""
        self.halt()
        chunks = list(self.queue)
        self.queue.clear()
        self.link.queued -= sum(len(c.data) for c in chunks if c.data is not None)
        return chunks

    # -- used by toxics -----------------------------------------------------------------------

    def now(self) -> float:
        """The event loop's clock, in seconds (the clock chunks are stamped with)."""
        return self._loop.time()

    async def take(self, deadline: float | None = None) -> Chunk | None:
        """The next chunk, which the stub then holds; None if `deadline` passes first."""
        while not self.queue:
            waiter = self._waiter = self._loop.create_future()
            timer = None
            if deadline is not None:
                timer = self._loop.call_at(deadline, _resolve, waiter, _TIMED_OUT)
            try:
                outcome = await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
                if timer is not None:
                    timer.cancel()
            if outcome is _TIMED_OUT and not self.queue:
                return None
        chunk = self.queue.popleft()
        if chunk.data is not None:
            link = self.link
            link.queued -= len(chunk.data)
            if link.src_paused and link.queued <= QUEUE_LOW:
                link.maybe_resume()
        self.held = chunk
        return chunk

    def emit(self, chunk: Chunk) -> None:
        """Pass a chunk to the next stage; the stub holds nothing after this."""
        self.held = None
        self.next.push(chunk)

    def hold(self, chunk: Chunk) -> None:
        """Say what the toxic still holds (taken, not yet emitted) before it waits."""
        self.held = chunk

    def drop(self) -> None:
        """Forget the chunk held: it is swallowed."""
        self.held = None

    async def sleep_until(self, when: float) -> None:
        """Wait until the loop time `when` (returns at once when it has passed)."""
        delay = when - self._loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def close_connection(self, reason: str) -> None:
        """End the whole connection: what was emitted is flushed, then both sockets close."""
        self.link.conn.close(reason)

    def reset_connection(self, reason: str) -> None:
        """End the whole connection with a TCP RST towards this link's destination."""
        self.link.conn.reset(self.link.dst, reason)


class Sink:
    """The end of a chain: writes to the destination socket."""

    __slots__ = ("link",)

    def __init__(self, link: Link):
        self.link = link

    def push(self, chunk: Chunk) -> None:
        """Write a chunk to the destination socket (or half-close it at end of stream)."""
        link = self.link
        if link.closed:
            return
        if chunk.data is None:
            link.deliver_eof()
        elif chunk.data:
            link.dst.transport.write(chunk.data)


class Link:
    """One direction of one connection: its toxic chain and its flow control."""

    def __init__(self, conn: Connection, stream: str, src: Side, dst: Side):
        self.conn = conn
        self.stream = stream
        self.src = src
        self.dst = dst
        self.loop = conn.loop
        self.sink = Sink(self)
        self.head: Stub | Sink = self.sink
        self.stubs: list[Stub] = []
        self.plan: list[str] = []  # names of this stream's toxics, in chain order
        self.running: dict[str, Stub | None] = {}  # None: this connection drew "not toxic"
        self.queued = 0
        self.src_paused = False
        self.dst_blocked = False
        self.eof_delivered = False
        self.closed = False
        src.out = self
        dst.into = self
        self._rewire()
        early, src.early = src.early, None
        for data in early or ():  # some loops deliver data before reading can be paused
            self.feed(data)
        if src.early_eof:
            self.feed_eof()

    # -- data ----------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the source while toxics run (the fast path never comes here)."""
        if self.closed:
            return
        if self.head is self.sink:
            self.sink.push(Chunk(data, 0.0))
            return
        self.head.push(Chunk(data, self.loop.time()))
        if self.queued > QUEUE_HIGH:
            self._pause_src()

    def feed_eof(self) -> None:
        """The source shut its side down."""
        if self.closed:
            return
        self.src.forward = None
        self.head.push(Chunk(None, self.loop.time()))

    def deliver_eof(self) -> None:
        """The end of stream reached the sink: half-close the destination."""
        if self.eof_delivered or self.closed:
            return
        self.eof_delivered = True
        transport = self.dst.transport
        if transport.can_write_eof():
            try:
                transport.write_eof()
            except (OSError, RuntimeError):
                pass
        self.conn.link_finished()

    # -- flow control --------------------------------------------------------------------------

    def _pause_src(self) -> None:
        if not self.src_paused:
            self.src_paused = True
            self.src.transport.pause_reading()

    def maybe_resume(self) -> None:
        """Read from the source again once the chain and the destination have room."""
        if self.src_paused and not self.dst_blocked and self.queued <= QUEUE_LOW \
                and not self.closed:
            self.src_paused = False
            self.src.transport.resume_reading()

    def dst_paused(self) -> None:
        """The destination's write buffer is full: stop reading the source."""
        self.dst_blocked = True
        self._pause_src()

    def dst_resumed(self) -> None:
        """The destination's write buffer drained."""
        self.dst_blocked = False
        self.maybe_resume()

    # -- the chain -----------------------------------------------------------------------------

    def _rewire(self) -> None:
        stubs = self.stubs
        for before, after in itertools.pairwise(stubs):
            before.next = after
        if stubs:
            stubs[-1].next = self.sink
            self.head = stubs[0]
            self.src.forward = None
        else:
            self.head = self.sink
            fast = not self.closed and not self.eof_delivered and self.dst.transport is not None
            self.src.forward = self.dst.transport.write if fast else None

    def _draw_and_start(self, toxic: Toxic) -> None:
        """Run `toxic` on this connection with probability `toxicity`."""
        if not self.conn.proxy.rng.random() < toxic.toxicity:
            self.running[toxic.name] = None
            return
        stub = Stub(self, toxic)
        order = {name: i for i, name in enumerate(self.plan)}
        rank = order[toxic.name]
        at = sum(1 for s in self.stubs if order[s.toxic.name] < rank)
        self.stubs.insert(at, stub)
        self.running[toxic.name] = stub
        self._rewire()
        stub.start()

    def _detach(self, stub: Stub) -> None:
        """Take a stub out of the chain; what it held moves on to its successor, in order."""
        at = self.stubs.index(stub)
        del self.stubs[at]
        self._rewire()
        successor = self.stubs[at] if at < len(self.stubs) else self.sink
        for chunk in stub.drain():
            successor.push(chunk)
        if self.queued > QUEUE_HIGH:
            self._pause_src()
        else:
            self.maybe_resume()

    def add(self, toxic: Toxic) -> None:
        """A toxic was added to the proxy (or the connection opened with it)."""
        if self.closed:
            return
        self.plan.append(toxic.name)
        self._draw_and_start(toxic)

    def update(self, toxic: Toxic) -> None:
        """A toxic's attributes or toxicity changed: it starts again, with a fresh draw."""
        if self.closed or toxic.name not in self.running:
            return
        stub = self.running[toxic.name]
        if stub is None:
            self._draw_and_start(toxic)
            return
        stub.halt()
        if self.conn.proxy.rng.random() < toxic.toxicity:
            stub.toxic = toxic
            stub.start()
        else:
            self.running[toxic.name] = None
            self._detach(stub)

    def remove(self, name: str) -> None:
        """A toxic was removed from the proxy."""
        if self.closed or name not in self.running:
            return
        stub = self.running.pop(name)
        self.plan.remove(name)
        if stub is not None:
            self._detach(stub)
            stub.toxic.removed(stub)

    def shutdown(self) -> None:
        """Stop every toxic task; nothing more moves on this link."""
        self.closed = True
        self.src.forward = None
        for stub in self.stubs:
            stub.halt()
        self.stubs.clear()
        self.head = self.sink


class Side(asyncio.Protocol):
    """One socket of a proxied connection, as an asyncio protocol.

    `forward` is set while the link out of this side has no toxic running: the fast path.
    """

    def __init__(self, conn: Connection | None):
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.forward: Callable[[bytes], None] | None = None
        self.out: Link | None = None  # the link reading from this socket
        self.into: Link | None = None  # the link writing to this socket
        self.early: list[bytes] | None = None  # received before the links were wired
        self.early_eof = False
        self.peername = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        _set_nodelay(transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peername = join_host_port(str(peer[0]), peer[1])

    def data_received(self, data: bytes) -> None:
        forward = self.forward
        if forward is not None:
            forward(data)
        elif self.out is not None:
            self.out.feed(data)
        elif self.early is None:
            self.early = [data]
        else:
            self.early.append(data)

    def eof_received(self) -> bool:
        if self.out is not None:
            self.out.feed_eof()
        else:
            self.early_eof = True
        return True  # keep the other direction open: half-closes pass through

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.conn.side_lost(self, exc)

    def pause_writing(self) -> None:
        if self.into is not None:
            self.into.dst_paused()

    def resume_writing(self) -> None:
        if self.into is not None:
            self.into.dst_resumed()


class ClientSide(Side):
    """The accepted socket; opening it starts the connection to the upstream."""

    def __init__(self, proxy: Proxy, generation: int):
        super().__init__(None)
        self.proxy = proxy
        self.generation = generation

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self.proxy.serving(self.generation):
            transport.abort()  # accepted just as the listener was being closed
            return
        transport.pause_reading()  # type: ignore[attr-defined]
        self.conn = Connection(self.proxy, self)


class Connection:
    """A client connection through a proxy, from accept to close."""

    def __init__(self, proxy: Proxy, client: ClientSide):
        self.proxy = proxy
        self.loop = asyncio.get_running_loop()
        self.client = client
        self.server: Side | None = None
        self.up: Link | None = None
        self.down: Link | None = None
        self.closed = False
        proxy.connections.add(self)
        # Ordinary connections are many (clients redirected from node to node during an
        # election open hundreds a second): logged at debug level, to keep run logs small.
        log.debug("proxy %s: accepted %s, dialling %s", proxy.name, client.peername,
                  proxy.upstream)
        self._dial = self.loop.create_task(self._connect(proxy.upstream))

    async def _connect(self, upstream: str) -> None:
        try:
            host, port = split_host_port(upstream)
            await self.loop.create_connection(lambda: _ServerSide(self), host, port)
        except asyncio.CancelledError:
            raise
        except (OSError, ValueError) as exc:
            # A node that is down is dialled by every client at its rate: one line per proxy
            # every few seconds says so, with how many attempts failed meanwhile.
            failed = _UNREACHABLE.note(self.proxy.name, self.loop.time())
            if failed:
                log.warning("proxy %s: cannot reach upstream %s: %s%s", self.proxy.name,
                            upstream, exc, f" ({failed - 1} more attempts failed since the "
                            f"last report)" if failed > 1 else "")
            self.close("upstream unreachable")

    def upstream_made(self, server: Side) -> None:
        """The upstream socket is open: wire the links, apply the toxics, start reading."""
        if self.closed:
            server.transport.abort()
            return
        self.server = server
        self.up = Link(self, UPSTREAM, self.client, server)
        self.down = Link(self, DOWNSTREAM, server, self.client)
        for toxic in self.proxy.toxic_chain():
            self.link(toxic.stream).add(toxic)
        if not self.up.src_paused:
            self.client.transport.resume_reading()

    def link(self, stream: str) -> Link:
        """The link carrying `stream` ("upstream" or "downstream")."""
        return self.up if stream == UPSTREAM else self.down  # type: ignore[return-value]

    def links(self) -> tuple[Link, ...]:
        """The links wired so far (none while the upstream is being dialled)."""
        return tuple(link for link in (self.up, self.down) if link is not None)

    def link_finished(self) -> None:
        """Both directions delivered their end of stream: the connection is over."""
        if self.up is not None and self.down is not None \
                and self.up.eof_delivered and self.down.eof_delivered:
            self.close(ORDINARY_END)

    def _end(self, reason: str) -> bool:
        if self.closed:
            return False
        self.closed = True
        self._dial.cancel()
        for link in self.links():
            link.shutdown()
        self.proxy.connections.discard(self)
        log.log(logging.DEBUG if reason == ORDINARY_END else logging.INFO,
                "proxy %s: closed %s (%s)", self.proxy.name, self.client.peername, reason)
        return True

    def close(self, reason: str) -> None:
        """Flush what was written, then close both sockets."""
        if self._end(reason):
            for side in (self.client, self.server):
                if side is not None and side.transport is not None:
                    side.transport.close()

    def abort(self, reason: str) -> None:
        """Close both sockets at once, dropping anything not yet sent."""
        if self._end(reason):
            for side in (self.client, self.server):
                if side is not None and side.transport is not None:
                    side.transport.abort()

    def reset(self, side: Side, reason: str) -> None:
        """Send a RST to `side`'s peer; close the other side normally."""
        if not self._end(f"reset by {reason}"):
            return
        if side.transport is not None:
            sock = side.transport.get_extra_info("socket")
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            except (OSError, AttributeError):
                pass
            side.transport.abort()
        other = self.server if side is self.client else self.client
        if other is not None and other.transport is not None:
            other.transport.close()

    def side_lost(self, side: Side, exc: Exception | None) -> None:
        """A socket closed under us (peer reset, or closed after our half-close)."""
        if not self.closed:
            which = "client" if side is self.client else "upstream"
            self.close(f"{which} {'error: ' + str(exc) if exc else 'closed'}")


class _ServerSide(Side):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.conn.upstream_made(self)  # type: ignore[union-attr]


class _Throttle:
    """Counts repeated events per name and lets one report through every `every` seconds."""

    def __init__(self, every: float):
        self.every = every
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def note(self, name: str, now: float) -> int:
        """Count one event; returns how many to report now (0: stay quiet)."""
        self._count[name] = self._count.get(name, 0) + 1
        last = self._last.get(name)
        if last is not None and now - last < self.every:
            return 0
        self._last[name] = now
        count, self._count[name] = self._count[name], 0
        return count


_UNREACHABLE = _Throttle(every=5.0)
