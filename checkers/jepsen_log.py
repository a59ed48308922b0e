"""Jepsen's older text logs, where `jepsen.util` logged each op as a line of its own:

    INFO  jepsen.util - 3	:invoke	:read	nil
    INFO  jepsen.util - 8	:fail	:read	:timed-out
    INFO  jepsen.util - :nemesis	:info	:start	nil

that is process, type, f and value (EDN) separated by tabs (sometimes expanded to spaces),
optionally followed by an error. Everything else in such a log is other logging and skipped.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterator

from checkers.edn import parse_edn, to_plain
from checkers.history import NEMESIS, TYPES, HistoryError, Op

_TYPE_NAMES = ", ".join(TYPES)
# Log layouts differ around the logger's name ("jepsen.util - ", "jepsen.util: ",
# "jepsen.util "); an op line continues with a process: a number or a keyword (:nemesis).
_OP_START = re.compile(r"jepsen\.util(?: -|:)? +(?=\d|:)")
_PROCESS = re.compile(r"\d+|:\S+")


def is_op_line(line: str) -> bool:
    """Whether the line starts like a logged op (it may still be malformed)."""
    return _op_text(line) is not None


def _op_text(line: str) -> str | None:
    """What follows "jepsen.util - " on a line that starts like an op line, else None."""
    match = _OP_START.search(line)
    if match is None or _PROCESS.match(line, match.end()) is None:
        return None
    return line[match.end():].rstrip("\r\n")


def iter_jepsen_log(path: str | os.PathLike) -> Iterator[Op]:
    """Stream the ops of a Jepsen text log, in file order.

    Lines that do not start like an op line (see `is_op_line`) are skipped on purpose: a log
    holds much else. `index` and `time` are the op's position among the ops (these logs have no
    usable clock, and their order is the real-time order); `Op.line` is the line in the file.
    Keywords become strings (`:timed-out` -> "timed-out"), `:nemesis` the process "nemesis".

    Raises `HistoryError` with the file and line for an op line with missing fields, a
    process that is neither a number nor :nemesis, a type other than invoke, ok, fail or info,
    a value that is not one EDN form, or bytes that are not UTF-8; and for an unreadable file.
    """
    source = os.fspath(path)
    try:
        fh = open(source, "rb")
    except OSError as exc:
        raise HistoryError(f"cannot open: {exc.strerror or exc}", source) from None
    # The same few value texts ("nil", "3", "[1 2]", ":timed-out") recur on most lines, and
    # edn_format is slow to start a parse, so each distinct text is parsed once. The parsed
    # form is immutable; each op still gets its own converted copy.
    parsed: dict[str, Any] = {}
    with fh:
        position = 0
        for number, raw in enumerate(fh, 1):
            # Other log lines may be in any encoding; only op lines need to be text.
            if b"jepsen.util" not in raw:
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HistoryError(f"not UTF-8 text: {exc.reason}", source, number) from None
            rest = _op_text(text)
            if rest is None:
                continue
            yield _parse_op(rest, position, source, number, parsed)
            position += 1


def read_jepsen_log(path: str | os.PathLike) -> list[Op]:
    """The list form of `iter_jepsen_log`, with the same rules and errors."""
    return list(iter_jepsen_log(path))


def _parse_op(rest: str, position: int, source: str, line: int, parsed: dict[str, Any]
              ) -> Op:
    if "\t" in rest:
        parts = [part.strip() for part in rest.split("\t")]
    else:
        parts = rest.split(None, 3)
    if len(parts) < 4 or len(parts) > 5 or not all(parts[:3]):
        raise HistoryError(f"expected process, type, f and value separated by tabs, got "
                           f"{rest!r}", source, line)
    process_text, type_text, f_text, value_text = parts[:4]
    if process_text.isdigit():
        process: int | str = int(process_text)
    elif process_text == ":" + NEMESIS:
        process = NEMESIS
    else:
        raise HistoryError(f"expected a number or :{NEMESIS}, got {process_text!r}", source,
                           line, "process")
    typ = type_text.removeprefix(":")
    if typ not in TYPES:
        raise HistoryError(f"expected one of {_TYPE_NAMES}, got {type_text!r}", source, line,
                           "type")
    f = f_text.removeprefix(":")
    if not f:
        raise HistoryError(f"expected a keyword, got {f_text!r}", source, line, "f")
    form = parsed.get(value_text)
    if form is None:
        forms = _parse_value(value_text, source, line)
        if len(forms) != 1:
            raise HistoryError(f"expected one EDN value, got {value_text!r}", source, line,
                               "value")
        form = parsed[value_text] = forms
    error = None
    if len(parts) == 5 and parts[4]:
        error = parts[4].removeprefix(":") if " " not in parts[4] else parts[4]
    return Op(position, position, process, typ, f, None, to_plain(form[0]), None, None, error,
              line)


def _parse_value(text: str, source: str, line: int) -> list[Any]:
    try:
        return parse_edn(text, source)
    except HistoryError as exc:
        raise HistoryError(f"{exc.reason}: {text!r}", source, line, "value") from None
