"""Linearizability checking speed and memory on generated histories, against Porcupine's figures.

Each row generates a history from a simulated linearizable register store (checkers.synthetic),
writes it as JSON Lines, then checks it in a fresh process (so that peak memory is the check's
own): read the file, check it, report the verdict, seconds and peak resident memory.

    .venv/bin/python bench/checkers_bench.py            # every row
    .venv/bin/python bench/checkers_bench.py --quick    # the rows under 100k operations

The Porcupine column is what Porcupine v1.3.0 (Go) gave on such histories on this machine
(2 cores), as recorded in the issue that set the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checkers.synthetic import Shape, generate  # noqa: E402
from peak_memory import own_peak_kib  # noqa: E402  (bench/, the script's own folder)

MEMORY_TARGET_MIB = 2048
CAS_MEMORY_TARGET_MIB = 1536

# (label, shape, expected verdict, Porcupine's figure, target seconds, target peak MiB)
ROWS = [
    # Register histories as the register workload makes them: a tenth of the ops are cas
    # (expecting the value last written to the key), written values unique.
    ("2k ops, 20 clients, 1 key, 10% cas",
     Shape(clients=20, keys=1, ops=2_000, cas_share=0.1), True, "31 s", 1,
     MEMORY_TARGET_MIB),
    ("100k ops, 10 clients, 1 key, 10% cas",
     Shape(clients=10, keys=1, ops=100_000, cas_share=0.1), True, "out of memory", 5,
     MEMORY_TARGET_MIB),
    ("10k ops, 20 clients, 10 keys, 10% cas, 5% info, one stale read",
     Shape(clients=20, keys=10, ops=10_000, cas_share=0.1, info_share=0.05, stale_read=True),
     False, "unknown after 120 s", 5, MEMORY_TARGET_MIB),
    ("1M ops, 20 clients, 10 keys, 10% cas",
     Shape(clients=20, keys=10, ops=1_000_000, cas_share=0.1), True, "7 s, 17.7 GiB", 15,
     CAS_MEMORY_TARGET_MIB),
    ("1M ops, 20 clients, 10 keys, 10% cas, 5% info",
     Shape(clients=20, keys=10, ops=1_000_000, cas_share=0.1, info_share=0.05), True, "-", 15,
     CAS_MEMORY_TARGET_MIB),
    # Without cas (the zone method).
    ("1M ops, 20 clients, 10 keys, unique values",
     Shape(clients=20, keys=10, ops=1_000_000), True, "6.9 s, 17.7 GiB", 30,
     MEMORY_TARGET_MIB),
    ("1M ops, 20 clients, 10 keys, 5% info",
     Shape(clients=20, keys=10, ops=1_000_000, info_share=0.05), True,
     "out of memory (> 18 GiB)", 30, MEMORY_TARGET_MIB),
    ("100k ops, 10 clients, 1 key",
     Shape(clients=10, keys=1, ops=100_000), True, "out of memory", 5, MEMORY_TARGET_MIB),
    ("2k ops, 20 clients, 1 key",
     Shape(clients=20, keys=1, ops=2_000), True, "22.8 s", 5, MEMORY_TARGET_MIB),
    ("1k ops, 50 clients, 1 key",
     Shape(clients=50, keys=1, ops=1_000), True, "unknown after 120 s", 5, MEMORY_TARGET_MIB),
    ("10k ops, 20 clients, 10 keys, 5% info, one stale read",
     Shape(clients=20, keys=10, ops=10_000, info_share=0.05, stale_read=True), False,
     "unknown after 120 s", 5, MEMORY_TARGET_MIB),
    # Values drawn from 5 (Jepsen's cas-register): no fast path but versions.
    ("100k ops, 20 clients, 10 keys, small values (general search)",
     Shape(clients=20, keys=10, ops=100_000, unique_values=False), True, "0.16 s", 0.8,
     MEMORY_TARGET_MIB),
    ("100k ops, 20 clients, 10 keys, small values, versions reported",
     Shape(clients=20, keys=10, ops=100_000, unique_values=False, versions=True), True,
     "-", 5, MEMORY_TARGET_MIB),
]


def child(path: str) -> None:
    """Read and check one history; print one JSON line of figures."""
    from checkers.formats import load_history
    from checkers.linearizability import Budget, check_linearizable
    from checkers.models import make_model

    started = time.perf_counter()
    history = load_history(path)
    loaded = time.perf_counter()
    result = check_linearizable(history, make_model("kv"), budget=Budget(seconds=300))
    checked = time.perf_counter()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child started by a big
    # parent would report the parent's size. Workers are forked, and measured by RUSAGE_CHILDREN.
    peak_kib = max(own_peak_kib(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"valid": result.valid, "read_s": loaded - started,
                      "check_s": checked - loaded, "peak_mib": peak_kib / 1024,
                      "methods": result.figures.get("methods"),
                      "workers": result.figures.get("workers")}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only rows under 100k ops")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated histories")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    print(f"seed {args.seed}; {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    header = (f"{'history':<66} {'expect':>6} {'found':>7} {'read':>7} {'check':>7} "
              f"{'peak':>9}  {'method':<16} {'target':>8}  porcupine")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for label, shape, expected, porcupine, target, memory_target in ROWS:
            if args.quick and shape.ops >= 100_000:
                continue
            path = Path(tmp) / "history.jsonl"
            from checkers.jsonl import write_jsonl
            write_jsonl(generate(shape, args.seed), path)
            out = subprocess.run([sys.executable, __file__, "--child", str(path)],
                                 capture_output=True, text=True, check=True)
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            met = (figures["valid"] == expected and figures["check_s"] <= target
                   and figures["peak_mib"] <= memory_target)
            methods = ",".join(f"{m}:{n}" for m, n in (figures["methods"] or {}).items())
            print(f"{label:<66} {str(expected):>6} {str(figures['valid']):>7} "
                  f"{figures['read_s']:>6.2f}s {figures['check_s']:>6.2f}s "
                  f"{figures['peak_mib']:>6.0f} MiB  {methods:<16} "
                  f"{'<' + format(target, 'g') + ' s':>8} {'met' if met else 'MISSED':>6}  "
                  f"{porcupine}", flush=True)
    print("\nread: loading the JSON Lines file; check: pairing, splitting by key and deciding; "
          "peak: resident memory of the checking process (or its largest worker).")
    print("Histories without a stated value kind have unique written values; 'small values' "
          "draws from 5.")


if __name__ == "__main__":
    main()
