"""A refnode cluster of real processes on 127.0.0.1, without proxies, for refnode's own tests."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from harness.processes.ports import release, reserve
from harness.processes.supervisor import Supervisor
from refnode.client import RefnodeClient
from refnode.config import ClusterConfig

ADMIN_TOKEN = "test-token"


class LocalCluster:
    """N refnode processes talking directly to each other; a context manager that ends them."""

    def __init__(self, directory: Path, size: int = 3, seed: int = 1, fsync: str = "group",
                 client_limits: dict | None = None, **config):
        self.directory = directory
        self.ids = [f"n{i}" for i in range(1, size + 1)]
        ports = self._ports = reserve(2 * size)
        self.client_addresses = {n: f"127.0.0.1:{ports[2 * i]}" for i, n in enumerate(self.ids)}
        peer_addresses = {n: f"127.0.0.1:{ports[2 * i + 1]}" for i, n in enumerate(self.ids)}
        nodes = {n: {"client": self.client_addresses[n], "peer": peer_addresses[n],
                     "peers": {p: peer_addresses[p] for p in self.ids if p != n},
                     "data_dir": str(directory / n)} for n in self.ids}
        cluster = {"cluster": ClusterConfig(nodes=tuple(self.ids), **config).to_dict(),
                   "nodes": nodes, "seed": seed, "admin_token": ADMIN_TOKEN, "fsync": fsync}
        if client_limits is not None:
            cluster["client_limits"] = client_limits
        self.config_path = directory / "cluster.json"
        directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(cluster))
        self.supervisor = Supervisor()

    def start(self, node: str):
        return self.supervisor.start(
            node, [sys.executable, "-m", "refnode", "--id", node, "--config",
                   str(self.config_path)], self.directory / f"{node}.log")

    def __enter__(self) -> "LocalCluster":
        for node in self.ids:
            self.start(node)
        return self

    def __exit__(self, *exc) -> None:
        self.supervisor.close()
        release(self._ports)

    def client(self, node: str | None = None, **options) -> RefnodeClient:
        return RefnodeClient(self.client_addresses, node or self.ids[0],
                             admin_token=ADMIN_TOKEN, **options)

    def status(self, node: str) -> dict | None:
        with self.client(node, timeout=0.5) as c:
            outcome = c.status(node)
        return outcome.value if outcome.type == "ok" else None

    def wait_for_leader(self, among: list[str] | None = None, timeout: float = 10.0,
                        not_: str | None = None) -> str:
        """The leader that every live node in `among` agrees on."""
        among = among or self.ids
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            views = [self.status(n) for n in among]
            leaders = {v.get("leader") for v in views if v}
            if len(leaders) == 1 and all(views):
                (leader,) = leaders
                if leader and leader != not_:
                    return leader
            time.sleep(0.05)
        raise AssertionError(f"no agreed leader among {among} within {timeout} s")

    def wait_until(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError("condition not reached in time")
