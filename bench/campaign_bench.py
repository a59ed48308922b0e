"""What running a campaign's runs at once pays on this machine.

The same campaign (refnode under partitions and kills: safe rows that must stay valid and
planted-bug rows that must be caught, with the realistic timings users get) is run with 1, 2
and 3 runs at once. Printed per setting: the wall time, the speed-up over one at a time, the
median and slowest run, how many rows met their target, and the median time to the first
violation of the bug rows (runs at once slow each other down; a bug caught later, or missed,
is the price). Every row is printed, met or not.

    .venv/bin/python bench/campaign_bench.py [--jobs 1,2,3] [--seeds 4] [--time-limit 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CAMPAIGN = """
[campaign]
name = "bench"
seeds = {seeds}
[defaults]
time_limit = {time_limit}
[[row]]
label = "quorum-register"
nemesis = ["partition", "kill"]
expect = "valid"
[[row]]
label = "quorum-set"
workload = "set"
nemesis = ["partition", "pause"]
expect = "valid"
[[row]]
label = "stale-leader-read"
system = {{name = "refnode", bug = "stale-leader-read"}}
nemesis = ["partition"]
expect = "invalid"
needed = 1
[[row]]
label = "early-ack"
system = {{name = "refnode", bug = "early-ack"}}
workload = "set"
nemesis = ["partition", "kill"]
expect = "invalid"
needed = 1
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="1,2,3", help="settings to compare (default 1,2,3)")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per row (default 4)")
    parser.add_argument("--time-limit", type=float, default=30.0,
                        help="seconds per run (default 30)")
    args = parser.parse_args()
    settings = [int(j) for j in args.jobs.split(",")]
    root = Path(tempfile.mkdtemp(prefix="faultline-campaign-bench-"))
    path = root / "bench.toml"
    path.write_text(CAMPAIGN.format(seeds=args.seeds, time_limit=args.time_limit))
    print(f"campaign: 4 rows x {args.seeds} seeds of {args.time_limit:g} s; runs in {root}")
    print(f"{'jobs':>4} {'wall s':>8} {'speed-up':>8} {'run p50 s':>9} {'run max s':>9} "
          f"{'rows met':>8} {'bug first violation p50 s':>26}")
    base = None
    for jobs in settings:
        runs_dir = root / f"jobs-{jobs}"
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "harness", "campaign", str(path),
                               "--jobs", str(jobs), "--runs-dir", str(runs_dir), "--json"],
                              capture_output=True, text=True)
        wall = time.monotonic() - started
        if done.returncode not in (0, 1):
            print(f"{jobs:>4} could not run: {done.stderr.strip().splitlines()[-1:]}")
            continue
        rows = json.loads(done.stdout)
        runs = [run for row in rows for run in row["runs"]]
        elapsed = [run["elapsed"] for run in runs if run.get("elapsed")]
        firsts = [run["first_violation_seconds"] for row in rows if row["expect"] == "invalid"
                  for run in row["runs"] if run.get("first_violation_seconds") is not None]
        base = base or wall
        met = sum(1 for row in rows if row["status"] == "met")
        print(f"{jobs:>4} {wall:8.1f} {base / wall:8.2f} {statistics.median(elapsed):9.1f} "
              f"{max(elapsed):9.1f} {met:>5}/{len(rows):<2} "
              f"{statistics.median(firsts) if firsts else float('nan'):26.1f}")
        for row in rows:
            print(f"       {row['label']:<20} {row['shown']}/{row['seeds']} {row['expect']:<8} "
                  f"{row['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
