"""`faultline run` end to end: a short real campaign, its run directory, replay, bad usage;
and the fault schedule as pure data."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from checkers.formats import load_history
from harness.faults import schedule as nemesis
from harness.networks.netns import may_make_namespaces
from harness.processes.leftovers import STATE_DIR_ENV, reap_stale
from harness.run.runner import run_test
from harness.run.spec import SpecError, TestSpec, from_toml
from harness.workloads import make_workload

REPO = Path(__file__).resolve().parents[2]
NEEDS_ROOT = pytest.mark.skipif(not may_make_namespaces(), reason=(
    "the namespace network needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"))
BACKENDS = ["proxy", pytest.param("netns", marks=NEEDS_ROOT)]


def faultline(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_the_schedule_is_data_determined_by_the_seed():
    nodes = ["n1", "n2", "n3"]
    first = nemesis.plan(("partition", "kill", "pause", "clock"), nodes, 60, 5, seed=11)
    assert first == nemesis.plan(("partition", "kill", "pause", "clock"), nodes, 60, 5, 11)
    assert first != nemesis.plan(("partition", "kill", "pause", "clock"), nodes, 60, 5, 12)
    assert all(step["at"] < 60 for step in first)
    starts = [s for s in first if "of" not in s["value"]]
    stops = [s for s in first if "of" in s["value"]]
    # Four kinds, each on its own cycle of about 5 s over 60 s, less the lone faults that
    # the combinations (which run alone) displace.
    assert len(starts) == len(stops) and 20 <= len(starts) <= 50
    for kind in ("partition", "kill", "pause", "clock"):
        assert 3 <= sum(s["fault"] == kind for s in starts) <= 14
    assert any(s.get("combination") for s in starts)
    assert nemesis.plan((), nodes, 60, 5, 11) == []


def test_overlapping_faults_run_at_once():
    steps = nemesis.plan(("clock", "partition"), ["n1", "n2", "n3"], 20, 4, seed=1,
                         options={"overlap": True, "shapes": ["isolate-leader"],
                                  "clock_rates": [0.6], "targets": ["leader"]})
    active, most = set(), 0
    for step in steps:
        if "of" in step["value"]:
            active.discard(step["value"]["of"])
        else:
            active.add(step["f"])
        most = max(most, len(active))
    assert most == 2
    assert {s["value"].get("shape") for s in steps if s["f"] == "start-partition"} == {
        "isolate-leader"}


def test_a_short_campaign_with_faults_is_valid_and_stored(tmp_path):
    spec = TestSpec(time_limit=6.0, nemesis=("partition", "kill"), nemesis_interval=2.0,
                    seed=3, runs_dir=str(tmp_path / "runs"), rate=150.0)
    result = run_test(spec)
    assert result.valid is True, json.dumps(result.results)[:2000]
    assert result.liveness["recovered"] is True
    run_dir = result.run_dir
    assert run_dir.parent.name == "refnode-register" and run_dir.name.endswith("-s3")
    assert (tmp_path / "runs" / "latest").resolve() == run_dir.resolve()
    for name in ("test.json", "history.jsonl", "results.json", "proxy.log", "nodes/n1.log"):
        assert (run_dir / name).exists(), name
    test = json.loads((run_dir / "test.json").read_text())
    assert test["test"]["seed"] == 3 and test["test"]["schedule"]
    history = load_history(run_dir / "history.jsonl")
    faults = [op for op in history if op.process == "nemesis"]
    assert {op.f for op in faults} & {"start-partition", "kill"}
    assert sum(1 for op in history if op.type == "ok") > 100
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True and "linearizable" in results["checkers"]
    assert results["checkers"]["election-safety"]["valid"] is True
    assert (run_dir / "observations.jsonl").stat().st_size > 0

    assert results["faults"]["partition"]["applied"] + results["faults"]["kill"]["applied"] >= 2

    # The stored run re-checks to the same verdict, and keeps what only the run knew.
    check = faultline("check", str(run_dir), "--json")
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["valid"] is True
    rechecked = json.loads((run_dir / "results.json").read_text())
    for key in ("liveness", "seed", "faults"):
        assert rechecked[key] == results[key], key
    # A run whose cluster never recovered stays a liveness failure when re-checked.
    rechecked["liveness"] = {"recovered": False, "reason": "no write accepted"}
    (run_dir / "results.json").write_text(json.dumps(rechecked))
    assert faultline("check", str(run_dir)).returncode == 4


@pytest.mark.parametrize("args, fragment", [
    (["--nodes", "0"], "--nodes"),
    (["--nemesis", "meteor"], "--nemesis"),
    (["--bug", "nope"], "--bug"),
    (["--replication", "eventual"], "--replication"),
    (["--time-limit", "-3"], "--time-limit"),
    (["--config", "no/such.toml"], "no/such.toml"),
    (["--mix", "read:0.5"], "--mix"),
    (["--mix", "add=1"], "no operation 'add'"),
    (["--mix", "read=1", "--cas-share", "0.2"], "not both"),
    (["--system", "etcd9"], "unknown system 'etcd9'; systems: "),
    (["--system-opt", "colour=blue"], "unknown option 'colour'"),
    (["--system-opt", "election_timeout_min=soon"], "election_timeout_min must be a number"),
    (["--election-timeout-max", "0.1"], "must not be below election_timeout_min"),
    (["--nemesis-opt", "hold=3"], "hold is for the election-crash fault"),
    (["--nemesis-opt", "shapes=square"], "shapes must be one of"),
    (["--network", "carrier-pigeon"], "--network must be one of proxy, netns"),
    (["--network", "netns", "--nemesis", "latency"], "latency on the netns network needs"),
    (["--system", "etcd", "--network", "proxy"], "etcd runs on netns, not proxy"),
    (["--system", "etcd", "--workload", "session"], "etcd supports register, set, not session"),
    (["--value-size", "-1"], "--value-size must be an integer >= 0"),
    (["--workload", "set", "--value-size", "100"], "--value-size: the set workload"),
])
def test_bad_run_options_are_one_line_errors(args, fragment):
    proc = faultline("run", *args)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert fragment in proc.stderr.strip().splitlines()[-1]


def test_netns_without_privileges_names_the_proxy_network(tmp_path):
    """Without CAP_NET_ADMIN (root keeps CAP_SYS_ADMIN): where this user has it (root, CI),
    dropped with setpriv."""
    drop = []
    if may_make_namespaces():
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to drop CAP_NET_ADMIN for this test")
        drop = ["setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin"]
    env = dict(os.environ, **{STATE_DIR_ENV: str(tmp_path / "state")})
    proc = subprocess.run([*drop, sys.executable, "-m", "harness", "run", "--network",
                           "netns"], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env=env)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)" in last and "--network proxy" in last


def test_run_help_shows_every_option_with_its_default():
    proc = faultline("run", "--help")
    for option in ("--system", "--nodes", "--replication", "--read-mode", "--workload",
                   "--nemesis", "--time-limit", "--concurrency", "--rate", "--seed", "--bug",
                   "--runs-dir", "--config", "--network", "--system-opt", "--nemesis-opt",
                   "--election-timeout-min"):
        assert option in proc.stdout
    text = " ".join(proc.stdout.split())
    assert "(default: partition,kill)" in text
    # Every fault option is documented, with its type.
    for line in ("shapes str-list", "partition_mode str", "targets str-list",
                 "clock_offsets float-list", "overlap float", "hold float"):
        assert line in text, line


def test_toml_config_and_overrides(tmp_path):
    path = tmp_path / "test.toml"
    path.write_text('nodes = 5\nreplication = "sync"\nnemesis = "pause,kill"\n'
                    'time-limit = 12\n')
    spec = from_toml(path, {"nodes": 3})
    assert (spec.nodes, spec.system_options, spec.nemesis, spec.time_limit) == (
        3, {"replication": "sync"}, ("pause", "kill"), 12)
    path.write_text("colour = 'blue'\n")
    with pytest.raises(SpecError, match="colour"):
        from_toml(path)


def _start_run(tmp_path, network: str, state_dir: Path):
    """A `faultline run` in a process of its own, once its cluster is up: (process, runs
    directory)."""
    runs = tmp_path / "runs"
    env = dict(os.environ, **{STATE_DIR_ENV: str(state_dir)})
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--time-limit", "60",
                             "--runs-dir", str(runs), "--seed", "4", "--network", network],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        logs = list(runs.glob("*/*/nodes/n1.log"))
        if logs and "ready" in logs[0].read_text():
            return proc, runs
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the cluster never came up")


def _processes_of(runs: Path) -> list[str]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if str(runs) in cmdline:
            found.append(cmdline)
    return found


def _network_leftovers(pid: int) -> list[str]:
    """Namespaces and links named after a harness's pid (harness.networks.netns)."""
    from pyroute2 import IPRoute, netns

    found = [n for n in netns.listnetns() if n.startswith(f"faultline-{pid:x}-")]
    with IPRoute() as ipr:
        found += [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()
                  if link.get_attr("IFLA_IFNAME").startswith(f"fl{pid:x}-")]
    return found


