"""Wire framing for refnode's client and peer connections, and validation of client requests.

A frame is a 4-byte big-endian unsigned length followed by that many bytes of payload, the payload
one JSON object (UTF-8, as orjson reads and writes it). The same rules hold in both directions and
on both kinds of connection.

Errors are split by whose fault they are (as h11 does):

- `FrameError`: the peer sent bytes that are not a valid stream of frames (oversized length,
  truncated frame, payload not JSON, payload not an object). The stream cannot be trusted after
  it; the runtime answers an error if it can and closes the connection.
- `RequestError`: a well-formed frame holding a request that is not valid (unknown op, missing or
  mistyped field, unknown field). The stream is fine; the runtime answers an error reply to
  `request_id` (when the request had a usable id) and goes on serving the connection.
- Encoding our own frames raises TypeError (not a dict, not JSON-encodable) or ValueError (too
  large): the local caller's bug, never the peer's.

Every message is one line, names the field at fault where there is one, and never echoes more
than a short prefix of what the peer sent. Decoding never allocates more than the bytes actually
received, whatever length a header declares: an oversized length is refused as soon as the four
length bytes are in.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import orjson

from refnode.messages import MessageError, check_written_value

MAX_FRAME_BYTES = 1 << 20          # payload limit, both directions; configurable per call
LENGTH_BYTES = 4
MAX_KEY_LENGTH = 1024              # characters
# Clock skews the admin call takes: past these a node's clock loses its precision (an offset
# of 1e15 s leaves 0.125 s steps, and the timer loop spins) or its timers fire in a burst.
MAX_CLOCK_OFFSET = 1e6             # seconds, either way (about 11 days)
CLOCK_RATES = (0.01, 100.0)        # slowest and fastest

OPS = ("read", "write", "cas", "add", "status", "admin")
READ_MODES = ("leader", "lease", "follower")
KEYED_OPS = frozenset({"read", "write", "cas", "add"})

# The fields each op accepts besides `id` and `op`; anything else is rejected.
_FIELDS: dict[str, frozenset[str]] = {
    "read": frozenset({"key", "read_mode", "min_version"}),
    "write": frozenset({"key", "value", "min_version"}),
    "cas": frozenset({"key", "value", "min_version"}),
    "add": frozenset({"key", "value", "min_version"}),
    "status": frozenset(),
    "admin": frozenset({"token", "clock_offset", "clock_rate"}),
}


class FrameError(ValueError):
    """The peer's byte stream is not a valid sequence of frames. One-line message."""


class RequestError(ValueError):
    """A client request, well framed, that is invalid. `field` names the field at fault (None
    when the request as a whole is wrong); `request_id` is the request's id when it was a valid
    int, so the error reply can name the request it answers."""

    def __init__(self, message: str, field: str | None = None,
                 request_id: int | None = None):
        super().__init__(f"field '{field}': {message}" if field else message)
        self.field = field
        self.request_id = request_id


def _short(raw: Any, limit: int = 40) -> str:
    text = repr(raw)
    return text if len(text) <= limit else text[:limit] + "..."


