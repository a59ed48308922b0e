"""The chain method (registers with compare-and-set and unique written values): hand-made
histories it must accept and reject, and agreement with the search on many random ones."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkers import chains, wgl
from checkers.history import Op, pair
from checkers.linearizability import check_linearizable
from checkers.models import ModelError, make_model

NO_OP = make_model("cas-register", initial=None)
MISMATCH = make_model("cas-register", initial=None, failed_cas="mismatch")


def history(*events) -> list[Op]:
    """Events as (time, process, type, f, value) tuples."""
    return [Op(i, t, p, kind, f, None, value) for i, (t, p, kind, f, value) in enumerate(events)]


def verdict(h, model=NO_OP):
    ops = [op for op in pair(h) if model.relevant(op)]
    assert chains.applicable(ops, model)
    return chains.check(ops, model)


def test_a_cas_chain_read_in_order_is_linearizable():
    h = history((0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1),
                (2, 1, "invoke", "cas", [1, 2]), (3, 1, "ok", "cas", [1, 2]),
                (4, 0, "invoke", "read", None), (5, 0, "ok", "read", 2))
    assert verdict(h).linearizable is True
    result = check_linearizable(h, NO_OP)
    assert result.valid is True and result.figures["methods"] == {"chains": 1}


def test_a_read_of_the_value_a_cas_replaced_is_rejected():
    h = history((0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1),
                (2, 1, "invoke", "cas", [1, 2]), (3, 1, "ok", "cas", [1, 2]),
                (4, 0, "invoke", "read", None), (5, 0, "ok", "read", 1))
    found = verdict(h)
    assert found.linearizable is False
    assert "value 2 must be in place by 0.000000 s" in found.reason
    result = check_linearizable(h, NO_OP)
    assert result.valid is False and result.counterexample["op"]["output"] == 1


def test_two_cas_from_one_value_cannot_both_succeed():
    h = history((0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1),
                (2, 1, "invoke", "cas", [1, 2]), (3, 2, "invoke", "cas", [1, 3]),
                (4, 1, "ok", "cas", [1, 2]), (5, 2, "ok", "cas", [1, 3]))
    found = verdict(h)
    assert found.linearizable is False and "both replaced 1" in found.reason


def test_a_cas_that_expects_a_value_never_written_is_rejected():
    h = history((0, 1, "invoke", "cas", [7, 2]), (1, 1, "ok", "cas", [7, 2]))
    assert verdict(h).linearizable is False


def test_a_value_replaced_by_a_write_does_not_come_back():
    # A cas replaces 1 by 3 while 2 is written; a read sees 2, a later read sees 3. 1 was in
    # place before 2's write could begin, so 2 came after 1 and 3 (3 follows 1 directly), and
    # 3, once replaced, cannot be read again.
    h = history((0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1),
                (2, 1, "invoke", "cas", [1, 3]), (3, 2, "invoke", "write", 2),
                (4, 1, "ok", "cas", [1, 3]), (5, 2, "ok", "write", 2),
                (6, 0, "invoke", "read", None), (7, 0, "ok", "read", 2),
                (8, 0, "invoke", "read", None), (9, 0, "ok", "read", 3))
    assert verdict(h).linearizable is False
    assert wgl.search([op for op in pair(h)], NO_OP).linearizable is False


def test_chains_that_each_must_come_first_are_rejected():
    # Two blind writes, each followed by reads that span past the other's read: 1 must hold
    # until 10, 2 must be in place by 8 and hold until 11, 1 in place by 9.
    h = history((0, 0, "invoke", "write", 1), (0, 1, "invoke", "write", 2),
                (1, 0, "ok", "write", 1), (1, 1, "ok", "write", 2),
                (2, 2, "invoke", "read", None), (2, 3, "invoke", "read", None),
                (3, 2, "ok", "read", 1), (3, 3, "ok", "read", 2),
                (4, 2, "invoke", "read", None), (4, 3, "invoke", "read", None),
                (5, 2, "ok", "read", 2), (5, 3, "ok", "read", 1))
    # 1 then 2 then 1 again (or 2, 1, 2): impossible with each value written once. The
    # history has no cas, so force the method rather than let the zones decide.
    result = check_linearizable(h, NO_OP, method="chains")
    assert result.valid is False
    assert result.counterexample["method"] == "chains"


def test_an_unseen_crashed_cas_may_not_have_happened_and_a_seen_one_did():
    unseen = history((0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1),
                     (2, 1, "invoke", "cas", [1, 2]), (3, 1, "info", "cas", [1, 2]),
                     (10, 0, "invoke", "read", None), (11, 0, "ok", "read", 1))
    assert verdict(unseen).linearizable is True
    seen = history((0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1),
                   (2, 1, "invoke", "cas", [1, 2]), (3, 1, "info", "cas", [1, 2]),
                   (10, 0, "invoke", "read", None), (11, 0, "ok", "read", 2),
                   (12, 0, "invoke", "read", None), (13, 0, "ok", "read", 1))
    assert verdict(seen).linearizable is False


def test_a_crashed_cas_seen_only_through_a_later_cas_took_effect():
    h = history((0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1),
                (2, 1, "invoke", "cas", [1, 2]), (3, 1, "info", "cas", [1, 2]),
                (4, 0, "invoke", "cas", [2, 3]), (5, 0, "ok", "cas", [2, 3]),
                (6, 0, "invoke", "read", None), (7, 0, "ok", "read", 3))
    assert verdict(h).linearizable is True
    h[-1] = Op(7, 7, 0, "ok", "read", None, 1)
    assert verdict(h).linearizable is False


def test_a_mismatch_the_schedule_explains_is_decided_and_one_it_does_not_is_left_to_search():
    explained = history((0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1),
                        (2, 1, "invoke", "cas", [5, 6]), (3, 1, "fail", "cas", [5, 6]))
    assert verdict(explained, MISMATCH).linearizable is True
    contradicted = history((0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1),
                           (2, 1, "invoke", "cas", [1, 6]), (3, 1, "fail", "cas", [1, 6]))
    assert verdict(contradicted, MISMATCH).linearizable is None
    result = check_linearizable(contradicted, MISMATCH)
    assert result.valid is False and result.figures["methods"] == {"search": 1}


def test_not_applicable_when_a_value_is_written_twice_or_forced_wrongly():
    h = history((0, 0, "invoke", "write", 1), (1, 0, "ok", "write", 1),
                (2, 1, "invoke", "cas", [1, 1]), (3, 1, "ok", "cas", [1, 1]))
    ops = [op for op in pair(h) if NO_OP.relevant(op)]
    assert not chains.applicable(ops, NO_OP)
    with pytest.raises(ModelError, match="chains method"):
        check_linearizable(h, NO_OP, method="chains")
    assert check_linearizable(h, NO_OP).valid is True   # the search decides


# --- agreement with the search -----------------------------------------------------------

def random_cas_history(rng: random.Random, max_ops: int = 12,
                       max_clients: int = 4) -> list[Op]:
    """A small register history with read, write and cas over unique values, made by running a
    real register at random instants inside each op's span (so valid), then, half of the
    time, spoiled in one place: a read's result, a cas's outcome, or a read's timing."""
    clients = rng.randint(1, max_clients)
    planned = []
    written = [None]
    next_value = 1
    free_at = [0] * clients
    process_of = list(range(clients))
    next_process = clients
    for _ in range(rng.randint(1, max_ops)):
        client = rng.randrange(clients)
        call = free_at[client] + rng.randint(0, 3)
        ret = call + rng.randint(0, 6)
        free_at[client] = ret + 1
        roll = rng.random()
        if roll < 0.4:
            f, value = "read", None
        elif roll < 0.7:
            f, value = "write", next_value
            written.append(next_value)
            next_value += 1
        else:
            expected = rng.choice(written[-3:] + [rng.choice(written)])
            f, value = "cas", [expected, next_value]
            written.append(next_value)
            next_value += 1
        crashed = rng.random() < 0.15
        planned.append({"process": process_of[client], "f": f, "value": value, "call": call,
                        "ret": ret, "crashed": crashed, "point": rng.uniform(call, ret),
                        "effect": not crashed or rng.random() < 0.5, "ok": True,
                        "output": None})
        if crashed:
            process_of[client] = next_process
            next_process += 1
    current = None
    for op in sorted((p for p in planned if p["effect"]), key=lambda p: p["point"]):
        if op["f"] == "read":
            op["output"] = current
        elif op["f"] == "write":
            current = op["value"]
        elif current == op["value"][0]:
            current = op["value"][1]
        else:
            op["ok"] = False
    if rng.random() < 0.5:
        _spoil(rng, planned, written)
    events = []
    for p in planned:
        events.append((p["call"], 0, p, "invoke"))
        kind = "info" if p["crashed"] else ("ok" if p["ok"] else "fail")
        events.append((p["ret"], 1, p, kind))
    events.sort(key=lambda e: (e[0], e[1]))
    out = []
    for i, (time, _, p, kind) in enumerate(events):
        value = p["output"] if p["f"] == "read" and kind == "ok" else \
            (None if p["f"] == "read" else p["value"])
        out.append(Op(i, time, p["process"], kind, p["f"], None, value))
    return out


