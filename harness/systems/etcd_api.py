"""etcd's v3 API through its JSON gateway: HTTP/1.1 and JSON over requests.

Every etcd since 3.3 serves the gateway on its client port (`/v3/kv/put`, `/v3/kv/range`,
`/v3/kv/txn`, `/v3/maintenance/status`, `/v3/cluster/member/list`). Keys and values travel in
base64; 64-bit numbers arrive as JSON strings. Values are stored as JSON, so that any value a
workload writes (numbers, lists) reads back as itself.

The gateway over a kept-alive `requests.Session` was chosen over a gRPC client: requests is
already in the project (toxiproxy-python uses it), it is the most widely kept HTTP client in
Python, and the well-known gRPC clients for etcd pin old protobuf releases.

What a caller needs to tell outcomes apart:
- `NotSent`: the request certainly never reached etcd (connection refused, connect timeout);
- `EtcdError`: etcd answered with an error (its message and gRPC code);
- any other `requests.RequestException`: the request may or may not have been applied (a read
  timeout, a connection lost after sending).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError

# gRPC status codes etcd returns that say the request was refused before it was proposed.
RESOURCE_EXHAUSTED = 8         # "etcdserver: too many requests"
INVALID_ARGUMENT = 3
FAILED_PRECONDITION = 9


class NotSent(Exception):
    """The request never reached etcd: it certainly had no effect."""


class EtcdError(Exception):
    """etcd answered with an error: `message` and the gRPC `code` it gave."""

    def __init__(self, message: str, code: int | None):
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def definite(self) -> bool:
        """Whether etcd refused the request before proposing it (so it had no effect)."""
        return self.code in (RESOURCE_EXHAUSTED, INVALID_ARGUMENT, FAILED_PRECONDITION)


@dataclass(frozen=True)
class KeyValue:
    """One key as a range returns it: its value and the revision of the write that made it."""

    key: str
    value: Any
    mod_revision: int


def encode(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def decode(text: str) -> str:
    return base64.b64decode(text).decode()


def encode_value(value: Any) -> str:
    return encode(json.dumps(value))


def decode_value(text: str) -> Any:
    return json.loads(decode(text))


def prefix_end(prefix: str) -> str:
    """The range end that covers every key starting with `prefix`."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


class Gateway:
    """One member's JSON gateway, over one kept-alive HTTP connection."""

    def __init__(self, address: str, timeout: float):
        self.base = f"http://{address}"
        self.timeout = timeout
        self.session = requests.Session()

    def call(self, path: str, body: dict) -> dict:
        """POST `body` to `path`; the JSON answer, or NotSent, EtcdError, or a
        requests.RequestException when the outcome is unknown."""
        try:
            response = self.session.post(f"{self.base}{path}", json=body, timeout=self.timeout)
        except requests.ConnectionError as exc:
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            if isinstance(exc, requests.ConnectTimeout) or \
                    isinstance(reason, ConnectTimeoutError):
                raise NotSent(str(reason or exc)) from None
            raise
        try:
            answer = response.json()
        except ValueError:
            raise EtcdError(f"HTTP {response.status_code}: {response.text[:200]}",
                            None) from None
        if response.status_code != 200 or "error" in answer:
            raise EtcdError(answer.get("message") or answer.get("error") or
                            f"HTTP {response.status_code}", answer.get("code"))
        return answer

    def put(self, key: str, value: Any) -> int:
        """Write `value` under `key`; the revision of the write."""
        answer = self.call("/v3/kv/put", {"key": encode(key), "value": encode_value(value)})
        return int(answer["header"]["revision"])

    def get(self, key: str, serializable: bool = False) -> KeyValue | None:
        """The key's value and the revision that wrote it, or None when absent."""
        found = self.range(key, serializable=serializable)
        return found[0] if found else None

    def range(self, key: str, *, prefix: bool = False,
              serializable: bool = False) -> list[KeyValue]:
        """The key (or every key under the prefix), linearizable unless `serializable`."""
        body: dict[str, Any] = {"key": encode(key)}
        if prefix:
            body["range_end"] = prefix_end(key)
        if serializable:
            body["serializable"] = True
        answer = self.call("/v3/kv/range", body)
        return [KeyValue(decode(kv["key"]), decode_value(kv.get("value", "")),
                         int(kv.get("mod_revision", 0))) for kv in answer.get("kvs", [])]

    def compare_and_set(self, key: str, expected: Any, new: Any) -> int | None:
        """Write `new` if the key holds `expected` (None: the key is absent), in one
        transaction; the revision of the write, or None when the comparison failed."""
        if expected is None:
            compare = {"key": encode(key), "target": "CREATE", "result": "EQUAL",
                       "create_revision": "0"}
        else:
            compare = {"key": encode(key), "target": "VALUE", "result": "EQUAL",
                       "value": encode_value(expected)}
        answer = self.call("/v3/kv/txn", {
            "compare": [compare],
            "success": [{"request_put": {"key": encode(key), "value": encode_value(new)}}]})
        return int(answer["header"]["revision"]) if answer.get("succeeded") else None

    def status(self) -> dict:
        """The member's maintenance status: its id, the leader's id, raft term and index."""
        answer = self.call("/v3/maintenance/status", {})
        return {"member_id": int(answer["header"]["member_id"]),
                "leader": int(answer.get("leader") or 0),
                "term": int(answer.get("raftTerm", 0)), "index": int(answer.get("raftIndex", 0)),
                "version": answer.get("version")}

    def raft_status(self) -> dict:
        """The member's raft state as one snapshot (`/debug/vars`): its id, `term` (the
        current term, where the maintenance status gives the term of the last entry applied,
        which lags behind a new leader's), `vote`, `lead` and `state` ("StateLeader", ...).
        Ids as integers."""
        try:
            response = self.session.get(f"{self.base}/debug/vars", timeout=self.timeout)
        except requests.ConnectionError as exc:
            raise NotSent(str(exc)) from None
        raft = response.json()["raft.status"]
        return {"id": int(raft["id"], 16), "term": int(raft["term"]),
                "vote": int(raft["vote"], 16), "lead": int(raft["lead"], 16),
                "state": raft["raftState"]}

    def members(self) -> dict[int, str]:
        """Member id (as an integer) -> member name."""
        answer = self.call("/v3/cluster/member/list", {})
        return {int(m["ID"]): m.get("name", "") for m in answer.get("members", [])}

    def close(self) -> None:
        self.session.close()
