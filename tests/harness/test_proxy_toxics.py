"""Every toxic's observable effect, through a real proxy server process and a real echo server.

A test puts a proxy in front of an `EchoServer` (threads in this process, on 127.0.0.1), adds
toxics through toxiproxy-python, and watches what a plain socket client sees: how long a round
trip takes, how many bytes arrive, in how many pieces, and how the connection ends (end of
stream, reset, or still open). Timings have generous tolerances: they show the effect, they do
not benchmark it (bench/proxy_bench.py does). The same tests run against a real
`toxiproxy-server` when one is found, and are skipped otherwise.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from harness.proxy.client import BoundProxy




@pytest.fixture
def proxy(client, echo) -> BoundProxy:
    """A proxy in front of the echo server, with no toxic yet."""
    return client.create(upstream=echo.address, name="echo")


# -- a plain socket client -----------------------------------------------------------------------

def connect(proxy: BoundProxy) -> socket.socket:
    sock = socket.create_connection(proxy.listen_address, timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, size: int, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    got = bytearray()
    while len(got) < size:
        data = sock.recv(size - len(got))
        if not data:
            break
        got += data
    return bytes(got)


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    """Seconds from sending `payload` to having all of it back."""
    start = time.monotonic()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.monotonic() - start


def ending(sock: socket.socket, within: float) -> tuple[str, float, bytes]:
    """How the connection ends within `within` seconds: ("eof" | "reset" | "open", seconds
    waited, bytes received meanwhile)."""
    start = time.monotonic()
    received = bytearray()
    deadline = start + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "open", time.monotonic() - start, bytes(received)
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return "open", time.monotonic() - start, bytes(received)
        except ConnectionResetError:
            return "reset", time.monotonic() - start, bytes(received)
        if not data:
            return "eof", time.monotonic() - start, bytes(received)
        received += data


# -- no toxic ------------------------------------------------------------------------------------

def test_without_toxics_bytes_pass_intact_both_ways(proxy):
    payload = os.urandom(2 * 1024 * 1024)
    with connect(proxy) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        got = recv_exactly(sock, len(payload), timeout=20)
        sender.join()
    assert got == payload


def test_noop_passes_data(proxy):
    proxy.add_toxic(type="noop", stream="upstream")
    proxy.add_toxic(type="noop")
    with connect(proxy) as sock:
        assert round_trip(sock, b"x" * 1000) < 1.0


# -- latency -------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_latency_delays_by_the_given_time(proxy, stream):
    with connect(proxy) as sock:
        assert round_trip(sock) < 0.05
    proxy.add_toxic(type="latency", stream=stream, attributes={"latency": 100})
    with connect(proxy) as sock:
        times = [round_trip(sock) for _ in range(3)]
    assert all(0.095 <= t < 0.35 for t in times), times


def test_latency_on_both_streams_adds_up(proxy):
    proxy.add_toxic(type="latency", stream="upstream", attributes={"latency": 60})
    proxy.add_toxic(type="latency", stream="downstream", attributes={"latency": 60})
    with connect(proxy) as sock:
        assert 0.115 <= round_trip(sock) < 0.4


def test_jitter_varies_the_delay(proxy):
    proxy.add_toxic(type="latency", attributes={"latency": 60, "jitter": 40})
    with connect(proxy) as sock:
        times = [round_trip(sock) for _ in range(12)]
    assert all(0.018 <= t < 0.3 for t in times), times
    assert max(times) - min(times) > 0.015, times


def test_latency_delays_without_slowing_a_stream_down(proxy):
    """Each chunk waits its own 100 ms, counted from its arrival: they are not queued up."""
    proxy.add_toxic(type="latency", attributes={"latency": 100})
    with connect(proxy) as sock:
        start = time.monotonic()
        for i in range(10):
            sock.sendall(b"%02d" % i)
            time.sleep(0.02)
        got = recv_exactly(sock, 20)
        elapsed = time.monotonic() - start
    assert got == b"".join(b"%02d" % i for i in range(10))
    assert 0.28 <= elapsed < 0.8, elapsed


# -- bandwidth -----------------------------------------------------------------------------------

def test_bandwidth_limits_the_rate(proxy):
    payload = os.urandom(60_000)
    with connect(proxy) as sock:
        start = time.monotonic()
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload
        unlimited = time.monotonic() - start
    proxy.add_toxic(type="bandwidth", attributes={"rate": 100})  # 100 KB/s: 0.6 s for 60 kB
    with connect(proxy) as sock:
        start = time.monotonic()
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload), timeout=10) == payload
        limited = time.monotonic() - start
    assert unlimited < 0.2
    assert 0.45 <= limited < 1.6, limited


def test_bandwidth_of_zero_means_no_limit(proxy):
    proxy.add_toxic(type="bandwidth", attributes={"rate": 0})
    with connect(proxy) as sock:
        assert round_trip(sock, b"z" * 200_000) < 1.0


# -- timeout -------------------------------------------------------------------------------------

def test_timeout_swallows_data_and_closes_after_the_timeout(proxy):
    proxy.add_toxic(type="timeout", attributes={"timeout": 300})
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        how, waited, received = ending(sock, 3.0)
    assert how in ("eof", "reset") and received == b""
    assert 0.25 <= waited < 1.5, waited


def test_timeout_upstream_never_reaches_the_server(proxy, echo):
    proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
    with connect(proxy) as sock:
        sock.sendall(b"lost in the partition")
        how, _, received = ending(sock, 0.4)
    assert how == "open" and received == b""
    assert bytes(echo.received) == b""


def test_timeout_zero_never_closes_and_removing_it_closes(proxy):
    proxy.add_toxic(type="timeout", attributes={"timeout": 0})
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        how, _, received = ending(sock, 0.6)
        assert how == "open" and received == b""
        proxy.destroy_toxic("timeout_downstream")
        how, waited, received = ending(sock, 3.0)
    assert how in ("eof", "reset") and received == b""
    assert waited < 1.0


# -- reset_peer ----------------------------------------------------------------------------------

def test_reset_peer_resets_the_connection(proxy):
    proxy.add_toxic(type="reset_peer", attributes={"timeout": 0})
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        how, waited, received = ending(sock, 3.0)
    assert how == "reset" and received == b""
    assert waited < 1.0


def test_reset_peer_waits_its_timeout_after_the_first_data(proxy):
    proxy.add_toxic(type="reset_peer", attributes={"timeout": 300})
    with connect(proxy) as sock:
        time.sleep(0.2)  # no data yet: nothing happens
        sock.sendall(b"hello")
        how, waited, _ = ending(sock, 3.0)
    assert how == "reset"
    assert 0.25 <= waited < 1.5, waited


# -- slicer --------------------------------------------------------------------------------------

def test_slicer_delivers_data_in_several_pieces(proxy):
    proxy.add_toxic(type="slicer", attributes={"average_size": 10, "size_variation": 4,
                                               "delay": 20_000})  # 20 ms between pieces
    payload = bytes(range(100))
    with connect(proxy) as sock:
        sock.sendall(payload)
        pieces = []
        start = time.monotonic()
        while sum(map(len, pieces)) < len(payload):
            sock.settimeout(5)
            data = sock.recv(65536)
            assert data
            pieces.append(data)
        elapsed = time.monotonic() - start
    assert b"".join(pieces) == payload
    assert len(pieces) >= 4, [len(p) for p in pieces]
    assert max(map(len, pieces)) <= 40
    assert elapsed >= 0.1


# -- limit_data ----------------------------------------------------------------------------------

def test_limit_data_closes_after_that_many_bytes(proxy):
    proxy.add_toxic(type="limit_data", attributes={"bytes": 50})
    with connect(proxy) as sock:
        sock.sendall(bytes(range(100)))
        how, _, received = ending(sock, 3.0)
    assert how in ("eof", "reset")
    assert received == bytes(range(50))


def test_limit_data_upstream_limits_what_the_server_gets(proxy, echo):
    proxy.add_toxic(type="limit_data", stream="upstream", attributes={"bytes": 30})
    with connect(proxy) as sock:
        sock.sendall(bytes(range(100)))
        how, _, received = ending(sock, 3.0)
    assert how in ("eof", "reset")
    assert bytes(range(30)).startswith(received)
    # the proxy may close the client's side before the echo server's thread has read
    deadline = time.monotonic() + 3
    while len(echo.received) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert bytes(echo.received) == bytes(range(30))


# -- slow_close ----------------------------------------------------------------------------------

def test_slow_close_delays_the_close(proxy):
    def close_time() -> float:
        with connect(proxy) as sock:
            assert round_trip(sock, b"bye") < 1.0
            sock.shutdown(socket.SHUT_WR)  # the echo server then closes its side
            how, waited, received = ending(sock, 3.0)
            assert how == "eof" and received == b""
            return waited

    assert close_time() < 0.2
    proxy.add_toxic(type="slow_close", attributes={"delay": 400})
    assert 0.38 <= close_time() < 1.5


# -- toxicity, streams, and toxics on open connections -------------------------------------------

def test_toxicity_zero_never_applies_and_one_always_does(proxy):
    proxy.add_toxic(type="latency", toxicity=0.0, attributes={"latency": 200})
    for _ in range(5):
        with connect(proxy) as sock:
            assert round_trip(sock) < 0.1
    proxy.update_toxic("latency_downstream", toxicity=1.0)
    for _ in range(3):
        with connect(proxy) as sock:
            assert round_trip(sock) >= 0.19


def test_toxicity_is_drawn_once_per_connection(proxy):
    proxy.add_toxic(type="latency", toxicity=0.5, attributes={"latency": 120})
    slow = []
    for _ in range(24):
        with connect(proxy) as sock:
            first, second = round_trip(sock), round_trip(sock)
        assert (first >= 0.115) == (second >= 0.115), (first, second)
        slow.append(first >= 0.115)
    assert 0 < sum(slow) < len(slow), slow


def test_toxics_added_changed_and_removed_apply_to_open_connections(proxy):
    with connect(proxy) as sock:
        assert round_trip(sock) < 0.05
        proxy.add_toxic(type="latency", attributes={"latency": 100})
        assert 0.095 <= round_trip(sock) < 0.35
        proxy.update_toxic("latency_downstream", {"latency": 250})
        assert 0.245 <= round_trip(sock) < 0.6
        proxy.destroy_toxic("latency_downstream")
        assert round_trip(sock) < 0.05


def test_removing_a_toxic_under_traffic_loses_no_byte(proxy):
    proxy.add_toxic(type="bandwidth", attributes={"rate": 50})  # 2 s for 100 kB
    payload = os.urandom(100_000)
    with connect(proxy) as sock:
        start = time.monotonic()
        sock.sendall(payload)
        head = recv_exactly(sock, 5_000)
        proxy.destroy_toxic("bandwidth_downstream")
        rest = recv_exactly(sock, len(payload) - len(head))
        elapsed = time.monotonic() - start
    assert head + rest == payload
    assert elapsed < 1.5, elapsed


def test_a_chain_of_toxics_keeps_the_bytes_in_order(proxy):
    proxy.add_toxic(type="latency", name="lat", attributes={"latency": 20, "jitter": 10})
    proxy.add_toxic(type="slicer", name="cut", attributes={"average_size": 500,
                                                           "size_variation": 200,
                                                           "delay": 100})
    proxy.add_toxic(type="bandwidth", name="bw", attributes={"rate": 2000})
    proxy.add_toxic(type="latency", name="lat_up", stream="upstream",
                    attributes={"latency": 10})
    payload = os.urandom(200_000)
    with connect(proxy) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        got = recv_exactly(sock, len(payload), timeout=20)
        sender.join()
    assert got == payload


def test_reset_heals_open_connections_and_disabled_proxies(client, proxy):
    with connect(proxy) as sock:
        proxy.add_toxic(type="latency", attributes={"latency": 300})
        assert round_trip(sock) >= 0.29
        client.reset()
        assert round_trip(sock) < 0.1
    proxy.disable()
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    client.reset()
    with connect(proxy) as sock:
        assert round_trip(sock) < 0.1


def test_disable_closes_open_connections_then_enable_accepts_again(proxy):
    with connect(proxy) as sock:
        assert round_trip(sock) < 0.1
        proxy.disable()
        how, _, _ = ending(sock, 3.0)
        assert how in ("eof", "reset")
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    proxy.enable()
    with connect(proxy) as sock:
        assert round_trip(sock) < 0.1


def test_churning_toxics_under_traffic_keeps_every_byte_in_order(proxy):
    """Toxics added, changed and removed many times while data streams both ways."""
    import random

    rng = random.Random(4)
    payload = os.urandom(450_000)
    kinds = [("latency", {"latency": 5, "jitter": 3}), ("slicer", {"average_size": 300,
                                                                   "size_variation": 100,
                                                                   "delay": 50}),
             ("bandwidth", {"rate": 3000}), ("noop", {})]
    with connect(proxy) as sock:
        got = bytearray()
        receiver = threading.Thread(
            target=lambda: got.extend(recv_exactly(sock, len(payload), timeout=30)))
        receiver.start()
        sender = threading.Thread(target=lambda: [sock.sendall(payload[i:i + 1500]) or
                                                  time.sleep(0.003)
                                                  for i in range(0, len(payload), 1500)])
        sender.start()
        present: dict[str, str] = {}
        changes = 0
        while sender.is_alive():
            changes += 1
            kind, attributes = rng.choice(kinds)
            stream = rng.choice(["upstream", "downstream"])
            name = f"{kind}_{stream}"
            if name in present and rng.random() < 0.5:
                proxy.destroy_toxic(name)
                del present[name]
            elif name in present:
                proxy.update_toxic(name, attributes, toxicity=rng.choice([0.0, 0.5, 1.0]))
            else:
                proxy.add_toxic(type=kind, stream=stream, attributes=attributes,
                                toxicity=rng.choice([0.5, 1.0]))
                present[name] = kind
            time.sleep(0.01)
        for name in present:
            proxy.destroy_toxic(name)
        sender.join()
        receiver.join()
    assert bytes(got) == payload
    assert changes >= 20
