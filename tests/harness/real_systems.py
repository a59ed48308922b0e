"""What the tests of real systems (etcd, Redis) share: when to skip, and what a run left."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from harness.networks.netns import may_make_namespaces


def needs(adapter, label: str, install: str) -> list:
    """pytest marks that skip a module, with the reason, where `adapter` cannot run: the
    namespace network needs root, and the system its binary."""
    found = adapter.availability()
    return [
        pytest.mark.skipif(not may_make_namespaces(), reason=(
            f"{label} runs on the namespace network, which needs root (CAP_SYS_ADMIN, "
            "CAP_NET_ADMIN)")),
        pytest.mark.skipif(not found.available, reason=(
            f"no {label} to test: {found.detail}; {install}")),
    ]


def leftovers(run_dir: Path) -> list[str]:
    """Processes whose command line names `run_dir`, and network namespaces this test process
    made, still there."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if str(run_dir) in " ".join(p.info["cmdline"] or []):
            found.append(" ".join(p.info["cmdline"]))
    from pyroute2 import netns
    return found + [n for n in netns.listnetns() if n.startswith(f"faultline-{os.getpid():x}-")]
