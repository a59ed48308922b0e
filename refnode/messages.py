"""The messages refnode's core consumes and produces, and their JSON form.

Peer messages (node to node): `VoteRequest`, `VoteReply`, `AppendEntries`, `AppendReply`.
Every one names its sender `src` and addressee `dst` and carries the sender's `term`: the
generation clock that fences off deposed leaders. Client messages: `ClientRequest` in,
`ClientReply` out. Log entries (`Entry`) travel inside `AppendEntries`.

All are small frozen dataclasses. `to_dict()` gives a JSON object with a `"type"` field;
`message_from_dict()` (or each class's `from_dict`) reads one back and validates it strictly:
required fields, types (a bool is not an int), known ops and read modes, no unknown fields.
Anything else is a `MessageError` whose text is one line naming the field, fit to send back to
a peer or client that sent garbage.

Replies distinguish definite errors (the operation certainly did not and will not take effect:
`not-leader`, `cas-mismatch`, ...) from indeterminate ones (a write that may still commit:
`stepped-down`, `timeout`); see `ClientReply.definite`. Errors of reads are always definite,
since a read changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from refnode.config import READ_MODES


class MessageError(ValueError):
    """A message that does not follow the format; `str(error)` is a one-line reason."""


# --- operations and error codes ----------------------------------------------------------------

OPS = ("read", "write", "cas", "add", "status")
WRITE_OPS = frozenset({"write", "cas", "add"})
ENTRY_OPS = ("noop", "write", "cas", "add")

NOT_LEADER = "not-leader"              # definite: this node does not take that request; see leader
CAS_MISMATCH = "cas-mismatch"          # definite: the cas found another value (see value)
TYPE_MISMATCH = "type-mismatch"        # definite: add to a key holding a non-set value, or the like
STEPPED_DOWN = "stepped-down"          # writes: indeterminate (may still commit); reads: definite
TIMEOUT = "timeout"                    # writes: indeterminate; reads: definite
VERSION_UNAVAILABLE = "version-unavailable"  # definite: min_version not reached in time
BAD_REQUEST = "bad-request"            # definite: for runtimes answering malformed requests
ERRORS = (NOT_LEADER, CAS_MISMATCH, TYPE_MISMATCH, STEPPED_DOWN, TIMEOUT, VERSION_UNAVAILABLE,
          BAD_REQUEST)

MAX_JSON_DEPTH = 32
# The largest value a client may write, as JSON bytes: a log entry holding it, with its key,
# always fits in one peer frame (1 MiB), whatever else an append message carries.
MAX_VALUE_BYTES = 256 * 1024


# --- strict field readers -----------------------------------------------------------------------

def _check_json(value: Any, where: str, depth: int = 0) -> None:
    """Raise MessageError unless `value` is plain JSON data (finite numbers, str keys)."""
    if depth > MAX_JSON_DEPTH:
        raise MessageError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MessageError(f"{where}: numbers must be finite, got {value!r}")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_json(item, where, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise MessageError(f"{where}: object keys must be strings, got {key!r}")
            _check_json(item, where, depth + 1)
        return
    raise MessageError(f"{where}: not a JSON value: {type(value).__name__}")


def check_written_value(value: Any, where: str) -> None:
    """The one check of a value a client writes, run where a client's request arrives: plain
    JSON data that every peer accepts in a log entry (`_check_json`), at most
    `MAX_VALUE_BYTES` once encoded. Raises MessageError."""
    _check_json(value, where)
    size = len(orjson.dumps(value))
    if size > MAX_VALUE_BYTES:
        raise MessageError(f"{where}: {size:,} bytes as JSON, more than the {MAX_VALUE_BYTES:,} "
                           f"a value may have")


class _Reader:
    """Reads the fields of one JSON object for one message type, strictly."""

    def __init__(self, data: Any, kind: str, allowed: tuple[str, ...]):
        if not isinstance(data, Mapping):
            raise MessageError(f"{kind}: expected a JSON object, got {type(data).__name__}")
        self.data = data
        self.kind = kind
        for key in data:
            if key != "type" and key not in allowed:
                raise MessageError(f"{kind}: unknown field {key!r}")

    def _get(self, name: str, required: bool, default: Any) -> tuple[bool, Any]:
        if name in self.data:
            return True, self.data[name]
        if required:
            raise MessageError(f"{self.kind}: missing field {name!r}")
        return False, default

    def int(self, name: str, *, required: bool = True, default: Any = None,
            optional: bool = False, minimum: int = 0) -> Any:
        present, value = self._get(name, required, default)
        if not present or (optional and value is None):
            return value if present else default
        if not isinstance(value, int) or isinstance(value, bool):
            raise MessageError(f"{self.kind}: field {name!r} must be an integer, got {value!r}")
        if value < minimum:
            raise MessageError(f"{self.kind}: field {name!r} must be >= {minimum}, got {value}")
        return value

    def str(self, name: str, *, required: bool = True, default: Any = None,
            optional: bool = False) -> Any:
        present, value = self._get(name, required, default)
        if not present or (optional and value is None):
            return value if present else default
        if not isinstance(value, str) or not value:
            raise MessageError(f"{self.kind}: field {name!r} must be a non-empty string, "
                               f"got {value!r}")
        return value

    def bool(self, name: str, *, required: bool = True, default: Any = None) -> Any:
        present, value = self._get(name, required, default)
        if not present:
            return default
        if not isinstance(value, bool):
            raise MessageError(f"{self.kind}: field {name!r} must be true or false, got {value!r}")
        return value

    def json(self, name: str, *, required: bool = False) -> Any:
        present, value = self._get(name, required, None)
        if present:
            _check_json(value, f"{self.kind}: field {name!r}")
        return value

    def ident(self, name: str) -> Any:
        present, value = self._get(name, False, None)
        if present and value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, str))):
            raise MessageError(f"{self.kind}: field {name!r} must be an integer, a string or "
                               f"null, got {value!r}")
        return value


# --- log entries ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. `index` counts from 1; `term` is the term of the leader that created it.

    `op` is "noop" (appended by every new leader), "write" (value), "cas" (value is
    [expected, new]) or "add" (value is the element added to the set at `key`).
    """

    index: int
    term: int
    op: str
    key: str | None = None
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "term": self.term, "op": self.op, "key": self.key,
                "value": _jsonable(self.value)}

    @classmethod
    def from_dict(cls, data: Any) -> Entry:
        r = _Reader(data, "entry", ("index", "term", "op", "key", "value"))
        index = r.int("index", minimum=1)
        term = r.int("term", minimum=1)
        op = r.str("op")
        if op not in ENTRY_OPS:
            raise MessageError(f"entry: unknown op {op!r}; ops: {', '.join(ENTRY_OPS)}")
        key = r.str("key", required=False, optional=True)
        value = r.json("value")
        if op != "noop" and key is None:
            raise MessageError(f"entry: op {op!r} needs a key")
        if op == "cas":
            _check_cas_value(value, "entry")
            value = list(value)
        return cls(index, term, op, key, value)


