"""Table tests of refnode's protocol core over an in-memory network (etcd raft style), plus
the pure pieces around it: configuration, messages, the key-value state."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refnode.config import BUGS, ClusterConfig
from refnode.core import CANDIDATE, FOLLOWER, LEADER, Core, Effects, HardState
from refnode.messages import (CAS_MISMATCH, NOT_LEADER, STEPPED_DOWN, TIMEOUT, TYPE_MISMATCH,
                              VERSION_UNAVAILABLE, AppendEntries, AppendReply, ClientReply,
                              ClientRequest, Entry, MessageError, VoteReply, VoteRequest,
                              message_from_dict)
from refnode.statemachine import KeyValueState

NODES = ("a", "b", "c")
MIN, MAX, HB = 0.3, 0.6, 0.05


class Net:
    """Cores wired by an in-memory network: deliver in order, cut links, crash nodes."""

    def __init__(self, nodes=NODES, seed=0, **config):
        self.config = ClusterConfig(nodes=nodes, **config)
        self.now = 0.0
        self.cores = {n: Core(n, self.config, random.Random(f"{seed}:{n}"), 0.0) for n in nodes}
        self.inflight: list = []
        self.replies: dict = {}
        self.bundles: dict = {n: [] for n in nodes}
        self.cut: set = set()
        self.down: set = set()

    def absorb(self, node, effects: Effects) -> Effects:
        self.bundles[node].append(effects)
        for m in effects.messages:
            if (m.src, m.dst) not in self.cut:
                self.inflight.append(m)
        for ref, reply in effects.replies:
            assert ref not in self.replies, f"two replies for {ref}"
            self.replies[ref] = reply
        return effects

    def deliver(self, limit=10_000) -> None:
        steps = 0
        while self.inflight:
            m = self.inflight.pop(0)
            steps += 1
            assert steps < limit, "messages never settle"
            if m.dst in self.down or (m.src, m.dst) in self.cut:
                continue
            self.absorb(m.dst, self.cores[m.dst].receive(m, self.now))

    def tick(self, dt: float) -> None:
        self.now += dt
        for n, core in self.cores.items():
            if n not in self.down:
                self.absorb(n, core.tick(self.now))

    def run(self, seconds: float, step: float = 0.005) -> None:
        end = self.now + seconds
        while self.now < end - 1e-12:
            self.tick(min(step, end - self.now))
            self.deliver()

    def elect(self, node: str) -> Core:
        if self.now < MIN:
            self.now = MIN + 0.001
        self.absorb(node, self.cores[node].campaign(self.now))
        self.deliver()
        core = self.cores[node]
        assert core.role == LEADER, core.status()
        return core

    def request(self, node: str, request: ClientRequest, ref) -> Effects:
        return self.absorb(node, self.cores[node].client_request(request, ref, self.now))

    def isolate(self, node: str) -> None:
        for other in self.cores:
            if other != node:
                self.cut |= {(node, other), (other, node)}

    def heal(self) -> None:
        self.cut.clear()


def write(key="k", value=1):
    return ClientRequest("write", key, value)


def read(key="k", mode="leader", min_version=None):
    return ClientRequest("read", key, read_mode=mode, min_version=min_version)


# --- elections -----------------------------------------------------------------------------------

def test_a_campaign_elects_a_leader_that_commits_a_noop():
    net = Net()
    leader = net.elect("a")
    assert leader.term == 1 and leader.vote == "a"
    assert leader.entry(1) == Entry(1, 1, "noop")
    assert leader.commit_index == 1
    for n in ("b", "c"):
        assert net.cores[n].role == FOLLOWER and net.cores[n].leader == "a"
        assert net.cores[n].commit_index == 1


def test_election_timeouts_come_from_the_injected_rng():
    deadlines = lambda seed: [Core(n, ClusterConfig(nodes=NODES), random.Random(seed), 0.0)
                              .next_deadline for n in NODES]
    assert deadlines(5) == deadlines(5)
    assert all(MIN <= d <= MAX for d in deadlines(5))
    assert deadlines(5) != deadlines(6)


def test_followers_elect_a_leader_on_their_own():
    net = Net()
    net.run(1.0)
    leaders = [c for c in net.cores.values() if c.role == LEADER]
    assert len(leaders) == 1
    assert all(c.leader == leaders[0].id for c in net.cores.values())


def test_the_vote_is_persisted_in_the_bundle_that_carries_the_reply():
    core = Core("b", ClusterConfig(nodes=NODES), random.Random(1), 0.0)
    effects = core.receive(VoteRequest("a", "b", 1, 0, 0), MIN + 0.01)
    assert effects.hard_state == HardState(1, "a")
    assert effects.messages == [VoteReply("b", "a", 1, True)]
    # Asking again gets the same answer and needs nothing new persisted.
    again = core.receive(VoteRequest("a", "b", 1, 0, 0), MIN + 0.02)
    assert again.hard_state is None and again.messages == [VoteReply("b", "a", 1, True)]


def test_forget_vote_persists_no_vote():
    config = ClusterConfig(nodes=NODES, bugs={"forget-vote"})
    core = Core("b", config, random.Random(1), 0.0)
    effects = core.receive(VoteRequest("a", "b", 1, 0, 0), MIN + 0.01)
    assert core.vote == "a"                              # remembered in memory...
    assert effects.hard_state == HardState(1, None)      # ...but never persisted
    assert effects.messages == [VoteReply("b", "a", 1, True)]


def _voter(log_terms=(), term=0, vote=None, now=MIN + 0.01):
    entries = [Entry(i, t, "noop") for i, t in enumerate(log_terms, start=1)]
    core = Core.restore("b", ClusterConfig(nodes=NODES), random.Random(0), 0.0,
                        term, vote, entries)
    return core, now


@pytest.mark.parametrize("case, log_terms, term, vote, vote_request, granted", [
    ("fresh voter", (), 0, None, VoteRequest("a", "b", 1, 0, 0), True),
    ("older term", (), 3, None, VoteRequest("a", "b", 2, 0, 0), False),
    ("already voted for another", (), 1, "c", VoteRequest("a", "b", 1, 0, 0), False),
    ("repeat of its own vote", (), 1, "a", VoteRequest("a", "b", 1, 0, 0), True),
    ("newer term frees the vote", (), 1, "c", VoteRequest("a", "b", 2, 0, 0), True),
    ("candidate's last term older", (1, 2), 2, None, VoteRequest("a", "b", 3, 5, 1), False),
    ("same last term, shorter log", (1, 2), 2, None, VoteRequest("a", "b", 3, 1, 2), False),
    ("same last term, same length", (1, 2), 2, None, VoteRequest("a", "b", 3, 2, 2), True),
    ("newer last term, shorter log", (1, 2), 2, None, VoteRequest("a", "b", 3, 1, 3), True),
])
def test_the_election_rule(case, log_terms, term, vote, vote_request, granted):
    core, now = _voter(log_terms, term, vote)
    effects = core.receive(vote_request, now)
    reply = effects.messages[0]
    assert reply.granted is granted, case
    assert reply.term == max(term, vote_request.term)
    if granted:
        assert core.vote == "a" and core.term == vote_request.term
        if vote != "a":
            assert effects.hard_state == HardState(vote_request.term, "a")


def test_no_vote_while_a_leader_was_heard_recently_and_the_term_is_not_adopted():
    net = Net()
    net.elect("a")
    net.run(0.1)
    follower = net.cores["b"]
    reply = follower.receive(VoteRequest("c", "b", 5, 99, 99), net.now).messages[0]
    assert reply == VoteReply("b", "c", 1, False)
    assert follower.term == 1 and follower.leader == "a"
    # After the minimum election timeout without a heartbeat the vote is granted.
    net.isolate("a")
    net.run(MIN)
    effects = follower.receive(VoteRequest("c", "b", 5, 99, 99), net.now)
    assert effects.messages[0].granted and effects.hard_state == HardState(5, "c")


def test_a_restarted_node_refuses_votes_for_the_minimum_election_timeout():
    core = Core.restore("b", ClusterConfig(nodes=NODES), random.Random(0), 10.0, 3, None, [])
    assert not core.receive(VoteRequest("a", "b", 4, 0, 0), 10.0 + MIN / 2).messages[0].granted
    assert core.receive(VoteRequest("a", "b", 4, 0, 0), 10.0 + MIN).messages[0].granted


def test_a_leader_ignores_vote_requests_of_newer_terms():
    net = Net()
    leader = net.elect("a")
    reply = leader.receive(VoteRequest("b", "a", 7, 50, 50), net.now).messages[0]
    assert not reply.granted and leader.role == LEADER and leader.term == 1


def test_a_candidate_retries_silent_peers_and_starts_a_new_term_on_timeout():
    net = Net()
    net.now = MIN + 0.001
    net.cut |= {("a", "b"), ("a", "c")}
    net.absorb("a", net.cores["a"].campaign(net.now))
    net.deliver()
    candidate = net.cores["a"]
    assert candidate.role == CANDIDATE and candidate.term == 1
    effects = candidate.tick(net.now + HB)
    assert sorted(m.dst for m in effects.messages if isinstance(m, VoteRequest)) == ["b", "c"]
    effects = candidate.tick(net.now + MAX + 0.01)
    assert candidate.term == 2 and effects.hard_state == HardState(2, "a")


# --- generation clock --------------------------------------------------------------------------

def test_followers_fence_off_appends_of_older_terms():
    core, now = _voter((1, 1), term=3)
    stale = AppendEntries("a", "b", 2, 2, 1, (Entry(3, 2, "write", "k", 9),), 2, round=4)
    effects = core.receive(stale, now)
    # The refusal tells the newer term and echoes no round: it acknowledges no leadership.
    assert effects.messages == [AppendReply("b", "a", 3, False)]
    assert core.last_index == 2 and effects.append == []


def test_a_leader_ignores_rounds_it_has_not_started():
    """A reply echoing a round of an earlier leadership of the same node (a late answer to an
    append of an older term) confirms nothing and does not break the leader (found by the
    long Hypothesis run: a KeyError on the round's start time)."""
    net = Net()
    leader = net.elect("a")
    confirmed, rounds = leader._confirmed_round, leader._round
    for peer in ("b", "c"):
        net.absorb("a", leader.receive(AppendReply(peer, "a", leader.term, False,
                                                   round=rounds + 50), net.now))
    assert leader.role == LEADER and leader._confirmed_round == confirmed


def test_no_fencing_accepts_appends_of_older_terms():
    config = ClusterConfig(nodes=NODES, bugs={"no-fencing"})
    core = Core.restore("b", config, random.Random(0), 0.0, 3, None,
                        [Entry(1, 1, "noop"), Entry(2, 3, "noop")])
    stale = AppendEntries("a", "b", 2, 1, 1, (Entry(2, 2, "write", "k", 9),), 0)
    effects = core.receive(stale, 1.0)
    assert effects.truncate_from == 2 and effects.append == [Entry(2, 2, "write", "k", 9)]
    assert effects.messages[0].success and effects.messages[0].term == 3


@pytest.mark.parametrize("newer", [
    lambda leader: AppendReply("b", "a", leader.term + 1, False),
    lambda leader: AppendEntries("b", "a", leader.term + 1, 0, 0, (), 0),
    lambda leader: VoteReply("b", "a", leader.term + 1, False),
])
def test_a_leader_that_sees_a_newer_term_steps_down_and_pending_writes_are_indeterminate(
        newer):
    net = Net()
    leader = net.elect("a")
    net.cut |= {("a", "b"), ("a", "c")}
    net.request("a", write(), "w1")
    net.request("a", read(), "r1")
    effects = leader.receive(newer(leader), net.now)
    assert leader.role == FOLLOWER and leader.term == 2
    assert effects.hard_state == HardState(2, None)
    replies = dict(effects.replies)
    assert replies["w1"].error == STEPPED_DOWN and not replies["w1"].definite
    assert replies["w1"].indeterminate
    assert replies["r1"].error == STEPPED_DOWN and replies["r1"].definite


def test_a_leader_cut_off_from_its_quorum_steps_down():
    net = Net()
    leader = net.elect("a")
    net.isolate("a")
    net.request("a", write(), "w1")
    net.run(MAX - 0.05)
    assert leader.role == LEADER
    net.run(0.1)
    assert leader.role == FOLLOWER and leader.term == 1
    assert net.replies["w1"].error == STEPPED_DOWN and not net.replies["w1"].definite


def test_a_pending_write_times_out_indeterminate():
    net = Net(replication="sync", request_timeout=0.2)
    net.elect("a")
    net.down.add("c")                                   # sync mode waits for every node
    net.request("a", write(), "w1")
    net.run(0.25)
    reply = net.replies["w1"]
    assert reply.error == TIMEOUT and reply.indeterminate


# --- replication and the commit rule ----------------------------------------------------------

@pytest.mark.parametrize("mode, reachable, commits", [
    ("sync", {"b", "c"}, True),
    ("sync", {"b"}, False),
    ("quorum", {"b"}, True),
    ("quorum", set(), False),
    ("async", set(), True),
])
def test_the_commit_rule_per_replication_mode(mode, reachable, commits):
    net = Net(replication=mode)
    net.elect("a")
    for n in ("b", "c"):
        if n not in reachable:
            net.cut |= {("a", n), (n, "a")}
    net.request("a", write(value=7), "w")
    net.deliver()
    assert ("w" in net.replies) is commits
    if commits:
        assert net.replies["w"] == ClientReply(True, "write", "a", 1, "a", 7, 2)
        assert net.cores["a"].commit_index == 2


def test_only_entries_of_the_current_term_commit_by_counting():
    # a holds an entry of term 2 that b also holds; a wins term 3.
    config = ClusterConfig(nodes=NODES)
    old = [Entry(1, 1, "noop"), Entry(2, 2, "write", "k", 1)]
    leader = Core.restore("a", config, random.Random(0), 0.0, 2, None, old)
    leader.campaign(MIN + 0.01)
    leader.receive(VoteReply("b", "a", 3, True), MIN + 0.01)
    assert leader.role == LEADER and leader.entry(3) == Entry(3, 3, "noop")
    # b reports it holds index 2 (term 2): a majority has it, but it is of an older term.
    leader.receive(AppendReply("b", "a", 3, True, match_index=2), MIN + 0.02)
    assert leader.commit_index == 0
    leader.receive(AppendReply("b", "a", 3, True, match_index=3), MIN + 0.03)
    assert leader.commit_index == 3 and leader.applied_index == 3


def test_early_ack_commits_what_was_only_sent():
    net = Net(bugs={"early-ack"})
    net.elect("a")
    net.isolate("a")
    net.request("a", write(value=3), "w")
    assert net.replies["w"].ok and net.replies["w"].version == 2   # no follower has it


def test_a_follower_cuts_a_conflicting_suffix_and_the_leader_backtracks():
    config = ClusterConfig(nodes=NODES)
    stale = [Entry(1, 1, "noop"), Entry(2, 1, "write", "k", 1), Entry(3, 2, "write", "k", 2),
             Entry(4, 2, "write", "k", 3)]
    net = Net()
    net.cores["b"] = Core.restore("b", config, random.Random(1), 0.0, 2, None, stale)
    net.cores["a"] = Core.restore("a", config, random.Random(2), 0.0, 3, None,
                                  stale[:2] + [Entry(3, 3, "write", "k", 9)])
    net.cores["c"] = Core.restore("c", config, random.Random(3), 0.0, 3, None, stale[:2])
    leader = net.elect("a")
    net.run(0.2)
    follower = net.cores["b"]
    assert follower.entries() == leader.entries()
    assert [e.term for e in follower.entries()] == [1, 1, 3, 4]
    cuts = [b.truncate_from for b in net.bundles["b"] if b.truncate_from is not None]
    assert cuts == [3]
    assert leader.progress("b").match_index == leader.last_index
    assert follower.state.read("k") == (9, 3)


def test_followers_apply_what_the_leader_committed_and_track_progress():
    net = Net()
    leader = net.elect("a")
    for i in range(5):
        net.request("a", write(value=i), f"w{i}")
    net.run(0.1)
    for core in net.cores.values():
        assert core.commit_index == 6 and core.state.read("k") == (4, 6)
    assert leader.progress("b").match_index == 6
    assert leader.progress("b").next_index == 7


def test_heartbeats_go_to_every_follower_each_interval():
    net = Net()
    leader = net.elect("a")
    effects = leader.tick(net.now + HB)
    beats = [m for m in effects.messages if isinstance(m, AppendEntries)]
    assert sorted(m.dst for m in beats) == ["b", "c"]
    assert all(m.round == 2 and m.entries == () for m in beats)
    assert effects.next_deadline == pytest.approx(net.now + 2 * HB)


def test_entries_stream_in_messages_of_at_most_max_append_entries():
    net = Net(max_append_entries=2)
    leader = net.elect("a")
    net.cut |= {("a", "b"), ("a", "c")}
    for i in range(7):
        net.request("a", write(value=i), f"w{i}")
    net.heal()
    net.inflight.clear()
    net.run(0.2)
    assert all(len(m.entries) <= 2 for b in net.bundles["a"] for m in b.messages
               if isinstance(m, AppendEntries))
    assert net.cores["b"].last_index == leader.last_index == 8


def test_entries_stream_in_messages_bounded_in_bytes_and_a_large_one_goes_alone():
    from refnode.messages import entry_bytes

    net = Net(max_append_bytes=1500)
    leader = net.elect("a")
    net.cut |= {("a", "b"), ("a", "c")}
    for i in range(7):
        net.request("a", write(value="v" * 400 + str(i)), f"w{i}")
    net.request("a", write(value="w" * 5000), "big")          # over the budget by itself
    net.heal()
    net.inflight.clear()
    net.run(0.2)
    appends = [m for b in net.bundles["a"] for m in b.messages
               if isinstance(m, AppendEntries) and m.entries]
    assert appends
    for m in appends:
        assert len(m.entries) == 1 or sum(entry_bytes(e) for e in m.entries) <= 1500
    assert any(len(m.entries) > 1 for m in appends)           # batched, not one by one
    assert net.cores["b"].last_index == net.cores["c"].last_index == leader.last_index == 9


# --- reads ---------------------------------------------------------------------------------------

def test_leader_reads_wait_for_a_quorum_round():
    net = Net()
    net.elect("a")
    net.request("a", write(value=5), "w")
    effects = net.request("a", read(), "r")
    assert "r" not in net.replies
    assert sorted(m.dst for m in effects.messages) == ["b", "c"]    # the confirming round
    net.deliver()
    assert net.replies["r"] == ClientReply(True, "read", "a", 1, "a", 5, 2)


def test_an_isolated_leader_never_answers_a_leader_read():
    net = Net()
    net.elect("a")
    net.isolate("a")
    net.request("a", read(), "r")
    net.run(MAX + 0.1)
    assert net.replies["r"].error == STEPPED_DOWN and net.replies["r"].definite


def test_stale_leader_read_answers_without_a_round():
    net = Net(bugs={"stale-leader-read"})
    net.elect("a")
    net.isolate("a")
    effects = net.request("a", read(), "r")
    assert net.replies["r"].ok and effects.messages == []


def test_lease_reads_are_local_while_the_lease_holds_and_wait_after_it_expires():
    net = Net()
    leader = net.elect("a")
    net.run(0.06)
    start = leader._round_sent[leader._confirmed_round]   # the last confirmed round's start
    assert leader.lease_expiry == pytest.approx(start + MIN * (1 - 0.05))
    effects = net.request("a", read(mode="lease"), "r1")
    assert net.replies["r1"].ok and effects.messages == []
    net.isolate("a")
    net.run(leader.lease_expiry - net.now + 0.001)
    assert leader.role == LEADER and net.now > leader.lease_expiry
    net.request("a", read(mode="lease"), "r2")
    assert "r2" not in net.replies                        # no local answer without a lease
    net.heal()
    net.run(0.06)
    assert net.replies["r2"].ok                           # confirmed by a quorum round


def test_lease_no_margin_drops_the_drift_allowance():
    net = Net(bugs={"lease-no-margin"})
    leader = net.elect("a")
    net.run(0.06)
    start = leader._round_sent[leader._confirmed_round]
    assert leader.lease_expiry == pytest.approx(start + MIN)


def test_a_new_leader_answers_reads_only_once_its_term_has_committed():
    net = Net()
    net.now = MIN + 0.001
    net.absorb("a", net.cores["a"].campaign(net.now))
    leader = net.cores["a"]
    while leader.role != LEADER:
        m = net.inflight.pop(0)
        net.absorb(m.dst, net.cores[m.dst].receive(m, net.now))
    net.inflight.clear()                                  # its no-op never arrives
    net.request("a", read(mode="lease"), "r1")
    net.request("a", read(mode="leader"), "r2")
    net.inflight.clear()
    assert leader.commit_index == 0 and not net.replies
    net.run(0.06)                                         # the next heartbeat carries it
    assert leader.commit_index == 1 and net.replies["r1"].ok and net.replies["r2"].ok


def test_follower_reads_wait_for_the_session_token():
    net = Net(follower_read_wait=0.5)
    net.elect("a")
    net.cut |= {("a", "c")}
    net.request("a", write(value=8), "w")
    net.deliver()
    version = net.replies["w"].version
    effects = net.request("c", read(mode="follower", min_version=version), "r1")
    assert "r1" not in net.replies and effects.next_deadline <= net.now + 0.5
    net.request("c", read(mode="follower"), "r0")           # no token: answered at once
    assert net.replies["r0"].ok and net.replies["r0"].version < version
    net.heal()
    net.run(0.1)
    assert net.replies["r1"] == ClientReply(True, "read", "c", 1, "a", 8, version)


def test_follower_reads_give_up_after_the_wait_bound():
    net = Net(follower_read_wait=0.2)
    net.elect("a")
    net.cut |= {("a", "c")}
    net.request("c", read(mode="follower", min_version=50), "r")
    net.run(0.25)
    assert net.replies["r"].error == VERSION_UNAVAILABLE and net.replies["r"].definite


def test_follower_ignores_token_answers_stale_at_once():
    net = Net(bugs={"follower-ignores-token"})
    net.elect("a")
    net.cut |= {("a", "c")}
    net.request("a", write(value=8), "w")
    net.deliver()
    net.request("c", read(mode="follower", min_version=net.replies["w"].version), "r")
    assert net.replies["r"].ok and net.replies["r"].value is None


@pytest.mark.parametrize("request_", [write(), read(), read(mode="lease"),
                                      ClientRequest("cas", "k", [1, 2]),
                                      ClientRequest("add", "s", 3)])
def test_followers_redirect_to_the_leader_they_know(request_):
    net = Net()
    net.elect("a")
    net.request("b", request_, "x")
    assert net.replies["x"] == ClientReply(False, request_.op, "b", 1, "a", error=NOT_LEADER,
                                           definite=True)


def test_a_node_that_knows_no_leader_redirects_without_a_hint():
    core = Core("b", ClusterConfig(nodes=NODES), random.Random(0), 0.0)
    reply = core.client_request(write(), "x", 0.1).replies[0][1]
    assert reply.error == NOT_LEADER and reply.leader is None


def test_cas_and_add_through_the_log():
    net = Net()
    net.elect("a")
    net.request("a", ClientRequest("cas", "k", [None, 1]), "c1")
    net.request("a", ClientRequest("cas", "k", [5, 2]), "c2")
    net.request("a", ClientRequest("add", "k", 3), "a1")
    net.request("a", ClientRequest("add", "s", 3), "a2")
    net.deliver()
    assert net.replies["c1"].ok and net.replies["c1"].version == 2
    assert net.replies["c2"] == ClientReply(False, "cas", "a", 1, "a", 1, 2, CAS_MISMATCH)
    assert net.replies["a1"].error == TYPE_MISMATCH and net.replies["a1"].definite
    assert net.replies["a2"].ok and net.replies["a2"].version == 5


def test_status():
    net = Net()
    net.elect("a")
    net.cut |= {("a", "c"), ("c", "a")}
    net.request("a", write(), "w")
    net.run(0.1)
    status = net.cores["a"].status()
    assert status["role"] == LEADER and status["term"] == 1 and status["leader"] == "a"
    assert status["commit_index"] == status["applied_index"] == status["last_log_index"] == 2
    assert status["progress"]["b"]["lag_entries"] == 0
    assert status["progress"]["c"]["lag_entries"] == 1 and status["progress"]["c"]["lag_seconds"]
    assert status["progress"]["c"]["last_contact_ago"] >= 0.1
    assert status["lease_expiry"] > net.now and status["lease_remaining"] > 0
    net.request("b", ClientRequest("status"), "s")
    follower = net.replies["s"].value
    assert follower["role"] == FOLLOWER and follower["progress"] == {}
    assert follower["lease_expiry"] is None


# --- restore and effects -------------------------------------------------------------------------

def test_restore_resumes_from_the_persisted_state():
    net = Net()
    net.elect("a")
    for i in range(3):
        net.request("a", write(value=i), f"w{i}")
    net.run(0.1)
    before = net.cores["b"]
    disk_log = []
    for bundle in net.bundles["b"]:
        if bundle.truncate_from is not None:
            del disk_log[bundle.truncate_from - 1:]
        disk_log.extend(bundle.append)
    hard = [b.hard_state for b in net.bundles["b"] if b.hard_state is not None][-1]
    restored = Core.restore("b", net.config, random.Random(9), net.now, hard.term, hard.vote,
                            disk_log)
    assert restored.entries() == before.entries() and restored.term == 1
    assert restored.commit_index == 0 and restored.role == FOLLOWER
    net.cores["b"] = restored
    net.run(0.1)
    assert restored.commit_index == before.commit_index and restored.state.read("k") == (2, 4)


@pytest.mark.parametrize("term, vote, entries, message", [
    (-1, None, [], "term"),
    (1, "z", [], "vote"),
    (1, None, [Entry(2, 1, "noop")], "index"),
    (1, None, [Entry(1, 2, "noop")], "term"),
    (2, None, [Entry(1, 2, "noop"), Entry(2, 1, "noop")], "term"),
])
def test_restore_refuses_impossible_state(term, vote, entries, message):
    with pytest.raises(ValueError, match=message):
        Core.restore("a", ClusterConfig(nodes=NODES), random.Random(0), 0.0, term, vote, entries)


def test_effects_merge_keeps_the_order_of_persistence():
    e = lambda i, t: Entry(i, t, "noop")
    first = Effects(HardState(1, "a"), None, [e(1, 1), e(2, 1), e(3, 1)], ["m1"], [("r", 1)], 5.0)
    second = Effects(HardState(2, None), 2, [e(2, 2)], ["m2"], [], 7.0)
    merged = first.merge(second)
    assert merged.hard_state == HardState(2, None)
    assert merged.truncate_from == 2 and merged.append == [e(1, 1), e(2, 2)]
    assert merged.messages == ["m1", "m2"] and merged.replies == [("r", 1)]
    assert merged.next_deadline == 7.0 and merged.persists
    assert not Effects().persists


def test_a_single_node_cluster_leads_and_commits_alone():
    config = ClusterConfig(nodes=("solo",))
    core = Core("solo", config, random.Random(0), 0.0)
    core.tick(core.next_deadline)
    assert core.role == LEADER
    reply = core.client_request(write(value=1), "w", 1.0).replies[0][1]
    assert reply.ok and reply.version == 2
    assert core.client_request(read(), "r", 1.0).replies[0][1].value == 1


def test_the_core_reads_no_clock_and_draws_no_global_randomness(monkeypatch):
    import time as time_module

    def forbidden(*args, **kwargs):
        raise AssertionError("the core touched a global clock or random source")

    for name in ("time", "monotonic", "perf_counter", "time_ns", "monotonic_ns"):
        monkeypatch.setattr(time_module, name, forbidden)
    for name in ("random", "uniform", "randint", "choice", "shuffle"):
        monkeypatch.setattr(random, name, forbidden)
    net = Net()
    net.run(1.0)
    leader = next(c for c in net.cores.values() if c.role == LEADER)
    net.request(leader.id, write(), "w")
    net.run(0.1)
    assert net.replies["w"].ok


# --- configuration -------------------------------------------------------------------------------

def test_bugs_are_the_seven_of_the_design():
    assert set(BUGS) == {"stale-leader-read", "no-fencing", "early-ack", "no-fsync",
                         "lease-no-margin", "follower-ignores-token", "forget-vote"}
    for bug in BUGS.values():
        assert bug.defect and bug.exposed_by and "\n" not in bug.defect


@pytest.mark.parametrize("changes, message", [
    ({"nodes": []}, "at least one"),
    ({"nodes": ["a", "a"]}, "unique"),
    ({"nodes": ["a", ""]}, "non-empty"),
    ({"nodes": "abc"}, "list"),
    ({"replication": "eventual"}, "replication"),
    ({"election_timeout_min": 0}, "election_timeout_min"),
    ({"election_timeout_max": 0.1}, "election_timeout_max"),
    ({"heartbeat_interval": 0.4}, "heartbeat_interval"),
    ({"max_clock_drift": 1.0}, "max_clock_drift"),
    ({"max_clock_drift": True}, "max_clock_drift"),
    ({"max_append_entries": 0}, "max_append_entries"),
    ({"max_append_bytes": 0}, "max_append_bytes"),
    ({"follower_read_wait": math.inf}, "follower_read_wait"),
    ({"bugs": ["no-such-bug"]}, "unknown bug"),
])
def test_config_validation(changes, message):
    values = {"nodes": ["a", "b", "c"], **changes}
    with pytest.raises(ValueError, match=message):
        ClusterConfig(**values)


def test_config_round_trips_through_json():
    config = ClusterConfig(nodes=["a", "b"], replication="sync", bugs=["no-fsync"],
                           election_timeout_min=1, election_timeout_max=2)
    data = config.to_dict()
    assert data["nodes"] == ["a", "b"] and data["bugs"] == ["no-fsync"]
    assert ClusterConfig.from_dict(data) == config
    assert config.quorum == 2 and config.peers_of("a") == ("b",)
    with pytest.raises(ValueError, match="unknown configuration field 'node'"):
        ClusterConfig.from_dict({"node": ["a"]})
    with pytest.raises(ValueError, match="'nodes' is required"):
        ClusterConfig.from_dict({})


# --- messages ------------------------------------------------------------------------------------

MESSAGES = [
    VoteRequest("a", "b", 3, 10, 2),
    VoteReply("b", "a", 3, True),
    AppendEntries("a", "b", 3, 1, 1, (Entry(2, 3, "write", "k", {"x": [1, None]}),
                                      Entry(3, 3, "cas", "k", [1, 2]), Entry(4, 3, "noop")),
                  2, round=7),
    AppendReply("b", "a", 3, False, 0, 4, 2, 7),
    ClientRequest("read", "k", read_mode="follower", min_version=12, id="q1"),
    ClientRequest("cas", "k", [None, "v"], id=3),
    ClientRequest("status"),
    ClientReply(False, "write", "n1", 2, "n2", error=STEPPED_DOWN, definite=False, id=4),
    ClientReply(True, "read", "n1", 2, "n1", [1, 2], 9),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_messages_round_trip_through_json(message):
    import json
    data = json.loads(json.dumps(message.to_dict()))
    assert message_from_dict(data) == message
    assert type(message).from_dict(data) == message


@pytest.mark.parametrize("data, reason", [
    ({"type": "gossip"}, "unknown type"),
    ([1, 2], "JSON object"),
    ({"type": "request", "op": "delete", "key": "k"}, "unknown op"),
    ({"type": "request", "op": "read"}, "key"),
    ({"type": "request", "op": "read", "key": "k", "read_mode": "fast"}, "read_mode"),
    ({"type": "request", "op": "read", "key": "k", "min_version": -1}, "min_version"),
    ({"type": "request", "op": "read", "key": "k", "min_version": True}, "min_version"),
    ({"type": "request", "op": "cas", "key": "k", "value": [1]}, "cas value"),
    ({"type": "request", "op": "write", "key": "k", "value": float("nan")}, "finite"),
    ({"type": "request", "op": "write", "key": "k", "extra": 1}, "unknown field"),
    ({"type": "vote-request", "src": "a", "dst": "b", "term": "3", "last_log_index": 0,
      "last_log_term": 0}, "'term' must be an integer"),
    ({"type": "vote-reply", "src": "a", "dst": "b", "term": 3, "granted": 1}, "true or false"),
    ({"type": "append", "src": "a", "dst": "b", "term": 1, "prev_index": 0, "prev_term": 0,
      "entries": [{"index": 2, "term": 1, "op": "noop"}], "leader_commit": 0}, "without gaps"),
    ({"type": "append", "src": "a", "dst": "b", "term": 1, "prev_index": 0, "prev_term": 0,
      "entries": [{"index": 1, "term": 1, "op": "drop", "key": "k"}], "leader_commit": 0},
     "unknown op"),
    ({"type": "reply", "ok": True, "op": "read", "node": "a", "term": 1, "error": "x"},
     "no error"),
    ({"type": "reply", "ok": False, "op": "read", "node": "a", "term": 1}, "name its error"),
])
def test_malformed_messages_are_refused_with_one_line(data, reason):
    with pytest.raises(MessageError, match=reason) as info:
        message_from_dict(data)
    assert "\n" not in str(info.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=8)


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(["read", "write", "cas", "add"]), key=st.text(min_size=1, max_size=5),
       value=json_values, mode=st.sampled_from(["leader", "lease", "follower"]),
       token=st.none() | st.integers(0, 10**9))
def test_client_requests_round_trip(op, key, value, mode, token):
    if op == "read":
        value = None
    elif op == "cas":
        value = [value, value]
    request = ClientRequest(op, key, value, mode, token)
    assert ClientRequest.from_dict(request.to_dict()) == request


@settings(max_examples=80, deadline=None)
@given(data=st.dictionaries(st.sampled_from(["type", "op", "key", "value", "src", "dst", "term",
                                             "entries", "ok", "node", "granted", "read_mode"]),
                            json_values, max_size=6))
def test_decoding_garbage_raises_only_message_errors(data):
    try:
        message_from_dict(data)
    except MessageError as exc:
        assert "\n" not in str(exc)


# --- the key-value state -------------------------------------------------------------------------

def test_the_state_machine():
    state = KeyValueState()
    results = [state.apply(e) for e in (
        Entry(1, 1, "noop"),
        Entry(2, 1, "write", "r", {"a": 1}),
        Entry(3, 1, "cas", "r", [{"a": 1}, 5]),
        Entry(4, 1, "cas", "r", [4, 6]),
        Entry(5, 1, "add", "s", 10),
        Entry(6, 1, "add", "s", "x"),
        Entry(7, 1, "add", "s", 2),
        Entry(8, 1, "add", "s", 10),
        Entry(9, 1, "add", "r", 1),
        Entry(10, 1, "cas", "new", [None, 1]),
        Entry(11, 1, "cas", "t", [1, 2]),
    )]
    assert [r.ok for r in results] == [True, True, True, False, True, True, True, True, False,
                                       True, False]
    assert results[3].error == CAS_MISMATCH and results[3].value == 5 and results[3].version == 3
    assert results[8].error == TYPE_MISMATCH
    assert state.read("r") == (5, 3)
    assert state.read("s") == ([2, 10, "x"], 8)
    assert state.read("new") == (1, 10)
    assert state.read("missing") == (None, 0)
    assert state.applied_index == 11
    with pytest.raises(ValueError):
        state.apply(Entry(13, 1, "noop"))


def test_cas_compares_json_values_not_python_equality():
    state = KeyValueState()
    state.apply(Entry(1, 1, "write", "k", 1))
    assert not state.apply(Entry(2, 1, "cas", "k", [True, 2])).ok
    assert state.apply(Entry(3, 1, "cas", "k", [1, 2])).ok


def test_a_rebuilt_node_neither_votes_nor_campaigns_until_it_hears_a_leader():
    """Its log (and the votes in it) set aside, it cannot know in which terms it voted."""
    from refnode.messages import VoteRequest

    config = ClusterConfig(nodes=("a", "b", "c"))
    core = Core.restore("c", config, random.Random(1), 0.0, 0, None, [], rebuilt=True)
    assert core.abstaining
    effects = core.tick(10.0)                           # long past any election timeout
    assert core.role == "follower" and not effects.messages
    assert not core.campaign(11.0).messages
    effects = core.receive(VoteRequest("b", "c", 7, 0, 0), 12.0)
    (reply,) = effects.messages
    assert reply.granted is False and effects.hard_state is None
    # A leader of term 9 heard: it follows, and votes again in later terms.
    core.receive(AppendEntries("a", "c", 9, 0, 0, (), 0, 1), 13.0)
    assert not core.abstaining and core.term == 9 and core.leader == "a"
    (reply,) = core.receive(VoteRequest("b", "c", 10, 0, 0), 20.0).messages
    assert reply.granted is True
