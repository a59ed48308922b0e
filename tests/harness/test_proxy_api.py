"""The Toxiproxy HTTP API of the embedded proxy server, as a client sees it.

Every test drives a server running as a real process, through toxiproxy-python (bound to that
server by `ToxiproxyClient`), or through raw HTTP (urllib) where the client hides the status
code or the error body. The same tests run against a real `toxiproxy-server` when one is found
(`$FAULTLINE_TOXIPROXY_SERVER` or the PATH), and are skipped otherwise.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from typing import Any

import psutil
import pytest
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from harness.proxy.client import BoundProxy, ToxiproxyClient
from harness.proxy.process import (
    ProxyServerError,
    find_toxiproxy_server,
    start_embedded,
)
from harness.proxy.testing import EchoServer
from tests.harness.conftest import NO_REAL_SERVER

def test_a_real_toxiproxy_server_is_available_for_the_compatibility_run():
    if find_toxiproxy_server() is None:
        pytest.skip(NO_REAL_SERVER)



def http(server, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
         user_agent: str = "faultline-tests") -> tuple[int, Any]:
    """(status, body parsed as JSON when it is JSON, else text) of one raw API request."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers={"User-Agent": user_agent,
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            status, text = reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def refused(host: str, port: int) -> bool:
    """Whether a TCP connection to host:port is refused."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def echoes(proxy: BoundProxy, payload: bytes = b"ping") -> bool:
    with socket.create_connection(proxy.listen_address, timeout=5) as sock:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            data = sock.recv(65536)
            if not data:
                break
            got += data
        return got == payload


def taken_port() -> socket.socket:
    """A listening socket on 127.0.0.1, holding its port."""
    return socket.create_server(("127.0.0.1", 0))


def error(status: int, message: str) -> dict[str, Any]:
    return {"error": message, "status": status}


# -- version and the browser guard ---------------------------------------------------------------

def test_version_answers_200_with_a_version(server, client):
    status, body = http(server, "GET", "/version")
    assert status == 200
    assert isinstance(body, dict) and body["version"]
    assert client.running()
    assert b"version" in client.version()


def test_browsers_are_refused_with_403(server, client, echo):
    mozilla = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0"
    status, _ = http(server, "GET", "/proxies", user_agent=mozilla)
    assert status == 403
    status, _ = http(server, "POST", "/proxies", {"name": "csrf", "upstream": echo.address,
                                                   "listen": "127.0.0.1:0"},
                     user_agent=mozilla)
    assert status == 403
    assert "csrf" not in client.proxies()
    assert http(server, "GET", "/proxies")[0] == 200  # any other agent is welcome


def test_an_unknown_path_is_404(server, client):
    assert http(server, "GET", "/no-such-thing")[0] == 404


# -- proxies -------------------------------------------------------------------------------------

def test_create_answers_201_with_the_real_listen_address(server, client, echo):
    status, body = http(server, "POST", "/proxies",
                        {"name": "db", "listen": "127.0.0.1:0", "upstream": echo.address})
    assert status == 201
    assert body["name"] == "db" and body["upstream"] == echo.address
    assert body["enabled"] is True and body["toxics"] == []
    host, port = body["listen"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert echoes(client.get_proxy("db"))


def test_create_through_the_client(client, echo):
    proxy = client.create(upstream=echo.address, name="db")
    assert isinstance(proxy, BoundProxy)
    assert proxy.enabled is True and proxy.listen_address[1] > 0
    assert set(client.proxies()) == {"db"}
    assert client.get_proxy("db").listen == proxy.listen
    assert client.get_proxy("nope") is None
    assert echoes(proxy)
    with pytest.raises(ProxyExists):
        client.create(upstream=echo.address, name="db")


def test_create_validates_its_body(server, client, echo):
    assert http(server, "POST", "/proxies", {"upstream": echo.address}) == (
        400, error(400, "missing required field: name"))
    assert http(server, "POST", "/proxies", {"name": "db"}) == (
        400, error(400, "missing required field: upstream"))
    status, body = http(server, "POST", "/proxies", raw=b"{not json")
    assert status == 400 and body["status"] == 400
    assert body["error"].startswith("bad request body")
    assert client.proxies() == {}


def test_create_twice_is_409(server, client, echo):
    spec = {"name": "db", "listen": "127.0.0.1:0", "upstream": echo.address}
    assert http(server, "POST", "/proxies", spec)[0] == 201
    assert http(server, "POST", "/proxies", spec) == (409, error(409, "proxy already exists"))


def test_create_on_a_taken_port_is_500_and_creates_nothing(server, client, echo):
    with taken_port() as holder:
        listen = f"127.0.0.1:{holder.getsockname()[1]}"
        status, body = http(server, "POST", "/proxies",
                            {"name": "db", "listen": listen, "upstream": echo.address})
    assert status == 500 and body["status"] == 500 and body["error"]
    assert http(server, "GET", "/proxies/db")[0] == 404


def test_a_proxy_created_disabled_does_not_listen(server, client, echo):
    with taken_port() as holder:
        port = holder.getsockname()[1]
    status, body = http(server, "POST", "/proxies",
                        {"name": "db", "listen": f"127.0.0.1:{port}", "upstream": echo.address,
                         "enabled": False})
    assert status == 201 and body["enabled"] is False
    assert refused("127.0.0.1", port)
    client.get_proxy("db").enable()
    assert echoes(client.get_proxy("db"))


def test_get_a_proxy_or_404(server, client, echo):
    proxy = client.create(upstream=echo.address, name="db")
    status, body = http(server, "GET", "/proxies/db")
    assert status == 200
    assert {k: body[k] for k in ("name", "listen", "upstream", "enabled", "toxics")} == {
        "name": "db", "listen": proxy.listen, "upstream": echo.address, "enabled": True,
        "toxics": []}
    assert http(server, "GET", "/proxies/nope") == (404, error(404, "proxy not found"))


def test_list_every_proxy_with_its_toxics(server, client, echo):
    client.create(upstream=echo.address, name="a")
    client.create(upstream=echo.address, name="b").add_toxic(type="latency",
                                                              attributes={"latency": 5})
    status, body = http(server, "GET", "/proxies")
    assert status == 200 and set(body) == {"a", "b"}
    assert body["a"]["toxics"] == []
    assert [t["name"] for t in body["b"]["toxics"]] == ["latency_downstream"]


def test_disable_closes_connections_and_refuses_new_ones(server, client, echo):
    proxy = client.create(upstream=echo.address, name="db")
    host, port = proxy.listen_address
    with socket.create_connection((host, port), timeout=5) as open_conn:
        open_conn.sendall(b"x")
        assert open_conn.recv(1) == b"x"
        status, body = http(server, "POST", "/proxies/db", {"enabled": False})
        assert status == 200 and body["enabled"] is False
        assert _closed(open_conn)
    assert refused(host, port)
    status, body = http(server, "PATCH", "/proxies/db", {"enabled": True})
    assert status == 200 and body["enabled"] is True and body["listen"] == proxy.listen
    assert echoes(proxy)


def test_down_context_manager_of_the_client(client, echo):
    proxy = client.create(upstream=echo.address, name="db")
    host, port = proxy.listen_address
    with proxy.down():
        assert client.get_proxy("db").enabled is False
        assert refused(host, port)
    assert client.get_proxy("db").enabled is True
    assert echoes(proxy)


def test_changing_the_upstream_restarts_the_proxy(server, client, echo):
    proxy = client.create(upstream=echo.address, name="db")
    with EchoServer() as other, socket.create_connection(proxy.listen_address,
                                                          timeout=5) as old:
        old.sendall(b"x")
        assert old.recv(1) == b"x"
        status, body = http(server, "PATCH", "/proxies/db", {"upstream": other.address})
        assert status == 200 and body["upstream"] == other.address and body["enabled"]
        assert _closed(old)
        assert echoes(client.get_proxy("db"))
        assert other.accepted == 1


def test_changing_the_listen_address_moves_the_proxy(server, client, echo):
    proxy = client.create(upstream=echo.address, name="db")
    status, body = http(server, "POST", "/proxies/db", {"listen": "127.0.0.1:0"})
    assert status == 200 and body["listen"] != proxy.listen
    assert refused(*proxy.listen_address)
    assert echoes(client.get_proxy("db"))


def test_update_errors(server, client, echo):
    client.create(upstream=echo.address, name="db")
    assert http(server, "PATCH", "/proxies/nope", {"enabled": False}) == (
        404, error(404, "proxy not found"))
    assert http(server, "PATCH", "/proxies/nope", raw=b"[[[")[0] == 404  # 404 before 400
    status, body = http(server, "POST", "/proxies/db", raw=b"[[[")
    assert status == 400 and body["error"].startswith("bad request body")
    with taken_port() as holder:
        status, body = http(server, "PATCH", "/proxies/db",
                            {"listen": f"127.0.0.1:{holder.getsockname()[1]}"})
    assert status == 500 and body["status"] == 500


def test_delete_a_proxy(server, client, echo):
    proxy = client.create(upstream=echo.address, name="db")
    status, body = http(server, "DELETE", "/proxies/db")
    assert status == 204 and body is None
    assert refused(*proxy.listen_address)
    assert http(server, "DELETE", "/proxies/db") == (404, error(404, "proxy not found"))
    with pytest.raises(NotFound):
        proxy.destroy()
    other = client.create(upstream=echo.address, name="other")
    assert other.destroy() is True and client.proxies() == {}


def test_destroy_all_and_the_clients_own_populate(client, echo):
    made = client.populate([{"name": "a", "upstream": echo.address, "listen": "127.0.0.1:0"},
                            {"name": "b", "upstream": echo.address, "listen": "127.0.0.1:0"}])
    assert sorted(p.name for p in made) == ["a", "b"]
    client.destroy_all()
    assert client.proxies() == {}


# -- toxics --------------------------------------------------------------------------------------

def test_add_a_toxic_with_the_defaults(server, client, echo):
    client.create(upstream=echo.address, name="db")
    status, body = http(server, "POST", "/proxies/db/toxics", {"type": "latency"})
    assert status == 200  # not 201, as Toxiproxy answers
    assert body["name"] == "latency_downstream" and body["type"] == "latency"
    assert body["stream"] == "downstream" and body["toxicity"] == 1
    assert body["attributes"] == {"latency": 0, "jitter": 0}


def test_add_every_toxic_type_with_its_attributes(server, client, echo):
    client.create(upstream=echo.address, name="db")
    kinds = {"latency": {"latency": 10, "jitter": 2}, "bandwidth": {"rate": 100},
             "slow_close": {"delay": 10}, "timeout": {"timeout": 10},
             "reset_peer": {"timeout": 10},
             "slicer": {"average_size": 10, "size_variation": 2, "delay": 5},
             "limit_data": {"bytes": 10}, "noop": {}}
    for kind, attributes in kinds.items():
        status, body = http(server, "POST", "/proxies/db/toxics",
                            {"type": kind, "name": f"my_{kind}", "stream": "upstream",
                             "toxicity": 0.5, "attributes": attributes})
        assert status == 200, body
        assert body["name"] == f"my_{kind}" and body["stream"] == "upstream"
        assert body["toxicity"] == 0.5
        assert body["attributes"] == attributes
    assert sorted(client.get_proxy("db").toxics()) == sorted(f"my_{kind}" for kind in kinds)


def test_add_toxic_errors(server, client, echo):
    client.create(upstream=echo.address, name="db")
    assert http(server, "POST", "/proxies/db/toxics", {"type": "latency", "stream": "sideways"}) \
        == (400, error(400, "stream was invalid, can be either upstream or downstream"))
    assert http(server, "POST", "/proxies/db/toxics", {"type": "gremlins"}) == (
        400, error(400, "invalid toxic type"))
    status, body = http(server, "POST", "/proxies/db/toxics", raw=b"nope")
    assert status == 400 and body["error"].startswith("bad request body")
    assert http(server, "POST", "/proxies/nope/toxics", {"type": "latency"}) == (
        404, error(404, "proxy not found"))
    assert http(server, "POST", "/proxies/nope/toxics", raw=b"nope")[0] == 404
    assert http(server, "POST", "/proxies/db/toxics", {"type": "latency", "name": "t"})[0] == 200
    # toxic names are unique per proxy, across both streams
    assert http(server, "POST", "/proxies/db/toxics",
                {"type": "noop", "name": "t", "stream": "upstream"}) == (
        409, error(409, "toxic already exists"))
    proxy = client.get_proxy("db")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="gremlins")
    with pytest.raises(ProxyExists):
        proxy.add_toxic(type="noop", name="t")


def test_list_and_get_toxics(server, client, echo):
    proxy = client.create(upstream=echo.address, name="db")
    proxy.add_toxic(type="latency", attributes={"latency": 5})
    proxy.add_toxic(type="noop", stream="upstream")
    proxy.add_toxic(type="bandwidth", attributes={"rate": 9})
    status, body = http(server, "GET", "/proxies/db/toxics")
    assert status == 200
    assert [t["name"] for t in body if t["stream"] == "downstream"] == [
        "latency_downstream", "bandwidth_downstream"]
    assert [t["name"] for t in body if t["stream"] == "upstream"] == ["noop_upstream"]
    toxics = proxy.toxics()
    assert toxics["latency_downstream"].attributes["latency"] == 5
    assert proxy.get_toxic("bandwidth_downstream").attributes == {"rate": 9}
    assert proxy.get_toxic("nope") is None
    status, body = http(server, "GET", "/proxies/db/toxics/latency_downstream")
    assert status == 200 and body["attributes"] == {"latency": 5, "jitter": 0}
    assert http(server, "GET", "/proxies/db/toxics/nope") == (404, error(404, "toxic not found"))
    assert http(server, "GET", "/proxies/nope/toxics") == (404, error(404, "proxy not found"))
    assert http(server, "GET", "/proxies/nope/toxics/x") == (404, error(404, "proxy not found"))


def test_update_a_toxic_changes_only_attributes_and_toxicity(server, client, echo):
    proxy = client.create(upstream=echo.address, name="db")
    proxy.add_toxic(type="latency", attributes={"latency": 5, "jitter": 1})
    status, body = http(server, "PATCH", "/proxies/db/toxics/latency_downstream",
                        {"attributes": {"latency": 50}, "toxicity": 0.25,
                         "stream": "upstream", "type": "noop"})
    assert status == 200
    assert body["attributes"] == {"latency": 50, "jitter": 1}
    assert body["toxicity"] == 0.25
    assert body["type"] == "latency" and body["stream"] == "downstream"
    changed = proxy.update_toxic("latency_downstream", {"jitter": 3})
    assert changed.attributes == {"latency": 50, "jitter": 3} and changed.toxicity == 0.25
    status, body = http(server, "POST", "/proxies/db/toxics/latency_downstream",
                        {"attributes": {}})
    assert status == 200 and body["attributes"] == {"latency": 50, "jitter": 3}


def test_update_toxic_errors(server, client, echo):
    proxy = client.create(upstream=echo.address, name="db")
    proxy.add_toxic(type="latency")
    assert http(server, "PATCH", "/proxies/db/toxics/nope", {"attributes": {}}) == (
        404, error(404, "toxic not found"))
    assert http(server, "PATCH", "/proxies/db/toxics/nope", raw=b"{")[0] == 404
    assert http(server, "PATCH", "/proxies/nope/toxics/x", {"attributes": {}}) == (
        404, error(404, "proxy not found"))
    status, body = http(server, "PATCH", "/proxies/db/toxics/latency_downstream", raw=b"{")
    assert status == 400 and body["error"].startswith("bad request body")
    status, body = http(server, "PATCH", "/proxies/db/toxics/latency_downstream",
                        {"attributes": {"latency": "slow"}})
    assert status == 400 and body["error"].startswith("bad request body")


def test_delete_a_toxic(server, client, echo):
    proxy = client.create(upstream=echo.address, name="db")
    proxy.add_toxic(type="latency")
    assert http(server, "DELETE", "/proxies/db/toxics/latency_downstream") == (204, None)
    assert http(server, "DELETE", "/proxies/db/toxics/latency_downstream") == (
        404, error(404, "toxic not found"))
    assert http(server, "DELETE", "/proxies/nope/toxics/x") == (
        404, error(404, "proxy not found"))
    proxy.add_toxic(type="noop")
    assert proxy.destroy_toxic("noop_downstream") is True
    with pytest.raises(NotFound):
        proxy.destroy_toxic("noop_downstream")
    assert proxy.toxics() == {}


# -- reset and populate --------------------------------------------------------------------------

def test_reset_removes_every_toxic_and_enables_every_proxy(server, client, echo):
    a = client.create(upstream=echo.address, name="a")
    b = client.create(upstream=echo.address, name="b")
    a.add_toxic(type="latency", attributes={"latency": 1000})
    b.add_toxic(type="timeout", stream="upstream")
    b.disable()
    assert http(server, "POST", "/reset") == (204, None)
    proxies = client.proxies()
    assert all(p.enabled for p in proxies.values())
    assert a.toxics() == {} and b.toxics() == {}
    assert echoes(a) and echoes(b)
    assert client.reset() is True


def test_reset_is_500_when_a_proxy_cannot_listen_again(server, client, echo):
    proxy = client.create(upstream=echo.address, name="db")
    proxy.disable()
    host, port = proxy.listen_address
    with socket.create_server((host, port)):
        status, body = http(server, "POST", "/reset")
    assert status == 500 and body["status"] == 500 and body["error"]
    assert client.reset() is True  # the port is free again
    assert echoes(proxy)


def test_populate_creates_proxies(server, client, echo):
    status, body = http(server, "POST", "/populate", [
        {"name": "a", "listen": "127.0.0.1:0", "upstream": echo.address},
        {"name": "b", "listen": "127.0.0.1:0", "upstream": echo.address, "enabled": False}])
    assert status == 201
    by_name = {p["name"]: p for p in body["proxies"]}
    assert set(by_name) == {"a", "b"}
    assert by_name["a"]["enabled"] is True and not by_name["a"]["listen"].endswith(":0")
    assert by_name["b"]["enabled"] is False
    assert echoes(client.get_proxy("a"))
    made = client.post_populate([{"name": "c", "listen": "127.0.0.1:0",
                                  "upstream": echo.address}])
    assert [p.name for p in made] == ["c"] and echoes(made[0])


def test_populate_keeps_unchanged_proxies_and_replaces_changed_ones(server, client, echo):
    same = client.create(upstream=echo.address, name="same")
    same.add_toxic(type="latency", attributes={"latency": 1})
    moved = client.create(upstream=echo.address, name="moved")
    moved.add_toxic(type="latency", attributes={"latency": 1})
    with EchoServer() as other:
        status, _ = http(server, "POST", "/populate", [
            {"name": "same", "listen": same.listen, "upstream": echo.address},
            {"name": "moved", "listen": "127.0.0.1:0", "upstream": other.address}])
        assert status == 201
        after = client.proxies()
        assert after["same"].listen == same.listen
        assert list(after["same"].toxics()) == ["latency_downstream"]
        assert after["moved"].upstream == other.address
        assert after["moved"].toxics() == {}
        assert echoes(after["moved"]) and other.accepted == 1


def test_populate_validates_every_entry_before_creating_any(server, client, echo):
    status, body = http(server, "POST", "/populate", [
        {"name": "a", "listen": "127.0.0.1:0", "upstream": echo.address},
        {"name": "b", "listen": "127.0.0.1:0"}])
    assert status == 400 and body["status"] == 400
    assert body["error"].startswith("missing required field: upstream")
    assert not body.get("proxies")
    assert client.proxies() == {}
    status, body = http(server, "POST", "/populate", raw=b"{}")
    assert status == 400 and body["error"].startswith("bad request body")


def test_populate_reports_what_it_created_before_a_failure(server, client, echo):
    with taken_port() as holder:
        status, body = http(server, "POST", "/populate", [
            {"name": "a", "listen": "127.0.0.1:0", "upstream": echo.address},
            {"name": "b", "listen": f"127.0.0.1:{holder.getsockname()[1]}",
             "upstream": echo.address}])
    assert status == 500 and body["status"] == 500 and body["error"]
    assert [p["name"] for p in body["proxies"]] == ["a"]
    assert set(client.proxies()) == {"a"}


# -- the client wrapper --------------------------------------------------------------------------

def test_the_wrapper_overrides_every_library_method_that_reaches_the_server():
    """toxiproxy-python's methods use a global APIConsumer; each must be overridden."""
    from toxiproxy.proxy import Proxy
    from toxiproxy.server import Toxiproxy

    for base, bound in ((Toxiproxy, ToxiproxyClient), (Proxy, BoundProxy)):
        for name, member in vars(base).items():
            function = getattr(member, "__wrapped__", member)
            code = getattr(function, "__code__", None)
            if code is not None and "APIConsumer" in code.co_names:
                assert vars(bound).get(name) is not None, f"{bound.__name__}.{name}"


