"""The Toxiproxy HTTP API over asyncio streams, and the ways to run the server.

HTTP/1.1 is small enough here to speak directly (request line, headers, a Content-Length or
chunked body, keep-alive), so the server needs nothing beyond the standard library. Every
response body is JSON; errors are `{"error": message, "status": code}`. A request whose
User-Agent starts with `Mozilla/` is refused with 403 before routing, as Toxiproxy does, so
that a web page cannot drive the API from a browser.

- `serve(host, port, ...)` starts the API server in the running event loop and returns a
  `ServerHandle` (bound host and port, `close()`).
- `run(host, port, config=None)` runs it until SIGTERM or SIGINT, printing the bound address
  as the first line of stdout (see `harness.proxy.process`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import sys
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from harness.proxy.link import join_host_port
from harness.proxy.proxies import ApiError, ProxyCollection, bad_body

log = logging.getLogger("harness.proxy")

#: The Toxiproxy release whose API this server speaks; `/version` reports it with a suffix.
API_VERSION = "2.12.0"
VERSION = f"{API_VERSION}+faultline"

_MAX_HEADER_LINES = 100
_MAX_BODY = 16 * 1024 * 1024

Reply = tuple[int, Any]  # status, JSON-able body (None: no body)


class _BadRequest(Exception):
    """The HTTP framing itself is broken: answer 400 (or `status`) and close."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


async def _line(reader: asyncio.StreamReader) -> bytes:
    """One line of the request head; a line longer than the reader's limit is answered 431
    rather than ending the connection with a traceback."""
    try:
        return await reader.readline()
    except (ValueError, asyncio.LimitOverrunError):     # readline turns an overrun into this
        raise _BadRequest("request line or header line too long", 431) from None