@pytest.mark.parametrize("network", BACKENDS)
def test_ctrl_c_ends_the_run_and_everything_it_started(tmp_path, network):
    proc, runs = _start_run(tmp_path, network, tmp_path / "state")
    try:
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert "interrupted" in proc.stderr.read()
        deadline = time.monotonic() + 10
        while _processes_of(runs) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_of(runs) == []
        if network == "netns":
            assert _network_leftovers(proc.pid) == []
        assert not list((tmp_path / "state" / "live").glob("*.json"))
    finally:
        proc.kill()
        proc.wait()


@NEEDS_ROOT
def test_a_sigkilled_netns_run_is_reaped_at_the_next_start(tmp_path):
    """Nodes die with the harness (their guards' lifelines); the namespaces and links stay
    until the next harness starts, which removes them as it reaps stale processes."""
    state = tmp_path / "state"
    proc, runs = _start_run(tmp_path, "netns", state)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _processes_of(runs) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_of(runs) == []
        left = _network_leftovers(proc.pid)
        assert len(left) == 3 + 3 + 1, left          # namespaces, their links, the bridge
        (registry,) = (state / "live").glob("*.json")
        assert sorted(record[1] for record in json.loads(registry.read_text())["resources"]) == \
            sorted(left)
        reap_stale(state / "live")
        assert _network_leftovers(proc.pid) == []
        assert not registry.exists()
    finally:
        proc.kill()
        proc.wait()
        reap_stale(state / "live")      # a failed assertion above must not leak namespaces