def entry_bytes(entry: Entry) -> int:
    """About how many bytes `entry` takes in an append message: its value as JSON, its key
    (UTF-8 bytes at most 4 a character, JSON escapes at most 6) and a fixed allowance for the
    rest. An upper bound, so that a batch counted by it fits where it is meant to."""
    key = 6 * len(entry.key) if entry.key else 0
    return len(orjson.dumps(_jsonable(entry.value))) + key + 96


def _check_cas_value(value: Any, kind: str) -> None:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise MessageError(f"{kind}: a cas value must be [expected, new], got {value!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


# --- peer messages --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class VoteRequest:
    """A candidate asks for a vote in `term`, showing how up to date its log is."""

    TYPE: ClassVar[str] = "vote-request"
    src: str
    dst: str
    term: int
    last_log_index: int
    last_log_term: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "src": self.src, "dst": self.dst, "term": self.term,
                "last_log_index": self.last_log_index, "last_log_term": self.last_log_term}

    @classmethod
    def from_dict(cls, data: Any) -> VoteRequest:
        r = _Reader(data, cls.TYPE, ("src", "dst", "term", "last_log_index", "last_log_term"))
        return cls(r.str("src"), r.str("dst"), r.int("term", minimum=1),
                   r.int("last_log_index"), r.int("last_log_term"))


@dataclass(frozen=True, slots=True)
class VoteReply:
    """A voter's answer; `term` is the voter's term after it considered the request."""

    TYPE: ClassVar[str] = "vote-reply"
    src: str
    dst: str
    term: int
    granted: bool

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "src": self.src, "dst": self.dst, "term": self.term,
                "granted": self.granted}

    @classmethod
    def from_dict(cls, data: Any) -> VoteReply:
        r = _Reader(data, cls.TYPE, ("src", "dst", "term", "granted"))
        return cls(r.str("src"), r.str("dst"), r.int("term"), r.bool("granted"))


