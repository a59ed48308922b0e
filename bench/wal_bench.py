"""Write-ahead log throughput: how the fsync policy bounds the rate of durable entries.

Each row appends small client-write commands one `append` call at a time (as the runtime does,
one per request) and calls `sync()` every N appends, then reports durable entries per second.
Rows: fsync after every append, group commit of 10 and of 100, the `no-fsync` planted bug (sync
after every append, but no fsync), one bulk append of 10,000 entries and one sync, and the time
to recover (open) a log of 100,000 entries.

    .venv/bin/python bench/wal_bench.py                 # in a temporary directory
    .venv/bin/python bench/wal_bench.py --dir /data/x   # on the disk the nodes will use

fsync cost depends on the disk and the file system far more than on this code: run it where the
data directories live.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refnode.wal import WriteAheadLog  # noqa: E402


def command(i: int) -> dict:
    return {"op": "write", "key": f"key-{i % 64}", "value": i, "client": 7, "id": i}


def run_policy(directory: Path, entries: int, batch: int, fsync: bool) -> float:
    """Entries per second with one sync per `batch` single-entry appends."""
    with WriteAheadLog.open(directory, fsync=fsync) as wal:
        wal.set_hard_state(1, "n1")
        wal.sync()
        start = time.perf_counter()
        for i in range(1, entries + 1):
            wal.append([(i, 1, command(i))])
            if i % batch == 0:
                wal.sync()
        wal.sync()
        elapsed = time.perf_counter() - start
    return entries / elapsed


def run_bulk(directory: Path, entries: int) -> float:
    """Seconds for one append of `entries` entries and one sync."""
    with WriteAheadLog.open(directory) as wal:
        start = time.perf_counter()
        wal.append((i, 1, command(i)) for i in range(1, entries + 1))
        wal.sync()
        return time.perf_counter() - start


def run_recovery(directory: Path, entries: int) -> tuple[float, float]:
    """(seconds to open a log of `entries` entries, seconds to read them all back)."""
    with WriteAheadLog.open(directory) as wal:
        wal.append((i, 1 + i // 1000, command(i)) for i in range(1, entries + 1))
        wal.sync()
    start = time.perf_counter()
    wal = WriteAheadLog.open(directory)
    opened = time.perf_counter() - start
    assert wal.last_index == entries
    start = time.perf_counter()
    for lo in range(1, entries + 1, 1000):
        wal.entries(lo, lo + 999)
    read = time.perf_counter() - start
    wal.close()
    return opened, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="parent directory for the logs "
                        "(default: a temporary directory)")
    parser.add_argument("--entries", type=int, default=5000,
                        help="entries per policy row (default 5000)")
    args = parser.parse_args()
    parent = Path(tempfile.mkdtemp(prefix="wal-bench-", dir=args.dir))
    try:
        print(f"write-ahead log benchmark in {parent}, {args.entries} entries per row")
        print(f"{'policy':<40} {'entries/s':>12}")
        rows = [("fsync every append", 1, True),
                ("group commit, 10 appends per sync", 10, True),
                ("group commit, 100 appends per sync", 100, True),
                ("no fsync (planted bug), sync per append", 1, False)]
        for n, (label, batch, fsync) in enumerate(rows):
            rate = run_policy(parent / f"policy{n}", args.entries, batch, fsync)
            print(f"{label:<40} {rate:>12,.0f}")
        seconds = run_bulk(parent / "bulk", 10_000)
        print(f"{'10,000 entries, one append + one sync':<40} {10_000 / seconds:>12,.0f}"
              f"   ({seconds * 1e3:.1f} ms)")
        opened, read = run_recovery(parent / "recovery", 100_000)
        print(f"recovery: open a log of 100,000 entries in {opened * 1e3:.0f} ms, "
              f"read them all back in {read * 1e3:.0f} ms")
    finally:
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
