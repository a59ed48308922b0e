"""Peer authentication: a challenge and an HMAC answer at the start of every peer connection.

Every node of a cluster holds its secret (the cluster file's `admin_token`). The node that
accepts a peer connection sends a fresh random challenge; the node that dialled answers with
its id, the id it meant to reach and HMAC-SHA256 over the challenge and both ids, keyed by a key
derived from the secret. Only then are its messages read, and every one must name the
authenticated sender as its `src`. A process without the secret cannot forge a message that a
node acts on (depose a leader, inject an entry, make a follower diverge).

One MAC per connection rather than per frame: a connection lives for many thousands of frames,
a forger on the same machine cannot write into another process's TCP stream, and a MAC per
frame would cost an HMAC and 32 bytes on every heartbeat. Clients stay unauthenticated, as in
most stores.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

CHALLENGE = "challenge"
HELLO = "hello"
_KEY_CONTEXT = b"refnode peer authentication, version 1"


class AuthError(ValueError):
    """A peer connection that did not authenticate; the message says why, in one line, and
    `kind` names the rule it broke (for logging each kind once)."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def peer_key(secret: str) -> bytes:
    """The key peers prove they hold, derived from the cluster's secret (so that the admin
    token itself never keys anything sent on a peer link)."""
    return hmac.new(secret.encode(), _KEY_CONTEXT, hashlib.sha256).digest()


def challenge() -> dict[str, Any]:
    """The frame an accepting node sends first: 16 fresh random bytes, hex."""
    return {"type": CHALLENGE, "nonce": os.urandom(16).hex()}


def hello(key: bytes, frame: Any, src: str, dst: str) -> dict[str, Any]:
    """The answer of the dialling node `src` to the challenge `frame` of `dst`; AuthError if
    the frame is not a challenge."""
    if not isinstance(frame, dict) or frame.get("type") != CHALLENGE or \
            not isinstance(frame.get("nonce"), str):
        raise AuthError(f"expected a challenge from {dst}, got {str(frame)[:60]}",
                        "no challenge")
    return {"type": HELLO, "src": src, "dst": dst, "mac": _mac(key, frame["nonce"], src, dst)}


def verify(key: bytes, nonce: str, frame: Any, me: str, peers: Any) -> str:
    """The peer id a hello `frame` proves, answering challenge `nonce` sent by node `me`, for
    a sender among `peers`; AuthError otherwise."""
    if not isinstance(frame, dict) or frame.get("type") != HELLO:
        raise AuthError("the first frame was not an authentication hello", "no hello")
    src, dst, mac = frame.get("src"), frame.get("dst"), frame.get("mac")
    if not isinstance(src, str) or src not in peers:
        raise AuthError(f"hello from an unknown node {str(src)[:40]!r}", "unknown node")
    if dst != me:
        raise AuthError(f"hello from {src} meant for {str(dst)[:40]!r}", "wrong node")
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(key, nonce, src, me)):
        raise AuthError(f"hello claiming to be {src} without the cluster's secret", "bad mac")
    return src


def _mac(key: bytes, nonce: str, src: str, dst: str) -> str:
    return hmac.new(key, f"{nonce}|{src}|{dst}".encode(), hashlib.sha256).hexdigest()