def test_mixes_and_phases_shape_the_load():
    from random import Random

    from harness.workloads import make_workload

    workload = make_workload("register", 2, mix={"read": 1, "cas": 3})
    rng = Random(1)
    ops = [workload.next_op(rng).f for _ in range(4000)]
    assert set(ops) == {"read", "cas"} and 0.2 < ops.count("read") / len(ops) < 0.3
    assert {workload.next_op(rng, {"write": 1}).f for _ in range(50)} == {"write"}
    with pytest.raises(SpecError, match="add"):
        TestSpec(workload="set", mix={"write": 1}).validate()
    spec = TestSpec(rate=100.0, phases=[{"seconds": 2, "rate": 0},
                                        {"seconds": 3, "mix": {"read": 1}}]).validate()
    assert spec.time_limit == 5
    assert spec.phase_at(1.9) == (0, None)
    assert spec.phase_at(2.1) == (100.0, {"read": 1})
    assert spec.phase_at(9) == (100.0, {"read": 1})     # past the end: the last phase
    assert TestSpec(rate=50.0).validate().phase_at(9) == (50.0, None)


def test_a_run_follows_its_phases(tmp_path):
    """Writes only, then a quiet phase that issues nothing, then reads only."""
    spec = TestSpec(nemesis=(), seed=4, runs_dir=str(tmp_path / "runs"), rate=100.0,
                    phases=[{"seconds": 1.5, "mix": {"write": 1}}, {"seconds": 1.5, "rate": 0},
                            {"seconds": 1.5, "mix": {"read": 1}}])
    result = run_test(spec)
    assert result.valid is True
    history = [op for op in load_history(result.run_dir / "history.jsonl")
               if op.type == "invoke" and op.process != "nemesis" and op.process < 10 ** 6]
    seconds = [op.time / 1e9 for op in history]
    start = min(seconds)
    writes = [t - start for t, op in zip(seconds, history) if op.f == "write"]
    reads = [t - start for t, op in zip(seconds, history) if op.f == "read"]
    assert writes and reads and min(reads) - max(writes) > 1.0
    assert len(writes) > 50 and len(reads) > 50


