"""Workloads as modules: the registry that finds them (built in, or through the
`faultline.workloads` entry point), what each declares and is given, the list-append
workload's transactions, the spec's consistency models, and a list-append history recorded as
a run records it and judged by the list-append checker."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from importlib import metadata
from pathlib import Path

import pytest

from checkers.builtin import LinearizableChecker, ListAppendChecker
from checkers.formats import load_history
from checkers.list_append.history import transactions
from checkers.suite import run_checkers
from harness import workloads
from harness.cli import exits
from harness.cli import main as cli
from harness.cli.run import spec_from_args
from harness.run.recorder import Recorder
from harness.run.runner import _perform, check_choices
from harness.run.spec import SpecError, TestSpec, from_toml
from harness.workloads import Invocation, Mix, Workload, checker_options, make_workload
from harness.workloads.list_append import FINAL_KEYS_PER_TXN, MAX_MICRO_OPS
from pluginkit.options import Option, OptionError

BUILTIN = ("list-append", "register", "session", "set")


class QueueWorkload(Workload):
    """A stand-in for a user's own workload, found through the entry point."""

    name = "queue"
    OPS = ("enqueue", "dequeue")
    checkers = ("stats",)

    def default_mix(self):
        return {"enqueue": 0.5, "dequeue": 0.5}


class NotAWorkload:
    name = "plain"


@pytest.fixture
def installed(monkeypatch):
    """Entry points as an installed distribution would declare them: one workload, one that
    cannot be imported, one that is not a workload, one that calls itself otherwise, and one
    that tries to replace a built-in workload."""
    points = [metadata.EntryPoint(name, value, workloads.ENTRY_POINT_GROUP) for name, value in (
        ("queue", f"{__name__}:QueueWorkload"),
        ("broken", "no_such_module:Workload"),
        ("plain", f"{__name__}:NotAWorkload"),
        ("misnamed", f"{__name__}:QueueWorkload"),
        ("register", f"{__name__}:QueueWorkload"))]
    real = metadata.entry_points

    def entry_points(**select):
        if select.get("group") == workloads.ENTRY_POINT_GROUP:
            return points
        return real(**select)

    monkeypatch.setattr(metadata, "entry_points", entry_points)


def test_the_registry_finds_each_builtin_workload_by_name():
    assert workloads.names() == sorted(BUILTIN)
    for name in BUILTIN:
        cls = workloads.find(name)
        assert issubclass(cls, Workload) and cls.name == name
        assert make_workload(name, 2).name == name
    with pytest.raises(workloads.UnknownWorkload,
                       match="unknown workload 'queue'; workloads: list-append, register, "
                             "session, set"):
        workloads.find("queue")


def test_an_entry_point_workload_is_found_and_the_faulty_ones_say_why(installed):
    assert workloads.find("queue") is QueueWorkload
    assert workloads.entries()["register"].origin == "builtin"    # never replaced
    assert workloads.find("register").__name__ == "RegisterWorkload"
    assert "queue" in workloads.names()
    queue = make_workload("queue", 1, cas_share=0.3, value_size=10)   # not its options
    assert queue.next_op(random.Random(1)).f in ("enqueue", "dequeue")
    with pytest.raises(workloads.BrokenWorkload, match="cannot load no_such_module"):
        workloads.find("broken")
    with pytest.raises(workloads.BrokenWorkload, match="not a subclass"):
        workloads.find("plain")
    with pytest.raises(workloads.BrokenWorkload, match="calls itself 'queue'"):
        workloads.find("misnamed")
    # A test names it like any other; refnode does not claim it, so the run is refused.
    with pytest.raises(SpecError, match="refnode supports register, set, session, not queue"):
        TestSpec(workload="queue", mix={"enqueue": 1}).validate()
    with pytest.raises(SpecError, match="--workload: workload broken"):
        TestSpec(workload="broken").validate()


def test_each_workload_gets_only_the_options_it_takes():
    register = make_workload("register", 2, cas_share=0.3, value_size=20)
    assert register.mix["cas"] == 0.3 and len(register.fresh_value()) == 20
    plain = make_workload("set", 2, cas_share=0.3, value_size=20, consistency_models=None)
    assert plain.value_size == 0 and isinstance(plain.fresh_value(), int)
    session = make_workload("session", 2, value_size=20, cas_share=0.3)
    assert session.value_size == 20
    assert make_workload("set", 2).check_options() == {}


