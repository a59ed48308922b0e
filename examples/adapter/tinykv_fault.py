"""torn-write: tinykv killed halfway through appending a record, a fault kind of its own.

tinykv acknowledges a write once its record is in the log, and replays the log when it starts.
A crash in the middle of an append leaves the first bytes of a record at the end of the log:
a write never acknowledged, which tinykv must drop when it starts again (`Store` in
tinykv_faultline.py), keeping everything before it. faultline's kill fault rarely lands in the
middle of an append; this fault makes the torn tail certain. It kills the node, appends part
of a record to its log as a write cut off by the crash would have left it, and, when it ends,
starts the node again and records whether the torn bytes are gone.

It is a plug-in, found through this package's entry point in the group `faultline.faults`
(pyproject.toml): `faultline run --system tinykv --nemesis torn-write`. docs/faults.md walks
through it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tinykv_faultline import LOG, TinyKv

from harness.faults.base import FaultContext, NodeFault, Setting
from pluginkit.options import Option

TORN_BYTES = Option("torn_bytes", "int-list", [1, 64], "torn-write: the bytes of a record "
                    "left in the log, drawn from [low, high]", minimum=1, length=2)
# The key of the torn record: one no workload uses, so that a torn write replayed by mistake
# shows in the log, not as a value some client wrote.
TORN_KEY = "faultline-torn-write"


def torn_record(size: int) -> bytes:
    """The first `size` bytes of a record as tinykv writes one, never its final newline: the
    tail a crash during the append leaves (at full length, a whole record but for its end
    of line, which tinykv must still drop)."""
    record = json.dumps([TORN_KEY, "x" * size]).encode() + b"\n"
    return record[:size]


def log_of(ctx: FaultContext, node: str) -> Path:
    """The node's log, in the data directory the cluster gave it."""
    return ctx.cluster.layout.node(node).data_dir / LOG


class TornWriteFault(NodeFault):
    name = "torn-write"
    START, STOP = "torn-write", "restart"
    SUMMARY = "kill tinykv in the middle of an append (a torn record in its log), restart it"
    OPTIONS = NodeFault.OPTIONS + (TORN_BYTES,)
    DEFAULT_TARGETS = ("one",)          # tinykv runs one node

    @classmethod
    def refusal(cls, setting: Setting) -> str | None:
        # It writes tinykv's log format: on any other system it would damage files it does
        # not understand. (A setting without a system is a plan made without a run.)
        if setting.system not in (None, TinyKv.name):
            return f"the {cls.name} fault writes tinykv's log, not {setting.system}'s"
        return super().refusal(setting)

    @classmethod
    def plan(cls, nodes: list[str], rng: random.Random, options: dict[str, Any],
             setting: Setting, aim: str | None = None) -> dict[str, Any]:
        out = super().plan(nodes, rng, options, setting, aim)
        low, high = options.get("torn_bytes") or TORN_BYTES.default
        out["torn_bytes"] = rng.randint(min(low, high), max(low, high))
        return out

    def start(self, ctx: FaultContext, value: dict[str, Any]) -> dict[str, Any]:
        value["nodes"] = ctx.nodes_of(value)
        # Held: a kill or pause that ends meanwhile must not restart the node under us.
        ctx.hold(self.name, value["nodes"])
        torn = []
        fragment = torn_record(value["torn_bytes"])
        for node in value["nodes"]:
            ctx.cluster.kill(node)
            log = log_of(ctx, node)
            at = log.stat().st_size if log.exists() else 0
            with open(log, "ab") as file:
                file.write(fragment)
            torn.append({"node": node, "at": at, "bytes": len(fragment)})
        value["torn"] = torn
        return value

    def stop(self, ctx: FaultContext, started: dict[str, Any],
             value: dict[str, Any]) -> dict[str, Any]:
        # Restarted only where no other fault still keeps the node down; that fault's end
        # restarts it, and the node drops the torn tail then.
        restarted = ctx.restart_released(self.name, started.get("nodes", []))
        value["nodes"] = restarted
        if restarted:
            # Waited for, so that what the node made of its log can be read: a node that
            # cannot start again is this stop's error, in the history.
            ctx.cluster.wait_ready(restarted)
            fragment = torn_record(started["torn_bytes"])
            value["tail_dropped"] = {
                tear["node"]: _read(log_of(ctx, tear["node"]), tear["at"],
                                    len(fragment)) != fragment
                for tear in started.get("torn", []) if tear["node"] in restarted}
        return value


def _read(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(offset)
        return file.read(size)
