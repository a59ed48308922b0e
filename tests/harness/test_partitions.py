"""Partition shapes: pure functions whose grudges have the properties their names promise."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.faults import partition_shapes as p
from harness.networks.base import grudge_links

NODES5 = ["n1", "n2", "n3", "n4", "n5"]
cluster = st.integers(3, 9).map(lambda n: [f"n{i}" for i in range(1, n + 1)])
seeds = st.integers(0, 2 ** 32)


def symmetric(grudge):
    return all(src in grudge.get(dst, ()) for dst, srcs in grudge.items() for src in srcs)


@given(nodes=cluster, seed=seeds)
def test_halves_split_into_a_minority_and_the_rest(nodes, seed):
    grudge = p.halves(nodes, random.Random(seed))
    reach = p.reachable(nodes, grudge)
    sides = {frozenset(reach[n] | {n}) for n in nodes}
    assert len(sides) == 2
    small, large = sorted(sides, key=len)
    assert len(small) == len(nodes) // 2 and small | large == set(nodes)
    assert symmetric(grudge)


def test_halves_are_determined_by_the_seed():
    assert p.halves(NODES5, random.Random(7)) == p.halves(NODES5, random.Random(7))


def test_isolate_cuts_one_node_both_ways():
    grudge = p.isolate(NODES5, "n3")
    reach = p.reachable(NODES5, grudge)
    assert reach["n3"] == set()
    assert all(reach[n] == set(NODES5) - {n, "n3"} for n in NODES5 if n != "n3")
    with pytest.raises(ValueError, match="n9"):
        p.isolate(NODES5, "n9")


@given(nodes=cluster, seed=seeds)
def test_majorities_ring_gives_everyone_a_different_majority(nodes, seed):
    grudge = p.majorities_ring(nodes, random.Random(seed))
    reach = p.reachable(nodes, grudge)
    majority = len(nodes) // 2 + 1
    views = [frozenset(reach[n] | {n}) for n in nodes]
    assert all(len(view) >= majority for view in views)
    if len(nodes) >= 4:
        assert len(set(views)) == len(nodes)


@given(nodes=cluster, seed=seeds)
def test_bridge_has_one_node_that_sees_both_sides(nodes, seed):
    grudge = p.bridge(nodes, random.Random(seed))
    reach = p.reachable(nodes, grudge)
    hubs = [n for n in nodes if reach[n] == set(nodes) - {n}]
    assert len(hubs) == 1
    others = [n for n in nodes if n not in hubs]
    assert all(len(reach[n]) < len(nodes) - 1 for n in others)
    assert symmetric(grudge)


def test_one_way_cuts_a_single_direction():
    grudge = p.one_way("n1", "n2")
    assert grudge_links(grudge) == {("n1", "n2")}
    reach = p.reachable(NODES5, grudge)
    assert "n2" not in reach["n1"] and "n1" in reach["n2"]
    with pytest.raises(ValueError):
        p.one_way("n1", "n1")


def test_describe_is_json_friendly():
    assert p.describe(p.isolate(["a", "b", "c"], "a")) == {"a": ["b", "c"], "b": ["a"],
                                                            "c": ["a"]}
