"""The write-ahead log of one refnode: hard state and log entries, in the node's data directory.

What it promises
----------------
- Every mutation (`append`, `truncate_from`, `set_hard_state`) reaches the operating system
  before the call returns, so a process crash (SIGKILL) loses nothing. It becomes durable (it
  survives a power loss) only when a later `sync()` returns. The runtime therefore follows the
  ordering contract of the protocol core: persist (append / set hard state), then `sync()`, then
  send messages or acknowledge clients. Group commit is simply many mutations, then one `sync()`
  before acknowledging any of them; `group_commit=False` makes every mutation sync by itself.
- Recovery (`WriteAheadLog.open`) never loads garbage: records are checked for kind, length,
  checksum and sequence. A bad record past the synced length the power-loss marker records is
  a torn tail (a write a crash cut short): it and everything after it are cut off (the file is
  truncated there) and the cut is reported in `WriteAheadLog.recovery`. A bad record inside
  the synced part is a damaged disk: the log refuses to open (WalError with the file and the
  offset) rather than cut committed entries, or the term and vote recorded after them. (The
  marker is not itself fsynced: after a crash of the whole machine it may lag, and damage in
  the part it no longer vouches for is cut as a torn tail, as it always was.)
- Hard state and truncations are records in the same log, so they are exactly as atomic as a
  record: a torn write of either is a torn tail, cut at recovery, and the previous value stands.

Files in the data directory
---------------------------
``wal.log``: a sequence of records, each::

    offset  size  field
    0       1     kind: 'F' file header, 'E' entry, 'S' hard state, 'T' truncation
    1       4     n, the length of the body in bytes (unsigned, big-endian)
    5       4     CRC-32 (zlib.crc32) of bytes 0..4 followed by the body
    9       n     body

Bodies (integers unsigned 64-bit big-endian, JSON encoded by orjson):

    'F'  b"faultwal", version (16-bit, 1), log id (64-bit, random per log)   - first record only
    'E'  index, term, command as JSON                                         - index = last + 1
    'S'  term, vote as JSON (a node id string, or null)                       - the latest wins
    'T'  from_index: drop entries from_index.. (1 <= from_index <= last + 1)

The live log is the replay of the records in order. A truncation costs one small record instead
of a rewrite, and is crash-safe because it is all-or-nothing like any record; the entries it cut
stay in the file as dead bytes (conflicting suffixes are short and rare, so the file is not
compacted). The log file is created under a temporary name, synced, renamed and the directory
synced, so ``wal.log`` always starts with a complete header; a file too short for its header,
or with a damaged one, is not cut but refused (`WalError`), since coming back with an empty log
and term 0 would silently forget votes.

``wal.synced``: the power-loss marker (see `power_loss`). Two 32-byte slots written
alternately, each: magic b"FLSM", sequence (64-bit), log id (64-bit), synced length of
``wal.log`` in bytes (64-bit), CRC-32 of the preceding 28 bytes. The valid slot with the higher
sequence wins, so a torn marker write leaves the previous (smaller, hence conservative) value.

``wal.lock``: empty; held with flock(LOCK_EX) by the open log, so that two processes never use
one directory and `power_loss` refuses to run under a live (or paused) node.

Power loss, simulated
---------------------
A power loss loses what was written but never synced. Once the node is dead, the OS still holds
those bytes, so the harness cannot tell them apart from outside; the node therefore records, after
every `sync()` and before that call returns, the byte length of ``wal.log`` known to be durable.
`power_loss(directory)`, called on a dead node's directory, cuts ``wal.log`` back to that length.
The marker is written with `os.pwrite` but deliberately not fsynced: it only has to survive a
process kill (it does: the OS has it), and it is written before `sync()` returns, so it never
lags behind anything the node acted on (voted, acknowledged). It may lag behind a sync whose
call never returned; cutting that data is harmless, nothing depended on it yet.

With ``fsync=False`` (the planted bug ``no-fsync``) `sync()` claims durability without calling
`os.fsync`, and the marker is never advanced (open does not fsync either): a power loss then
loses everything written since the log was created or last opened with fsync on, which is what a
never-synced file may lose.

Threads: the log is used from one thread (the event loop), except that `sync()` may also run in
one worker thread (``loop.run_in_executor``) while that thread keeps appending; `synced_index`
then counts only what was written before the sync began.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import zlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Self

import orjson

LOG_NAME = "wal.log"
MARKER_NAME = "wal.synced"
LOCK_NAME = "wal.lock"
_TMP_NAME = LOG_NAME + ".tmp"

KIND_FILE = ord("F")
KIND_ENTRY = ord("E")
KIND_STATE = ord("S")
KIND_TRUNCATE = ord("T")
_KINDS = {KIND_FILE, KIND_ENTRY, KIND_STATE, KIND_TRUNCATE}

_PREFIX = struct.Struct(">BI")        # kind, body length
_HEADER = struct.Struct(">BII")       # kind, body length, crc
HEADER_SIZE = _HEADER.size            # 9
_U64 = struct.Struct(">Q")
_U64X2 = struct.Struct(">QQ")
_FILE_BODY = struct.Struct(">8sHQ")   # magic, version, log id
_MAGIC = b"faultwal"
VERSION = 1
FILE_HEADER_SIZE = HEADER_SIZE + _FILE_BODY.size
MAX_RECORD_BODY = 64 << 20            # larger lengths are corruption, not data
_MAX_U64 = (1 << 64) - 1

_MARK = struct.Struct(">4sQQQ")       # magic, sequence, log id, synced length
_MARK_CRC = struct.Struct(">I")
_MARK_SLOT = _MARK.size + _MARK_CRC.size   # 32
_MARK_MAGIC = b"FLSM"


class WalError(Exception):
    """The log cannot be used: no valid header, locked by another process, closed, corrupted
    under a running node, or a failed write or fsync (after which the node must restart and
    recover rather than trust what it has in memory)."""


class LoggedEntry(NamedTuple):
    """One log entry. `command` is any JSON value (as orjson encodes and decodes it)."""

    index: int
    term: int
    command: Any


class LoggedHardState(NamedTuple):
    """What a node must never forget across restarts: its current term and its vote in it."""

    term: int
    vote: str | None


@dataclass(frozen=True)
class Recovery:
    """What `WriteAheadLog.open` found: `records` valid records kept (header included),
    `entries` live entries after replaying truncations, `bytes_kept` the valid length,
    `bytes_cut` what was cut off the end, and `reason` why (None when the file ended cleanly)."""

    records: int
    entries: int
    bytes_kept: int
    bytes_cut: int
    reason: str | None


@dataclass(frozen=True)
class PowerLossCut:
    """What `power_loss` did: the log's length before, the synced length it kept, bytes cut."""

    length_before: int
    synced_length: int
    bytes_cut: int


