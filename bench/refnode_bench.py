"""refnode's speed: throughput and latency per replication and read mode, failover, first election.

A 3-node cluster of real processes on 127.0.0.1 (fsync on), 16 concurrent clients (threads,
one connection each), for a few seconds per measurement:

    .venv/bin/python bench/refnode_bench.py [--seconds 5] [--clients 16]

Targets (issue 3): quorum writes >= 3,000/s with p99 < 20 ms; leader reads >= 4,000/s, more
for lease and follower reads; failover after SIGKILL of the leader within 1.5 s; a 5-node
cluster elects its first leader within 1 s of start.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadgen import run_threads  # noqa: E402
from tests.refnode.local_cluster import LocalCluster  # noqa: E402


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def load(cluster: LocalCluster, leader: str, clients: int, seconds: float, op: str,
         read_mode: str = "leader") -> tuple[float, float, float, int]:
    """Ops/s, p50 ms, p99 ms and failures of `clients` threads doing `op` for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients

    def worker(i: int, stop: threading.Event) -> None:
        home = cluster.ids[i % len(cluster.ids)] if read_mode == "follower" else leader
        with cluster.client(home, timeout=2.0) as client:
            n = 0
            while not stop.is_set():
                started = time.perf_counter()
                if op == "write":
                    outcome = client.write(f"k{i}", n)
                else:
                    outcome = client.read(f"k{i}", read_mode)
                elapsed = time.perf_counter() - started
                if outcome.type == "ok":
                    latencies[i].append(elapsed)
                else:
                    failures[i] += 1
                n += 1

    run_threads(worker, clients, seconds)
    flat = [x for per in latencies for x in per]
    return len(flat) / seconds, quantile(flat, 0.5) * 1e3, quantile(flat, 0.99) * 1e3, \
        sum(failures)


def failover(cluster: LocalCluster, leader: str) -> float:
    """Seconds from SIGKILL of the leader until a write is accepted again."""
    survivors = [n for n in cluster.ids if n != leader]
    with cluster.client(survivors[0], timeout=0.3) as client:
        cluster.supervisor.get(leader).kill()
        killed = time.perf_counter()
        while True:
            if client.write("failover", 1).type == "ok":
                return time.perf_counter() - killed
            time.sleep(0.005)


def first_leader(size: int, directory: Path) -> float:
    """Seconds from starting `size` nodes until one of them is leader."""
    started = time.perf_counter()
    with LocalCluster(directory, size=size) as cluster:
        while True:
            for node in cluster.ids:
                status = cluster.status(node)
                if status and status.get("role") == "leader":
                    return time.perf_counter() - started
            time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    print(f"{args.clients} clients, {args.seconds:g} s per row, 3 nodes, fsync on")
    print(f"{'replication':<12} {'operation':<16} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'failed':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("sync", "quorum", "async"):
            with LocalCluster(Path(tmp) / mode, size=3, replication=mode) as cluster:
                leader = cluster.wait_for_leader()
                rows = [("write", "leader")]
                if mode == "quorum":
                    rows += [("read", "leader"), ("read", "lease"), ("read", "follower")]
                for op, read_mode in rows:
                    rate, p50, p99, failed = load(cluster, leader, args.clients, args.seconds,
                                                  op, read_mode)
                    label = op if op == "write" else f"{read_mode} read"
                    print(f"{mode:<12} {label:<16} {rate:>9,.0f} {p50:>8.2f} {p99:>8.2f} "
                          f"{failed:>7}", flush=True)
                if mode == "quorum":
                    times = []
                    for _ in range(3):
                        leader = cluster.wait_for_leader()
                        times.append(failover(cluster, leader))
                        cluster.start(leader)
                        cluster.wait_for_leader()
                    print(f"failover after SIGKILL of the leader: "
                          f"{', '.join(f'{t:.3f}' for t in times)} s (target < 1.5 s)")
        elections = [first_leader(5, Path(tmp) / f"five-{i}") for i in range(3)]
        print(f"5-node cluster, first leader after start: "
              f"{', '.join(f'{t:.3f}' for t in elections)} s (target < 1 s; includes "
              f"starting 5 Python processes)")


if __name__ == "__main__":
    main()
