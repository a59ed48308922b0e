"""Election safety over observed node roles: at most one leader per term."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkers.base import CheckContext
from checkers.election import check_election_safety, load_observations
from checkers.history import HistoryError
from checkers.suite import run_checkers


def obs(time, node, role, term, **extra):
    return {"time": time, "node": node, "role": role, "term": term, **extra}


def test_one_leader_per_term_is_valid():
    result = check_election_safety([
        obs(1, "n1", "candidate", 1), obs(2, "n1", "leader", 1), obs(3, "n2", "follower", 1),
        obs(4, "n2", "candidate", 2), obs(5, "n2", "leader", 2), obs(6, "n1", "follower", 2),
        obs(7, "n1", "leader", 1),            # a stale report of its own old term: same leader
    ])
    assert result.valid is True
    assert result.figures["terms_with_leader"] == 2
    assert result.figures["most_leaders_in_a_term"] == 1


def test_two_leaders_in_one_term_are_rejected_with_both_named():
    result = check_election_safety([
        obs(10, "n1", "leader", 3), obs(20, "n1", "follower", 3),
        obs(30, "n2", "leader", 4),
        obs(40, "n3", "leader", 3),
        obs(50, "n1", "leader", 7), obs(60, "n2", "leader", 7),
    ])
    assert result.valid is False
    ce = result.counterexample
    assert ce["term"] == 3
    assert ce["leaders"] == [{"node": "n1", "first_seen": 10}, {"node": "n3", "first_seen": 40}]
    assert ce["at"] == 40
    assert ce["terms_with_two_leaders"] == [3, 7]
    assert "n1 and n3" in result.summary


def test_no_observations_or_no_leader_is_unknown():
    assert check_election_safety(None).valid == "unknown"
    assert check_election_safety([]).valid == "unknown"
    assert check_election_safety([obs(1, "n1", "candidate", 1)]).valid == "unknown"


@pytest.mark.parametrize("bad", [{"role": "leader", "term": 1}, {"node": "n1", "term": 1},
                                 {"node": "n1", "role": "leader", "term": "1"}])
def test_malformed_observations_raise(bad):
    with pytest.raises(HistoryError, match="observation 0"):
        check_election_safety([bad])


@given(st.lists(st.tuples(st.sampled_from(["n1", "n2", "n3"]),
                          st.sampled_from(["leader", "follower", "candidate"]),
                          st.integers(0, 5)), max_size=40))
def test_verdict_matches_a_direct_count(reports):
    """False exactly when some term has two distinct self-declared leaders."""
    leaders: dict[int, set[str]] = {}
    for node, role, term in reports:
        if role == "leader":
            leaders.setdefault(term, set()).add(node)
    result = check_election_safety([obs(i, n, r, t) for i, (n, r, t) in enumerate(reports)])
    if any(len(v) > 1 for v in leaders.values()):
        assert result.valid is False
    elif leaders:
        assert result.valid is True
    else:
        assert result.valid == "unknown"


def test_load_observations_reads_lines_and_names_a_bad_one(tmp_path):
    path = tmp_path / "observations.jsonl"
    path.write_text('{"time": 1, "node": "n1", "role": "leader", "term": 1}\n\n'
                    '{"time": 2, "node": "n2", "role": "leader", "term": 1}\n')
    assert [o["node"] for o in load_observations(path)] == ["n1", "n2"]
    path.write_text('{"time": 1, "node": "n1", "role": "leader", "term": 1}\n[1]\n')
    with pytest.raises(HistoryError, match=r"observations.jsonl:2"):
        load_observations(path)
    path.write_text('{"time": 1,\n')
    with pytest.raises(HistoryError, match=r"observations.jsonl:1: not JSON"):
        load_observations(path)


def test_suite_checks_the_settings_observations():
    two = [obs(1, "n1", "leader", 2), obs(2, "n2", "leader", 2)]
    combined, _ = run_checkers([], ["election-safety"],
                               context=CheckContext(observations=two))
    assert combined["valid"] is False
    assert combined["checkers"]["election-safety"]["counterexample"]["term"] == 2
