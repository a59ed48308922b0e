"""List-append checking speed and memory on generated transaction histories (issue 16).

Each row generates a history from the simulated strict-serializable store of
checkers.list_append.synthetic (20 clients, transactions of 1 to 4 reads and appends, 5% fail,
5% end info or never complete), writes it as JSON Lines, then reads and checks it in a fresh
process against all five models, so that peak memory is the check's own. The issue's target:
100k transactions in under 10 s and 1.5 GiB, cost growing about linearly.

    .venv/bin/python bench/list_append_bench.py            # every row
    .venv/bin/python bench/list_append_bench.py --quick    # the rows under 100k transactions

"100 keys" means 100 keys in use at once, each retired after 64 appends for a fresh one, as
Jepsen's list-append generator does (:max-writes-per-key): with 100 keys for the whole run a
read would return ~600 elements on average at 100k transactions, and the history itself would
hold ~80 million list elements (several GiB as Python objects) before any checking. The
"fixed keys" rows show what long reads cost, at sizes where the history still fits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checkers.list_append.synthetic import Shape, generate  # noqa: E402
from peak_memory import own_peak_kib  # noqa: E402  (bench/, the script's own folder)

TARGET_SECONDS = 10.0          # for 100k transactions; scaled by size for smaller rows
TARGET_MIB = 1536
MODELS = ("strict-serializable", "serializable", "snapshot-isolation", "repeatable-read",
          "read-committed")


def shape(txns: int, **overrides) -> Shape:
    base = dict(clients=20, txns=txns, keys=100, max_mops=4, fail_share=0.05,
                info_share=0.05, max_appends_per_key=64)
    base.update(overrides)
    return Shape(**base)


# (label, shape, expected verdict)
ROWS = [
    ("10k txns, 100 keys (rotated at 64 appends)", shape(10_000), True),
    ("30k txns, 100 keys (rotated at 64 appends)", shape(30_000), True),
    ("100k txns, 100 keys (rotated at 64 appends)", shape(100_000), True),
    ("10k txns, 100 fixed keys", shape(10_000, max_appends_per_key=None), True),
    ("30k txns, 100 fixed keys", shape(30_000, max_appends_per_key=None), True),
    ("30k txns, 100 keys, no isolation (broken store)", shape(30_000, atomic=False), False),
    ("100k txns, 100 keys, no isolation (broken store)", shape(100_000, atomic=False), False),
]


def child(path: str) -> None:
    """Read and check one history; print one JSON line of figures."""
    from checkers.formats import load_history
    from checkers.list_append import check_list_append

    started = time.perf_counter()
    history = load_history(path)
    loaded = time.perf_counter()
    result = check_list_append(history, MODELS)
    checked = time.perf_counter()
    reads = sum(len(m[2]) for op in history if op.type == "ok"
                for m in op.value if m[0] == "r" and m[2])
    print(json.dumps({"valid": result.valid, "read_s": loaded - started,
                      "check_s": checked - loaded, "peak_mib": own_peak_kib() / 1024,
                      "events": len(history), "read_elements": reads,
                      "anomalies": sum(result.figures.get("anomalies", {}).values())}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only rows under 100k txns")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated histories")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    print(f"seed {args.seed}; {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
          f"models: all five")
    header = (f"{'history':<50} {'events':>8} {'read elts':>10} {'expect':>6} {'found':>6} "
              f"{'read':>7} {'check':>7} {'us/txn':>7} {'peak':>9} {'target':>7}")
    print(header)
    print("-" * len(header))
    per_txn: dict[str, list[tuple[int, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, row_shape, expected in ROWS:
            if args.quick and row_shape.txns >= 100_000:
                continue
            path = Path(tmp) / "history.jsonl"
            from checkers.jsonl import write_jsonl
            write_jsonl(generate(row_shape, args.seed), path)
            out = subprocess.run([sys.executable, __file__, "--child", str(path)],
                                 capture_output=True, text=True, check=True)
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            micros = figures["check_s"] / row_shape.txns * 1e6
            family = label.split(", ", 1)[1]
            per_txn.setdefault(family, []).append((row_shape.txns, micros))
            target = TARGET_SECONDS * row_shape.txns / 100_000
            met = (figures["valid"] == expected and figures["check_s"] <= target
                   and figures["peak_mib"] <= TARGET_MIB)
            print(f"{label:<50} {figures['events']:>8,} {figures['read_elements']:>10,} "
                  f"{str(expected):>6} {str(figures['valid']):>6} "
                  f"{figures['read_s']:>6.2f}s {figures['check_s']:>6.2f}s {micros:>7.1f} "
                  f"{figures['peak_mib']:>5.0f} MiB {'met' if met else 'MISSED':>7}",
                  flush=True)
    print("\nread: loading the JSON Lines file; check: pairing, version orders, anomalies, "
          "edges and cycle search for all five models; us/txn: check time per transaction; "
          "peak: resident memory of the checking process (history included); target: "
          f"{TARGET_SECONDS:g} s per 100k transactions (scaled) and {TARGET_MIB} MiB.")
    for family, points in per_txn.items():
        # Linear growth keeps the time per transaction flat: show how it moves step by step.
        steps = ", ".join(f"{n0 // 1000}k->{n1 // 1000}k: x{t1 / t0:.2f}"
                          for (n0, t0), (n1, t1) in zip(points, points[1:]))
        if steps:
            print(f"check time per transaction, {family}: {steps} (x1.00 is linear)")


if __name__ == "__main__":
    main()
