"""The applied key-value state: what committed log entries add up to.

Keys are strings. A key holds nothing (absent), a register value (any JSON, set by `write` or
`cas`) or a set (built by `add`; a read returns its elements as a sorted list). Every key has a
version: the log index of the last entry that changed it (0 when never written). A successful
write, cas or add sets the key's version to its entry's index, even an add of an element
already present, so that a session's writes always get increasing versions; a cas that finds
another value changes nothing.

The state is a deterministic function of the entries applied, in index order, and nothing
else: every node that applies the same log prefix holds the same state. No I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from refnode.messages import CAS_MISMATCH, TYPE_MISMATCH, Entry


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome of applying one entry: what the client that proposed it is told."""

    ok: bool
    value: Any = None
    version: int = 0
    error: str | None = None


def _canonical(value: Any) -> str:
    """A canonical JSON text for a value: set elements are identified by it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _order(item: tuple[str, Any]) -> tuple:
    """Sort key for set elements: null, booleans, numbers, strings, then the rest by JSON text."""
    text, value = item
    if value is None:
        return (0, 0, "")
    if isinstance(value, bool):
        return (1, int(value), "")
    if isinstance(value, (int, float)):
        return (2, value, "")
    if isinstance(value, str):
        return (3, 0, value)
    return (4, 0, text)


class _Set:
    """A set of JSON values, identified by their canonical text."""

    __slots__ = ("elements",)

    def __init__(self) -> None:
        self.elements: dict[str, Any] = {}

    def sorted_list(self) -> list:
        return [value for _, value in sorted(self.elements.items(), key=_order)]


class KeyValueState:
    """String keys to register values or sets, with a version per key; see the module text."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._versions: dict[str, int] = {}
        self.applied_index = 0

    def apply(self, entry: Entry) -> ApplyResult:
        """Apply the next entry (its index must be `applied_index + 1`) and say what happened.

        Raises ValueError for an entry out of order or with an unknown op: a bug of the caller.
        """
        if entry.index != self.applied_index + 1:
            raise ValueError(f"entry {entry.index} applied after {self.applied_index}")
        self.applied_index = entry.index
        op, key, value = entry.op, entry.key, entry.value
        if op == "noop":
            return ApplyResult(True)
        current = self._values.get(key)
        if op == "write":
            self._values[key] = value
            self._versions[key] = entry.index
            return ApplyResult(True, value, entry.index)
        if op == "cas":
            expected, new = value
            if isinstance(current, _Set):
                return ApplyResult(False, current.sorted_list(), self._versions[key],
                                   TYPE_MISMATCH)
            if _canonical(current) != _canonical(expected):
                return ApplyResult(False, current, self._versions.get(key, 0), CAS_MISMATCH)
            self._values[key] = new
            self._versions[key] = entry.index
            return ApplyResult(True, new, entry.index)
        if op == "add":
            if current is None and key not in self._values:
                current = self._values[key] = _Set()
            if not isinstance(current, _Set):
                return ApplyResult(False, current, self._versions.get(key, 0), TYPE_MISMATCH)
            current.elements.setdefault(_canonical(value), value)
            self._versions[key] = entry.index
            return ApplyResult(True, value, entry.index)
        raise ValueError(f"entry {entry.index} has unknown op {op!r}")

    def read(self, key: str) -> tuple[Any, int]:
        """The key's value (a sorted list for a set, None when absent) and its version."""
        value = self._values.get(key)
        if isinstance(value, _Set):
            value = value.sorted_list()
        return value, self._versions.get(key, 0)

    def keys(self) -> list[str]:
        """Every key ever written, sorted."""
        return sorted(self._values)
