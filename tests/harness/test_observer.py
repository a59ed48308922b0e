"""The observer of node roles and the faults that lean on it, against real refnode clusters:
role changes recorded once each, latency felt between nodes, and an election crashed between
its votes and the winner's first message."""

from __future__ import annotations

import threading
import time
from contextlib import closing

from checkers.election import check_election_safety, load_observations
from harness.faults.schedule import Nemesis
from harness.run.cluster import Cluster
from harness.run.observer import Observer
from harness.systems.refnode import RefnodeSystem
from tests.harness.waiting import wait_for

WAIT = 15.0      # seconds for a cluster to elect, restart or settle



class Events:
    """A stand-in for the recorder: nemesis events kept in a list."""

    def __init__(self):
        self.events = []
        self._lock = threading.Lock()

    def record(self, process, type, f, key=None, value=None, **_):
        with self._lock:
            self.events.append((type, f, value))


def _clock():
    return time.monotonic_ns()


def _leader(observer):
    for node, status in observer.latest().items():
        if status and status["role"] == "leader":
            return node, status["term"]
    return None


def test_observer_records_each_change_once_and_sees_every_leader(tmp_path):
    path = tmp_path / "observations.jsonl"
    with Cluster(RefnodeSystem(), 3, tmp_path / "run", seed=11) as cluster:
        observer = Observer(cluster, path, _clock).start()
        try:
            first, term = wait_for(lambda: _leader(observer), WAIT)
            cluster.kill(first)
            second, new_term = wait_for(
                lambda: (found := _leader(observer)) and found[0] != first and found, WAIT)
            assert new_term > term
            assert observer.wait_for(lambda latest: latest[first], 0.5) is None   # down
        finally:
            observer.stop()
    records = load_observations(path)
    leaders = {(r["node"], r["term"]) for r in records if r["role"] == "leader"}
    assert {(first, term), (second, new_term)} <= leaders
    assert check_election_safety(records).valid is True
    # One line per change: no node reports the same thing twice in a row.
    last = {}
    for r in records:
        seen = tuple(r[f] for f in ("role", "term", "vote", "leader", "last_log_term"))
        assert last.get(r["node"]) != seen
        last[r["node"]] = seen


def test_latency_on_peer_links_delays_replication(tmp_path):
    """A quorum write needs an append to a follower and its answer: with 200 ms on every
    link between nodes, it cannot take less than 0.4 s."""
    with Cluster(RefnodeSystem(), 3, tmp_path / "run", seed=12) as cluster:
        leader = wait_for(cluster.leader, WAIT)
        events = Events()
        nemesis = Nemesis(cluster, [], events.record, seed=12, requested=["latency"])
        nemesis.apply("latency", "start-latency", {"latency_ms": 200, "jitter_ms": 0})
        with closing(cluster.client(leader, timeout=5.0)) as client:
            started = time.monotonic()
            assert client.invoke("write", "k", 1)["type"] == "ok"
            assert time.monotonic() - started >= 0.4
        nemesis.apply("latency", "stop-latency", {"of": "start-latency"})
        assert not [e for e in events.events if "error" in (e[2] or {})]


def test_election_crash_kills_the_winner_and_the_voters_it_has_not_reached(tmp_path):
    system = RefnodeSystem({"election_timeout_min": 1.0, "election_timeout_max": 3.0})
    with Cluster(system, 3, tmp_path / "run", seed=13) as cluster:
        observer = Observer(cluster, tmp_path / "observations.jsonl", _clock).start()
        try:
            events = Events()
            nemesis = Nemesis(cluster, [], events.record, seed=13, observer=observer,
                              requested=["election-crash"])
            for _ in range(4):          # a round lost to a split vote is skipped: try again
                old, old_term = wait_for(lambda: _leader(observer), WAIT)
                nemesis.apply("election-crash", "crash-election",
                              {"latency_ms": 150, "restart_stagger": 0.5, "hold": 0.5})
                done = events.events[-1][2]
                assert "error" not in done, done
                assert done["old_leader"] == old and done["term"] > old_term
                assert done["leader"] != old
                if "skipped" not in done:
                    break
                assert done["term"] > old_term + 1 and done["down"] == []
                nemesis.apply("election-crash", "end-election-crash", {"of": "crash-election"})
                wait_for(lambda: len(cluster.running()) == 3, WAIT)
            assert "skipped" not in done, done
            assert done["term"] == old_term + 1 and old not in done["unaware"]
            assert done["down"] == [done["leader"]]
            assert not cluster.process(done["leader"]).running
            assert cluster.process(old).running
            nemesis.apply("election-crash", "end-election-crash", {"of": "crash-election"})
            assert events.events[-1][2]["nodes"] == [done["leader"]]
            wait_for(lambda: len(cluster.running()) == 3, WAIT)
            wait_for(lambda: _leader(observer), WAIT)
        finally:
            observer.stop()
    # Votes kept on disk: whatever happened, one leader per term.
    records = load_observations(tmp_path / "observations.jsonl")
    assert check_election_safety(records).valid is True
