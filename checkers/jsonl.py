"""The native history format: JSON Lines, one event per line (docs/history-format.md).

Reading is strict: whatever does not follow the contract is a `HistoryError` naming the file,
the line and the field, never a silent skip. Writing produces exactly what reading accepts.
"""

from __future__ import annotations

import gc
import os
import re
from typing import IO, Any, Iterable, Iterator

import orjson

from checkers.history import NEMESIS, TYPES, HistoryError, Op

REQUIRED = ("index", "time", "process", "type", "f")
_TYPE_NAMES = ", ".join(TYPES)
# Keys of maps inside values may come from EDN (integers, ...): write them as JSON strings
# rather than fail.
_DUMP_OPTIONS = orjson.OPT_NON_STR_KEYS
_ORJSON_WHERE = re.compile(r": line \d+ column (\d+) \(char \d+\)$")


def _describe(value: Any) -> str:
    """A short rendering of a bad value for a message, never a whole huge object."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_error(source: str | None, line: int | None, name: str, expected: str, got: Any
                ) -> HistoryError:
    return HistoryError(f"expected {expected}, got {_describe(got)}", source, line, name)


def _to_op(d: Any, source: str | None, line: int | None, expected_index: int,
           last_time: int) -> Op:
    """Validate one decoded line and build its `Op`.

    Kept as one straight function because it runs once per event of histories of millions of
    events: `type(x) is int` both is fast and rejects bools, which are ints to Python.
    """
    if type(d) is not dict:
        raise HistoryError(f"expected a JSON object, got {type(d).__name__}", source, line)
    try:
        index = d["index"]
        time = d["time"]
        process = d["process"]
        typ = d["type"]
        f = d["f"]
    except KeyError:
        missing = next(name for name in REQUIRED if name not in d)
        raise HistoryError("missing required field", source, line, missing) from None
    if type(index) is not int:
        raise _type_error(source, line, "index", "an integer", index)
    if index != expected_index:
        raise HistoryError(f"expected {expected_index} (events are numbered 0, 1, 2, ... in "
                           f"file order), got {index}", source, line, "index")
    if type(time) is not int:
        raise _type_error(source, line, "time", "an integer (nanoseconds)", time)
    if time < last_time:
        raise HistoryError(f"time goes backwards: {time} after {last_time}", source, line,
                           "time")
    if type(process) is not int and process != NEMESIS:
        raise _type_error(source, line, "process", f"an integer or {NEMESIS!r}", process)
    # A tuple, not a set: the value may be unhashable (a list) and must still get a message.
    if typ not in TYPES:
        raise _type_error(source, line, "type", f"one of {_TYPE_NAMES}", typ)
    if type(f) is not str:
        raise _type_error(source, line, "f", "a string", f)
    key = d.get("key")
    if key is not None and type(key) is not str and type(key) is not int:
        raise _type_error(source, line, "key", "a string, an integer or null", key)
    node = d.get("node")
    if node is not None and type(node) is not str:
        raise _type_error(source, line, "node", "a string or null", node)
    version = d.get("version")
    if version is not None and type(version) is not int:
        raise _type_error(source, line, "version", "an integer or null", version)
    error = d.get("error")
    if error is not None and type(error) is not str:
        raise _type_error(source, line, "error", "a string or null", error)
    return Op(index, time, process, typ, f, key, d.get("value"), node, version, error, line)


def iter_jsonl(path: str | os.PathLike) -> Iterator[Op]:
    """Stream the events of a JSON Lines history, validating each as it is read.

    Yields one `Op` per non-blank line, with `Op.line` its 1-based line number. Raises
    `HistoryError` (file, line, field) at the first line that is not valid JSON (a truncated
    last line included), not an object, lacks a required field (index, time, process, type, f),
    has a field of the wrong type, an index other than its position, or a time earlier than the
    previous event's. Fields not in the format are ignored. An unreadable path is a
    `HistoryError` too, raised when iteration starts.
    """
    source = os.fspath(path)
    fh = _open(source, "rb")
    with fh:
        loads = orjson.loads
        JSONDecodeError = orjson.JSONDecodeError
        expected_index = 0
        last_time = -(1 << 63)
        for line, raw in enumerate(fh, 1):
            try:
                d = loads(raw)
            except JSONDecodeError as exc:
                # Blank lines are rare, so they are told apart only on this slow path.
                if raw.isspace():
                    continue
                raise _json_error(source, line, raw, exc) from None
            op = _to_op(d, source, line, expected_index, last_time)
            expected_index += 1
            last_time = op.time
            yield op


def _json_error(source: str, line: int, raw: bytes, exc: Exception) -> HistoryError:
    # orjson counts lines and columns within the one line it was given: keep the column only.
    reason = _ORJSON_WHERE.sub(r" at column \1", str(exc))
    if not raw.endswith(b"\n"):
        # Only the last line can lack its newline: the writer died while writing it.
        return HistoryError(f"truncated last line (not valid JSON: {reason})", source, line)
    return HistoryError(f"not valid JSON: {reason}", source, line)


def read_jsonl(path: str | os.PathLike) -> list[Op]:
    """Read a whole JSON Lines history; the list form of `iter_jsonl`, with the same errors."""
    # Building millions of objects that all stay alive makes the cyclic garbage collector
    # rescan them over and over, which more than doubles the time; none of them can form a
    # cycle, so collection is paused until the list is built.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return list(iter_jsonl(path))
    finally:
        if was_enabled:
            gc.enable()


def _open(source: str, mode: str) -> IO:
    try:
        return open(source, mode)
    except OSError as exc:
        raise HistoryError(f"cannot open: {exc.strerror or exc}", source) from None


def encode_op(op: Op, source: str | None = None, line: int | None = None, *,
              expected_index: int | None = None, last_time: int | None = None) -> bytes:
    """One event as a line of the format (with its newline), checked as the reader checks it.

    `expected_index` and `last_time` are what the reader will compare the event's index and
    time with (the event's position and the previous event's time); None skips that check.
    Raises `HistoryError` naming `source`, `line` and the field for an event the reader would
    reject, or one whose value cannot be written as JSON (an object of an unknown type, an
    integer beyond 64 bits).
    """
    d = op.to_dict()
    _to_op(d, source, line, op.index if expected_index is None else expected_index,
           op.time if last_time is None else last_time)
    try:
        return orjson.dumps(d, option=_DUMP_OPTIONS | orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError as exc:
        raise HistoryError(f"cannot be written as JSON: {exc}", source, line,
                           "value") from None


class HistoryWriter:
    """Writes a history while a run goes, one event at a time.

    Each `append` writes one line and flushes it to the operating system, so if the writing
    process crashes the file holds every event appended before, and at worst a truncated last
    line (which readers report as such). With `fsync=True` each line is also forced to disk,
    which survives a machine crash at the price of a disk sync per event.

    Events are checked as the reader will check them (index = position, time not going
    backwards, field types), so a history the harness writes can always be read back; a bad
    event raises `HistoryError` and is not written.
    """

    def __init__(self, path: str | os.PathLike, *, fsync: bool = False):
        self.path = os.fspath(path)
        self._fh = _open(self.path, "wb")
        self._fsync = fsync
        self._count = 0
        self._last_time = -(1 << 63)

    @property
    def count(self) -> int:
        """How many events were written."""
        return self._count

    def append(self, op: Op) -> None:
        """Validate and write one event, then flush it (see the class docstring)."""
        line = self._count + 1
        data = encode_op(op, self.path, line, expected_index=self._count,
                         last_time=self._last_time)
        self._fh.write(data)
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())
        self._count += 1
        self._last_time = op.time

    def close(self) -> None:
        """Flush and close the file; closing twice is harmless."""
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_jsonl(ops: Iterable[Op], path: str | os.PathLike) -> None:
    """Write a whole history to `path` (replacing it), checked as `HistoryWriter` checks it.

    Unlike `HistoryWriter` it does not flush per event: it is for histories already complete.
    """
    source = os.fspath(path)
    with _open(source, "wb") as fh:
        last_time = -(1 << 63)
        for position, op in enumerate(ops):
            line = position + 1
            data = encode_op(op, source, line, expected_index=position, last_time=last_time)
            last_time = op.time
            fh.write(data)
