"""Simulated clients and the history they record.

Each client process runs one operation at a time: it picks a node, sends a request, follows
"not-leader" redirects (a few hops), and records the operation in faultline's history format
(docs/history-format.md): an `invoke` event, then exactly one completion, `ok` (took effect),
`fail` (certainly did not: a definite error) or `info` (unknown: an indeterminate error, or no
reply within the client timeout). A process whose operation ends `info` never runs another; a
fresh process number replaces it. Every write, cas and add uses a value never used before, so
histories can be checked for lost writes.

Each process keeps a session token, the highest version it has seen, and sends it as
`min_version` with every read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from refnode.messages import CAS_MISMATCH, NOT_LEADER, ClientReply, ClientRequest

if TYPE_CHECKING:                                   # pragma: no cover
    from refnode.sim.simulator import Simulation

FS = ("read", "write", "cas", "add")


@dataclass
class OpHandle:
    """One operation of one process; `completion` is its completion event once it has one."""

    process: int
    f: str
    key: str
    value: Any
    read_mode: str | None
    invoke_time: float
    required: int = 0                   # version acknowledged to anyone before the invoke
    completion: dict | None = None

    @property
    def done(self) -> bool:
        return self.completion is not None

    @property
    def type(self) -> str | None:
        return None if self.completion is None else self.completion["type"]


@dataclass
class Process:
    pid: int
    background: bool
    token: int = 0
    leader_guess: str | None = None
    op: OpHandle | None = None
    request: ClientRequest | None = None
    seq: int = 0                        # operation number, for matching timeouts
    attempt: int = 0                    # send number, for matching replies
    hops: int = 0
    retired: bool = False
    last_value: dict[str, Any] = field(default_factory=dict)


class SimulatedClients:
    """Every client process of a simulation and the history they record."""

    def __init__(self, sim: Simulation):
        self.sim = sim
        self.options = sim.options
        self.rng = sim.client_rng
        self.processes: dict[int, Process] = {}
        self.history: list[dict] = []
        self._next_pid = 0
        self._next_value = 0
        self.running = True

    # --- processes ------------------------------------------------------------------------------

    def new_process(self, background: bool = False) -> Process:
        process = Process(self._next_pid, background)
        self._next_pid += 1
        self.processes[process.pid] = process
        return process

    def start_background(self, count: int) -> None:
        for _ in range(count):
            process = self.new_process(background=True)
            self._schedule_next(process)

    def _schedule_next(self, process: Process) -> None:
        low, high = self.options.think_time
        self.sim.schedule_event(self.sim.now + self.rng.uniform(low, high), "client-next",
                                process.pid)

    def on_next(self, pid: int) -> None:
        """A background process's think time is over: start its next operation."""
        process = self.processes[pid]
        if process.retired or process.op is not None or not self.running:
            return
        f = self._choose_f()
        if f == "add":
            key = self.rng.choice(self.options.set_keys)
        elif f == "read":
            key = self.rng.choice(self.options.keys + self.options.set_keys)
        else:
            key = self.rng.choice(self.options.keys)
        self.invoke(process, f, key)

    def _choose_f(self) -> str:
        mix = self.options.op_mix
        point = self.rng.random() * sum(mix.values())
        for f, weight in mix.items():
            point -= weight
            if point < 0:
                return f
        return next(iter(mix))

    def unique_value(self) -> int:
        self._next_value += 1
        return self._next_value

    # --- operations -----------------------------------------------------------------------------

    def invoke(self, process: Process, f: str, key: str, value: Any = None,
               read_mode: str | None = None, node: str | None = None) -> OpHandle:
        """Start an operation of `process` (which must be idle and not retired). Values of
        write/cas/add are chosen unique when `value` is None; cas's is [last seen, new]."""
        if process.retired:
            raise ValueError(f"process {process.pid} ended with info and runs nothing more")
        if process.op is not None:
            raise ValueError(f"process {process.pid} already has an operation running")
        if f not in FS:
            raise ValueError(f"unknown client operation {f!r}")
        if f == "read":
            read_mode = read_mode or self.options.read_mode
            request = ClientRequest("read", key, read_mode=read_mode, min_version=process.token)
        else:
            if value is None:
                value = self.unique_value()
                if f == "cas":
                    value = [process.last_value.get(key), value]
            request = ClientRequest(f, key, value)
            read_mode = None
        op = OpHandle(process.pid, f, key, value, read_mode, self.sim.now,
                      required=self.sim.invariants.required_version(key))
        process.op = op
        process.request = request
        process.seq += 1
        process.hops = 0
        self._record(process.pid, "invoke", f, key, value)
        self.sim.schedule_event(self.sim.now + self.options.client_timeout, "client-timeout",
                                (process.pid, process.seq))
        if node is None:
            node = self._choose_node(process, f)
        self._send(process, node)
        return op

    def _choose_node(self, process: Process, f: str) -> str:
        nodes = self.sim.cluster.nodes
        if f == "read" and process.request.read_mode == "follower":
            return self.rng.choice(nodes)
        if process.leader_guess is None or self.rng.random() < self.options.explore:
            return self.rng.choice(nodes)
        return process.leader_guess

    def _send(self, process: Process, node: str) -> None:
        process.attempt += 1
        ref = (process.pid, process.seq, process.attempt)
        self.sim.send_request(ref, node, process.request)

    def on_reply(self, ref: tuple, reply: ClientReply) -> None:
        pid, seq, attempt = ref
        process = self.processes.get(pid)
        if (process is None or process.op is None or process.seq != seq
                or process.attempt != attempt):
            return                                      # late: the op already ended
        op = process.op
        if reply.leader is not None:
            process.leader_guess = reply.leader
        if reply.ok:
            self._complete_ok(process, op, reply)
        elif reply.error == NOT_LEADER:
            if (reply.leader is not None and reply.leader != reply.node
                    and process.hops < self.options.max_redirects):
                process.hops += 1
                self._send(process, reply.leader)
                return
            process.leader_guess = None
            self._complete(process, "fail", op.value, error=NOT_LEADER, node=reply.node)
        elif reply.definite:
            if reply.error == CAS_MISMATCH:
                process.last_value[op.key] = reply.value
            self._complete(process, "fail", op.value, error=reply.error, node=reply.node)
        else:
            self._complete(process, "info", op.value, error=reply.error, node=reply.node)

    def _complete_ok(self, process: Process, op: OpHandle, reply: ClientReply) -> None:
        inv = self.sim.invariants
        if op.f == "read":
            inv.on_read_ok(process.pid, op.key, reply.version, op.read_mode, op.required,
                           reply.node)
            value = reply.value
            process.last_value[op.key] = value
        else:
            inv.on_write_ok(process.pid, op.key, reply.version)
            value = op.value
            process.last_value[op.key] = op.value[1] if op.f == "cas" else op.value
        process.token = max(process.token, reply.version)
        self._complete(process, "ok", value, node=reply.node, version=reply.version)

    def on_timeout(self, pid: int, seq: int) -> None:
        process = self.processes.get(pid)
        if process is None or process.op is None or process.seq != seq:
            return
        self._complete(process, "info", process.op.value, error="timeout")

    def _complete(self, process: Process, kind: str, value: Any, *, error: str | None = None,
                  node: str | None = None, version: int | None = None) -> None:
        op = process.op
        op.completion = self._record(process.pid, kind, op.f, op.key, value, node=node,
                                     version=version, error=error)
        process.op = None
        process.request = None
        if kind == "info":
            process.retired = True
            if process.background and self.running:
                self._schedule_next(self.new_process(background=True))
        elif process.background:
            self._schedule_next(process)

    # --- history --------------------------------------------------------------------------------

    def _record(self, process: Any, kind: str, f: str, key: Any, value: Any, *,
                node: str | None = None, version: int | None = None,
                error: str | None = None) -> dict:
        event = {"index": len(self.history), "time": round(self.sim.now * 1e9),
                 "process": process, "type": kind, "f": f, "key": key, "value": value}
        if node is not None:
            event["node"] = node
        if version is not None:
            event["version"] = version
        if error is not None:
            event["error"] = error
        self.history.append(event)
        return event

    def record_nemesis(self, f: str, value: Any) -> None:
        """A fault action, as Jepsen records it: an invoke and an info of process nemesis."""
        self._record("nemesis", "invoke", f, None, value)
        self._record("nemesis", "info", f, None, value)
