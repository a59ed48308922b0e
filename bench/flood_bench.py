"""refnode under a flood: memory and service while a client pipelines without reading replies.

A 3-node cluster of real processes on 127.0.0.1 (fsync on). For each flood, one raw connection
to the leader pours pipelined requests and never reads a reply, while one well-behaved client
writes one request at a time. Printed per flood: how many requests the flooder got into the
node (its writes block once the node stops reading it), the leader's resident memory before,
at its peak and after, and the well-behaved client's write latency meanwhile.

    .venv/bin/python bench/flood_bench.py [--seconds 10]

Targets (issue 13): the leader's memory bounded (before the limits, 400k pipelined requests
grew a node to 222 MiB), the other client served throughout (no operation failed, p99 well
under a second).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refnode.frames import encode_frame  # noqa: E402
from tests.refnode.local_cluster import LocalCluster  # noqa: E402

FLOODS = {
    "writes, 80 B": lambda i: {"id": i, "op": "write", "key": f"f{i % 10}", "value": i},
    "writes, 16 KB": lambda i: {"id": i, "op": "write", "key": f"f{i % 10}",
                                "value": "x" * 16_000},
    "leader reads": lambda i: {"id": i, "op": "read", "key": f"f{i % 10}"},
}


def flood(cluster: LocalCluster, leader: str, make, seconds: float) -> dict:
    """Pour requests made by `make` at the leader for `seconds`; measure (see the module)."""
    process = psutil.Process(cluster.supervisor.get(leader).pid)
    before = process.memory_info().rss
    host, port = cluster.client_addresses[leader].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
    # Batches of about 64 KiB, counted as each is handed to the kernel: what the node took in,
    # give or take the socket buffers.
    batch_size = max(1, (64 * 1024) // len(encode_frame(make(0))))
    sent = [0]
    stop = threading.Event()

    def pour() -> None:
        i = 0
        try:
            while not stop.is_set():
                sock.sendall(b"".join(encode_frame(make(i + k)) for k in range(batch_size)))
                i += batch_size
                sent[0] = i
        except OSError:
            pass

    pourer = threading.Thread(target=pour, daemon=True)
    pourer.start()
    peak, latencies, failed = before, [], 0
    deadline = time.monotonic() + seconds
    with cluster.client(leader, timeout=2.0) as client:
        n = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            outcome = client.write("steady", n)
            latencies.append(time.perf_counter() - started)
            failed += outcome.type != "ok"
            n += 1
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.01)
    stop.set()
    sock.close()
    pourer.join(timeout=10)
    time.sleep(1.0)
    after = process.memory_info().rss
    latencies.sort()
    return {"sent": sent[0], "before": before, "peak": peak, "after": after,
            "p50": latencies[len(latencies) // 2], "p99": latencies[int(len(latencies) * .99)],
            "ops": len(latencies), "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    mib = 2 ** 20
    print(f"{args.seconds:g} s per flood, 3 nodes, fsync on; memory of the leader in MiB")
    print(f"{'flood':<16} {'requests in':>12} {'before':>7} {'peak':>7} {'after':>7} "
          f"{'steady ops':>10} {'failed':>6} {'p50 ms':>7} {'p99 ms':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        with LocalCluster(Path(tmp)) as cluster:
            leader = cluster.wait_for_leader()
            for name, make in FLOODS.items():
                r = flood(cluster, leader, make, args.seconds)
                print(f"{name:<16} {r['sent']:>12,} {r['before'] / mib:>7.0f} "
                      f"{r['peak'] / mib:>7.0f} {r['after'] / mib:>7.0f} {r['ops']:>10} "
                      f"{r['failed']:>6} {r['p50'] * 1e3:>7.1f} {r['p99'] * 1e3:>7.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
