"""The toxics: what each one does to one direction of one proxied connection.

A toxic is two things at once:

- an API record (`name`, `type`, `stream`, `toxicity`, `attributes`), immutable: an update
  through the API builds a new record with `changed()`;
- a behaviour, `run(stub)`, the coroutine that moves chunks through one link of one connection.

The `stub` is the toxic's seat in a connection's chain (see `harness.proxy.link.Stub`). A toxic
takes a chunk with `await stub.take()`, then either passes it on (`stub.emit`), drops it
(`stub.drop`) or, while it waits before passing it on, says what it still holds
(`stub.hold`), so that nothing is lost when the chain is rebuilt under it (a toxic added,
updated or removed while data is in flight). A chunk whose `data` is None is the end of the
stream. Per-connection memory that must survive such a rebuild lives in `stub.state`.

Every attribute is an integer; a missing one is 0 (as in Toxiproxy). Times are milliseconds,
except the slicer's delay (microseconds); rates are KB/s (1 KB = 1000 bytes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from harness.proxy.link import Stub

UPSTREAM = "upstream"
DOWNSTREAM = "downstream"
STREAMS = (UPSTREAM, DOWNSTREAM)


class Chunk:
    """A piece of one direction's byte stream, stamped with the loop time it entered the proxy.

    `data` None marks the end of the stream (the peer shut its side down).
    """

    __slots__ = ("data", "time")

    def __init__(self, data: bytes | None, time: float):
        self.data = data
        self.time = time

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Chunk({self.data!r}, {self.time:.6f})"


class Toxic:
    """Base of every toxic: the API record, and a default behaviour that passes data through."""

    type_name: ClassVar[str] = ""
    attribute_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, stream: str, toxicity: float,
                 attributes: Mapping[str, int] | None = None):
        self.name = name
        self.stream = stream
        self.toxicity = float(toxicity)
        given = attributes or {}
        self.attributes: dict[str, int] = {key: int(given.get(key, 0))
                                           for key in self.attribute_names}

    def changed(self, attributes: Mapping[str, int] | None, toxicity: float | None) -> Toxic:
        """A copy with some attributes and/or the toxicity replaced (the API's update)."""
        merged = dict(self.attributes)
        merged.update({k: v for k, v in (attributes or {}).items() if k in self.attribute_names})
        return type(self)(self.name, self.stream,
                          self.toxicity if toxicity is None else toxicity, merged)

    def to_json(self) -> dict[str, Any]:
        """The toxic as the API shows it."""
        return {"name": self.name, "type": self.type_name, "stream": self.stream,
                "toxicity": self.toxicity, "attributes": dict(self.attributes)}

    async def run(self, stub: Stub) -> None:
        """Move chunks through this toxic until cancelled; the default passes them on."""
        while True:
            stub.emit(await stub.take())

    def removed(self, stub: Stub) -> None:
        """Called when the toxic is removed from a connection it was running on."""


class Noop(Toxic):
    """Does nothing; useful to test toxicity and the API itself."""

    type_name = "noop"


class Latency(Toxic):
    """Delays each chunk by `latency` ms plus a uniform draw in [-`jitter`, +`jitter`) ms.

    The delay counts from when the chunk entered the proxy, so a steady stream keeps its
    spacing; chunks never overtake each other. The chunk's stamp moves by the delay, so two
    latency toxics in a chain add up.
    """

    type_name = "latency"
    attribute_names = ("latency", "jitter")

    async def run(self, stub: Stub) -> None:
        latency = self.attributes["latency"] / 1000.0
        jitter = self.attributes["jitter"] / 1000.0
        rng = stub.rng
        while True:
            chunk = await stub.take()
            if chunk.data is not None:
                delay = latency
                if jitter > 0:
                    delay += (rng.random() * 2.0 - 1.0) * jitter
                due = chunk.time + delay
                await stub.sleep_until(due)
                chunk = Chunk(chunk.data, due)
            stub.emit(chunk)


class Bandwidth(Toxic):
    """Limits the throughput to `rate` KB/s; 0 or less means no limit.

    Each piece of at most 100 ms worth of data goes out once the link would have had time to
    send it; an idle link earns no credit for a later burst.
    """

    type_name = "bandwidth"
    attribute_names = ("rate",)

    async def run(self, stub: Stub) -> None:
        rate = self.attributes["rate"]
        if rate <= 0:
            await super().run(stub)
            return
        bytes_per_second = rate * 1000.0
        piece = max(1, rate * 100)
        free_at = stub.now()
        while True:
            chunk = await stub.take()
            data = chunk.data
            if data is None:
                stub.emit(chunk)
                continue
            while data:
                size = min(len(data), piece)
                free_at = max(free_at, stub.now()) + size / bytes_per_second
                stub.hold(Chunk(data, chunk.time))
                await stub.sleep_until(free_at)
                stub.emit(Chunk(data[:size], chunk.time))
                data = data[size:]


class SlowClose(Toxic):
    """Delays the end of the stream by `delay` ms; data passes untouched."""

    type_name = "slow_close"
    attribute_names = ("delay",)

    async def run(self, stub: Stub) -> None:
        delay = self.attributes["delay"] / 1000.0
        while True:
            chunk = await stub.take()
            if chunk.data is None:
                await stub.sleep_until(stub.now() + delay)
            stub.emit(chunk)


class Timeout(Toxic):
    """Swallows everything (the end of the stream included) and closes the connection once
    `timeout` ms pass without data; with 0 it never closes. Removing it closes the connection.

    This is how a silent network partition looks: nothing gets through, nothing says why.
    """

    type_name = "timeout"
    attribute_names = ("timeout",)

    async def run(self, stub: Stub) -> None:
        timeout = self.attributes["timeout"] / 1000.0
        while True:
            chunk = await stub.take(deadline=stub.now() + timeout if timeout > 0 else None)
            if chunk is None:
                stub.close_connection(f"{self.name}: no data for {timeout * 1000:.0f} ms")
                return
            stub.drop()

    def removed(self, stub: Stub) -> None:
        stub.close_connection(f"{self.name} removed")


class ResetPeer(Toxic):
    """On the first data, waits `timeout` ms, then ends the connection with a TCP RST."""

    type_name = "reset_peer"
    attribute_names = ("timeout",)

    async def run(self, stub: Stub) -> None:
        timeout = self.attributes["timeout"] / 1000.0
        await stub.take()
        stub.drop()
        await stub.sleep_until(stub.now() + timeout)
        stub.reset_connection(f"{self.name}")


class Slicer(Toxic):
    """Cuts each chunk into pieces of about `average_size` bytes (plus or minus up to
    `size_variation`), sent `delay` µs apart. An `average_size` of 0 or less passes data whole.
    """

    type_name = "slicer"
    attribute_names = ("average_size", "size_variation", "delay")

    async def run(self, stub: Stub) -> None:
        average = self.attributes["average_size"]
        variation = max(0, self.attributes["size_variation"])
        delay = max(0, self.attributes["delay"]) / 1_000_000.0
        rng = stub.rng
        while True:
            chunk = await stub.take()
            data = chunk.data
            if data is None or average <= 0:
                stub.emit(chunk)
                continue
            due = stub.now()
            while True:
                size = average + (rng.randint(-variation, variation) if variation else 0)
                size = max(1, size)
                stub.emit(Chunk(data[:size], chunk.time))
                data = data[size:]
                if not data:
                    break
                due += delay
                stub.hold(Chunk(data, chunk.time))
                await stub.sleep_until(due)


class LimitData(Toxic):
    """Lets `bytes` bytes through in this direction, then closes the connection.

    The count belongs to the connection: updating the toxic does not start it again.
    """

    type_name = "limit_data"
    attribute_names = ("bytes",)

    async def run(self, stub: Stub) -> None:
        limit = self.attributes["bytes"]
        state = stub.state
        while True:
            chunk = await stub.take()
            data = chunk.data
            if data is None:
                stub.emit(chunk)
                continue
            passed = state.get("passed", 0)
            allowed = data[:max(0, limit - passed)]
            if allowed:
                stub.emit(Chunk(allowed, chunk.time))
                state["passed"] = passed + len(allowed)
            else:
                stub.drop()
            if state.get("passed", 0) >= limit:
                stub.close_connection(f"{self.name}: {limit} bytes passed")
                return


TOXIC_TYPES: dict[str, type[Toxic]] = {
    cls.type_name: cls
    for cls in (Latency, Bandwidth, SlowClose, Timeout, ResetPeer, Slicer, LimitData, Noop)
}
