"""A user's own checker, in a package of its own, found through the `faultline.checkers` entry
point: the example in examples/adapter (version-integrity, beside the tinykv adapter),
installed here as a distribution on the path (its metadata and entry points, as pip writes
them), listed by `faultline check --help`, run by name on histories it must pass and reject;
and the checkers that are not there, or not checkers, refused in one line. The checker at the
end of a real run is tested beside the example's fault, in test_fault_plugins.py (one run
serves both)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.harness.example_package import REPO, environment, faultline, install

EXAMPLES = REPO / "examples"
CHECKER = "version-integrity"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """An environment in which the example is installed, with two entry points that are no
    checkers: one that cannot be imported, one that names another kind of class."""
    site = install(tmp_path_factory.mktemp("site"), "[faultline.systems]\n"
                                                   "tinykv = tinykv_faultline:TinyKv\n"
                                                   "[faultline.checkers]\n"
                                                   f"{CHECKER} = tinykv_checker:VersionIntegrity\n"
                                                   "broken = no_such_module:Checker\n"
                                                   "adapter = tinykv_faultline:TinyKv\n")
    return environment(site)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in last, last


def rewritten(tmp_path: Path, name: str, change) -> Path:
    """examples/register-history.jsonl with `change(events)` applied, as a new file."""
    lines = (EXAMPLES / "register-history.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    change(events)
    path = tmp_path / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_check_help_lists_the_plug_in_with_what_it_applies_to(env):
    proc = faultline(env, "check", "--help")
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if line.strip().startswith(CHECKER)]
    assert "one version, one write" in line
    assert "entry point of faultline-example-tinykv" in line
    assert "linearizable" in proc.stdout and "list-append" in proc.stdout
    (broken,) = [line for line in proc.stdout.splitlines() if line.strip().startswith("broken")]
    assert "cannot be loaded" in broken and "no_such_module" in broken


def test_the_plug_in_is_chosen_by_name_and_passes_a_good_history(env):
    proc = faultline(env, "check", str(EXAMPLES / "register-history.jsonl"), "--json",
                     "--checker", f"linearizable,{CHECKER}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert list(result["checkers"]) == ["linearizable", CHECKER]
    assert result["checkers"][CHECKER]["valid"] is True
    assert result["checkers"][CHECKER]["figures"]["versions"] > 100


def _read_another_value(events):
    read = next(e for e in events if e["type"] == "ok" and e["f"] == "read" and e.get("version"))
    read["value"] = 10 ** 6              # never written, yet reported at a write's version


def _reuse_a_version(events):
    writes = [e for e in events if e["type"] == "ok" and e["f"] == "write"]
    writes[5]["version"] = writes[2]["version"]


@pytest.mark.parametrize("change, summary", [
    (_read_another_value, "returned 1000000 of key"),
    (_reuse_a_version, "was given to two writes"),
])
def test_the_plug_in_rejects_a_history_that_breaks_its_promise(env, tmp_path, change, summary):
    path = rewritten(tmp_path, "bad.jsonl", change)
    proc = faultline(env, "check", str(path), "--checker", CHECKER, "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)["checkers"][CHECKER]
    assert result["valid"] is False and summary in result["summary"]
    assert result["counterexample"]["op"]["description"].startswith("process ")
    proc = faultline(env, "check", str(path), "--checker", CHECKER)
    assert proc.returncode == 1 and "INVALID" in proc.stdout


@pytest.mark.parametrize("name, fragments", [
    ("nope", ["unknown checker 'nope'", CHECKER]),
    ("broken", ["checker broken (entry point of faultline-example-tinykv)",
                "cannot load no_such_module:Checker"]),
    ("adapter", ["tinykv_faultline:TinyKv is not a subclass of checkers.base.Checker"]),
])
def test_checkers_that_are_not_there_are_refused_in_one_line(env, name, fragments):
    history = str(EXAMPLES / "register-history.jsonl")
    assert_one_line_error(faultline(env, "check", history, "--checker", name), *fragments)
    proc = faultline(env, "run", "--system", "tinykv", "--nodes", "1", "--checker", name)
    assert_one_line_error(proc, "--checker: ", *fragments)