def test_toml_phases_and_mix(tmp_path):
    path = tmp_path / "phased.toml"
    path.write_text('workload = "set"\nmix = {add = 0.5, read = 0.5}\n\n'
                    '[[phases]]\nseconds = 10\nrate = 50\n\n'
                    '[[phases]]\nseconds = 5\nmix = {read = 1}\n')
    spec = from_toml(path)
    assert spec.time_limit == 15 and spec.mix == {"add": 0.5, "read": 0.5}
    assert spec.phase_at(12) == (spec.rate, {"read": 1})
    path.write_text('[[phases]]\nseconds = 10\nspeed = 3\n')
    with pytest.raises(SpecError, match=r"phases\[1\]: unknown key speed"):
        from_toml(path)


def test_toml_system_table_merges_with_the_command_line(tmp_path):
    path = tmp_path / "etc.toml"
    path.write_text('[system]\nname = "refnode"\nreplication = "sync"\n'
                    'election-timeout-max = 1.0\n\n[nemesis_options]\nshapes = ["isolate"]\n')
    spec = from_toml(path, {"system_options": {"replication": "async"}})
    assert spec.system == "refnode" and spec.network == "proxy"
    assert spec.system_options == {"replication": "async", "election_timeout_max": 1.0}
    assert spec.nemesis_options == {"shapes": ["isolate"]}
    assert spec.make_system().options["election_timeout_max"] == 1.0
    path.write_text('[system]\nname = "refnode"\ncolour = "blue"\n')
    with pytest.raises(SpecError, match="unknown option 'colour'"):
        from_toml(path)
    path.write_text('system = "refnode"\nnemesis = "kill"\n[nemesis_options]\nshapes = "x"\n')
    with pytest.raises(SpecError, match="shapes is for the partition fault"):
        from_toml(path)


def test_a_test_json_from_before_system_options_still_loads():
    stored = {"name": "refnode-register", "system": "refnode", "nodes": 3,
              "replication": "sync", "read_mode": "lease", "bug": None,
              "workload": "register", "nemesis": ["partition"], "nemesis_interval": 5.0,
              "nemesis_options": {"overlap": True},
              "system_options": {"election_timeout_max": 1.5}, "seed": 3,
              "schedule": [{"at": 2.5, "f": "start-partition",
                            "value": {"shape": "isolate", "mode": "drop"}}]}
    spec = TestSpec.from_json(stored)
    assert spec.system_options == {"replication": "sync", "read_mode": "lease",
                                   "election_timeout_max": 1.5}
    assert spec.nemesis_options == {"overlap": 0.25}
    assert spec.make_system().describe() == "sync replication, lease reads"
    # The session workload made its reads follower reads, whatever read_mode said; fault
    # options of kinds the test did not run never had an effect.
    stored.update(workload="session", read_mode="leader", nemesis=["kill"],
                  nemesis_options={"shapes": ["isolate"], "targets": ["one"]})
    spec = TestSpec.from_json(stored)
    assert spec.make_system().read_mode == "follower"
    assert spec.nemesis_options == {"targets": ["one"]}
    for bad in ("fast", 3):
        with pytest.raises(SpecError, match="system_options must be a table"):
            TestSpec.from_json(dict(stored, system_options=bad))


