"""A user's own adapter, in a package of its own, found through the `faultline.systems` entry
point: the example in examples/adapter (tinykv), installed here as a distribution on the path
(its metadata and entry points, as pip writes them), listed, refused where it cannot go, and
run for real."""

from __future__ import annotations

import json

import pytest

from tests.harness.example_package import environment, faultline, install


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """An environment in which the example is installed (and one broken entry point)."""
    site = install(tmp_path_factory.mktemp("site"), "[faultline.systems]\n"
                                                   "tinykv = tinykv_faultline:TinyKv\n"
                                                   "broken = no_such_module:Adapter\n")
    return environment(site)


def test_the_entry_point_adapter_is_listed(env):
    proc = faultline(env, "systems", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    tiny = rows["tinykv"]
    assert tiny["origin"] == "entry point of faultline-example-tinykv"
    assert tiny["available"] and tiny["nodes"] == [1, 1] and tiny["networks"] == ["proxy",
                                                                                   "netns"]
    offered = [kind for kind, refusal in tiny["faults"]["proxy"].items() if refusal is None]
    assert offered == ["kill", "pause"]
    assert "clock control" in tiny["faults"]["proxy"]["clock"]
    assert rows["broken"]["available"] is False
    assert "no_such_module" in rows["broken"]["detail"]
    assert rows["refnode"]["origin"] == "builtin"


def test_the_entry_point_adapter_runs_and_is_valid(env, tmp_path):
    proc = faultline(env, "run", "--system", "tinykv", "--nodes", "1", "--nemesis",
                     "kill,pause", "--nemesis-interval", "1.5", "--time-limit", "5",
                     "--seed", "7", "--runs-dir", str(tmp_path), "--sync", "true")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = (tmp_path / "tinykv-register").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True
    assert results["faults"]["kill"]["applied"] + results["faults"]["pause"]["applied"] >= 2
    test = json.loads((run_dir / "test.json").read_text())
    assert test["system"]["name"] == "tinykv" and test["system"]["options"] == {"sync": True}
    assert "election-safety" not in results["checkers"]      # no status probe: not checked


@pytest.mark.parametrize("args, fragment", [
    (["--nodes", "3"], "--nodes: tinykv runs with exactly 1 node, not 3"),
    (["--nodes", "1", "--nemesis", "partition"], "partition fault needs at least 2 nodes"),
    (["--nodes", "1", "--nemesis", "clock"], "clock control"),
    (["--nodes", "1", "--workload", "set"], "tinykv supports register, not set"),
    (["--nodes", "1", "--system-opt", "sync=maybe"], "sync must be true or false"),
    (["--nodes", "1", "--replication", "sync"], "unrecognized arguments: --replication"),
    (["--nodes", "1", "--nemesis", "kill", "--nemesis-opt", "targets=leader"], "leader probe"),
])
def test_what_the_adapter_cannot_take_is_refused_in_one_line(env, args, fragment):
    proc = faultline(env, "run", "--system", "tinykv", *args)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert fragment in proc.stderr.strip().splitlines()[-1]


def test_a_broken_adapter_is_a_one_line_error(env):
    proc = faultline(env, "run", "--system", "broken")
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert "cannot load no_such_module:Adapter" in proc.stderr.strip().splitlines()[-1]


def test_run_help_shows_the_adapters_own_flags(env):
    proc = faultline(env, "run", "--system", "tinykv", "--help")
    assert "tinykv options" in proc.stdout and "--sync" in proc.stdout
    assert "--replication" not in proc.stdout