class ApiServer:
    """Maps HTTP requests onto a `ProxyCollection`."""

    def __init__(self, proxies: ProxyCollection):
        self.proxies = proxies
        self.open_connections: set[asyncio.StreamWriter] = set()

    def close_connections(self) -> None:
        """Close every open HTTP connection (idle keep-alive ones included)."""
        for writer in list(self.open_connections):
            writer.close()

    # -- routing ------------------------------------------------------------------------------

    async def dispatch(self, method: str, path: str, user_agent: str, body: bytes) -> Reply:
        """One request to (status, JSON body); never raises for a well-framed request."""
        if user_agent.startswith("Mozilla/"):
            return 403, "User agent not allowed"
        parts = [unquote(part) for part in path.split("/")[1:]]
        handler = self._route(method, parts)
        if isinstance(handler, int):
            return handler, {"error": HTTPStatus(handler).phrase.lower(), "status": handler}
        try:
            async with self.proxies.lock:
                # As in Toxiproxy, a missing proxy or toxic is reported before a bad body.
                if parts[0] == "proxies" and len(parts) >= 2:
                    self.proxies.get(parts[1])
                    if len(parts) == 4 and method in ("POST", "PATCH"):
                        self.proxies.get_toxic(parts[1], parts[3])
                payload: Any = None
                if method in ("POST", "PATCH") and body.strip():
                    try:
                        payload = json.loads(body)
                    except ValueError as exc:
                        raise bad_body(str(exc)) from None
                    except RecursionError:
                        raise bad_body("JSON nested too deeply") from None
                elif method in ("POST", "PATCH") and parts[0] != "reset":
                    raise bad_body("EOF")
                return await handler(payload)
        except ApiError as exc:
            if parts == ["populate"] and exc.proxies is None:
                exc.proxies = []  # populate's errors always list what was created
            return exc.status, exc.to_json()
        except Exception as exc:
            log.exception("API %s %s failed", method, path)
            return 500, {"error": str(exc), "status": 500}

    def _route(self, method: str, parts: list[str]) -> Callable[[Any], Awaitable[Reply]] | int:
        """The handler for a request, or 404/405."""
        p = self.proxies
        n = len(parts)
        if any(not part for part in parts):
            return 404
        routes: dict[str, Callable[[Any], Awaitable[Reply]]] = {}
        if parts == ["version"]:
            routes["GET"] = self._version
        elif parts == ["reset"]:
            routes["POST"] = self._reset
        elif parts == ["populate"]:
            routes["POST"] = self._populate
        elif parts == ["proxies"]:
            routes["GET"] = self._index
            routes["POST"] = self._create
        elif n == 2 and parts[0] == "proxies":
            name = parts[1]
            routes["GET"] = lambda _: self._ok(p.get(name).to_json())
            routes["POST"] = routes["PATCH"] = lambda body: self._updated(name, body)
            routes["DELETE"] = lambda _: self._deleted(p.delete(name))
        elif n == 3 and parts[0] == "proxies" and parts[2] == "toxics":
            name = parts[1]
            routes["GET"] = lambda _: self._ok([t.to_json() for t in p.get(name).toxic_chain()])
            routes["POST"] = lambda body: self._toxic_created(name, body)
        elif n == 4 and parts[0] == "proxies" and parts[2] == "toxics":
            name, toxic = parts[1], parts[3]
            routes["GET"] = lambda _: self._ok(p.get_toxic(name, toxic).to_json())
            routes["POST"] = routes["PATCH"] = lambda body: self._toxic_updated(name, toxic,
                                                                                 body)
            routes["DELETE"] = lambda _: self._deleted(p.remove_toxic(name, toxic))
        else:
            return 404
        return routes.get(method, 405)

    # -- handlers -----------------------------------------------------------------------------

    @staticmethod
    async def _ok(body: Any) -> Reply:
        return 200, body

    @staticmethod
    async def _deleted(operation: Awaitable[None]) -> Reply:
        await operation
        return 204, None

    async def _version(self, _: Any) -> Reply:
        return 200, {"version": VERSION}

    async def _reset(self, _: Any) -> Reply:
        await self.proxies.reset()
        return 204, None

    async def _index(self, _: Any) -> Reply:
        return 200, {name: proxy.to_json() for name, proxy in self.proxies.proxies.items()}

    async def _create(self, body: Any) -> Reply:
        return 201, (await self.proxies.create(body)).to_json()

    async def _populate(self, body: Any) -> Reply:
        created = await self.proxies.populate(body)
        return 201, {"proxies": [proxy.to_json() for proxy in created]}

    async def _updated(self, name: str, body: Any) -> Reply:
        return 200, (await self.proxies.update(name, body)).to_json()

    async def _toxic_created(self, name: str, body: Any) -> Reply:
        return 200, (await self.proxies.add_toxic(name, body)).to_json()

    async def _toxic_updated(self, name: str, toxic: str, body: Any) -> Reply:
        return 200, (await self.proxies.update_toxic(name, toxic, body)).to_json()

    # -- HTTP/1.1 -----------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve requests on one HTTP connection until the client closes it."""
        self.open_connections.add(writer)
        try:
            while True:
                try:
                    request = await _read_request(reader, writer)
                except _BadRequest as exc:
                    writer.write(_response(exc.status, {"error": str(exc),
                                                        "status": exc.status}, False))
                    await writer.drain()
                    return
                if request is None:
                    return
                method, target, headers, body, keep_alive = request
                path = urlsplit(target).path
                status, payload = await self.dispatch(method, path,
                                                      headers.get("user-agent", ""), body)
                writer.write(_response(status, payload, keep_alive))
                await writer.drain()
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.open_connections.discard(writer)
            writer.close()


async def _read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
    """(method, target, headers, body, keep_alive), or None at a clean end of connection."""
    line = await _line(reader)
    while line in (b"\r\n", b"\n"):  # tolerate stray blank lines between requests
        line = await _line(reader)
    if not line:
        return None
    try:
        method, target, version = line.decode("latin-1").split()
    except ValueError:
        raise _BadRequest("malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise _BadRequest("unsupported HTTP version")
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADER_LINES):
        line = await _line(reader)
        if line in (b"\r\n", b"\n", b""):
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise _BadRequest("malformed header line")
        headers[name.strip().lower()] = value.strip()
    else:
        raise _BadRequest("too many header lines")
    connection = headers.get("connection", "").lower()
    keep_alive = ("close" not in connection if version == "HTTP/1.1"
                  else "keep-alive" in connection)
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _BadRequest("malformed Content-Length") from None
        if not 0 <= length <= _MAX_BODY:
            raise _BadRequest("request body too large")
        body = await reader.readexactly(length) if length else b""
    return method.upper(), target, headers, body, keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    total = 0
    while True:
        size_line = await _line(reader)
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise _BadRequest("malformed chunk size") from None
        if size == 0:
            while (await _line(reader)) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        total += size
        if total > _MAX_BODY:
            raise _BadRequest("request body too large")
        parts.append(await reader.readexactly(size))
        await _line(reader)