def test_the_checkers_settings_come_from_what_the_workload_declares():
    register = make_workload("register", 2)
    assert check_choices(register) == {"model": {"name": "kv"}}
    # "kv": a cas-register per key
    model = LinearizableChecker(checker_options(register)["linearizable"]).model
    assert model.name == "cas-register" and model.split_by_key
    txns = make_workload("list-append", 2)
    assert check_choices(txns) == {"consistency_models": ["strict-serializable"]}
    chosen = make_workload("list-append", 2,
                           consistency_models=["serializable", "read-committed"])
    assert check_choices(chosen) == {"consistency_models": ["serializable", "read-committed"]}
    assert ListAppendChecker(checker_options(chosen)["list-append"]).consistency_models == (
        "serializable", "read-committed")
    with pytest.raises(OptionError, match="must be one of"):
        make_workload("list-append", 2, consistency_models=["linearizable"])


def _txns(workload, seed, count, mix=None):
    rng = random.Random(seed)
    return [workload.next_op(rng, mix) for _ in range(count)]


def test_list_append_transactions_are_1_to_4_reads_and_unique_appends():
    workload = make_workload("list-append", 3)
    ops = _txns(workload, 1, 2000)
    assert all(op.f == "txn" and op.key is None and not op.final for op in ops)
    assert Counter(len(op.value) for op in ops).keys() == set(range(1, MAX_MICRO_OPS + 1))
    mops = [mop for op in ops for mop in op.value]
    assert {mop[0] for mop in mops} == {"r", "append"}
    assert all(mop[2] is None for mop in mops if mop[0] == "r")
    elements = [mop[2] for mop in mops if mop[0] == "append"]
    assert all(isinstance(e, int) for e in elements) and len(set(elements)) == len(elements)
    assert {mop[1] for mop in mops} == {"k0", "k1", "k2"}      # no retirement by default
    share = sum(mop[0] == "append" for mop in mops) / len(mops)
    assert 0.45 < share < 0.55                                  # about half and half


def test_list_append_mix_weighs_micro_operations():
    workload = make_workload("list-append", 2, mix={"r": 1, "append": 3})
    mops = [mop for op in _txns(workload, 2, 2000) for mop in op.value]
    assert 0.72 < sum(mop[0] == "append" for mop in mops) / len(mops) < 0.78
    reads_only = [mop for op in _txns(workload, 3, 200, {"r": 1}) for mop in op.value]
    assert {mop[0] for mop in reads_only} == {"r"}
    with pytest.raises(SpecError, match="its operations: r, append"):
        TestSpec(workload="list-append", mix={"write": 1}).validate()


def test_list_append_keys_retire_and_the_final_reads_cover_every_key_used():
    workload = make_workload("list-append", 2, ops_per_key=5)
    ops = _txns(workload, 4, 300)
    touching = Counter(key for op in ops for key in {mop[1] for mop in op.value})
    assert len(workload.keys) == 2 and len(touching) > 20
    assert max(touching.values()) <= 5          # once per transaction per key it touches
    assert set(touching) <= set(workload.used)
    final = workload.final_ops()
    assert all(op.f == "txn" and op.key is None and op.final for op in final)
    assert all(1 <= len(op.value) <= FINAL_KEYS_PER_TXN for op in final)
    assert [mop for op in final for mop in op.value] == [["r", key, None]
                                                          for key in workload.used]


def test_list_append_same_seed_same_transactions():
    first = _txns(make_workload("list-append", 3, ops_per_key=7), 9, 500)
    again = _txns(make_workload("list-append", 3, ops_per_key=7), 9, 500)
    other = _txns(make_workload("list-append", 3, ops_per_key=7), 10, 500)
    assert first == again and first != other


