"""Small helpers shared by checkers that report figures: quantiles, units, JSON-safe values.

Figures end up in `results.json`, so everything here returns plain JSON values: str keys,
lists rather than tuples or sets, numbers rounded to a readable precision.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

NS_PER_MS = 1_000_000


def quantiles(values: Iterable[float], qs: Sequence[float]) -> dict[str, float] | None:
    """Nearest-rank quantiles of `values`, or None when there are no values.

    The q-quantile is the smallest value v such that at least a share q of the values are
    <= v (rank ceil(q * n), at least 1), so every figure is a value that was observed, never an
    interpolation. Keys are the quantiles as text: "min" for 0, "max" for 1, otherwise
    ``format(q, "g")`` ("0.5", "0.95"). Raises ValueError for q outside [0, 1].
    """
    ordered = sorted(values)
    if not ordered:
        return None
    n = len(ordered)
    out: dict[str, float] = {}
    for q in qs:
        if not 0 <= q <= 1:
            raise ValueError(f"quantile {q!r} is outside [0, 1]")
        # round() absorbs float noise such as 0.95 * 100 = 95.00000000000001
        rank = max(1, math.ceil(round(q * n, 9)))
        out[quantile_label(q)] = ordered[rank - 1]
    return out


def quantile_label(q: float) -> str:
    """The key under which `quantiles` reports q."""
    if q == 0:
        return "min"
    if q == 1:
        return "max"
    return format(q, "g")


def ns_to_ms(nanoseconds: float) -> float:
    """Nanoseconds (the history's unit) as milliseconds, to the microsecond."""
    return round(nanoseconds / NS_PER_MS, 3)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON: tuples, sets and frozensets become lists (sets sorted), dict keys
    become text, anything else unknown becomes its `str`."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted_values(jsonable(v) for v in value)
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): jsonable(v) for k, v in value.items()}
    return str(value)


def sorted_values(values: Iterable[Any]) -> list[Any]:
    """`values` sorted naturally when they are comparable, else by their `repr` (mixed types,
    None among strings), so that reports come out in a stable order."""
    items = list(values)
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=lambda v: (type(v).__name__, repr(v)))
