"""toxiproxy-python's client, bound to one server, so that several servers can coexist.

toxiproxy-python keeps the API server's host and port as class attributes of its
`APIConsumer`, and its `Toxiproxy` and `Proxy` methods call that class directly: one process,
one server. Here each `ToxiproxyClient` gets its own `APIConsumer` subclass carrying its host and
port, and overrides exactly the library methods that talk to the server (and only those), so that
they, and the `BoundProxy` objects they return, use it. Everything else (argument handling,
return values, exceptions such as `ProxyExists`, `NotFound`, `InvalidToxic`) is the library's.

A few calls the library lacks are added: `post_populate` (the server-side `/populate`),
`BoundProxy.update` (listen, upstream, enabled), `BoundProxy.update_toxic` and
`BoundProxy.refresh`. Where the library would silently read a 403 or 5xx reply as data, a
`ServerError` is raised instead. Requests reuse keep-alive connections (a session per thread);
`close()` (or leaving a `with` block) closes them.
"""

from __future__ import annotations

import threading
from typing import Any

import requests
from toxiproxy.api import APIConsumer, validate_response
from toxiproxy.exceptions import ProxyExists
from toxiproxy.proxy import Proxy
from toxiproxy.server import Toxiproxy
from toxiproxy.toxic import Toxic
from toxiproxy.utils import can_connect_to


class ServerError(Exception):
    """The server answered 403 or 5xx (toxiproxy-python passes these on silently).

    `status` is the HTTP status and `body` the reply's text (a JSON error body, usually).
    """

    def __init__(self, status: int, body: str):
        super().__init__(f"{status}: {body.strip()}")
        self.status = status
        self.body = body


class _BoundConsumer(APIConsumer):
    """The library's consumer with its own host and port, keep-alive HTTP connections (one
    `requests.Session` per thread: the library opens a connection per call, which costs
    milliseconds) and `ServerError` on 403/5xx; otherwise the library's `validate_response`.
    """

    _local: threading.local
    _sessions: list[requests.Session]
    _lock: threading.Lock

    @classmethod
    def _session(cls) -> requests.Session:
        session = getattr(cls._local, "session", None)
        if session is None:
            session = cls._local.session = requests.Session()
            with cls._lock:
                cls._sessions.append(session)
        return session

    @classmethod
    def _call(cls, method: str, url: str, **kwargs):
        endpoint = f"http://{cls.host}:{cls.port}{url}"
        response = cls._session().request(method, endpoint, **kwargs)
        if response.status_code == 403 or response.status_code >= 500:
            raise ServerError(response.status_code, response.text)
        return validate_response(response)

    @classmethod
    def get(cls, url, params=None, **kwargs):
        return cls._call("GET", url, params=params, **kwargs)

    @classmethod
    def post(cls, url, data=None, json=None, **kwargs):
        return cls._call("POST", url, data=data, json=json, **kwargs)

    @classmethod
    def delete(cls, url, **kwargs):
        return cls._call("DELETE", url, **kwargs)

    @classmethod
    def close(cls) -> None:
        """Close every keep-alive connection, of every thread."""
        with cls._lock:
            sessions, cls._sessions[:] = list(cls._sessions), []
        cls._local = threading.local()
        for session in sessions:
            session.close()


def consumer_for(host: str, port: int) -> type[APIConsumer]:
    """An `APIConsumer` class of its own, talking to `host:port`."""
    return type("APIConsumer", (_BoundConsumer,),
                {"host": host, "port": int(port), "_local": threading.local(),
                 "_sessions": [], "_lock": threading.Lock()})


