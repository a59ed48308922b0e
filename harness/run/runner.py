"""One run, start to verdict: `run_test(spec)`.

Phases, as in Jepsen and TigerBeetle's VOPR:
1. set up: a run directory, test.json (with the seed and the fault schedule), the cluster;
2. the test: concurrent clients and the nemesis for `time_limit` seconds, every event recorded;
3. recovery: every fault ended, then the cluster must accept a write within
   `recovery_timeout` (else a liveness failure, told apart from a safety violation);
4. final reads, then the workload's checkers over the history, with the model and the
   checkers' options the workload declares (recorded in test.json's "check", so that
   `faultline check RUN_DIR` judges the same way); results.json; runs/latest.
"""

from __future__ import annotations

import logging
import random
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from checkers.base import CheckContext, Checker
from checkers.suite import judge
from harness.faults import schedule as fault_schedule
from harness.run.cluster import Cluster
from harness.run.observer import Observer
from harness.run.recorder import Recorder
from harness.run.spec import TestSpec
from harness.run.violations import placement
from harness.rundirs import store
from harness.systems.base import LeaderProbe, StatusProbe, SystemUnavailable
from harness.workloads import Invocation, Workload, make_workload

FINAL_READ_ATTEMPTS = 10
IDLE_POLL = 0.05            # seconds between looks at the clock in a phase without operations
# Each client's patience, as a share of the test's op timeout: clients differ, as an
# application's do. Were they alike, a fault would line up every client's timeouts (all stuck
# on the same deposed leader at once, all retrying at once), and the moments between a new
# leader's election and the old one's step-down would pass with no client trying elsewhere.
PATIENCE_RANGE = (0.25, 1.0)


@dataclass
class RunProgress:
    """What the live display shows."""

    elapsed: float
    time_limit: float
    counts: dict[str, int]
    active_faults: list[str]
    phase: str


@dataclass
class RunResult:
    """The outcome of a run: verdicts, liveness, where it is stored, how to replay it."""

    run_dir: Path
    seed: int
    valid: Any
    liveness: dict[str, Any]
    results: dict[str, Any]
    elapsed: float
    counts: dict[str, int] = field(default_factory=dict)
    bug: str | None = None           # the planted bug the run switched on, if any

    @property
    def replay_command(self) -> str:
        """The shell command that replays this run with the faultline running now."""
        return store.replay_command(self.run_dir)


def plan_schedule(spec: TestSpec) -> list[dict[str, Any]]:
    """The spec's fault schedule, planned from its seed when it has none yet (a replay brings
    its own); the spec's seed must be chosen."""
    if spec.schedule is None:
        nodes = [f"n{i}" for i in range(1, spec.nodes + 1)]
        spec.schedule = fault_schedule.plan(spec.nemesis, nodes, spec.time_limit,
                                            spec.nemesis_interval, spec.seed,
                                            spec.nemesis_options, spec.setting())
    return spec.schedule