def _record(kind: int, body: bytes) -> bytes:
    prefix = _PREFIX.pack(kind, len(body))
    return prefix + _MARK_CRC.pack(zlib.crc32(body, zlib.crc32(prefix))) + body


def _check_u64(name: str, value: Any, minimum: int) -> int:
    if type(value) is not int or not minimum <= value <= _MAX_U64:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class _Scan:
    """The state replayed from a log file's bytes (see `_scan`)."""

    def __init__(self) -> None:
        self.log_id = 0
        self.term = 0
        self.vote: str | None = None
        self.offsets = array("Q")
        self.lengths = array("Q")
        self.terms = array("Q")
        self.records = 0
        self.end = 0
        self.reason: str | None = None


def _scan(data: bytes) -> _Scan:
    """Replay records from the start; stop at the first record that is torn, corrupt or out of
    sequence. Raises WalError only for a missing or damaged file header."""
    s = _Scan()
    n = len(data)
    if n < FILE_HEADER_SIZE:
        raise WalError(f"not a write-ahead log: {n} bytes, shorter than the file header")
    kind, length, crc = _HEADER.unpack_from(data, 0)
    if (kind != KIND_FILE or length != _FILE_BODY.size
            or zlib.crc32(data[HEADER_SIZE:FILE_HEADER_SIZE], zlib.crc32(data[:5])) != crc):
        raise WalError("not a write-ahead log: damaged file header")
    magic, version, s.log_id = _FILE_BODY.unpack_from(data, HEADER_SIZE)
    if magic != _MAGIC or version != VERSION:
        raise WalError(f"not a write-ahead log of version {VERSION}: magic {magic!r}, "
                       f"version {version}")
    s.records = 1
    pos = FILE_HEADER_SIZE
    mv = memoryview(data)
    offsets, lengths, terms = s.offsets, s.lengths, s.terms
    reason = None
    while pos < n:
        if n - pos < HEADER_SIZE:
            reason = f"torn record header at offset {pos}: {n - pos} of {HEADER_SIZE} bytes"
            break
        kind, length, crc = _HEADER.unpack_from(data, pos)
        if kind not in _KINDS:
            reason = f"unknown record kind 0x{kind:02x} at offset {pos}"
            break
        if length > MAX_RECORD_BODY:
            reason = f"implausible record length {length} at offset {pos}"
            break
        end = pos + HEADER_SIZE + length
        if end > n:
            reason = (f"torn record at offset {pos}: body of {length} bytes, "
                      f"{n - pos - HEADER_SIZE} present")
            break
        body = mv[pos + HEADER_SIZE:end]
        if zlib.crc32(body, zlib.crc32(mv[pos:pos + 5])) != crc:
            reason = f"checksum mismatch at offset {pos}"
            break
        last = len(terms)
        if kind == KIND_ENTRY:
            if length <= _U64X2.size:
                reason = f"entry record too short at offset {pos}"
                break
            index, term = _U64X2.unpack_from(body)
            if index != last + 1 or term == 0:
                reason = (f"entry {index} (term {term}) out of sequence at offset {pos}: "
                          f"expected index {last + 1}, term >= 1")
                break
            offsets.append(pos)
            lengths.append(end - pos)
            terms.append(term)
        elif kind == KIND_STATE:
            try:
                (term,) = _U64.unpack_from(body)
                vote = orjson.loads(body[_U64.size:])
            except (struct.error, orjson.JSONDecodeError):
                vote = 0
            if not (vote is None or isinstance(vote, str)):
                reason = f"malformed hard state record at offset {pos}"
                break
            s.term, s.vote = term, vote
        elif kind == KIND_TRUNCATE:
            if length != _U64.size or not 1 <= _U64.unpack_from(body)[0] <= last + 1:
                reason = f"malformed truncation record at offset {pos}"
                break
            cut = _U64.unpack_from(body)[0] - 1
            del offsets[cut:], lengths[cut:], terms[cut:]
        else:
            reason = f"second file header at offset {pos}"
            break
        s.records += 1
        pos = end
    s.end = pos
    s.reason = reason
    return s


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _create_log(directory: str, fsync: bool) -> None:
    """Create ``wal.log`` holding only a file header: written under a temporary name, synced,
    renamed, directory synced, so that the name never refers to a partial header."""
    tmp = os.path.join(directory, _TMP_NAME)
    log_id = int.from_bytes(os.urandom(8), "big")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, _record(KIND_FILE, _FILE_BODY.pack(_MAGIC, VERSION, log_id)), 0)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(directory, LOG_NAME))
    if fsync:
        _fsync_dir(directory)


