"""A Toxiproxy API server as a child process: faultline's embedded one, or a real one.

    with start_proxy_server() as server:        # real toxiproxy-server if found, else embedded
        client = server.client()                 # a ToxiproxyClient bound to it
        proxy = client.create(upstream="127.0.0.1:6000", name="n1")

- `start_embedded()` runs `python -m harness.proxy --port 0 --lifeline`, reads the bound address
  from the first line of its stdout, and waits until `/version` answers.
- `find_toxiproxy_server()` finds a real `toxiproxy-server` (env `FAULTLINE_TOXIPROXY_SERVER`,
  then the PATH); `start_toxiproxy_server()` starts one on a free port the same way.
- `ProxyServerProcess.stop()` sends SIGTERM, then SIGKILL after a timeout; leaving the `with`
  block stops it, also on an exception.

The embedded server also holds a lifeline: its stdin is a pipe whose other end only this process
holds, so if this process dies (even by SIGKILL) the server sees end-of-file and exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from harness.proxy.client import ToxiproxyClient

ENV_SERVER = "FAULTLINE_TOXIPROXY_SERVER"
_READY_LINE = "faultline proxy listening on "
_REPO = Path(__file__).resolve().parents[2]


class ProxyServerError(RuntimeError):
    """A proxy server process could not be started; the message ends with its log's tail."""


class ProxyServerProcess:
    """A running Toxiproxy API server process.

    `kind` is "embedded" or "toxiproxy-server"; `host`, `port` and `url` locate its API.
    """

    def __init__(self, kind: str, popen: subprocess.Popen, host: str, port: int,
                 log: IO[bytes] | None, log_path: Path, own_log: bool):
        self.kind = kind
        self.popen = popen
        self.host = host
        self.port = port
        self.log_path = log_path
        self._log = log
        self._own_log = own_log
        self._clients: list[ToxiproxyClient] = []

    @property
    def pid(self) -> int:
        """The server process's id."""
        return self.popen.pid

    @property
    def url(self) -> str:
        """Base URL of the server's HTTP API."""
        return f"http://{self.host}:{self.port}"

    def client(self) -> ToxiproxyClient:
        """A toxiproxy-python client bound to this server (closed when the server stops)."""
        client = ToxiproxyClient(self.host, self.port)
        self._clients.append(client)
        return client

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL if still running after `timeout` s; returns the exit code."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        try:
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait()
        finally:
            for pipe in (self.popen.stdin, self.popen.stdout):
                if pipe is not None:
                    pipe.close()
            if self._log is not None:
                self._log.close()
                self._log = None
            if self._own_log:
                self.log_path.unlink(missing_ok=True)
        return self.popen.returncode

    def __enter__(self) -> ProxyServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ProxyServerProcess({self.kind!r}, {self.url!r}, pid={self.pid})"


def find_toxiproxy_server() -> str | None:
    """The path of a real `toxiproxy-server`: `$FAULTLINE_TOXIPROXY_SERVER`, else the PATH.

    A configured path that is not an executable file is ignored (None unless PATH has one).
    """
    configured = os.environ.get(ENV_SERVER)
    if configured:
        path = shutil.which(configured)
        if path:
            return path
    return shutil.which("toxiproxy-server")


def start_embedded(host: str = "127.0.0.1", port: int = 0, config: str | Path | None = None,
                   log_path: str | Path | None = None, seed: int | None = None,
                   log_level: str = "INFO", ready_timeout: float = 15.0,
                   python: str | None = None) -> ProxyServerProcess:
    """Start faultline's embedded server as a child process and wait until it answers.

    `port` 0 (the default) picks a free port. The server's log goes to `log_path` (appended),
    or to a temporary file removed at stop. Raises ProxyServerError if it does not come up.
    """
    args = [python or sys.executable, "-m", "harness.proxy", "--host", host, "--port",
            str(port), "--lifeline", "--log-level", log_level]
    if config is not None:
        args += ["--config", str(config)]
    if seed is not None:
        args += ["--seed", str(seed)]
    log, path, own = _open_log(log_path)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
    popen = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                             env=env, start_new_session=True)
    server = ProxyServerProcess("embedded", popen, host, port, log, path, own)
    try:
        line = _first_line(popen, ready_timeout, path)
        if not line.startswith(_READY_LINE):
            raise ProxyServerError(f"embedded proxy server said {line!r}" + _tail(path))
        bound = line[len(_READY_LINE):].strip()
        server.host, _, port_text = bound.rpartition(":")
        server.host = server.host.strip("[]")
        server.port = int(port_text)
        _wait_ready(server, time.monotonic() + ready_timeout)
    except BaseException:
        server.stop(timeout=2.0)
        raise
    return server


