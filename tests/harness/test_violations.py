"""The first violation in a person's terms: the operation, the node that served it, the faults
in force when it began and the last one to have ended before it."""

from __future__ import annotations

from checkers.history import Op
from checkers.result import Result
from harness.run.violations import first_violation_seconds, losses_context, violation_context

S = 10 ** 9


def _history() -> list[Op]:
    raw = [
        (0 * S, 1, "invoke", "write", 1, None),
        (1 * S, 1, "ok", "write", 1, "n1"),
        (2 * S, "nemesis", "invoke", "start-partition", {"shape": "isolate"}, None),
        (2 * S + 1, "nemesis", "info", "start-partition",
         {"shape": "isolate", "links": ["n3->n1", "n1->n3"]}, None),
        (3 * S, "nemesis", "invoke", "kill", {"target": "one", "nodes": ["n2"]}, None),
        (3 * S + 1, "nemesis", "info", "kill",
         {"target": "one", "nodes": ["n2"], "error": "n2: cannot be killed"}, None),
        (4 * S, 2, "invoke", "read", None, None),                 # the violation: index 6
        (5 * S, 2, "ok", "read", 0, "n3"),
        (6 * S, "nemesis", "invoke", "stop-partition", {"of": "start-partition"}, None),
        (6 * S + 1, "nemesis", "info", "stop-partition", {"of": "start-partition"}, None),
        (7 * S, 3, "invoke", "read", None, None),                 # a later one: index 10
        (8 * S, 3, "ok", "read", 0, "n2"),
    ]
    return [Op(i, t, p, ty, f, "k", v, node) for i, (t, p, ty, f, v, node) in enumerate(raw)]


def _failing(call: int, index: int) -> Result:
    op = {"call": call, "invoke_index": index, "description": f"read at {call}"}
    return Result("linearizable", False, "not linearizable", {}, {"op": op, "concurrent": [
        {"call": call + 5, "invoke_index": index}]})


def test_the_earliest_violation_with_its_node_and_the_faults_in_force():
    events = _history()
    results = [Result("stats", True), _failing(7 * S, 10), _failing(4 * S, 6)]
    context = violation_context(results, events)
    assert context["seconds"] == 4.0 and context["op"] == f"read at {4 * S}"
    assert context["process"] == 2 and context["node"] == "n3"
    # The partition was in force; the kill that failed never took effect.
    assert context["faults"] == ["start-partition shape=isolate links=n3->n1,n1->n3"]
    assert "last_fault" not in context
    assert first_violation_seconds(results) == 4.0


def test_a_violation_after_a_fault_names_the_last_one_and_how_long_before():
    context = violation_context([_failing(7 * S, 10)], _history())
    assert context["faults"] == [] and context["node"] == "n2"
    assert context["last_fault"] == {"fault": "start-partition shape=isolate "
                                              "links=n3->n1,n1->n3",
                                     "ended_seconds_before": 1.0}


def test_nothing_failed_nothing_to_say():
    assert violation_context([Result("linearizable", True)], _history()) is None
    assert first_violation_seconds([Result("linearizable", "unknown")]) is None


def test_lost_elements_are_counted_by_the_fault_in_force_when_they_were_added():
    lost = Result("set-full", False, "3 element(s) lost", {"lost_count": 3,
                                                          "lost_acknowledged_count": 2},
                  {"lost": [{"call": 2 * S + 5}], "lost_add_calls": [3 * S, 5 * S, 7 * S]})
    context = losses_context([lost], _history())
    assert context == {
        "lost": 3, "acknowledged": 2, "added_between_seconds": [3.0, 7.0],
        "by_fault": {"start-partition shape=isolate links=n3->n1,n1->n3": 2,
                     "no fault (after start-partition shape=isolate links=n3->n1,n1->n3)": 1}}
    assert losses_context([Result("set-full", True)], _history()) is None
