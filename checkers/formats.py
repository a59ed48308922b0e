"""One entry point for reading and writing histories in every format faultline knows.

- "jsonl": the native JSON Lines format (docs/history-format.md), `checkers.jsonl`;
- "edn": Jepsen's and Knossos' EDN, `checkers.edn`;
- "jepsen-log": Jepsen's older text logs, read only, `checkers.jepsen_log`.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from checkers.edn import read_edn, write_edn
from checkers.history import HistoryError, Op
from checkers.jepsen_log import is_op_line, read_jepsen_log
from checkers.jsonl import read_jsonl, write_jsonl

FORMATS = ("jsonl", "edn", "jepsen-log")

_READERS: dict[str, Callable[..., list[Op]]] = {
    "jsonl": read_jsonl,
    "edn": read_edn,
    "jepsen-log": read_jepsen_log,
}
_WRITERS: dict[str, Callable[[Iterable[Op], str], None]] = {
    "jsonl": write_jsonl,
    "edn": write_edn,
}
_OPTIONS = {"jsonl": frozenset(), "edn": frozenset({"tuple_keys"}),
            "jepsen-log": frozenset()}
_EXTENSIONS = {".jsonl": "jsonl", ".json": "jsonl", ".edn": "edn", ".log": "jepsen-log"}
# Enough of the head of a file to get past a log's preamble to its first op line.
_SNIFF_BYTES = 64 * 1024


def load_history(path: str | os.PathLike, format: str | None = None, **options: Any
                 ) -> list[Op]:
    """Read the history at `path` in `format`, one of `FORMATS`.

    With `format=None` the format comes from the extension (.jsonl and .json: jsonl, .edn: edn,
    .log: jepsen-log), else from the content (see `detect_format`). `options` go to the
    format's reader: `tuple_keys` for edn (see `checkers.edn.read_edn`); an option the format
    does not take is a `TypeError`.

    Raises `HistoryError` for a missing path, a directory, an unknown format name, content
    whose format cannot be told, and whatever the reader finds wrong in the history.
    """
    source = os.fspath(path)
    _check_readable(source)
    name = format if format is not None else detect_format(source)
    reader = _READERS.get(name)
    if reader is None:
        raise HistoryError(f"unknown history format {name!r}; formats are "
                           f"{', '.join(FORMATS)}", source)
    unknown = set(options) - _OPTIONS[name]
    if unknown:
        raise TypeError(f"format {name!r} takes no option {', '.join(sorted(unknown))}")
    return reader(source, **options)


def save_history(ops: Iterable[Op], path: str | os.PathLike, format: str = "jsonl") -> None:
    """Write `ops` to `path` in `format` ("jsonl" or "edn"), replacing the file.

    "jepsen-log" is not written: it has no place for keys, times or nodes. Raises
    `HistoryError` for another format, and for events the format cannot hold.
    """
    source = os.fspath(path)
    writer = _WRITERS.get(format)
    if writer is None:
        raise HistoryError(f"cannot write history format {format!r}; writable formats are "
                           f"{', '.join(_WRITERS)}", source)
    writer(ops, source)


def detect_format(path: str | os.PathLike) -> str:
    """The format of the history at `path`, from its extension or else its first characters.

    By content: `{"` starts jsonl; `[`, `(`, `{:` or a `;` comment starts edn; a first line
    starting with INFO, or any Jepsen op line near the start, means jepsen-log. Raises
    `HistoryError`, naming the formats, when none of these fits.
    """
    source = os.fspath(path)
    extension = os.path.splitext(source)[1].lower()
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    _check_readable(source)
    try:
        with open(source, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise HistoryError(f"cannot open: {exc.strerror or exc}", source) from None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("{"):
        after = text[1:].lstrip()
        if after.startswith('"'):
            return "jsonl"
        if after.startswith(":"):
            return "edn"
    elif text.startswith(("[", "(", ";")):
        return "edn"
    if text.startswith("INFO") or any(is_op_line(line) for line in text.splitlines()):
        return "jepsen-log"
    shown = text[:20].split("\n")[0]
    raise HistoryError(f"cannot tell the history format from the extension or the content "
                       f"(starts {shown!r}); give one of {', '.join(FORMATS)}", source, 1)


def _check_readable(source: str) -> None:
    if not os.path.exists(source):
        raise HistoryError("no such file", source)
    if os.path.isdir(source):
        raise HistoryError("is a directory, not a history file", source)
