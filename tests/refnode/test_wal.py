"""The write-ahead log: round trips, recovery from torn and corrupt files, power loss, truncation,
hard state, and a model-based Hypothesis test of every operation against an in-memory log.

Records are built here from the layout documented at the top of refnode/wal.py, independently of
the module's own encoder, so that the tests also pin the on-disk format.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import zlib

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from refnode.wal import (FILE_HEADER_SIZE, LOG_NAME, LoggedEntry, LoggedHardState, WalError,
                         WriteAheadLog, power_loss)


def record(kind: bytes, body: bytes) -> bytes:
    prefix = kind + struct.pack(">I", len(body))
    return prefix + struct.pack(">I", zlib.crc32(prefix + body)) + body


def entry_record(index: int, term: int, command: bytes = b"null") -> bytes:
    return record(b"E", struct.pack(">QQ", index, term) + command)


def log_path(d) -> str:
    return os.path.join(d, LOG_NAME)


def size(d) -> int:
    return os.path.getsize(log_path(d))


def write_file(d, data: bytes) -> None:
    with open(log_path(d), "wb") as f:
        f.write(data)


def read_file(d) -> bytes:
    with open(log_path(d), "rb") as f:
        return f.read()


def cmd(i: int) -> dict:
    return {"op": "write", "key": f"k{i % 3}", "value": i}


def fill(wal: WriteAheadLog, n: int, term: int = 1) -> None:
    start = wal.last_index + 1
    wal.append(LoggedEntry(i, term, cmd(i)) for i in range(start, start + n))


def snapshot(wal: WriteAheadLog):
    return wal.hard_state, [tuple(e) for e in wal.entries(1)]


# -- round trips ---------------------------------------------------------------------------------

def test_new_log_is_empty(tmp_path):
    with WriteAheadLog.open(tmp_path / "node") as wal:
        assert (wal.term, wal.vote, wal.last_index, wal.last_term) == (0, None, 0, 0)
        assert wal.term_at(0) == 0
        assert wal.entries(1) == []
        assert wal.recovery.reason is None and wal.recovery.bytes_cut == 0
        assert not wal.needs_sync


def test_round_trip_and_restart(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        wal.set_hard_state(3, "n2")
        wal.append([LoggedEntry(1, 1, {"a": [1, 2.5, None, "x"]}), (2, 2, "plain"), (3, 3, None)])
        wal.append([LoggedEntry(4, 3, {"nested": {"deep": True}})])
        assert wal.last_index == 4 and wal.last_term == 3
        assert wal.entry(1) == LoggedEntry(1, 1, {"a": [1, 2.5, None, "x"]})
        assert [wal.term_at(i) for i in range(5)] == [0, 1, 2, 3, 3]
        assert [e.index for e in wal.entries(2, 3)] == [2, 3]
        assert [e.index for e in wal.entries(3, 99)] == [3, 4]
        assert wal.entries(5) == []
        before = snapshot(wal)
        assert wal.sync() == 4 and wal.synced_index == 4
    with WriteAheadLog.open(tmp_path) as wal:
        assert snapshot(wal) == before
        assert wal.hard_state == LoggedHardState(3, "n2")
        assert wal.recovery.entries == 4 and wal.recovery.reason is None
        assert wal.synced_index == 4


def test_out_of_range_reads(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        fill(wal, 3)
        for bad in (-1, 4):
            with pytest.raises(IndexError):
                wal.term_at(bad)
        for bad in (0, 4):
            with pytest.raises(IndexError):
                wal.entry(bad)
        with pytest.raises(IndexError):
            wal.entries(0)


def test_commands_are_decoded_afresh(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        wal.append([(1, 1, {"v": [1]})])
        wal.entry(1).command["v"].append(2)
        assert wal.entry(1).command == {"v": [1]}


def test_entries_max_bytes_bounds_a_batch_but_returns_at_least_one(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        wal.append((i, 1, "x" * 100) for i in range(1, 21))
        assert len(wal.entries(1, max_bytes=1)) == 1
        batch = wal.entries(1, max_bytes=1000)
        assert 1 < len(batch) < 20
        assert [e.index for e in batch] == list(range(1, len(batch) + 1))
        assert len(wal.entries(5, 8, max_bytes=10**9)) == 4


def test_process_crash_loses_nothing_written(tmp_path):
    wal = WriteAheadLog.open(tmp_path)
    wal.set_hard_state(2, "n1")
    fill(wal, 50)
    before = snapshot(wal)
    wal.close()                     # no sync: exactly what SIGKILL leaves behind
    with WriteAheadLog.open(tmp_path) as wal:
        assert snapshot(wal) == before


# -- validation of writes ------------------------------------------------------------------------

def test_append_must_continue_from_last_index(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        fill(wal, 3)
        length = size(tmp_path)
        for bad in ([(5, 1, 0)], [(3, 1, 0)], [(4, 1, 0), (6, 1, 0)], [(True, 1, 0)]):
            with pytest.raises(ValueError, match="continue from index"):
                wal.append(bad)
        assert wal.last_index == 3 and size(tmp_path) == length


def test_append_is_all_or_nothing(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        length = size(tmp_path)
        with pytest.raises(TypeError, match="entry 2"):
            wal.append([(1, 1, "ok"), (2, 1, {1, 2})])
        with pytest.raises(ValueError, match="term"):
            wal.append([(1, 1, "ok"), (2, 0, "bad term")])
        with pytest.raises(ValueError, match="term"):
            wal.append([(1, "1", "bad term")])
        assert wal.last_index == 0 and size(tmp_path) == length
        assert wal.append([]) == 0


def test_hard_state_validation(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        wal.set_hard_state(5, None)
        with pytest.raises(ValueError, match="decrease"):
            wal.set_hard_state(4, "n1")
        with pytest.raises(ValueError, match="vote"):
            wal.set_hard_state(5, 3)
        with pytest.raises(ValueError, match="term"):
            wal.set_hard_state(-1, None)
        length = size(tmp_path)
        wal.set_hard_state(5, None)        # unchanged: nothing written
        assert size(tmp_path) == length
        wal.set_hard_state(5, "n3")
        assert wal.hard_state == (5, "n3")


def test_truncate_from_bounds(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        fill(wal, 3)
        for bad in (0, 5, -1):
            with pytest.raises(ValueError):
                wal.truncate_from(bad)
        assert wal.truncate_from(4) == 3           # nothing to remove
        assert wal.truncate_from(2) == 1
        assert wal.last_index == 1 and wal.last_term == 1
        with pytest.raises(IndexError):
            wal.entry(2)
        wal.append([(2, 2, "new")])
        assert wal.entry(2) == LoggedEntry(2, 2, "new")


def test_closed_log_refuses_use(tmp_path):
    wal = WriteAheadLog.open(tmp_path)
    fill(wal, 1)
    wal.close()
    wal.close()
    assert wal.closed
    with pytest.raises(WalError):
        wal.append([(2, 1, None)])
    with pytest.raises(WalError):
        wal.entry(1)


def test_one_open_log_per_directory(tmp_path):
    with WriteAheadLog.open(tmp_path):
        with pytest.raises(WalError, match="in use"):
            WriteAheadLog.open(tmp_path)
        with pytest.raises(WalError, match="in use"):
            power_loss(tmp_path)
    WriteAheadLog.open(tmp_path).close()


# -- recovery --------------------------------------------------------------------------------------

def test_torn_last_record_is_cut_at_every_offset(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        wal.set_hard_state(1, "n1")
        fill(wal, 9)
        start = size(tmp_path)
        wal.append([(10, 1, {"last": "record", "pad": "x" * 20})])
    full = read_file(tmp_path)
    for cut in range(start, len(full)):
        write_file(tmp_path, full[:cut])
        with WriteAheadLog.open(tmp_path) as wal:
            assert wal.last_index == 9
            assert [e.command for e in wal.entries(1)] == [cmd(i) for i in range(1, 10)]
            assert wal.hard_state == (1, "n1")
            r = wal.recovery
            assert (r.bytes_kept, r.bytes_cut) == (start, cut - start)
            assert (r.reason is None) == (cut == start)
            if cut > start:
                assert "torn" in r.reason
        assert size(tmp_path) == start          # the garbage is gone from the file


def test_log_is_usable_after_a_cut(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        fill(wal, 5)
    write_file(tmp_path, read_file(tmp_path)[:-3])
    with WriteAheadLog.open(tmp_path) as wal:
        assert wal.last_index == 4
        fill(wal, 3, term=2)
    with WriteAheadLog.open(tmp_path) as wal:
        assert [wal.term_at(i) for i in range(1, 8)] == [1, 1, 1, 1, 2, 2, 2]
        assert wal.recovery.reason is None


@pytest.mark.parametrize("where", ["body", "crc", "length", "kind"])
def test_corruption_in_the_middle_cuts_there(tmp_path, where):
    with WriteAheadLog.open(tmp_path) as wal:
        fill(wal, 4)
        offset = size(tmp_path)             # entry 5 starts here
        fill(wal, 6)
    data = bytearray(read_file(tmp_path))
    data[offset + {"kind": 0, "length": 3, "crc": 6, "body": 20}[where]] ^= 0x40
    write_file(tmp_path, bytes(data))
    with WriteAheadLog.open(tmp_path) as wal:
        assert wal.last_index == 4
        assert [e.command for e in wal.entries(1)] == [cmd(i) for i in range(1, 5)]
        assert wal.recovery.bytes_kept == offset == size(tmp_path)
        assert str(offset) in wal.recovery.reason


@pytest.mark.parametrize("where", ["body", "crc", "length", "kind"])
def test_corruption_in_the_synced_part_is_refused_not_cut(tmp_path, where):
    """A flipped byte in an early record used to cut everything after it: committed entries,
    and the term and vote recorded later (term 2,899,435 back to 1)."""
    with WriteAheadLog.open(tmp_path) as wal:
        fill(wal, 4)
        offset = size(tmp_path)             # entry 5 starts here
        fill(wal, 6)
        wal.set_hard_state(2_899_435, "n2")
        wal.sync()
    data = bytearray(read_file(tmp_path))
    data[offset + {"kind": 0, "length": 3, "crc": 6, "body": 20}[where]] ^= 0x40
    write_file(tmp_path, bytes(data))
    with pytest.raises(WalError) as info:
        WriteAheadLog.open(tmp_path)
    message = str(info.value)
    assert log_path(tmp_path) in message and f"offset {offset}" in message
    assert "\n" not in message
    assert read_file(tmp_path) == bytes(data)        # left as it was, for inspection
    # Mended, the log opens with everything, the hard state included.
    data[offset + {"kind": 0, "length": 3, "crc": 6, "body": 20}[where]] ^= 0x40
    write_file(tmp_path, bytes(data))
    with WriteAheadLog.open(tmp_path) as wal:
        assert wal.last_index == 10 and wal.hard_state == (2_899_435, "n2")


def test_damage_past_the_last_sync_is_a_torn_tail_and_cut(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        wal.set_hard_state(3, "n1")
        fill(wal, 4)
        wal.sync()
        synced = size(tmp_path)
        fill(wal, 3)                       # written, never synced
    data = bytearray(read_file(tmp_path))
    data[synced + 20] ^= 0x40
    write_file(tmp_path, bytes(data))
    with WriteAheadLog.open(tmp_path) as wal:
        assert wal.last_index == 4 and wal.hard_state == (3, "n1")
        assert wal.recovery.bytes_kept == synced and "checksum" in wal.recovery.reason


def test_a_synced_log_cut_short_on_a_record_boundary_is_refused(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        fill(wal, 4)
        boundary = size(tmp_path)
        fill(wal, 3)
        wal.sync()
    os.truncate(log_path(tmp_path), boundary)
    with pytest.raises(WalError, match=f"{boundary} bytes, shorter than"):
        WriteAheadLog.open(tmp_path)
    assert size(tmp_path) == boundary


def test_zeroed_tail_is_cut(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        fill(wal, 3)
    length = size(tmp_path)
    with open(log_path(tmp_path), "ab") as f:
        f.write(bytes(4096))                  # a file system extended the file, data never came
    with WriteAheadLog.open(tmp_path) as wal:
        assert wal.last_index == 3
        assert "kind 0x00" in wal.recovery.reason and wal.recovery.bytes_cut == 4096
    assert size(tmp_path) == length


@pytest.mark.parametrize("bad, reason", [
    (entry_record(5, 1), "out of sequence"),         # a gap
    (entry_record(3, 1), "out of sequence"),         # an overlap
    (entry_record(4, 0), "out of sequence"),         # term 0 is not a term
    (record(b"T", struct.pack(">Q", 9)), "truncation"),
    (record(b"T", struct.pack(">Q", 0)), "truncation"),
    (record(b"S", struct.pack(">Q", 1) + b"[1]"), "hard state"),
    (record(b"S", struct.pack(">Q", 1) + b"{nope"), "hard state"),
    (record(b"X", b"?"), "kind"),
    (record(b"F", b"\0" * 18), "file header"),
])
def test_valid_checksum_but_invalid_record_is_cut(tmp_path, bad, reason):
    with WriteAheadLog.open(tmp_path) as wal:
        fill(wal, 3)
    good = read_file(tmp_path)
    write_file(tmp_path, good + bad + entry_record(4, 1))
    with WriteAheadLog.open(tmp_path) as wal:
        assert wal.last_index == 3
        assert reason in wal.recovery.reason
        assert wal.recovery.bytes_cut == len(bad) + len(entry_record(4, 1))
    assert read_file(tmp_path) == good


def test_hand_built_records_are_read(tmp_path):
    """The documented layout, written by hand, is what the log reads."""
    WriteAheadLog.open(tmp_path).close()
    header = read_file(tmp_path)
    assert len(header) == FILE_HEADER_SIZE and header[:1] == b"F" and b"faultwal" in header
    write_file(tmp_path, header + record(b"S", struct.pack(">Q", 7) + b'"n3"')
               + entry_record(1, 2, b'{"k":1}') + entry_record(2, 7, b"[1]")
               + record(b"T", struct.pack(">Q", 2)) + entry_record(2, 7, b'"z"'))
    with WriteAheadLog.open(tmp_path) as wal:
        assert wal.hard_state == (7, "n3")
        assert [tuple(e) for e in wal.entries(1)] == [(1, 2, {"k": 1}), (2, 7, "z")]
        assert wal.recovery.records == 6


def test_every_truncated_length_recovers_a_record_boundary(tmp_path):
    """Cut a log holding every kind of record at every byte: recovery yields exactly the state
    after the last complete record, or refuses a file without a complete header."""
    states = []                     # (file length after a record, state then)
    with WriteAheadLog.open(tmp_path) as wal:
        states.append((size(tmp_path), snapshot(wal)))

        def step(action):
            action()
            states.append((size(tmp_path), snapshot(wal)))

        step(lambda: wal.set_hard_state(1, "n1"))
        for i in range(1, 4):
            step(lambda i=i: wal.append([(i, 1, cmd(i))]))
        step(lambda: wal.set_hard_state(2, None))
        step(lambda: wal.truncate_from(2))
        step(lambda: wal.set_hard_state(2, "n2"))
        step(lambda: wal.append([(2, 2, "b")]))     # one record per step: every boundary
        step(lambda: wal.append([(3, 2, "c")]))     # is a state recovery may come back to
        step(lambda: wal.truncate_from(1))
    full = read_file(tmp_path)
    for cut in range(len(full) + 1):
        write_file(tmp_path, full[:cut])
        if cut < FILE_HEADER_SIZE:
            with pytest.raises(WalError, match="not a write-ahead log"):
                WriteAheadLog.open(tmp_path)
            continue
        expected = max((s for s in states if s[0] <= cut), key=lambda s: s[0])
        with WriteAheadLog.open(tmp_path) as wal:
            assert snapshot(wal) == expected[1], cut
            assert wal.recovery.bytes_kept == expected[0]


def test_damaged_header_is_refused_and_left_alone(tmp_path):
    WriteAheadLog.open(tmp_path).close()
    data = bytearray(read_file(tmp_path))
    data[12] ^= 1
    write_file(tmp_path, bytes(data) + entry_record(1, 1))
    with pytest.raises(WalError, match="header"):
        WriteAheadLog.open(tmp_path)
    assert read_file(tmp_path) == bytes(data) + entry_record(1, 1)


def test_corruption_under_a_running_node_is_detected_on_read(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        fill(wal, 3)
        end = size(tmp_path)
        with open(log_path(tmp_path), "r+b") as f:
            f.seek(end - 2)
            f.write(b"\xff")
        with pytest.raises(WalError, match="corrupt"):
            wal.entry(3)
        with pytest.raises(WalError, match="corrupt"):
            wal.entries(1)
        assert wal.entry(2).index == 2


def test_unfinished_creation_is_ignored(tmp_path):
    (tmp_path / (LOG_NAME + ".tmp")).write_bytes(b"F\0\0")
    with WriteAheadLog.open(tmp_path) as wal:
        assert wal.last_index == 0
    assert not (tmp_path / (LOG_NAME + ".tmp")).exists()


# -- sync and power loss -------------------------------------------------------------------------

def test_power_loss_keeps_only_the_synced_prefix_of_a_batch(tmp_path):
    wal = WriteAheadLog.open(tmp_path)
    wal.set_hard_state(1, "n1")
    fill(wal, 5)
    assert wal.needs_sync
    assert wal.sync() == 5 and not wal.needs_sync
    synced = snapshot(wal)
    fill(wal, 10)                          # a batch, crashed before its sync
    wal.set_hard_state(2, "n2")
    assert wal.synced_index == 5
    wal.close()                            # SIGKILL
    loss = power_loss(tmp_path)
    assert loss.bytes_cut > 0 and loss.length_before - loss.bytes_cut == loss.synced_length
    with WriteAheadLog.open(tmp_path) as wal:
        assert snapshot(wal) == synced
        assert wal.recovery.bytes_cut == 0 and wal.recovery.reason is None
    assert power_loss(tmp_path).bytes_cut == 0          # idempotent once recovered


KILLED_NODE = """
import os, signal, sys
from refnode.wal import WriteAheadLog
wal = WriteAheadLog.open(sys.argv[1])
wal.set_hard_state(3, "n1")
wal.append((i, 3, {"v": i}) for i in range(1, 101))
wal.sync()
wal.append((i, 3, {"v": i}) for i in range(101, 151))     # a batch never synced
wal.set_hard_state(4, None)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("lose_power", [False, True])
def test_sigkilled_process_mid_batch(tmp_path, lose_power):
    proc = subprocess.run([sys.executable, "-c", KILLED_NODE, str(tmp_path)], timeout=30,
                          check=False)
    assert proc.returncode == -signal.SIGKILL
    if lose_power:
        power_loss(tmp_path)
    with WriteAheadLog.open(tmp_path) as wal:
        if lose_power:
            assert (wal.last_index, wal.hard_state) == (100, (3, "n1"))
        else:
            assert (wal.last_index, wal.hard_state) == (150, (4, None))
        assert [e.command["v"] for e in wal.entries(1)] == list(range(1, wal.last_index + 1))