def encode_frame(obj: dict, max_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """The frame carrying `obj`, a dict of JSON values with str keys. TypeError if it is not
    one, ValueError if its payload exceeds `max_bytes` (the peer would refuse it)."""
    if not isinstance(obj, dict):
        raise TypeError(f"a frame carries a JSON object (dict), not {type(obj).__name__}")
    payload = orjson.dumps(obj)     # orjson.JSONEncodeError is a TypeError
    if len(payload) > max_bytes:
        raise ValueError(f"frame payload of {len(payload)} bytes exceeds the limit of "
                         f"{max_bytes}")
    return len(payload).to_bytes(LENGTH_BYTES, "big") + payload


def decode_payload(payload: bytes) -> dict:
    """The JSON object in a frame's payload; FrameError if it is not valid JSON or not an
    object."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        reason = str(e).splitlines()[0] if str(e) else "invalid"
        raise FrameError(f"frame payload is not valid JSON: {reason}") from None
    if not isinstance(obj, dict):
        raise FrameError(f"frame payload is a JSON {_json_type(obj)}, not an object")
    return obj


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check_length(length: int, max_bytes: int) -> None:
    if length > max_bytes:
        raise FrameError(f"frame length {length} exceeds the limit of {max_bytes} bytes")


async def read_frame(reader: asyncio.StreamReader,
                     max_bytes: int = MAX_FRAME_BYTES) -> dict | None:
    """Read one frame from `reader`: its object, or None on a clean end of stream (EOF exactly
    at a frame boundary). FrameError for an oversized length (refused before any of the body is
    read), EOF inside a frame, or a payload that is not a JSON object. Not cancellation-safe:
    a read cancelled mid-frame leaves the stream mid-frame, so the connection must be closed."""
    try:
        header = await reader.readexactly(LENGTH_BYTES)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise FrameError(f"truncated frame: end of stream after {len(e.partial)} of "
                         f"{LENGTH_BYTES} length bytes") from None
    length = int.from_bytes(header, "big")
    _check_length(length, max_bytes)
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as e:
        raise FrameError(f"truncated frame: end of stream after {len(e.partial)} of {length} "
                         f"payload bytes") from None
    return decode_payload(payload)


class FrameDecoder:
    """Incremental decoding without I/O: feed bytes as they arrive, get complete frames.

    After a FrameError the stream has lost its framing: the decoder stays failed and raises the
    same error on every later call. `feed` returns the frames completed by the bytes given;
    if a malformed frame follows complete ones in the same bytes, those are returned first and
    the error is raised by the next call. The buffer never holds more than one frame's worth
    of bytes beyond what was fed in a single call.
    """

    def __init__(self, max_bytes: int = MAX_FRAME_BYTES):
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._pos = 0                      # start of the unconsumed bytes in _buf
        self._error: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> list[dict]:
        """Add `data` and return every frame it completes, in order (possibly none)."""
        if self._error is not None:
            raise self._error
        self._buf += data
        frames: list[dict] = []
        while True:
            try:
                obj = self._next()
            except FrameError as e:
                self._error = e
                self._buf = bytearray()
                self._pos = 0
                if frames:
                    return frames
                raise
            if obj is None:
                break
            frames.append(obj)
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        return frames

    def _next(self) -> dict | None:
        buf, pos = self._buf, self._pos
        if len(buf) - pos < LENGTH_BYTES:
            return None
        length = int.from_bytes(buf[pos:pos + LENGTH_BYTES], "big")
        _check_length(length, self.max_bytes)
        end = pos + LENGTH_BYTES + length
        if len(buf) < end:
            return None
        payload = bytes(buf[pos + LENGTH_BYTES:end])
        self._pos = end
        return decode_payload(payload)

    def eof(self) -> None:
        """The stream ended: FrameError if it ended inside a frame (or had failed before)."""
        if self._error is not None:
            raise self._error
        if self.buffered:
            self._error = FrameError(f"truncated frame: end of stream with {self.buffered} "
                                     f"bytes of an unfinished frame")
            raise self._error


# -- client requests ---------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def validate_request(obj: Any) -> dict:
    """Check a client request (the object of one frame) and return it normalized: a new dict
    with only the fields of its op and the defaults filled in (`read_mode` "leader" and
    `min_version` 0 for keyed ops; admin's `clock_offset`/`clock_rate` as floats, absent when
    not given). RequestError, naming the field, for:

    - `id`: missing or not an int;  `op`: missing or not one of read|write|cas|add|status|admin;
    - `key` (read, write, cas, add; required): not a string, empty, or over 1024 characters;
    - `value`: required for write and add (any JSON value), for cas a 2-element list
      [expected, new]; not allowed for other ops; nested deeper than 32 levels or over
      256 KiB as JSON (`refnode.messages.check_written_value`: what a client may write, every
      peer accepts in a log entry);
    - `read_mode` (read only): not one of leader|lease|follower;
    - `min_version` (keyed ops): not an int >= 0;
    - `token` (admin; required): not a string;  `clock_offset` (admin): not a number of
      seconds within ±1e6;  `clock_rate` (admin): not a number from 0.01 to 100;  an admin
      request needs at least one of the two;
    - any other field, or a field its op does not take (strict: typos are errors, not no-ops).
    """
    if not isinstance(obj, dict):
        raise RequestError(f"a request is a JSON object, not {_json_type(obj)}")
    raw_id = obj.get("id")
    request_id = raw_id if _is_int(raw_id) else None

    def fail(field: str | None, message: str) -> RequestError:
        return RequestError(message, field, request_id)

    if "id" not in obj:
        raise fail("id", "missing")
    if request_id is None:
        raise fail("id", f"must be an int, got {_short(raw_id)}")
    if "op" not in obj:
        raise fail("op", "missing")
    op = obj["op"]
    if not isinstance(op, str) or op not in _FIELDS:
        raise fail("op", f"must be one of {'|'.join(OPS)}, got {_short(op)}")
    allowed = _FIELDS[op]
    for name in obj:
        if name not in allowed and name not in ("id", "op"):
            known = any(name in fields for fields in _FIELDS.values())
            raise fail(name, f"not allowed for op '{op}'" if known else "unknown field")

    request: dict[str, Any] = {"id": request_id, "op": op}
    if op in KEYED_OPS:
        if "key" not in obj:
            raise fail("key", f"required for op '{op}'")
        key = obj["key"]
        if not isinstance(key, str) or not key:
            raise fail("key", f"must be a non-empty string, got {_short(key)}")
        if len(key) > MAX_KEY_LENGTH:
            raise fail("key", f"longer than {MAX_KEY_LENGTH} characters ({len(key)})")
        request["key"] = key
        if op != "read":
            if "value" not in obj:
                raise fail("value", f"required for op '{op}'")
            value = obj["value"]
            if op == "cas" and not (isinstance(value, list) and len(value) == 2):
                raise fail("value", f"for cas must be [expected, new], got {_short(value)}")
            try:
                # The same check every peer makes of the log entry this value becomes.
                check_written_value(value, "value")
            except MessageError as exc:
                raise fail("value", str(exc).removeprefix("value: ")) from None
            request["value"] = value
        else:
            mode = obj.get("read_mode", "leader")
            if not isinstance(mode, str) or mode not in READ_MODES:
                raise fail("read_mode",
                           f"must be one of {'|'.join(READ_MODES)}, got {_short(mode)}")
            request["read_mode"] = mode
        min_version = obj.get("min_version", 0)
        if not _is_int(min_version) or min_version < 0:
            raise fail("min_version", f"must be an int >= 0, got {_short(min_version)}")
        request["min_version"] = min_version
    elif op == "admin":
        if "token" not in obj:
            raise fail("token", "required for op 'admin'")
        token = obj["token"]
        if not isinstance(token, str):
            raise fail("token", f"must be a string, got {_short(token)}")
        request["token"] = token
        if "clock_offset" not in obj and "clock_rate" not in obj:
            raise fail(None, "an admin request needs clock_offset or clock_rate")
        if "clock_offset" in obj:
            offset = obj["clock_offset"]
            if not _is_number(offset) or abs(offset) > MAX_CLOCK_OFFSET:
                raise fail("clock_offset", f"must be a number of seconds within "
                           f"±{MAX_CLOCK_OFFSET:g}, got {_short(offset)}")
            request["clock_offset"] = float(offset)
        if "clock_rate" in obj:
            rate = obj["clock_rate"]
            if not _is_number(rate) or not CLOCK_RATES[0] <= rate <= CLOCK_RATES[1]:
                raise fail("clock_rate", f"must be a number from {CLOCK_RATES[0]:g} to "
                           f"{CLOCK_RATES[1]:g}, got {_short(rate)}")
            request["clock_rate"] = float(rate)
    return request