def _spoil(rng: random.Random, planned: list[dict], written: list) -> None:
    done = [p for p in planned if not p["crashed"]]
    if not done:
        return
    victim = rng.choice(done)
    if victim["f"] == "read":
        if rng.random() < 0.7:
            victim["output"] = rng.choice(written)
        else:   # invoked later than it really was: its span shrinks from the left
            victim["call"] = min(victim["ret"], victim["call"] + rng.randint(1, 6))
    elif victim["f"] == "cas":
        victim["ok"] = not victim["ok"]


def _agree(h: list[Op], model) -> bool | None:
    """Assert the method agrees with the search whenever it decides; its verdict."""
    ops = [op for op in pair(h) if model.relevant(op)]
    if not chains.applicable(ops, model):
        return None
    found = chains.check(ops, model).linearizable
    if found is not None:
        assert found == wgl.search(ops, model).linearizable, [op.describe() for op in ops]
    return found


@settings(max_examples=600, deadline=None)
@given(seed=st.integers(0, 2 ** 32), mismatch=st.booleans())
def test_the_chain_method_agrees_with_the_search(seed, mismatch):
    _agree(random_cas_history(random.Random(seed)), MISMATCH if mismatch else NO_OP)


def test_the_agreement_covers_valid_invalid_crashed_and_undecided_cases():
    """Over a fixed sweep of seeds: the method decides both ways, with crashed ops and cas in
    play, and leaves some mismatches to the search (which then agrees with the auto check)."""
    tally = {True: 0, False: 0, None: 0}
    with_crashes = with_cas = 0
    for seed in range(1500):
        model = MISMATCH if seed % 3 == 0 else NO_OP
        h = random_cas_history(random.Random(seed))
        found = _agree(h, model)
        tally[found] += 1
        if found is not None:
            with_crashes += any(op.type == "info" for op in h)
            with_cas += any(op.f == "cas" and op.type == "ok" for op in h)
        if found is None and seed % 3 == 0:
            ops = [op for op in pair(h) if model.relevant(op)]
            assert check_linearizable(h, model).valid == wgl.search(ops, model).linearizable
    assert tally[True] > 600 and tally[False] > 150, tally
    assert tally[None] > 0, tally
    assert with_crashes > 100 and with_cas > 300, (with_crashes, with_cas)