def test_power_loss_after_a_clean_sync_loses_nothing(tmp_path):
    wal = WriteAheadLog.open(tmp_path)
    fill(wal, 7)
    wal.sync()
    wal.close()
    assert power_loss(tmp_path).bytes_cut == 0
    with WriteAheadLog.open(tmp_path) as wal:
        assert wal.last_index == 7


def test_power_loss_before_any_sync_leaves_an_empty_log(tmp_path):
    wal = WriteAheadLog.open(tmp_path)
    fill(wal, 3)
    wal.set_hard_state(4, "n1")
    wal.close()
    assert power_loss(tmp_path).synced_length == FILE_HEADER_SIZE
    with WriteAheadLog.open(tmp_path) as wal:
        assert (wal.last_index, wal.hard_state) == (0, (0, None))


def test_recovery_at_open_makes_the_log_durable(tmp_path):
    wal = WriteAheadLog.open(tmp_path)
    fill(wal, 3)
    wal.close()                            # crash without sync, then a clean restart
    with WriteAheadLog.open(tmp_path) as wal:
        assert wal.synced_index == 3
    power_loss(tmp_path)
    with WriteAheadLog.open(tmp_path) as wal:
        assert wal.last_index == 3


def test_no_fsync_bug_reports_synced_but_loses_it(tmp_path):
    wal = WriteAheadLog.open(tmp_path, fsync=False)
    fill(wal, 4)
    assert wal.sync() == 4 and wal.synced_index == 4       # acknowledged as durable...
    wal.close()
    with WriteAheadLog.open(tmp_path, fsync=False) as wal:  # ...survives a process crash...
        assert wal.last_index == 4
        fill(wal, 2)
        wal.sync()
    power_loss(tmp_path)
    with WriteAheadLog.open(tmp_path, fsync=False) as wal:  # ...but not a power loss
        assert wal.last_index == 0