def test_two_servers_coexist_without_touching_the_global_consumer(echo):
    from toxiproxy.api import APIConsumer

    before = (APIConsumer.host, APIConsumer.port)
    with start_embedded() as one, start_embedded() as two:
        a, b = one.client(), two.client()
        a.create(upstream=echo.address, name="only-on-one")
        b.create(upstream=echo.address, name="only-on-two").add_toxic(type="noop")
        assert set(a.proxies()) == {"only-on-one"}
        assert set(b.proxies()) == {"only-on-two"}
        assert list(b.get_proxy("only-on-two").toxics()) == ["noop_downstream"]
        a.update_api_consumer(two.host, two.port)
        assert set(a.proxies()) == {"only-on-two"}
        a.close()
        b.close()
    assert (APIConsumer.host, APIConsumer.port) == before


# -- the server as a process and in-process --------------------------------------------------------

def test_stop_ends_the_process_cleanly():
    with start_embedded() as server:
        assert server.alive()
        assert server.stop() == 0  # SIGTERM: a clean shutdown
        assert not server.alive()


def test_sigint_ends_the_process_cleanly():
    with start_embedded() as server:
        server.popen.send_signal(signal.SIGINT)
        assert server.popen.wait(10) == 0


def test_the_server_exits_when_its_parent_dies(tmp_path):
    """The lifeline: a SIGKILLed parent leaves no proxy server behind."""
    script = textwrap.dedent("""
        import sys, time
        from harness.proxy.process import start_embedded
        server = start_embedded(log_path=sys.argv[1])
        print(server.pid, flush=True)
        time.sleep(60)
    """)
    log_path = tmp_path / "proxy.log"
    parent = subprocess.Popen([sys.executable, "-c", script, str(log_path)],
                              stdout=subprocess.PIPE)
    child = None
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        child.wait(timeout=10)
        assert "lifeline closed" in log_path.read_text()
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
        if child is not None and child.is_running():
            child.kill()


