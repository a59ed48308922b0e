"""A blocking client for refnode: finds the leader, follows redirects, keeps a session token.

Each operation returns an `Outcome` in the history's terms:
- "ok": it took effect (or, for a read, this is what was read);
- "fail": it certainly did not take effect (refused by a node that is not the leader, a cas that
  found another value, a connection that could not even be opened);
- "info": unknown (a timeout or a connection lost after the request was sent): a write may
  still take effect later.

The session token is the highest `version` this client has seen; with `session=True` every
request carries it as `min_version`, so follower reads give read-your-writes and monotonic
reads. One client is one logical process: it is not thread-safe.
"""

from __future__ import annotations

import itertools
import socket
from dataclasses import dataclass
from typing import Any

from refnode.frames import FrameDecoder, FrameError, encode_frame

OK, FAIL, INFO = "ok", "fail", "info"
# Refusals after which another node may do better: it was unreachable, or knows no leader.
_NO_LEADER_HERE = frozenset({"connect", "not-leader"})


@dataclass
class Outcome:
    """One operation's completion, as the history records it."""

    type: str
    value: Any = None
    version: int | None = None
    node: str | None = None
    error: str | None = None
    term: int | None = None


class RefnodeClient:
    """Talks to a refnode cluster through the addresses it is given (node id -> "host:port").

    `node` is where requests go first and the client's home: a refusal naming another leader
    moves the client there (at most `max_redirects` times per operation), but `follower` reads
    are always served by the home node (reading locally is their point). `timeout` bounds
    each request.
    """

    def __init__(self, addresses: dict[str, str], node: str | None = None, *,
                 timeout: float = 1.0, session: bool = False, max_redirects: int = 3,
                 admin_token: str | None = None):
        if not addresses:
            raise ValueError("a client needs at least one node address")
        self.addresses = dict(addresses)
        self.node = node if node is not None else next(iter(self.addresses))
        self.home = self.node
        if self.node not in self.addresses:
            raise ValueError(f"unknown node {self.node!r}; nodes: {', '.join(self.addresses)}")
        self.timeout = timeout
        self.session = session
        self.max_redirects = max_redirects
        self.admin_token = admin_token
        self.token = 0
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._decoder = FrameDecoder()
        self._replies: list[dict] = []      # decoded but not yet claimed
        self._connected_to: str | None = None

    # -- operations ----------------------------------------------------------------------

    def read(self, key: str, read_mode: str = "leader") -> Outcome:
        """The value of `key` (None when never written) in `read_mode`."""
        request = {"op": "read", "key": key, "read_mode": read_mode}
        if read_mode == "follower":
            return self._call(request, node=self.home, redirect=False)
        return self._call(request)

    def write(self, key: str, value: Any) -> Outcome:
        """Set `key` to `value`."""
        return self._call({"op": "write", "key": key, "value": value})

    def cas(self, key: str, expected: Any, new: Any) -> Outcome:
        """Set `key` to `new` if it holds `expected`; "fail" if it holds something else."""
        return self._call({"op": "cas", "key": key, "value": [expected, new]})

    def add(self, key: str, element: Any) -> Outcome:
        """Add `element` to the set at `key`."""
        return self._call({"op": "add", "key": key, "value": element})

    def status(self, node: str | None = None) -> Outcome:
        """The status of `node` (default: the current one); its value is the status object."""
        return self._call({"op": "status"}, node=node, redirect=False)

    def set_clock(self, node: str, offset: float | None = None,
                  rate: float | None = None) -> Outcome:
        """Skew (`offset` seconds) or make drift (`rate`) the clock of `node` (admin)."""
        request: dict[str, Any] = {"op": "admin", "token": self.admin_token or ""}
        if offset is not None:
            request["clock_offset"] = offset
        if rate is not None:
            request["clock_rate"] = rate
        return self._call(request, node=node, redirect=False)

    def close(self) -> None:
        """Close the connection (a later operation reconnects)."""
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._connected_to = None
        self._decoder = FrameDecoder()
        self._replies = []

    def __enter__(self) -> "RefnodeClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- machinery -----------------------------------------------------------------------

    def _call(self, request: dict, node: str | None = None, redirect: bool = True) -> Outcome:
        target = node or self.node
        keyed = "key" in request
        for _ in range(self.max_redirects + 1):
            if keyed and self.session:
                request["min_version"] = self.token
            outcome, leader = self._send(target, request)
            if not redirect or outcome.type != FAIL:
                break
            if leader and leader != target and leader in self.addresses:
                # A definite refusal that names the leader: nothing happened, go there.
                target = self.node = leader
            elif leader is None and (outcome.error or "").split(":")[0] in _NO_LEADER_HERE:
                # The node is down or knows no leader: nothing happened, try the next one.
                target = self.node = self._after(target)
            else:
                break
        if outcome.type == OK and outcome.version is not None and keyed:
            self.token = max(self.token, outcome.version)
        return outcome

    def _after(self, node: str) -> str:
        ids = list(self.addresses)
        return ids[(ids.index(node) + 1) % len(ids)]

    def _send(self, node: str, request: dict) -> tuple[Outcome, str | None]:
        request = dict(request, id=next(self._ids))
        try:
            frame = encode_frame(request)
        except (ValueError, TypeError) as exc:      # too large for a frame, or not JSON
            # Too large to send at all: nothing was sent, the operation did not happen.
            return Outcome(FAIL, node=node, error=f"bad-request: {exc}"), None
        try:
            self._connect(node)
        except OSError as exc:
            # Nothing was sent: the operation certainly did not happen.
            return Outcome(FAIL, node=node, error=f"connect: {_reason(exc)}"), None
        try:
            self._sock.sendall(frame)
            reply = self._receive(request["id"])
        except (OSError, FrameError) as exc:
            self.close()
            return Outcome(INFO, node=node, error=_reason(exc)), None
        return _outcome(reply, node), reply.get("leader")

    def _connect(self, node: str) -> None:
        if self._sock is not None and self._connected_to == node:
            return
        self.close()
        host, port = self.addresses[node].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._connected_to = node

    def _receive(self, request_id: int) -> dict:
        while True:
            while self._replies:
                reply = self._replies.pop(0)
                if reply.get("id") == request_id:
                    return reply
                # Otherwise a late reply to an earlier request that timed out: not ours.
            data = self._sock.recv(65536)
            if not data:
                self._decoder.eof()
                raise ConnectionResetError("connection closed by the node")
            self._replies.extend(self._decoder.feed(data))


def _outcome(reply: dict, node: str) -> Outcome:
    served_by = reply.get("node") or node
    if reply.get("ok"):
        return Outcome(OK, reply.get("value"), reply.get("version"), served_by,
                       term=reply.get("term"))
    kind = FAIL if reply.get("definite") else INFO
    return Outcome(kind, reply.get("value"), reply.get("version"), served_by,
                   reply.get("error") or "refused", reply.get("term"))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__