def run_test(spec: TestSpec, *, argv: list[str] | None = None,
             on_progress: Callable[[RunProgress], None] | None = None) -> RunResult:
    """Run the test `spec` describes (see the module docstring); returns its result.

    The spec's seed is chosen (and printed by the caller) when absent, and its fault schedule
    generated from the seed when absent; both are saved in test.json for `replay`."""
    spec.validate()
    system = spec.make_system()
    availability = system.availability()
    if not availability.available:
        install = f"; install it with: {availability.install}" if availability.install else ""
        raise SystemUnavailable(f"{spec.system} cannot run here: {availability.detail}"
                                f"{install}")
    if spec.seed is None:
        spec.seed = secrets.randbelow(2 ** 31)
    seed = spec.seed
    workload = make_workload(spec.workload, spec.keys, mix=spec.mix,
                             ops_per_key=spec.ops_per_key, **spec.workload_options())
    # Election safety is checked from the nodes' own reports, when the system gives them.
    observing = isinstance(system, StatusProbe)
    # Made before anything starts (`TestSpec.validate` has made them once already), so that
    # an option one refuses is said before the run, never after it.
    made = spec.judging_checkers(workload, observing)
    checkers = [checker.name for checker in made]
    runs_dir = Path(spec.runs_dir)
    run_dir = store.create_run_dir(runs_dir, spec.name, seed)
    plan_schedule(spec)
    store.write_json(run_dir / store.TEST_FILE, {
        "test": spec.to_json(), "command": argv or sys.argv, "versions": store.versions(),
        "system": {"name": spec.system, "options": system.options,
                   "version": availability.version, "network": spec.network},
        "check": {"checkers": checkers, **check_choices(workload)}})
    store.update_latest(runs_dir, run_dir)

    started = time.monotonic()
    recorder = Recorder(run_dir / store.HISTORY_FILE)
    report = _Reporter(on_progress, spec, recorder, started)
    try:
        result = _carry_out(spec, system, workload, made, run_dir, recorder, report,
                            started, observing)
    except KeyboardInterrupt:
        # Ctrl-C, or SIGTERM where the caller makes it one: the run has cleaned up (the
        # finally clauses ran first); its directory must not pass for a whole run.
        last = recorder.events[-1].time / 1e9 if recorder.events else None
        store.mark_interrupted(run_dir, report.phase, last, len(recorder.events))
        raise
    _build_report(run_dir)
    return result


def _carry_out(spec: TestSpec, system, workload: Workload, checkers: list[Checker], run_dir: Path,
               recorder: Recorder, report: _Reporter, started: float,
               observing: bool) -> RunResult:
    """The phases of `run_test` from the cluster's start to results.json."""
    seed = spec.seed
    liveness: dict[str, Any] = {}
    cluster = Cluster(system, spec.nodes, run_dir, seed, network=spec.network)
    observer = None
    nemesis = None
    try:
        report("starting", [])
        cluster.start()
        if observing:
            observer = Observer(cluster, run_dir / store.OBSERVATIONS_FILE,
                                recorder.now).start()
        if isinstance(system, LeaderProbe):
            _wait_for_leader(cluster, spec.recovery_timeout)
        nemesis = fault_schedule.Nemesis(cluster, spec.schedule, recorder.record, seed,
                                        observer=observer, requested=spec.nemesis)
        clients = ClientPool(cluster, workload, recorder, spec, seed)
        test_started = time.monotonic()
        clients.start()
        nemesis.start(test_started)
        try:
            while (left := spec.time_limit - (time.monotonic() - test_started)) > 0:
                report("running", list(nemesis.active))
                time.sleep(min(0.25, left))
        except KeyboardInterrupt:
            report.hold()           # interrupted while running, not while stopping clients
            raise
        finally:
            nemesis.stop()
            report("stopping clients", list(nemesis.active))
            clients.stop()
        report("healing", list(nemesis.active))
        nemesis.heal_all()
        report("recovering", [])
        liveness = _recover(cluster, spec.recovery_timeout)
        try:
            down = cluster.why_down()
        except Exception as exc:        # an adapter's readiness probe failing: say so, go on
            down = {"?": f"could not tell which nodes are down: {type(exc).__name__}: {exc}"}
        if down:
            # A node that would not come back (refnode refusing a damaged log) is said in the
            # results, in its own words, not only in its log.
            liveness["down"] = down
        if liveness["recovered"]:
            liveness = _settle(cluster, spec.recovery_timeout, liveness)
        if liveness["recovered"]:
            report("final reads", [])
            _final_reads(cluster, workload, recorder, spec)
    finally:
        if observer is not None:
            observer.stop()
        cluster.close()
        recorder.close()

    report("checking", [])
    context = CheckContext(source=str(run_dir / store.HISTORY_FILE),
                           observations=observer.records if observer is not None else None)
    combined, results = judge(recorder.events, checkers, context)
    combined["liveness"] = liveness
    combined["faults"] = nemesis.report() if nemesis is not None else {}
    combined["seed"] = seed
    combined.update(placement(results, recorder.events))
    store.write_json(run_dir / store.RESULTS_FILE, combined)
    elapsed = time.monotonic() - started
    return RunResult(run_dir, seed, combined["valid"], liveness, combined, elapsed,
                     dict(recorder.counts), (spec.system_options or {}).get("bug"))