def _response(status: int, payload: Any, keep_alive: bool) -> bytes:
    reason = HTTPStatus(status).phrase
    head = [f"HTTP/1.1 {status} {reason}"]
    body = b""
    if isinstance(payload, str):  # plain text, as Go's http.Error writes it
        body = (payload + "\n").encode()
        head.append("Content-Type: text/plain; charset=utf-8")
        head.append("X-Content-Type-Options: nosniff")
    elif payload is not None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        head.append("Content-Type: application/json")
    if status != 204:
        head.append(f"Content-Length: {len(body)}")
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class ServerHandle:
    """A running API server: where it listens, its proxies, and how to stop it."""

    def __init__(self, server: asyncio.AbstractServer, api: ApiServer):
        self._server = server
        self._api = api
        self.proxies = api.proxies
        host, port = server.sockets[0].getsockname()[:2]
        self.host: str = host
        self.port: int = port

    @property
    def address(self) -> str:
        """`host:port` of the API."""
        return join_host_port(self.host, self.port)

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://{self.address}"

    async def close(self) -> None:
        """Stop answering the API, then stop every proxy and close every connection."""
        self._server.close()
        self._api.close_connections()
        await self.proxies.close()
        await self._server.wait_closed()


async def serve(host: str = "127.0.0.1", port: int = 8474, config: str | Path | None = None,
                rng: random.Random | None = None) -> ServerHandle:
    """Start the Toxiproxy-compatible API server in the running loop.

    `port` 0 picks a free port (see the handle's `port`). `config`, a JSON file holding an
    array of proxies, populates the server before it answers (Toxiproxy's `-config`); a bad
    file raises ValueError. `rng` drives toxicity draws and jitter (seed it to replay).
    """
    proxies = ProxyCollection(rng)
    if config is not None:
        entries = json.loads(Path(config).read_text())
        try:
            created = await proxies.populate(entries)
        except ApiError as exc:
            await proxies.close()
            raise ValueError(f"config {config}: {exc.message}") from None
        log.info("populated %d proxies from %s", len(created), config)
    api = ApiServer(proxies)
    try:
        server = await asyncio.start_server(api.handle, host, port, reuse_address=True)
    except OSError:
        await proxies.close()
        raise
    handle = ServerHandle(server, api)
    log.info("API server listening on %s", handle.address)
    return handle


def run(host: str = "127.0.0.1", port: int = 8474, config: str | Path | None = None, *,
        seed: int | None = None, lifeline: bool = False, log_level: str = "INFO") -> int:
    """Run the server until SIGTERM or SIGINT (or, with `lifeline`, until stdin closes).

    The first line of stdout is `faultline proxy listening on HOST:PORT`, for whoever started
    the process to learn a port chosen with `port` 0. Logs go to stderr, one line per API
    change and per connection event at INFO, unless the caller configured logging already.
    Returns the process exit code: 0 after a clean shutdown, 1 if the server cannot start.
    """
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(_main(host, port, config, seed, lifeline))


async def _main(host: str, port: int, config: str | Path | None, seed: int | None,
                lifeline: bool) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        handle = await serve(host, port, config, random.Random(seed))
    except (OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    pipe = None
    if lifeline:
        pipe = await _watch_stdin(loop, stop)
    print(f"faultline proxy listening on {handle.address}", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await handle.close()
        if pipe is not None:
            pipe.close()
    return 0


async def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event):
    """Set `stop` when stdin reaches its end: the parent holding the pipe has gone."""

    class _Lifeline(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            if not stop.is_set():
                log.warning("lifeline closed: the parent process is gone")
            stop.set()

    transport, _ = await loop.connect_read_pipe(_Lifeline, sys.stdin)
    return transport
