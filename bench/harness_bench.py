"""The harness's own speed: cluster start, partitions, recording rate, a whole run.

    .venv/bin/python bench/harness_bench.py [--quick]

Targets (issues 4 and 5): 5 refnode nodes and their 25 link proxies up with a leader within
2 s; applying or healing a partition of a 5-node cluster under 100 ms; with 16 clients against
3 nodes behind the proxies, at least 2,000 recorded ops/s (beside the same clients going
direct, unrecorded); a 60 s run with faults finished, checks included, within 75 s.
Where this user may create network namespaces, the same rows for the namespace network.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadgen import run_threads  # noqa: E402

from harness.faults import partition_shapes as partitions  # noqa: E402
from harness.networks.netns import may_make_namespaces  # noqa: E402
from harness.run.cluster import Cluster  # noqa: E402
from harness.run.runner import run_test  # noqa: E402
from harness.run.spec import TestSpec  # noqa: E402
from harness.systems.refnode import RefnodeSystem  # noqa: E402
from refnode.client import RefnodeClient  # noqa: E402


def start_and_partition(tmp: Path, rounds: int, network: str) -> None:
    starts, applies, heals = [], [], []
    for i in range(rounds):
        started = time.perf_counter()
        with Cluster(RefnodeSystem(), 5, tmp / f"{network}-start-{i}", seed=i,
                     network=network) as cluster:
            while cluster.leader() is None:
                time.sleep(0.005)
            starts.append(time.perf_counter() - started)
            rng = random.Random(i)
            for shape in (partitions.halves(cluster.ids, rng),
                          partitions.majorities_ring(cluster.ids, rng),
                          partitions.isolate(cluster.ids, "n1")):
                t = time.perf_counter()
                change = cluster.network.cut(shape)
                applies.append(time.perf_counter() - t)
                t = time.perf_counter()
                cluster.network.undo(change)
                heals.append(time.perf_counter() - t)
    what = "25 proxies" if network == "proxy" else "5 namespaces"
    print(f"{network}: 5 nodes + {what}, start to leader: median "
          f"{statistics.median(starts):.3f} s, max {max(starts):.3f} s  (target < 2 s)")
    print(f"{network}: partition of 5 nodes: apply median "
          f"{statistics.median(applies) * 1e3:.1f} ms, "
          f"max {max(applies) * 1e3:.1f} ms; heal median {statistics.median(heals) * 1e3:.1f}"
          f" ms, max {max(heals) * 1e3:.1f} ms  (target < 100 ms)")


def direct_rate(tmp: Path, clients: int, seconds: float) -> float:
    """Ops/s of `clients` threads doing the register mix straight at the nodes, unrecorded."""
    with Cluster(RefnodeSystem(), 3, tmp / "direct", seed=1) as cluster:
        while cluster.leader() is None:
            time.sleep(0.01)
        own = {slot.id: slot.client_address for slot in cluster.layout.nodes}
        done = [0] * clients

        def worker(i: int, stop: threading.Event) -> None:
            rng = random.Random(i)
            with RefnodeClient(own, cluster.ids[i % 3], timeout=1.0) as client:
                n = 0
                while not stop.is_set():
                    key = f"k{rng.randrange(5)}"
                    if rng.random() < 0.5:
                        client.read(key)
                    else:
                        client.write(key, (i, n))
                    n += 1
                done[i] = n

        run_threads(worker, clients, seconds)
        return sum(done) / seconds


def recorded_rate(tmp: Path, clients: int, seconds: float,
                  network: str = "proxy") -> tuple[float, float]:
    spec = TestSpec(time_limit=seconds, nemesis=(), concurrency=clients, rate=100_000,
                    seed=1, runs_dir=str(tmp / "runs"), cas_share=0.0, network=network)
    result = run_test(spec)
    ops = sum(result.counts.get(k, 0) for k in ("ok", "fail", "info"))
    return ops / seconds, result.elapsed


def whole_run(tmp: Path, seconds: float) -> tuple[float, object]:
    spec = TestSpec(time_limit=seconds, seed=2, runs_dir=str(tmp / "runs"))
    result = run_test(spec)
    return result.elapsed, result.valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, no 60 s run")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else 10.0
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        networks = ["proxy"] + (["netns"] if may_make_namespaces() else [])
        for network in networks:
            start_and_partition(tmp, 2 if args.quick else 5, network)
        direct = direct_rate(tmp, 16, seconds)
        recorded, _ = recorded_rate(tmp, 16, seconds)
        print(f"16 clients, 3 nodes: direct and unrecorded {direct:,.0f} ops/s; through the "
              f"proxies, recorded {recorded:,.0f} ops/s ({recorded / direct:.0%})  "
              f"(target >= 2,000 ops/s)")
        if "netns" in networks:
            recorded, _ = recorded_rate(tmp, 16, seconds, "netns")
            print(f"16 clients, 3 nodes in namespaces: recorded {recorded:,.0f} ops/s "
                  f"({recorded / direct:.0%} of direct on loopback)  (target >= 2,000 ops/s)")
        if not args.quick:
            elapsed, valid = whole_run(tmp, 60.0)
            print(f"60 s run with partitions and kills: {elapsed:.1f} s from start to "
                  f"verdict ({valid})  (target < 75 s)")


if __name__ == "__main__":
    main()
