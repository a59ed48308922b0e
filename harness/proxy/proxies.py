"""Proxies and their toxics as the Toxiproxy API sees them: the rules of every API operation.

`ProxyCollection` holds every proxy of a server and implements each API operation with
Toxiproxy's semantics (validation order, status codes, error messages, populate and reset
rules); `server.py` only maps HTTP requests onto it. A failed operation raises `ApiError`
carrying the HTTP status and the message of the JSON error body.

A `Proxy` owns its listener and its open connections. Disabling it closes both; changing its
listen address or its upstream restarts it (and so drops its connections); a listen port of 0
picks a free port, and from then on `listen` is the real address.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
from typing import Any

from harness.proxy.link import ClientSide, Connection, join_host_port, split_host_port
from harness.proxy.toxics import DOWNSTREAM, STREAMS, TOXIC_TYPES, UPSTREAM, Toxic

log = logging.getLogger("harness.proxy")

DEFAULT_LISTEN = "127.0.0.1:0"
_INT64 = 2 ** 63


class ApiError(Exception):
    """An API operation failed: `status` and `message` make the JSON error body.

    `proxies`, when not None, is the populate operation's list of proxies created so far.
    """

    def __init__(self, status: int, message: str, proxies: list[Proxy] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.proxies = proxies

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "status": self.status}
        if self.proxies is not None:
            body["proxies"] = [proxy.to_json() for proxy in self.proxies]
        return body


def bad_body(detail: str) -> ApiError:
    """The 400 error of a request body that does not decode as expected."""
    return ApiError(400, f"bad request body: {detail}")


def _bind(listen: str) -> socket.socket:
    """A listening socket bound exactly where `listen` says (one address, even for names)."""
    try:
        host, port = split_host_port(listen)
    except ValueError as exc:
        raise ApiError(500, f"listen tcp: {exc}") from None
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ApiError(500, f"listen tcp {listen}: {exc.strerror}") from None
    # Prefer IPv4 for names such as "localhost", as most clients will try it first.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and not host:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        raise ApiError(500, f"listen tcp {listen}: bind: {reason}") from None
    return sock


class Proxy:
    """One proxy: a listener, an upstream address, its toxics and its open connections."""

    def __init__(self, name: str, listen: str, upstream: str, rng: random.Random):
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.rng = rng
        self.enabled = False
        self.toxics: dict[str, Toxic] = {}  # in the order they were added
        self.connections: set[Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._generation = 0

    def serving(self, generation: int) -> bool:
        """Whether the listener that accepted a connection is still the live one."""
        return self.enabled and generation == self._generation

    async def start(self) -> None:
        """Open the listener (raises ApiError 500 when the address cannot be bound)."""
        if self.enabled:
            return
        sock = _bind(self.listen)
        self._generation += 1
        generation = self._generation
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(lambda: ClientSide(self, generation),
                                                    sock=sock, backlog=1024)
        except OSError as exc:
            sock.close()
            raise ApiError(500, f"listen tcp {self.listen}: {exc}") from None
        host, port = sock.getsockname()[:2]
        self.listen = join_host_port(host, port)
        self.enabled = True

    def stop(self) -> None:
        """Close the listener and every open connection at once."""
        self._generation += 1
        if self._server is not None:
            self._server.close()
            self._server = None
        self.enabled = False
        for conn in list(self.connections):
            conn.abort("proxy stopped")

    def toxic_chain(self) -> list[Toxic]:
        """Every toxic, upstream ones first, each stream in the order they were added."""
        toxics = list(self.toxics.values())
        return ([t for t in toxics if t.stream == UPSTREAM]
                + [t for t in toxics if t.stream == DOWNSTREAM])

    def to_json(self) -> dict[str, Any]:
        """The proxy as the API shows it, toxics included."""
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream,
                "enabled": self.enabled,
                "toxics": [toxic.to_json() for toxic in self.toxic_chain()]}

    # -- toxics on live connections -------------------------------------------------------

    def add_toxic(self, toxic: Toxic) -> None:
        """Add a toxic: it starts on every open connection (subject to its toxicity)."""
        self.toxics[toxic.name] = toxic
        for conn in list(self.connections):
            if conn.up is not None:
                conn.link(toxic.stream).add(toxic)

    def replace_toxic(self, toxic: Toxic) -> None:
        """Swap in an updated toxic: it starts again on every open connection."""
        self.toxics[toxic.name] = toxic
        for conn in list(self.connections):
            if conn.up is not None:
                conn.link(toxic.stream).update(toxic)

    def remove_toxic(self, name: str) -> None:
        """Remove a toxic from the proxy and from every open connection."""
        toxic = self.toxics.pop(name)
        for conn in list(self.connections):
            if conn.up is not None:
                conn.link(toxic.stream).remove(name)

    def remove_all_toxics(self) -> None:
        """Remove every toxic (reset)."""
        for name in list(self.toxics):
            self.remove_toxic(name)


# -- request bodies ---------------------------------------------------------------------------

def _object(body: Any, what: str) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_body(f"expected a JSON object for {what}, got {type(body).__name__}")
    return body


def _string(body: dict[str, Any], key: str, default: str) -> str:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_body(f"field {key!r} must be a string")
    return value


def _boolean(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_body(f"field {key!r} must be a boolean")
    return value


def _number(body: dict[str, Any], key: str, default: float | None) -> float | None:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad_body(f"field {key!r} must be a number")
    return float(value)


def _attributes(body: dict[str, Any], cls: type[Toxic]) -> dict[str, int]:
    """The known attributes given in `body["attributes"]`, as integers; others are ignored."""
    given = body.get("attributes")
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise bad_body("field 'attributes' must be an object")
    out: dict[str, int] = {}
    for key in cls.attribute_names:
        value = given.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or (isinstance(value, float) and not value.is_integer()) \
                or not -_INT64 <= value < _INT64:
            raise bad_body(f"attribute {key!r} of a {cls.type_name} toxic must be an integer")
        out[key] = int(value)
    return out


class _ProxyInput:
    """A proxy as a request body describes it, validated."""

    def __init__(self, body: Any, *, required: bool = True):
        fields = _object(body, "a proxy")
        self.name = _string(fields, "name", "")
        self.listen = _string(fields, "listen", "") or DEFAULT_LISTEN
        self.upstream = _string(fields, "upstream", "")
        self.enabled = _boolean(fields, "enabled", True)
        if required and not self.name:
            raise ApiError(400, "missing required field: name")
        if required and not self.upstream:
            raise ApiError(400, "missing required field: upstream")


class ProxyCollection:
    """Every proxy of one server, and the API's operations on them.

    Operations are serialised by one lock, so that concurrent API calls see each other whole.
    """

    def __init__(self, rng: random.Random | None = None):
        self.rng = rng if rng is not None else random.Random()
        self.proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()

    def get(self, name: str) -> Proxy:
        """The proxy called `name` (ApiError 404 if none)."""
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ApiError(404, "proxy not found")
        return proxy

    async def _launch(self, spec: _ProxyInput) -> Proxy:
        proxy = Proxy(spec.name, spec.listen, spec.upstream, self.rng)
        if spec.enabled:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        log.info("created proxy %s: listen %s, upstream %s, %s", proxy.name, proxy.listen,
                 proxy.upstream, "enabled" if proxy.enabled else "disabled")
        return proxy

    async def create(self, body: Any) -> Proxy:
        """POST /proxies."""
        spec = _ProxyInput(body)
        if spec.name in self.proxies:
            raise ApiError(409, "proxy already exists")
        return await self._launch(spec)

    async def populate(self, body: Any) -> list[Proxy]:
        """POST /populate: validate every entry, then create or replace each in turn.

        An existing proxy with the same listen and upstream is left as it is (toxics and
        all); otherwise it is replaced. On a failure, the error carries what was done so far.
        """
        done: list[Proxy] = []
        try:
            if body is None:
                body = []
            if not isinstance(body, list):
                raise bad_body("expected a JSON array of proxies")
            specs = [_ProxyInput(entry) for entry in body]
        except ApiError as exc:
            raise ApiError(exc.status, exc.message, proxies=done) from None
        for spec in specs:
            existing = self.proxies.get(spec.name)
            if existing is not None:
                if existing.listen == spec.listen and existing.upstream == spec.upstream:
                    done.append(existing)
                    continue
                existing.stop()
                del self.proxies[spec.name]
                log.info("populate replaces proxy %s", spec.name)
            try:
                done.append(await self._launch(spec))
            except ApiError as exc:
                raise ApiError(exc.status, exc.message, proxies=done) from None
        return done

    async def update(self, name: str, body: Any) -> Proxy:
        """PATCH or POST /proxies/{name}: any of listen, upstream, enabled."""
        proxy = self.get(name)
        fields = _object(body, "a proxy")
        listen = _string(fields, "listen", proxy.listen)
        upstream = _string(fields, "upstream", proxy.upstream)
        enabled = _boolean(fields, "enabled", proxy.enabled)
        if not upstream:
            raise ApiError(400, "missing required field: upstream")
        if listen != proxy.listen or upstream != proxy.upstream:
            proxy.stop()
            proxy.listen = listen or DEFAULT_LISTEN
            proxy.upstream = upstream
        if enabled and not proxy.enabled:
            await proxy.start()
        elif not enabled and proxy.enabled:
            proxy.stop()
        log.info("updated proxy %s: listen %s, upstream %s, %s", proxy.name, proxy.listen,
                 proxy.upstream, "enabled" if proxy.enabled else "disabled")
        return proxy

    async def delete(self, name: str) -> None:
        """DELETE /proxies/{name}."""
        proxy = self.get(name)
        proxy.stop()
        del self.proxies[name]
        log.info("deleted proxy %s", name)

    async def reset(self) -> None:
        """POST /reset: enable every proxy and remove every toxic."""
        for proxy in list(self.proxies.values()):
            await proxy.start()
            proxy.remove_all_toxics()
        log.info("reset: every proxy enabled, every toxic removed")

    async def close(self) -> None:
        """Stop every proxy (server shutdown)."""
        for proxy in self.proxies.values():
            proxy.stop()

    # -- toxics ---------------------------------------------------------------------------

    def get_toxic(self, proxy_name: str, toxic_name: str) -> Toxic:
        """A proxy's toxic (ApiError 404 if either is missing)."""
        toxic = self.get(proxy_name).toxics.get(toxic_name)
        if toxic is None:
            raise ApiError(404, "toxic not found")
        return toxic

    async def add_toxic(self, proxy_name: str, body: Any) -> Toxic:
        """POST /proxies/{name}/toxics."""
        proxy = self.get(proxy_name)
        fields = _object(body, "a toxic")
        type_name = _string(fields, "type", "")
        name = _string(fields, "name", "")
        stream = _string(fields, "stream", DOWNSTREAM).lower()
        toxicity = _number(fields, "toxicity", 1.0)
        if stream not in STREAMS:
            raise ApiError(400, "stream was invalid, can be either upstream or downstream")
        name = name or f"{type_name}_{stream}"
        cls = TOXIC_TYPES.get(type_name)
        if cls is None:
            raise ApiError(400, "invalid toxic type")
        if name in proxy.toxics:
            raise ApiError(409, "toxic already exists")
        toxic = cls(name, stream, toxicity, _attributes(fields, cls))  # type: ignore[arg-type]
        proxy.add_toxic(toxic)
        log.info("proxy %s: added toxic %s (%s, %s, toxicity %g, %s)", proxy.name, name,
                 type_name, stream, toxic.toxicity, toxic.attributes)
        return toxic

    async def update_toxic(self, proxy_name: str, toxic_name: str, body: Any) -> Toxic:
        """PATCH or POST /proxies/{name}/toxics/{toxic}: attributes and toxicity only."""
        proxy = self.get(proxy_name)
        toxic = self.get_toxic(proxy_name, toxic_name)
        fields = _object(body, "a toxic")
        changed = toxic.changed(_attributes(fields, type(toxic)),
                                _number(fields, "toxicity", None))
        proxy.replace_toxic(changed)
        log.info("proxy %s: updated toxic %s (toxicity %g, %s)", proxy.name, toxic_name,
                 changed.toxicity, changed.attributes)
        return changed

    async def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        """DELETE /proxies/{name}/toxics/{toxic}."""
        proxy = self.get(proxy_name)
        self.get_toxic(proxy_name, toxic_name)
        proxy.remove_toxic(toxic_name)
        log.info("proxy %s: removed toxic %s", proxy.name, toxic_name)