def test_group_commit_off_syncs_every_mutation(tmp_path):
    wal = WriteAheadLog.open(tmp_path, group_commit=False)
    wal.set_hard_state(1, "n1")
    fill(wal, 3)
    assert wal.synced_index == 3 and not wal.needs_sync
    wal.truncate_from(3)
    assert wal.synced_index == 2 and not wal.needs_sync
    wal.close()
    power_loss(tmp_path)
    with WriteAheadLog.open(tmp_path) as wal:
        assert (wal.last_index, wal.hard_state) == (2, (1, "n1"))


def test_truncation_is_durable_only_after_sync(tmp_path):
    wal = WriteAheadLog.open(tmp_path)
    fill(wal, 10)
    wal.sync()
    wal.truncate_from(6)
    assert wal.synced_index == 5
    wal.close()
    power_loss(tmp_path)                   # the truncation was never synced: the old log
    with WriteAheadLog.open(tmp_path) as wal:
        assert wal.last_index == 10 and wal.term_at(10) == 1
        wal.truncate_from(6)
        wal.append([(6, 2, "a"), (7, 2, "b")])
        assert wal.sync() == 7
    power_loss(tmp_path)
    with WriteAheadLog.open(tmp_path) as wal:
        assert [wal.term_at(i) for i in range(1, 8)] == [1] * 5 + [2, 2]
        assert wal.entry(7).command == "b"


