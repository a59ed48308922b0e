"""The list-append checker (part of issue 16): known answers per anomaly, simulated histories
valid under every model, the same with one planted anomaly invalid under exactly the models
that forbid it, EDN and JSON Lines through `faultline check`, and bad input."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.formats import load_history, save_history
from checkers.history import HistoryError, Op
from checkers.list_append import MODELS, check_list_append
from checkers.list_append.graph import strongly_connected
from checkers.list_append.synthetic import GADGETS, Shape, generate
from checkers.models import ModelError
from checkers.suite import choose_checkers
from harness.cli import exits
from harness.cli import main as cli
from tests.corpora import CORPORA, manifest_entries

SS, SER, SI, RR, RC = ("strict-serializable", "serializable", "snapshot-isolation",
                       "repeatable-read", "read-committed")
ALL = frozenset(MODELS)

# Which models each anomaly breaks, written out here rather than taken from the checker's own
# table (Elle's elle.consistency-model, after Adya and Cerone et al.).
BREAKS = {
    "G0": ALL,
    "G1a": ALL,
    "G1b": ALL,
    "G1c": ALL,
    "G-single": frozenset({SS, SER, SI, RR}),
    "G2-item": frozenset({SS, SER, RR}),          # write skew: snapshot isolation allows it
    "lost-update": frozenset({SS, SER, SI, RR}),
    "internal": frozenset({SS, SER, SI}),         # Elle: read committed, repeatable read allow
}


def txn(p, call, ret, *mops, type="ok"):
    """A transaction as its completed micro-ops: ("r", k, [..]) or ("append", k, v);
    `ret=None` leaves it open."""
    return {"p": p, "call": call, "ret": ret, "type": type, "mops": [list(m) for m in mops]}


def history(*txns):
    """Events of `txns`, invocations before completions at equal times, in time order."""
    timed = []
    for n, t in enumerate(txns):
        invoked = [[f, k, None if f == "r" else v] for f, k, v in t["mops"]]
        timed.append((t["call"], 0, n, Op(0, t["call"], t["p"], "invoke", "txn", None, invoked)))
        if t["ret"] is not None:
            value = t["mops"] if t["type"] == "ok" else invoked
            timed.append((t["ret"], 1, n, Op(0, t["ret"], t["p"], t["type"], "txn", None, value)))
    timed.sort(key=lambda e: e[:3])
    events = [e[3] for e in timed]
    for i, event in enumerate(events):
        event.index = i
    return events


def broken(result) -> frozenset:
    return frozenset(m for m, ok in result.figures["models"].items() if not ok)


def check(*txns, models=MODELS):
    return check_list_append(history(*txns), models)


# --- known answers -----------------------------------------------------------------------------

def test_a_serial_history_is_valid_under_every_model():
    result = check(txn(0, 0, 1, ("append", "x", 1), ("r", "x", [1])),
                   txn(1, 2, 3, ("r", "x", [1]), ("append", "y", 1)),
                   txn(0, 4, 5, ("r", "y", [1]), ("r", "x", [1]), ("append", "x", 2)),
                   txn(2, 6, 7, ("r", "x", [1, 2]), ("r", "y", [1])),
                   txn(3, 6, 8, ("append", "x", 3), type="fail"),
                   txn(4, 6, None, ("append", "y", 2), type="info"))
    assert result.valid is True, result.summary
    assert broken(result) == frozenset()
    assert result.figures["transactions"] == {"ok": 4, "fail": 1, "info": 1}


@pytest.mark.parametrize("txns, anomaly", [
    # ww cycle: x shows T0 before T1, y the other way round
    ([txn(0, 0, 10, ("append", "x", 1), ("append", "y", 1)),
      txn(1, 0, 10, ("append", "x", 2), ("append", "y", 2)),
      txn(2, 20, 30, ("r", "x", [1, 2]), ("r", "y", [2, 1]))], "G0"),
    ([txn(0, 0, 10, ("append", "x", 1), ("append", "y", 2), ("append", "z", 3)),
      txn(1, 0, 10, ("append", "y", 1), ("append", "z", 2)),
      txn(2, 0, 10, ("append", "z", 1), ("append", "x", 2)),
      txn(3, 20, 30, ("r", "x", [1, 2]), ("r", "y", [1, 2]), ("r", "z", [1, 2, 3]))], "G0"),
    # aborted read, and a read of an element nobody appended
    ([txn(0, 0, 10, ("append", "x", 1), type="fail"),
      txn(1, 20, 30, ("r", "x", [1]))], "G1a"),
    ([txn(0, 0, 10, ("append", "x", 1)),
      txn(1, 20, 30, ("r", "x", [1, 99]))], "G1a"),
    # intermediate read: T0's 1 was followed by its own 2
    ([txn(0, 0, 10, ("append", "x", 1), ("append", "x", 2)),
      txn(1, 0, 10, ("r", "x", [1]))], "G1b"),
    ([txn(0, 0, 10, ("append", "x", 1), ("append", "y", 5), ("append", "x", 2)),
      txn(1, 0, 10, ("r", "x", [1])),
      txn(2, 20, 30, ("r", "x", [1, 2]))], "G1b"),
    # circular information flow through reads
    ([txn(0, 0, 10, ("append", "x", 1), ("r", "y", [1])),
      txn(1, 0, 10, ("append", "y", 1), ("r", "x", [1]))], "G1c"),
    ([txn(0, 0, 10, ("append", "x", 1), ("r", "z", [1])),
      txn(1, 0, 10, ("r", "x", [1]), ("append", "y", 1)),
      txn(2, 0, 10, ("r", "y", [1]), ("append", "z", 1))], "G1c"),
    # read skew: T1 saw T0's y but not its x
    ([txn(0, 0, 10, ("append", "x", 1), ("append", "y", 1)),
      txn(1, 0, 10, ("r", "x", []), ("r", "y", [1]))], "G-single"),
    ([txn(0, 0, 5, ("append", "x", 1), ("append", "y", 1)),
      txn(1, 6, 20, ("append", "x", 2), ("append", "y", 2)),
      txn(2, 6, 20, ("r", "x", [1]), ("r", "y", [1, 2])),
      txn(3, 30, 40, ("r", "x", [1, 2]))], "G-single"),
    # write skew: each read the other's key empty, then wrote its own
    ([txn(0, 0, 10, ("r", "x", []), ("r", "y", []), ("append", "x", 1)),
      txn(1, 0, 10, ("r", "x", []), ("r", "y", []), ("append", "y", 1))], "G2-item"),
    ([txn(0, 0, 10, ("r", "y", []), ("append", "x", 1)),
      txn(1, 0, 10, ("r", "x", []), ("append", "y", 1)),
      txn(2, 20, 30, ("r", "x", [1]), ("r", "y", [1]))], "G2-item"),
    # lost update: both read x empty, both appended; with and without a read of the outcome
    ([txn(0, 0, 10, ("r", "x", []), ("append", "x", 1)),
      txn(1, 0, 10, ("r", "x", []), ("append", "x", 2))], "lost-update"),
    ([txn(0, 0, 10, ("r", "x", [7]), ("append", "x", 1)),
      txn(1, 0, 10, ("r", "x", [7]), ("append", "x", 2)),
      txn(2, -10, -5, ("append", "x", 7)),
      txn(3, 20, 30, ("r", "x", [7, 1, 2]))], "lost-update"),
    # internal: a transaction that does not see its own append
    ([txn(0, 0, 10, ("append", "x", 1), ("r", "x", []))], "internal"),
    ([txn(0, 0, 10, ("append", "x", 1)),
      txn(1, 20, 30, ("r", "x", [1]), ("append", "x", 2), ("r", "x", [1]))], "internal"),
])
def test_known_anomalies_break_exactly_the_models_that_forbid_them(txns, anomaly):
    result = check(*txns)
    assert anomaly in result.figures["anomalies"], result.figures["anomalies"]
    assert broken(result) == BREAKS[anomaly], (anomaly, result.summary)
    assert result.valid is False
    assert result.counterexample["examples"]


def test_realtime_only_breaks_strict_serializability():
    # T1 began after T0 had completed, yet did not see its append.
    result = check(txn(0, 0, 10, ("append", "x", 1)),
                   txn(1, 20, 30, ("r", "x", [])))
    assert broken(result) == {SS}
    assert result.figures["anomalies"] == {"G-single-realtime": 1}
    steps = result.counterexample["cycle"]
    assert any("T0 completed" in step and "before T2 was invoked" in step for step in steps)
    # Equal times are concurrent: no real-time order, nothing wrong.
    assert check(txn(0, 0, 10, ("append", "x", 1)), txn(1, 10, 30, ("r", "x", []))).valid


def test_nonadjacent_anti_dependencies_break_snapshot_isolation():
    # T0 -rw-> T1 -wr-> T2 -rw-> T3 -wr-> T0: two rw edges, never next to each other.
    result = check(txn(0, 0, 10, ("r", "x", []), ("r", "w", [1])),
                   txn(1, 0, 10, ("append", "x", 1), ("append", "y", 1)),
                   txn(2, 0, 10, ("r", "y", [1]), ("r", "z", [])),
                   txn(3, 0, 10, ("append", "z", 1), ("append", "w", 1)))
    assert result.figures["anomalies"] == {"G-nonadjacent": 1}
    assert broken(result) == {SS, SER, SI, RR}


@pytest.mark.parametrize("txns, anomaly", [
    ([txn(0, 0, 10, ("append", "x", 1), ("append", "x", 2)),
      txn(1, 20, 30, ("r", "x", [1, 2])),
      txn(2, 20, 30, ("r", "x", [2]))], "incompatible-order"),
    ([txn(0, 0, 10, ("append", "x", 1)),
      txn(1, 20, 30, ("r", "x", [1, 1]))], "duplicate-elements"),
    ([txn(0, 0, 10, ("append", "x", 1)),
      txn(1, 0, 10, ("r", "x", [1]), ("append", "x", 1))], None),
    ([txn(0, 0, 10, ("r", "x", [1]), ("append", "x", 1))], "future-read"),
])
def test_order_anomalies_break_every_model(txns, anomaly):
    result = check(*txns)
    if anomaly is None:
        # One element appended by two transactions: the inference's premise is broken.
        assert result.valid == "unknown"
        assert "appended to x by both T0 and T1" in result.summary
        return
    assert anomaly in result.figures["anomalies"]
    assert broken(result) == ALL


def test_counterexample_is_the_shortest_cycle_with_each_edge_in_words():
    # The G0 history above, with the reads in two transactions.
    result = check(txn(0, 0, 10, ("append", "x", 4), ("append", "y", 1)),
                   txn(1, 0, 10, ("append", "x", 5), ("append", "y", 2)),
                   txn(2, 20, 30, ("r", "x", [4, 5])),
                   txn(3, 20, 30, ("r", "y", [2, 1])),
                   models=[SER])
    ce = result.counterexample
    assert ce["anomaly"] == "G0"
    assert len(ce["cycle"]) == 2
    assert "T1 -ww-> T0: T0 appended 1 to y after T1's append of 2, as T5's read of y showed" \
        in ce["cycle"]
    assert "T0 -ww-> T1: T1 appended 5 to x after T0's append of 4, as T4's read of x showed" \
        in ce["cycle"]
    assert {t["name"] for t in ce["transactions"]} == {"T0", "T1"}
    assert all(t["invoke_index"] in (0, 1) for t in ce["transactions"])


def test_unread_appends_come_after_every_read_element():
    # T1's append of 2 was never read; T2 read [1], the last version seen, so it missed it.
    # T2 also read T1's y: a G-single through an edge to an unread append.
    result = check(txn(0, 0, 5, ("append", "x", 1)),
                   txn(1, 10, 20, ("append", "x", 2), ("append", "y", 1)),
                   txn(2, 10, 20, ("r", "x", [1]), ("r", "y", [1])))
    assert result.figures["anomalies"] == {"G-single": 1}
    assert any("so missed T2's append of 2" in step for step in result.counterexample["cycle"])


def test_models_are_checked_by_name():
    with pytest.raises(ModelError, match="unknown consistency model 'snapshot'"):
        check(txn(0, 0, 1, ("append", "x", 1)), models=["snapshot"])
    only = check(txn(0, 0, 10, ("r", "x", []), ("append", "x", 1)),
                 txn(1, 0, 10, ("r", "x", []), ("append", "x", 2)), models=[RC])
    assert only.valid is True and list(only.figures["models"]) == [RC]


# --- simulated histories -----------------------------------------------------------------------

shapes = st.builds(Shape, clients=st.integers(1, 6), txns=st.integers(1, 40),
                   keys=st.integers(1, 4), max_mops=st.integers(1, 4),
                   fail_share=st.sampled_from([0.0, 0.1, 0.3]),
                   info_share=st.sampled_from([0.0, 0.1, 0.3]),
                   max_appends_per_key=st.sampled_from([None, 3]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, seed=st.integers(0, 2**32))
def test_simulated_serializable_histories_are_valid_under_every_model(shape, seed):
    result = check_list_append(generate(shape, seed), MODELS)
    assert result.valid is True, (result.summary, result.counterexample)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, seed=st.integers(0, 2**32), anomaly=st.sampled_from(sorted(GADGETS)))
def test_one_planted_anomaly_breaks_exactly_the_models_that_forbid_it(shape, seed, anomaly):
    planted = Shape(**{**shape.__dict__, "anomaly": anomaly})
    result = check_list_append(generate(planted, seed), MODELS)
    assert anomaly in result.figures["anomalies"], result.figures["anomalies"]
    assert broken(result) == BREAKS[anomaly], (anomaly, result.summary)


def test_a_long_history_checks_in_linear_time_without_recursion():
    shape = Shape(clients=20, txns=5_000, keys=30, max_appends_per_key=64)
    result = check_list_append(generate(shape, 7), MODELS)
    assert result.valid is True
    assert result.figures["transactions"]["ok"] > 4_000


# --- graph algorithms --------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=30))))
def test_components_agree_with_reachability(graph):
    n, edges = graph
    adj = [[] for _ in range(n)]
    for a, b in edges:
        if a != b:
            adj[a].append(b)
    reach = [{v} for v in range(n)]
    for _ in range(n):
        for a in range(n):
            for b in adj[a]:
                reach[a] |= reach[b]
    expected = {frozenset(v for v in range(n) if u in reach[v] and v in reach[u])
                for u in range(n)}
    found = {frozenset(c) for c in strongly_connected(adj)}
    assert found == {c for c in expected if len(c) > 1}


def test_components_of_a_long_cycle_need_no_recursion():
    n = 200_000
    adj = [[(v + 1) % n] for v in range(n)]
    assert [len(c) for c in strongly_connected(adj)] == [n]


# --- formats and the command line --------------------------------------------------------------

EDN = """[{:type :invoke, :f :txn, :value [[:r :x nil] [:append :x 1]], :process 0, :time 10}
{:type :invoke, :f :txn, :value [[:append :x 2] [:r :y nil]], :process 1, :time 11}
{:type :ok, :f :txn, :value [[:r :x []] [:append :x 1]], :process 0, :time 20}
{:type :ok, :f :txn, :value [[:append :x 2] [:r :y nil]], :process 1, :time 21}
{:type :info, :process :nemesis, :f :start-partition, :value [:n1 :n2], :time 22}
{:type :invoke, :f :txn, :value [[:r :x nil] [:r :y nil]], :process 0, :time 30}
{:type :ok, :f :txn, :value [[:r :x [1 2]] [:r :y nil]], :process 0, :time 40}]
"""


def test_jepsen_edn_list_append_history_loads_and_checks(tmp_path):
    path = tmp_path / "history.edn"
    path.write_text(EDN)
    events = load_history(path)
    # Two micro-ops are not a [key value] tuple: the value stays whole.
    assert events[0].key is None and events[0].value == [["r", "x", None], ["append", "x", 1]]
    assert choose_checkers(events) == ["list-append", "stats"]
    assert check_list_append(events).valid is True
    bad = path.with_name("bad.edn")
    bad.write_text(EDN.replace("[:r :x [1 2]]", "[:r :x [2 1]]"))
    result = check_list_append(load_history(bad), [RC, SER])
    # T0 read x empty before appending 1, yet x shows T1's 2 first: read skew, not G0.
    assert result.valid is False and result.figures["anomalies"] == {"G-single": 1}
    assert broken(result) == {SER}


def test_faultline_check_runs_list_append_on_jsonl_and_edn(tmp_path, capsys):
    events = generate(Shape(clients=4, txns=30, keys=2, anomaly="G2-item"), 3)
    path = tmp_path / "history.jsonl"
    save_history(events, path)
    assert cli.main(["check", str(path), "--checker", "list-append"]) == exits.INVALID
    assert "G2-item" in capsys.readouterr().out
    assert cli.main(["check", str(path), "--checker", "list-append", "--consistency-model",
                     "snapshot-isolation,read-committed"]) == exits.VALID
    edn = tmp_path / "history.edn"
    save_history(events, edn, "edn")
    assert cli.main(["check", str(edn), "--checker", "list-append", "--consistency-model",
                     SER]) == exits.INVALID


@pytest.mark.parametrize("value, complaint", [
    (5, "a transaction's value must be a list of micro-operations, got 5"),
    ([["w", "x", 1]], "micro-operations are 'r' and 'append', got 'w'"),
    ([["append", "x"]], "a micro-operation must be [f, key, value]"),
    ([["append", "x", [1]]], "an appended element must be a string or a number"),
])
def test_bad_input_is_one_line_and_exit_3(tmp_path, capsys, value, complaint):
    events = [Op(0, 0, 0, "invoke", "txn", None, value), Op(1, 1, 0, "ok", "txn", None, value)]
    path = tmp_path / "history.jsonl"
    save_history(events, path)
    with pytest.raises(HistoryError, match="history.jsonl:1: field 'value'"):
        check_list_append(load_history(path), source=str(path))
    assert cli.main(["check", str(path), "--checker", "list-append"]) == exits.BAD_INPUT
    err = capsys.readouterr().err
    assert complaint in err and len(err.strip().splitlines()) == 1


def test_a_completion_that_disagrees_with_its_invocation_is_bad_input():
    events = history(txn(0, 0, 1, ("append", "x", 1)))
    events[1].value = [["append", "x", 2]]
    with pytest.raises(HistoryError, match="differs from the invocation's"):
        check_list_append(events)
    events[1].value = [["append", "x", 1]]
    events.append(Op(2, 2, 0, "invoke", "read", None, None))
    with pytest.raises(HistoryError, match="got f 'read'"):
        check_list_append(events)


# --- shared corpora ----------------------------------------------------------------------------

LIST_APPEND_ENTRIES = [e for e in manifest_entries()
                       if (e.get("options") or {}).get("model") == "list-append"]


@pytest.mark.skipif(not LIST_APPEND_ENTRIES,
                    reason=f"no list-append histories in {CORPORA / 'manifest.json'} (the "
                           f"corpora hold none yet; set FAULTLINE_SHARED to a shared dir with "
                           f"some)")
@pytest.mark.parametrize("entry", LIST_APPEND_ENTRIES, ids=lambda e: e.get("file", "?"))
def test_corpus_list_append_histories_get_their_known_verdicts(entry):
    options = entry.get("options") or {}
    models = options.get("consistency_models") or ["strict-serializable"]
    events = load_history(CORPORA / entry["file"], entry.get("format"))
    assert check_list_append(events, models).valid == entry["expected"]


def test_the_same_seed_gives_the_same_history():
    # Seeds are the whole story: the same seed gives the same history.
    shape = Shape(clients=3, txns=20, keys=2, fail_share=0.2, info_share=0.2)
    seed = random.Random(5).randrange(1000)
    assert [o.to_dict() for o in generate(shape, seed)] == \
        [o.to_dict() for o in generate(shape, seed)]
