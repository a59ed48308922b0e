"""Jepsen's and Knossos' EDN histories, read into and written from `Op`s.

Two layouts are read: one EDN vector (or list) of op maps, as in Knossos' data files, and one
op map per top-level form, usually one per line, as in porcupine's kv files and Jepsen's
`history.edn`. Parsing is left to the `edn_format` library; this module only turns its values
into the plain Python values of the history format and checks the contract.
"""

from __future__ import annotations

import decimal
import fractions
import os
import re
from collections.abc import Mapping
from typing import Any, Iterable

import edn_format
from edn_format import Keyword, Symbol, edn_lex

from checkers.history import NEMESIS, TYPES, HistoryError, Op

_TYPE_NAMES = ", ".join(TYPES)
TXN = "txn"
_KEYWORD_RE = re.compile(edn_lex.KEYWORD)
_OPENERS = frozenset({"VECTOR_START", "LIST_START", "MAP_START", "SET_START"})
_CLOSERS = frozenset({"VECTOR_END", "LIST_END", "MAP_OR_SET_END"})
# Forms that glue themselves to the next form: with them, counting tokens no longer counts
# elements, so line numbers are given up rather than guessed.
_PREFIXES = frozenset({"TAG", "DISCARD_TAG", "MAP_NAMESPACE_TAG", "CARET"})
_LEXPOS_RE = re.compile(r"lexpos (\d+)")


def to_plain(value: Any) -> Any:
    """An EDN value as a plain JSON-like Python value.

    Keywords and symbols become their names (``:timed-out`` -> ``"timed-out"``), vectors,
    lists and sets become lists, maps become dicts (keys converted the same way), nil None;
    decimals and ratios become floats, other tagged values (instants, UUIDs) their text.
    """
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, (Keyword, Symbol)):
        return value.name
    if isinstance(value, str):
        # edn_format's Char is a str subclass; JSON wants plain strings.
        return str(value)
    if isinstance(value, Mapping):
        return {_plain_key(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (frozenset, set)):
        items = [to_plain(v) for v in value]
        try:
            # A set has no order; sorting gives the same list every time when it can.
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, (list, tuple, edn_format.ImmutableList)):
        return [to_plain(v) for v in value]
    if isinstance(value, (decimal.Decimal, fractions.Fraction)):
        return float(value)
    return str(value)


def _plain_key(key: Any) -> Any:
    plain = to_plain(key)
    # A dict key must stay hashable; a composite key keeps its shape as a tuple.
    return tuple(plain) if isinstance(plain, list) else plain


def _text(value: Any) -> str | None:
    """A field that the history format holds as text (node, error), from any EDN value."""
    if value is None:
        return None
    if isinstance(value, (Keyword, Symbol)):
        return value.name
    if isinstance(value, str):
        return str(value)
    return edn_format.dumps(value)


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _decode_error(exc: Exception, text: str, source: str) -> HistoryError:
    """Where and why edn_format gave up, as well as its exception lets us tell."""
    detail = exc.args[0] if exc.args else exc
    position = getattr(detail, "lexpos", None)
    if position is not None:
        return HistoryError(f"not valid EDN: unexpected {detail.value!r}", source,
                            _line_of(text, position))
    message = str(detail)
    match = _LEXPOS_RE.search(message)
    if match:
        return HistoryError(f"not valid EDN: {message.split(' with lexpos')[0]}", source,
                            _line_of(text, int(match.group(1))))
    if message == "EOF Reached":
        return HistoryError("not valid EDN: the file ends inside a form (truncated, or a "
                            "bracket not closed)", source, text.count("\n") + 1)
    return HistoryError(f"not valid EDN: {message}", source)


def _element_lines(text: str, depth: int, count: int) -> list[int] | None:
    """The line where each element starts: each form at `depth` (0 for top-level forms).

    edn_format's parser keeps no positions, so its lexer is run again and the forms at the
    elements' depth are counted. None when the count disagrees with the parse.
    """
    lexer = edn_lex.lex()
    lexer.input(text)
    positions = []
    level = 0
    for token in iter(lexer.token, None):
        kind = token.type
        if level == depth:
            if kind in _PREFIXES:
                return None
            if kind not in _CLOSERS:
                positions.append(token.lexpos)
        if kind in _OPENERS:
            level += 1
        elif kind in _CLOSERS:
            level -= 1
    if len(positions) != count:
        return None
    lines = []
    line, previous = 1, 0
    for position in positions:
        line += text.count("\n", previous, position)
        previous = position
        lines.append(line)
    return lines


