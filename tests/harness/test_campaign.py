"""Campaigns: the file format and its errors, real campaigns run here (several runs at once)
and on a real Dask LocalCluster, JUnit read back with junitparser, a lost worker, the budget,
and Ctrl-C leaving nothing behind."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from harness.campaigns.cell import PARENT_ENV, shows
from harness.campaigns.matrix import (INVALID, KEEPS_WRITES, LOSES_WRITES, VALID, CampaignError,
                                      load, parse_duration)

REPO = Path(__file__).resolve().parents[2]

# Short runs a fast-timed refnode settles in: a bug caught within them (power loss of every
# node with no fsync loses acknowledged adds in the first second) and a safe configuration.
SMALL = """
[campaign]
name = "small"
seeds = 2

[defaults]
time_limit = 3
workload = "set"

[[row]]
label = "no-fsync"
system = {name = "refnode", bug = "no-fsync"}
nemesis = ["power-loss"]
nemesis_interval = 1.5
nemesis_options = {targets = ["all"]}
expect = "%s"

[[row]]
label = "quorum"
nemesis = ["partition"]
nemesis_interval = 1.5
expect = "valid"
"""


def _file(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _faultline(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, FAULTLINE_REFNODE_TIMINGS="fast")
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_a_matrix_is_every_combination_of_its_lists_over_the_defaults(tmp_path):
    campaign = load(_file(tmp_path, """
