"""Checkers as plug-ins: found by name, built-in first, then entry points of the group
`faultline.checkers`; refused in one line when unknown, broken or no checker; their options
checked when they are made; chosen for a history by what they declare they apply to."""

from __future__ import annotations

from importlib import metadata

import pytest

from checkers import registry
from checkers.base import REGISTERS, Applies, CheckContext, Checker, traits_of
from checkers.builtin import LinearizableChecker, ListAppendChecker, SessionChecker
from checkers.history import Op
from checkers.models import ModelError
from checkers.result import Result
from checkers.suite import choose_checkers, run_checkers
from pluginkit.options import OptionError

GROUP = registry.ENTRY_POINT_GROUP


class Chosen(Checker):
    """A plug-in that asks to be run on every register history."""

    name = "chosen"
    APPLIES = Applies((REGISTERS,), "registers", chosen=True)

    def check(self, history, context):
        return Result(self.name, True, "fine")


@pytest.fixture
def installed(monkeypatch):
    """Install entry points of the checkers group, as (name, "module:attribute") pairs."""
    def install(*points: tuple[str, str]) -> None:
        fake = [metadata.EntryPoint(name, value, GROUP) for name, value in points]
        real = metadata.entry_points
        monkeypatch.setattr(metadata, "entry_points", lambda group=None, **kw:
                            fake if group == GROUP else real(group=group, **kw))
    return install


def event(index, process, type_, f, key, value, version=None) -> Op:
    return Op(index, index * 10, process, type_, f, key, value, version=version)


def register_history(versioned: bool) -> list[Op]:
    version = 1 if versioned else None
    return [event(0, 0, "invoke", "write", "k", 1), event(1, 0, "ok", "write", "k", 1, version),
            event(2, 1, "invoke", "read", "k", None),
            event(3, 1, "ok", "read", "k", 1, version)]


SET = [event(0, 0, "invoke", "add", "s", 1), event(1, 0, "ok", "add", "s", 1),
       event(2, 1, "invoke", "read", "s", None), event(3, 1, "ok", "read", "s", [1])]
TXNS = [event(0, 0, "invoke", "txn", None, [["append", "x", 1]]),
        event(1, 0, "ok", "txn", None, [["append", "x", 1]])]


@pytest.mark.parametrize("history, chosen", [
    (register_history(versioned=False), ["linearizable", "stats"]),
    (register_history(versioned=True), ["linearizable", "session", "stats"]),
    (SET, ["set-full", "stats"]),
    (TXNS, ["list-append", "stats"]),
])
def test_the_checkers_chosen_follow_what_each_declares(history, chosen):
    assert choose_checkers(history) == chosen


def test_a_plug_in_that_asks_to_be_chosen_is_chosen_after_the_built_ins(installed):
    installed(("chosen", f"{__name__}:Chosen"))
    assert choose_checkers(register_history(False)) == ["linearizable", "stats", "chosen"]
    assert choose_checkers(SET) == ["set-full", "stats"]


def test_traits_tell_the_kinds_of_history_apart():
    assert traits_of(TXNS).kind == "transactions" and traits_of(SET).kind == "sets"
    assert traits_of(register_history(True)).versioned
    assert not traits_of(register_history(False)).versioned


def test_an_unknown_checker_is_one_line_naming_those_there_are():
    with pytest.raises(registry.UnknownChecker, match=r"unknown checker 'nope'; checkers: "
                                                      r"linearizable, session, .*stats"):
        registry.find("nope")


@pytest.mark.parametrize("target, complaint", [
    ("no_such_module:Checker", "cannot load no_such_module:Checker: ModuleNotFoundError"),
    ("checkers.result:Result", "is not a subclass of checkers.base.Checker"),
    ("checkers.builtin:StatsChecker", "the checker calls itself 'stats'"),
])
def test_a_broken_entry_point_is_one_line_saying_why(installed, target, complaint):
    installed(("mine", target))
    with pytest.raises(registry.BrokenChecker) as caught:
        registry.find("mine")
    message = str(caught.value)
    assert message.startswith("checker mine (entry point)") and complaint in message
    assert "\n" not in message


def test_an_entry_point_never_replaces_a_built_in(installed):
    installed(("stats", "no_such_module:Checker"), ("chosen", f"{__name__}:Chosen"))
    assert registry.find("stats").__module__ == "checkers.builtin"
    assert registry.find("chosen") is Chosen
    assert registry.names()[-1] == "chosen"


@pytest.mark.parametrize("cls, options, complaint", [
    (LinearizableChecker, {"method": "magic"}, "checker linearizable: method must be one of"),
    (LinearizableChecker, {"budget": -1}, "budget must be at least 0"),
    (LinearizableChecker, {"nope": 1}, "checker linearizable: unknown option 'nope'"),
    (SessionChecker, {"scope": 3}, "checker session: scope must be a string"),
    (ListAppendChecker, {"consistency_models": ["linearizable"]}, "must be one of"),
])
def test_options_a_checker_does_not_take_are_refused_when_it_is_made(cls, options, complaint):
    with pytest.raises(OptionError, match=complaint):
        cls(options)


def test_options_reach_the_check_they_belong_to():
    checker = LinearizableChecker({"model": "string-append", "initial": '"a"', "budget": 5})
    assert checker.model.name == "string-append" and checker.budget.seconds == 5
    with pytest.raises(ModelError, match="initial must be JSON"):
        LinearizableChecker({"initial": "{"})
    with pytest.raises(ModelError, match="bad option for model 'string-append'"):
        LinearizableChecker({"model": "string-append", "nil_read": "any"})
    assert ListAppendChecker({"consistency_models": "serializable"}).consistency_models == (
        "serializable",)
    combined, _ = run_checkers(register_history(True), ["session"],
                               {"session": {"scope": "global"}}, CheckContext())
    assert combined["valid"] is True


def test_a_manifest_model_names_its_checker():
    register = registry.for_model("cas-register", {"initial": 0, "nil_read": "any",
                                                   "timed_out_fail": "info"},
                                  budget=60, consistency_models=["serializable"])
    assert isinstance(register, LinearizableChecker)
    assert register.options["initial"] == "0" and register.budget.seconds == 60
    txns = registry.for_model("list-append", {"consistency_models": ["snapshot-isolation"]},
                              budget=60)
    assert isinstance(txns, ListAppendChecker)
    assert txns.consistency_models == ("snapshot-isolation",)
    with pytest.raises(registry.UnknownChecker, match="unknown model 'queue'; models: .*"
                                                      "list-append"):
        registry.for_model("queue", {})
    with pytest.raises(OptionError, match="checker list-append: unknown option 'nil_read'"):
        registry.for_model("list-append", {"nil_read": "any"})


def test_a_history_kind_must_be_one_there_is():
    with pytest.raises(ValueError, match="unknown history kind 'queues'"):
        Applies(("queues",), "queues")
