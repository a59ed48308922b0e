"""The deterministic simulator: every node's core in one process, one seed deriving everything.

A `Simulation` runs a refnode cluster in simulated time. It owns:

- an event queue ordered by (simulated real time, sequence number): message deliveries,
  node timers, disk syncs, client steps and faults;
- a network (`_transmit`): per-message delay (uniform in `SimOptions.delay`, plus any slow
  link's extra delay), loss, duplication (of peer messages only: clients talk over TCP),
  reordering (delays overlap), and partitions as a set of blocked directed links (checked
  when sent and when delivered). Clients sit behind the pseudo-node `clients`, reachable
  unless a partition names it;
- one clock per node (`SimClock`: offset, rate, jumps); each core only ever sees its own
  clock's reading as `now`;
- one disk per node (`SimDisk`). A bundle's persistence is written, a sync is started
  (`fsync_latency`) and the bundle's messages and replies are released only when the sync
  has covered it (the core's persist-before-send contract). With the `no-fsync` bug they are
  released at once and only the periodic OS write-back (`os_flush_interval`) makes data
  durable. A process crash keeps the page cache; power loss throws it away; a crash also
  loses some messages still in the node's user-space buffers (`crash_drops_in_flight`);
- client processes (`SimulatedClients`) recording a history in faultline's format;
- the invariants (`Invariants`), checked after every step.

Everything random comes from generators seeded from the seed (network, clients, faults, and
each node incarnation's core), so a seed and a list of actions replay exactly.

Entry points: `Simulation(cluster, seed, options)` then `apply(action)`, `run_for(seconds)`,
`check_liveness()`; `run_random(...)` for a random fault schedule followed by the liveness
phase; `replay(cluster, seed, actions)` to re-run an explicit schedule. Actions are JSON-able
lists, e.g. ``["isolate", "n1"]``, ``["advance", 0.5]``; see `Simulation.apply`.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from refnode.config import READ_MODES, ClusterConfig
from refnode.core import LEADER, Core, Effects
from refnode.messages import WRITE_OPS, ClientRequest, PeerMessage
from refnode.sim.clients import OpHandle, Process, SimulatedClients
from refnode.sim.clock import SimClock
from refnode.sim.disk import SimDisk
from refnode.sim.invariants import (INVARIANTS, LIVENESS, Invariants, InvariantViolation,
                                    LivenessViolation, default_invariants)

CLIENTS = "clients"
TIMER_SLACK = 1e-9      # fire timers just after their deadline despite float rounding

FAULT_KINDS = ("split", "isolate", "isolate-leader", "one-way", "heal", "crash", "power-loss",
               "restart", "clock-rate", "clock-jump", "slow-link", "loss", "duplicate")


@dataclass(frozen=True)
class FaultOptions:
    """The random nemesis of `run_random`: which faults, how often, how strong.

    `weights` maps fault kinds (`FAULT_KINDS`) to relative frequencies; `max_drift` bounds
    |rate - 1| of drifting clocks (None: a value within the configuration's drift bound, so
    that leases stay safe); `max_down` bounds the nodes down at once (None: a minority).
    """

    interval: tuple[float, float] = (0.05, 0.4)
    weights: tuple[tuple[str, float], ...] = (
        ("split", 1), ("isolate", 1), ("isolate-leader", 1.5), ("one-way", 0.5),
        ("heal", 3), ("crash", 1), ("power-loss", 0.5), ("restart", 2.5), ("clock-rate", 1),
        ("slow-link", 0.5), ("loss", 0.5), ("duplicate", 0.5))
    max_drift: float | None = None
    max_jump: float = 0.3
    max_down: int | None = None
    max_loss: float = 0.2

    def __post_init__(self) -> None:
        for kind, weight in self.weights:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; kinds: {', '.join(FAULT_KINDS)}")
            if weight < 0:
                raise ValueError(f"fault weight of {kind!r} must not be negative")


@dataclass(frozen=True)
class SimOptions:
    """How a simulation runs; defaults give a small busy cluster on a fast network.

    Clients: `clients` background processes, each thinking `think_time` seconds between
    operations drawn from `op_mix` over register `keys` (reads also over `set_keys`; adds only
    there), reading in `read_mode`, giving up after `client_timeout`, trying a random node
    instead of the known leader with probability `explore`, following `max_redirects`.
    Network and disks: see the module text. Checks: `checked` names the invariants (None: the
    replication mode's defaults); with `raise_on_violation` False, violations are collected
    in `Simulation.violations` and the run goes on. `faults`: a random nemesis, or None.
    """

    clients: int = 3
    think_time: tuple[float, float] = (0.0, 0.02)
    client_timeout: float = 1.0
    read_mode: str = "leader"
    keys: tuple[str, ...] = ("r0", "r1", "r2")
    set_keys: tuple[str, ...] = ("s0",)
    op_mix: dict[str, float] = field(default_factory=lambda: {
        "read": 4, "write": 3, "cas": 1, "add": 2})
    explore: float = 0.05
    max_redirects: int = 3
    delay: tuple[float, float] = (0.0005, 0.003)
    loss: float = 0.0
    duplicate: float = 0.0
    fsync_latency: float = 0.0005
    os_flush_interval: float = 1.0
    crash_drops_in_flight: float = 0.5
    checked: frozenset[str] | None = None
    raise_on_violation: bool = True
    faults: FaultOptions | None = None

    def __post_init__(self) -> None:
        if self.read_mode not in READ_MODES:
            raise ValueError(f"read_mode must be one of {', '.join(READ_MODES)}, "
                             f"got {self.read_mode!r}")
        if self.checked is not None:
            unknown = sorted(set(self.checked) - set(INVARIANTS))
            if unknown:
                raise ValueError(f"unknown invariant {unknown[0]!r}; invariants: "
                                 f"{', '.join(INVARIANTS)}")
        low, high = self.delay
        if not 0 <= low <= high:
            raise ValueError(f"delay must be (min, max) with 0 <= min <= max, got {self.delay}")


@dataclass
class _Packet:
    src: str
    dst: str
    kind: str               # "peer", "request" or "reply"
    payload: Any
    dropped: bool = False


@dataclass
class SimNode:
    """One simulated node: its clock and disk outlive its core, which crashes and restarts."""

    id: str
    clock: SimClock
    disk: SimDisk
    core: Core | None = None
    incarnation: int = 0
    outbox: list[tuple[int, Effects]] = field(default_factory=list)
    syncing: bool = False
    timer_due: float = math.inf

    @property
    def up(self) -> bool:
        return self.core is not None


class Simulation:
    """A simulated refnode cluster; see the module text. Raises `InvariantViolation` from
    whatever call made the offending step (unless `raise_on_violation` is False)."""

    def __init__(self, cluster: ClusterConfig, seed: int, options: SimOptions | None = None):
        self.cluster = cluster
        self.seed = seed
        self.options = options or SimOptions()
        self.now = 0.0
        self.steps = 0
        self.stats: Counter = Counter()
        self._queue: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self.net_rng = random.Random(f"{seed}:network")
        self.client_rng = random.Random(f"{seed}:clients")
        self.fault_rng = random.Random(f"{seed}:faults")
        checked = self.options.checked
        if checked is None:
            checked = default_invariants(cluster.replication)
        self.invariants = Invariants(frozenset(checked), self._report)
        self.violations: list[InvariantViolation] = []
        self._reported: set[tuple[str, str]] = set()
        self.actions: list[list] = []                 # actions applied by callers (replayable)
        self.fault_log: list[tuple[float, list]] = []  # every fault, with its time
        self.blocked: set[tuple[str, str]] = set()
        self.slow: dict[tuple[str, str], float] = {}
        self.loss = self.options.loss
        self.duplicate = self.options.duplicate
        self.nodes: dict[str, SimNode] = {}
        for node_id in cluster.nodes:
            node = SimNode(node_id, SimClock(), SimDisk())
            self.nodes[node_id] = node
            node.core = Core(node_id, cluster, self._core_rng(node), node.clock.read(0.0))
            self._set_timer(node, node.core.next_deadline)
        self.clients = SimulatedClients(self)
        self.clients.start_background(self.options.clients)
        self._faults_on = self.options.faults is not None
        if self.options.os_flush_interval > 0:
            self.schedule_event(self.options.os_flush_interval, "os-flush", None)
        if self._faults_on:
            self._schedule_fault()
        self._handlers: dict[str, Callable[[Any], None]] = {
            "packet": self._on_packet, "timer": self._on_timer, "sync": self._on_sync,
            "os-flush": self._on_os_flush, "client-next": self.clients.on_next,
            "client-timeout": lambda p: self.clients.on_timeout(*p),
            "fault": self._on_fault,
        }

    # --- reading the cluster --------------------------------------------------------------------

    @property
    def history(self) -> list[dict]:
        """The recorded history: faultline's event dicts, client and nemesis events."""
        return self.clients.history

    def core(self, node: str) -> Core | None:
        """The node's core, or None while it is down."""
        return self.nodes[node].core

    def leader(self) -> str | None:
        """The live node that is leader in the highest term, if any."""
        best = None
        for node in self.nodes.values():
            core = node.core
            if (core is not None and core.role == LEADER
                    and (best is None or core.term > self.nodes[best].core.term)):
                best = node.id
        return best

    def up_nodes(self) -> list[str]:
        return [n.id for n in self.nodes.values() if n.up]

    # --- the event loop -------------------------------------------------------------------------

    def schedule_event(self, time: float, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (max(time, self.now), self._seq, kind, payload))

    def step(self) -> bool:
        """Process the next event and check the invariants; False when nothing is left."""
        if not self._queue:
            return False
        time, _, kind, payload = heapq.heappop(self._queue)
        self.now = max(self.now, time)
        self.steps += 1
        self._handlers[kind](payload)
        self.invariants.after_step((n.id, n.incarnation, n.core)
                                   for n in self.nodes.values() if n.core is not None)
        return True

    def run_until(self, time: float) -> None:
        """Process every event up to simulated time `time`."""
        while self._queue and self._queue[0][0] <= time:
            self.step()
        self.now = max(self.now, time)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def run_until_true(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Step until `predicate()` holds (True) or `timeout` simulated seconds pass (False)."""
        deadline = self.now + timeout
        while not predicate():
            if not self._queue or self._queue[0][0] > deadline:
                self.run_until(deadline)
                return predicate()
            self.step()
        return True

    def _report(self, invariant: str, detail: str) -> None:
        failure = InvariantViolation(invariant, detail, seed=self.seed, step=self.steps,
                                     time=self.now, schedule=self.actions)
        if self.options.raise_on_violation:
            raise failure
        if (invariant, detail) not in self._reported:
            self._reported.add((invariant, detail))
            self.violations.append(failure)

    # --- nodes ----------------------------------------------------------------------------------

    def _core_rng(self, node: SimNode) -> random.Random:
        return random.Random(f"{self.seed}:{node.id}:{node.incarnation}")

    def _input(self, node: SimNode, call: Callable[[Core, float], Effects]) -> None:
        effects = call(node.core, node.clock.read(self.now))
        self._carry_out(node, effects)

    def _carry_out(self, node: SimNode, effects: Effects) -> None:
        """Persist before send: write, sync, and only then release messages and replies."""
        inv = self.invariants
        disk = node.disk
        if effects.persists:
            inv.before_persist(node.id, disk.log, effects)
            disk.write(effects)
            inv.after_persist(node.id, node.core, effects)
        for _, reply in effects.replies:
            if reply.ok and reply.op in WRITE_OPS:
                inv.on_acked(node.id, node.core, reply.version)
        if effects.messages or effects.replies:
            if "no-fsync" in self.cluster.bugs:
                # The no-fsync bug lives in runtimes: acknowledge without waiting for a sync.
                self._release(node, effects)
            elif disk.synced_seq >= disk.write_seq and not node.outbox:
                self._release(node, effects)
            else:
                node.outbox.append((disk.write_seq, effects))
        if disk.dirty and not node.syncing and "no-fsync" not in self.cluster.bugs:
            node.syncing = True
            self.schedule_event(self.now + self.options.fsync_latency, "sync",
                                (node.id, node.incarnation, disk.begin_sync()))
        self._set_timer(node, effects.next_deadline)

    def _on_sync(self, payload: tuple[str, int, int]) -> None:
        node_id, incarnation, target = payload
        node = self.nodes[node_id]
        if node.incarnation != incarnation:
            return
        node.syncing = False
        node.disk.finish_sync(target)
        self.stats["syncs"] += 1
        while node.outbox and node.outbox[0][0] <= node.disk.synced_seq:
            self._release(node, node.outbox.pop(0)[1])
        if node.disk.dirty:
            node.syncing = True
            self.schedule_event(self.now + self.options.fsync_latency, "sync",
                                (node.id, node.incarnation, node.disk.begin_sync()))

    def _on_os_flush(self, _: Any) -> None:
        """The operating system writes its page cache back: everything written is durable."""
        for node in self.nodes.values():
            if node.disk.dirty:
                node.disk.finish_sync(node.disk.write_seq)
        self.schedule_event(self.now + self.options.os_flush_interval, "os-flush", None)

    def _release(self, node: SimNode, effects: Effects) -> None:
        for message in effects.messages:
            self._transmit(_Packet(node.id, message.dst, "peer", message))
        for ref, reply in effects.replies:
            self._transmit(_Packet(node.id, CLIENTS, "reply", (ref, reply)))

    def _set_timer(self, node: SimNode, deadline: float) -> None:
        real = node.clock.to_real(deadline)
        if math.isinf(real):
            node.timer_due = real
            return
        real = max(real + TIMER_SLACK, self.now)
        if real == node.timer_due:
            return
        node.timer_due = real
        self.schedule_event(real, "timer", (node.id, node.incarnation, real))

    def _on_timer(self, payload: tuple[str, int, float]) -> None:
        node_id, incarnation, due = payload
        node = self.nodes[node_id]
        if node.core is None or node.incarnation != incarnation or due != node.timer_due:
            return
        node.timer_due = math.inf
        self._input(node, lambda core, now: core.tick(now))

    # --- network --------------------------------------------------------------------------------

    def send_request(self, ref: Any, node: str, request: ClientRequest) -> None:
        """A client sends `request` to `node`; the reply comes back tagged with `ref`."""
        self._transmit(_Packet(CLIENTS, node, "request", (ref, request)))

    def _transmit(self, packet: _Packet) -> None:
        link = (packet.src, packet.dst)
        self.stats["sent"] += 1
        if link in self.blocked:
            self.stats["dropped-partition"] += 1
            return
        rng = self.net_rng
        if self.loss and rng.random() < self.loss:
            self.stats["dropped-loss"] += 1
            return
        # Peer messages may be duplicated; client connections are TCP streams and a request
        # delivered twice would be executed twice (clients carry no request ids).
        copies = 1
        if packet.kind == "peer" and self.duplicate and rng.random() < self.duplicate:
            copies = 2
        low, high = self.options.delay
        extra = self.slow.get(link, 0.0)
        for copy in range(copies):
            if copy:
                packet = replace(packet)
                self.stats["duplicated"] += 1
            self.schedule_event(self.now + rng.uniform(low, high) + extra, "packet", packet)

    def _on_packet(self, packet: _Packet) -> None:
        if packet.dropped:
            return
        if (packet.src, packet.dst) in self.blocked:
            self.stats["dropped-partition"] += 1
            return
        if packet.kind == "reply":
            self.clients.on_reply(*packet.payload)
            return
        node = self.nodes[packet.dst]
        if node.core is None:
            self.stats["dropped-down"] += 1
            return
        if packet.kind == "peer":
            message: PeerMessage = packet.payload
            self._input(node, lambda core, now: core.receive(message, now))
        else:
            ref, request = packet.payload
            self._input(node, lambda core, now: core.client_request(request, ref, now))

    # --- actions (faults and schedule steps) ----------------------------------------------------

    def apply(self, action: list | tuple) -> None:
        """Carry out one schedule action (a JSON-able list) and remember it for replay:

        - ``["advance", seconds]``: run the simulation for that long;
        - ``["split", [[nodes...], [nodes...]]]``: block every link between the groups;
        - ``["isolate", node]`` / ``["isolate-leader"]``: cut a node (the current leader) off
          from every other node, both ways (clients still reach it);
        - ``["partition", [[src, dst], ...]]``: block these directed links (``"clients"``
          names the clients' side);
        - ``["slow-link", src, dst, seconds]``: add a delay to one directed link;
        - ``["heal"]``: unblock every link and remove every slow link;
        - ``["crash", node]``, ``["power-loss", node]`` (crash and lose unsynced writes),
          ``["restart", node]``;
        - ``["clock-rate", node, rate]``, ``["clock-jump", node, seconds]``;
        - ``["loss", p]``, ``["duplicate", p]``: message loss and duplication probabilities;
        - ``["deliver-next"]`` / ``["drop-next"]``: deliver at once / drop the message that
          would arrive next;
        - ``["campaign", node]``: make a node start an election now;
        - ``["invoke", f, key, read_mode or null, node or null]``: a one-off client operation
          by a fresh process;
        - ``["liveness", bound]``: the liveness phase (see `check_liveness`).

        Raises ValueError for an unknown action or bad arguments.
        """
        action = list(action)
        self.actions.append(action)
        self._do(action)

    def _do(self, action: list) -> None:
        if not action or not isinstance(action[0], str):
            raise ValueError(f"an action is a list starting with its name, got {action!r}")
        kind, args = action[0], action[1:]
        handler = getattr(self, "_act_" + kind.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown action {kind!r}")
        try:
            handler(*args)
        except TypeError as exc:
            raise ValueError(f"bad arguments for action {kind!r}: {args!r} ({exc})") from None

    def _fault(self, action: list) -> None:
        self.fault_log.append((self.now, action))
        self.clients.record_nemesis(action[0], action[1:] or None)
        self.stats["faults"] += 1

    def _node(self, node: str) -> SimNode:
        if node not in self.nodes:
            raise ValueError(f"unknown node {node!r}")
        return self.nodes[node]

    def _act_advance(self, seconds: float) -> None:
        self.run_for(float(seconds))

    def _act_split(self, groups: list) -> None:
        groups = [list(g) for g in groups]
        for group in groups:
            for node in group:
                self._node(node)
        for i, a in enumerate(groups):
            for b in groups[i + 1:]:
                for x in a:
                    for y in b:
                        self.blocked.add((x, y))
                        self.blocked.add((y, x))
        self._fault(["split", groups])

    def _act_isolate(self, node: str) -> None:
        self._node(node)
        for other in self.nodes:
            if other != node:
                self.blocked.add((node, other))
                self.blocked.add((other, node))
        self._fault(["isolate", node])

    def _act_isolate_leader(self) -> None:
        leader = self.leader()
        if leader is not None:
            self._act_isolate(leader)

    def _act_partition(self, links: list) -> None:
        for src, dst in links:
            if src != CLIENTS:
                self._node(src)
            if dst != CLIENTS:
                self._node(dst)
            self.blocked.add((src, dst))
        self._fault(["partition", [list(link) for link in links]])

    def _act_slow_link(self, src: str, dst: str, seconds: float) -> None:
        self.slow[(src, dst)] = float(seconds)
        self._fault(["slow-link", src, dst, seconds])

    def _act_heal(self) -> None:
        self.blocked.clear()
        self.slow.clear()
        self._fault(["heal"])

    def _act_crash(self, node: str, power_loss: bool = False) -> None:
        sim_node = self._node(node)
        if sim_node.core is not None:
            sim_node.core = None
            sim_node.incarnation += 1
            sim_node.outbox = []
            sim_node.syncing = False
            sim_node.timer_due = math.inf
            self._drop_in_flight_from(node)
        if power_loss:
            self.stats["writes-lost-to-power-loss"] += sim_node.disk.lose_unsynced()
        self._fault(["power-loss" if power_loss else "crash", node])

    def _act_power_loss(self, node: str) -> None:
        self._act_crash(node, power_loss=True)

    def _drop_in_flight_from(self, node: str) -> None:
        chance = self.options.crash_drops_in_flight
        if chance <= 0:
            return
        for _, _, kind, payload in self._queue:
            if (kind == "packet" and payload.src == node and not payload.dropped
                    and self.fault_rng.random() < chance):
                payload.dropped = True

    def _act_restart(self, node: str) -> None:
        sim_node = self._node(node)
        if sim_node.core is None:
            sim_node.incarnation += 1
            hard = sim_node.disk.hard_state
            sim_node.core = Core.restore(node, self.cluster, self._core_rng(sim_node),
                                         sim_node.clock.read(self.now), hard.term, hard.vote,
                                         list(sim_node.disk.log))
            self._set_timer(sim_node, sim_node.core.next_deadline)
        self._fault(["restart", node])

    def _act_clock_rate(self, node: str, rate: float) -> None:
        sim_node = self._node(node)
        sim_node.clock.set_rate(self.now, float(rate))
        self._retime(sim_node)
        self._fault(["clock-rate", node, rate])

    def _act_clock_jump(self, node: str, seconds: float) -> None:
        sim_node = self._node(node)
        sim_node.clock.jump(self.now, float(seconds))
        self._retime(sim_node)
        self._fault(["clock-jump", node, seconds])

    def _retime(self, node: SimNode) -> None:
        if node.core is not None:
            node.timer_due = math.nan          # force a new timer event
            self._set_timer(node, node.core.next_deadline)

    def _act_loss(self, probability: float) -> None:
        self.loss = float(probability)
        self._fault(["loss", probability])

    def _act_duplicate(self, probability: float) -> None:
        self.duplicate = float(probability)
        self._fault(["duplicate", probability])

    def _next_packet(self) -> tuple | None:
        best = None
        for item in self._queue:
            if item[2] == "packet" and not item[3].dropped and (best is None or item < best):
                best = item
        return best

    def _act_deliver_next(self) -> None:
        item = self._next_packet()
        if item is not None:
            packet = item[3]
            packet.dropped = True                       # the queued copy is consumed
            self.steps += 1
            self._on_packet(replace(packet, dropped=False))
            self.invariants.after_step((n.id, n.incarnation, n.core)
                                       for n in self.nodes.values() if n.core is not None)

    def _act_drop_next(self) -> None:
        item = self._next_packet()
        if item is not None:
            item[3].dropped = True
            self.stats["dropped-by-action"] += 1

    def _act_campaign(self, node: str) -> None:
        sim_node = self._node(node)
        if sim_node.core is not None:
            self._input(sim_node, lambda core, now: core.campaign(now))

    def _act_invoke(self, f: str, key: str, read_mode: str | None = None,
                    node: str | None = None) -> None:
        if node is not None:
            self._node(node)
        self.clients.invoke(self.clients.new_process(), f, key, read_mode=read_mode, node=node)

    # --- scripted clients -----------------------------------------------------------------------

    def new_process(self) -> Process:
        """A client process driven by the caller (not a background one)."""
        return self.clients.new_process()

    def invoke(self, process: Process, f: str, key: str, value: Any = None,
               read_mode: str | None = None, node: str | None = None) -> OpHandle:
        """Start an operation of a caller-driven process; see `SimulatedClients.invoke`."""
        return self.clients.invoke(process, f, key, value, read_mode, node)

    def complete(self, handle: OpHandle, timeout: float = 5.0) -> dict:
        """Run until `handle`'s operation completes (it always does: by the client timeout
        at the latest) and return its completion event."""
        self.run_until_true(lambda: handle.done, timeout)
        if not handle.done:
            raise AssertionError(f"operation {handle} did not complete within {timeout}s")
        return handle.completion

    # --- random nemesis -------------------------------------------------------------------------

    def _schedule_fault(self) -> None:
        low, high = self.options.faults.interval
        self.schedule_event(self.now + self.fault_rng.uniform(low, high), "fault", None)

    def _on_fault(self, _: Any) -> None:
        if not self._faults_on:
            return
        action = self._random_fault()
        if action is not None:
            self._do(action)
        self._schedule_fault()

    def _random_fault(self) -> list | None:
        faults = self.options.faults
        rng = self.fault_rng
        kinds = [k for k, _ in faults.weights]
        kind = rng.choices(kinds, weights=[w for _, w in faults.weights])[0]
        nodes = list(self.cluster.nodes)
        up = [n for n in nodes if self.nodes[n].up]
        down = [n for n in nodes if not self.nodes[n].up]
        max_down = faults.max_down
        if max_down is None:
            max_down = (len(nodes) - 1) // 2
        if kind == "split" and len(nodes) > 1:
            shuffled = nodes[:]
            rng.shuffle(shuffled)
            cut = rng.randint(1, len(nodes) - 1)
            return ["split", [sorted(shuffled[:cut]), sorted(shuffled[cut:])]]
        if kind == "isolate":
            return ["isolate", rng.choice(nodes)]
        if kind == "isolate-leader":
            return ["isolate-leader"]
        if kind == "one-way" and len(nodes) > 1:
            src, dst = rng.sample(nodes, 2)
            return ["partition", [[src, dst]]]
        if kind == "heal":
            return ["heal"]
        if kind in ("crash", "power-loss") and up and len(down) < max_down:
            return [kind, rng.choice(up)]
        if kind == "restart" and down:
            return ["restart", rng.choice(down)]
        if kind == "clock-rate":
            drift = faults.max_drift
            if drift is None:
                bound = self.cluster.max_clock_drift
                drift = 0.9 * bound / (2 - bound)   # any two rates then differ by < bound
            return ["clock-rate", rng.choice(nodes), round(rng.uniform(1 - drift, 1 + drift), 6)]
        if kind == "clock-jump":
            jump = faults.max_jump
            return ["clock-jump", rng.choice(nodes), round(rng.uniform(-jump, jump), 6)]
        if kind == "slow-link" and len(nodes) > 1:
            src, dst = rng.sample(nodes, 2)
            return ["slow-link", src, dst, round(rng.uniform(0.05, 1.0), 6)]
        if kind == "loss":
            return ["loss", round(rng.uniform(0, faults.max_loss), 6) if rng.random() < 0.6
                    else 0.0]
        if kind == "duplicate":
            return ["duplicate", round(rng.uniform(0, 0.2), 6) if rng.random() < 0.6 else 0.0]
        return None

    # --- liveness -------------------------------------------------------------------------------

    def heal_all(self) -> None:
        """Stop the nemesis and undo every fault: links, loss, duplication, clock rates, and
        every node down is restarted."""
        self._faults_on = False
        self._do(["heal"])
        if self.loss:
            self._do(["loss", 0.0])
        if self.duplicate:
            self._do(["duplicate", 0.0])
        for node in self.nodes.values():
            if node.clock.rate != 1.0:
                self._do(["clock-rate", node.id, 1.0])
            if not node.up:
                self._do(["restart", node.id])

    def check_liveness(self, bound: float = 10.0) -> float:
        """The liveness phase: heal everything, then require an acknowledged write (so a
        leader, and a commit) within `bound` simulated seconds. Returns how long it took;
        raises `LivenessViolation` otherwise. Recorded in `actions` as ``["liveness", bound]``
        so that a schedule ending with it replays it."""
        self.actions.append(["liveness", bound])
        return self._act_liveness(bound)

    def _act_liveness(self, bound: float = 10.0) -> float:
        self.heal_all()
        start = self.now
        deadline = start + bound
        process = self.clients.new_process()
        while self.now < deadline:
            handle = self.clients.invoke(process, "write", "liveness")
            self.run_until_true(lambda h=handle: h.done, deadline - self.now)
            if handle.type == "ok":
                return self.now - start
            if handle.type == "info" or process.retired:
                process = self.clients.new_process()
            elif handle.done:
                self.run_for(min(0.05, max(0.0, deadline - self.now)))
        raise LivenessViolation(LIVENESS, f"no write acknowledged within {bound}s after healing "
                                f"(leader: {self.leader()}, terms: "
                                f"{ {n: c.term for n, c in self._cores()} })",
                                seed=self.seed, step=self.steps, time=self.now,
                                schedule=self.actions)

    def _cores(self) -> Iterable[tuple[str, Core]]:
        return ((n.id, n.core) for n in self.nodes.values() if n.core is not None)

    def summary(self) -> dict[str, Any]:
        """Figures about the run: steps, time, operations by outcome, messages, faults,
        leaders elected."""
        outcomes = Counter(e["type"] for e in self.history if e["process"] != "nemesis")
        return {"seed": self.seed, "steps": self.steps, "time": round(self.now, 6),
                "ops": dict(outcomes), "leaders": len(self.invariants.leaders),
                "terms": max((c.term for _, c in self._cores()), default=0),
                "committed": len(self.invariants.committed),
                "acked": len(self.invariants.acked), **dict(self.stats)}


def run_random(cluster: ClusterConfig, seed: int, *, duration: float = 3.0,
               options: SimOptions | None = None, liveness_bound: float | None = 10.0
               ) -> Simulation:
    """A random fault schedule of `duration` simulated seconds (faults from
    `options.faults`, a default nemesis when None), then the liveness phase (skipped when
    `liveness_bound` is None). Returns the simulation; raises on the first violation."""
    options = options or SimOptions()
    if options.faults is None:
        options = replace(options, faults=FaultOptions())
    sim = Simulation(cluster, seed, options)
    sim.run_for(duration)
    if liveness_bound is not None:
        sim.check_liveness(liveness_bound)
    return sim


def replay(cluster: ClusterConfig, seed: int, actions: Iterable[list],
           options: SimOptions | None = None) -> Simulation:
    """Re-run an explicit schedule: a new simulation with the same seed and options, then
    every action in order (a violation raises exactly as it did the first time)."""
    sim = Simulation(cluster, seed, options)
    for action in actions:
        sim.apply(action)
    return sim