def test_a_config_file_populates_the_server_at_start(tmp_path, echo):
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "from-file", "listen": "127.0.0.1:0",
                                   "upstream": echo.address}]))
    with start_embedded(config=config) as server:
        proxy = server.client().get_proxy("from-file")
        assert proxy is not None and echoes(proxy)


def test_a_server_that_cannot_start_raises_and_leaves_nothing(tmp_path):
    with taken_port() as holder:
        before = {p.pid for p in psutil.Process().children()}
        with pytest.raises(ProxyServerError):
            start_embedded(port=holder.getsockname()[1], log_path=tmp_path / "proxy.log")
        assert {p.pid for p in psutil.Process().children()} <= before
    assert "cannot start" in (tmp_path / "proxy.log").read_text()


def test_the_log_has_a_line_per_change_and_connections_at_debug_level(tmp_path, echo):
    for level, connections in (("INFO", False), ("DEBUG", True)):
        log_path = tmp_path / f"proxy-{level}.log"
        with start_embedded(log_path=log_path, log_level=level) as server:
            proxy = server.client().create(upstream=echo.address, name="db")
            proxy.add_toxic(type="noop")
            assert echoes(proxy)
            if connections:
                deadline = time.monotonic() + 5
                while "closed" not in log_path.read_text() and time.monotonic() < deadline:
                    time.sleep(0.02)
            else:
                time.sleep(0.3)      # time enough for the close to be logged, were it
        text = log_path.read_text()
        for fragment in ("created proxy db", "added toxic noop_downstream", "shutting down"):
            assert fragment in text, level
        # Ordinary connections, hundreds a second in an election, only at debug level.
        assert ("accepted" in text and "closed" in text) == connections, text


