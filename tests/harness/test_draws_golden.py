"""Golden transcript of what a seed draws: the fault schedule and the clients' operations of
eleven configurations across refnode, etcd, Redis and PostgreSQL, compared line by line with
golden/draws.jsonl. A change that moves a single draw changes what every stored seed replays
as; when that is meant, regenerate the file and review the diff:

    FAULTLINE_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/harness/test_draws_golden.py

(as root: four of the configurations run only on the namespace network).

The operations are drawn as the run's clients draw them (one generator per client, seeded by
the run's seed and the client's number, one stagger draw before each operation), without a
cluster.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import orjson
import pytest

from harness.networks.base import NetworkUnavailable
from harness.networks.netns import NamespaceNetwork
from harness.run.runner import plan_schedule
from harness.run.spec import build
from harness.workloads import make_workload

GOLDEN = Path(__file__).parent / "golden" / "draws.jsonl"
OPS_PER_CLIENT = 20
CONFIGS = [
    dict(seed=1, system="refnode"),
    dict(seed=2, system="refnode", workload="set", nemesis=["kill", "pause"]),
    dict(seed=3, system="refnode", workload="session", nemesis=["clock", "partition"],
         system_options={"replication": "quorum"}),
    dict(seed=4, system="refnode", nemesis=["partition", "latency", "kill", "pause", "clock"],
         system_options={"replication": "async"}),
    dict(seed=5, system="refnode",
         nemesis=["kill", "power-loss", "bitflip", "truncate", "election-crash"]),
    dict(seed=6, system="etcd", nemesis=["partition", "kill", "pause"]),
    dict(seed=7, system="etcd", workload="set", network="netns"),
    dict(seed=8, system="redis", nemesis=["partition", "pause", "kill"]),
    dict(seed=9, system="postgres", workload="list-append", network="netns",
         nemesis=["partition", "kill", "pause", "failover"]),
    dict(seed=10, system="postgres", network="netns", nemesis=["failover"]),
    # The timings a user's refnode runs with (the suite's are faster, tests/conftest.py): the
    # schedule holds faults past the failure detection they set.
    dict(seed=11, system="refnode", nemesis=["partition", "kill", "pause"],
         system_options={"election_timeout_min": 1.0, "election_timeout_max": 2.0,
                         "heartbeat_interval": 0.1}),
]


def draws(config: dict) -> list[dict]:
    """The lines of one configuration: its schedule's steps, then each client's operations,
    then the final reads."""
    spec = build(dict(config, time_limit=60), f"config {config['seed']}")
    lines = [{"seed": spec.seed, "step": step} for step in plan_schedule(spec)]
    workload = make_workload(spec.workload, spec.keys, mix=spec.mix,
                             ops_per_key=spec.ops_per_key, **spec.workload_options())
    _, mix = spec.phase_at(0.0)
    for client in range(spec.concurrency):
        rng = random.Random(f"{spec.seed}/client/{client}")
        rng.uniform(0, 1)                           # the client's first start
        for _ in range(OPS_PER_CLIENT):
            rng.uniform(0.5, 1.5)                   # its stagger before each operation
            op = workload.next_op(rng, mix)
            lines.append({"seed": spec.seed, "client": client, "f": op.f, "key": op.key,
                          "value": op.value})
    lines += [{"seed": spec.seed, "final": op.f, "key": op.key, "value": op.value}
              for op in workload.final_ops()]
    return lines


def _lines(config: dict) -> list[str]:
    return [orjson.dumps(line, option=orjson.OPT_SORT_KEYS).decode() for line in draws(config)]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"seed{c['seed']}-{c['system']}")
def test_every_seed_draws_what_it_drew_before(config):
    if config["system"] != "refnode":         # etcd, Redis and PostgreSQL run on netns only
        try:
            NamespaceNetwork.check_usable()
        except NetworkUnavailable as exc:
            pytest.skip(f"seed {config['seed']} runs on the namespace network: {exc}")
    want = [line for line in GOLDEN.read_text().splitlines()
            if json.loads(line)["seed"] == config["seed"]]
    got = _lines(config)
    for number, (line, expected) in enumerate(zip(got, want), 1):
        assert line == expected, f"seed {config['seed']}: line {number} of its draws differs"
    assert len(got) == len(want)


def test_the_golden_file_covers_every_configuration():
    if os.environ.get("FAULTLINE_REGENERATE_GOLDEN"):
        GOLDEN.write_text("".join(line + "\n" for config in CONFIGS for line in _lines(config)))
    seeds = [json.loads(line)["seed"] for line in GOLDEN.read_text().splitlines()]
    assert sorted(set(seeds)) == sorted(c["seed"] for c in CONFIGS)
    assert seeds == sorted(seeds)
