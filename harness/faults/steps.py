"""A fault schedule's steps: the start and the stop of one occurrence of a fault kind.

Both the schedule (`schedule.plan`) and a combination (`combinations.Combination.plan`) write
their occurrences through `occurrence`, so that every step has the same shape; the kind's own
actions (`Fault.START`, `Fault.STOP`) are read from the registry, a plug-in's included.
"""

from __future__ import annotations

from typing import Any

from harness import faults


def occurrence(kind: str, value: dict[str, Any], start: float, stop: float,
               **tags: Any) -> list[dict[str, Any]]:
    """The two schedule steps of one occurrence of fault `kind` planned as `value`: its start
    at `start` and its stop at `stop` seconds, each carrying `tags` (a combination's name).
    UnknownFault or BrokenFault (`harness.faults.find`) for a kind that is not one."""
    cls = faults.find(kind)
    return [{"at": round(start, 3), "fault": kind, "f": cls.START, "value": value, **tags},
            {"at": round(stop, 3), "fault": kind, "f": cls.STOP,
             "value": {"of": cls.START, **stop_details(value)}, **tags}]


def stop_details(value: dict[str, Any]) -> dict[str, Any]:
    """What a stop step repeats of its start: the target and its nodes."""
    return {k: v for k, v in value.items() if k in ("target", "nodes")}
