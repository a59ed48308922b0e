"""The web server of `faultline serve`: a runs directory, read-only, over HTTP.

`/` is the runs directory's index, built afresh for every request (nothing is written); any
other path names a file or directory inside the runs directory, served as it is (a directory
as a plain listing). Nothing outside the runs directory is ever served: a path with `..`, an
absolute path, or one whose links resolve outside is answered 404, as a missing file is, so
that a probe learns nothing.
"""

from __future__ import annotations

import html
import mimetypes
import shutil
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from harness.rundirs.index import render_index

# History, logs and JSON Lines open as text in a browser rather than being downloaded.
_TEXT_SUFFIXES = {".jsonl", ".log", ".txt", ".edn", ".toml", ".md"}


def resolve(root: Path, url_path: str) -> Path | None:
    """The file or directory inside `root` that the URL path names, or None when it names
    nothing there: missing, or any attempt at leaving `root` (`..`, an absolute path, a
    backslash or NUL, a link resolving outside)."""
    path = unquote(urlsplit(url_path).path)
    if not path.startswith("/") or "\\" in path or "\0" in path:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    real_root = Path(root).resolve()
    try:
        target = real_root.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):          # missing, unreadable, or a loop of links
        return None
    return target if target == real_root or target.is_relative_to(real_root) else None


def make_server(root: Path, host: str, port: int) -> ThreadingHTTPServer:
    """A server of the runs directory `root` bound to (host, port) (port 0: any free one),
    not yet serving: call serve_forever(), then shutdown() and server_close(). OSError when
    the address cannot be bound (a busy port)."""
    handler = type("RunsHandler", (_Handler,), {"root": Path(root)})
    server_class = ThreadingHTTPServer
    if ":" in host:                          # an IPv6 address such as ::1
        server_class = type("RunsServer6", (ThreadingHTTPServer,),
                            {"address_family": socket.AF_INET6})
    return server_class((host, port), handler)


def server_url(server: ThreadingHTTPServer) -> str:
    """The URL a browser opens for `server`."""
    host, port = server.server_address[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    """GET and HEAD only; any other method is refused by http.server (501)."""

    root: Path
    server_version = "faultline-serve"

    def do_GET(self) -> None:               # noqa: N802 - http.server's naming
        self._answer(with_body=True)

    def do_HEAD(self) -> None:              # noqa: N802
        self._answer(with_body=False)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's name
        pass                                 # the terminal is the user's: no line per request

    def _answer(self, with_body: bool) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._send_text(render_index(self.root), "text/html", with_body)
            return
        target = resolve(self.root, self.path)
        if target is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        if target.is_dir():
            if not path.endswith("/"):
                # Relative links inside the directory need the trailing slash.
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", path + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send_text(_listing(target, path, self.root.resolve()), "text/html",
                            with_body)
            return
        self._send_file(target, with_body)

    def _send_text(self, text: str, kind: str, with_body: bool) -> None:
        body = text.encode("utf-8")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def _send_file(self, target: Path, with_body: bool) -> None:
        try:
            f = open(target, "rb")
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        with f:
            size = f.seek(0, 2)
            f.seek(0)
            kind = "text/plain" if target.suffix in _TEXT_SUFFIXES else \
                mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if kind.startswith("text/") or kind == "application/json":
                kind += "; charset=utf-8"
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(size))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if with_body:
                # A file still growing (a running campaign's history) is sent as far as
                # it went when asked.
                shutil.copyfileobj(_Limited(f, size), self.wfile)


class _Limited:
    """A file read no further than `size` bytes (its length when the request came)."""

    def __init__(self, f, size: int):
        self._f, self._left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._f.read(n) if n > 0 else b""
        self._left -= len(data)
        return data


def _listing(directory: Path, url_path: str, root: Path) -> str:
    """A plain page listing a directory's entries; links that lead outside `root` (the
    resolved runs directory) are left out."""
    items = []
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        try:
            real = entry.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if not real.is_relative_to(root):
            continue
        name = entry.name + ("/" if real.is_dir() else "")
        items.append(f'<li><a href="{html.escape(quote(name))}">{html.escape(name)}</a></li>')
    title = html.escape(unquote(url_path))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}'
            f'</title></head><body><h1>{title}</h1><p><a href="/">all runs</a></p><ul>'
            + "\n".join(items) + "</ul></body></html>\n")