def test_serve_in_process(echo):
    from harness.proxy.server import serve

    async def scenario():
        handle = await serve("127.0.0.1", 0)
        try:
            loop = asyncio.get_running_loop()
            client = ToxiproxyClient(handle.host, handle.port)
            proxy = await loop.run_in_executor(None, lambda: client.create(
                upstream=echo.address, name="db"))
            assert await loop.run_in_executor(None, echoes, proxy)
            assert set(handle.proxies.proxies) == {"db"}
        finally:
            await handle.close()
        return handle.port

    port = asyncio.run(scenario())
    assert refused("127.0.0.1", port)


def test_find_toxiproxy_server_honours_the_environment(tmp_path, monkeypatch):
    fake = tmp_path / "my-toxiproxy"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("FAULTLINE_TOXIPROXY_SERVER", str(fake))
    assert find_toxiproxy_server() == str(fake)
    monkeypatch.setenv("FAULTLINE_TOXIPROXY_SERVER", str(tmp_path / "missing"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_toxiproxy_server() is None


def _closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the peer closed or reset `sock` within `timeout` seconds."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False



def test_an_overlong_header_is_431_and_deep_json_is_400_without_a_traceback(tmp_path):
    log_path = tmp_path / "proxy.log"
    with start_embedded(log_path=log_path) as server:
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 200_000 +
                         b"\r\n\r\n")
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 431 "), reply[:80]
        deep = b"[" * 100_000 + b"]" * 100_000
        status, body = http(server, "POST", "/proxies", raw=deep)
        assert status == 400 and body["error"].startswith("bad request body"), body
        assert http(server, "GET", "/version")[0] == 200       # still serving
    assert "Traceback" not in log_path.read_text()
