"""Ports on 127.0.0.1 for a run's nodes and proxies, never handed to two runs at once.

A port the kernel hands out for port 0 comes from its ephemeral range, which outgoing
connections draw from too: chosen that way and bound a second later (when a node has
started), it may meanwhile have gone to a client's connection, or to another run choosing at
the same moment (campaigns run several at once). Ports here come from below the ephemeral
range, each checked free by binding it, and are entered in a table shared by every faultline
process using the same state directory (a JSON file beside the process registries, changed
under a lock; by default one per user on the machine, `$FAULTLINE_STATE_DIR` to share it
more widely) with the process that holds them, named by its pid and start time. A holder
releases its ports when its network closes; those of a holder that died are taken back by
the next reservation.
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

from harness.processes.leftovers import state_dir
from harness.processes.supervisor import ProcessError

LOWEST = 20000                  # below: ports that well-known services tend to use
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


class NoFreePorts(ProcessError):
    """Not enough free ports below the ephemeral range (the run cannot be carried out)."""


def reserve(count: int, holder: int | None = None) -> list[int]:
    """`count` distinct ports, free now and reserved for the process `holder` (default this
    one) until `release`d or until it dies. NoFreePorts when the range has too few left."""
    holder = os.getpid() if holder is None else holder
    highest = _ephemeral_low() - 1
    if highest < LOWEST:
        # An unusual ephemeral range starting low: use the ports above it instead.
        candidates = list(range(_ephemeral_high() + 1, 65536))
    else:
        candidates = list(range(LOWEST, highest + 1))
    # Spread over the range (not the run's seed: which port a node listens on changes
    # nothing in a test), so that runs starting together rarely probe the same ones.
    random.SystemRandom().shuffle(candidates)
    with _table() as table:
        for port in [p for p, who in table.items() if not _alive(who)]:
            del table[port]
        taken = {int(port) for port in table}
        chosen = []
        for port in candidates:
            if port not in taken and _bindable(port):
                chosen.append(port)
                if len(chosen) == count:
                    break
        if len(chosen) < count:
            raise NoFreePorts(f"only {len(chosen)} free ports between {min(candidates)} and "
                              f"{max(candidates)}, {count} needed")
        for port in chosen:
            table[str(port)] = [holder, _started(holder)]
    return chosen


def release(ports: list[int]) -> None:
    """Give `ports` back (ports not reserved are ignored)."""
    with _table() as table:
        for port in ports:
            table.pop(str(port), None)


def reserved() -> dict[int, int]:
    """The ports reserved now, with the pid of the process holding each."""
    with _table() as table:
        return {int(port): who[0] for port, who in table.items()}


def _started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _alive(who) -> bool:
    """Whether a table entry's holder still runs: the same pid, started at the same time (a
    pid reused by another process does not keep ports)."""
    if not isinstance(who, list) or len(who) != 2:
        return False
    pid, started = who
    return psutil.pid_exists(pid) and _started(pid) == started


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


def _ephemeral_high() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 60999


@contextmanager
def _table():
    """The reservation table, read and written back under the state directory's lock."""
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