def test_spec_consistency_models_are_checked_against_the_workload(tmp_path):
    spec = TestSpec(workload="list-append", system="refnode")
    assert spec.workload_options()["consistency_models"] is None
    for models, fragment in [
        (["linearizable"], "--consistency-model: unknown model 'linearizable'; models: "
                           "strict-serializable, serializable"),
        ([], "must list at least one value"),
    ]:
        with pytest.raises(SpecError, match=fragment):
            TestSpec(workload="list-append", consistency_models=models).validate()
    with pytest.raises(SpecError, match="--consistency-model: the register workload's "
                                        r"checkers judge no consistency models \(list-append"):
        TestSpec(consistency_models=["serializable"]).validate()
    # A TOML file names them too (and refnode, which runs no transactions, is refused next).
    config = tmp_path / "txn.toml"
    config.write_text('workload = "list-append"\nconsistency_models = ["serializable"]\n')
    with pytest.raises(SpecError, match="refnode supports register, set, session, not "
                                        "list-append"):
        from_toml(config)
    config.write_text('workload = "set"\nconsistency_models = ["serializable"]\n')
    with pytest.raises(SpecError, match="the set workload's checkers judge no consistency"):
        from_toml(config)


def test_faultline_run_takes_consistency_models_like_faultline_check():
    parser = cli.build_parser(["run"])
    args = parser.parse_args(["run", "--workload", "register", "--consistency-model",
                              "serializable,snapshot-isolation", "--consistency-model",
                              "read-committed"])
    with pytest.raises(SpecError, match="register workload's checkers judge no"):
        spec_from_args(args)
    args = parser.parse_args(["run", "--workload", "list-append", "--consistency-model",
                              "serializable,snapshot-isolation", "--consistency-model",
                              "read-committed"])
    with pytest.raises(SpecError, match="refnode supports register, set, session, not "
                                        "list-append"):
        spec_from_args(args)
    args = parser.parse_args(["run", "--workload", "list-append", "--consistency-model",
                              "nope"])
    with pytest.raises(SpecError, match="unknown model 'nope'"):
        spec_from_args(args)


class MemoryTxnStore:
    """Transactions applied one at a time to lists in a dict: serializable by construction.
    With `lose`, the store forgets the last element of the first non-empty list a
    transaction reads, once, after that transaction is acknowledged: an acknowledged append
    lost as a failover to a stale replica loses it."""

    def __init__(self, lose: bool = False):
        self.lists: dict[str, list[int]] = {}
        self.lose = lose
        self.lost: tuple[str, int] | None = None
        self._lock = threading.Lock()

    def client(self):
        return self

    def invoke(self, f, key, value, **options):
        assert f == "txn" and key is None
        with self._lock:
            done = []
            for mop_f, mop_key, element in value:
                if mop_f == "append":
                    self.lists.setdefault(mop_key, []).append(element)
                    done.append([mop_f, mop_key, element])
                else:
                    read = self.lists.get(mop_key)
                    done.append([mop_f, mop_key, list(read) if read is not None else None])
                    if self.lose and self.lost is None and read:
                        self.lost = (mop_key, read.pop())
            return {"type": "ok", "value": done, "node": "n1"}

    def close(self):
        pass


def _record_run(path: Path, store: MemoryTxnStore, seed: int = 5) -> tuple[Workload, list]:
    """A small list-append history recorded as a run records it: clients' transactions
    interleaved over four processes, then the final reads."""
    workload = make_workload("list-append", 2, ops_per_key=20)
    recorder = Recorder(path)
    rngs = [random.Random(f"{seed}/client/{n}") for n in range(4)]
    for n in range(300):
        _perform(store.client(), recorder, n % 4, workload.next_op(rngs[n % 4]))
    for process, invocation in enumerate(workload.final_ops(), 10 ** 6):
        assert _perform(store.client(), recorder, process, invocation) == "ok"
    recorder.close()
    return workload, load_history(path)


def test_a_recorded_list_append_history_loads_and_a_serial_store_is_valid(tmp_path):
    workload, history = _record_run(tmp_path / "history.jsonl", MemoryTxnStore())
    txns = transactions(history)
    assert len(txns) == 300 + len(workload.final_ops()) and all(t.ok for t in txns)
    # A read of a key never appended to is recorded null, and read as the empty list.
    assert any(mop[0] == "r" and mop[2] is None for op in history if op.type == "ok"
               for mop in op.value)
    combined, _ = run_checkers(history, workload.checkers, checker_options(workload))
    assert combined["valid"] is True, combined
    assert combined["checkers"]["list-append"]["figures"]["models"] == {
        "strict-serializable": True}


