"""The linearizability checker: hand-made histories, generated ones, and the three methods."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.history import Op
from checkers.linearizability import Budget, check_linearizable
from checkers.models import ModelError, make_model
from checkers.synthetic import Shape, generate
from checkers import versions, wgl, zones
from checkers.history import pair

REGISTER = make_model("cas-register", initial=None)


def history(*events) -> list[Op]:
    """Events as (time, process, type, f, value[, key[, version]]) tuples."""
    ops = []
    for index, event in enumerate(events):
        time, process, kind, f, value, *rest = event
        key = rest[0] if rest else None
        version = rest[1] if len(rest) > 1 else None
        ops.append(Op(index, time, process, kind, f, key, value, version=version))
    return ops


STALE = history(
    (0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1),
    (2, 1, "invoke", "write", 2), (3, 1, "ok", "write", 2),
    (4, 0, "invoke", "read", None), (5, 0, "ok", "read", 1),
)


@pytest.mark.parametrize("method", ["auto", "search", "zones"])
def test_a_read_of_an_overwritten_value_is_rejected(method):
    result = check_linearizable(STALE, REGISTER, method=method)
    assert result.valid is False
    ce = result.counterexample
    assert ce["op"]["f"] == "read" and ce["op"]["output"] == 1
    assert "not linearizable" in result.summary


def test_search_counterexample_has_prefix_state_and_concurrent_ops():
    h = history(
        (0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1),
        (2, 1, "invoke", "write", 2), (3, 2, "invoke", "read", None),
        (4, 1, "ok", "write", 2), (5, 2, "ok", "read", 2),
        (6, 0, "invoke", "read", None), (7, 0, "ok", "read", 1),
    )
    result = check_linearizable(h, REGISTER, method="search")
    ce = result.counterexample
    assert result.valid is False
    assert ce["method"] == "search"
    assert ce["op"]["output"] == 1 and ce["op"]["call"] == 6
    assert ce["state_before"] == "2"
    assert ce["prefix_length"] == 3
    assert [op["input"] for op in ce["prefix_tail"] if op["f"] == "write"] == [1, 2]


def test_concurrent_read_may_see_either_value():
    h = history(
        (0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1),
        (2, 1, "invoke", "write", 2), (3, 0, "invoke", "read", None),
        (4, 0, "ok", "read", 1), (5, 1, "ok", "write", 2),
    )
    for method in ("auto", "search", "zones"):
        assert check_linearizable(h, REGISTER, method=method).valid is True


def test_equal_timestamps_are_concurrent():
    # The write returns at 3 and the read is invoked at 3: they overlap, so the read may
    # precede the write.
    h = history((0, 0, "invoke", "write", 1), (3, 0, "ok", "write", 1),
                (3, 1, "invoke", "read", None), (4, 1, "ok", "read", None))
    for method in ("search", "zones"):
        assert check_linearizable(h, REGISTER, method=method).valid is True


def test_a_crashed_write_may_take_effect_long_after():
    h = history(
        (0, 0, "invoke", "write", 1), (1, 0, "info", "write", 1),
        (10, 1, "invoke", "read", None), (11, 1, "ok", "read", None),
        (20, 1, "invoke", "read", None), (21, 1, "ok", "read", 1),
    )
    for method in ("search", "zones"):
        assert check_linearizable(h, REGISTER, method=method).valid is True


def test_an_open_invocation_at_the_end_is_indeterminate():
    h = history((0, 0, "invoke", "write", 1), (5, 1, "invoke", "read", None),
                (6, 1, "ok", "read", 1))
    assert check_linearizable(h, REGISTER).valid is True


def test_failed_write_did_not_happen():
    h = history((0, 0, "invoke", "write", 1), (1, 0, "fail", "write", 1),
                (2, 1, "invoke", "read", None), (3, 1, "ok", "read", 1))
    assert check_linearizable(h, REGISTER).valid is False


def test_failed_cas_as_no_op_or_as_mismatch():
    h = history((0, 0, "invoke", "write", 0), (1, 0, "ok", "write", 0),
                (2, 1, "invoke", "cas", [0, 5]), (3, 1, "fail", "cas", [0, 5]))
    # Knossos: a failed cas did not happen. Jepsen's etcd: it saw another value, which here
    # contradicts the 0 that was certainly there.
    assert check_linearizable(h, make_model("cas-register", failed_cas="no-op")).valid is True
    assert check_linearizable(h, make_model("cas-register",
                                            failed_cas="mismatch")).valid is False


def test_nil_read_conventions():
    h = history((0, 0, "invoke", "write", 3), (1, 0, "ok", "write", 3),
                (2, 1, "invoke", "read", None), (3, 1, "ok", "read", None))
    assert check_linearizable(h, make_model("cas-register", nil_read="any")).valid is True
    assert check_linearizable(h, make_model("cas-register", nil_read="absent")).valid is False


def test_initial_value_option():
    h = history((0, 0, "invoke", "read", None), (1, 0, "ok", "read", 0))
    assert check_linearizable(h, make_model("cas-register", initial=0)).valid is True
    assert check_linearizable(h, make_model("cas-register", initial=None)).valid is False


def test_keys_are_independent_and_the_failing_key_is_named():
    h = history(
        (0, 0, "invoke", "write", 1, "a"), (1, 0, "ok", "write", 1, "a"),
        (2, 1, "invoke", "write", 2, "b"), (3, 1, "ok", "write", 2, "b"),
        (4, 0, "invoke", "read", None, "a"), (5, 0, "ok", "read", 1, "a"),
        (6, 1, "invoke", "read", None, "b"), (7, 1, "ok", "read", 1, "b"),
    )
    result = check_linearizable(h, REGISTER)
    assert result.valid is False
    assert result.counterexample["key"] == "b"
    single = make_model("cas-register", partition="none")
    assert check_linearizable(h, single).valid is False


def test_string_append_and_set_models():
    h = history((0, 0, "invoke", "append", "x"), (1, 0, "ok", "append", "x"),
                (2, 1, "invoke", "append", "y"), (3, 1, "ok", "append", "y"),
                (4, 0, "invoke", "get", None), (5, 0, "ok", "get", "xy"))
    model = make_model("string-append", initial="")
    assert check_linearizable(h, model).valid is True
    h[-1].value = "yx"
    assert check_linearizable(h, model).valid is False
    s = history((0, 0, "invoke", "add", 1), (1, 0, "ok", "add", 1),
                (2, 1, "invoke", "read", None), (3, 1, "ok", "read", []))
    assert check_linearizable(s, make_model("set")).valid is False
    s[-1].value = [1]
    assert check_linearizable(s, make_model("set")).valid is True


def test_unknown_operation_is_a_model_error():
    h = history((0, 0, "invoke", "frobnicate", 1), (1, 0, "ok", "frobnicate", 1))
    with pytest.raises(ModelError, match="frobnicate"):
        check_linearizable(h, REGISTER)
    with pytest.raises(ModelError, match="model"):
        make_model("no-such-model")
    with pytest.raises(ModelError, match="nil_read"):
        make_model("cas-register", nil_read="sometimes")


def test_time_budget_gives_unknown_not_a_hang():
    # Small values and many crashed writes: configurations grow as 2^crashed.
    h = generate(Shape(clients=30, ops=3000, unique_values=False, small_values=3,
                       info_share=0.2, cas_share=0.2), seed=3)
    result = check_linearizable(h, REGISTER, budget=Budget(seconds=0.2))
    assert result.valid == "unknown"
    assert "time budget" in result.summary


def test_memory_budget_gives_unknown():
    h = generate(Shape(clients=30, ops=3000, unique_values=False, small_values=3,
                       info_share=0.2, cas_share=0.2), seed=3)
    result = check_linearizable(h, REGISTER, budget=Budget(memory_bytes=200_000))
    assert result.valid == "unknown"
    assert "memory budget" in result.summary


def test_parallel_workers_agree_with_one():
    h = generate(Shape(clients=10, keys=6, ops=3000, unique_values=False, info_share=0.01),
                 seed=5)
    one = check_linearizable(h, REGISTER, workers=1)
    two = check_linearizable(h, REGISTER, workers=2)
    assert one.valid is True and two.valid is True
    assert two.figures["workers"] == 2
    bad = generate(Shape(clients=10, keys=6, ops=3000, stale_read=True), seed=5)
    assert check_linearizable(bad, REGISTER, workers=2).valid is False


def test_versions_method_is_used_when_versions_are_reported():
    h = generate(Shape(clients=5, keys=2, ops=400, unique_values=False, versions=True), 2)
    result = check_linearizable(h, REGISTER)
    assert result.valid is True
    assert result.figures["methods"] == {"versions": 2}


# --- generated histories -----------------------------------------------------------------

shapes = st.builds(
    Shape,
    clients=st.integers(1, 6), keys=st.integers(1, 3), ops=st.integers(1, 60),
    info_share=st.sampled_from([0.0, 0.05, 0.2]), unique_values=st.booleans(),
    small_values=st.integers(2, 4), read_share=st.sampled_from([0.3, 0.5, 0.7]),
    cas_share=st.sampled_from([0.0, 0.0, 0.2]), versions=st.booleans())


@settings(max_examples=150, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2 ** 32))
def test_histories_of_a_linearizable_store_are_accepted(shape, seed):
    h = generate(shape, seed)
    assert check_linearizable(h, REGISTER).valid is True
    assert check_linearizable(h, REGISTER, method="search").valid is True


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(clients=st.integers(2, 6), keys=st.integers(1, 3), info=st.sampled_from([0.0, 0.1]),
       seed=st.integers(0, 2 ** 32))
def test_one_injected_stale_read_is_rejected(clients, keys, info, seed):
    shape = Shape(clients=clients, keys=keys, ops=80, info_share=info, stale_read=True)
    try:
        h = generate(shape, seed)
    except ValueError:   # no read could be made stale in so short a history
        return
    assert check_linearizable(h, REGISTER).valid is False
    assert check_linearizable(h, REGISTER, method="search").valid is False


def _random_register_history(rng: random.Random, unique: bool) -> list[Op]:
    """Arbitrary (mostly not linearizable) histories: reads return random written values."""
    clients, events, time = rng.randint(1, 4), [], 0
    pending: dict[int, tuple[str, object]] = {}
    written = [None]
    next_value = 1
    for _ in range(rng.randint(2, 24)):
        time += rng.randint(0, 2)
        process = rng.randrange(clients)
        if process in pending:
            f, value = pending.pop(process)
            kind = rng.choice(["ok", "ok", "ok", "info"])
            if f == "read":
                value = rng.choice(written) if kind == "ok" else None
            events.append((time, process, kind, f, value))
        else:
            if rng.random() < 0.5:
                f, value = "read", None
            else:
                f, value = "write", next_value if unique else rng.randint(1, 3)
                next_value += 1
                written.append(value)
            pending[process] = (f, value)
            events.append((time, process, "invoke", f, value))
    return history(*events)


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 2 ** 32), unique=st.booleans())
def test_fast_paths_agree_with_the_search(seed, unique):
    h = _random_register_history(random.Random(seed), unique)
    ops = [op for op in pair(h) if REGISTER.relevant(op)]
    by_search = wgl.search(ops, REGISTER).linearizable
    if zones.applicable(ops, REGISTER):
        assert zones.check(ops, REGISTER).linearizable == by_search
    assert check_linearizable(h, REGISTER).valid == by_search


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2 ** 32))
def test_consistent_versions_imply_linearizable(seed):
    rng = random.Random(seed)
    h = generate(Shape(clients=rng.randint(1, 5), ops=rng.randint(1, 40), unique_values=False,
                       small_values=2, versions=True, info_share=0.1), seed)
    # Corrupt one version half of the time: the sweep must then never claim a proof falsely.
    oks = [op for op in h if op.type == "ok"]
    if oks and rng.random() < 0.5:
        rng.choice(oks).version = rng.randint(0, 5)
    ops = [op for op in pair(h) if REGISTER.relevant(op)]
    if versions.applicable(ops, REGISTER) and versions.consistent(ops, REGISTER):
        assert wgl.search(ops, REGISTER).linearizable is True


def test_versions_place_an_unseen_crashed_write_that_a_cas_expected():
    # w1 is version 10; a crashed write of 2 took effect unseen (its index, 11, was never
    # reported); the cas expecting 2 is version 12. Linearizable, and the sweep says so.
    h = history(
        (0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1, None, 10),
        (2, 1, "invoke", "write", 2), (3, 1, "info", "write", 2),
        (4, 2, "invoke", "cas", [2, 3]), (5, 2, "ok", "cas", [2, 3], None, 12),
        (6, 2, "invoke", "read", None), (7, 2, "ok", "read", 3, None, 12),
    )
    ops = [op for op in pair(h) if REGISTER.relevant(op)]
    assert versions.applicable(ops, REGISTER) and versions.consistent(ops, REGISTER)
    assert check_linearizable(h, REGISTER).figures["methods"] == {"versions": 1}
    # Without the crashed write the cas had nothing to find: not consistent, and the search
    # confirms that the history is not linearizable.
    h2 = [op for op in h if op.process != 1]
    for i, op in enumerate(h2):
        op.index = i
    assert check_linearizable(h2, REGISTER).valid is False


def test_progress_is_told_as_keys_are_decided():
    h = generate(Shape(clients=5, keys=4, ops=400, unique_values=False), 3)
    calls = []
    result = check_linearizable(h, REGISTER, workers=1, progress=lambda *a: calls.append(a))
    assert result.valid is True and result.figures["methods"] == {"search": 4}
    checked = result.figures["checked_operations"]
    assert calls[-1] == (checked, checked, 4, 4)
    assert [c[2] for c in calls] == sorted(c[2] for c in calls) and len(calls) >= 4