@dataclass(frozen=True, slots=True)
class AppendEntries:
    """The leader `src` replicates `entries` following (prev_index, prev_term), tells its
    commit index, and doubles as the heartbeat.

    `round` is the read/heartbeat context: the number of the leader's latest heartbeat round
    when it sent this message. A reply echoes it; a round acknowledged by a quorum confirms
    leadership for the `leader` reads waiting on it and renews the lease.
    """

    TYPE: ClassVar[str] = "append"
    src: str
    dst: str
    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    leader_commit: int
    round: int = 0

    @property
    def leader_id(self) -> str:
        return self.src

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "src": self.src, "dst": self.dst, "term": self.term,
                "prev_index": self.prev_index, "prev_term": self.prev_term,
                "entries": [e.to_dict() for e in self.entries],
                "leader_commit": self.leader_commit, "round": self.round}

    @classmethod
    def from_dict(cls, data: Any) -> AppendEntries:
        r = _Reader(data, cls.TYPE, ("src", "dst", "term", "prev_index", "prev_term", "entries",
                                     "leader_commit", "round"))
        raw = r._get("entries", True, None)[1]
        if not isinstance(raw, list):
            raise MessageError(f"{cls.TYPE}: field 'entries' must be a list, got {raw!r}")
        entries = tuple(Entry.from_dict(e) for e in raw)
        prev_index = r.int("prev_index")
        for offset, entry in enumerate(entries, start=1):
            if entry.index != prev_index + offset:
                raise MessageError(f"{cls.TYPE}: entries must follow prev_index {prev_index} "
                                   f"without gaps, got index {entry.index}")
        return cls(r.str("src"), r.str("dst"), r.int("term", minimum=1), prev_index,
                   r.int("prev_term"), entries, r.int("leader_commit"),
                   r.int("round", required=False, default=0))


@dataclass(frozen=True, slots=True)
class AppendReply:
    """A follower's answer to an `AppendEntries`.

    On success `match_index` is the last index the follower now holds in agreement with the
    leader. On failure `conflict_index` (and `conflict_term`, when the follower has an entry of
    another term at prev_index) tell the leader where to resume: the first index of that term
    in the follower's log, or the follower's last index + 1 when its log is too short.
    """

    TYPE: ClassVar[str] = "append-reply"
    src: str
    dst: str
    term: int
    success: bool
    match_index: int = 0
    conflict_index: int = 0
    conflict_term: int | None = None
    round: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "src": self.src, "dst": self.dst, "term": self.term,
                "success": self.success, "match_index": self.match_index,
                "conflict_index": self.conflict_index, "conflict_term": self.conflict_term,
                "round": self.round}

    @classmethod
    def from_dict(cls, data: Any) -> AppendReply:
        r = _Reader(data, cls.TYPE, ("src", "dst", "term", "success", "match_index",
                                     "conflict_index", "conflict_term", "round"))
        return cls(r.str("src"), r.str("dst"), r.int("term"), r.bool("success"),
                   r.int("match_index", required=False, default=0),
                   r.int("conflict_index", required=False, default=0),
                   r.int("conflict_term", required=False, default=None, optional=True),
                   r.int("round", required=False, default=0))


PeerMessage = VoteRequest | VoteReply | AppendEntries | AppendReply