def test_a_lost_append_makes_the_list_append_checker_say_invalid(tmp_path):
    store = MemoryTxnStore(lose=True)
    workload, history = _record_run(tmp_path / "history.jsonl", store)
    assert store.lost is not None
    combined, _ = run_checkers(history, workload.checkers, checker_options(workload))
    assert combined["valid"] is False, combined
    assert combined["checkers"]["list-append"]["valid"] is False


def test_a_transaction_that_throws_is_recorded_info_with_its_micro_operations(tmp_path):
    class Throwing:
        def invoke(self, f, key, value, **options):
            raise TimeoutError("no answer")

        def close(self):
            pass

    recorder = Recorder(tmp_path / "history.jsonl")
    txn = Invocation("txn", None, [["r", "k0", None], ["append", "k0", 1]])
    assert _perform(Throwing(), recorder, 0, txn) == "info"
    recorder.close()
    (invoke, info) = load_history(tmp_path / "history.jsonl")
    assert (info.type, info.f, info.key, info.value) == ("info", "txn", None, txn.value)
    (t,) = transactions([invoke, info])
    assert t.outcome == "info" and t.mops == [("r", "k0", None), ("append", "k0", 1)]


def test_checking_a_run_directory_again_judges_by_the_models_the_run_recorded(tmp_path,
                                                                              capsys):
    workload, _ = _record_run(tmp_path / "history.jsonl", MemoryTxnStore())
    workload.set_check_options({"consistency_models": ["read-committed"]})
    (tmp_path / "test.json").write_text(json.dumps(
        {"check": {"checkers": list(workload.checkers), **check_choices(workload)}}))
    assert cli.main(["check", str(tmp_path), "--json"]) == exits.VALID
    said = json.loads(capsys.readouterr().out)
    assert said["checkers"]["list-append"]["figures"]["models"] == {"read-committed": True}
    # What it was judged by: consistency models, not a register model it never used.
    assert said["consistency_models"] == ["read-committed"] and "model" not in said
    assert cli.main(["check", str(tmp_path), "--json", "--consistency-model",
                     "serializable"]) == exits.VALID             # the command line wins
    figures = json.loads(capsys.readouterr().out)["checkers"]["list-append"]["figures"]
    assert figures["models"] == {"serializable": True}


class GlobalSessions(Workload):
    """A workload whose checkers' option is misnamed: `session_scope` is no option of the
    session checker (its option is `scope`), so the value would reach nobody."""

    name = "global-sessions"
    OPS = ("read", "write")
    checkers = ("session", "stats")
    CHECK_OPTIONS = (Option("session_scope", "str", "global", "sessions across keys"),)

    def default_mix(self) -> Mix:
        return {"read": 0.5, "write": 0.5}


class ScopedSessions(GlobalSessions):
    """The same, spelt as the session checker spells its option."""

    name = "scoped-sessions"
    CHECK_OPTIONS = (Option("scope", "str", "global", "sessions across keys"),)


def test_a_checkers_option_no_checker_of_the_workload_takes_is_refused():
    with pytest.raises(OptionError, match="workload global-sessions: its checkers' option "
                                          "'session_scope' is declared by none of its "
                                          r"checkers \(session, stats\)"):
        checker_options(GlobalSessions(2))
    # Spelt as the session checker spells it, it reaches the session checker and no other.
    assert checker_options(ScopedSessions(2)) == {"session": {"scope": "global"}, "stats": {}}


def test_a_checker_that_refuses_the_runs_options_is_refused_before_the_run(monkeypatch):
    """A checker the test adds gets the run's budget when it declares an option of that name;
    one that cannot take it is a usage error before anything starts, never an error once the
    run is over."""
    from checkers import registry
    from checkers.base import Applies, Checker

    class WholeSeconds(Checker):
        name = "whole-seconds"
        APPLIES = Applies(("registers",), "registers")
        OPTIONS = (Option("budget", "int", 1, "whole seconds"),)

    real = registry.find
    monkeypatch.setattr(registry, "find",
                        lambda name: WholeSeconds if name == "whole-seconds" else real(name))
    with pytest.raises(SpecError, match="checkers: checker whole-seconds: budget must be"):
        TestSpec(checkers=["whole-seconds"], runs_dir="unused").validate()
