"""Process lifecycle and the three ways leftovers are ended: Ctrl-C, SIGKILL, stale registry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from harness.processes.leftovers import STATE_DIR_ENV, Registry, reap_stale
from harness.processes.supervisor import ProcessError, Supervisor

REPO = Path(__file__).resolve().parents[2]
SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"]
# A command that starts a grandchild, so that "the whole tree" is put to the test.
PARENT_OF_SLEEPER = [sys.executable, "-c", textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print("child", child.pid, flush=True)
    time.sleep(600)
""")]


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    directory = tmp_path / "state"
    monkeypatch.setenv(STATE_DIR_ENV, str(directory))
    return directory / "live"


def wait_until(predicate, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def children_of(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def test_lifecycle_start_pause_resume_kill_restart_stop(tmp_path, state_dir):
    with Supervisor(Registry(state_dir)) as supervisor:
        node = supervisor.start("n1", SLEEPER, tmp_path / "n1.log")
        first = node.pid
        assert node.running
        assert wait_until(lambda: "up" in (tmp_path / "n1.log").read_text())

        node.pause()
        assert wait_until(lambda: psutil.Process(first).status() == psutil.STATUS_STOPPED)
        node.resume()
        assert wait_until(lambda: psutil.Process(first).status() != psutil.STATUS_STOPPED)

        node.kill()
        assert gone(first) and not node.running
        with pytest.raises(ProcessError):
            node.pause()

        again = supervisor.start("n1", SLEEPER, tmp_path / "n1.log")
        assert again.pid != first and again.running
        with pytest.raises(ProcessError, match="already running"):
            supervisor.start("n1", SLEEPER, tmp_path / "n1.log")

        status = again.stop()
        assert gone(again.pid)
        assert status == 128 + signal.SIGTERM
    assert not list(state_dir.glob("*.json")), "the registry is removed at close"


def test_kill_and_stop_take_the_whole_tree(tmp_path, state_dir):
    with Supervisor(Registry(state_dir)) as supervisor:
        node = supervisor.start("n1", PARENT_OF_SLEEPER, tmp_path / "n1.log")
        assert wait_until(lambda: len(children_of(node.pid)) == 1)
        grandchild = children_of(node.pid)[0]
        node.kill()
        assert wait_until(lambda: gone(grandchild))

        node = supervisor.start("n1", PARENT_OF_SLEEPER, tmp_path / "n1.log")
        assert wait_until(lambda: len(children_of(node.pid)) == 1)
        grandchild = children_of(node.pid)[0]
    assert wait_until(lambda: gone(node.pid) and gone(grandchild))


def test_a_paused_process_is_still_stopped_cleanly(tmp_path, state_dir):
    with Supervisor(Registry(state_dir)) as supervisor:
        node = supervisor.start("n1", SLEEPER, tmp_path / "n1.log")
        node.pause()
    assert wait_until(lambda: gone(node.pid))


# A command whose child leaves its process group for a session of its own, as each of
# PostgreSQL's backends does: a signal to the command's group never reaches it.
PARENT_OF_SESSION_LEADER = [sys.executable, "-c", textwrap.dedent("""
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                             start_new_session=True)
    print("child", child.pid, flush=True)
    time.sleep(600)
""")]


def test_a_paused_tree_with_its_own_sessions_is_stopped_whole(tmp_path, state_dir):
    """Stopped paused (a run interrupted during a pause fault): the child in a session of
    its own would have outlived its parent, paused for good, had stop signalled the group
    alone."""
    with Supervisor(Registry(state_dir)) as supervisor:
        node = supervisor.start("n1", PARENT_OF_SESSION_LEADER, tmp_path / "n1.log")
        assert wait_until(lambda: len(children_of(node.pid)) == 1)
        child = children_of(node.pid)[0]
        assert os.getsid(child) != os.getsid(node.pid)
        node.pause()
        assert wait_until(lambda: psutil.Process(child).status() == psutil.STATUS_STOPPED)
    assert wait_until(lambda: gone(node.pid) and gone(child))


def test_a_command_that_cannot_start_is_reported(tmp_path, state_dir):
    with Supervisor(Registry(state_dir)) as supervisor:
        with pytest.raises(ProcessError, match="could not start"):
            supervisor.start("n1", ["/no/such/binary"], tmp_path / "n1.log")


def test_a_command_that_exits_at_once_is_started_and_seen_ended(tmp_path, state_dir):
    """A node that dies as it starts (a bad configuration) is the caller's to report: the
    supervisor neither raises nor records a process that is already gone."""
    with Supervisor(Registry(state_dir)) as supervisor:
        for _ in range(5):              # the exit must often beat the registry's look
            process = supervisor.start("n1", ["sh", "-c", "exit 3"], tmp_path / "n1.log")
            assert process.wait(timeout=10) == 3 and not process.running


HARNESS = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from harness.processes.supervisor import Supervisor
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    with Supervisor() as supervisor:
        nodes = [supervisor.start(f"n{i}", sleeper, Path(sys.argv[1]) / f"n{i}.log")
                 for i in range(3)]
        print(json.dumps({"nodes": [n.pid for n in nodes],
                          "guards": [n.guard_pid for n in nodes]}), flush=True)
        time.sleep(600)
""")


def start_harness(tmp_path) -> tuple[subprocess.Popen, dict]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, str(tmp_path)], env=env,
                               stdout=subprocess.PIPE, text=True, cwd=REPO)
    pids = json.loads(harness.stdout.readline())
    return harness, pids


def cleanup(pids: dict) -> None:
    for pid in pids["nodes"] + pids["guards"]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_ctrl_c_in_the_harness_ends_every_node(tmp_path, state_dir):
    harness, pids = start_harness(tmp_path)
    try:
        harness.send_signal(signal.SIGINT)
        harness.wait(timeout=20)
        assert wait_until(lambda: all(gone(p) for p in pids["nodes"] + pids["guards"]))
    finally:
        cleanup(pids)
        harness.kill()


def test_a_sigkilled_harness_leaves_no_orphans(tmp_path, state_dir):
    harness, pids = start_harness(tmp_path)
    try:
        harness.kill()
        harness.wait()
        # The guards see their lifeline close and take their nodes with them.
        assert wait_until(lambda: all(gone(p) for p in pids["nodes"] + pids["guards"]))
    finally:
        cleanup(pids)


def test_a_stale_cluster_is_reaped_at_the_next_start(tmp_path, state_dir):
    harness, pids = start_harness(tmp_path)
    try:
        # Kill the guards first, then the harness: the nodes are orphans nobody watches.
        for guard in pids["guards"]:
            os.kill(guard, signal.SIGKILL)
        harness.kill()
        harness.wait()
        time.sleep(0.2)
        assert all(not gone(p) for p in pids["nodes"])
        assert list(state_dir.glob("*.json")), "the dead harness's registry is still there"

        reaped = reap_stale(state_dir)
        assert sorted(r.pid for r in reaped) == sorted(pids["nodes"])
        assert wait_until(lambda: all(gone(p) for p in pids["nodes"]))
        assert not list(state_dir.glob("*.json"))
    finally:
        cleanup(pids)


def test_reaping_leaves_live_harnesses_and_reused_pids_alone(tmp_path, state_dir):
    with Supervisor(Registry(state_dir)) as supervisor:
        node = supervisor.start("n1", SLEEPER, tmp_path / "n1.log")
        assert reap_stale(state_dir) == []          # our own harness is alive
        assert node.running
    # A registry whose owner is dead but whose pid now belongs to someone else (create time
    # differs) must not be killed.
    bystander = subprocess.Popen(SLEEPER, stdout=subprocess.DEVNULL)
    try:
        fake = {"owner": {"pid": 999_999_999, "create_time": 1.0, "name": "harness"},
                "processes": [{"pid": bystander.pid, "create_time": 1.0, "name": "n1"}]}
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / "999999999.json").write_text(json.dumps(fake))
        assert reap_stale(state_dir) == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_guard_whose_harness_died_before_reading_the_pid_ends_its_command(tmp_path):
    """The harness can die between starting a guard and reading the command's pid: the
    guard's first write then fails, and the command must not outlive it."""
    marker = f"{time.time_ns() % 10 ** 6}.5"          # a sleep no one else runs
    guard = subprocess.Popen([sys.executable, "-m", "harness.processes.guard", "--", "sleep",
                              marker], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    guard.stdout.close()             # nobody will read the pid; the lifeline stays open

    def sleepers():
        return [p for p in psutil.process_iter(["cmdline", "status"])
                if p.info["cmdline"] == ["sleep", marker]
                and p.info["status"] != psutil.STATUS_ZOMBIE]
    try:
        assert guard.wait(timeout=10) != 0
        deadline = time.monotonic() + 5
        while sleepers() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sleepers() == []
    finally:
        for p in sleepers():
            p.kill()
        guard.stdin.close()
        guard.wait()


def test_registered_resources_of_a_dead_harness_are_removed(tmp_path, state_dir,
                                                            monkeypatch):
    """The reaper hands each resource of a dead harness to the cleaner recorded with it, and
    keeps on record what could not be removed, for the next start."""
    from harness.processes import leftovers as registry_module

    removed = []
    monkeypatch.setattr(registry_module, "_cleaner", lambda target: (
        (lambda name: removed.append((target, name))) if name_ok(target) else failing))

    def name_ok(target):
        return target != "m:remove_link"

    def failing(name):
        raise OSError("busy")

    fake = {"owner": {"pid": 999_999_999, "create_time": 1.0, "name": "harness"},
            "processes": [], "resources": [["link", "flx1b", "m:remove_link"],
                                           ["netns", "faultline-x1-n1", "m:remove_namespace"]]}
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "999999999-1.json"
    path.write_text(json.dumps(fake))
    reap_stale(state_dir)
    assert removed == [("m:remove_namespace", "faultline-x1-n1")]     # namespaces first
    assert json.loads(path.read_text())["resources"] == [["link", "flx1b", "m:remove_link"]]
    monkeypatch.setattr(registry_module, "_cleaner", lambda kind: removed.append)
    reap_stale(state_dir)
    assert not path.exists()