def check_choices(workload: Workload) -> dict[str, Any]:
    """What the workload declares its checkers judge by, as test.json's "check" section
    records it: the model (`{"name": ...}`, left out when its checkers use none) and the
    checkers' options by name (lists, as JSON has them)."""
    choices: dict[str, Any] = {}
    if workload.model is not None:
        choices["model"] = {"name": workload.model}
    for name, value in workload.check_options().items():
        choices[name] = list(value) if isinstance(value, (list, tuple)) else value
    return choices


def _build_report(run_dir: Path) -> None:
    """The run's report.html, once results.json is on disk. A report is for reading: one
    that cannot be built, even for want of its modules, is a warning line, never a lost run
    or a changed verdict."""
    try:
        from harness.report.html import build_quietly
    except Exception as exc:  # noqa: BLE001 - the run is done and stored; it stays so
        logging.getLogger("faultline.report").warning(
            "faultline: warning: no report.html for %s: %s: %s", run_dir,
            type(exc).__name__, exc)
        return
    build_quietly(run_dir)


class _Reporter:
    """`report(phase, active faults)` passes the run's progress to `on_progress`; `phase` is
    the phase the run is in, what an interruption's marker names."""

    def __init__(self, on_progress, spec: TestSpec, recorder: Recorder, started: float):
        self._on_progress = on_progress
        self._spec = spec
        self._recorder = recorder
        self._started = started
        self._held = False
        self.phase = "starting"

    def __call__(self, phase: str, active: list[str]) -> None:
        if not self._held:
            self.phase = phase
        if self._on_progress is not None:
            self._on_progress(RunProgress(time.monotonic() - self._started,
                                          self._spec.time_limit, dict(self._recorder.counts),
                                          active, phase))

    def hold(self) -> None:
        """Keep `phase` as it is from now on: the run is being interrupted, and the phases
        its cleanup reports are not where it was stopped."""
        self._held = True