def test_torn_truncation_record_yields_the_old_log(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        fill(wal, 5)
        start = size(tmp_path)
        wal.truncate_from(2)
    full = read_file(tmp_path)
    for cut in range(start, len(full) + 1):
        write_file(tmp_path, full[:cut])
        with WriteAheadLog.open(tmp_path) as wal:
            assert wal.last_index == (1 if cut == len(full) else 5)


def test_torn_hard_state_keeps_the_previous_value(tmp_path):
    with WriteAheadLog.open(tmp_path) as wal:
        wal.set_hard_state(1, "n1")
        wal.sync()
        start = size(tmp_path)
        wal.set_hard_state(2, "n2")
    full = read_file(tmp_path)
    for cut in range(start, len(full)):
        write_file(tmp_path, full[:cut])
        with WriteAheadLog.open(tmp_path) as wal:
            assert wal.hard_state == (1, "n1")


def test_reused_directory_ignores_an_old_marker(tmp_path):
    wal = WriteAheadLog.open(tmp_path)
    fill(wal, 3)
    wal.sync()
    wal.close()
    os.unlink(log_path(tmp_path))          # a wiped log, the marker left behind
    for _ in range(3):                     # several syncs so both marker slots are rewritten
        wal = WriteAheadLog.open(tmp_path)
        fill(wal, 2)
        wal.sync()
        wal.close()
    power_loss(tmp_path)
    with WriteAheadLog.open(tmp_path) as wal:
        assert wal.last_index == 6


def test_sync_in_a_worker_thread_while_appending(tmp_path):
    wal = WriteAheadLog.open(tmp_path)
    stop = threading.Event()
    seen = []

    def syncer():
        while not stop.is_set():
            seen.append(wal.sync())

    thread = threading.Thread(target=syncer)
    thread.start()
    try:
        for i in range(1, 2001):
            wal.append([(i, 1 + i // 500, i)])
            if i % 300 == 0:
                wal.truncate_from(i - 5)
                wal.append((j, 1 + i // 500, j) for j in range(i - 5, i + 1))
            assert wal.synced_index <= wal.last_index
    finally:
        stop.set()
        thread.join()
    assert seen and all(0 <= s <= 2000 for s in seen)
    assert wal.sync() == wal.last_index == 2000
    wal.close()
    power_loss(tmp_path)
    with WriteAheadLog.open(tmp_path) as wal:
        assert [e.command for e in wal.entries(1)] == list(range(1, 2001))


def test_truncation_during_a_sync_lowers_what_it_reports(tmp_path, monkeypatch):
    """A sync that began before a truncation vouches only for the prefix both logs share."""
    wal = WriteAheadLog.open(tmp_path)
    fill(wal, 10)
    in_fsync, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd):
        in_fsync.set()
        release.wait(5)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    result = []
    thread = threading.Thread(target=lambda: result.append(wal.sync()))
    thread.start()
    assert in_fsync.wait(5)
    wal.truncate_from(4)                   # while the sync of entries 1..10 is in flight
    wal.append([(4, 2, "new")])
    release.set()
    thread.join()
    monkeypatch.undo()
    assert result == [3] and wal.synced_index == 3 and wal.needs_sync
    assert wal.sync() == 4
    wal.close()


# -- the model ------------------------------------------------------------------------------------

commands = st.one_of(st.none(), st.integers(-10, 10), st.text(max_size=5),
                     st.lists(st.integers(0, 3), max_size=3),
                     st.dictionaries(st.sampled_from("abc"), st.integers(0, 9), max_size=2))


class WalModel(RuleBasedStateMachine):
    """Random appends, truncations, hard-state changes, syncs, crashes and power losses; the log
    must always equal a plain in-memory model, and after a power loss the model's state as of
    the last sync."""

    @initialize(group_commit=st.booleans())
    def start(self, group_commit):
        self.dir = tempfile.mkdtemp(prefix="wal-model-")
        self.group_commit = group_commit
        self.wal = WriteAheadLog.open(self.dir, group_commit=group_commit)
        self.log: list[tuple[int, object]] = []     # (term, command)
        self.state = (0, None)
        self.durable = (self.state, list(self.log))

    def teardown(self):
        if hasattr(self, "wal"):
            self.wal.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _maybe_durable(self):
        if not self.group_commit:
            self.durable = (self.state, list(self.log))

    @rule(n=st.integers(1, 5), bump=st.integers(0, 1), data=st.data())
    def append(self, n, bump, data):
        term = (self.log[-1][0] if self.log else 1) + bump
        cmds = [data.draw(commands) for _ in range(n)]
        first = len(self.log) + 1
        assert self.wal.append((first + i, term, c) for i, c in enumerate(cmds)) == first + n - 1
        self.log.extend((term, c) for c in cmds)
        self._maybe_durable()

    @precondition(lambda self: self.log)
    @rule(data=st.data())
    def truncate(self, data):
        index = data.draw(st.integers(1, len(self.log) + 1))
        self.wal.truncate_from(index)
        del self.log[index - 1:]
        self._maybe_durable()

    @rule(bump=st.integers(0, 2), vote=st.sampled_from([None, "n1", "n2"]))
    def hard_state(self, bump, vote):
        self.wal.set_hard_state(self.state[0] + bump, vote)
        self.state = (self.state[0] + bump, vote)
        self._maybe_durable()

    @rule()
    def sync(self):
        assert self.wal.sync() == len(self.log)
        self.durable = (self.state, list(self.log))

    @rule()
    def crash(self):
        self.wal.close()
        self.wal = WriteAheadLog.open(self.dir, group_commit=self.group_commit)
        assert self.wal.recovery.reason is None
        self.durable = (self.state, list(self.log))      # recovery syncs what it found

    @rule()
    def lose_power(self):
        self.wal.close()
        power_loss(self.dir)
        self.wal = WriteAheadLog.open(self.dir, group_commit=self.group_commit)
        self.state, log = self.durable
        self.log = list(log)

    @rule(data=st.data())
    def read_range(self, data):
        lo = data.draw(st.integers(1, len(self.log) + 2))
        hi = data.draw(st.integers(lo - 1, len(self.log) + 2))
        got = self.wal.entries(lo, hi)
        expected = [(i, t, c) for i, (t, c) in enumerate(self.log, 1) if lo <= i <= hi]
        assert [tuple(e) for e in got] == expected

    @invariant()
    def matches_model(self):
        if not hasattr(self, "wal"):
            return
        wal = self.wal
        assert wal.hard_state == self.state
        assert wal.last_index == len(self.log)
        assert wal.last_term == (self.log[-1][0] if self.log else 0)
        assert [wal.term_at(i) for i in range(1, len(self.log) + 1)] == [t for t, _ in self.log]
        if self.log:
            assert wal.entry(len(self.log)).command == self.log[-1][1]
        assert 0 <= wal.synced_index <= wal.last_index
        durable_log = self.durable[1]
        common = 0
        while (common < min(len(durable_log), len(self.log))
               and durable_log[common] == self.log[common]):
            common += 1
        assert wal.synced_index <= common


TestWalModel = WalModel.TestCase
TestWalModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                 suppress_health_check=[HealthCheck.too_slow])
