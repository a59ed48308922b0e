"""What one hop through the embedded proxy costs: added latency and throughput.

Three processes: an echo server (asyncio), the embedded proxy server (started as the harness
starts it, `harness.proxy.process.start_embedded`) with one proxy in front of the echo server,
and this process as the client. Clients play small request/response ping-pong (64-byte messages,
one request outstanding per connection) at 1 and at 16 concurrent connections, directly against
the echo server and through the proxy, in alternating rounds; the difference is what the hop
adds. CPU time per round trip of each process is printed too, to show where the time goes.
When `socat` is on the PATH it is measured the same way, as a native (C) reference forwarder.

    .venv/bin/python bench/proxy_bench.py            # the full run (about 40 s)
    .venv/bin/python bench/proxy_bench.py --quick    # shorter phases

Targets (issue 4): p50 added latency under 0.3 ms at low load (1 connection); through one
proxy, at least half the direct throughput for small request/response traffic (judged at 16
connections, where throughput is bound by CPU rather than by round-trip time). Figures for the
other cases, and a bulk transfer, are printed for information. Exit code 0 iff targets are met.

On a small machine the throughput target is near a physical bound: a hop doubles the loopback
TCP system calls of every round trip (the proxy receives and sends twice per round trip, the echo
server once), and system time is most of every process's CPU here; with client, proxy and echo
server sharing the cores, about half the direct rate is what any forwarder can keep.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.proxy.process import start_embedded

MESSAGE = 64
P50_TARGET_MS = 0.3
THROUGHPUT_TARGET = 0.5


# -- the echo server (a child process) --------------------------------------------------------

class _Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def _echo_main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.connect_read_pipe(lambda: _StopOnEof(server), sys.stdin)
    try:
        await server.serve_forever()
    except asyncio.CancelledError:  # stdin closed: the benchmark is over
        pass


class _StopOnEof(asyncio.Protocol):
    def __init__(self, server):
        self.server = server

    def connection_lost(self, exc):
        self.server.close()


def start_echo() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, __file__, "--echo"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    port = int(proc.stdout.readline())
    return proc, port


# -- the client ----------------------------------------------------------------------------------

class _PingPong(asyncio.Protocol):
    """One connection sending MESSAGE bytes and waiting for all of them back, in a loop."""

    def __init__(self, until: float, samples: list[float], done: asyncio.Future):
        self.until = until
        self.samples = samples
        self.done = done
        self.payload = b"x" * MESSAGE
        self.pending = 0
        self.sent_at = 0.0
        self.clock = time.perf_counter

    def connection_made(self, transport):
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def start(self):
        self.pending = MESSAGE
        self.sent_at = self.clock()
        self.transport.write(self.payload)

    def data_received(self, data):
        self.pending -= len(data)
        if self.pending:
            return
        now = self.clock()
        self.samples.append(now - self.sent_at)
        if now < self.until:
            self.pending = MESSAGE
            self.sent_at = now
            self.transport.write(self.payload)
        elif not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("closed"))


async def ping_pong(port: int, connections: int, seconds: float) -> tuple[list[float], float]:
    """(round-trip times in seconds, round trips per second) over `seconds`."""
    loop = asyncio.get_running_loop()
    samples: list[float] = []
    protocols = []
    for _ in range(connections):
        done = loop.create_future()
        _, proto = await loop.create_connection(
            lambda done=done: _PingPong(0.0, samples, done), "127.0.0.1", port)
        protocols.append(proto)
    # warm up, then measure
    for phase, length in (("warm", min(0.3, seconds / 4)), ("measure", seconds)):
        samples.clear()
        start = time.perf_counter()
        for proto in protocols:
            proto.done = loop.create_future()
            proto.until = start + length
            proto.start()
        await asyncio.gather(*(proto.done for proto in protocols))
        elapsed = time.perf_counter() - start
    for proto in protocols:
        proto.transport.close()
    return list(samples), len(samples) / elapsed


def bulk(port: int, megabytes: int) -> float:
    """MB/s of a one-way transfer echoed back (sender and receiver threads)."""
    import threading

    block = b"y" * 65536
    total = megabytes * 1024 * 1024
    sock = socket.create_connection(("127.0.0.1", port))
    received = 0

    def reader():
        nonlocal received
        while received < total:
            data = sock.recv(1 << 20)
            if not data:
                break
            received += len(data)

    start = time.perf_counter()
    thread = threading.Thread(target=reader)
    thread.start()
    sent = 0
    while sent < total:
        sock.sendall(block)
        sent += len(block)
    thread.join()
    elapsed = time.perf_counter() - start
    sock.close()
    return received / elapsed / 1e6


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_socat(upstream_port: int) -> tuple[subprocess.Popen, int] | None:
    """socat forwarding a free port to the echo server (a reference), if socat is installed."""
    import shutil

    if shutil.which("socat") is None:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay",
                             f"TCP:127.0.0.1:{upstream_port},nodelay"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    proc.kill()
    proc.wait()
    return None


def measure(paths: dict[str, int], pids: dict[str, int], seconds: float, rounds: int):
    """Alternate the paths, `rounds` times, at 1 and 16 connections.

    Returns, per (connections, path): round-trip samples, the rate of each round, and CPU
    seconds used by the echo server, the proxy and the client over all rounds, with the number
    of round trips they served.
    """
    samples: dict[tuple[int, str], list[float]] = {}
    rates: dict[tuple[int, str], list[float]] = {}
    cpu: dict[tuple[int, str], list[float]] = {}
    for _ in range(rounds):
        for connections in (1, 16):
            for label, port in paths.items():
                key = (connections, label)
                watched = [pids["echo"], pids.get(label, 0), pids["client"]]
                before = cpu_seconds(watched)
                got, rate = asyncio.run(ping_pong(port, connections, seconds))
                after = cpu_seconds(watched)
                samples.setdefault(key, []).extend(got)
                rates.setdefault(key, []).append(rate)
                used = [sum(a) - sum(b) for a, b in zip(after, before)]
                total = cpu.setdefault(key, [0.0, 0.0, 0.0, 0.0])
                for i, value in enumerate(used + [rate * seconds]):
                    total[i] += value
    return samples, rates, cpu


def cpu_seconds(pids: list[int]) -> list[tuple[float, float]]:
    """(user, system) CPU seconds so far of each process (zeros for pid 0)."""
    import psutil

    return [tuple(psutil.Process(pid).cpu_times()[:2]) if pid else (0.0, 0.0) for pid in pids]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases")
    parser.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        asyncio.run(_echo_main())
        return 0
    seconds, rounds = (0.5, 2) if args.quick else (1.0, 5)
    echo, echo_port = start_echo()
    socat = start_socat(echo_port)
    try:
        with start_embedded(log_level="WARNING") as server:
            proxy = server.client().create(upstream=f"127.0.0.1:{echo_port}", name="bench")
            paths = {"direct": echo_port, "proxied": proxy.listen_address[1]}
            pids = {"echo": echo.pid, "proxied": server.pid, "client": os.getpid()}
            if socat is not None:
                paths["socat"] = socat[1]
            print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
                  f"{MESSAGE}-byte ping-pong; {rounds} rounds of {seconds:g} s per path")
            asyncio.run(ping_pong(paths["proxied"], 16, 1.0))  # warm everything up
            samples, rates, cpu = measure(paths, pids, seconds, rounds)
            return report(paths, samples, rates, cpu, quick=args.quick)
    finally:
        if socat is not None:
            socat[0].terminate()
            socat[0].wait()
        echo.stdin.close()
        try:
            echo.wait(5)
        except subprocess.TimeoutExpired:
            echo.kill()
            echo.wait()


def report(paths, samples, rates, cpu, quick: bool) -> int:
    print()
    print(f"{'connections':>11} {'path':>8} {'p50 ms':>8} {'p99 ms':>8} {'round trips/s':>14}"
          f"   CPU µs per round trip: echo, proxy, client")
    for key in samples:
        connections, label = key
        echo_s, proxy_s, client_s, trips = cpu[key]
        proxy_us = f"{proxy_s / trips * 1e6:5.1f}" if label == "proxied" else "    -"
        print(f"{connections:>11} {label:>8} {quantile(samples[key], .5) * 1e3:>8.3f} "
              f"{quantile(samples[key], .99) * 1e3:>8.3f} "
              f"{statistics.median(rates[key]):>14,.0f}   "
              f"{echo_s / trips * 1e6:5.1f} {proxy_us} {client_s / trips * 1e6:5.1f}")
    print()
    verdicts = []
    for label in [p for p in paths if p != "direct"]:
        name = "the proxy" if label == "proxied" else f"{label} (reference)"
        for connections in (1, 16):
            direct = samples[(connections, "direct")]
            through = samples[(connections, label)]
            p50 = (quantile(through, .5) - quantile(direct, .5)) * 1e3
            p99 = (quantile(through, .99) - quantile(direct, .99)) * 1e3
            line = (f"added by {name}, {connections:>2} connection(s): p50 {p50:.3f} ms, "
                    f"p99 {p99:.3f} ms")
            if label == "proxied" and connections == 1:
                ok = p50 < P50_TARGET_MS
                verdicts.append(ok)
                line += f"   target p50 < {P50_TARGET_MS} ms: {'met' if ok else 'MISSED'}"
            print(line)
        for connections in (1, 16):
            ratios = [t / d for t, d in zip(rates[(connections, label)],
                                            rates[(connections, "direct")])]
            share = statistics.median(ratios)
            line = (f"throughput through {name}, {connections:>2} connection(s): {share:.0%} of "
                    f"direct (rounds: {', '.join(f'{r:.0%}' for r in ratios)})")
            if label == "proxied" and connections == 16:
                ok = share >= THROUGHPUT_TARGET
                verdicts.append(ok)
                line += f"   target >= {THROUGHPUT_TARGET:.0%}: {'met' if ok else 'MISSED'}"
            print(line)
    megabytes = 64 if quick else 256
    for label in paths:
        if label != "direct":
            direct_mb = bulk(paths["direct"], megabytes)
            through_mb = bulk(paths[label], megabytes)
            print(f"bulk echo of {megabytes} MiB through {label}: {through_mb:,.0f} MB/s against "
                  f"{direct_mb:,.0f} MB/s direct ({through_mb / direct_mb:.0%})")
    print()
    print("all targets met" if all(verdicts) else "SOME TARGETS MISSED")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