[campaign]
name = "nightly"
seeds = 3
budget = "90m"
[defaults]
time_limit = 20
system = {name = "refnode", replication = "quorum"}
[[matrix]]
system = [{name = "refnode"}, {name = "refnode", read_mode = "lease"}]
workload = ["register", "set"]
nemesis = [["partition"], ["partition", "kill"]]
[[row]]
label = "stale"
system = {bug = "stale-leader-read"}
expect = "invalid"
needed = 2
seeds = 4
"""))
    labels = [r.label for r in campaign.rows]
    assert len(labels) == 9 and "refnode.lease-set-partition+kill" in labels
    assert campaign.budget == 5400.0 and campaign.name == "nightly"
    assert campaign.jobs == len(os.sched_getaffinity(0))   # one run per core by default
    lease = next(r for r in campaign.rows if r.label == "refnode.lease-register-partition")
    assert lease.options["system"] == {"name": "refnode", "replication": "quorum",
                                       "read_mode": "lease"}
    assert lease.seeds == (1, 2, 3) and lease.needed == 3 and lease.expect == VALID
    stale = campaign.rows[-1]
    assert stale.seeds == (1, 2, 3, 4) and stale.needed == 2 and stale.expect == INVALID
    spec = stale.spec(4, "somewhere")
    assert spec.system_options["bug"] == "stale-leader-read" and spec.time_limit == 20
    assert spec.name == "stale" and spec.seed == 4
    assert len(campaign.cells()) == 8 * 3 + 4


def test_a_row_over_other_seeds_scales_its_target_and_takes_overrides(tmp_path):
    (row,) = load(_file(tmp_path, "[[row]]\nlabel = 'a'\nseeds = 5\nneeded = 4\n"
                                  "time_limit = 20\n")).rows
    assert row.with_seeds(2).seeds == (1, 2) and row.with_seeds(2).needed == 2
    assert row.with_seeds(10, first=3).seeds[0] == 3 and row.with_seeds(10).needed == 8
    assert row.with_seeds(1).needed == 1
    shorter = row.with_options(time_limit=5.0, network=None)
    assert shorter.spec(1, "runs").time_limit == 5.0 and row.options["time_limit"] == 20


def test_the_example_nightly_campaign_is_one_faultline_accepts():
    campaign = load(REPO / "examples" / "nightly.toml")
    assert len(campaign.rows) == 8 + 2 and campaign.budget == 7200.0
    assert {row.expect for row in campaign.rows} == {VALID, INVALID, LOSES_WRITES}


@pytest.mark.parametrize("text, fragment", [
    ("[campaign]\nnmae = 'x'\n[[row]]\nlabel = 'a'\n", "[campaign]: unknown key nmae"),
    ("[[rows]]\nlabel = 'a'\n", "unknown table rows"),
    ("[[row]]\nlabel = 'a'\ntime_limt = 3\n", ": row a: unknown option time_limt"),
    ("[[matrix]]\nsystem = ['refnode', 'etcd']\nworkload = ['session']\n",
     ": row etcd-session: --workload: etcd supports register, set"),
    ("[[matrix]]\nworkload = ['set', 'queue']\n", "--workload must be one of"),
    ("[[row]]\nlabel = 'a'\nexpect = 'caught'\n", "expect must be one of valid, invalid"),
    ("[[row]]\nlabel = 'a'\nneeded = 6\n", "needed (6) is more than its seeds (5)"),
    ("[[row]]\nlabel = 'a'\n[[row]]\nlabel = 'a'\n", "two rows are labelled a"),
    ("[campaign]\nbudget = 'soon'\n[[row]]\nlabel = 'a'\n", "budget must be a positive"),
    ("[[row]]\nlabel = 'a'\nseed = 3\n", "seed is set by the campaign"),
    ("[[matrix]]\nworkload = 'set'\n", "workload must be a non-empty list"),
    ("[campaign]\nname = 'x'\n", "no rows"),
    ("[[row]\n", "not valid TOML"),
    ("[[row]]\nlabel = 'latest'\n", "label latest names a file of the campaign's own"),
    ("[[row]]\nlabel = 'a'\nseeds = 100000000000\n", "seeds must be an integer >= 1 and "
                                                    "<= 10000"),
    ("[[row]]\nlabel = 'a'\ntime_limit = nan\n", "--time-limit must be a positive, finite"),
    ("[[row]]\nlabel = 'a'\nnemesis_interval = inf\n", "--nemesis-interval must be a "
                                                        "positive, finite"),
])
def test_a_campaign_file_that_cannot_run_is_one_line_naming_the_file(tmp_path, text, fragment):
    path = _file(tmp_path, text)
    with pytest.raises(CampaignError) as caught:
        load(path)
    message = str(caught.value)
    assert fragment in message and message.startswith(str(path)) and "\n" not in message


def test_bad_input_on_the_command_line_is_one_line_and_exit_3(tmp_path):
    bad = _faultline("campaign", str(_file(tmp_path, "[[row]]\nlabel = 'a'\nrate = -1\n")),
                     cwd=tmp_path)
    assert bad.returncode == 3 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "--rate" in bad.stderr
    missing = _faultline("campaign", str(tmp_path / "none.toml"), cwd=tmp_path)
    assert missing.returncode == 3 and "cannot read" in missing.stderr
    (tmp_path / "file").write_text("")
    ok = _file(tmp_path, "[[row]]\nlabel = 'a'\n", "ok.toml")
    not_dir = _faultline("campaign", str(ok), "--runs-dir", str(tmp_path / "file"), cwd=tmp_path)
    assert not_dir.returncode == 3 and "not a directory" in not_dir.stderr
    row = _faultline("campaign", str(ok), "b", cwd=tmp_path)
    assert row.returncode == 3 and "no row b; rows: a" in row.stderr
    assert parse_duration("2h", "x") == 7200 and parse_duration(30, "x") == 30


def test_a_run_shows_what_its_row_expects_by_its_results():
    valid = {"valid": True, "liveness": {"recovered": True}, "checkers": {}}
    stuck = {"valid": True, "liveness": {"recovered": False}, "checkers": {}}
    lost = {"valid": False, "liveness": {"recovered": True}, "losses": {"lost": 3,
                                                                        "acknowledged": 2}}
    stale = {"valid": False, "checkers": {"linearizable": {"valid": False}}}
    register_lost = {"valid": False, "checkers": {"lost-writes": {"valid": False}}}
    assert shows(valid, VALID) and not shows(stuck, VALID) and not shows(lost, VALID)
    assert shows(lost, INVALID) and shows(stale, INVALID) and not shows(valid, INVALID)
    assert shows(lost, LOSES_WRITES) and shows(register_lost, LOSES_WRITES)
    assert not shows(stale, LOSES_WRITES) and not shows(valid, LOSES_WRITES)
    # Acknowledged writes kept: another anomaly (a read of a write never acknowledged, later
    # gone) does not break that promise; a loss, a cluster that never recovered, or a run
    # whose checkers judge no writes does not show it.
    kept_but_stale = {"valid": False, "liveness": {"recovered": True},
                      "checkers": {"linearizable": {"valid": False},
                                   "lost-writes": {"valid": True}}}
    kept_set = {"valid": True, "liveness": {"recovered": True},
                "checkers": {"set-full": {"valid": True}}, "losses": {"acknowledged": 0}}
    assert shows(kept_but_stale, KEEPS_WRITES) and shows(kept_set, KEEPS_WRITES)
    assert not shows(dict(register_lost, liveness={"recovered": True}), KEEPS_WRITES)
    assert not shows(dict(lost, checkers={"set-full": {"valid": False}}), KEEPS_WRITES)
    assert not shows(dict(kept_but_stale, liveness={"recovered": False}), KEEPS_WRITES)
    assert not shows(valid, KEEPS_WRITES)
    undecided = dict(kept_set, checkers={"set-full": {"valid": "unknown"}})
    assert not shows(undecided, KEEPS_WRITES)


def test_junit_fails_what_ci_should_see_and_skips_what_the_row_absorbed(tmp_path):
    from harness.campaigns.junit import write_junit

    campaign = load(_file(tmp_path, """