# --- client messages ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A client's request.

    - `op`: "read", "write", "cas", "add" or "status".
    - `key`: a non-empty string for read/write/cas/add; None for status.
    - `value`: write: any JSON value; cas: [expected, new]; add: the element; else None.
    - `read_mode`: for reads, "leader" (linearizable, quorum-confirmed), "lease" (the leader
      answers locally while its lease holds) or "follower" (any node, from its applied state).
    - `min_version`: the session token: the highest version the client has seen. A node answers
      a read only once its applied index has reached it (bounded wait, then an error).
    - `id`: opaque to the core, copied into the reply (for runtimes that pipeline requests).

    Construction validates and raises MessageError.
    """

    TYPE: ClassVar[str] = "request"
    op: str
    key: str | None = None
    value: Any = None
    read_mode: str = "leader"
    min_version: int | None = None
    id: int | str | None = None

    def __post_init__(self) -> None:
        kind = self.TYPE
        if self.op not in OPS:
            raise MessageError(f"{kind}: unknown op {self.op!r}; ops: {', '.join(OPS)}")
        if self.op == "status":
            if self.key is not None or self.value is not None:
                raise MessageError(f"{kind}: status takes no key or value")
        elif not isinstance(self.key, str) or not self.key:
            raise MessageError(f"{kind}: op {self.op!r} needs a non-empty string key, "
                               f"got {self.key!r}")
        if self.op == "read" and self.value is not None:
            raise MessageError(f"{kind}: a read takes no value")
        if self.op == "cas":
            _check_cas_value(self.value, kind)
        if self.read_mode not in READ_MODES:
            raise MessageError(f"{kind}: unknown read_mode {self.read_mode!r}; read modes: "
                               f"{', '.join(READ_MODES)}")
        mv = self.min_version
        if mv is not None and (not isinstance(mv, int) or isinstance(mv, bool) or mv < 0):
            raise MessageError(f"{kind}: min_version must be a non-negative integer or null, "
                               f"got {mv!r}")

    @property
    def is_write(self) -> bool:
        return self.op in WRITE_OPS

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "op": self.op, "key": self.key,
                "value": _jsonable(self.value), "read_mode": self.read_mode,
                "min_version": self.min_version, "id": self.id}

    @classmethod
    def from_dict(cls, data: Any) -> ClientRequest:
        r = _Reader(data, cls.TYPE, ("op", "key", "value", "read_mode", "min_version", "id"))
        op = r.str("op")
        if op not in OPS:
            raise MessageError(f"{cls.TYPE}: unknown op {op!r}; ops: {', '.join(OPS)}")
        value = r.json("value")
        if op == "cas":
            _check_cas_value(value, cls.TYPE)
            value = list(value)
        return cls(op, r.str("key", required=False, optional=True), value,
                   r.str("read_mode", required=False, default="leader"),
                   r.int("min_version", required=False, optional=True), r.ident("id"))


@dataclass(frozen=True, slots=True)
class ClientReply:
    """A node's answer to a `ClientRequest`.

    - `ok`: the operation took effect (or the read was served). When False, `error` names why
      and `definite` says whether the operation certainly did not and will not take effect
      (True) or might still (False: a write pending when its leader stepped down or timed out).
    - `value`: read: the value (a sorted list for a set; None when absent); write: the value
      written; cas: the new value, or on `cas-mismatch` the value found; add: the element;
      status: the status object.
    - `version`: the log index of the write that produced the value read or written (0: never
      written); the client's next session token is the highest version it has seen.
    - `node`, `term`: who answered, in which term; `leader`: the leader it knows (redirects).
    """

    TYPE: ClassVar[str] = "reply"
    ok: bool
    op: str
    node: str
    term: int
    leader: str | None = None
    value: Any = None
    version: int = 0
    error: str | None = None
    definite: bool = True
    id: int | str | None = None

    @property
    def indeterminate(self) -> bool:
        return not self.ok and not self.definite

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "ok": self.ok, "op": self.op, "node": self.node,
                "term": self.term, "leader": self.leader, "value": _jsonable(self.value),
                "version": self.version, "error": self.error, "definite": self.definite,
                "id": self.id}

    @classmethod
    def from_dict(cls, data: Any) -> ClientReply:
        r = _Reader(data, cls.TYPE, ("ok", "op", "node", "term", "leader", "value", "version",
                                     "error", "definite", "id"))
        ok = r.bool("ok")
        op = r.str("op")
        if op not in OPS:
            raise MessageError(f"{cls.TYPE}: unknown op {op!r}; ops: {', '.join(OPS)}")
        error = r.str("error", required=False, optional=True)
        if ok and error is not None:
            raise MessageError(f"{cls.TYPE}: an ok reply carries no error, got {error!r}")
        if not ok and error is None:
            raise MessageError(f"{cls.TYPE}: a failed reply must name its error")
        return cls(ok, op, r.str("node"), r.int("term"),
                   r.str("leader", required=False, optional=True), r.json("value"),
                   r.int("version", required=False, default=0), error,
                   r.bool("definite", required=False, default=True), r.ident("id"))


Message = PeerMessage | ClientRequest | ClientReply

MESSAGE_TYPES: dict[str, Any] = {cls.TYPE: cls for cls in (
    VoteRequest, VoteReply, AppendEntries, AppendReply, ClientRequest, ClientReply)}
PEER_MESSAGE_TYPES = (VoteRequest, VoteReply, AppendEntries, AppendReply)


def message_from_dict(data: Any) -> Message:
    """Read any message from its JSON object, dispatching on `"type"`; MessageError if bad."""
    if not isinstance(data, Mapping):
        raise MessageError(f"message: expected a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MessageError(f"message: unknown type {kind!r}; types: "
                           f"{', '.join(MESSAGE_TYPES)}")
    return cls.from_dict(data)
