"""A Redis client as a real application writes one: redis-py, the primary found through the
Sentinels, failovers followed.

Every operation goes to the primary the Sentinels name at the time of connecting; after a
failover the connection breaks and the next one asks the Sentinels again. redis-py's own
retries are off: a write retried after a timeout could apply twice around another write,
which a history cannot show.

Outcomes: a refusal before sending (connection refused, no primary known, READONLY, any
error reply) is `fail`; a timeout or a connection lost after sending is `info`; with `wait`
replicas asked for, a write that fewer replicas acknowledged within the timeout is `info`
(it happened on the primary, and may yet be lost).
"""

from __future__ import annotations

import json
from typing import Any

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import (ConnectionError, RedisError, ResponseError, TimeoutError)
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

SERVICE = "mymaster"
# Compare-and-set as one server-side step: the value is JSON; an absent key matches null.
CAS_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == 'null') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


def no_retries() -> Retry:
    """redis-py's retry policy that never retries."""
    return Retry(NoBackoff(), 0)


def sentinels_of(addresses: list[tuple[str, int]], timeout: float) -> Sentinel:
    """A redis-py Sentinel client over the given Sentinel addresses."""
    return Sentinel(addresses, socket_timeout=timeout, socket_connect_timeout=timeout,
                    sentinel_kwargs={"socket_timeout": timeout,
                                     "socket_connect_timeout": timeout,
                                     "retry": no_retries()})


def _not_sent(exc: RedisError) -> bool:
    """Whether a connection error happened before the command was sent."""
    text = str(exc)
    return "connecting to" in text or isinstance(exc, MasterNotFoundError)


class RedisClient:
    """One logical client (see the module docstring)."""

    def __init__(self, sentinel: Sentinel, timeout: float, workload: str, wait: int,
                 wait_timeout_ms: int, node_of: dict[str, str]):
        self.sentinel = sentinel
        self.pool = SentinelConnectionPool(SERVICE, sentinel, socket_timeout=timeout,
                                           socket_connect_timeout=timeout,
                                           retry=no_retries())
        self.primary: Redis | None = None
        self.sets = workload == "set"
        self.wait = wait
        self.wait_timeout_ms = wait_timeout_ms
        self.node_of = node_of              # host -> node id

    def _connected(self) -> Redis:
        # One connection, kept: its host is the node that served each operation. Made on
        # first use, where a primary that does not answer is an outcome, not an exception.
        if self.primary is None:
            self.primary = Redis(connection_pool=self.pool, single_connection_client=True)
            self._cas = self.primary.register_script(CAS_SCRIPT)
        return self.primary

    def invoke(self, f: str, key: str | None, value: Any, **options: Any) -> dict:
        try:
            self._connected()
            if f == "read":
                if self.sets:
                    found = self.primary.smembers(key)
                    return self._ok(sorted(int(m) for m in found))
                raw = self.primary.get(key)
                return self._ok(None if raw is None else json.loads(raw))
            if f == "write":
                self.primary.set(key, json.dumps(value))
            elif f == "cas":
                if not self._cas(keys=[key], args=[json.dumps(value[0]), json.dumps(value[1])]):
                    return {"type": "fail", "value": value, "node": self._node(),
                            "error": "cas: the value differs"}
            elif f == "add":
                self.primary.sadd(key, value)
            else:
                raise ValueError(f"redis has no operation {f!r}")
        except MasterNotFoundError as exc:
            return self._failed("fail", f, value, f"no primary known: {exc}")
        except ResponseError as exc:          # READONLY, MASTERDOWN, ...: refused
            return self._failed("fail", f, value, str(exc))
        except (ConnectionError, TimeoutError) as exc:
            sent = not _not_sent(exc)
            kind = "info" if sent and f != "read" else "fail"
            return self._failed(kind, f, value, f"{type(exc).__name__}: {exc}")
        except RedisError as exc:
            return self._failed("fail" if f == "read" else "info", f, value,
                                f"{type(exc).__name__}: {exc}")
        return self._acknowledged(f, value)

    def _acknowledged(self, f: str, value: Any) -> dict:
        """A write the primary took; with `wait`, only when enough replicas have it too."""
        if self.wait:
            try:
                replicas = self.primary.wait(self.wait, self.wait_timeout_ms)
            except RedisError as exc:
                return self._failed("info", f, value, f"WAIT: {type(exc).__name__}: {exc}")
            if replicas < self.wait:
                return self._failed("info", f, value, f"WAIT: {replicas} of {self.wait} "
                                                      f"replicas acknowledged")
        return self._ok(value)

    def _node(self) -> str | None:
        connection = self.primary.connection if self.primary is not None else None
        return self.node_of.get(connection.host) if connection is not None else None

    def _ok(self, value: Any) -> dict:
        return {"type": "ok", "value": value, "node": self._node()}

    def _failed(self, kind: str, f: str, value: Any, error: str) -> dict:
        return {"type": kind, "value": None if f == "read" else value, "node": self._node(),
                "error": error}

    def close(self) -> None:
        if self.primary is not None:
            self.primary.close()
        self.pool.disconnect()
        for sentinel in self.sentinel.sentinels:
            sentinel.close()