[campaign]
name = "n"
seeds = 3
[[row]]
label = "bug"
expect = "invalid"
needed = 2
[[row]]
label = "safe.lease"
expect = "valid"
needed = 2
[[row]]
label = "short"
expect = "valid"
"""))
    ran = {"status": "ran", "run_dir": "/r", "elapsed": 1.0}
    outcomes = {
        "bug seed 1": dict(ran, valid=False, shows=True),
        "bug seed 2": dict(ran, valid=True, shows=False),
        "bug seed 3": {"status": "could-not-run", "error": "no node started"},
        "safe.lease seed 1": dict(ran, valid=True, shows=True),
        "safe.lease seed 2": dict(ran, valid=False, shows=False, summary="linearizable: x"),
        "safe.lease seed 3": dict(ran, valid=True, shows=False),       # never recovered
        "short seed 1": dict(ran, valid=True, shows=True),
        "short seed 2": {"status": "not-run", "error": "budget spent"},
    }
    write_junit(tmp_path / "j.xml", campaign, outcomes,
                {"bug": "met", "safe.lease": "met", "short": "could-not-run"})
    found = {}
    for suite in JUnitXml.fromfile(str(tmp_path / "j.xml")):
        for case in suite:
            found[f"{case.classname}/{case.name}"] = case
    kinds = {key: [type(r) for r in case.result] for key, case in found.items()}
    assert kinds == {
        "n.bug/seed 1": [], "n.bug/seed 2": [Skipped], "n.bug/seed 3": [Skipped],
        "n.safe_lease/seed 1": [], "n.safe_lease/seed 2": [Failure],
        "n.safe_lease/seed 3": [Failure],
        "n.short/seed 1": [], "n.short/seed 2": [Error], "n.short/seed 3": [Error]}
    assert "the cluster did not recover" in found["n.safe_lease/seed 3"].result[0].message
    assert "linearizable: x" in found["n.safe_lease/seed 2"].result[0].message
    assert found["n.short/seed 2"].system_out is None
    xml = JUnitXml.fromfile(str(tmp_path / "j.xml"))
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (9, 2, 2, 2)


def _junit(path: Path) -> dict[str, list]:
    """Each test case's classname/name -> its result kinds."""
    found = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            found[f"{case.classname}/{case.name}"] = [type(r) for r in case.result]
    return found