def _read_text(source: str) -> str:
    try:
        with open(source, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise HistoryError(f"cannot open: {exc.strerror or exc}", source) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HistoryError(f"not UTF-8 text: {exc.reason}", source,
                           data.count(b"\n", 0, exc.start) + 1) from None


def parse_edn(text: str, source: str) -> list[Any]:
    """All top-level forms of an EDN text, as edn_format returns them.

    Raises `HistoryError` naming `source` and, when edn_format tells where, the line.
    """
    try:
        return edn_format.loads_all(text)
    except Exception as exc:
        # edn_format raises EDNDecodeError for syntax, NotImplementedError for unknown tags,
        # and whatever its tag handlers raise: all of them mean the text is not usable EDN.
        raise _decode_error(exc, text, source) from None


def read_edn(path: str | os.PathLike, *, tuple_keys: bool | None = None) -> list[Op]:
    """Read a Jepsen/Knossos EDN history: one vector or list of op maps, or one map per form.

    - Keywords become strings, `:process :nemesis` becomes "nemesis"; `:index` is ignored and
      events are numbered 0, 1, 2, ... in file order.
    - `time` is `:time` when every op has one, else the event's position in the file (such
      files are in real-time order). File order is the authority: a `:time` lower than the
      previous event's (Jepsen stamps ops before appending them, so neighbours can swap by a
      few microseconds) is raised to one nanosecond after it.
    - Keys: an op with a `:key` field (even nil) has that key and its value as is. For the
      others, with `tuple_keys` the value is Jepsen's `independent` `[key value]` tuple, split
      into key and value; `tuple_keys=None` detects it: tuples when every non-nemesis op
      without `:key` has a 2-element vector value (a plain register's read invocation has nil,
      so it is never mistaken for one). A transaction's value (`:f :txn`, a list of
      micro-ops such as ``[[:r 5 nil] [:append 5 3]]``) is never taken for a tuple.
    - `Op.line` is the line where the op's map starts.

    Raises `HistoryError` with the file and line for unreadable or unparsable EDN, an element
    that is not a map, a missing `:process`, `:type` or `:f`, a type other than invoke, ok,
    fail or info, a field of the wrong type, or (with `tuple_keys=True`) a value that is not a
    tuple.
    """
    source = os.fspath(path)
    text = _read_text(source)
    forms = parse_edn(text, source)
    if len(forms) == 1 and isinstance(forms[0], (edn_format.ImmutableList, tuple, list)):
        elements, depth = forms[0], 1
    else:
        elements, depth = forms, 0
    lines = _element_lines(text, depth, len(elements))
    return ops_from_maps(elements, source, lines, tuple_keys=tuple_keys)


def ops_from_maps(elements: Iterable[Any], source: str, lines: list[int] | None = None, *,
                  tuple_keys: bool | None = None) -> list[Op]:
    """Events from parsed EDN op maps, with the rules and errors of `read_edn`.

    `lines[i]` is where element i starts, for messages; without it messages name the
    element's position instead.
    """
    fields = []
    for position, element in enumerate(elements):
        line = lines[position] if lines is not None else None
        where = line if line is not None else f"element {position}"
        if not isinstance(element, Mapping):
            raise _error(f"expected an op map, got {_show(element)}", source, where)
        fields.append(_fields(element, source, where))
    split = _decide_tuples(fields, source, tuple_keys)
    every_time = all(op_fields["time"] is not None for op_fields in fields)
    ops = []
    last_time = None
    for position, op_fields in enumerate(fields):
        key, value = op_fields["key"], op_fields["value"]
        where = op_fields["where"]
        if split and _keyless(op_fields):
            key, value = value
            if key is not None and type(key) not in (str, int):
                raise _error(f"the key of a [key value] tuple must be a string, an integer "
                             f"or nil, got {_show(key)}", source, where, "value")
        if every_time:
            time = op_fields["time"]
            if last_time is not None and time < last_time:
                time = last_time + 1
        else:
            time = position
        last_time = time
        ops.append(Op(position, time, op_fields["process"], op_fields["type"], op_fields["f"],
                      key, value, op_fields["node"], op_fields["version"], op_fields["error"],
                      where if isinstance(where, int) else None))
    return ops


def _decide_tuples(fields: list[dict], source: str, tuple_keys: bool | None) -> bool:
    candidates = [op_fields for op_fields in fields if _keyless(op_fields)]
    if tuple_keys is None:
        return bool(candidates) and all(_is_tuple(c["value"]) for c in candidates)
    if tuple_keys:
        for c in candidates:
            if not _is_tuple(c["value"]):
                raise _error(f"expected a [key value] tuple, got {_show(c['value'])}", source,
                             c["where"], "value")
    return tuple_keys


def _keyless(op_fields: dict) -> bool:
    """A client op whose value may be an `independent` [key value] tuple. A transaction's
    value (f :txn, Elle's list-append) is a list of micro-ops, never a tuple, even when it
    holds two of them."""
    return (not op_fields["has_key"] and op_fields["process"] != NEMESIS
            and op_fields["f"] != TXN)


def _is_tuple(value: Any) -> bool:
    return type(value) is list and len(value) == 2


def _fields(element: Mapping, source: str, where: int | str) -> dict:
    """Checked, plain fields of one op map."""
    # Iterating items once avoids hashing edn_format's Keyword objects on every lookup,
    # which is slow.
    m = {(k.name if isinstance(k, Keyword) else k): v for k, v in element.items()}
    for name in ("process", "type", "f"):
        if name not in m:
            raise _error("missing required field", source, where, name)
    process = m["process"]
    if type(process) is not int:
        if _name(process) != NEMESIS:
            raise _error(f"expected an integer or :{NEMESIS}, got {_show(process)}", source,
                         where, "process")
        process = NEMESIS
    typ = _name(m["type"])
    if typ not in TYPES:
        raise _error(f"expected one of {_TYPE_NAMES}, got {_show(m['type'])}", source, where,
                     "type")
    f = _name(m["f"])
    if f is None:
        raise _error(f"expected a keyword or a string, got {_show(m['f'])}", source, where,
                     "f")
    time = m.get("time")
    if time is not None and type(time) is not int:
        raise _error(f"expected an integer, got {_show(time)}", source, where, "time")
    key = to_plain(m.get("key"))
    if key is not None and type(key) not in (str, int):
        raise _error(f"expected a string, an integer or nil, got {_show(m['key'])}", source,
                     where, "key")
    version = m.get("version")
    if version is not None and type(version) is not int:
        raise _error(f"expected an integer or nil, got {_show(version)}", source, where,
                     "version")
    return {"where": where, "process": process, "type": typ, "f": f, "time": time,
            "has_key": "key" in m, "key": key, "value": to_plain(m.get("value")),
            "node": _text(m.get("node")), "version": version, "error": _text(m.get("error"))}


def _name(value: Any) -> str | None:
    if isinstance(value, (Keyword, Symbol)):
        return value.name
    if isinstance(value, str):
        return str(value)
    return None


def _show(value: Any) -> str:
    try:
        text = edn_format.dumps(value)
    except Exception:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _error(message: str, source: str, where: int | str, field_name: str | None = None
           ) -> HistoryError:
    if isinstance(where, int):
        return HistoryError(message, source, where, field_name)
    return HistoryError(f"{where}: {message}", source, None, field_name)


def _edn_name(name: str) -> Any:
    """A keyword when the name can be one, else the string (which reads back the same)."""
    return Keyword(name) if _KEYWORD_RE.fullmatch(":" + name) else name


def dumps_op(op: Op) -> str:
    """One event as an EDN map: type, f and the nemesis process as keywords.

    `:key` is always written, nil included, so that reading it back never mistakes a value
    for a `[key value]` tuple. Raises `HistoryError` (field 'value') when the value has no EDN
    form.
    """
    m: dict[Any, Any] = {
        Keyword("index"): op.index,
        Keyword("time"): op.time,
        Keyword("process"): Keyword(NEMESIS) if op.process == NEMESIS else op.process,
        Keyword("type"): Keyword(op.type),
        Keyword("f"): _edn_name(op.f),
        Keyword("key"): op.key,
        Keyword("value"): op.value,
    }
    if op.node is not None:
        m[Keyword("node")] = op.node
    if op.version is not None:
        m[Keyword("version")] = op.version
    if op.error is not None:
        m[Keyword("error")] = op.error
    try:
        return edn_format.dumps(m)
    except NotImplementedError as exc:
        raise HistoryError(f"cannot be written as EDN: {exc}", None, None, "value") from None


def write_edn(ops: Iterable[Op], path: str | os.PathLike) -> None:
    """Write a history as one EDN vector of op maps, one map per line (see `dumps_op`).

    `read_edn` reads it back to equal events. Raises `HistoryError` naming the file and the
    line the event would have had when an event cannot be written.
    """
    source = os.fspath(path)
    maps = []
    for position, op in enumerate(ops):
        try:
            maps.append(dumps_op(op))
        except HistoryError as exc:
            raise HistoryError(exc.reason, source, position + 1, exc.field_name) from None
    try:
        with open(source, "w", encoding="utf-8") as fh:
            fh.write("[" + "\n ".join(maps) + "]\n")
    except OSError as exc:
        raise HistoryError(f"cannot write: {exc.strerror or exc}", source) from None
