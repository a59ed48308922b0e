"""Declared options (pluginkit.options), the nemesis options of the fault kinds, and the fault
kinds' refusals: pure checks, each with the inputs it must reject."""

from __future__ import annotations

import random

import pytest

from harness import faults
from harness.faults import Setting
from harness.faults import schedule as nemesis
from harness.networks.base import LATENCY, PARTITION, REFUSE
from harness.systems.base import CAPABILITIES
from pluginkit.options import Option, OptionError, parse_assignments, resolve


def test_an_option_checks_and_parses_by_its_type():
    rate = Option("rate", "float", 1.0, minimum=0.01)
    assert rate.check(2) == 2.0 and isinstance(rate.check(2), float)
    assert rate.parse("0.5") == 0.5
    for bad in ("fast", True, 0.0, float("nan")):
        with pytest.raises(OptionError, match="rate"):
            rate.check(bad) if not isinstance(bad, str) else rate.parse(bad)
    flag = Option("sync", "bool", True)
    assert flag.parse("false") is False and flag.parse("YES") is True
    with pytest.raises(OptionError, match="true or false"):
        flag.parse("maybe")
    with pytest.raises(OptionError, match="must be true or false"):
        flag.check(1)
    count = Option("count", "int", 1)
    with pytest.raises(OptionError, match="an integer"):
        count.check(1.5)


def test_list_options_take_commas_choices_and_lengths():
    shapes = Option("shapes", "str-list", None, choices=("halves", "isolate"))
    assert shapes.parse("halves, isolate") == ["halves", "isolate"]
    assert shapes.check("isolate") == ["isolate"]
    with pytest.raises(OptionError, match="one of halves, isolate"):
        shapes.parse("halves,bridge")
    offsets = Option("clock_offsets", "float-list", None, length=2)
    assert offsets.parse("-1,2") == [-1.0, 2.0]
    with pytest.raises(OptionError, match="2 values"):
        offsets.parse("1")


def test_resolve_fills_defaults_and_names_unknown_options():
    declared = [Option("a", "int", 1), Option("b", "str", None)]
    assert resolve(declared, {"b": "x"}, "") == {"a": 1, "b": "x"}
    with pytest.raises(OptionError, match="unknown option 'c'; options: a, b"):
        resolve(declared, {"c": 1}, "")
    assert parse_assignments(["a=3", "b = y"], declared, "--opt") == {"a": 3, "b": "y"}
    with pytest.raises(OptionError, match="NAME=VALUE"):
        parse_assignments(["a"], declared, "--opt")
    # A flag stands for the option's name in its messages.
    with pytest.raises(OptionError, match="^--read-mode must be one of x, got 'y'$"):
        Option("read_mode", "str", choices=("x",)).parse("y", "--read-mode ")
    with pytest.raises(OptionError, match="^--opt count must be an integer"):
        Option("count", "int").parse("y", "--opt ")


def test_nemesis_options_from_the_command_line():
    assert nemesis.parse_options(["overlap=true", "shapes=isolate,bridge"]) == {
        "overlap": True, "shapes": ["isolate", "bridge"]}
    assert nemesis.parse_options(["overlap=0.5"]) == {"overlap": 0.5}
    with pytest.raises(OptionError, match="overlap must be a number"):
        nemesis.parse_options(["overlap=soon"])
    with pytest.raises(OptionError, match="unknown option 'colour'"):
        nemesis.parse_options(["colour=red"])


def test_nemesis_options_belong_to_the_faults_of_the_test():
    assert nemesis.resolve_options(["partition"], {"shapes": ["isolate"]}) == {
        "shapes": ["isolate"]}
    assert nemesis.resolve_options(["clock"], {"overlap": True}) == {"overlap": 0.25}
    with pytest.raises(OptionError, match="shapes is for the partition fault"):
        nemesis.resolve_options(["kill"], {"shapes": ["isolate"]})
    with pytest.raises(OptionError, match="unknown nemesis option 'colour'"):
        nemesis.resolve_options(["kill"], {"colour": 1})
    with pytest.raises(OptionError, match="targets must be one of"):
        nemesis.resolve_options(["kill"], {"targets": ["everyone"]})
    # Every kind's options are declared once, whoever shares them.
    names = [o.name for kind in faults.classes().values() for o in kind.OPTIONS]
    shared = {name for name in names if names.count(name) > 1}
    for name in shared:
        declarations = {o for kind in faults.classes().values() for o in kind.OPTIONS
                        if o.name == name}
        assert len(declarations) == 1, name


def _setting(capabilities=(), features=(PARTITION,), nodes=3, **options):
    return Setting(nodes, frozenset(capabilities), "test", frozenset(features), options)


@pytest.mark.parametrize("kind, setting, fragment", [
    ("clock", _setting(), "clock control"),
    ("power-loss", _setting(), "power loss"),
    ("election-crash", _setting(capabilities=CAPABILITIES), "latency"),
    ("election-crash", _setting(features=(PARTITION, LATENCY)), "status probe"),
    ("latency", _setting(), "latency"),
    ("partition", _setting(features=()), "partition"),
    ("partition", _setting(nodes=1), "at least 2 nodes"),
    ("partition", _setting(partition_mode="refuse"), "refuse"),
    ("partition", _setting(shapes=["isolate-leader"]), "leader probe"),
    ("partition", _setting(nodes=2, shapes=["bridge"]), "at least 3 nodes"),
    ("partition", _setting(features=(PARTITION, REFUSE), slow_link_ms=200), "slow_link_ms"),
    ("kill", _setting(targets=["leader"]), "leader probe"),
    ("latency", _setting(features=(LATENCY,), latency_from=["leader"]), "leader probe"),
])
def test_a_fault_refuses_what_the_run_cannot_offer(kind, setting, fragment):
    refusal = faults.find(kind).refusal(setting)
    assert refusal is not None and fragment in refusal


def test_every_fault_runs_where_everything_is_offered():
    setting = _setting(capabilities=CAPABILITIES, features=(PARTITION, REFUSE, LATENCY))
    assert {kind: cls.refusal(setting) for kind, cls in faults.classes().items()} == {
        kind: None for kind in faults.classes()}


def test_defaults_leave_out_the_leader_where_nobody_can_find_it():
    setting = _setting()
    rng = random.Random(1)
    nodes = ["n1", "n2", "n3"]
    targets = {faults.find("kill").plan(nodes, rng, {}, setting)["target"] for _ in range(200)}
    shapes = {faults.find("partition").plan(nodes, rng, {}, setting)["shape"]
              for _ in range(200)}
    assert targets == {"one", "minority", "majority", "all"}     # kill's own, but the leader
    assert "isolate-leader" not in shapes and len(shapes) == 5