class BoundProxy(Proxy):
    """toxiproxy-python's `Proxy`, talking to the server that returned it."""

    def __init__(self, api: type[APIConsumer], **fields: Any):
        super().__init__(**fields)
        self.api = api

    # -- the library's methods that reach the server --------------------------------------

    def toxics(self) -> dict[str, Toxic]:
        """Every toxic of the proxy, by name."""
        found = self.api.get(f"/proxies/{self.name}/toxics").json()
        return {toxic["name"]: Toxic(**dict(toxic, proxy=self.name)) for toxic in found}

    def add_toxic(self, **kwargs: Any) -> Toxic:
        """Add a toxic (`type`; optional `name`, `stream`, `toxicity`, `attributes`).

        The library returns None; the created toxic is returned here, as the server says it.
        """
        stream = kwargs.get("stream", "downstream")
        body = {"name": kwargs.get("name", f"{kwargs['type']}_{stream}"),
                "type": kwargs["type"], "stream": stream,
                "toxicity": kwargs.get("toxicity", 1.0),
                "attributes": kwargs.get("attributes", {})}
        created = self.api.post(f"/proxies/{self.name}/toxics", json=body).json()
        return Toxic(**dict(created, proxy=self.name))

    def destroy_toxic(self, toxic_name: str) -> bool:
        return bool(self.api.delete(f"/proxies/{self.name}/toxics/{toxic_name}"))

    def destroy(self) -> bool:
        return bool(self.api.delete(f"/proxies/{self.name}"))

    def _Proxy__enable_proxy(self, enabled: bool = False) -> None:
        # The library's private `__enable_proxy`, name-mangled; `enable`, `disable` and `down`
        # call it.
        self.api.post(f"/proxies/{self.name}", json={"enabled": enabled}).json()
        self.enabled = enabled

    # -- additions ------------------------------------------------------------------------

    def update(self, **fields: Any) -> BoundProxy:
        """Change any of `listen`, `upstream`, `enabled`; this object follows the server."""
        reply = self.api.post(f"/proxies/{self.name}", json=fields).json()
        self._take(reply)
        return self

    def update_toxic(self, toxic_name: str, attributes: dict[str, int] | None = None,
                     toxicity: float | None = None) -> Toxic:
        """Change a toxic's attributes (merged into the old ones) and/or its toxicity."""
        body: dict[str, Any] = {"attributes": attributes or {}}
        if toxicity is not None:
            body["toxicity"] = toxicity
        reply = self.api.post(f"/proxies/{self.name}/toxics/{toxic_name}", json=body).json()
        return Toxic(**dict(reply, proxy=self.name))

    def refresh(self) -> BoundProxy:
        """Read the proxy's listen, upstream and enabled again from the server."""
        self._take(self.api.get(f"/proxies/{self.name}").json())
        return self

    def _take(self, fields: dict[str, Any]) -> None:
        self.listen = fields["listen"]
        self.upstream = fields["upstream"]
        self.enabled = fields["enabled"]

    @property
    def listen_address(self) -> tuple[str, int]:
        """`listen` as (host, port), for connecting to the proxy."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    def __repr__(self) -> str:
        return (f"BoundProxy(name={self.name!r}, listen={self.listen!r}, "
                f"upstream={self.upstream!r}, enabled={self.enabled!r})")


class ToxiproxyClient(Toxiproxy):
    """toxiproxy-python's `Toxiproxy`, talking to the server at `host:port` only.

    Thread-safe as far as requests is: no state is shared between instances, and the library's
    global `APIConsumer` is never touched.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8474):
        self.api = consumer_for(host, port)

    def close(self) -> None:
        """Close this client's keep-alive connections (it reconnects if used again)."""
        self.api.close()

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def host(self) -> str:
        return self.api.host

    @property
    def port(self) -> int:
        return self.api.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- the library's methods that reach the server --------------------------------------

    def proxies(self) -> dict[str, BoundProxy]:
        """Every proxy of the server, by name."""
        found = self.api.get("/proxies").json()
        return {name: BoundProxy(self.api, **fields) for name, fields in found.items()}

    def running(self) -> bool:
        return can_connect_to(self.api.host, self.api.port)

    def version(self) -> bytes | None:
        """The raw `/version` reply (as the library returns it), or None if not running."""
        return self.api.get("/version").content if self.running() else None

    def reset(self) -> bool:
        """Enable every proxy and remove every toxic."""
        return bool(self.api.post("/reset"))

    def create(self, upstream: str, name: str, listen: str | None = None,
               enabled: bool | None = None) -> BoundProxy:
        """Create a proxy (listen defaults to 127.0.0.1 on a free port)."""
        if name in self.proxies():
            raise ProxyExists("This proxy already exists.")
        body: dict[str, Any] = {"upstream": upstream, "name": name,
                                "listen": listen if listen is not None else "127.0.0.1:0"}
        if enabled is not None:
            body["enabled"] = enabled
        return BoundProxy(self.api, **self.api.post("/proxies", json=body).json())

    def update_api_consumer(self, host: str, port: int) -> None:
        """Point this client (only) at another server."""
        self.api.close()
        self.api = consumer_for(host, port)

    # -- additions ------------------------------------------------------------------------

    def post_populate(self, proxies: list[dict[str, Any]]) -> list[BoundProxy]:
        """The server's own `/populate`: create or replace many proxies in one request."""
        reply = self.api.post("/populate", json=proxies).json()
        return [BoundProxy(self.api, **fields) for fields in reply["proxies"]]

    def __repr__(self) -> str:
        return f"ToxiproxyClient({self.host!r}, {self.port})"