def _wait_for_leader(cluster: Cluster, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = cluster.leader()
        if leader:
            return leader
        time.sleep(0.05)
    return None


def _recover(cluster: Cluster, timeout: float) -> dict[str, Any]:
    """Wait until a write is accepted again; the write goes to a key no workload uses, and is
    not part of the history."""
    started = time.monotonic()
    deadline = started + timeout
    attempt = 0
    while time.monotonic() < deadline:
        node = cluster.ids[attempt % len(cluster.ids)]
        attempt += 1
        client = cluster.client(node, timeout=0.5)
        try:
            outcome = client.invoke("write", "faultline-liveness", attempt)
        except Exception:                    # a node still coming up
            outcome = {"type": "info"}
        finally:
            client.close()
        if outcome["type"] == "ok":
            return {"recovered": True, "seconds": round(time.monotonic() - started, 3)}
        time.sleep(0.05)
    return {"recovered": False, "seconds": round(time.monotonic() - started, 3),
            "reason": f"no write accepted within {timeout:g} s after every fault ended"}


def _settle(cluster: Cluster, timeout: float, liveness: dict[str, Any]) -> dict[str, Any]:
    """Before the final reads, wait until the system says it has settled (Redis: every
    Sentinel names the same primary, which has all its replicas): a final read from a node
    about to be demoted would call lost what the real primary still has."""
    if getattr(cluster.system, "unsettled", None) is None:
        return liveness
    started = time.monotonic()
    reason = cluster.wait_settled(timeout)
    if reason is not None:
        return dict(liveness, recovered=False,
                    reason=f"not settled within {timeout:g} s after every fault ended: "
                           f"{reason}")
    return dict(liveness, settled_seconds=round(time.monotonic() - started, 3))


def _final_reads(cluster: Cluster, workload: Workload, recorder: Recorder,
                 spec: TestSpec) -> None:
    process = 10 ** 6       # beyond any client process, so final reads are easy to spot
    for invocation in workload.final_ops():
        for _ in range(FINAL_READ_ATTEMPTS):
            outcome = _perform(cluster.client(cluster.ids[0], timeout=spec.op_timeout * 2),
                               recorder, process, invocation, close=True)
            process += 1
            if outcome == "ok":
                break


def _perform(client, recorder: Recorder, process: int, inv: Invocation,
             close: bool = False) -> str:
    """Invoke one operation and record its invocation and completion; returns its type."""
    recorder.record(process, "invoke", inv.f, inv.key, inv.value)
    options = {"final": True} if inv.final else {}
    try:
        result = client.invoke(inv.f, inv.key, inv.value, **options)
    except Exception as exc:        # as in Jepsen: a client that throws leaves an unknown op
        result = {"type": "info", "value": None if inv.f == "read" else inv.value,
                  "error": f"{type(exc).__name__}: {exc}"}
    finally:
        if close:
            client.close()
    kind = result["type"]
    # An ok completion keeps an error only as the system's warning with its acknowledgement
    # (PostgreSQL's cancelled wait for its standby): the client was told it took effect.
    error = result.get("error")
    if kind == "ok" and not str(error or "").startswith("warning:"):
        error = None
    recorder.record(process, kind, inv.f, inv.key, result.get("value"),
                    node=result.get("node"), version=result.get("version") if kind == "ok"
                    else None, error=error)
    return kind


class ClientPool:
    """`concurrency` logical clients, one thread each, bound round-robin to the nodes.

    A client whose operation ends `info` never issues another: its thread carries on as a
    fresh process (number + concurrency) with a new connection, as in Jepsen. Each thread
    waits for its operations a patience of its own, drawn from a quarter of the test's op
    timeout to all of it (`PATIENCE_RANGE`). The total rate is spread evenly: each client
    starts an operation every concurrency/rate seconds on average (staggered: each wait is
    drawn from half to one and a half of that). The rate and the mix are those of the test's
    phase at the moment (`TestSpec.phase_at`)."""

    def __init__(self, cluster: Cluster, workload: Workload, recorder: Recorder,
                 spec: TestSpec, seed: int):
        self.cluster = cluster
        self.workload = workload
        self.recorder = recorder
        self.spec = spec
        self.seed = seed
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = time.monotonic()

    def start(self) -> None:
        self._started = time.monotonic()
        for thread_id in range(self.spec.concurrency):
            thread = threading.Thread(target=self._run, args=(thread_id,),
                                      name=f"client-{thread_id}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Let every client finish its operation in flight, then end."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, thread_id: int) -> None:
        spec = self.spec
        rng = random.Random(f"{self.seed}/client/{thread_id}")
        node = self.cluster.ids[thread_id % len(self.cluster.ids)]
        process = thread_id
        patience = spec.op_timeout * random.Random(f"{self.seed}/patience/{thread_id}").uniform(
            *PATIENCE_RANGE)
        client = self._connect(node, patience)
        if client is None:
            return
        rate, mix = spec.phase_at(0.0)
        next_start = self._started + (rng.uniform(0, spec.concurrency / rate) if rate else 0)
        try:
            while not self._stop.is_set():
                delay = next_start - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                rate, mix = spec.phase_at(time.monotonic() - self._started)
                if not rate:                      # a quiet phase: look again shortly
                    next_start = time.monotonic() + IDLE_POLL
                    continue
                period = spec.concurrency / rate
                next_start = max(next_start + period * rng.uniform(0.5, 1.5),
                                 time.monotonic() - period)
                kind = _perform(client, self.recorder, process,
                                self.workload.next_op(rng, mix))
                if kind == "info":
                    process += spec.concurrency
                    client.close()
                    client = self._connect(node, patience)
                    if client is None:
                        return
        finally:
            if client is not None:
                client.close()

    def _connect(self, node: str, timeout: float):
        """A new client of `node`, or None once the pool is stopping. An adapter whose client
        cannot be made right now (its constructor raised: a server that does not answer) is
        asked again a moment later, rather than this client falling silent for the rest of
        the run."""
        while not self._stop.is_set():
            try:
                return self.cluster.client(node, timeout=timeout)
            except Exception:
                self._stop.wait(min(timeout, 0.5))
        return None