def _read_marker(directory: str, log_id: int) -> tuple[int, int | None]:
    """(the highest sequence of any valid slot, the synced length of the newest valid slot for
    log `log_id` or None). Slots of another log (a data directory reused) are ignored."""
    try:
        with open(os.path.join(directory, MARKER_NAME), "rb") as f:
            data = f.read(2 * _MARK_SLOT)
    except FileNotFoundError:
        return 0, None
    top_seq, best_seq, best_length = 0, -1, None
    for slot in range(2):
        raw = data[slot * _MARK_SLOT:(slot + 1) * _MARK_SLOT]
        if len(raw) < _MARK_SLOT or zlib.crc32(raw[:_MARK.size]) != _MARK_CRC.unpack_from(
                raw, _MARK.size)[0]:
            continue
        magic, seq, slot_log_id, length = _MARK.unpack_from(raw)
        if magic != _MARK_MAGIC:
            continue
        top_seq = max(top_seq, seq)
        if slot_log_id == log_id and seq > best_seq:
            best_seq, best_length = seq, length
    return top_seq, best_length


def _lock(directory: str) -> int:
    """An open descriptor holding the exclusive lock of the directory's log: one live node per
    data directory, and no power loss under a live node. The kernel drops it when the process
    dies, however it dies."""
    path = os.path.join(directory, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WalError(f"the log in {directory} is in use by another open log "
                       f"(a live node?)") from None
    return fd


class WriteAheadLog:
    """The log of one node: hard state (term, vote) and entries from index 1, contiguous.

    Obtain one with `WriteAheadLog.open`. Not safe for concurrent use beyond the one case in the
    module docstring (a `sync()` in a worker thread alongside the owning thread).
    """

    def __init__(self, directory: str, fds: tuple[int, int, int], scan: _Scan,
                 recovery: Recovery, *, fsync: bool, group_commit: bool, marker_seq: int):
        self._directory = directory
        self._lock_fd, self._fd, self._marker_fd = fds
        self._fsync = fsync
        self._group_commit = group_commit
        self._log_id = scan.log_id
        self._term = scan.term
        self._vote = scan.vote
        self._offsets = scan.offsets
        self._lengths = scan.lengths
        self._terms = scan.terms
        self._end = scan.end
        self._recovery = recovery
        self._lock = threading.Lock()          # bookkeeping shared with a syncing thread
        self._sync_lock = threading.Lock()     # one sync at a time
        self._failed: BaseException | None = None
        self._closed = False
        # What sync() has covered: the byte length, and the highest index of the current log
        # known durable. _trunc_floor lowers a sync in flight if a truncation cuts below it.
        self._synced_end = scan.end
        self._synced_index = len(scan.terms)
        self._trunc_floor = self._synced_index
        self._marker_seq = marker_seq

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: str | os.PathLike, *, fsync: bool = True,
             group_commit: bool = True) -> WriteAheadLog:
        """Open the log in `directory` (created, with the directory, if absent) and recover it.

        Recovery replays the records, cuts off the first torn or corrupt record and all after it
        (truncating the file there) and reports that in `recovery`, when that record lies past
        what the power-loss marker says was synced (a torn tail: a write cut short by a crash).
        A bad record inside the synced part is damage, not a torn write: WalError, naming the
        file and offset, and the file is left untouched (a cut would drop committed entries and
        the term and vote recorded after them). With `fsync`, the recovered
        log is then fsynced, so everything it holds counts as synced (`synced_index ==
        last_index`). `group_commit=True` (the default): mutations only write, `sync()` makes
        them durable; `group_commit=False`: every mutation syncs before it returns.
        `fsync=False` is the planted bug `no-fsync` (see the module docstring).

        Holds an exclusive lock on ``wal.lock`` until `close()` (or the process's death).
        Raises WalError if ``wal.log`` exists without a valid file header or with a corrupt
        record in its synced part (it is left as it is for inspection), or the log is open
        elsewhere.
        """
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, LOG_NAME)
        fds: list[int] = [_lock(directory)]
        try:
            try:
                os.unlink(os.path.join(directory, _TMP_NAME))   # a creation that never finished
            except FileNotFoundError:
                pass
            if not os.path.exists(path):
                _create_log(directory, fsync)
            fd = os.open(path, os.O_RDWR)
            fds.append(fd)
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0)
            if len(data) != size:
                raise WalError(f"{path}: short read during recovery")
            scan = _scan(data)
            del data
            marker_seq, marker_length = _read_marker(directory, scan.log_id)
            if marker_length is not None and size < marker_length:
                # Shorter than what a sync made durable: cut by something other than a crash.
                raise WalError(f"{path}: {size} bytes, shorter than the {marker_length} known "
                               f"synced; not used: the log is left as it is for inspection")
            if scan.end < size and marker_length is not None and scan.end < marker_length:
                # Inside what a sync made durable: not a write cut short by a crash but a
                # damaged disk. Cutting here would drop committed entries and the term and
                # vote recorded after them (a second vote in one term); refuse instead.
                raise WalError(f"{path}: corrupt record at offset {scan.end}, inside the "
                               f"{marker_length} bytes known synced ({scan.reason}); not "
                               f"cut: the log is left as it is for inspection")
            if scan.end < size:
                os.ftruncate(fd, scan.end)
            if fsync:
                os.fsync(fd)
            recovery = Recovery(records=scan.records, entries=len(scan.terms),
                                bytes_kept=scan.end, bytes_cut=size - scan.end,
                                reason=scan.reason)
            fds.append(os.open(os.path.join(directory, MARKER_NAME), os.O_RDWR | os.O_CREAT,
                               0o644))
            log = cls(directory, (fds[0], fds[1], fds[2]), scan, recovery, fsync=fsync,
                      group_commit=group_commit, marker_seq=marker_seq)
        except BaseException:
            for fd in reversed(fds):
                os.close(fd)
            raise
        if fsync:
            durable = scan.end
        else:   # nothing is ever fsynced: only what an earlier marker vouched for stays durable
            durable = min(FILE_HEADER_SIZE if marker_length is None else marker_length, scan.end)
        log._write_marker(durable)
        return log

    # -- reading -----------------------------------------------------------------------------

    @property
    def directory(self) -> str:
        """The data directory holding the log."""
        return self._directory

    @property
    def recovery(self) -> Recovery:
        """What recovery at open kept and cut (see `Recovery`)."""
        return self._recovery

    @property
    def term(self) -> int:
        """The current term of the hard state (0 for a new log)."""
        return self._term

    @property
    def vote(self) -> str | None:
        """The node voted for in `term`, or None."""
        return self._vote

    @property
    def hard_state(self) -> LoggedHardState:
        """(term, vote), as the latest `set_hard_state` left them."""
        return LoggedHardState(self._term, self._vote)

    @property
    def last_index(self) -> int:
        """The index of the last entry (0 when the log is empty)."""
        return len(self._terms)

    @property
    def last_term(self) -> int:
        """The term of the last entry (0 when the log is empty)."""
        return self._terms[-1] if self._terms else 0

    @property
    def synced_index(self) -> int:
        """The highest index such that entries 1..index, as the log holds them now, are durable
        (as far as `sync()` has claimed: with fsync=False, claimed but not true). A truncation
        lowers it to below the cut until the next sync."""
        return self._synced_index

    @property
    def needs_sync(self) -> bool:
        """Whether anything was written since the last `sync()` began."""
        return self._end != self._synced_end

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    def term_at(self, index: int) -> int:
        """The term of entry `index`; 0 for index 0 (the empty prefix, as Raft's log matching
        needs). IndexError outside 0..last_index."""
        if index == 0:
            return 0
        if not 1 <= index <= len(self._terms):
            raise IndexError(f"no entry {index}: the log holds 1..{len(self._terms)}")
        return self._terms[index - 1]

    def entry(self, index: int) -> LoggedEntry:
        """The entry at `index` (1..last_index, else IndexError), read back from the file and
        checked. The command is decoded afresh on every call: callers may keep or change it."""
        if not 1 <= index <= len(self._terms):
            raise IndexError(f"no entry {index}: the log holds 1..{len(self._terms)}")
        self._check_open()
        offset, length = self._offsets[index - 1], self._lengths[index - 1]
        data = self._pread(length, offset)
        return self._decode(data, 0, offset)

    def entries(self, from_index: int, to_index: int | None = None, *,
                max_bytes: int | None = None) -> list[LoggedEntry]:
        """Entries `from_index` through `to_index` inclusive (to_index None or past the end:
        through last_index), in order; empty if `from_index > last_index`. With `max_bytes`,
        stop before the records' total size would exceed it, but always return at least one
        entry when any is in range (so a replication batch can respect a frame limit).
        IndexError if `from_index < 1`. One read for the whole range."""
        if from_index < 1:
            raise IndexError(f"no entry {from_index}: entries start at 1")
        self._check_open()
        last = len(self._terms) if to_index is None else min(to_index, len(self._terms))
        if from_index > last:
            return []
        lo, hi = from_index - 1, last - 1
        lengths = self._lengths
        if max_bytes is not None:
            total = lengths[lo]
            stop = lo
            while stop < hi and total + lengths[stop + 1] <= max_bytes:
                stop += 1
                total += lengths[stop]
            hi = stop
        start = self._offsets[lo]
        data = self._pread(self._offsets[hi] + lengths[hi] - start, start)
        offsets = self._offsets
        return [self._decode(data, offsets[i] - start, offsets[i]) for i in range(lo, hi + 1)]

    def _pread(self, length: int, offset: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise WalError(f"short read of {length} bytes at offset {offset}: "
                           f"the log file was changed under the node")
        return data

    def _decode(self, data: bytes, at: int, offset: int) -> LoggedEntry:
        kind, length, crc = _HEADER.unpack_from(data, at)
        body = memoryview(data)[at + HEADER_SIZE:at + HEADER_SIZE + length]
        if kind != KIND_ENTRY or zlib.crc32(body, zlib.crc32(data[at:at + 5])) != crc:
            raise WalError(f"entry record at offset {offset} is corrupt on disk")
        index, term = _U64X2.unpack_from(body)
        return LoggedEntry(index, term, orjson.loads(body[_U64X2.size:]))

    # -- writing -----------------------------------------------------------------------------

    def set_hard_state(self, term: int, vote: str | None) -> None:
        """Record the current term and vote. Durable after the next `sync()`, which the runtime
        must await before acting on them (voting, campaigning, sending in the new term).
        ValueError if `term` is lower than the current term or `vote` is not a str or None.
        Writing the same hard state again is a no-op."""
        self._check_writable()
        _check_u64("term", term, 0)
        if term < self._term:
            raise ValueError(f"term must not decrease: {term} < current term {self._term}")
        if vote is not None and not isinstance(vote, str):
            raise ValueError(f"vote must be a node id (str) or None, got {vote!r}")
        if term == self._term and vote == self._vote:
            return

        def update() -> None:
            self._term, self._vote = term, vote

        self._write(_record(KIND_STATE, _U64.pack(term) + orjson.dumps(vote)), update)
        if not self._group_commit:
            self.sync()

    def append(self, entries: Iterable[LoggedEntry | tuple[int, int, Any]]) -> int:
        """Append entries (each `Entry` or an (index, term, command) tuple) and return the new
        last_index. The first must have index last_index + 1 and the rest follow on: a gap or
        overlap raises ValueError (a follower removes a conflicting suffix with `truncate_from`
        first). Terms must be ints >= 1; commands JSON values (TypeError otherwise). Nothing is
        written unless every entry is valid. Written to the OS at once, durable after `sync()`."""
        self._check_writable()
        expected = len(self._terms) + 1
        records = []
        new_terms = array("Q")
        new_lengths = array("Q")
        for item in entries:
            index, term, command = item
            if type(index) is not int or index != expected:
                raise ValueError(f"entries must continue from index {expected}, got {index!r}")
            _check_u64(f"term of entry {index}", term, 1)
            try:
                payload = orjson.dumps(command)
            except orjson.JSONEncodeError as e:
                raise TypeError(f"command of entry {index} is not a JSON value: {e}") from None
            record = _record(KIND_ENTRY, _U64X2.pack(index, term) + payload)
            records.append(record)
            new_terms.append(term)
            new_lengths.append(len(record))
            expected += 1
        if not records:
            return len(self._terms)
        start = self._end
        offset = start
        new_offsets = array("Q")
        for length in new_lengths:
            new_offsets.append(offset)
            offset += length

        def extend() -> None:
            self._offsets.extend(new_offsets)
            self._lengths.extend(new_lengths)
            self._terms.extend(new_terms)

        self._write(b"".join(records), extend)
        if not self._group_commit:
            self.sync()
        return len(self._terms)

    def truncate_from(self, index: int) -> int:
        """Remove entry `index` and every entry after it (a follower cutting a suffix that
        conflicts with its leader) and return the new last_index. 1 <= index <= last_index + 1
        (last_index + 1 removes nothing), else ValueError. Crash-safe: recovery sees the log
        before or after the truncation, never a mix; durable after `sync()`, and until then
        `synced_index` stays below `index`."""
        self._check_writable()
        last = len(self._terms)
        if type(index) is not int or not 1 <= index <= last + 1:
            raise ValueError(f"cannot truncate from {index!r}: the log holds 1..{last}")
        if index == last + 1:
            return last
        cut = index - 1

        def drop() -> None:
            del self._offsets[cut:], self._lengths[cut:], self._terms[cut:]
            self._synced_index = min(self._synced_index, cut)
            self._trunc_floor = min(self._trunc_floor, cut)

        self._write(_record(KIND_TRUNCATE, _U64.pack(index)), drop)
        if not self._group_commit:
            self.sync()
        return cut

    def _write(self, data: bytes, update: Any) -> None:
        """Write `data` at the end of the file, then apply `update()` (the in-memory side) and
        move the end, under the lock that `sync()` snapshots with."""
        start = self._end
        try:
            _write_all(self._fd, data, start)
        except BaseException as e:
            # Leave no partial record behind; if even that fails, the log must not be trusted.
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                self._failed = e
            raise
        with self._lock:
            update()
            self._end = start + len(data)

    def sync(self) -> int:
        """Make everything written before this call durable and return `synced_index`, the
        highest index now durable. With fsync: os.fsync of the log file (the directory was
        synced when the file was created), then the power-loss marker is advanced. With
        fsync=False: no fsync and no marker, yet the index is reported synced (the planted
        bug). Cheap when nothing was written. Raises WalError if fsync fails: the node must then
        stop and recover from the file, since the kernel may have dropped the unsynced pages."""
        self._check_writable()
        with self._sync_lock:
            with self._lock:
                end = self._end
                index = len(self._terms)
                self._trunc_floor = index
                if end == self._synced_end:
                    self._synced_index = index
                    return index
            if self._fsync:
                try:
                    os.fsync(self._fd)
                except OSError as e:
                    self._failed = e
                    raise WalError(f"fsync of the log failed: {e}") from e
                self._write_marker(end)
            with self._lock:
                self._synced_end = max(self._synced_end, end)
                self._synced_index = max(self._synced_index, min(index, self._trunc_floor))
                return self._synced_index

    def _write_marker(self, durable_end: int) -> None:
        self._marker_seq += 1
        body = _MARK.pack(_MARK_MAGIC, self._marker_seq, self._log_id, durable_end)
        slot = body + _MARK_CRC.pack(zlib.crc32(body))
        _write_all(self._marker_fd, slot, (self._marker_seq % 2) * _MARK_SLOT)

    def close(self) -> None:
        """Release the files and the lock. Does not sync: a clean shutdown calls `sync()`
        first; closing without it is exactly a process crash (the OS keeps the writes)."""
        if self._closed:
            return
        self._closed = True
        os.close(self._marker_fd)
        os.close(self._fd)
        os.close(self._lock_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise WalError("the log is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._failed is not None:
            raise WalError(f"the log is unusable after a failed write or fsync: {self._failed}")


def power_loss(directory: str | os.PathLike) -> PowerLossCut:
    """Simulate a power loss on a dead node's data directory: cut ``wal.log`` back to the length
    the node last recorded as durable in ``wal.synced`` (never below the file header; with no
    valid marker for this log, to the header alone), and fsync it. Idempotent.

    Call it only after the node's process has died (SIGKILL): WalError if the log is still open
    in a live process, or if ``wal.log`` has no valid header. A missing ``wal.log`` is left
    alone (nothing to lose)."""
    directory = os.fspath(directory)
    path = os.path.join(directory, LOG_NAME)
    if not os.path.exists(path):
        return PowerLossCut(0, 0, 0)
    lock_fd = _lock(directory)
    try:
        fd = os.open(path, os.O_RDWR)
    except BaseException:
        os.close(lock_fd)
        raise
    try:
        size = os.fstat(fd).st_size
        scan_header = os.pread(fd, FILE_HEADER_SIZE, 0)
        if len(scan_header) < FILE_HEADER_SIZE:
            raise WalError(f"{path}: not a write-ahead log: shorter than the file header")
        _, marker_length = _read_marker(directory, _scan(scan_header).log_id)
        keep = FILE_HEADER_SIZE if marker_length is None else max(FILE_HEADER_SIZE, marker_length)
        if size > keep:
            os.ftruncate(fd, keep)
            os.fsync(fd)
        return PowerLossCut(size, min(keep, size), max(0, size - keep))
    finally:
        os.close(fd)
        os.close(lock_fd)