def test_a_campaign_runs_two_at_a_time_and_reports_in_json_and_junit(tmp_path):
    path = _file(tmp_path, SMALL % LOSES_WRITES)
    done = _faultline("campaign", str(path), "--jobs", "2", "--runs-dir", "runs",
                      "--junit", "junit.xml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[4/4]" in done.stderr and "met" in done.stdout
    (campaign_dir,) = (tmp_path / "runs" / "small").iterdir()
    data = json.loads((campaign_dir / "campaign.json").read_text())
    assert [r["status"] for r in data["rows"]] == ["met", "met"]
    runs = [run for row in data["rows"] for run in row["runs"]]
    assert len({run["run_dir"] for run in runs}) == 4
    for run in runs:
        assert Path(run["run_dir"]).is_relative_to(campaign_dir)
        assert (Path(run["run_dir"]) / "results.json").exists()
    lossy = data["rows"][0]["runs"]
    assert all(r["valid"] is False and r["first_violation_seconds"] for r in lossy)
    assert _junit(tmp_path / "junit.xml") == {
        f"small.{label}/seed {seed}": [] for label in ("no-fsync", "quorum") for seed in (1, 2)}
    # Two at a time: some two runs were going at once (from when each wrote its test.json
    # to when it wrote its results.json).
    spans = [((Path(r["run_dir"]) / "test.json").stat().st_mtime,
              (Path(r["run_dir"]) / "results.json").stat().st_mtime) for r in runs]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans)
               for b in spans[i + 1:]), spans
    _nothing_left(tmp_path)


def test_rows_that_miss_fail_in_junit_and_the_exit_code_says_so(tmp_path):
    path = _file(tmp_path, SMALL % VALID)     # a planted bug expected valid: it is caught
    done = _faultline("campaign", str(path), "no-fsync", "--runs-dir", "runs", "--junit",
                      "junit.xml", "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    rows = json.loads(done.stdout)
    assert [r["label"] for r in rows] == ["no-fsync"] and rows[0]["status"] == "missed"
    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "junit.xml"))))
    for case in suite:
        (failure,) = case.result
        assert isinstance(failure, Failure)
        assert "expected valid, the run was invalid: set-full" in failure.message
        assert "run directory: " in case.system_out
        # The faultline that ran the campaign replays it: here `python -m harness`.
        run_dir = case.system_out.removeprefix("run directory: ")
        assert failure.text == (f"replay: {shlex.quote(sys.executable)} -m harness replay "
                                f"{shlex.quote(run_dir)}")
    _nothing_left(tmp_path)


def test_the_budget_stops_new_runs_and_says_which_never_ran(tmp_path):
    path = _file(tmp_path, SMALL % INVALID)
    done = _faultline("campaign", str(path), "--budget", "1s", "--jobs", "1", "--runs-dir",
                      "runs", "--junit", "junit.xml", cwd=tmp_path)
    assert done.returncode == 5, done.stdout + done.stderr
    assert done.stderr.count("budget of 1 s was spent") == 3
    results = _junit(tmp_path / "junit.xml")
    assert sorted(map(str, results.values())).count(str([Error])) == 3
    _nothing_left(tmp_path)


