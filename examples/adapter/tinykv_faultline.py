"""tinykv: a one-node key-value server that syncs every write, and its faultline adapter.

The server (`python -m tinykv_faultline --listen HOST:PORT --data DIR`) answers one JSON
request per line: {"op": "read" | "write" | "cas", "key": K, "value": V} with {"ok": bool,
"value": ..., "version": N}. Every write is appended to a log and synced before it is
acknowledged, and the log is replayed at start, so a killed server loses nothing it
acknowledged. A write's `version` is its place in the log; a read's is that of the write it
read (0 for a key never written), which lets faultline's checkers use their fastest method.

The adapter (`TinyKv`) is everything faultline needs to test it: what it declares (name,
options, workloads, networks, node counts), how to start a node, how to tell it is ready, and
a client. It has no optional capability (no leader probe, no clock control), so faultline
refuses the faults that need one before a run starts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import socketserver
import sys
import threading
from pathlib import Path
from typing import Any

from harness.systems.base import Adapter, ClusterLayout, NodeSlot
from pluginkit.options import Option

LOG = "tinykv.log"


# --- the server ----------------------------------------------------------------------------

class Store:
    """The key-value map, its version counter, and the log that makes writes durable."""

    def __init__(self, data_dir: Path, sync: bool = True):
        self.sync = sync
        self.values: dict[str, tuple[Any, int]] = {}    # key -> (value, version)
        self.version = 0
        self.lock = threading.Lock()
        path = data_dir / LOG
        kept = 0                            # bytes of whole records
        if path.exists():
            for line in path.read_bytes().splitlines(keepends=True):
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("no end of line")
                    key, value = json.loads(line)
                except (TypeError, ValueError):   # a torn last line: never acknowledged
                    break
                kept += len(line)
                self.version += 1
                self.values[key] = (value, self.version)
        self.log = open(path, "a")
        self.log.truncate(kept)             # new records go after the last whole one

    def handle(self, request: dict) -> dict:
        op, key, value = request.get("op"), request.get("key"), request.get("value")
        with self.lock:
            current, version = self.values.get(key, (None, 0))
            if op == "read":
                return {"ok": True, "value": current, "version": version}
            if op == "cas" and current != value[0]:
                return {"ok": False, "error": "cas: value differs"}
            if op in ("write", "cas"):
                new = value if op == "write" else value[1]
                self.log.write(json.dumps([key, new]) + "\n")
                self.log.flush()
                if self.sync:
                    os.fsync(self.log.fileno())
                self.version += 1
                self.values[key] = (new, self.version)
                return {"ok": True, "value": value, "version": self.version}
        return {"ok": False, "error": f"unknown op {op!r}"}


def serve(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tinykv")
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--data", required=True, type=Path, help="data directory")
    parser.add_argument("--no-sync", action="store_true", help="acknowledge before syncing")
    args = parser.parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)
    store = Store(args.data, sync=not args.no_sync)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                reply = store.handle(json.loads(line))
                self.wfile.write(json.dumps(reply).encode() + b"\n")

    host, port = args.listen.rsplit(":", 1)
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer((host, int(port)), Handler) as server:
        server.daemon_threads = True
        print(f"tinykv ready on {args.listen}", flush=True)
        server.serve_forever()


# --- the adapter ---------------------------------------------------------------------------

class TinyKvClient:
    """One connection to the server; never raises for what the server or network did."""

    def __init__(self, address: str, timeout: float):
        host, port = address.rsplit(":", 1)
        self.address, self.timeout = (host, int(port)), timeout
        self.sock: socket.socket | None = None

    def invoke(self, f: str, key: str | None, value: Any, **options: Any) -> dict:
        sent = False
        try:
            if self.sock is None:
                self.sock = socket.create_connection(self.address, timeout=self.timeout)
                self.file = self.sock.makefile("rb")
            self.sock.sendall(json.dumps({"op": f, "key": key, "value": value}).encode()
                              + b"\n")
            sent = True
            line = self.file.readline()
            if not line:
                raise ConnectionError("connection closed")
            reply = json.loads(line)
        except (OSError, ValueError) as exc:
            self.close()
            # Not sent, or a read: certainly no effect. A write that was sent: unknown.
            kind = "info" if sent and f != "read" else "fail"
            return {"type": kind, "value": None if f == "read" else value, "error": str(exc)}
        if not reply["ok"]:
            return {"type": "fail", "value": value, "error": reply.get("error")}
        return {"type": "ok", "value": reply["value"], "version": reply["version"],
                "node": "n1"}

    def close(self) -> None:
        if self.sock is not None:
            self.file.close()
            self.sock.close()
            self.sock = None


class TinyKv(Adapter):
    name = "tinykv"
    SUMMARY = "a one-node durable key-value server (faultline's example adapter)"
    OPTIONS = (Option("sync", "bool", True, "sync each write before acknowledging it"),)
    WORKLOADS = ("register",)
    NETWORKS = ("proxy", "netns")
    MIN_NODES = MAX_NODES = 1

    def setup(self, layout: ClusterLayout) -> None:
        """Nothing to write: the command line says it all."""

    def command(self, node: NodeSlot, layout: ClusterLayout) -> list[str]:
        return [sys.executable, "-m", "tinykv_faultline", "--listen", node.client_address,
                "--data", str(node.data_dir)] + ([] if self.options["sync"] else ["--no-sync"])

    def is_ready(self, node: NodeSlot, layout: ClusterLayout) -> bool:
        client = TinyKvClient(node.client_address, timeout=0.3)
        try:
            return client.invoke("read", "ready?", None)["type"] == "ok"
        finally:
            client.close()

    def client(self, node: str, addresses: dict[str, str], layout: ClusterLayout,
               timeout: float) -> TinyKvClient:
        return TinyKvClient(addresses[node], timeout)


if __name__ == "__main__":
    serve(sys.argv[1:])
