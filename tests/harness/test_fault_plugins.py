"""Fault kinds as plug-ins, found through the `faultline.faults` entry point: the example's
torn-write fault (examples/adapter/tinykv_fault.py), installed here as a distribution on the
path beside its tinykv adapter, listed, offered only to tinykv, and run for real (with the
example's checker, version-integrity, at the end of the same run); and the registry's answers
for a name nobody declares, an entry point that cannot be imported, a class that is not a
fault kind, a fault kind that calls itself by another name, and one that gives a built-in
option another meaning. The plug-ins are installed after faultline was imported, as a user's
would be: nothing may have frozen the list of names by then."""

from __future__ import annotations

import importlib
import json

import pytest

from harness import faults
from harness.campaigns.matrix import load as load_campaign
from harness.faults import schedule
from harness.run.spec import SpecError, TestSpec, build
from tests.harness.example_package import DIST, EXAMPLE, REPO, environment, faultline, install

# A plug-in module of this test's own: a fault kind that does nothing (so that any system can
# take it), one that calls itself by another name, and a class that is no fault kind.
TEST_FAULTS = '''
from harness.faults.base import Fault
from pluginkit.options import Option


class Nothing(Fault):
    name = "nothing"
    START, STOP = "nothing", "nothing-done"
    SUMMARY = "does nothing, for the registry's tests"
    OPTIONS = (Option("nothing_said", "str", "", "what it does not do"),)

    @classmethod
    def plan(cls, nodes, rng, options, setting, aim=None):
        return {"said": options.get("nothing_said", "")}

    def start(self, ctx, value):
        return value

    def stop(self, ctx, started, value):
        return value


class Misnamed(Nothing):
    name = "something-else"


class NotAFault:
    name = "not-a-fault"


class Retargeted(Nothing):
    # `targets` means which nodes to the built-in kinds (kill, pause, ...): another meaning
    # under the same name would change what --nemesis-opt targets=... does to them.
    name = "retargeted"
    OPTIONS = (Option("targets", "int", 1, "how many times"),)
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A directory holding the installed distribution: its metadata and entry points, as pip
    writes them, and the test's own plug-in module."""
    site = install(tmp_path_factory.mktemp("site"),
                   "[faultline.systems]\n"
                   "tinykv = tinykv_faultline:TinyKv\n"
                   "\n[faultline.faults]\n"
                   "torn-write = tinykv_fault:TornWriteFault\n"
                   "nothing = faultline_test_faults:Nothing\n"
                   "misnamed = faultline_test_faults:Misnamed\n"
                   "not-a-fault = faultline_test_faults:NotAFault\n"
                   "retargeted = faultline_test_faults:Retargeted\n"
                   "broken = no_such_module:Fault\n"
                   "kill = faultline_test_faults:Nothing\n"
                   "\n[faultline.checkers]\n"
                   "version-integrity = tinykv_checker:VersionIntegrity\n")
    (site / "faultline_test_faults.py").write_text(TEST_FAULTS)
    return site


@pytest.fixture
def installed(site, monkeypatch):
    """The distribution installed in this process, after faultline was imported."""
    for path in (REPO, EXAMPLE, site):
        monkeypatch.syspath_prepend(str(path))
    importlib.invalidate_caches()
    return site


@pytest.fixture(scope="module")
def env(site):
    """An environment in which the distribution is installed, for `faultline` itself."""
    return environment(site)


# --- the registry ----------------------------------------------------------------------------

def test_the_installed_kinds_follow_the_builtin_ones(installed):
    names = faults.names()
    assert names[:len(faults.BUILTIN)] == list(faults.BUILTIN)
    assert names[len(faults.BUILTIN):] == sorted(["torn-write", "nothing", "misnamed",
                                                   "not-a-fault", "broken", "retargeted"])
    assert faults.entries()["torn-write"].origin == f"entry point of {DIST}"
    assert faults.find("torn-write").name == "torn-write"
    # The kinds that load, for options and help; the broken ones are left out.
    assert set(faults.classes()) == {*faults.BUILTIN, "torn-write", "nothing"}


def test_an_unknown_fault_kind_is_a_one_line_error_listing_the_kinds(installed):
    with pytest.raises(faults.UnknownFault) as error:
        faults.find("flood")
    message = str(error.value)
    assert message.startswith("unknown fault kind 'flood'; fault kinds: partition, kill")
    assert "torn-write" in message and "\n" not in message


@pytest.mark.parametrize("name, fragment", [
    ("broken", "fault kind broken (entry point of faultline-example-tinykv): cannot load "
               "no_such_module:Fault: ModuleNotFoundError"),
    ("not-a-fault", "faultline_test_faults:NotAFault is not a subclass of "
                    "harness.faults.base.Fault"),
    ("misnamed", "fault kind misnamed (entry point of faultline-example-tinykv): the fault "
                 "calls itself 'something-else'"),
    ("retargeted", "fault kind retargeted (entry point of faultline-example-tinykv): its "
                   "option 'targets' is declared otherwise by the built-in kind kill"),
])
def test_a_kind_that_cannot_load_is_a_one_line_error(installed, name, fragment):
    with pytest.raises(faults.BrokenFault) as error:
        faults.find(name)
    assert fragment in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(SpecError) as refused:
        build({"nemesis": name}, "test")
    assert str(refused.value).startswith("--nemesis: fault kind " + name)


def test_an_entry_point_never_replaces_a_builtin_kind(installed):
    # The distribution declares a `kill` of its own.
    assert faults.names().count("kill") == 1
    assert faults.entries()["kill"].origin == "builtin"
    assert faults.find("kill") is faults.classes()["kill"]
    assert faults.find("kill").__module__ == "harness.faults.kill"


# --- a plug-in installed after faultline was imported, wherever a fault kind is named ---------

def test_a_plugin_kind_is_taken_by_the_command_line_toml_campaigns_and_replay(installed,
                                                                              tmp_path):
    # The command line (`--nemesis nothing --nemesis-opt nothing_said=hush`).
    options = schedule.parse_options(["nothing_said=hush"])
    spec = build({"nemesis": "kill,nothing", "nemesis_options": options}, "--system")
    assert spec.nemesis == ("kill", "nothing")
    assert spec.nemesis_options == {"nothing_said": "hush"}
    planned = schedule.plan(spec.nemesis, ["n1", "n2", "n3"], 30, 5, seed=3,
                            options=spec.nemesis_options, setting=spec.setting())
    mine = [step for step in planned if step["fault"] == "nothing"]
    assert mine and mine[0]["f"] == "nothing" and mine[0]["value"] == {"said": "hush"}
    assert mine[1]["f"] == "nothing-done"
    # A test.json with that schedule, as `faultline replay` reads it.
    stored = dict(spec.to_json(), schedule=planned)
    assert TestSpec.from_json(json.loads(json.dumps(stored))).schedule == planned
    # A TOML file and a campaign.
    config = tmp_path / "test.toml"
    config.write_text('nemesis = ["nothing"]\n[nemesis_options]\nnothing_said = "shh"\n')
    from harness.run.spec import from_toml
    assert from_toml(config).nemesis_options == {"nothing_said": "shh"}
    campaign = tmp_path / "c.toml"
    campaign.write_text('[campaign]\nname = "c"\n[[row]]\nlabel = "quiet"\n'
                        'nemesis = ["nothing"]\nexpect = "valid"\n')
    (row,) = load_campaign(campaign).rows
    assert row.spec(1, str(tmp_path)).nemesis == ("nothing",)


def test_a_replayed_schedule_naming_a_kind_no_longer_installed_is_refused(installed):
    spec = build({"nemesis": "nothing"}, "--system")
    stored = dict(spec.to_json(), nemesis=["kill"], nemesis_options={},
                  schedule=[{"at": 1.0, "fault": "flood", "f": "flood", "value": {}}])
    with pytest.raises(SpecError, match=r"schedule\[0\]: not a fault step \(unknown fault "
                                        r"kind 'flood'\)"):
        TestSpec.from_json(stored)


def test_the_example_fault_is_refused_on_other_systems(installed):
    with pytest.raises(SpecError, match="the torn-write fault writes tinykv's log, not "
                                        "refnode's"):
        build({"system": "refnode", "nemesis": "torn-write"}, "--system")
    spec = build({"system": "tinykv", "nemesis": "torn-write",
                  "nemesis_options": {"torn_bytes": [5, 9]}}, "--system")
    planned = schedule.plan(spec.nemesis, ["n1"], 20, 2, seed=1,
                            options=spec.nemesis_options, setting=spec.setting())
    starts = [step["value"] for step in planned if step["f"] == "torn-write"]
    assert starts and all(value["nodes"] == ["n1"] and 5 <= value["torn_bytes"] <= 9
                          for value in starts)
    with pytest.raises(SpecError, match="torn_bytes must have 2 values"):
        build({"system": "tinykv", "nemesis": "torn-write",
               "nemesis_options": {"torn_bytes": [5]}}, "--system")


# --- the command line, in a process of its own ------------------------------------------------

def test_faultline_systems_lists_the_plugin_kinds_with_where_they_come_from(env):
    proc = faultline(env, "systems", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    tiny = rows["tinykv"]["faults"]["proxy"]
    assert [kind for kind, refusal in tiny.items() if refusal is None] == [
        "kill", "pause", "nothing", "torn-write"]
    assert "cannot load no_such_module:Fault" in tiny["broken"]
    assert "writes tinykv's log, not refnode's" in rows["refnode"]["faults"]["proxy"][
        "torn-write"]
    proc = faultline(env, "systems")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any("torn-write" in line and f"entry point of {DIST}" in line for line in lines)
    assert any("│ kill " in line and "builtin" in line for line in lines)
    assert any("broken" in line and "cannot load" in line for line in lines)


def test_run_help_lists_the_plugin_kind_and_its_options(env):
    proc = faultline(env, "run", "--help", COLUMNS="400")
    assert proc.returncode == 0, proc.stderr
    nemesis = next(line for line in proc.stdout.splitlines()
                   if line.strip().startswith("--nemesis NEMESIS"))
    assert "from partition, kill, pause" in nemesis and "torn-write" in nemesis
    assert "torn_bytes" in proc.stdout and "nothing_said" in proc.stdout


def test_the_example_fault_and_checker_in_a_real_run(env, installed, tmp_path):
    # One real run serves the example's fault and its checker (version-integrity) alike.
    checker = "version-integrity"
    proc = faultline(env, "run", "--system", "tinykv", "--nodes", "1", "--nemesis",
                     "torn-write", "--nemesis-interval", "1.5", "--time-limit", "5",
                     "--seed", "7", "--runs-dir", str(tmp_path), "--checker", checker)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = (tmp_path / "tinykv-register").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True
    assert list(results["checkers"]) == ["linearizable", "lost-writes", "staleness", "stats",
                                         checker]
    assert results["checkers"][checker]["valid"] is True
    test = json.loads((run_dir / "test.json").read_text())
    assert test["test"]["checkers"] == [checker] and checker in test["check"]["checkers"]
    # Checked again, the run directory is judged by the same checkers, the plug-in's too.
    proc = faultline(env, "check", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert checker in json.loads(proc.stdout)["checkers"]
    assert results["faults"]["torn-write"]["applied"] >= 1
    assert results["faults"]["torn-write"]["errors"] == []
    events = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    nemesis = [e for e in events if e["process"] == "nemesis" and e["type"] == "info"]
    starts = [e["value"] for e in nemesis if e["f"] == "torn-write"]
    stops = [e["value"] for e in nemesis if e["f"] == "restart"]
    assert starts and len(stops) == len(starts)
    assert all(tear["bytes"] == start["torn_bytes"] for start in starts
               for tear in start["torn"])
    # Every stop restarted the node, which dropped the torn record.
    assert all(stop["nodes"] == ["n1"] and stop["tail_dropped"] == {"n1": True}
               for stop in stops)
    assert any(e["f"] == "heal" for e in nemesis)
    stored = json.loads((run_dir / "test.json").read_text())["test"]
    assert {step["fault"] for step in stored["schedule"]} == {"torn-write"}
    # `faultline replay` takes the stored test back, its plug-in fault steps included.
    assert TestSpec.from_json(stored).schedule == stored["schedule"]
