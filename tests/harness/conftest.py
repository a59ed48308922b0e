"""Fixtures shared by the proxy tests: Toxiproxy API servers as real processes, an echo server.

The real `toxiproxy-server` joins the parametrization only where it exists; where it does not,
`test_proxy_api.py` has one test that says so, instead of one skip per test.
"""

from __future__ import annotations

import pytest

from harness.proxy.process import find_toxiproxy_server, start_embedded, start_toxiproxy_server
from harness.proxy.testing import EchoServer

NO_REAL_SERVER = ("no real toxiproxy-server found (set FAULTLINE_TOXIPROXY_SERVER or put "
                  "toxiproxy-server on the PATH): compatibility run against it skipped")
SERVERS = ["embedded"] + (["toxiproxy-server"] if find_toxiproxy_server() else [])


@pytest.fixture(scope="module", params=SERVERS)
def server(request):
    """A Toxiproxy API server process for the module: the embedded one, then a real one."""
    if request.param == "toxiproxy-server":
        process = start_toxiproxy_server(find_toxiproxy_server())
    else:
        process = start_embedded()
    with process:
        yield process


@pytest.fixture
def client(server):
    """A client of the module's server, which starts and ends the test with no proxy."""
    api = server.client()
    api.destroy_all()
    yield api
    api.reset()
    api.destroy_all()
    api.close()


@pytest.fixture
def echo():
    """An echo server on 127.0.0.1, ended with the test."""
    with EchoServer() as echo_server:
        yield echo_server