def test_ctrl_c_stops_every_run_and_leaves_nothing(tmp_path):
    path = _file(tmp_path, (SMALL % INVALID).replace("time_limit = 3", "time_limit = 30"))
    env = dict(os.environ, FAULTLINE_REFNODE_TIMINGS="fast")
    process = subprocess.Popen([sys.executable, "-m", "harness", "campaign", str(path),
                                "--jobs", "2", "--runs-dir", "runs"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        clusters = set()          # the cluster files of running nodes (not their guards)
        for child in psutil.Process(process.pid).children(recursive=True):
            line = child.cmdline()
            if "--id" in line and "--config" in line:
                clusters.add(line[line.index("--config") + 1])
        if len(clusters) >= 2:    # both runs' clusters are up
            break
        time.sleep(0.2)
    else:
        pytest.fail("the campaign's runs never started")
    os.killpg(process.pid, signal.SIGINT)         # as a terminal's Ctrl-C does
    out, err = process.communicate(timeout=90)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    _nothing_left(tmp_path)


def _a_cell_of_this_test(process: psutil.Process, tmp_path: Path) -> bool:
    """Whether `process` runs a campaign's cell started by this test: by this process or one
    of its own (a Dask worker), by a campaign whose command line names `tmp_path`, or by a
    campaign gone since (an orphan).
    The cells of a campaign someone else runs on the machine meanwhile are not this test's."""
    if "harness.campaigns.cell" not in " ".join(process.info["cmdline"] or []):
        return False
    try:
        parent = int(process.environ().get(PARENT_ENV, "0"))
    except (psutil.Error, ValueError):
        return True
    if parent in (0, os.getpid()) or not psutil.pid_exists(parent):
        return True
    mine = {child.pid for child in psutil.Process().children(recursive=True)}
    try:
        return parent in mine or str(tmp_path) in " ".join(psutil.Process(parent).cmdline())
    except psutil.Error:
        return True


def _nothing_left(tmp_path: Path) -> None:
    """No process of the campaign's runs is alive, and no worker's scratch directory is
    left."""
    deadline = time.monotonic() + 20
    while True:
        alive = [p for p in psutil.process_iter(["cmdline"])
                 if str(tmp_path) in " ".join(p.info["cmdline"] or []) or
                 _a_cell_of_this_test(p, tmp_path)]
        scratch = list(Path(tempfile.gettempdir()).glob("faultline-cell-*"))
        if not alive and not scratch or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not alive, [p.info["cmdline"] for p in alive]
    assert not scratch, scratch


# --- on a Dask cluster ----------------------------------------------------------------------

distributed = pytest.importorskip("distributed", reason="Dask's distributed is not installed")


def _local_dask_cluster():
    """A real LocalCluster: two worker processes, each offering one faultline run at a
    time."""
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                    resources={"faultline": 1}, dashboard_address=None,
                                    silence_logs=40)


@pytest.fixture
def dask_cluster():
    with _local_dask_cluster() as cluster:
        yield cluster


def test_the_same_campaign_runs_on_a_dask_cluster(tmp_path, dask_cluster):
    path = _file(tmp_path, SMALL % INVALID)
    done = _faultline("campaign", str(path), "--scheduler", dask_cluster.scheduler_address,
                      "--runs-dir", "runs", "--junit", "junit.xml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (campaign_dir,) = (tmp_path / "runs" / "small").iterdir()
    data = json.loads((campaign_dir / "campaign.json").read_text())
    assert data["scheduler"] == dask_cluster.scheduler_address
    runs = [run for row in data["rows"] for run in row["runs"]]
    assert [r["status"] for r in data["rows"]] == ["met", "met"]
    for run in runs:          # gathered back: each run directory whole, in the local dir
        run_dir = Path(run["run_dir"])
        assert run_dir.is_relative_to(campaign_dir)
        assert json.loads((run_dir / "results.json").read_text())["seed"] == run["seed"]
        assert (run_dir / "history.jsonl").stat().st_size > 0
    _nothing_left(tmp_path)


def test_a_worker_lost_mid_run_is_retried_never_dropped(tmp_path, dask_cluster):
    from harness.campaigns.dispatch import run_on_dask

    campaign = load(_file(tmp_path, (SMALL % INVALID).replace("time_limit = 3",
                                                               "time_limit = 6")),
                    ["quorum"])
    client = distributed.Client(dask_cluster)
    seen = []
    try:
        pids = client.run(os.getpid)
        worker_pids = set(pids.values())

        def kill_a_busy_worker():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for pid in worker_pids:
                    if any("harness.campaigns.cell" in " ".join(c.cmdline())
                           for c in psutil.Process(pid).children()):
                        os.kill(pid, signal.SIGKILL)
                        return pid
                time.sleep(0.2)
            return None

        import threading
        killed = []
        killer = threading.Thread(target=lambda: killed.append(kill_a_busy_worker()))
        killer.start()
        outcomes = run_on_dask(campaign.cells(), tmp_path / "runs", client, None,
                               lambda cell, found: seen.append(cell.key))
        killer.join()
    finally:
        client.close()
    assert killed and killed[0] is not None
    assert sorted(seen) == ["quorum seed 1", "quorum seed 2"]
    # The lost worker's cell ran again on the other worker (a cell lost more often than
    # Dask allows would come back could-not-run, naming Dask's KilledWorker).
    for found in outcomes.values():
        assert found["status"] == "ran", found
        assert found["shows"] and (Path(found["run_dir"]) / "results.json").exists()
    _nothing_left(tmp_path)


def test_a_cell_whose_process_fails_on_a_worker_comes_back_could_not_run(tmp_path):
    from harness.campaigns.dispatch import _unpacked, run_remote

    answer = run_remote({"expect": "valid"})          # no label: the cell's process fails
    found = _unpacked(answer, tmp_path)
    assert found["status"] == "could-not-run" and "failed on the worker" in found["error"]
    assert "KeyError" in found["error"]


def test_workers_without_the_faultline_resource_are_refused_at_once():
    from harness.campaigns.dispatch import connect

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None, silence_logs=40) as cluster:
        with pytest.raises(ConnectionError, match="none of the 1 workers .* offers the "
                                                  "resource faultline=1"):
            connect(cluster.scheduler_address)


def test_an_unreachable_scheduler_is_one_line_and_nothing_runs(tmp_path):
    path = _file(tmp_path, SMALL % INVALID)
    done = _faultline("campaign", str(path), "--scheduler", "tcp://127.0.0.1:9",
                      "--runs-dir", "runs", cwd=tmp_path, timeout=60)
    assert done.returncode == 5 and "Traceback" not in done.stderr
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in done.stderr
    assert not (tmp_path / "runs").exists()


# --- the proof: ten runs of 20 s, here and on Dask ---------------------------------

TEN = """
[campaign]
name = "ten"
[defaults]
time_limit = 20
[[matrix]]
workload = ["register", "set"]
nemesis = [["partition", "kill"]]
expect = "valid"
seeds = 2
[[row]]
label = "no-fsync"
system = {name = "refnode", bug = "no-fsync"}
workload = "set"
nemesis = ["power-loss"]
nemesis_options = {targets = ["all"]}
expect = "invalid"
seeds = 2
[[row]]
label = "no-fsync-loses"
system = {name = "refnode", bug = "no-fsync"}
workload = "set"
nemesis = ["power-loss"]
nemesis_options = {targets = ["all"]}
expect = "loses-writes"
seeds = 2
[[row]]
label = "early-ack"
system = {name = "refnode", bug = "early-ack", election_timeout_max = 1.5}
workload = "set"
keys = 1
rate = 400.0
nemesis = ["partition"]
nemesis_interval = 4.0
nemesis_options = {shapes = ["isolate-leader"]}
expect = "invalid"
seeds = 2
needed = 1
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["here", "dask"])
def test_ten_runs_of_20_s_show_what_each_row_expects(tmp_path, where):
    path = _file(tmp_path, TEN)
    if where == "dask":
        with _local_dask_cluster() as cluster:
            done = _faultline("campaign", str(path), "--scheduler", cluster.scheduler_address,
                              "--runs-dir", "runs", "--junit", "junit.xml", cwd=tmp_path,
                              timeout=900)
    else:
        done = _faultline("campaign", str(path), "--jobs", "2", "--runs-dir", "runs",
                          "--junit", "junit.xml", cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    (campaign_dir,) = (tmp_path / "runs" / "ten").iterdir()
    data = json.loads((campaign_dir / "campaign.json").read_text())
    assert sum(row["seeds"] for row in data["rows"]) == 10
    assert all(row["status"] == "met" for row in data["rows"]), data["rows"]
    cases = _junit(tmp_path / "junit.xml")
    assert len(cases) == 10
    # Every case passed, but a seed of early-ack that missed while the other caught it.
    assert all(kinds in ([], [Skipped]) for kinds in cases.values()), cases
    _nothing_left(tmp_path)


FORKED_RUN = """
import os, signal, sys, time
from harness.campaigns.cell import interrupt_on

interrupt_on(signal.SIGTERM)
try:
    child = os.fork()
    if child == 0:              # a library's helper, forked from inside the run
        time.sleep(30)
        os._exit(0)
    time.sleep(0.3)
    os.kill(child, signal.SIGTERM)
    print(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
finally:                        # the run's cleanup: its own process's alone
    with open(sys.argv[1], "a") as f:
        f.write(f"{os.getpid()}\\n")
"""


def test_a_fork_of_a_run_ends_on_sigterm_without_running_the_runs_cleanup(tmp_path):
    """pyroute2 makes each namespace in a forked child and ends it with SIGTERM; had the
    child raised KeyboardInterrupt as the run does, it would have unwound its copy of the
    run's stack through the run's cleanup and removed the namespaces just made."""
    marker = tmp_path / "cleanups"
    done = subprocess.run([sys.executable, "-c", FORKED_RUN, str(marker)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(128 + signal.SIGTERM)
    cleaned = marker.read_text().split()
    assert len(cleaned) == 1 and int(cleaned[0]) != 0      # the parent's, not the fork's