def start_toxiproxy_server(binary: str | None = None, host: str = "127.0.0.1",
                           port: int | None = None, config: str | Path | None = None,
                           log_path: str | Path | None = None, ready_timeout: float = 15.0,
                           extra_args: Sequence[str] = ()) -> ProxyServerProcess:
    """Start a real `toxiproxy-server` (found by `find_toxiproxy_server` unless `binary` is
    given) on `port`, or on a free port, and wait until `/version` answers.

    A free port is found by binding port 0 and releasing it; if another process takes it in
    between, the start is retried on another port.
    """
    binary = binary or find_toxiproxy_server()
    if binary is None:
        raise ProxyServerError("no toxiproxy-server: set $FAULTLINE_TOXIPROXY_SERVER or put "
                               "it on the PATH")
    attempts = 1 if port else 3
    for attempt in range(attempts):
        chosen = port or _free_port(host)
        args = [binary, "-host", host, "-port", str(chosen), *extra_args]
        if config is not None:
            args += ["-config", str(config)]
        log, path, own = _open_log(log_path)
        popen = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        server = ProxyServerProcess("toxiproxy-server", popen, host, chosen, log, path, own)
        try:
            _wait_ready(server, time.monotonic() + ready_timeout)
            return server
        except ProxyServerError:
            server.stop(timeout=2.0)
            if attempt == attempts - 1:
                raise
        except BaseException:
            server.stop(timeout=2.0)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def start_proxy_server(prefer_real: bool = True, **kwargs) -> ProxyServerProcess:
    """A real `toxiproxy-server` when one is found (and `prefer_real`), else the embedded one.

    Keyword arguments common to both starters: host, config, log_path, ready_timeout.
    """
    if prefer_real and find_toxiproxy_server() is not None:
        return start_toxiproxy_server(**kwargs)
    return start_embedded(**kwargs)


# -- helpers -------------------------------------------------------------------------------------

def _open_log(log_path: str | Path | None) -> tuple[IO[bytes], Path, bool]:
    if log_path is not None:
        path = Path(log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "ab"), path, False
    handle = tempfile.NamedTemporaryFile(prefix="faultline-proxy-", suffix=".log",
                                         delete=False)
    return handle, Path(handle.name), True


def _first_line(popen: subprocess.Popen, timeout: float, log_path: Path) -> str:
    """The first line the child writes to stdout, waiting at most `timeout` seconds."""
    import selectors

    assert popen.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(popen.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProxyServerError(f"proxy server gave no address within {timeout:g} s"
                                       + _tail(log_path))
            if not selector.select(left):
                continue
            data = os.read(popen.stdout.fileno(), 4096)
            if not data:
                code = popen.wait()
                raise ProxyServerError(f"proxy server exited with code {code} before it "
                                       f"listened" + _tail(log_path))
            buffer += data
    return buffer.split(b"\n", 1)[0].decode(errors="replace")


def _wait_ready(server: ProxyServerProcess, deadline: float) -> None:
    """Poll `/version` until it answers 200, the process dies, or the deadline passes."""
    url = f"{server.url}/version"
    while True:
        if not server.alive():
            raise ProxyServerError(f"{server.kind} exited with code {server.popen.returncode}"
                                   + _tail(server.log_path))
        try:
            with urllib.request.urlopen(url, timeout=1.0) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise ProxyServerError(f"{server.kind} did not answer {url} in time"
                                   + _tail(server.log_path))
        time.sleep(0.02)


def _tail(path: Path, lines: int = 10) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return ("; its log ends:\n" + "\n".join(text)) if text else ""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