def test_a_fault_that_never_took_effect_is_reported(tmp_path):
    proc = faultline("run", "--nemesis", "partition", "--nemesis-interval", "10",
                     "--time-limit", "2", "--seed", "5", "--runs-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "the partition fault never took effect (0 planned)" in " ".join(proc.stdout.split())
    (run_dir,) = (tmp_path / "refnode-register").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["faults"] == {"partition": {"planned": 0, "applied": 0, "skipped": 0,
                                               "skip_reasons": [], "errors": [], "aims": {},
                                               "nodes": {}, "combined": {}}}


def test_a_client_that_cannot_be_made_for_a_while_is_asked_again(tmp_path):
    """An adapter whose client constructor raises (a server that does not answer yet) must
    not silence that logical client for the rest of the run."""
    from harness.run.recorder import Recorder
    from harness.run.runner import ClientPool
    from harness.workloads import make_workload

    class Answering:
        def invoke(self, f, key, value, **options):
            return {"type": "ok", "value": None if f == "read" else value}

        def close(self):
            pass

    class StandIn:
        ids = ["n1"]
        made = 0

        def client(self, node, timeout):
            StandIn.made += 1
            if StandIn.made <= 3:
                raise ConnectionError("not yet")
            return Answering()

    spec = TestSpec(concurrency=1, rate=200.0, op_timeout=0.05, time_limit=1.0).validate()
    recorder = Recorder(tmp_path / "history.jsonl")
    pool = ClientPool(StandIn(), make_workload("register", 1), recorder, spec, seed=1)
    pool.start()
    time.sleep(0.8)
    pool.stop()
    recorder.close()
    assert StandIn.made == 4 and recorder.counts["ok"] > 20


def test_each_client_waits_with_a_patience_of_its_own_within_the_op_timeout(tmp_path):
    """Clients alike would all time out on a stuck leader at once and all retry at once."""
    from harness.run.recorder import Recorder
    from harness.run.runner import PATIENCE_RANGE, ClientPool
    from harness.workloads import make_workload

    given: dict[str, list[float]] = {}

    class Answering:
        def invoke(self, f, key, value, **options):
            return {"type": "info", "error": "timed out"}      # a fresh process each time

        def close(self):
            pass

    class StandIn:
        ids = ["n1", "n2"]

        def client(self, node, timeout):
            given.setdefault(threading.current_thread().name, []).append(timeout)
            return Answering()

    spec = TestSpec(concurrency=8, rate=400.0, op_timeout=2.0, time_limit=1.0).validate()
    recorder = Recorder(tmp_path / "history.jsonl")
    pool = ClientPool(StandIn(), make_workload("register", 1), recorder, spec, seed=1)
    pool.start()
    time.sleep(0.5)
    pool.stop()
    recorder.close()
    assert len(given) == 8
    low, high = (2.0 * share for share in PATIENCE_RANGE)
    for timeouts in given.values():
        assert len(timeouts) > 1 and len(set(timeouts)) == 1     # kept across reconnects
        assert low <= timeouts[0] <= high
    spread = sorted(t[0] for t in given.values())
    assert spread[-1] - spread[0] > 0.3, spread


def test_refnode_defaults_to_realistic_timings_and_the_tests_to_fast_ones(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FAULTLINE_REFNODE_TIMINGS"}
    listed = subprocess.run([sys.executable, "-m", "harness", "systems", "--json"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, env=env)
    (refnode,) = [s for s in json.loads(listed.stdout) if s["name"] == "refnode"]
    defaults = {o["name"]: o["default"] for o in refnode["options"]}
    assert (defaults["election_timeout_min"], defaults["election_timeout_max"],
            defaults["heartbeat_interval"]) == (1.0, 2.0, 0.1)
    # A campaign with them runs, elects, and is valid.
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--time-limit", "6",
                           "--nemesis", "none", "--seed", "2", "--runs-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (run_dir,) = (tmp_path / "refnode-register").iterdir()
    test = json.loads((run_dir / "test.json").read_text())
    assert test["system"]["options"]["election_timeout_min"] == 1.0
    # A normal stop leaves no traceback in the nodes' logs.
    for log in (run_dir / "nodes").glob("*.log"):
        assert "Traceback" not in log.read_text(), log
    from harness.systems.refnode import RefnodeSystem
    ours = {o.name: o.default for o in RefnodeSystem.OPTIONS}
    assert ours["election_timeout_min"] == 0.3       # this suite's, from tests/conftest.py


def test_keys_retire_after_their_operations_and_the_final_reads_cover_them_all():
    import random as _random
    workload = make_workload("register", 2, ops_per_key=3)
    rng = _random.Random(4)
    keys = [workload.next_op(rng).key for _ in range(12)]
    assert len(set(keys)) > 2 and len(workload.keys) == 2     # never more than 2 at a time
    for key in set(keys):
        assert keys.count(key) <= 3
    assert [op.key for op in workload.final_ops()] == workload.used
    assert set(keys) <= set(workload.used)
    steady = make_workload("set", 2)
    assert {steady.next_op(rng).key for _ in range(50)} == {"k0", "k1"}


def test_a_run_with_rotating_keys_is_checked_key_by_key(tmp_path):
    spec = TestSpec(nemesis=("partition",), seed=6, runs_dir=str(tmp_path / "runs"),
                    time_limit=6.0, keys=2, ops_per_key=100)
    result = run_test(spec)
    assert result.valid is True, result.results
    linearizable = result.results["checkers"]["linearizable"]["figures"]
    assert linearizable["keys"] >= 6                  # about 1,000 operations, 100 a key
    history = load_history(result.run_dir / "history.jsonl")
    final_keys = {op.key for op in history if op.type == "invoke" and op.process != "nemesis"
                  and op.process >= 10 ** 6}
    assert final_keys == {op.key for op in history if op.process != "nemesis"}
    with pytest.raises(SpecError, match="--ops-per-key must be an integer >= 0"):
        TestSpec(ops_per_key=-1).validate()


@pytest.mark.parametrize("fault", ["bitflip", "truncate"])
def test_damaged_data_files_are_refused_never_served_as_lost_writes(tmp_path, fault):
    """A node whose log was damaged while it was down either recovers (the damage was in
    what it had not synced) or refuses to start with one clear line; the acknowledged writes
    are never lost from what the cluster serves, so every checker finds the history valid."""
    spec = TestSpec(time_limit=8.0, workload="set", nemesis=(fault,), nemesis_interval=4.0,
                    nemesis_options={"targets": ["one"]}, seed=1,
                    runs_dir=str(tmp_path / "runs"), rate=150.0)
    result = run_test(spec)
    # One node damaged (two that both refuse would leave no quorum, rightly unavailable).
    assert result.results["faults"][fault]["applied"] == 1
    checkers = result.results["checkers"]
    assert all(c["valid"] is not False for c in checkers.values()), \
        json.dumps(checkers)[:2000]
    assert checkers["set-full"]["valid"] is True
    history = load_history(result.run_dir / "history.jsonl")
    damaged = [op.value for op in history if op.process == "nemesis" and op.f == fault
               and op.type == "info" and op.value.get("damaged")]
    assert damaged, "no file was damaged"
    refusals = 0
    for value in damaged:
        for node in value["nodes"]:
            text = (result.run_dir / "nodes" / f"{node}.log").read_text()
            assert "Traceback" not in text
            refused = [line for line in text.splitlines() if "write-ahead log" in line]
            refusals += bool(refused)
            assert all(("corrupt record" in line or "shorter than" in line or
                        "damaged file header" in line) for line in refused), refused
            if refused:
                # The run's results say why, in the node's words, not only its log.
                assert result.liveness["down"][node] == refused[-1].strip()
    assert refusals or result.liveness["recovered"]


def test_values_of_a_given_size_are_unique_strings_of_that_size():
    workload = make_workload("register", 2, value_size=1000)
    rng = random.Random(1)
    values = [op.value for op in (workload.next_op(rng) for _ in range(200))
              if op.f == "write"]
    values += [op.value[1] for op in (workload.next_op(rng) for _ in range(200))
               if op.f == "cas"]
    assert values and all(isinstance(v, str) and len(v) == 1000 for v in values)
    assert len(set(values)) == len(values)
    assert isinstance(make_workload("register", 2).fresh_value(), int)    # default: numbers


def test_a_campaign_with_64_kb_values_under_kills_and_partitions_stays_valid_and_live(
        tmp_path):
    spec = TestSpec(time_limit=8.0, nemesis=("partition", "kill"), nemesis_interval=3.0,
                    seed=2, runs_dir=str(tmp_path / "runs"), rate=60.0, value_size=64 * 1024)
    result = run_test(spec)
    assert result.valid is True, json.dumps(result.results["checkers"])[:2000]
    assert result.liveness["recovered"] is True
    history = load_history(result.run_dir / "history.jsonl")
    written = [op for op in history if op.type == "ok" and op.f == "write"]
    assert len(written) > 50 and all(len(op.value) == 64 * 1024 for op in written)
    faults = result.results["faults"]
    assert faults["partition"]["applied"] + faults["kill"]["applied"] >= 2
