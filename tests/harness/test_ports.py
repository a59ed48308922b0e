"""Ports reserved for runs: free, below the ephemeral range, never given to two runs at once
(also when processes reserve together), given back, and taken back from a dead holder."""

from __future__ import annotations

import socket
import subprocess
import sys

import multiprocess
import pytest

from harness.processes import ports


@pytest.fixture(autouse=True)
def own_table(tmp_path, monkeypatch):
    monkeypatch.setenv("FAULTLINE_STATE_DIR", str(tmp_path / "state"))


def _reserve_in_another_process(count: int) -> list[int]:
    from harness.processes import ports as in_child

    return in_child.reserve(count)


def test_reserved_ports_are_free_distinct_and_below_the_ephemeral_range():
    got = ports.reserve(40)
    low = ports._ephemeral_low()
    assert len(set(got)) == 40 and all(ports.LOWEST <= p < low for p in got)
    for port in got:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))           # free: nobody holds them yet
    assert set(ports.reserved()) == set(got)
    ports.release(got[:10])
    assert set(ports.reserved()) == set(got[10:])


def test_runs_reserving_at_once_never_share_a_port():
    with multiprocess.Pool(4) as pool:
        batches = pool.map(_reserve_in_another_process, [60] * 8)
    everything = [p for batch in batches for p in batch]
    assert len(everything) == len(set(everything)) == 480
    # Those processes have ended: the next reservation takes their ports back.
    ports.reserve(1)
    assert len(ports.reserved()) == 1


def test_a_port_in_use_or_held_is_never_chosen(monkeypatch):
    monkeypatch.setattr(ports, "LOWEST", 31000)
    monkeypatch.setattr(ports, "_ephemeral_low", lambda: 31006)      # six ports: 31000-31005
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 31002))
        held = ports.reserve(2)
        assert 31002 not in held
        rest = ports.reserve(3)
        assert set(held) | set(rest) == {31000, 31001, 31003, 31004, 31005}
        with pytest.raises(ports.NoFreePorts, match="only 0 free ports between 31000 and "
                                                    "31005, 1 needed"):
            ports.reserve(1)
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()
        ports.release(held)
        ports.reserve(2, holder=int(dead))           # a holder that has already exited
        assert sorted(ports.reserve(2)) == sorted(held)
        # A live pid whose process started at another time (a reused pid) holds nothing.
        with ports._table() as table:
            for port in table:
                table[port] = [table[port][0], 1.0]
        assert len(ports.reserve(5)) == 5
