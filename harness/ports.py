"""Ports on 127.0.0.1 for a run's nodes and proxies, never handed to two runs at once.

A port the kernel hands out for port 0 comes from its ephemeral range, which outgoing
connections draw from too: chosen that way and bound a second later (when a node has
started), it may meanwhile have gone to a client's connection, or to another run choosing at
the same moment (campaigns run several at once). Ports here come from below the ephemeral
range, each checked free by binding it, and are entered in a machine-wide table (a JSON file
beside the process registries, changed under a lock) with the process that holds them. A
holder releases its ports when its network closes; those of a holder that died are taken back
by the next reservation.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import socket
from contextlib import contextmanager
from pathlib import Path

import psutil

from harness.registry import state_dir

LOWEST = 20000                  # below: ports that well-known services tend to use
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


class NoFreePorts(RuntimeError):
    """Not enough free ports below the ephemeral range."""


def reserve(count: int, holder: int | None = None) -> list[int]:
    """`count` distinct ports, free now and reserved for the process `holder` (default this
    one) until `release`d or until it dies. NoFreePorts when the range has too few left."""
    holder = os.getpid() if holder is None else holder
    highest = _ephemeral_low() - 1
    candidates = list(range(LOWEST, highest + 1))
    # Spread over the range (not the run's seed: which port a node listens on changes
    # nothing in a test), so that runs starting together rarely probe the same ones.
    random.SystemRandom().shuffle(candidates)
    with _table() as table:
        taken = {int(port) for port, pid in table.items() if psutil.pid_exists(pid)}
        for port in [p for p, pid in table.items() if not psutil.pid_exists(pid)]:
            del table[port]
        chosen = []
        for port in candidates:
            if port not in taken and _bindable(port):
                chosen.append(port)
                if len(chosen) == count:
                    break
        if len(chosen) < count:
            raise NoFreePorts(f"only {len(chosen)} free ports between {LOWEST} and {highest}, "
                              f"{count} needed")
        for port in chosen:
            table[str(port)] = holder
    return chosen


def release(ports: list[int]) -> None:
    """Give `ports` back (ports not reserved are ignored)."""
    with _table() as table:
        for port in ports:
            table.pop(str(port), None)


def reserved() -> dict[int, int]:
    """The ports reserved now, with the process holding each."""
    with _table() as table:
        return {int(port): pid for port, pid in table.items()}


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768                  # Linux's default


@contextmanager
def _table():
    """The reservation table, read and written back under a machine-wide lock."""
    base = state_dir().parent
    with open(base / "ports.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = base / "ports.json"
        try:
            table = json.loads(path.read_text())
            if not isinstance(table, dict):
                table = {}
        except (OSError, ValueError):
            table = {}
        yield table
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(table))
        os.replace(scratch, path)
