"""The replay command a run prints names the faultline that ran it, so that it works pasted into
a shell where `faultline` is not on PATH (only `.venv/bin/faultline`, as the README has it),
from any working directory."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.rundirs import store

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "faultline"      # the environment's console script


def test_the_faultline_script_that_ran_is_named_by_its_resolved_path(tmp_path, monkeypatch):
    bin_dir = tmp_path / "my env" / "bin"          # a space, for the quoting
    bin_dir.mkdir(parents=True)
    script = bin_dir / "faultline"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(bin_dir.parent)
    monkeypatch.setattr(sys, "argv", ["bin/faultline", "run"])
    assert store.faultline_command() == shlex.quote(str(script.resolve()))
    assert store.replay_command("runs/x y") == (f"{shlex.quote(str(script.resolve()))} replay "
                                                f"{shlex.quote(os.path.abspath('runs/x y'))}")


@pytest.mark.parametrize("argv0", ["/somewhere/harness/__main__.py", "/usr/bin/pytest", ""])
def test_anything_else_is_named_as_this_interpreter_running_the_harness(argv0, monkeypatch):
    monkeypatch.setattr(sys, "argv", [argv0])
    assert store.faultline_command() == f"{shlex.quote(sys.executable)} -m harness"


def test_a_file_named_faultline_that_is_not_executable_is_not_taken(tmp_path, monkeypatch):
    (tmp_path / "faultline").write_text("not a script\n")
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "faultline")])
    assert store.faultline_command() == f"{shlex.quote(sys.executable)} -m harness"


# The module form's words are tested above; pasting it runs the same shell path as the
# script's, so it waits for the slow tests (`make test-slow`).
@pytest.mark.parametrize("how", ["script", pytest.param("module", marks=pytest.mark.slow)])
def test_the_printed_replay_command_replays_the_run_when_pasted(tmp_path, how):
    if how == "script" and not SCRIPT.is_file():
        pytest.skip(f"no faultline script beside {sys.executable}")
    start = [str(SCRIPT)] if how == "script" else [sys.executable, "-m", "harness"]
    runs = tmp_path / "runs"
    first = subprocess.run([*start, "run", "--time-limit", "3", "--seed", "7",
                            "--runs-dir", str(runs)], cwd=REPO, capture_output=True,
                           text=True, timeout=300)
    (line,) = [line for line in first.stdout.splitlines() if line.startswith("replay: ")]
    command = line.removeprefix("replay: ")
    expected = shlex.quote(str(SCRIPT.resolve())) if how == "script" else \
        f"{shlex.quote(sys.executable)} -m harness"
    assert command.startswith(expected + " replay /"), command

    # Pasted elsewhere, in a shell whose PATH has no faultline (a bare `faultline` fails).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PATH=os.pathsep.join(
        d for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
        if Path(d).resolve() != SCRIPT.parent.resolve()))
    assert shutil.which("faultline", path=env["PATH"]) is None
    again = subprocess.run(command, shell=True, cwd=elsewhere, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == first.returncode == 0, again.stdout + again.stderr
    tests = [json.loads((run / "test.json").read_text())["test"]
             for run in sorted((runs / "refnode-register").iterdir())]
    assert len(tests) == 2
    assert tests[0]["seed"] == tests[1]["seed"] == 7
    assert tests[0]["schedule"] == tests[1]["schedule"]
    assert not list(elsewhere.iterdir())            # the replay went where the run was
